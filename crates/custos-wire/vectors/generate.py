#!/usr/bin/env python3
"""Writes the custos-wire test vectors from the layouts in docs/spec/wire.md.

This is an independent second encoder (Python, written from the spec, not
from the Rust code): tests/it/vectors.rs checks that the Rust decoders accept
exactly the `ok` vectors, re-encode them byte for byte, and refuse the others
with the stated error. Run from this directory: python3 generate.py

The delivery-tag vector `delivery_tag-ok-signed` carries a real Ed25519
signature (RFC 8032) by the key whose seed is 32 bytes of 0x07, over
"custos/v1/delivery-tag" || the tag without its signature; it needs the
`cryptography` package. `delivery_tag-ok-v2-signed` is leaf 4 of a batch of 5
(batch id 9): its path and root come from the recursive RFC 6962 definitions
below (MTH and PATH), and the root is signed over
"custos/v2/delivery-tag-root" || batch id || size || root by the same key.
"""
import hashlib
import struct
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

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

# Delivery tag v1 (custos-wire/src/tag.rs, docs/spec/report-package.md).
TAG_LABEL = b"custos/v1/delivery-tag"
def tag_fields(version=1, sender=b"alice", time=1_764_158_400_123):
    return u8(version) + b"\xab" * 32 + CONV + b8(sender) + u64(time) + b"\xcd" * 32
def tag(sig=b"\x66" * 64, **kw): return tag_fields(**kw) + sig
def signed_tag():
    key = Ed25519PrivateKey.from_private_bytes(b"\x07" * 32)
    fields = tag_fields(sender=b"bob")
    return fields + key.sign(TAG_LABEL + fields)

# Delivery tag v2: leaf SHA-256(0x00 || label || fields), RFC 6962 nodes.
V2_LEAF_LABEL = b"custos/v2/delivery-tag"
V2_ROOT_LABEL = b"custos/v2/delivery-tag-root"
def sha(b): return hashlib.sha256(b).digest()
def v2_fields(sender=b"bob", i=0):
    return b"\xab" * 32 + CONV + b8(sender) + u64(1_764_158_400_123 + i) + sha(u64(i))
def leaf(fields): return sha(b"\x00" + V2_LEAF_LABEL + fields)
def split(n):
    k = 1
    while k * 2 < n: k *= 2
    return k
def mth(leaves):
    if len(leaves) == 1: return leaves[0]
    k = split(len(leaves))
    return sha(b"\x01" + mth(leaves[:k]) + mth(leaves[k:]))
def path(m, leaves):
    """RFC 6962 section 2.1.1 PATH(m, D[n]), leaf to root."""
    if len(leaves) == 1: return []
    k = split(len(leaves))
    if m < k: return path(m, leaves[:k]) + [mth(leaves[k:])]
    return path(m - k, leaves[k:]) + [mth(leaves[:k])]
def v2_tag(index=4, size=5, batch_id=9, sender=b"bob", sig=None, path_hashes=None, version=2):
    fields = [v2_fields(sender, i) for i in range(size)]
    leaves = [leaf(f) for f in fields]
    p = path(index, leaves) if path_hashes is None else path_hashes
    if sig is None:
        key = Ed25519PrivateKey.from_private_bytes(b"\x07" * 32)
        sig = key.sign(V2_ROOT_LABEL + u64(batch_id) + u16(size) + mth(leaves))
    return u8(version) + fields[index] + u64(batch_id) + u16(size) + u16(index) + b"".join(p) + sig
def v2_raw(size, index, n_path, sender=b"bob"):
    return u8(2) + v2_fields(sender) + u64(9) + u16(size) + u16(index) + b"\x5a" * (32 * n_path) + b"\x66" * 64

# Report v1 (custos-wire/src/report.rs).
def reported(sender=b"alice", tag_bytes=None, tag_len=None):
    t = tag() if tag_bytes is None else tag_bytes
    m = CONV + b8(sender) + u64(1_764_158_400_123) + b"\x03" * 32 + b32(envelope()) + b32(payload())
    return m + (u16(tag_len) + t if tag_len is not None else b16(t))
