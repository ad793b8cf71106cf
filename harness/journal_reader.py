"""An independent reader of the journal format: the state a journal-format log's files hold.

The judge of every scenario on a journal-format log. It follows the written contract (the
journal format of ``docs/FORMAT.md``: frames ``length | CRC-32 of the length | CRC-32 of the
payload | payload``, the torn-or-corrupt rule, the header and record rules, and how a
checkpoint and a journal combine, rules 1 to 7 of "The state: checkpoint and journal") and imports
nothing of the library, so a bug in the library's own reader (a torn frame taken as a record, a
record applied twice, a journal combined with a checkpoint it does not continue) cannot hide
itself: the harness compares what a fresh store reads with what this module finds in the files.

Guarantees:

- :func:`scan` splits journal bytes into frames; a frame that is not good, with no good frame
  starting anywhere after it, is a torn, unacknowledged write and ends the scan; a bad frame
  that a good one follows, or a good frame that is not a JSON object, raises :class:`Unreadable`;
- :func:`state_of` combines a checkpoint and a journal exactly as the contract says, or raises
  :class:`Unreadable` (never guesses); its :attr:`State.data` is the state as one document,
  byte for byte what the library exports (``{"schema": 2, "next_id", ...other keys, "trades"}``
  in compact JSON) for a journal-format log, and the checkpoint's own bytes for a document;
- a log with no journal is a document: its bytes are returned as they are (parsing them is the
  checkers' job), except a schema-3 checkpoint whose journal is gone, which is unreadable.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import struct
import threading
import zlib
from dataclasses import dataclass
from typing import Any

SUFFIX = ".journal"
FRAME_HEADER = 12  # u32 length, u32 CRC-32 of the 4 length bytes, u32 CRC-32 of the payload
MAX_PAYLOAD = 16 << 20
CHECKPOINT_SCHEMA = 3
EXPORT_SCHEMA = 2
MARKER = "journal"
_FRAME = struct.Struct(">III")
_HEX32 = re.compile(r"[0-9a-f]{32}")
_HEX64 = re.compile(r"[0-9a-f]{64}")
_TRADE_ID = re.compile(r"T[0-9]{1,15}")
MAX_ID = 10 ** 15
# What a torn tail still shows of the ids its write may have given out (they are never reused).
_TORN_NEXT_ID = re.compile(rb'"next_id"\s*:\s*(\d{1,16})(?!\d)')
_TORN_ID = re.compile(rb'"id"\s*:\s*"T(\d{1,15})"')


class Unreadable(Exception):
    """The files do not hold a state the contract allows (damage, or a protocol broken)."""


def journal_path(trade_log: str) -> str:
    return trade_log + SUFFIX


@dataclass(frozen=True)
class Frame:
    """One good frame: where it starts and ends in the journal, and its payload."""

    start: int
    end: int
    payload: dict


@dataclass(frozen=True)
class Frames:
    """The good frames of journal bytes; ``end``: where the last one ends; ``torn``: bytes
    after it (an unacknowledged write) were ignored."""

    frames: tuple[Frame, ...]
    end: int
    torn: bool


def encode_frame(payload: dict) -> bytes:
    """A frame for ``payload`` (for damage that needs a well-formed frame, e.g. a torn tail)."""
    body = json.dumps(payload, separators=(",", ":"), allow_nan=False).encode()
    return _FRAME.pack(len(body), zlib.crc32(len(body).to_bytes(4, "big")), zlib.crc32(body)) + body


def _strict(data: bytes, what: str) -> Any:
    def constant(name: str) -> None:
        raise ValueError(f"{name} is not strict JSON")

    try:
        return json.loads(data.decode("utf-8"), parse_constant=constant)
    except (UnicodeDecodeError, ValueError) as exc:
        raise Unreadable(f"{what} is not strict JSON ({exc})") from None


def _good_end(data: bytes, pos: int) -> int | None:
    """Where the good frame at ``pos`` ends (its length and both checks pass, it fits), or None."""
    if len(data) - pos < FRAME_HEADER:
        return None
    length, length_crc, body_crc = _FRAME.unpack_from(data, pos)
    stop = pos + FRAME_HEADER + length
    if not 1 <= length <= MAX_PAYLOAD or zlib.crc32(data[pos:pos + 4]) != length_crc or stop > len(data):
        return None
    return stop if zlib.crc32(data[pos + FRAME_HEADER:stop]) == body_crc else None


def _good_frame_after(data: bytes, pos: int) -> int | None:
    """The first offset after ``pos`` at which a good frame starts, or None."""
    for q in range(pos + 1, len(data) - FRAME_HEADER + 1):
        if data[q:q + 4] != b"\0\0\0\0" and _good_end(data, q) is not None:
            return q
    return None


def scan(data: bytes) -> Frames:
    """The frames of journal bytes. At the first frame that is not good: torn (the scan ends
    there) if no good frame starts anywhere after it, else Unreadable; a good frame whose
    payload is not a strict JSON object is Unreadable even as the last one."""
    frames, pos = [], 0
    while pos < len(data):
        stop = _good_end(data, pos)
        if stop is None:
            later = _good_frame_after(data, pos)
            if later is None:
                return Frames(tuple(frames), pos, True)  # the last write, cut, zeroed or flipped
            raise Unreadable(f"the frame at byte {pos} fails its checks and a good frame follows at byte {later}")
        payload = _strict(data[pos + FRAME_HEADER:stop], f"the frame at byte {pos}")
        if not isinstance(payload, dict):
            raise Unreadable(f"the frame at byte {pos} is not a JSON object")
        frames.append(Frame(pos, stop, payload))
        pos = stop
    return Frames(tuple(frames), pos, False)


def _folds(value: Any) -> bool:
    return value is None or (isinstance(value, str) and bool(_HEX32.fullmatch(value)))


def _count(value: Any) -> bool:
    return type(value) is int and value >= 0


def _header(payload: dict) -> dict:
    ok = (type(payload.get("journal")) is int and payload["journal"] == 1
          and isinstance(payload.get("id"), str) and _HEX32.fullmatch(payload["id"])
          and isinstance(payload.get("checkpoint"), str) and _HEX64.fullmatch(payload["checkpoint"])
          and _folds(payload.get("folds")) and _count(payload.get("folded")))
    if not ok:
        raise Unreadable("the journal's first frame is not a header of version 1")
    return payload


def _trade(value: Any) -> bool:
    """The document's rule for a record: an id ``T`` + 1 to 15 digits, a status, a symbol."""
    return (isinstance(value, dict) and isinstance(value.get("id"), str) and bool(_TRADE_ID.fullmatch(value["id"]))
            and value.get("status") in ("OPEN", "CLOSED") and isinstance(value.get("symbol"), str))


