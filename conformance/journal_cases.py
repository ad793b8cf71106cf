"""The journal vectors: bytes built by an encoder of their own, outcomes stated by hand.

Nothing here imports :mod:`tradestore`. Every journal is built from the layout of
``docs/FORMAT.md`` ("The journal format") by :func:`frame` below, with its own table-driven
CRC-32 (checked against the catalogue's check value when this module is imported), and every
expectation is written out in the case: which frames are good, where they end, which frame is
refused, which trades a checkpoint and a journal add up to. The test runs the library on these
vectors (``tests/test_conformance.py``); it never produced them.

Each scan vector carries its ``layout``: the segments it was built from (a frame, a cut frame,
a tail), with their offsets, so a person can check the expectation against the bytes by hand.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

FORMAT = "tradestore-conformance-1"
MAX_PAYLOAD = 16 * 1024 * 1024


# --------------------------------------------------------------------------- CRC-32, by the book


def _crc_table() -> list[int]:
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0xEDB88320 if crc & 1 else crc >> 1
        table.append(crc)
    return table


_TABLE = _crc_table()


def crc32(data: bytes) -> int:
    """CRC-32/ISO-HDLC: reflected polynomial 0xEDB88320, init and final XOR 0xFFFFFFFF."""
    crc = 0xFFFFFFFF
    for byte in data:
        crc = (crc >> 8) ^ _TABLE[(crc ^ byte) & 0xFF]
    return crc ^ 0xFFFFFFFF


assert crc32(b"123456789") == 0xCBF43926, "the CRC-32 of this module is not CRC-32/ISO-HDLC"

CRC_CASES = [  # (input, CRC-32): the catalogue's check value, and values a reader meets
    (b"123456789", 0xCBF43926),
    (b"", 0x00000000),
    (bytes(4), 0x2144DF1C),
    (b"\x00\x00\x00\x21", crc32(b"\x00\x00\x00\x21")),
]


# --------------------------------------------------------------------------- frames, by the book


def text(payload: Any) -> str:
    """The payload as the library writes it: compact JSON, non-ASCII escaped, keys as given."""
    return json.dumps(payload, separators=(",", ":"), allow_nan=False)


def frame_of(body: bytes, *, length: int | None = None) -> bytes:
    """A frame around ``body``: big-endian length, CRC-32 of the 4 length bytes, CRC-32 of body."""
    n = (len(body) if length is None else length).to_bytes(4, "big")
    return n + crc32(n).to_bytes(4, "big") + crc32(body).to_bytes(4, "big") + body


def frame(payload: Any) -> bytes:
    return frame_of(text(payload).encode("utf-8"))


def flip(data: bytes, offset: int, bit: int = 0) -> bytes:
    return data[:offset] + bytes([data[offset] ^ (1 << bit)]) + data[offset + 1:]


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


J1 = "0123456789abcdef0123456789abcdef"  # journal ids (any 32 lowercase hex digits)
J2 = "fedcba9876543210fedcba9876543210"
T0 = "2026-01-05T12:00:00+00:00"


def header(checkpoint: bytes | str, *, id: str = J1, folds: str | None = None, folded: int = 0,
           **extra: Any) -> dict:
    sha = checkpoint if isinstance(checkpoint, str) else sha256(checkpoint)
    return {"journal": 1, "id": id, "checkpoint": sha, "folds": folds, "folded": folded, **extra}


def record(seq: Any, next_id: Any, trades: list[dict], **extra: Any) -> dict:
    return {"seq": seq, "next_id": next_id, "trades": trades, **extra}


def trade(number: int, symbol: str, *, stop: float = 95.0, closed_at: float | None = None) -> dict:
    """A whole trade record as the library stores it: LONG 1 unit at 100, target 110."""
    closed = closed_at is not None
    pnl = round(closed_at - 100.0, 2) if closed else None
    return {
        "id": f"T{number:03d}", "symbol": symbol, "direction": "LONG", "entry_price": 100.0,
        "stop_price": stop, "original_stop": 95.0, "target_price": 110.0, "size": 1.0,
        "original_size": 1.0, "entry_time": T0,
        "exit_price": closed_at, "exit_time": T0 if closed else None, "exit_reason": "TP hit" if closed else None,
        "pnl_usd": pnl, "pnl_pct": pnl if closed else None, "r_multiple": round(pnl / 5.0, 2) if closed else None,
        "net_pnl_usd": pnl, "net_r_multiple": round(pnl / 5.0, 4) if closed else None,
        "status": "CLOSED" if closed else "OPEN", "setup_type": "", "grade": "", "notes": "",
        "partial_exits": [], "lessons": "",
    }


def document(trades: list[dict], next_id: int, *, schema: int | None = 3, marker: Any = ...,
             indent: int | None = None) -> bytes:
    """A log document: compact like the library's unless ``indent`` (the seed's json.dump)."""
    doc: dict[str, Any] = {} if schema is None else {"schema": schema}
    doc["next_id"] = next_id
    if marker is not ...:
        doc["journal"] = marker
    doc["trades"] = trades
    if indent is not None:
        return json.dumps(doc, indent=indent).encode()
    return text(doc).encode()


def marker(folds: str | None = None, folded: int = 0) -> dict:
    return {"folds": folds, "folded": folded}


# --------------------------------------------------------------------------- vectors


@dataclass
class Vector:
    name: str
    description: str
    covers: list[str]
    body: dict[str, Any]
    expect: dict[str, Any]
    kind: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {"format": FORMAT, "kind": self.kind, "name": self.name, "description": self.description,
                "covers": self.covers, **self.body, "expect": self.expect}


@dataclass
class Layout:
    """A journal built segment by segment, each with its offset and what it is."""

    segments: list[tuple[str, bytes]] = field(default_factory=list)

    def add(self, what: str, data: bytes) -> int:
        """Append a segment; return its offset."""
        offset = self.size
        self.segments.append((what, data))
        return offset

    @property
    def size(self) -> int:
        return sum(len(data) for _, data in self.segments)

    def bytes(self) -> bytes:
        return b"".join(data for _, data in self.segments)

    def describe(self) -> list[dict[str, Any]]:
        out, offset = [], 0
        for what, data in self.segments:
            out.append({"offset": offset, "length": len(data), "what": what})
            offset += len(data)
        return out


CHECKPOINT = document([trade(1, "BTC")], 2, marker=marker())
HEADER = header(CHECKPOINT)
RECORDS = [
    record(1, 3, [trade(2, "ETH")]),
    record(2, 3, [trade(1, "BTC", stop=101.0)]),
    record(3, 4, [trade(1, "BTC", stop=101.0, closed_at=110.0), trade(3, "SOL")]),
]


def good_journal(records: list[dict] = RECORDS) -> Layout:
    layout = Layout()
    layout.add("frame 0: the header", frame(HEADER))
    for r in records:
        layout.add(f"frame {r['seq']}: record {r['seq']}", frame(r))
    return layout


def scan_vector(name: str, description: str, covers: list[str], layout: Layout, expect: dict) -> Vector:
    return Vector(f"scan/{name}", description, ["journal:scan", *covers],
                  {"journal_hex": layout.bytes().hex(), "layout": layout.describe()}, expect, "journal-scan")


def ok(frames: int, end: int) -> dict:
    return {"outcome": "ok", "frames": frames, "end": end}


def corrupt_frame(offset: int) -> dict:
    return {"outcome": "corrupt", "stage": "frame", "offset": offset}


def corrupt_payload(stage: str, index: int) -> dict:
    """A frame whose checksums pass but whose payload breaks the header or record rule."""
    return {"outcome": "corrupt", "stage": stage, "frame": index}


def frame_vectors() -> list[Vector]:
    cases = [
        ("frame/record-empty-trades", "the smallest record: the 33-byte payload of FORMAT.md's example",
         record(1, 2, [])),
        ("frame/header", "a header naming a checkpoint, as a conversion writes it (no identity)",
         header(CHECKPOINT)),
        ("frame/header-with-identity", "a header as a checkpoint writes it, with the identity hint",
         header(CHECKPOINT, id=J2, folds=J1, folded=3, identity=[2049, 131077, 612, 1767614400123456789])),
        ("frame/record-one-trade", "a record holding one whole trade record",
         record(1, 3, [trade(2, "ETH")])),
        ("frame/record-non-ascii", "non-ASCII text is escaped: \\u00e9, and a surrogate pair beyond U+FFFF",
         record(7, 3, [{**trade(2, "ETH"), "notes": "caf\u00e9 \U0001F680"}])),
    ]
    vectors = []
    for name, description, payload in cases:
        body = text(payload).encode()
        framed = frame_of(body)
        vectors.append(Vector(name, description, ["journal:frame"],
                              {"payload": payload, "payload_text": text(payload)},
                              {"frame_hex": framed.hex(), "length": len(body),
                               "length_crc32": f"{crc32(len(body).to_bytes(4, 'big')):08x}",
                               "payload_crc32": f"{crc32(body):08x}"}, "journal-frame"))
    vectors.append(Vector("frame/crc32-check-values", "CRC-32/ISO-HDLC on the catalogue's check input and "
                          "values a reader meets (4 zero bytes: a zero-filled frame header never passes)",
                          ["journal:crc32"], {"inputs_hex": [data.hex() for data, _ in CRC_CASES]},
                          {"crc32": [f"{value:08x}" for _, value in CRC_CASES]}, "journal-crc"))
    return vectors


def scan_vectors() -> list[Vector]:
    v: list[Vector] = []
    full = good_journal()
    offsets = [row["offset"] for row in full.describe()]  # of frames 0..3
    last = offsets[3]
    last_frame = frame(RECORDS[2])

    v.append(scan_vector("empty", "an empty journal has no frame", [], Layout(), ok(0, 0)))
    layout = good_journal([])
    v.append(scan_vector("header-only", "a journal just started: the header and no record", [],
                         layout, ok(1, layout.size)))
    v.append(scan_vector("header-and-records", "a header and three records, all good", [], full,
                         ok(4, full.size)))

    def cut(keep: int, what: str, name: str, description: str) -> None:
        layout = good_journal(RECORDS[:2])
        layout.add(f"frame 3 cut after {keep} of its {len(last_frame)} bytes ({what})", last_frame[:keep])
        v.append(scan_vector(name, description, ["torn"], layout, ok(3, last)))

    for keep in (1, 4, 8, 11):
        cut(keep, "inside its 12-byte frame header", f"torn/cut-in-frame-header-{keep}",
            f"the last frame cut after {keep} bytes of its frame header: fewer than 12 bytes left, torn")
    cut(12, "its frame header whole, no payload", "torn/cut-after-frame-header",
        "the last frame's frame header whole, its payload missing: the frame ends past the end, torn")
    for keep, what in ((13, "1 byte of payload"), (12 + (len(last_frame) - 12) // 2, "half its payload"),
                       (len(last_frame) - 1, "all but the last byte")):
        cut(keep, what, f"torn/cut-in-payload-{keep - 12}",
            f"the last frame cut inside its payload ({what}): the frame ends past the end, torn")

    layout = Layout()
    layout.add("frame 0 cut after 20 bytes", frame(HEADER)[:20])
    v.append(scan_vector("torn/header", "only a cut header: no good frame at all (torn)", ["torn"], layout,
                         ok(0, 0)))

    for zeros in (5, 12, 4096):
        layout = good_journal()
        layout.add(f"{zeros} zero bytes", bytes(zeros))
        v.append(scan_vector(f"torn/zero-tail-{zeros}", f"{zeros} zero bytes after the last good frame: "
                             "an unwritten tail (the length check of 4 zero bytes fails), torn",
                             ["torn", "zero-tail"], layout, ok(4, full.size)))
    layout = good_journal(RECORDS[:2])
    layout.add("frame 3 with its payload zero-filled to the end", last_frame[:12] + bytes(len(last_frame) - 12))
    v.append(scan_vector("torn/zero-filled-payload", "the last frame's header written, its payload still "
                         "zeros: its checksum fails and it ends at the end of the file, torn",
                         ["torn", "zero-tail"], layout, ok(3, last)))
    layout = good_journal()
    layout.add("11 bytes 0xff", b"\xff" * 11)
    v.append(scan_vector("torn/short-garbage-tail", "11 non-zero bytes after the last good frame: fewer "
                         "than a frame header, torn", ["torn"], layout, ok(4, full.size)))
    layout = good_journal()
    layout.add("40 bytes 0xab", b"\xab" * 40)  # not 0xff: the CRC-32 of 4 bytes 0xff is ffffffff
    v.append(scan_vector("torn/garbage-tail", "40 non-zero bytes after the last good frame whose length "
                         "check fails, and no good frame after them: torn", ["torn"], layout, ok(4, full.size)))
    layout = good_journal()
    layout.add("12 bytes 0xff: length ffffffff, whose check ffffffff passes", b"\xff" * 12)
    v.append(scan_vector("torn/ff-tail", "12 bytes 0xff after the last good frame: the CRC-32 of ff ff ff ff "
                         "is ffffffff, so the length check passes, but the length 4294967295 is out of range "
                         "and no good frame follows: torn", ["torn", "length"], layout, ok(4, full.size)))
    layout = good_journal(RECORDS[:2])
    layout.add("frame 3 with its first 16 bytes zero (out-of-order sectors)", bytes(16) + last_frame[16:])
    v.append(scan_vector("torn/zeros-then-data", "the end of the last frame written but not its start "
                         "(sectors persisted out of order by a power cut): no good frame follows, torn",
                         ["torn", "zero-tail"], layout, ok(3, last)))
    layout = Layout()
    for i, (what, data) in enumerate(full.segments):
        if i == 2:
            data, what = bytes(len(data)), f"{what}, every byte zero"
        layout.add(what, data)
    v.append(scan_vector("corrupt/zeros-then-a-good-frame", "record 2 all zero bytes, record 3 "
                         "intact after it: a good frame follows the bad one, corrupt", ["corrupt", "zero-tail"],
                         layout, corrupt_frame(offsets[2])))

    def damaged(name: str, description: str, covers: list[str], index: int, byte: int, expect: dict) -> None:
        layout = Layout()
        for i, (what, data) in enumerate(full.segments):
            if i == index:
                data, what = flip(data, byte), f"{what}, bit 0 of its byte {byte} flipped"
            layout.add(what, data)
        v.append(scan_vector(name, description, covers, layout, expect))

    payload_byte = 12 + 5  # inside the payload
    damaged("corrupt/flip-in-middle-payload", "one bit flipped in record 2's payload, a record follows: corrupt",
            ["corrupt", "flip"], 2, payload_byte, corrupt_frame(offsets[2]))
    damaged("corrupt/flip-in-middle-payload-crc", "one bit flipped in record 2's payload checksum, a record "
            "follows: corrupt", ["corrupt", "flip"], 2, 9, corrupt_frame(offsets[2]))
    damaged("corrupt/flip-in-header-payload", "one bit flipped in the header's payload, records follow: corrupt",
            ["corrupt", "flip"], 0, payload_byte, corrupt_frame(0))
    damaged("torn/flip-in-last-payload", "one bit flipped in the last record's payload: the same as a torn "
            "write (that record is dropped, FORMAT.md, Hazards)", ["torn", "flip"], 3, payload_byte, ok(3, last))
    damaged("torn/flip-in-last-payload-crc", "one bit flipped in the last record's payload checksum: torn, "
            "that record dropped", ["torn", "flip"], 3, 10, ok(3, last))
    damaged("torn/flip-in-last-length", "one bit flipped in the last record's length field: its length "
            "check fails and no good frame follows: torn, that record dropped", ["torn", "flip", "length"], 3, 3,
            ok(3, last))
    damaged("torn/flip-in-last-length-crc", "one bit flipped in the last record's length checksum: torn",
            ["torn", "flip", "length"], 3, 6, ok(3, last))
    damaged("corrupt/flip-in-middle-length", "one bit flipped in record 2's length field: corrupt",
            ["corrupt", "flip", "length"], 2, 3, corrupt_frame(offsets[2]))

    for name, length, description, expect in (
            ("torn/length-zero", 0, "a last frame header of length 0 whose length check passes: out of range, "
             "no good frame follows, torn", ok(4, full.size)),
            ("torn/length-over-16-mib", MAX_PAYLOAD + 1, "a frame header of length 16 MiB + 1, length check "
             "passing, at the end of the file: out of range, no good frame follows, torn", ok(4, full.size)),
            ("torn/length-16-mib-cut", MAX_PAYLOAD, "a frame header of length exactly 16 MiB, its payload "
             "missing: in range, ends past the end of the file, torn", ok(4, full.size))):
        layout = good_journal()
        layout.add(f"a frame header of length {length}, no payload", frame_of(b"", length=length)[:12])
        v.append(scan_vector(name, description, ["length"], layout, expect))

    def raw_last(name: str, description: str, body: bytes, covers: list[str], expect: dict) -> None:
        layout = good_journal()
        layout.add(f"frame 4 (checksums pass): {body.decode('utf-8', 'replace')}", frame_of(body))
        v.append(scan_vector(name, description, covers, layout, expect))

    for name, body, why in (("not-json", b'{"seq":4,', "a cut JSON text"),
                            ("not-an-object", b"[4]", "a JSON array"),
                            ("nan", b'{"seq":4,"next_id":NaN,"trades":[]}', "NaN, which is not JSON"),
                            ("repeated-key", b'{"seq":4,"seq":4,"next_id":4,"trades":[]}', "a repeated key")):
        raw_last(f"corrupt/payload-{name}", f"the last frame's checksums pass but its payload is {why}: "
                 "corrupt, not torn (a passing checksum means it was written whole)", body, ["corrupt"],
                 corrupt_frame(full.size))
    spaced = b'{ "trades": [], "next_id": 4, "seq": 4 }'
    raw_last("ok/payload-spacing-and-key-order", "a reader does not depend on the writer's spacing or key "
             "order: a record written with spaces, keys reordered", spaced, ["reader"],
             ok(5, full.size + 12 + len(spaced)))
    extra = text(record(4, 4, [], note="x")).encode()
    raw_last("ok/unknown-keys", "unknown keys of a record are ignored", extra, ["reader"],
             ok(5, full.size + 12 + len(extra)))

    def records(name: str, description: str, rows: list[dict], expect: dict | None, first: dict = HEADER) -> None:
        """Good frames holding ``first`` then ``rows``; ``expect`` None: all of them good."""
        layout = Layout()
        layout.add(f"frame 0: {text(first)[:60]}", frame(first))
        for i, r in enumerate(rows, 1):
            layout.add(f"frame {i}: {text(r)[:60]}", frame(r))
        covers = ["reader"] if expect is None else ["corrupt", "record"]
        v.append(scan_vector(name, description, covers, layout, expect or ok(1 + len(rows), layout.size)))

    r1, r2 = RECORDS[0], RECORDS[1]
    records("corrupt/seq-repeated", "records 1, 2, 2: a record repeated, corrupt (even as the last frame)",
            [r1, r2, {**r2}], corrupt_payload("record", 3))
    records("corrupt/seq-gap", "records 1, 3: a record lost, corrupt", [r1, {**r2, "seq": 3}],
            corrupt_payload("record", 2))
    records("corrupt/seq-zero", "a first record numbered 0", [{**r1, "seq": 0}], corrupt_payload("record", 1))
    records("corrupt/seq-string", "seq \"1\": not an integer", [{**r1, "seq": "1"}], corrupt_payload("record", 1))
    records("corrupt/seq-true", "seq true: not an integer", [{**r1, "seq": True}], corrupt_payload("record", 1))
    records("corrupt/record-without-trades", "a record without a trades list", [{"seq": 1, "next_id": 2}],
            corrupt_payload("record", 1))
    no_id = {k: val for k, val in trade(2, "ETH").items() if k != "id"}
    records("corrupt/record-trade-without-id", "a record whose trade has no id", [record(1, 3, [no_id])],
            corrupt_payload("record", 1))
    records("corrupt/record-bad-status", "a record whose trade has status \"open\"",
            [record(1, 3, [{**trade(2, "ETH"), "status": "open"}])], corrupt_payload("record", 1))
    records("corrupt/record-next-id-zero", "a record with next_id 0", [record(1, 0, [])],
            corrupt_payload("record", 1))
    records("corrupt/record-next-id-float", "a record with next_id 2.0", [record(1, 2.0, [])],
            corrupt_payload("record", 1))
    for name, first, why in (
            ("version-2", {**HEADER, "journal": 2}, "\"journal\": 2, another layout"),
            ("version-true", {**HEADER, "journal": True}, "\"journal\": true, not the integer 1"),
            ("id-uppercase", {**HEADER, "id": J1.upper()}, "an id in uppercase hex"),
            ("id-short", {**HEADER, "id": J1[:31]}, "an id of 31 hex digits"),
            ("checkpoint-missing", {k: val for k, val in HEADER.items() if k != "checkpoint"}, "no checkpoint"),
            ("folds-not-an-id", {**HEADER, "folds": "previous"}, "folds that is not a journal id"),
            ("folded-negative", {**HEADER, "folded": -1}, "folded -1"),
            ("a-record", RECORDS[0], "a record where the header belongs")):
        records(f"corrupt/header-{name}", f"frame 0 is not a valid header: {why}", [r1], corrupt_payload("header", 0),
                first=first)
    records("ok/header-unknown-keys", "unknown keys of a header are ignored, and identity is not checked",
            [r1], None, first={**HEADER, "identity": "anything", "note": 1})
    return v


# --------------------------------------------------------------------------- checkpoint + journal


def load_vector(name: str, description: str, covers: list[str], checkpoint: bytes | None,
                journal: bytes | None, expect: dict) -> Vector:
    return Vector(f"load/{name}", description, ["journal:load", *covers],
                  {"checkpoint_text": None if checkpoint is None else checkpoint.decode("utf-8"),
                   "journal_hex": None if journal is None else journal.hex()}, expect, "journal-load")


def state(fmt: str, journal: str, trades: list[dict], next_id: int, extra: dict | None = None) -> dict:
    """A state read: ``extra`` is the document's unknown top-level keys (never the marker)."""
    return {"outcome": "ok", "format": fmt, "journal": journal, "next_id": next_id, "extra": extra or {},
            "trades": trades}