def report(version=1, reason=b"threats", context=(), count=None, reason_len=None):
    r = u8(version) + (u16(reason_len) + reason if reason_len is not None else b16(reason))
    r += reported()
    r += u8(len(context) if count is None else count)
    return r + b"".join(context)

def mls_private(wire_format=2, group=CONV, epoch=7, content_type=2, group_len=None):
    # RFC 9420 §6.3 clear header: version mls10, wire format, group_id<V>, epoch, content type;
    # then opaque bytes standing in for authenticated data, sender data and ciphertext.
    glen = bytes([len(group)]) if group_len is None else group_len
    return u16(1) + u16(wire_format) + glen + group + u64(epoch) + u8(content_type) + b"\x00\x00\x10" + b"\x5a" * 16


# Warrant v1 (docs/spec/warrant.md), signed by the key with seed 0x07 * 32.
WARRANT_LABEL = b"custos/v1/warrant"
def warrant_fields(version=1, targets=(b"\x01" * 16, b"\x02" * 16), first=20000, last=20001,
                   issued=1_728_000_000, not_after=1_728_000_000 + 30 * 86400,
                   embargo=1_728_000_000 + 90 * 86400, court=b"court.test", basis=b"s. 100a StPO"):
    return (u8(version) + b"\x09" * 16 + b8(court) + b8(b"police.test") + b16(basis)
            + u8(len(targets)) + b"".join(targets) + u32(first) + u32(last)
            + u64(issued) + u64(not_after) + u64(embargo) + b"\x05" * 32)
def warrant(**kw):
    key = Ed25519PrivateKey.from_private_bytes(b"\x07" * 32)
    f = warrant_fields(**kw)
    return f + key.sign(WARRANT_LABEL + f)

# Release request / response / shares v1 (docs/spec/release.md).
REQUEST_LABEL = b"custos/v1/release-request"
def cday(c, d): return c + u32(d)
def release_fields(requested=(cday(b"\x01" * 16, 20000), cday(b"\x01" * 16, 20001)), count=None, proof=2):
    return (u8(1) + b16(warrant()) + b"\x02" * 32 + b16(b"\x03" * 40) + u64(17)
            + b16(b"log.test\n18\nAAAA\n\n") + u8(proof) + b"\x04" * 32 * proof
            + b8(b"custodian-1.test") + u64(1_728_000_100)
            + u16(len(requested) if count is None else count) + b"".join(requested))
def release_request(**kw):
    key = Ed25519PrivateKey.from_private_bytes(b"\x04" * 32)
    f = release_fields(**kw)
    return f + key.sign(REQUEST_LABEL + f)
def release_response(version=1, sealed=b"\x06" * 40):
    return u8(version) + b8(b"custodian-1.test") + b"\x01" * 32 + u64(9) + b"\x02" * 32 + b32(sealed)
def released_shares(items=(cday(b"\x01" * 16, 20000),), count=None):
    return u8(1) + u16(len(items) if count is None else count) + b"".join(i + u32(1) + b"\x0a" * 48 for i in items)

