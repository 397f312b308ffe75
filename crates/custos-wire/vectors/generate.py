#!/usr/bin/env python3
"""Writes the custos-wire test vectors from the layouts in docs/spec/wire.md.

This is an independent second encoder (Python, written from the spec, not
from the Rust code): tests/vectors.rs checks that the Rust decoders accept
exactly the `ok` vectors, re-encode them byte for byte, and refuse the others
with the stated error. Run from this directory: python3 generate.py
"""
import struct

def u8(v): return struct.pack(">B", v)
def u16(v): return struct.pack(">H", v)
def u32(v): return struct.pack(">I", v)
def u64(v): return struct.pack(">Q", v)
def b8(b): return u8(len(b)) + b
def b16(b): return u16(len(b)) + b
def b32(b): return u32(len(b)) + b

CONV = bytes(range(0x10, 0x20))
def chain(epoch=3, leaf=1, day=20418, seq=0): return u64(epoch) + u32(leaf) + u32(day) + u32(seq)

def envelope(version=1, ct=b"\x01\x02\x03", sig=b"\x55" * 64, ct_len=None):
    head = u8(version) + CONV + chain() + u32(9) + b"\xab" * 32
    return head + (u32(ct_len) + ct if ct_len is not None else b32(ct)) + sig

def announcement(kind=0, capsule=b"", mls=b"\x04" * 20, mls_len=None):
    body = u8(1) + CONV + chain(day=20419, seq=2) + u8(kind) + b16(capsule)
    return body + (u32(mls_len) + mls if mls_len is not None else b32(mls))

def chain_root(kind=1): return u8(1) + u8(kind) + chain(2, 3, 4, 5) + b"\x42" * 32

def payload(ctype=1, body=b"hello", attachments=(), count=None):
    p = u8(1) + u8(ctype) + u64(1_764_158_400_000) + b"\x03" * 32 + b32(body)
    p += u8(len(attachments) if count is None else count)
    for key, digest, size, loc in attachments:
        p += key + digest + u64(size) + b16(loc)
    return p

def submit(kind=1, body=b"\x01" * 8): return u8(1) + u8(1) + u64(7) + u8(kind) + CONV + b32(body)
def ack(seqs): return u8(1) + u8(2) + u16(len(seqs)) + b"".join(u64(s) for s in seqs)

def delivery_body(sender=b"alice", kind=1):
    return u64(42) + u8(kind) + CONV + b8(sender) + u64(1_764_158_400_000) + b32(b"\x09" * 4) + b16(b"")
def delivery(sender=b"alice"): return u8(1) + u8(1) + delivery_body(sender)
def accepted(): return u8(1) + u8(2) + u64(7) + u64(1_764_158_400_123) + b16(b"\x77" * 16)
def refused(reason=b"too large"): return u8(1) + u8(3) + u64(7) + u16(413) + b16(reason)
def batch(frames, count=None): return u32(len(frames) if count is None else count) + b"".join(b32(f) for f in frames)