def _record(payload: dict, seq: int) -> dict:
    if type(payload.get("seq")) is not int or payload["seq"] != seq:
        raise Unreadable(f"record {payload.get('seq')!r} found where record {seq} belongs")
    trades = payload.get("trades")
    if not isinstance(trades, list) or not all(_trade(t) for t in trades):
        raise Unreadable(f"record {seq} has no list of trade records")
    if type(payload.get("next_id")) is not int or not 1 <= payload["next_id"] <= MAX_ID:
        raise Unreadable(f"record {seq} has no next_id from 1 to 10^15")
    return payload


def _document(data: bytes) -> dict:
    doc = _strict(data, "the checkpoint")
    if not isinstance(doc, dict) or not isinstance(doc.get("trades"), list):
        raise Unreadable("the checkpoint is not an object with a list of trades")
    if doc.get("schema") == CHECKPOINT_SCHEMA:
        marker = doc.get(MARKER)
        if not (isinstance(marker, dict) and _folds(marker.get("folds")) and _count(marker.get("folded"))):
            raise Unreadable("a schema 3 checkpoint without a valid journal marker")
    return doc


@dataclass(frozen=True)
class State:
    """What the files hold: the state as a document, its bytes, and how it was found."""

    document: dict
    data: bytes
    journal_format: bool  # the checkpoint is schema 3
    records: int  # journal records applied (0 if the checkpoint already holds them)
    how: str


def _export(checkpoint: dict, records: list[dict], torn: bytes = b"") -> tuple[dict, bytes]:
    """The checkpoint with each record applied: a trade replaces the one with its id (in its
    place), a new id is appended, ``next_id`` becomes the larger of the two; then raised past
    every id and next_id still legible in a ``torn`` tail."""
    trades = list(checkpoint["trades"])
    where = {t.get("id"): i for i, t in enumerate(trades)}
    next_id = checkpoint.get("next_id")
    for record in records:
        for trade in record["trades"]:
            if trade["id"] in where:
                trades[where[trade["id"]]] = trade
            else:
                where[trade["id"]] = len(trades)
                trades.append(trade)
        next_id = max(next_id, record["next_id"]) if isinstance(next_id, int) else record["next_id"]
    shown = [int(n) for n in _TORN_NEXT_ID.findall(torn)] + [int(n) + 1 for n in _TORN_ID.findall(torn)]
    shown = [n for n in shown if n <= MAX_ID + 1]
    if shown and isinstance(next_id, int):
        next_id = max(next_id, *shown)
    extra = {k: v for k, v in checkpoint.items() if k not in ("schema", "next_id", "trades", MARKER)}
    document = {"schema": EXPORT_SCHEMA, "next_id": next_id, **extra, "trades": trades}
    return document, json.dumps(document, separators=(",", ":"), allow_nan=False).encode()