CORRUPT = {"outcome": "corrupt"}


def journal_of(head: dict, *records_: dict) -> bytes:
    return b"".join(frame(p) for p in (head, *records_))


def load_vectors() -> list[Vector]:
    v: list[Vector] = []
    btc, eth, sol = trade(1, "BTC"), trade(2, "ETH"), trade(3, "SOL")
    btc_trailed, btc_closed = trade(1, "BTC", stop=101.0), trade(1, "BTC", stop=101.0, closed_at=110.0)
    c = CHECKPOINT  # T001 BTC open, next_id 2, marker {folds: null, folded: 0}
    j = journal_of(HEADER, *RECORDS)

    # Rule 6: the journal names the checkpoint's bytes.
    v.append(load_vector("combined", "rule 6: the header names the SHA-256 of the checkpoint, so its three "
                         "records apply in order: ETH opened, BTC's stop trailed, BTC closed and SOL opened",
                         ["rule:6"], c, j, state("journal", "current", [btc_closed, eth, sol], 4)))
    v.append(load_vector("combined-header-only", "rule 6 with no record yet: the state is the checkpoint's",
                         ["rule:6"], c, journal_of(HEADER), state("journal", "current", [btc], 2)))
    v.append(load_vector("combined-torn-tail", "rule 6 with the last record torn (cut 7 bytes before its end): "
                         "the records before it apply, the torn one does not; but its bytes still show "
                         "\"next_id\":4 and \"id\":\"T003\", so next_id is 4: an id it may have given out is "
                         "never given again", ["rule:6", "torn", "next_id"], c, j[:-7],
                         state("journal", "current", [btc_trailed, eth], 4)))
    v.append(load_vector("combined-torn-in-frame-header", "rule 6 with the last record cut inside its frame "
                         "header: nothing of it is legible, next_id is the records' 3", ["rule:6", "torn"], c,
                         j[:-(len(frame(RECORDS[2])) - 8)], state("journal", "current", [btc_trailed, eth], 3)))
    flipped = flip(j, len(j) - len(frame(RECORDS[2])) + 12 + 5)
    v.append(load_vector("combined-flipped-last-record", "rule 6, a bit flipped in the last record's payload: "
                         "it reads as torn and its trades are dropped (FORMAT.md, Hazards), but the ids and "
                         "next_id its bytes show are skipped: next_id 4", ["rule:6", "torn", "flip", "next_id"],
                         c, flipped, state("journal", "current", [btc_trailed, eth], 4)))
    v.append(load_vector("combined-identity-ignored", "the header's identity hint does not take part in "
                         "the combination", ["rule:6"], c,
                         journal_of(header(c, identity=[1, 2, 3, 4]), RECORDS[0]),
                         state("journal", "current", [btc, eth], 3)))
    high = document([btc], 9, marker=marker())
    v.append(load_vector("record-next-id-never-lowers", "a record's next_id lower than the state's does not "
                         "lower it: next_id is the larger of the two", ["rule:6", "next_id"], high,
                         journal_of(header(high), record(1, 3, [btc_trailed])),
                         state("journal", "current", [btc_trailed], 9)))
    v.append(load_vector("record-replaces-in-place", "a trade already in the state is replaced where it "
                         "stands; a new one is appended at the end", ["rule:6", "apply"],
                         document([btc, eth], 3, marker=marker()),
                         journal_of(header(document([btc, eth], 3, marker=marker())),
                                    record(1, 4, [btc_closed, sol])),
                         state("journal", "current", [btc_closed, eth, sol], 4)))
    v.append(load_vector("combined-bad-record", "rule 6, a record numbered 2 where record 1 belongs: corrupt",
                         ["rule:6", "corrupt"], c, journal_of(HEADER, {**RECORDS[0], "seq": 2}), CORRUPT))

    # Rule 7.1: the checkpoint already folds the journal in.
    folded_c = document([btc_closed, eth, trade(3, "SOL", closed_at=104.0)], 4, marker=marker(J1, 3))
    v.append(load_vector("folded", "rule 7.1: the checkpoint's marker folds journal J1's 3 records in (a "
                         "checkpoint cut short before its new journal): the state is the checkpoint alone. "
                         "It differs from the records on purpose (SOL is closed in it): a reader that applies "
                         "them again gets SOL open", ["rule:7.1"], folded_c, j,
                         state("journal", "stale", [btc_closed, eth, trade(3, "SOL", closed_at=104.0)], 4)))
    v.append(load_vector("folded-count-differs", "the marker folds 2 records of J1 but J1 has 3: corrupt",
                         ["rule:7.4", "corrupt"], document([btc_closed, eth, sol], 4, marker=marker(J1, 2)), j,
                         CORRUPT))
    v.append(load_vector("folded-other-journal", "the marker folds another journal's records: corrupt",
                         ["rule:7.4", "corrupt"], document([btc_closed, eth, sol], 4, marker=marker(J2, 3)), j,
                         CORRUPT))
    v.append(load_vector("folded-bad-record", "rule 7.1, but a record of the folded journal breaks the record "
                         "rule: corrupt (records are checked whether or not they apply)", ["rule:7.1", "corrupt"],
                         document([btc, eth], 3, marker=marker(J1, 2)),
                         journal_of(HEADER, RECORDS[0], {**RECORDS[1], "seq": 3}), CORRUPT))
    doc_marked = document([btc_closed, eth, sol], 4, schema=2, marker=marker(J1, 3))
    v.append(load_vector("converted-to-document-cut-short", "rule 7.1 with a schema 2 document: the "
                         "conversion to the document format wrote the document and had not removed the "
                         "journal; the document holds it all", ["rule:7.1", "conversion"], doc_marked, j,
                         state("document", "stale", [btc_closed, eth, sol], 4)))

    # Rule 7.2 and 4: leftovers of a conversion to the journal format.
    doc = document([btc, eth], 3, schema=2)
    future = document([btc, eth], 3, marker=marker())  # the checkpoint the conversion was about to write
    v.append(load_vector("converted-to-journal-cut-short", "rule 7.2: a document beside an empty journal "
                         "naming the checkpoint a conversion was about to write: the state is the document",
                         ["rule:7.2", "conversion"], doc, journal_of(header(future)),
                         state("document", "stale", [btc, eth], 3)))
    v.append(load_vector("converted-to-journal-torn-header", "rule 4: a document beside a journal whose "
                         "header frame is torn: the state is the document", ["rule:4", "conversion", "torn"],
                         doc, frame(header(future))[:30], state("document", "stale", [btc, eth], 3)))
    v.append(load_vector("converted-to-journal-empty-journal", "rule 4: a document beside an empty journal file",
                         ["rule:4", "conversion"], doc, b"", state("document", "stale", [btc, eth], 3)))
    v.append(load_vector("new-log-first-write-cut-short", "rule 7.2 without a checkpoint: a new log's first "
                         "write wrote its journal and not its checkpoint: an empty log", ["rule:7.2"], None,
                         journal_of(header(document([btc], 2, marker=marker()))),
                         state("document", "stale", [], 1)))
    v.append(load_vector("leftover-with-a-record", "a document beside a journal it does not know that holds "
                         "a record: not a leftover (k is not 0), corrupt", ["rule:7.4", "corrupt"], doc,
                         journal_of(header(future), record(1, 4, [sol])), CORRUPT))
    v.append(load_vector("leftover-that-folds", "a document beside an empty journal it does not know whose "
                         "header folds another journal: corrupt", ["rule:7.4", "corrupt"], doc,
                         journal_of(header(future, folds=J2, folded=1)), CORRUPT))

    # Rule 2: no journal.
    v.append(load_vector("document", "rule 2: a document-format log (schema 2), no journal",
                         ["rule:2"], doc, None, state("document", "none", [btc, eth], 3)))
    v.append(load_vector("nothing", "rule 2: neither file: a new, empty log", ["rule:2"], None, None,
                         state("document", "none", [], 1)))
    v.append(load_vector("missing-journal", "rule 2: a schema 3 checkpoint without its journal: corrupt (the "
                         "writes it held would be lost)", ["rule:2", "corrupt"], c, None, CORRUPT))
    v.append(load_vector("document-own-journal-key", "a document's top-level \"journal\" that is not a marker "
                         "object is its own unknown key: kept, like any other", ["rule:2", "marker"],
                         document([btc], 2, schema=2, marker="mine"), None,
                         state("document", "none", [btc], 2, {"journal": "mine"})))
    v.append(load_vector("document-marker-without-journal", "a document's marker (a conversion to the document "
                         "format finished) is the journal format's key, not the document's: not kept",
                         ["rule:2", "marker"], doc_marked, None,
                         state("document", "none", [btc_closed, eth, sol], 4)))

    # Rule 7.3 and 7.4: refused combinations.
    v.append(load_vector("missing-checkpoint", "rule 7.3: a journal holding records without its checkpoint: "
                         "corrupt", ["rule:7.3", "corrupt"], None, j, CORRUPT))
    v.append(load_vector("missing-checkpoint-after-checkpoint", "rule 7.3: no checkpoint beside an empty "
                         "journal that follows an earlier one (folds is set): corrupt", ["rule:7.3", "corrupt"],
                         None, journal_of(header(c, id=J2, folds=J1, folded=3)), CORRUPT))
    seed = json.loads(c)
    seed["trades"].append({**trade(2, "SEED")})
    seed["next_id"] = 3
    v.append(load_vector("seed-rewritten-checkpoint", "rule 7.4: a seed-era writer loaded the checkpoint, "
                         "added a trade and dumped it back (indent=2): its SHA-256 is not the one the journal "
                         "names, so the two are never combined", ["rule:7.4", "corrupt", "seed"],
                         json.dumps(seed, indent=2).encode(), j, CORRUPT))
    v.append(load_vector("checkpoint-reformatted", "rule 7.4: the checkpoint's values unchanged but its bytes "
                         "rewritten (indent=2): the journal names bytes, not values, corrupt",
                         ["rule:7.4", "corrupt"], json.dumps(json.loads(c), indent=2).encode(), j, CORRUPT))
    v.append(load_vector("checkpoint-rewritten-as-document", "rule 7.4: the checkpoint rewritten as a schema 2 "
                         "document without the marker, beside a journal that continues the old one: corrupt",
                         ["rule:7.4", "corrupt"], document([btc], 2, schema=2), j, CORRUPT))
    v.append(load_vector("document-marker-not-an-object", "rule 7.4: a schema 2 document whose \"journal\" key is "
                         "not a marker object, beside a journal it does not know: corrupt",
                         ["rule:7.4", "corrupt"], document([btc], 2, schema=2, marker="mine"), j, CORRUPT))

    # Rule 1 and 4: the checkpoint itself.
    v.append(load_vector("checkpoint-without-marker", "rule 1: schema 3 without a journal marker: corrupt",
                         ["rule:1", "corrupt"], document([btc], 2), journal_of(header(document([btc], 2))),
                         CORRUPT))
    for name, bad, why in (("folded-true", {"folds": None, "folded": True}, "folded true"),
                           ("folds-uppercase", {"folds": J1.upper(), "folded": 0}, "folds in uppercase hex"),
                           ("not-an-object", [None, 0], "a list")):
        bad_c = document([btc], 2, marker=bad)
        v.append(load_vector(f"checkpoint-marker-{name}", f"rule 1: a schema 3 checkpoint whose marker is {why}: "
                             "corrupt", ["rule:1", "corrupt"], bad_c, journal_of(header(bad_c)), CORRUPT))
    v.append(load_vector("checkpoint-not-json", "rule 1: a checkpoint cut short is not a document: corrupt",
                         ["rule:1", "corrupt"], c[:-3], journal_of(header(c[:-3])), CORRUPT))
    v.append(load_vector("checkpoint-empty-journal", "rule 4: a schema 3 checkpoint beside an empty journal: "
                         "corrupt", ["rule:4", "corrupt"], c, b"", CORRUPT))
    v.append(load_vector("checkpoint-torn-header", "rule 4: a schema 3 checkpoint beside a journal whose header "
                         "is torn: corrupt", ["rule:4", "corrupt"], c, frame(HEADER)[:40], CORRUPT))
    v.append(load_vector("checkpoint-corrupt-journal", "rule 3: a record damaged before the last: corrupt",
                         ["rule:3", "corrupt"], c, flip(j, len(frame(HEADER)) + 20), CORRUPT))
    return v


REQUIRED_COVERS = ["journal:frame", "journal:crc32", "journal:scan", "journal:load", "torn", "zero-tail", "flip",
                   "length", *(f"rule:{r}" for r in ("1", "2", "3", "4", "6", "7.1", "7.2", "7.3", "7.4"))]


def all_vectors() -> dict[str, dict]:
    """Every journal vector by its path under ``vectors/``."""
    vectors = {}
    for vector in (*frame_vectors(), *scan_vectors(), *load_vectors()):
        rel = f"journal/{vector.name.replace('/', '--')}.json"
        assert rel not in vectors, f"two journal vectors named {vector.name}"
        vectors[rel] = vector.as_dict()
    covered = {c for v in vectors.values() for c in v["covers"]}
    missing = [c for c in REQUIRED_COVERS if c not in covered]
    assert not missing, f"no journal vector covers {missing}"
    return vectors
