// The Custos transparency dashboard page. It trusts nobody's server, the
// one that serves it included: it verifies the checkpoint's log signature
// and witness cosignatures against the manifest keys, the inclusion proof
// and author signature of every lawful-access entry, recomputes the warrant
// figures from those entries, and marks each figure verified or not.
// Compiled by `tsc` (web/build.sh) into app.js, which the server embeds.
"use strict";
// ---------- bytes and crypto ----------
const enc = new TextEncoder();
function b64(s) {
    const bin = atob(s);
    const out = new Uint8Array(bin.length);
    for (let i = 0; i < bin.length; i++)
        out[i] = bin.charCodeAt(i);
    return out;
}
function unhex(s) {
    const out = new Uint8Array(s.length / 2);
    for (let i = 0; i < out.length; i++)
        out[i] = parseInt(s.substr(i * 2, 2), 16);
    return out;
}
function tohex(b) {
    return Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
}
function concat(...parts) {
    const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
    let at = 0;
    for (const p of parts) {
        out.set(p, at);
        at += p.length;
    }
    return out;
}
function equal(a, b) {
    return a.length === b.length && a.every((x, i) => x === b[i]);
}
async function sha256(b) {
    return new Uint8Array(await crypto.subtle.digest("SHA-256", b));
}
async function ed25519(key, sig, msg) {
    try {
        const k = await crypto.subtle.importKey("raw", key, { name: "Ed25519" }, false, ["verify"]);
        return await crypto.subtle.verify({ name: "Ed25519" }, k, sig, msg);
    }
    catch {
        return false;
    }
}
async function keyId(name, alg, key) {
    return (await sha256(concat(enc.encode(name), new Uint8Array([0x0a, alg]), key))).slice(0, 4);
}
async function checkNote(note, keys) {
    const r = { checkpoint: null, logSigned: false, witnesses: new Map(), quorum: false, error: null };
    const split = note.indexOf("\n\n");
    if (split < 0) {
        r.error = "not a signed note";
        return r;
    }
    const text = note.slice(0, split + 1);
    const lines = text.split("\n");
    const size = Number(lines[1]);
    if (lines.length < 4 || !/^\d+$/.test(lines[1] ?? "") || !Number.isSafeInteger(size)) {
        r.error = "not a checkpoint";
        return r;
    }
    r.checkpoint = { origin: lines[0] ?? "", size, root: b64(lines[2] ?? "") };
    if (r.checkpoint.origin !== keys.origin) {
        r.error = "another log's checkpoint";
        return r;
    }
    const textBytes = enc.encode(text);
    const logKey = unhex(keys.log_key);
    const logId = await keyId(keys.origin, 0x01, logKey);
    const witnessIds = await Promise.all(keys.witnesses.map(async (w) => ({ w, key: unhex(w.key), id: await keyId(w.name, 0x04, unhex(w.key)) })));
    for (const line of note.slice(split + 2).split("\n")) {
        if (!line.startsWith("\u2014 "))
            continue;
        const [name, sigB64] = line.slice(2).split(" ");
        if (name === undefined || sigB64 === undefined)
            continue;
        const raw = b64(sigB64);
        const id = raw.slice(0, 4);
        if (name === keys.origin && equal(id, logId) && raw.length === 68) {
            r.logSigned = await ed25519(logKey, raw.slice(4), textBytes);
            if (!r.logSigned) {
                r.error = "the log's signature does not verify";
                return r;
            }
            continue;
        }
        const w = witnessIds.find((x) => x.w.name === name && equal(x.id, id));
        if (w && raw.length === 76) {
            const time = new DataView(raw.buffer, 4, 8).getBigUint64(0);
            const msg = concat(enc.encode(`cosignature/v1\ntime ${time}\n`), textBytes);
            if (await ed25519(w.key, raw.slice(12), msg)) {
                r.witnesses.set(name, Number(time));
            }
            else {
                r.error = `the cosignature of ${name} does not verify`;
                return r;
            }
        }
    }
    if (!r.logSigned)
        r.error = "no signature of the log";
    r.quorum = r.witnesses.size >= keys.witness_quorum;
    if (r.logSigned && !r.quorum)
        r.error = `${r.witnesses.size} of ${keys.witness_quorum} witness cosignatures`;
    return r;
}
// RFC 9162 section 2.1.3.2: verifying an inclusion proof.
async function checkInclusion(index, size, entry, proof, root) {
    if (index >= size)
        return false;
    let fn = index, sn = size - 1;
    let r = await sha256(concat(new Uint8Array([0]), entry));
    for (const p of proof) {
        if (sn === 0)
            return false;
        if (fn % 2 === 1 || fn === sn) {
            r = await sha256(concat(new Uint8Array([1]), p, r));
            while (fn % 2 === 0 && fn !== 0) {
                fn = Math.floor(fn / 2);
                sn = Math.floor(sn / 2);
            }
        }
        else {
            r = await sha256(concat(new Uint8Array([1]), r, p));
        }
        fn = Math.floor(fn / 2);
        sn = Math.floor(sn / 2);
    }
    return sn === 0 && equal(r, root);
}
// RFC 9162 section 2.1.4.2: verifying a consistency proof.
async function checkConsistency(first, second, firstHash, secondHash, proof) {
    if (first > second)
        return false;
    if (first === second)
        return proof.length === 0 && equal(firstHash, secondHash);
    if (first === 0 || proof.length === 0)
        return false;
    let odd = first;
    while (odd % 2 === 0)
        odd /= 2;
    const isPow2 = odd === 1;
    const path = isPow2 ? [firstHash, ...proof] : proof.slice();
    let fn = first - 1, sn = second - 1;
    while (fn % 2 === 1) {
        fn = Math.floor(fn / 2);
        sn = Math.floor(sn / 2);
    }
    const head = path[0];
    if (!head)
        return false;
    let fr = head, sr = head;
    const node = (l, r) => sha256(concat(new Uint8Array([1]), l, r));
    for (const c of path.slice(1)) {
        if (sn === 0)
            return false;
        if (fn % 2 === 1 || fn === sn) {
            fr = await node(c, fr);
            sr = await node(c, sr);
            while (fn % 2 === 0 && fn !== 0) {
                fn = Math.floor(fn / 2);
                sn = Math.floor(sn / 2);
            }
        }
        else {
            sr = await node(sr, c);
        }
        fn = Math.floor(fn / 2);
        sn = Math.floor(sn / 2);
    }
    return sn === 0 && equal(fr, firstHash) && equal(sr, secondHash);
}
/// What this browser remembers of the log: the last checkpoint it verified.
/// A later visit must be consistent with it, whoever serves the page.
async function rememberedConsistency(cp, keys) {
    const key = `custos-dashboard/v1/${keys.origin}/${keys.log_key}`;
    const raw = localStorage.getItem(key);
    const save = () => localStorage.setItem(key, JSON.stringify({ size: cp.size, root: btoa(String.fromCharCode(...cp.root)) }));
    if (!raw) {
        save();
        return { ok: true, text: "first visit from this browser: checkpoint remembered" };
    }
    let seen;
    try {
        seen = JSON.parse(raw);
    }
    catch {
        save();
        return { ok: true, text: "checkpoint remembered" };
    }
    const seenRoot = b64(seen.root);
    if (seen.size > cp.size)
        return { ok: false, text: `this browser saw the log at size ${seen.size}; it is now shown at ${cp.size}: a rollback` };
    if (seen.size === cp.size) {
        if (!equal(seenRoot, cp.root))
            return { ok: false, text: `this browser saw another root at size ${cp.size}: a fork` };
        return { ok: true, text: `same checkpoint as this browser saw before` };
    }
    let proof = [];
    try {
        proof = (await getJson(`/api/v1/consistency?old=${seen.size}&size=${cp.size}`)).proof;
    }
    catch (e) {
        return { ok: false, text: `no consistency proof from size ${seen.size}: ${String(e)}` };
    }
    if (!(await checkConsistency(seen.size, cp.size, seenRoot, cp.root, proof.map(b64)))) {
        return { ok: false, text: `the checkpoint of size ${cp.size} is not consistent with the one of size ${seen.size} this browser saw: a split view` };
    }
    save();
    return { ok: true, text: `consistent with the checkpoint of size ${seen.size} this browser saw before (proof verified here)` };
}
// ---------- statements (docs/spec: canonical, big-endian) ----------
class Reader {
    b;
    at = 0;
    constructor(b) {
        this.b = b;
    }
    take(n) {
        if (this.at + n > this.b.length)
            throw new Error("truncated");
        const out = this.b.slice(this.at, this.at + n);
        this.at += n;
        return out;
    }
    u8() { return this.take(1)[0] ?? 0; }
    u16() { const t = this.take(2); return ((t[0] ?? 0) << 8) | (t[1] ?? 0); }
    u32() { const t = this.take(4); return new DataView(t.buffer).getUint32(0); }
    u64() { const t = this.take(8); return Number(new DataView(t.buffer).getBigUint64(0)); }
    name() { return new TextDecoder().decode(this.take(this.u8())); }
    bytes16() { return this.take(this.u16()); }
    done() { return this.at === this.b.length; }
}
const PUBLISHERS = {
    warrant_commitment: ["authority"], key_release: ["custodian"], interception: ["provider"],
    warrant_unsealing: ["custodian", "court"], embargo_extension: ["court"],
    day_key_erasure: ["custodian"], warrant_revocation: ["court"],
};
function decodeStatement(s) {
    const r = new Reader(s);
    if (r.u8() !== 1)
        throw new Error("unknown statement version");
    const tag = r.u8();
    let d;
    switch (tag) {
        case 3:
            d = { kind: "warrant_commitment", commitment: tohex(r.take(32)), court: r.name(), authority: r.name(), issued_at: r.u64(), embargo_until: r.u64(), targets: r.u16(), days: r.u16() };
            r.bytes16();
            break;
        case 4: {
            const warrant = tohex(r.take(32)), custodian = r.name(), conversation_days = r.u16();
            r.take(32); // request hash
            d = { kind: "key_release", warrant, custodian, conversation_days, released_at: r.u64() };
            break;
        }
        case 5:
            d = { kind: "interception", warrant: tohex(r.take(32)), provider: r.name(), conversations: r.u16(), first_day: r.u32(), last_day: r.u32(), started_at: r.u64() };
            r.bytes16();
            break;
        case 6:
            d = { kind: "warrant_unsealing", warrant: tohex(r.take(32)), salt: r.take(32), warrant_bytes: r.bytes16(), unsealed_at: r.u64() };
            break;
        case 7:
            d = { kind: "embargo_extension", warrant: tohex(r.take(32)), court: r.name(), embargo_until: r.u64(), issued_at: r.u64() };
            break;
        case 8:
            d = { kind: "day_key_erasure", day: r.u32(), custodian: r.name(), erased_at: r.u64() };
            break;
        case 10:
            d = { kind: "warrant_revocation", warrant: tohex(r.take(32)), court: r.name(), revoked_at: r.u64() };
            break;
        default: throw new Error(`statement type ${tag} is not lawful-access evidence`);
    }
    if (!r.done())
        throw new Error("trailing bytes");
    return d;
}
/// Checks one evidence entry: inclusion proof, encoding, author signature
/// and that the author is the manifest participant allowed to publish it.
async function checkEntry(e, cp, keys) {
    const bytes = b64(e.entry);
    if (!(await checkInclusion(e.index, cp.size, bytes, e.proof.map(b64), cp.root))) {
        return `entry ${e.index}: the inclusion proof does not verify`;
    }
    try {
        const r = new Reader(bytes);
        if (r.u8() !== 1)
            return `entry ${e.index}: unknown version`;
        const author = r.take(32);
        const statement = r.bytes16();
        const sig = r.take(64);
        if (!r.done())
            return `entry ${e.index}: trailing bytes`;
        const st = decodeStatement(statement);
        const p = keys.participants.find((x) => x.key === tohex(author));
        if (!p || !(PUBLISHERS[st.kind] ?? []).includes(p.role))
            return `entry ${e.index}: author may not publish it`;
        if (!(await ed25519(author, sig, concat(enc.encode("custos/v1/statement"), statement)))) {
            return `entry ${e.index}: the author's signature does not verify`;
        }
        // An unsealing must open the commitment it names: SHA-256(salt || warrant).
        const opens = st.kind !== "warrant_unsealing" || tohex(await sha256(concat(st.salt, st.warrant_bytes))) === st.warrant;
        return { st, author: p.name, opens };
    }
    catch (x) {
        return `entry ${e.index}: ${x.message}`;
    }
}
// ---------- figures recomputed from the entries ----------
const DAY = 86400;
const FIELDS = ["warrants", "targets", "days", "releases", "conversation_days_released",
    "interceptions", "unsealings", "repeated_unsealings", "embargo_extensions", "revocations", "day_key_erasures"];