def state_of(checkpoint: bytes | None, journal: bytes | None) -> State | None:
    """The state of a log whose checkpoint file holds ``checkpoint`` and whose journal holds
    ``journal`` (None: that file is missing). None: there is no log yet."""
    if journal is None:
        if checkpoint is None:
            return None
        try:
            doc = _strict(checkpoint, "the log")
        except Unreadable:  # a damaged document: the checkers judge its bytes themselves
            doc = None
        if isinstance(doc, dict) and doc.get("schema") == CHECKPOINT_SCHEMA:
            raise Unreadable("a schema 3 checkpoint whose journal is missing (its writes would be lost)")
        return State(doc if isinstance(doc, dict) else {}, checkpoint, False, 0, "a document, no journal")
    doc = _document(checkpoint) if checkpoint is not None else {"next_id": 1, "trades": []}
    journal_format = doc.get("schema") == CHECKPOINT_SCHEMA
    found = scan(journal)
    if not found.frames:
        if journal_format:
            raise Unreadable("the journal has no header")
        return _as_is(doc, checkpoint, "a document beside a journal with no header (a conversion cut short)")
    header = _header(found.frames[0].payload)
    records = [_record(f.payload, seq) for seq, f in enumerate(found.frames[1:], 1)]
    if journal_format and header["checkpoint"] == hashlib.sha256(checkpoint).hexdigest():
        document, data = _export(doc, records, journal[found.end:])
        return State(document, data, True, len(records), f"the checkpoint and {len(records)} journal records")
    marker = doc.get(MARKER) if isinstance(doc.get(MARKER), dict) else {}
    if marker.get("folds") == header["id"] and marker.get("folded") == len(records):
        return _as_is(doc, checkpoint, f"the checkpoint, which already holds the journal's {len(records)} records")
    if not journal_format and header["folds"] is None and not records:
        return _as_is(doc, checkpoint, "a document beside an empty journal it does not know (a conversion cut short)")
    if checkpoint is None:
        raise Unreadable(f"the checkpoint is missing and the journal ({len(records)} records) continues one")
    raise Unreadable(f"the journal ({len(records)} records) continues another checkpoint than the one there: "
                     "the two must never be combined")


def _as_is(doc: dict, checkpoint: bytes | None, how: str) -> State:
    """The checkpoint alone: a schema-3 one as the exported document, a document as it is."""
    if doc.get("schema") == CHECKPOINT_SCHEMA or checkpoint is None:
        document, data = _export(doc, [])
        return State(document, data, doc.get("schema") == CHECKPOINT_SCHEMA, 0, how)
    return State(doc, checkpoint, False, 0, how)


def read_bytes(path: str) -> bytes | None:
    """The file's bytes, or None if it does not exist."""
    try:
        with open(path, "rb") as handle:
            return handle.read()
    except FileNotFoundError:
        return None


def read(trade_log: str, lock_file: str | None = None, timeout: float = 30.0) -> State | None:
    """The state the files of ``trade_log`` hold now (see :func:`state_of`).

    With ``lock_file``, a journal-format log is read holding the writers' lock (``flock``, on a
    descriptor of its own), as any reader of the format must while writers may be at work: a
    checkpoint and a journal read without it can come from two different moments. A document
    is read without it, as its readers do (one ``open`` sees one whole version). Without
    ``lock_file``, only where no writer is at work (a crash state, a directory whose writers
    have stopped, or between the calls of the one store of this process). A lock held longer
    than ``timeout`` seconds raises Unreadable.
    """
    journal = journal_path(trade_log)
    if lock_file is None:
        return state_of(read_bytes(trade_log), read_bytes(journal))
    if not os.path.lexists(journal):
        try:
            return state_of(read_bytes(trade_log), None)
        except Unreadable:
            pass  # a checkpoint without its journal: or one just written beside it; look again locked
    try:
        fd = os.open(lock_file, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:  # no writer ever took the lock: none is at work
        return state_of(read_bytes(trade_log), read_bytes(journal))
    if not _lock(fd, timeout):
        raise Unreadable(f"the writers' lock {lock_file} stayed held for {timeout:g} s")
    try:
        return state_of(read_bytes(trade_log), read_bytes(journal))
    finally:
        os.close(fd)  # releases the lock


def _lock(fd: int, timeout: float) -> bool:
    """``flock(fd, LOCK_EX)``, waiting in the kernel beside the writers (a poll would lose to
    them while they keep the lock busy) but at most ``timeout`` seconds. False: given up; the
    descriptor then belongs to the waiting thread, which closes it (unlocked) when it returns."""
    done = threading.Event()
    state = {"abandoned": False}
    guard = threading.Lock()

    def take() -> None:
        fcntl.flock(fd, fcntl.LOCK_EX)
        with guard:
            if state["abandoned"]:
                os.close(fd)
            done.set()

    threading.Thread(target=take, name="journal-reader-lock", daemon=True).start()
    if done.wait(timeout):
        return True
    with guard:
        if done.is_set():
            return True
        state["abandoned"] = True
        return False