VECTORS = [
    ("envelope", "ok-basic", "ok", "ciphertext of 3 bytes", envelope()),
    ("envelope", "ok-empty-ciphertext", "ok", "an empty ciphertext is well formed", envelope(ct=b"")),
    ("envelope", "err-version-2", "UnsupportedVersion", "unknown version byte", envelope(version=2)),
    ("envelope", "err-trailing-byte", "TrailingBytes", "one byte after the signature", envelope() + b"\x00"),
    ("envelope", "err-truncated-signature", "Truncated", "signature one byte short", envelope()[:-1]),
    ("envelope", "err-ciphertext-length-over-bound", "TooLong", "length prefix above the 256 KiB bound", envelope(ct=b"", ct_len=0xFFFFFFFF)),
    ("envelope", "err-empty", "Truncated", "no bytes at all", b""),
    ("announcement", "ok-no-escrow", "ok", "escrow kind 0, empty capsule", announcement()),
    ("announcement", "ok-bf-ibe-capsule", "ok", "escrow kind 1 with a 160-byte capsule", announcement(kind=1, capsule=b"\x5a" * 160)),
    ("announcement", "err-capsule-kind-mismatch", "InvalidValue", "kind 0 with a capsule", announcement(kind=0, capsule=b"\x01")),
    ("announcement", "err-capsule-short", "InvalidValue", "kind 1 with a 159-byte capsule", announcement(kind=1, capsule=b"\x5a" * 159)),
    ("announcement", "err-unknown-escrow-kind", "InvalidValue", "escrow kind 2", announcement(kind=2)),
    ("announcement", "err-mls-over-bound", "TooLong", "MLS message length above 64 KiB", announcement(mls=b"", mls_len=65537)),
    ("chain_root", "ok", "ok", "a chain root", chain_root()),
    ("chain_root", "err-kind", "InvalidValue", "kind byte 2", chain_root(kind=2)),
    ("payload", "ok-text", "ok", "text body, no attachment", payload()),
    ("payload", "ok-attachment", "ok", "one attachment", payload(attachments=[(b"\x01" * 32, b"\x02" * 32, 10, b"blob/1")])),
    ("payload", "ok-empty-body", "ok", "an empty text", payload(body=b"")),
    ("payload", "err-bad-utf8", "InvalidUtf8", "text body that is not UTF-8", payload(body=b"\xff\xfe")),
    ("payload", "err-content-type", "InvalidValue", "content type 2", payload(ctype=2)),
    ("payload", "err-too-many-attachments", "TooLong", "attachment count 9", payload(count=9)),
    ("client_frame", "ok-submit", "ok", "submit of an 8-byte body", submit()),
    ("client_frame", "ok-ack", "ok", "ack of three seqs", ack([1, 2, 3])),
    ("client_frame", "err-ack-empty", "InvalidValue", "ack of zero seqs", ack([])),
    ("client_frame", "err-unknown-kind", "InvalidValue", "frame kind 3", u8(1) + u8(3)),
    ("client_frame", "ok-submit-proposal", "ok", "submit of an item of kind 5 (MLS proposal)", submit(kind=5)),
    ("client_frame", "err-item-kind", "InvalidValue", "item kind 6", submit(kind=6)),
    ("client_frame", "err-version-0", "UnsupportedVersion", "version 0", u8(0) + submit()[1:]),
    ("server_frame", "ok-delivery", "ok", "a delivery", delivery()),
    ("server_frame", "ok-accepted", "ok", "accepted with a 16-byte tag", accepted()),
    ("server_frame", "ok-refused", "ok", "refused with a reason", refused()),
    ("server_frame", "err-sender-uppercase", "InvalidValue", "sender name with an upper-case letter", delivery(b"Alice")),
    ("server_frame", "err-sender-empty", "InvalidValue", "empty sender name", delivery(b"")),
    ("server_frame", "err-reason-utf8", "InvalidUtf8", "reason that is not UTF-8", refused(b"\xc3")),
    ("delivery_batch", "ok-empty", "ok", "no deliveries", batch([])),
    ("delivery_batch", "ok-two", "ok", "two deliveries", batch([delivery(), delivery(b"bob")])),
    ("delivery_batch", "err-not-a-delivery", "InvalidValue", "an accepted frame inside a batch", batch([accepted()])),
    ("delivery_batch", "err-count-over-bound", "TooLong", "count 4097", batch([], count=4097)),
    ("delivery_batch", "err-count-short", "Truncated", "count 2 with one delivery", batch([delivery()], count=2)),
]

for fmt, name, expect, note, data in VECTORS:
    h = data.hex()
    lines = [h[i:i + 64] for i in range(0, len(h), 64)] or [""]
    with open(f"{fmt}-{name}.hex", "w") as f:
        f.write(f"# format: {fmt}\n# expect: {expect}\n# {note}\n")
        f.write("\n".join(lines) + "\n")
print(f"{len(VECTORS)} vectors written")