function zero() {
    return { warrants: 0, targets: 0, days: 0, releases: 0, conversation_days_released: 0, interceptions: 0,
        unsealings: 0, repeated_unsealings: 0, embargo_extensions: 0, revocations: 0, day_key_erasures: 0 };
}
function month(t) { return new Date(t * 1000).toISOString().slice(0, 7); }
function date(t) { return new Date(t * 1000).toISOString().slice(0, 10); }
function when(t) { return new Date(t * 1000).toISOString().slice(0, 16).replace("T", " ") + " UTC"; }
/// Decodes a Warrant v1 (docs/spec/warrant.md) and checks the court's
/// signature with the court's manifest key.
async function checkWarrant(bytes, keys) {
    try {
        const r = new Reader(bytes);
        if (r.u8() !== 1)
            return "unknown warrant version";
        const id = tohex(r.take(16));
        const court = r.name(), authority = r.name();
        const legal_basis = new TextDecoder().decode(r.bytes16());
        const n = r.u8();
        const targets = [];
        for (let i = 0; i < n; i++)
            targets.push(tohex(r.take(16)));
        const first_day = r.u32(), last_day = r.u32();
        const issued_at = r.u64(), not_after = r.u64(), embargo_until = r.u64();
        r.take(32);
        const signed = bytes.slice(0, bytes.length - 64);
        const sig = r.take(64);
        if (!r.done())
            return "trailing bytes after the warrant";
        const key = keys.participants.find((p) => p.role === "court" && p.name === court);
        if (!key)
            return `${court} is not a court of the manifest`;
        if (!(await ed25519(unhex(key.key), sig, concat(enc.encode("custos/v1/warrant"), signed)))) {
            return "the court's signature on the warrant does not verify";
        }
        return { id, court, authority, legal_basis, targets, first_day, last_day, issued_at, not_after, embargo_until };
    }
    catch (x) {
        return `malformed warrant: ${x.message}`;
    }
}
async function recompute(ev, cp, keys, fig) {
    const r = { totals: zero(), by_court: new Map(), by_authority: new Map(), by_month: new Map(),
        rows: new Map(), custodians: new Map(), warrants: new Map(), errors: [] };
    for (const p of keys.participants)
        if (p.role === "custodian")
            r.custodians.set(p.name, { releases: 0, conversation_days_released: 0, erased: new Set() });
    const get = (m, k) => { let c = m.get(k); if (!c) {
        c = zero();
        m.set(k, c);
    } return c; };
    const count = (w, t, f) => {
        const m = month(t);
        f(r.totals);
        f(get(r.by_month, m));
        if (w) {
            f(get(r.by_court, w.court));
            f(get(r.by_authority, w.authority));
            f(get(r.rows, `${w.court}\u0000${w.authority}\u0000${m}`));
        }
    };
    const erased = new Set();
    const maxEmbargo = keys.max_embargo_days * DAY;
    const checked = await Promise.all(ev.entries.map((e) => checkEntry(e, cp, keys)));
    ev.entries.forEach((e, i) => {
        const c = checked[i];
        if (c === undefined || typeof c === "string") {
            r.errors.push(c ?? "missing");
            return;
        }
        const { st, author } = c;
        if (!c.opens)
            r.errors.push(`entry ${e.index}: the unsealing does not open its commitment`);
        switch (st.kind) {
            case "warrant_commitment": {
                if (author !== st.authority || r.warrants.has(st.commitment))
                    return;
                const w = { index: e.index, commitment: st.commitment, court: st.court, authority: st.authority,
                    issued_at: st.issued_at, embargo_until: st.embargo_until, targets: st.targets, days: st.days, extensions: 0,
                    unsealed_at: null, unsealing_index: null, revoked: false, releases: [], interceptions: [], overdue: false, due_at: 0,
                    unsealed: null, warrantBytes: null };
                if (!keys.participants.some((p) => p.role === "court" && p.name === st.court))
                    return;
                r.warrants.set(st.commitment, w);
                count(w, st.issued_at, (n) => { n.warrants++; n.targets += st.targets; n.days += st.days; });
                break;
            }
            case "key_release": {
                if (author !== st.custodian)
                    return;
                const cu = r.custodians.get(st.custodian);
                if (cu) {
                    cu.releases++;
                    cu.conversation_days_released += st.conversation_days;
                }
                const w = r.warrants.get(st.warrant);
                w?.releases.push({ custodian: st.custodian, conversation_days: st.conversation_days, at: st.released_at, index: e.index });
                count(w, st.released_at, (n) => { n.releases++; n.conversation_days_released += st.conversation_days; });
                break;
            }
            case "interception": {
                if (author !== st.provider)
                    return;
                const w = r.warrants.get(st.warrant);
                w?.interceptions.push({ provider: st.provider, conversations: st.conversations, first_day: st.first_day, last_day: st.last_day, index: e.index });
                count(w, st.started_at, (n) => { n.interceptions++; });
                break;
            }
            case "warrant_unsealing": {
                const w = r.warrants.get(st.warrant);
                // Counted only if the salt and warrant open the commitment.
                if (!w || !c.opens)
                    return;
                const repeat = w.unsealed_at !== null;
                if (!repeat) {
                    w.unsealed_at = st.unsealed_at;
                    w.unsealing_index = e.index;
                    w.warrantBytes = st.warrant_bytes;
                }
                count(w, st.unsealed_at, (n) => { if (repeat)
                    n.repeated_unsealings++;
                else
                    n.unsealings++; });
                break;
            }
            case "embargo_extension": {
                const w = r.warrants.get(st.warrant);
                if (!w || author !== st.court || w.court !== st.court || w.unsealed_at !== null)
                    return;
                if (st.issued_at >= w.embargo_until || st.embargo_until <= w.embargo_until || st.embargo_until - w.issued_at > maxEmbargo)
                    return;
                w.embargo_until = st.embargo_until;
                w.extensions++;
                count(w, st.issued_at, (n) => { n.embargo_extensions++; });
                break;
            }
            case "warrant_revocation": {
                const w = r.warrants.get(st.warrant);
                if (!w || author !== st.court || w.court !== st.court || w.revoked)
                    return;
                w.revoked = true;
                count(w, st.revoked_at, (n) => { n.revocations++; });
                break;
            }
            case "day_key_erasure": {
                if (author !== st.custodian)
                    return;
                const k = `${st.day}/${st.custodian}`;
                if (erased.has(k))
                    return;
                erased.add(k);
                r.custodians.get(st.custodian)?.erased.add(st.day);
                count(undefined, st.erased_at, (n) => { n.day_key_erasures++; });
                break;
            }
        }
    });
    for (const w of r.warrants.values()) {
        if (w.warrantBytes) {
            const u = await checkWarrant(w.warrantBytes, keys);
            w.unsealed = typeof u === "string" || (u.court === w.court && u.authority === w.authority) ? u
                : "the unsealed warrant names another court or authority than its commitment";
        }
        w.due_at = w.embargo_until + fig.unsealing_grace_secs;
        w.overdue = w.unsealed_at === null && fig.as_of > w.due_at;
    }
    return r;
}
function el(tag, attrs = {}, ...kids) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs))
        e.setAttribute(k, v);
    for (const k of kids)
        e.append(k);
    return e;
}
let mismatches = [];
/// A figure as the server reports it, marked against the log's entries.
function fig(id, served, proven) {
    const mark = proven === null ? "unchecked" : proven === served ? "yes" : "no";
    if (mark === "no")
        mismatches.push(`${id}: the server says ${served}, the log's entries show ${proven}`);
    const label = mark === "yes" ? "\u2713 verified" : mark === "no" ? `\u2717 the log shows ${proven}` : "server's word";
    return el("span", { class: `fig ${mark}`, "data-figure": id, "data-verified": mark }, String(served), " ", el("small", { class: "mark" }, label));
}
function table(caption, head, rows, cls = "") {
    const t = el("table", cls ? { class: cls } : {});
    t.append(el("caption", {}, caption));
    t.append(el("thead", {}, el("tr", {}, ...head.map((h) => el("th", { scope: "col" }, h)))));
    const body = el("tbody");
    for (const r of rows)
        body.append(el("tr", {}, ...r.map((c, i) => i === 0 ? el("th", { scope: "row" }, c) : el("td", {}, c))));
    t.append(body);
    return t;
}
function section(id, title, ...kids) {
    return el("section", { id, "aria-labelledby": `${id}-h` }, el("h2", { id: `${id}-h` }, title), ...kids);
}
function countsRow(prefix, label, c, p, fields) {
    return [label, ...fields.map((f) => fig(`${prefix}.${f}`, c[f], p ? p[f] : 0))];
}
const STATE_COLOURS = { sealed: "#1d4ed8", unsealed: "#15803d", overdue: "#b91c1c" };
function chart(ws) {
    const months = Array.from(new Set(ws.map((w) => month(w.issued_at)))).sort();
    const ns = "http://www.w3.org/2000/svg";
    const bar = 48, gap = 16, h = 160, top = 10;
    const max = Math.max(1, ...months.map((m) => ws.filter((w) => month(w.issued_at) === m).length));
    const width = Math.max(600, months.length * (bar + gap) + 40);
    const svg = document.createElementNS(ns, "svg");
    svg.setAttribute("viewBox", `0 0 ${width} ${h + 40}`);
    svg.setAttribute("role", "img");
    svg.setAttribute("aria-labelledby", "chart-title");
    const title = document.createElementNS(ns, "title");
    title.id = "chart-title";
    title.textContent = "Warrants by month of issue: " + months.map((m) => {
        const of = ws.filter((w) => month(w.issued_at) === m);
        return `${m}: ${of.length} (${of.filter((w) => w.unsealed_at !== null).length} unsealed, ${of.filter((w) => w.overdue).length} overdue, ${of.filter((w) => w.extensions > 0).length} extended)`;
    }).join("; ");
    svg.append(title);
    months.forEach((m, i) => {
        const of = ws.filter((w) => month(w.issued_at) === m);
        const parts = [
            ["unsealed", of.filter((w) => w.unsealed_at !== null).length],
            ["overdue", of.filter((w) => w.overdue).length],
            ["sealed", of.filter((w) => w.unsealed_at === null && !w.overdue).length],
        ];
        let y = top + h;
        const x = 30 + i * (bar + gap);
        for (const [state, n] of parts) {
            if (n === 0)
                continue;
            const hh = (n / max) * h;
            y -= hh;
            const rect = document.createElementNS(ns, "rect");
            rect.setAttribute("x", String(x));
            rect.setAttribute("y", String(y));
            rect.setAttribute("width", String(bar));
            rect.setAttribute("height", String(hh));
            rect.setAttribute("fill", STATE_COLOURS[state]);
            rect.setAttribute("class", `bar ${state}`);
            svg.append(rect);
        }
        const ext = of.filter((w) => w.extensions > 0).length;
        const label = document.createElementNS(ns, "text");
        label.setAttribute("x", String(x + bar / 2));
        label.setAttribute("y", String(top + h + 16));
        label.setAttribute("text-anchor", "middle");
        label.textContent = m;
        svg.append(label);
        const n = document.createElementNS(ns, "text");
        n.setAttribute("x", String(x + bar / 2));
        n.setAttribute("y", String(top + h + 32));
        n.setAttribute("text-anchor", "middle");
        n.textContent = `${of.length}${ext ? ` (${ext} ext.)` : ""}`;
        svg.append(n);
    });
    return svg;
}
/// The monthly chart with a selector: all warrants, or one court's, or one
/// authority's.
function chartFigure(ws) {
    const select = el("select", { id: "chart-filter" }, el("option", { value: "" }, "all courts and authorities"));
    for (const c of Array.from(new Set(ws.map((w) => w.court))).sort())
        select.append(el("option", { value: `court\u0000${c}` }, `court ${c}`));
    for (const a of Array.from(new Set(ws.map((w) => w.authority))).sort())
        select.append(el("option", { value: `authority\u0000${a}` }, `authority ${a}`));
    const holder = el("div", { class: "chart" }, chart(ws));
    select.addEventListener("change", () => {
        const [by, name] = select.value.split("\u0000");
        holder.replaceChildren(chart(ws.filter((w) => !by || (by === "court" ? w.court : w.authority) === name)));
    });
    return el("figure", {}, el("label", { for: "chart-filter" }, "Show: "), select, holder, el("figcaption", {}, "Warrants by month of issue: ", el("span", { class: "key unsealed" }, "unsealed"), " ", el("span", { class: "key overdue" }, "overdue"), " ", el("span", { class: "key sealed" }, "sealed"), "; (ext.) counts extended embargoes."));
}
function stateOf(w) {
    if (w.unsealed_at !== null)
        return "unsealed";
    return w.overdue ? "overdue" : "sealed";
}
function detail(w) {
    const d = el("section", { id: "detail", "aria-labelledby": "detail-h", tabindex: "-1" }, el("h2", { id: "detail-h" }, `Warrant ${w.commitment.slice(0, 16)}\u2026`), el("p", {}, el("a", { href: "#warrants" }, "Back to the list")));
    const dl = el("dl");
    const item = (k, v) => { dl.append(el("dt", {}, k), el("dd", {}, v)); };
    item("Commitment", w.commitment);
    item("Log entry", String(w.index));
    item("Court", w.court);
    item("Authority", w.authority);
    item("Issued", when(w.issued_at));
    item("Embargo until", `${when(w.embargo_until)}${w.extensions ? ` (extended ${w.extensions}\u00d7)` : ""}`);
    item("Target conversations", String(w.targets));
    item("Days covered", String(w.days));
    item("State", stateOf(w) + (w.revoked ? ", revoked" : ""));
    if (w.unsealed_at !== null)
        item("Unsealed", `${when(w.unsealed_at)} (entry ${w.unsealing_index})`);
    if (w.overdue)
        item("Unsealing due", `${when(w.due_at)}: overdue`);
    d.append(dl);
    if (typeof w.unsealed === "string") {
        d.append(el("p", { class: "banner red", role: "alert" }, `The unsealed warrant does not check: ${w.unsealed}`));
    }
    else if (w.unsealed) {
        const u = w.unsealed;
        const wl = el("dl", { id: "unsealed-warrant" });
        const row = (k, v) => { wl.append(el("dt", {}, k), el("dd", {}, v)); };
        row("Legal basis", u.legal_basis);
        row("Target conversations", u.targets.join(", "));
        row("Days", `${date(u.first_day * DAY)} to ${date(u.last_day * DAY)}`);
        row("Valid until", when(u.not_after));
        row("Warrant id", u.id);
        d.append(el("h3", {}, "The unsealed warrant"), el("p", { class: "note" }, "Published in the log when its embargo ended; it opens the commitment and the court's signature verified in this browser."), wl);
    }
    d.append(table("Key releases", ["Custodian", "Conversation-days", "When", "Entry"], w.releases.map((r) => [r.custodian, String(r.conversation_days), when(r.at), String(r.index)])));
    d.append(table("Interceptions", ["Provider", "Conversations", "Days", "Entry"], w.interceptions.map((i) => [i.provider, String(i.conversations), `${date(i.first_day * DAY)} to ${date(i.last_day * DAY)}`, String(i.index)])));
    d.append(el("p", { class: "note" }, "Every line above comes from a log entry whose inclusion proof and author signature this page verified."));
    return d;
}
async function getJson(path) {
    const r = await fetch(path, { cache: "no-store" });
    if (!r.ok)
        throw new Error(`${path}: ${r.status}`);
    return (await r.json());
}
async function main() {
    const started = performance.now();
    const main = document.getElementById("main");
    if (!main)
        return;
    // One poll's status, figures and evidence together, so that they agree.
    const [all, keys] = await Promise.all([
        getJson("/api/v1/all"),
        getJson("/api/v1/manifest"),
    ]);
    const { status, figures, evidence, moderation } = all;
    shownSize = status.tree_size;
    mismatches = [];
    const out = [];
    const alerts = el("div", { id: "alerts" });
    out.push(alerts);
    if (status.inconsistency) {
        alerts.append(el("p", { id: "inconsistency", class: "banner red", role: "alert" }, el("strong", {}, "The log is inconsistent. "), status.inconsistency, " The dashboard stopped following it; the figures below are as of the last consistent checkpoint."));
    }
    const note = status.checkpoint ? await checkNote(status.checkpoint, keys) : null;
    const cp = note?.checkpoint ?? null;
    const cpOk = !!note && note.logSigned && note.quorum && note.error === null && !!cp && cp.size === status.tree_size;
    if (note && !cpOk) {
        alerts.append(el("p", { id: "checkpoint-bad", class: "banner red", role: "alert" }, el("strong", {}, "The checkpoint this server shows does not verify: "), note.error ?? "size or root differ"));
    }
    const seen = cpOk && cp ? await rememberedConsistency(cp, keys) : null;
    if (seen && !seen.ok) {
        alerts.append(el("p", { id: "fork", class: "banner red", role: "alert" }, el("strong", {}, "The log is inconsistent with what this browser saw before: "), seen.text));
    }
    // The evidence must be against the same checkpoint (or one the page also verifies).
    let rec = null;
    if (cpOk && cp && evidence.checkpoint === status.checkpoint) {
        rec = await recompute(evidence, cp, keys, figures);
    }
    const health = section("health", "Log health", el("dl", {}, el("dt", {}, "Log"), el("dd", {}, status.origin), el("dt", {}, "Entries"), el("dd", {}, el("span", { "data-figure": "tree_size", "data-verified": cpOk ? "yes" : "no", class: `fig ${cpOk ? "yes" : "no"}` }, String(status.tree_size), " ", el("small", { class: "mark" }, cpOk ? "\u2713 signed by the log and cosigned" : "\u2717 not verified"))), el("dt", {}, "Root hash"), el("dd", { class: "hash" }, status.root_hash), el("dt", {}, "Witness cosignatures"), el("dd", {}, `${note ? note.witnesses.size : 0} verified, ${status.witness_quorum} required`), el("dt", {}, "Manifest SHA-256"), el("dd", { class: "hash" }, keys.manifest_hash), el("dt", {}, "This browser's memory"), el("dd", { id: "remembered", class: seen && !seen.ok ? "bad" : "" }, seen ? seen.text : "nothing verified"), el("dt", {}, "Inconsistency seen"), el("dd", { id: "consistency", class: status.inconsistency ? "bad" : "good" }, status.inconsistency ? "YES" : "none")), table("Witnesses", ["Witness", "On the latest checkpoint", "Last cosigned"], status.witnesses.map((w) => {
        const t = note?.witnesses.get(w.name);
        return [w.name, t !== undefined ? "\u2713 verified here" : "no", w.last_cosigned ? when(w.last_cosigned) : "never"];
    })));
    if (status.warning)
        health.append(el("p", { class: "banner amber", role: "status" }, status.warning));
    out.push(health);
    const ws = rec ? Array.from(rec.warrants.values()) : [];
    const L = ["warrants", "targets", "days", "unsealings", "embargo_extensions", "revocations"];
    const p = (m, k) => (rec ? (m?.get(k) ?? zero()) : null);
    const warrants = section("warrants", "Warrants", el("p", {}, "Warrants logged: ", fig("totals.warrants", figures.totals.warrants, rec ? rec.totals.warrants : null), ", unsealed: ", fig("totals.unsealings", figures.totals.unsealings, rec ? rec.totals.unsealings : null), ", overdue: ", fig("flags.overdue_unsealings", figures.flags.overdue_unsealings.length, rec ? ws.filter((w) => w.overdue).length : null), ", extended: ", fig("totals.embargo_extensions", figures.totals.embargo_extensions, rec ? rec.totals.embargo_extensions : null), ", revoked: ", fig("totals.revocations", figures.totals.revocations, rec ? rec.totals.revocations : null), "."), chartFigure(ws), table("By court", ["Court", ...L], Object.entries(figures.by_court).map(([k, c]) => countsRow(`by_court.${k}`, k, c, p(rec?.by_court, k), L))), table("By authority", ["Authority", ...L], Object.entries(figures.by_authority).map(([k, c]) => countsRow(`by_authority.${k}`, k, c, p(rec?.by_authority, k), L))), table("By month", ["Month", ...L], Object.entries(figures.by_month).map(([k, c]) => countsRow(`by_month.${k}`, k, c, p(rec?.by_month, k), L))), table("By court, authority and month", ["Court / authority / month", ...L], figures.rows.map((r) => countsRow(`rows.${r.court}/${r.authority}/${r.month}`, `${r.court} / ${r.authority} / ${r.month}`, r.counts, p(rec?.rows, `${r.court}\u0000${r.authority}\u0000${r.month}`), L))), table("Every warrant in the log", ["Entry", "Court", "Authority", "Issued", "Embargo until", "State", "Details"], ws.map((w) => [String(w.index), w.court, w.authority, date(w.issued_at), date(w.embargo_until),
        el("span", { class: `state ${stateOf(w)}`, "data-warrant": w.commitment, "data-state": stateOf(w) }, stateOf(w) + (w.extensions ? " (extended)" : "") + (w.revoked ? " (revoked)" : "")),
        el("a", { href: `#warrant-${w.commitment}` }, "details")]), "warrant-list"));
    // Rows of overdue warrants are highlighted.
    warrants.querySelectorAll("span.state.overdue").forEach((s) => s.closest("tr")?.classList.add("overdue"));
    for (const o of figures.flags.overdue_unsealings) {
        warrants.append(el("p", { class: "banner amber overdue-flag", "data-warrant": o.warrant }, `Overdue unsealing: warrant ${o.warrant.slice(0, 16)}\u2026 of ${o.court} for ${o.authority} was due ${when(o.due_at)}.`));
    }
    out.push(warrants);
    const C = ["targets", "days", "releases", "conversation_days_released"];
    out.push(section("coverage", "Conversations, days and releases", el("p", {}, "Target conversations: ", fig("totals.targets", figures.totals.targets, rec ? rec.totals.targets : null), "; days covered: ", fig("totals.days", figures.totals.days, rec ? rec.totals.days : null), "; key releases: ", fig("totals.releases", figures.totals.releases, rec ? rec.totals.releases : null), "; conversation-days released: ", fig("totals.conversation_days_released", figures.totals.conversation_days_released, rec ? rec.totals.conversation_days_released : null), "."), table("Releases per custodian", ["Custodian", "Releases", "Conversation-days"], Object.entries(figures.custodians).map(([k, c]) => {
        const q = rec?.custodians.get(k);
        return [k, fig(`custodians.${k}.releases`, c.releases, rec ? (q?.releases ?? 0) : null),
            fig(`custodians.${k}.conversation_days_released`, c.conversation_days_released, rec ? (q?.conversation_days_released ?? 0) : null)];
    })), table("Totals", ["", ...C], [countsRow("totals", "all warrants", figures.totals, rec ? rec.totals : null, C)].map((r) => r.map((x) => x instanceof HTMLElement ? x.cloneNode(true) : x)))));
    out.push(section("interceptions", "Interceptions", el("p", {}, "The provider logged ", fig("totals.interceptions", figures.totals.interceptions, rec ? rec.totals.interceptions : null), " interceptions under warrants.")));
    const missing = new Map(figures.flags.missing_erasures.flatMap((m) => m.not_erased_by.map((c) => [c, m])));
    const keysSec = section("daykeys", "Day keys generated and erased", el("p", {}, "Share erasures logged: ", fig("totals.day_key_erasures", figures.totals.day_key_erasures, rec ? rec.totals.day_key_erasures : null), "."), table("Per custodian", ["Custodian", "Day keys generated", "Shares erased", "Late to erase"], Object.entries(figures.custodians).map(([k, c]) => {
        const late = figures.flags.missing_erasures.filter((m) => m.not_erased_by.includes(k));
        return [k, fig(`custodians.${k}.day_keys_generated`, c.day_keys_generated, null),
            fig(`custodians.${k}.day_keys_erased`, c.day_keys_erased, rec ? (rec.custodians.get(k)?.erased.size ?? 0) : null),
            late.length ? el("span", { class: "late", "data-custodian": k }, `LATE: ${late.map((m) => m.date).join(", ")}`) : "no"];
    })));
    keysSec.querySelectorAll("span.late").forEach((s) => s.closest("tr")?.classList.add("overdue"));
    if (missing.size)
        keysSec.append(el("p", { class: "banner amber", role: "status" }, `${missing.size} custodian(s) late to erase a day's share.`));
    out.push(keysSec);
    const mod = section("moderation", "Moderation");
    if (moderation.figures) {
        const m = moderation.figures;
        mod.append(el("p", { class: "note" }, "The provider's own figures: reports are not in the log, so this page cannot check them."), table("Reports", ["", "Count"], [["received", fig("moderation.reports_received", m.reports_received, null)],
            ["verified", fig("moderation.reports_verified", m.reports_verified, null)],
            ["refused", fig("moderation.reports_refused", m.reports_refused, null)],
            ["open", fig("moderation.reports_open", m.reports_open, null)]]), table("Actions taken", ["Action", "Count"], Object.entries(m.actions).map(([k, n]) => [k, fig(`moderation.actions.${k}`, n, null)])));
    }
    else {
        mod.append(el("p", {}, moderation.configured ? `The provider's figures are unavailable: ${moderation.error ?? ""}` : "No provider configured."));
    }
    out.push(mod);
    if (rec && rec.errors.length) {
        alerts.append(el("p", { id: "evidence-bad", class: "banner red", role: "alert" }, el("strong", {}, "Entries the server gave do not verify: "), rec.errors.join("; ")));
    }
    if (mismatches.length) {
        alerts.append(el("p", { id: "misreport", class: "banner red", role: "alert" }, el("strong", {}, "This dashboard server misreports figures that the log contradicts: "), mismatches.join("; ")));
    }
    const verdict = el("p", { id: "verdict", class: cpOk && rec && !mismatches.length && !rec.errors.length ? "good" : "bad" }, cpOk && rec ? `Checked in this browser: the checkpoint of ${cp?.size} entries (log signature and ${note?.witnesses.size} witness cosignatures) and ${evidence.entries.length} lawful-access entries (inclusion proofs and author signatures). ` +
        "Figures marked \u2713 match those entries; figures marked \u201cserver's word\u201d are not in the log. Entries the server leaves out cannot be seen here: run custos audit for a full replay."
        : "The page could not verify this server's checkpoint: no figure below is verified.");
    alerts.prepend(verdict);
    const hash = location.hash.startsWith("#warrant-") ? location.hash.slice(9) : null;
    const w = hash ? rec?.warrants.get(hash) : undefined;
    main.replaceChildren(...(w ? [alerts, detail(w)] : out));
    if (w)
        document.getElementById("detail")?.focus();
    // From navigation start: fetching the page, its script and the API,
    // verifying and rendering.
    document.body.dataset.loadMs = String(Math.round(performance.now()));
    document.body.dataset.verifyMs = String(Math.round(performance.now() - started));
    document.body.dataset.ready = "1";
}
window.addEventListener("hashchange", () => { void main(); });
// The dashboard keeps following the log: every 30 s the page asks whether
// there is a newer checkpoint and offers to verify it (it does not re-render
// on its own, so the reader's place and focus stay where they are).
let shownSize = null;
setInterval(() => {
    void getJson("/api/v1/status").then((s) => {
        if (shownSize === null || (s.tree_size === shownSize && !s.inconsistency))
            return;
        if (document.getElementById("newer"))
            return;
        const button = el("button", { type: "button" }, "Verify and show it");
        button.addEventListener("click", () => { void main(); });
        document.getElementById("alerts")?.prepend(el("p", { id: "newer", class: "banner amber", role: "status" }, s.inconsistency ? "The dashboard now reports an inconsistency. " : `The log has grown to ${s.tree_size} entries. `, button));
    }).catch(() => undefined);
}, 30_000);
void main().catch((e) => {
    const m = document.getElementById("main");
    m?.replaceChildren(el("p", { class: "banner red", role: "alert" }, `The dashboard could not load: ${String(e)}`));
    document.body.dataset.ready = "1";
});