VECTORS = [
    ("mls_header", "ok-proposal", "ok", "PrivateMessage header: conversation group id, epoch 7, proposal", mls_private()),
    ("mls_header", "err-public-message", "InvalidValue", "wire format 1 (PublicMessage)", mls_private(wire_format=1)),
    ("mls_header", "err-content-type", "InvalidValue", "content type 4", mls_private(content_type=4)),
    ("mls_header", "err-varint-not-shortest", "InvalidValue", "group id length 16 in the two-byte form", mls_private(group_len=b"\x40\x10")),
    ("mls_header", "err-truncated", "Truncated", "ends inside the epoch", mls_private()[:25]),
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
    ("delivery_tag", "ok-basic", "ok", "a tag (form only: the signature bytes are arbitrary)", tag()),
    ("delivery_tag", "ok-signed", "ok", "a tag signed by the Ed25519 key with seed 0x07 x 32", signed_tag()),
    ("delivery_tag", "ok-longest-sender", "ok", "a 64-byte sender name, the largest tag", tag(sender=b"a" * 64)),
    ("delivery_tag", "err-version-3", "UnsupportedVersion", "version byte 3", tag(version=3)),
    ("delivery_tag", "ok-v2-signed", "ok", "v2: leaf 4 of a batch of 5, root signed by the key with seed 0x07 x 32", v2_tag()),
    ("delivery_tag", "ok-v2-single-leaf", "ok", "v2: a batch of one leaf, empty path (form only)", v2_raw(1, 0, 0)),
    ("delivery_tag", "ok-v2-longest", "ok", "v2: 64-byte sender, leaf 0 of 512, 9-hash path: the largest tag", v2_raw(512, 0, 9, sender=b"a" * 64)),
    ("delivery_tag", "err-v2-index-at-size", "InvalidValue", "v2: leaf index equal to the batch size", v2_raw(5, 5, 1)),
    ("delivery_tag", "err-v2-size-0", "InvalidValue", "v2: empty batch", v2_raw(0, 0, 0)),
    ("delivery_tag", "err-v2-size-513", "InvalidValue", "v2: batch of 513, above the cap", v2_raw(513, 0, 10)),
    ("delivery_tag", "err-v2-path-short", "Truncated", "v2: leaf 0 of 5 with a 2-hash path (3 needed)", v2_raw(5, 0, 2)),
    ("delivery_tag", "err-v2-path-long", "TrailingBytes", "v2: leaf 4 of 5 with a 2-hash path (1 needed)", v2_raw(5, 4, 2)),
    ("delivery_tag", "err-v2-over-bound", "TooLong", "v2: longer than the largest tag", v2_raw(512, 0, 9, sender=b"a" * 64) + b"\x00"),
    ("delivery_tag", "err-trailing-byte", "TrailingBytes", "one byte after the signature", tag() + b"\x00"),
    ("delivery_tag", "err-truncated-signature", "Truncated", "signature one byte short", tag()[:-1]),
    ("delivery_tag", "err-sender-uppercase", "InvalidValue", "sender name with an upper-case letter", tag(sender=b"Alice")),
    ("delivery_tag", "err-sender-empty", "InvalidValue", "empty sender name", tag(sender=b"")),
    ("delivery_tag", "err-v1-longest-plus-byte", "TrailingBytes", "the largest v1 tag and one byte more (within the v2 bound)", tag(sender=b"a" * 64) + b"\x00"),
    ("report", "ok-no-context", "ok", "a reported message, no context", report()),
    ("report", "ok-two-context", "ok", "a reported message and two context messages", report(context=[reported(), reported(sender=b"bob")])),
    ("report", "ok-empty-reason-signed-tag", "ok", "empty reason; the tag is delivery_tag-ok-signed", u8(1) + b16(b"") + reported(tag_bytes=signed_tag()) + u8(0)),
    ("report", "err-version-2", "UnsupportedVersion", "version byte 2", report(version=2)),
    ("report", "err-trailing-byte", "TrailingBytes", "one byte after the last message", report() + b"\x00"),
    ("report", "err-truncated", "Truncated", "context count missing", report()[:-1]),
    ("report", "err-reason-utf8", "InvalidUtf8", "reason that is not UTF-8", report(reason=b"\xff")),
    ("report", "err-reason-over-bound", "TooLong", "reason length 1025", report(reason=b"x" * 1025)),
    ("report", "err-context-count-9", "TooLong", "context count 9", report(count=9)),
    ("report", "err-context-count-short", "Truncated", "context count 2 with one message", report(context=[reported()], count=2)),
    ("report", "ok-v2-signed-tag", "ok", "empty reason; the tag is delivery_tag-ok-v2-signed", u8(1) + b16(b"") + reported(tag_bytes=v2_tag()) + u8(0)),
    ("report", "err-tag-over-bound", "TooLong", "tag length 519, above the largest tag (v2)", u8(1) + b16(b"") + reported(tag_bytes=b"\x00" * 519) + u8(0)),
    ("report", "err-sender-uppercase", "InvalidValue", "claimed sender with an upper-case letter", u8(1) + b16(b"") + reported(sender=b"Bob") + u8(0)),
    ("warrant", "ok-signed", "ok", "two targets, two days; signed by seed 07", warrant()),
    ("warrant", "ok-limits", "ok", "16 targets, 31 days, 180-day embargo", warrant(targets=tuple(bytes([i]) * 16 for i in range(1, 17)), last=20030, embargo=1_728_000_000 + 180 * 86400)),
    ("warrant", "err-version-2", "UnsupportedVersion", "version byte 2", warrant(version=2)),
    ("warrant", "err-targets-17", "TooLong", "17 targets", warrant(targets=tuple(bytes([i]) * 16 for i in range(1, 18)))),
    ("warrant", "err-targets-unordered", "InvalidValue", "targets not ascending", warrant(targets=(b"\x02" * 16, b"\x01" * 16))),
    ("warrant", "err-targets-repeated", "InvalidValue", "a target twice", warrant(targets=(b"\x01" * 16, b"\x01" * 16))),
    ("warrant", "err-targets-empty", "InvalidValue", "no target", warrant(targets=())),
    ("warrant", "err-days-32", "InvalidValue", "32 days", warrant(last=20031)),
    ("warrant", "err-days-reversed", "InvalidValue", "last day before first", warrant(first=20001, last=20000)),
    ("warrant", "err-embargo-181", "InvalidValue", "embargo 180 days and one second", warrant(embargo=1_728_000_000 + 180 * 86400 + 1)),
    ("warrant", "err-not-after-at-issue", "InvalidValue", "not_after equal to issued_at", warrant(not_after=1_728_000_000)),
    ("warrant", "err-court-empty", "InvalidValue", "empty court name", warrant(court=b"")),
    ("warrant", "err-basis-utf8", "InvalidUtf8", "legal basis not UTF-8", warrant(basis=b"\xff")),
    ("warrant", "err-trailing-byte", "TrailingBytes", "one byte after the signature", warrant() + b"\x00"),
    ("warrant", "err-truncated-signature", "Truncated", "signature one byte short", warrant()[:-1]),
    ("release_request", "ok-signed", "ok", "two conversation-days; signed by seed 04", release_request()),
    ("release_request", "err-version-2", "UnsupportedVersion", "version byte 2", b"\x02" + release_request()[1:]),
    ("release_request", "err-requested-empty", "InvalidValue", "no conversation-day", release_request(requested=())),
    ("release_request", "err-requested-unordered", "InvalidValue", "days not ascending", release_request(requested=(cday(b"\x01" * 16, 20001), cday(b"\x01" * 16, 20000)))),
    ("release_request", "err-requested-497", "TooLong", "497 conversation-days", release_request(requested=(), count=497)),
    ("release_request", "err-proof-65", "TooLong", "65 proof hashes", release_request(proof=65)),
    ("release_request", "err-trailing-byte", "TrailingBytes", "one byte after the signature", release_request() + b"\x00"),
    ("release_response", "ok-basic", "ok", "a response with 40 sealed bytes", release_response()),
    ("release_response", "err-version-0", "UnsupportedVersion", "version byte 0", release_response(version=0)),
    ("release_response", "err-truncated", "Truncated", "sealed bytes one short", release_response()[:-1]),
    ("released_shares", "ok-one", "ok", "one share", released_shares()),
    ("released_shares", "err-count-short", "Truncated", "count 2 with one share", released_shares(count=2)),
    ("released_shares", "err-unordered", "InvalidValue", "shares not ascending", released_shares(items=(cday(b"\x02" * 16, 1), cday(b"\x01" * 16, 1)))),
]

for fmt, name, expect, note, data in VECTORS:
    # The one vector format (crates/custos-vectors): comments, then
    # `key = value` lines in key order.
    with open(f"{fmt}-{name}.vector", "w") as f:
        f.write(f"# {note}\nbytes = {data.hex()}\nexpect = {expect}\nformat = {fmt}\n")
print(f"{len(VECTORS)} vectors written")
