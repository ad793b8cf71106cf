"""The journal format: each write appends one checksummed record; a checkpoint now and then.

A journal-format log ``L`` is two files (byte for byte in ``docs/FORMAT.md``, "The journal
format"):

- ``L``, the **checkpoint**: the trade log document itself, ``"schema": 3``, with a top-level
  marker ``"journal": {"folds": <journal id or null>, "folded": <count>}`` saying which
  journal's first records it already holds. Every reader of ``L`` gets one consistent (if
  older) version; earlier versions and seed-era tools that check the schema refuse it, so none
  writes over a checkpoint without the journal writes it does not see;
- ``L.journal``, the **journal**: frames, each ``length | CRC-32 of the length | CRC-32 of the
  payload | payload`` (a strict JSON object). Frame 0 names the checkpoint it continues (its
  SHA-256); every later frame is one acknowledged write: the trade records it changed, whole,
  and ``next_id``.

Guarantees (the store calls these holding the writers' lock):

- a write is acknowledged only after its frame is fsynced; a frame that fails its write or
  fsync is cut off again before the call raises, and if it cannot be cut off the store stops
  (:class:`tradestore.errors.StoreStopped`), keeping the lock, so no other process takes the
  unacknowledged frame as committed while it lives;
- a torn or checksum-failing *last* frame is an unacknowledged write: ignored, and cut off by
  the next writer before it appends; a bad frame with bytes after it is corruption: refused
  (CorruptTradeLog), nothing written, every byte kept. A bit flip inside the last acknowledged
  frame therefore looks like a torn write and drops that write;
- the checkpoint and the journal are combined only when the journal names the checkpoint's
  exact bytes, or the checkpoint says it already folds in exactly that journal's records; a
  checkpoint rewritten by a writer that does not know the journal is never combined with it;
- a checkpoint (every time the journal outgrows the checkpoint, at least 256 KiB) and a
  conversion survive a crash between any two of their steps (see :func:`checkpoint`);
- a process that holds the state reads only the journal's new tail, and switches to a new
  journal that continues the one it read without re-reading the checkpoint.

Readers take the writers' lock to read the journal (never the checkpoint), so they only see
frames whose writer has finished: acknowledged ones, or ones cut off.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import secrets
import struct
import zlib
from dataclasses import dataclass
from typing import Any, BinaryIO

from . import atomic, logfile, recovery
from .document import (JOURNAL_SCHEMA, READABLE_SCHEMAS, DocumentError, check_next_id, check_records,
                       loads_strict, parse_document)
from .errors import CorruptTradeLog, StoreStopped, UnsafePath, describe
from .ledger import Ledger
from .values import id_number

log = logging.getLogger(__name__)

VERSION = 1
MARKER = "journal"  # the checkpoint's top-level key
MAX_PAYLOAD = 16 << 20  # a write that changes more than this becomes a checkpoint instead
CHECKPOINT_MIN_BYTES = 256 << 10
FORMATS = ("document", "journal")

REPAIR_HINT = ("a journal-format log is never restored from a backup: its checkpoint and journal are "
               "kept as they are; see docs/FORMAT.md, 'A damaged journal'")

_FRAME = struct.Struct(">III")  # length, CRC-32 of the 4 length bytes, CRC-32 of the payload
FRAME_HEADER = _FRAME.size
_ENCODER = json.JSONEncoder(separators=(",", ":"), allow_nan=False)
_JOURNAL_ID = re.compile(r"[0-9a-f]{32}")
_SHA256 = re.compile(r"[0-9a-f]{64}")
_ALL_SCHEMAS = READABLE_SCHEMAS + (JOURNAL_SCHEMA,)


journal_path = logfile.journal_path


def check_format(value: object) -> str:
    if value not in FORMATS:
        raise ValueError(f"log_format={describe(value)}: expected 'document' (one JSON document, "
                         "the seed's format) or 'journal' (an append-only journal beside it)")
    return value  # type: ignore[return-value]


# --------------------------------------------------------------------------- frames


def encode_frame(payload: dict[str, Any]) -> bytes:
    """One frame: the payload as compact strict JSON, framed with its length and checksums."""
    body = _ENCODER.encode(payload).encode()
    length = len(body).to_bytes(4, "big")
    return _FRAME.pack(len(body), zlib.crc32(length), zlib.crc32(body)) + body


@dataclass
class Frames:
    """The good frames of some journal bytes: payloads, and where the last one ends."""

    payloads: list[dict[str, Any]]
    end: int  # offset (in the file) just after the last good frame


def scan(data: bytes, source: str, base: int = 0) -> Frames:
    """Split ``data`` (the journal's bytes from file offset ``base``) into frames.

    A frame is *good* if its length passes its check, is 1 .. MAX_PAYLOAD, fits in ``data`` and
    its payload passes its check. At the first frame that is not good: if no good frame starts
    anywhere after it, it is a torn, unacknowledged write (whatever a crash or a power cut left:
    a cut, zeros, a later sector without an earlier one) and the scan stops before it; if one
    does, acknowledged writes follow it and it is corruption (CorruptTradeLog). A good frame
    whose payload is not a JSON object was written so: corruption too.
    """
    payloads = []
    pos, size = 0, len(data)
    while pos < size:
        stop = _good_frame_end(data, pos)
        if stop is None:
            later = _next_good_frame(data, pos + 1)
            if later is None:
                break  # a torn last frame: unacknowledged
            raise _corrupt(source, base + pos, f"it fails its checks and a good frame follows at byte "
                           f"{base + later}")
        try:
            payload = loads_strict(data[pos + FRAME_HEADER:stop])
        except DocumentError as exc:
            raise _corrupt(source, base + pos, f"its payload is not valid JSON ({exc})") from None
        if not isinstance(payload, dict):
            raise _corrupt(source, base + pos, "its payload is not an object")
        payloads.append(payload)
        pos = stop
    return Frames(payloads, base + pos)


def _good_frame_end(data: bytes, pos: int) -> int | None:
    """Where the good frame at ``pos`` ends, or None if there is none there."""
    if len(data) - pos < FRAME_HEADER:
        return None
    length, length_check, body_check = _FRAME.unpack_from(data, pos)
    if not 1 <= length <= MAX_PAYLOAD or zlib.crc32(data[pos:pos + 4]) != length_check:
        return None
    stop = pos + FRAME_HEADER + length
    if stop > len(data) or zlib.crc32(memoryview(data)[pos + FRAME_HEADER:stop]) != body_check:
        return None
    return stop


_NOT_ZERO = re.compile(rb"[^\x00]")


def _next_good_frame(data: bytes, start: int) -> int | None:
    """The first offset from ``start`` at which a good frame starts, or None.

    Only where a bad frame was found, so rarely. A length field holds a nonzero byte, so runs of
    zeros (an unwritten tail) are skipped whole.
    """
    pos, last = start, len(data) - FRAME_HEADER
    while pos <= last:
        if not any(data[pos:pos + 4]):
            found = _NOT_ZERO.search(data, pos)
            if found is None:
                return None
            pos = max(pos + 1, found.start() - 3)
            continue
        if _good_frame_end(data, pos) is not None:
            return pos
        pos += 1
    return None


def _corrupt(source: str, offset: int, what: str) -> CorruptTradeLog:
    return CorruptTradeLog(f"{source}: the frame at byte {offset} is damaged ({what}); nothing was "
                           "written and the file is kept as it is")


def check_header(payload: dict[str, Any], source: str) -> dict[str, Any]:
    """Raise CorruptTradeLog unless ``payload`` is a journal header (frame 0)."""
    ok = (payload.get("journal") == VERSION and type(payload.get("journal")) is int
          and isinstance(payload.get("id"), str) and _JOURNAL_ID.fullmatch(payload["id"])
          and isinstance(payload.get("checkpoint"), str) and _SHA256.fullmatch(payload["checkpoint"])
          and _folds_ok(payload))
    if not ok:
        raise CorruptTradeLog(f"{source}: the first frame is not a journal header of version {VERSION}")
    return payload


def _folds_ok(marker: dict[str, Any]) -> bool:
    folds, folded = marker.get("folds"), marker.get("folded")
    return ((folds is None or (isinstance(folds, str) and bool(_JOURNAL_ID.fullmatch(folds))))
            and type(folded) is int and folded >= 0)


def check_record(payload: dict[str, Any], seq: int, source: str) -> dict[str, Any]:
    """Raise CorruptTradeLog unless ``payload`` is record number ``seq``."""
    if payload.get("seq") != seq or type(payload.get("seq")) is not int:
        raise CorruptTradeLog(f"{source}: record {describe(payload.get('seq'))} found where record {seq} "
                              "belongs (a record repeated, lost or out of order)")
    trades = payload.get("trades")
    if not isinstance(trades, list):
        raise CorruptTradeLog(f"{source}: record {seq} has no trades list")
    check_records(trades, f"{source} record {seq}")
    check_next_id(payload.get("next_id"), f"{source} record {seq}")
    return payload


# --------------------------------------------------------------------------- one journal


class JournalView:
    """What this process has read of one journal: which one, how many records, where they end.

    The journal stays open, so its inode cannot be reused by a later file while it is known
    here. ``current`` is False for a journal the checkpoint already folds in (or the leftover
    of an interrupted conversion): the next write starts a fresh journal instead of appending.
    """

    def __init__(self, path: str, handle: BinaryIO, header: dict[str, Any], records: int, end: int,
                 current: bool, header_frame: bytes = b"") -> None:
        self.path = path
        self.handle = handle
        self.header = header
        self.header_frame = header_frame  # the journal's first bytes, as read or written here
        self.records = records
        self.end = end
        self.current = current
        st = os.fstat(handle.fileno())
        self.identity = (st.st_dev, st.st_ino)
        self.name_durable = False  # this process made the journal's directory entry durable

    @property
    def id(self) -> str:
        return self.header["id"]

    def close(self) -> None:
        try:
            self.handle.close()
        except OSError:  # a read-only descriptor: nothing can be lost
            pass

    def intact(self) -> bool:
        """The journal still starts with the header read here and is no shorter than what was
        read: no one rewrote it in place (a copy over it keeps its inode)."""
        fd = self.handle.fileno()
        return (os.fstat(fd).st_size >= self.end
                and os.pread(fd, len(self.header_frame), 0) == self.header_frame)

    def read_from(self, offset: int) -> bytes:
        """The journal's bytes from ``offset`` to its end, as they are now."""
        return logfile.read_from(self.handle.fileno(), offset)

    def read_tail(self, ledger: Ledger) -> None:
        """Apply the records appended since this view was last read (call holding the lock).

        Every new record is checked before the first is applied: one that is refused
        (CorruptTradeLog) leaves the ledger and this view as they were."""
        data = self.read_from(self.end)
        frames = scan(data, self.path, self.end)
        records = [check_record(payload, self.records + seq, self.path)
                   for seq, payload in enumerate(frames.payloads, 1)]
        for record in records:
            apply(ledger, record)
        self.records += len(records)
        skip_ids_in_torn_tail(ledger, data[frames.end - self.end:])
        self.end = frames.end

    def append(self, data: bytes, *, fsync: bool) -> bool:
        """Append the frame ``data`` (:func:`record_frame`) and make it durable; True if done.

        False (nothing written) if the journal has another name too (a hard link).

        Holding the lock. The file is the one this view read (else CorruptTradeLog: someone
        replaced it without the lock). A torn tail is cut off first. If the write or the fsync
        fails, the frame is cut off again and the error raised; if that fails too,
        StoreStopped (the caller stops the store).
        """
        fd = logfile.regular_fd(self.path, os.O_WRONLY, follow_symlinks=False)
        try:
            st = os.fstat(fd)
            if (st.st_dev, st.st_ino) != self.identity:
                raise CorruptTradeLog(f"{self.path} was replaced by a writer that ignores the lock; "
                                      "nothing was written")
            if st.st_nlink != 1:
                # Another name shares this file (a copy made with hard links): an append here
                # would land in that log too. The caller writes a checkpoint instead, which
                # gives this log a journal of its own.
                return False
            if st.st_size < self.end:
                raise CorruptTradeLog(f"{self.path} is shorter than the records read from it: a writer "
                                      "that ignores the lock cut it; nothing was written")
            if st.st_size > self.end:  # a torn, unacknowledged frame from a writer that died
                os.ftruncate(fd, self.end)
                os.fsync(fd)
            if fsync and not self.name_durable:
                # The writer that renamed this journal into place may have failed (or died
                # before) its directory fsync: a power cut would undo the rename, and with it
                # every record acknowledged here. Nothing is appended until the name is durable.
                atomic.fsync_directory(os.path.dirname(self.path))
                self.name_durable = True
            try:
                _write_all(fd, data, self.end)
                if fsync:
                    os.fsync(fd)
            except BaseException as exc:
                self._cut_off(fd, exc)
                raise
        finally:
            os.close(fd)
        self.end += len(data)
        self.records += 1
        return True

    def _cut_off(self, fd: int, cause: BaseException) -> None:
        try:
            os.ftruncate(fd, self.end)
            os.fsync(fd)
        except OSError as exc:
            raise StoreStopped(
                f"{self.path}: a write failed ({cause}) and its unacknowledged record could not be "
                f"cut off ({exc}); this store stops and keeps the lock so that no other process "
                "takes that record as committed; fix the disk, then end this process (the record "
                f"after byte {self.end} will then count as a write whose outcome is unknown)") from exc


def _write_all(fd: int, data: bytes, offset: int) -> None:
    view = memoryview(data)
    while view:
        written = os.pwrite(fd, view, offset)
        view, offset = view[written:], offset + written


def record_frame(ledger: Ledger, seq: int) -> bytes | None:
    """Record ``seq`` as a frame: the whole records ``ledger`` changed (in id order) and its
    next_id. None if it is larger than a frame may be (the write becomes a checkpoint)."""
    ids = sorted(ledger.changed, key=lambda i: id_number(i) or 0)
    frame = encode_frame({"seq": seq, "next_id": ledger.next_id, "trades": [ledger.get(i) for i in ids]})
    return frame if len(frame) - FRAME_HEADER <= MAX_PAYLOAD else None


def skip_ids_in_torn_tail(ledger: Ledger, tail: bytes) -> None:
    """Never give out again an id that a torn last frame still shows.

    A torn frame is unacknowledged, unless a bit flip damaged the last acknowledged one (the
    two look alike): its trades are dropped either way, but the ids and next_id legible in its
    bytes are skipped, so an id a bot may have been given is never given to another trade.
    """
    if tail:
        ledger.next_id = max(ledger.next_id, recovery.salvage(tail).floor())


def apply(ledger: Ledger, record: dict[str, Any]) -> None:
    """Apply one record: each trade replaces the record with its id or is appended."""
    ledger.merge(record["trades"], record["next_id"])


# --------------------------------------------------------------------------- the whole state


# A checkpoint begins {"schema":3,"next_id":N,"journal":{...} (checkpoint_bytes): the schema and
# the marker's key both, so one flipped bit ("schema":2 read as 3) does not make a document one.
_CHECKPOINT_START = re.compile(rb'\s*\{\s*"schema"\s*:\s*3\s*,\s*"next_id"\s*:[^,]*,\s*"'
                               + MARKER.encode() + rb'"\s*:')


def looks_like_checkpoint(data: bytes | None) -> bool:
    """True if ``data`` (a log's bytes, damaged or not) begins as a journal checkpoint does:
    schema 3, then next_id, then the journal marker's key."""
    return data is not None and _CHECKPOINT_START.match(data) is not None


class JournalNotStarted(OSError):
    """A checkpoint is in place (the write it carries is committed) but the new journal after it
    could not be written: not a failed write. The old journal is the one the checkpoint says
    it folds in, so the next write starts the new one."""


class LockNeeded(Exception):
    """The log is journal-format and the caller does not hold the lock: read again holding it."""


@dataclass
class Loaded:
    """A log read whole: its ledger, its format and the journal followed (None: no journal)."""

    ledger: Ledger
    journal_format: bool  # the checkpoint is schema 3
    checkpoint_sha: str
    journal: JournalView | None


def load(trade_log: str, data: bytes | None, *, locked: bool) -> Loaded:
    """The state of ``trade_log`` from its checkpoint bytes ``data`` (None: missing) and journal.

    ``locked``: the caller holds the writers' lock. Without it, a log that has a journal raises
    LockNeeded (only a lock holder may read a journal). Raises CorruptTradeLog for an
    unreadable checkpoint or journal and for a journal that does not continue this checkpoint.
    """
    path = journal_path(trade_log)
    if not locked and os.path.lexists(path):
        raise LockNeeded(path)  # before the parse: the caller reads again, holding the lock
    doc = parse_document(data, trade_log, schemas=_ALL_SCHEMAS) if data is not None else None
    journal_format = doc is not None and doc.get("schema") == JOURNAL_SCHEMA
    if journal_format and not locked:
        raise LockNeeded(path)  # a conversion replaced the log since the check above
    marker = doc.get(MARKER) if doc is not None else None
    if isinstance(marker, dict) and _folds_ok(marker):
        del doc[MARKER]  # the journal's own key: written again by every checkpoint
    elif journal_format:
        raise CorruptTradeLog(f"{trade_log}: a schema 3 checkpoint without a valid journal marker")
    else:
        marker = None  # a document's own key of that name, kept as it is
    ledger = Ledger.from_document(doc) if doc is not None else Ledger()
    sha = hashlib.sha256(data or b"").hexdigest()
    try:
        handle = logfile.open_regular(path, follow_symlinks=False)
    except FileNotFoundError:
        if journal_format:
            raise CorruptTradeLog(
                f"{trade_log} is the checkpoint of a journal-format log but its journal {path} is "
                "missing: the writes it held would be lost; put the journal back (nothing was "
                "written)") from None
        return Loaded(ledger, False, sha, None)
    if not locked:
        handle.close()
        raise LockNeeded(path)
    try:
        view = _follow(trade_log, handle, ledger, journal_format, sha, marker, data is None)
    except BaseException:
        handle.close()
        raise
    return Loaded(ledger, journal_format, sha, view)


def _follow(trade_log: str, handle: BinaryIO, ledger: Ledger, journal_format: bool, sha: str,
            marker: dict[str, Any] | None, missing: bool) -> JournalView:
    path = journal_path(trade_log)
    data = handle.read()
    frames = scan(data, path)
    if not frames.payloads:  # no header survives: only a conversion that never finished
        if journal_format:
            raise CorruptTradeLog(f"{path} has no header: the journal of {trade_log} is damaged")
        return JournalView(path, handle, {"id": None}, 0, frames.end, current=False)
    header = check_header(frames.payloads[0], path)
    records = frames.payloads[1:]
    view = JournalView(path, handle, header, 0, frames.end, current=True, header_frame=_first_frame(data))
    if header["checkpoint"] == sha and journal_format:
        for seq, payload in enumerate(records, 1):
            apply(ledger, check_record(payload, seq, path))
        skip_ids_in_torn_tail(ledger, data[frames.end:])
        view.records = len(records)
        return view
    for seq, payload in enumerate(records, 1):
        check_record(payload, seq, path)
    view.records, view.current = len(records), False
    if marker is not None and marker["folds"] == header["id"] and marker["folded"] == len(records):
        return view  # the checkpoint already holds every record of this journal
    if not journal_format and header["folds"] is None and not records:
        return view  # a conversion that wrote its journal but not its checkpoint
    if missing:
        raise CorruptTradeLog(f"{trade_log} is missing but its journal {path} continues a checkpoint "
                              f"(and holds {len(records)} writes): the checkpoint was lost; nothing "
                              "was written and the journal is kept as it is")
    raise CorruptTradeLog(
        f"{trade_log} was written by a writer that does not know its journal {path} (the journal "
        f"continues another version of it and holds {len(records)} writes): the two are never "
        "combined; nothing was written and both files are kept as they are")


# --------------------------------------------------------------------------- checkpoints


def checkpoint_bytes(ledger: Ledger, folds: str | None, folded: int) -> bytes:
    return ledger.to_json(schema=JOURNAL_SCHEMA, head_keys={MARKER: {"folds": folds, "folded": folded}})


def needs_checkpoint(view: JournalView, checkpoint_size: int) -> bool:
    """Checkpoint once the journal outgrows the checkpoint (and 256 KiB): the checkpoint's cost
    is paid once per that many bytes of writes, so its share of a write stays constant."""
    return view.end > max(CHECKPOINT_MIN_BYTES, checkpoint_size)


def checkpoint(trade_log: str, ledger: Ledger, previous: JournalView | None, *,
               fsync: bool) -> tuple[os.stat_result, str, JournalView | None]:
    """Fold ``ledger`` (the whole state) into a new checkpoint and start a new, empty journal.

    With a previous journal: (1) the checkpoint, marked as folding in ``previous``'s records
    (temp, fsync, replace, directory fsync), then (2) the new journal naming it. A crash after
    (1) leaves the old journal, which the marker says is folded in. Without one (a conversion or
    a new log): (1) the journal naming the checkpoint about to be written, then (2) the
    checkpoint. A crash after (1) leaves a document beside an empty journal it does not know.

    Returns the stat of the checkpoint written, its SHA-256 and the new journal, open (None if
    the file at its path is not the one just written: a writer that ignores the lock replaced it).
    """
    folds, folded = (previous.id, previous.records) if previous is not None and previous.id else (None, 0)
    data = checkpoint_bytes(ledger, folds, folded)
    sha = hashlib.sha256(data).hexdigest()
    if folds is None:
        header = _header(sha, None, None, 0)
        frame = encode_frame(header)
        journal_stat = atomic.write_atomic(journal_path(trade_log), frame, fsync=fsync)
        written = atomic.write_atomic(trade_log, data, fsync=fsync)
    else:
        written = atomic.write_atomic(trade_log, data, fsync=fsync)
        ledger.mark_clean()  # durable from here: the checkpoint holds the write
        header = _header(sha, written, folds, folded)
        frame = encode_frame(header)
        try:
            journal_stat = atomic.write_atomic(journal_path(trade_log), frame, fsync=fsync)
        except OSError as exc:
            raise JournalNotStarted(exc.errno, f"the checkpoint of {trade_log} holds every write, but its "
                                    f"new journal could not be written ({exc}); the next write starts it") from exc
    ledger.mark_clean()
    return written, sha, _open_written(trade_log, header, frame, journal_stat, fsync)


def start(trade_log: str, sha: str, stale: JournalView, checkpoint_stat: os.stat_result, *,
          fsync: bool) -> JournalView | None:
    """Replace a journal the checkpoint (of hash ``sha``) already folds in by an empty one;
    return it open (None: replaced at once by a writer that ignores the lock)."""
    header = _header(sha, checkpoint_stat, stale.id, stale.records)
    frame = encode_frame(header)
    journal_stat = atomic.write_atomic(journal_path(trade_log), frame, fsync=fsync)
    return _open_written(trade_log, header, frame, journal_stat, fsync)


def _header(sha: str, checkpoint_stat: os.stat_result | None, folds: str | None, folded: int) -> dict[str, Any]:
    """A new journal's header: it continues the checkpoint of hash ``sha``, which folds in
    ``folded`` records of journal ``folds``; ``identity`` lets a process that read journal
    ``folds`` switch to this one without reading the checkpoint."""
    header: dict[str, Any] = {"journal": VERSION, "id": secrets.token_hex(16), "checkpoint": sha,
                              "folds": folds, "folded": folded}
    if checkpoint_stat is not None:
        header["identity"] = list(logfile.file_identity(checkpoint_stat))
    return header


def _open_written(trade_log: str, header: dict[str, Any], frame: bytes,
                  written: os.stat_result, durable: bool) -> JournalView | None:
    path = journal_path(trade_log)
    try:
        handle = logfile.open_regular(path, follow_symlinks=False)
    except (OSError, UnsafePath):
        return None
    st = os.fstat(handle.fileno())
    if (st.st_dev, st.st_ino, st.st_size) != (written.st_dev, written.st_ino, written.st_size):
        handle.close()
        return None
    view = JournalView(path, handle, header, 0, st.st_size, current=True, header_frame=frame)
    view.name_durable = durable  # written with its directory fsync (which raised if it failed)
    return view


def remove(trade_log: str, *, fsync: bool) -> None:
    """Remove a journal the document at ``trade_log`` already holds (durably, with ``fsync``)."""
    try:
        os.unlink(journal_path(trade_log))
    except FileNotFoundError:
        return
    if fsync:
        atomic.fsync_directory(os.path.dirname(trade_log))


def successor(path: str, previous: JournalView, checkpoint_identity: tuple[int, ...],
              ledger: Ledger) -> JournalView | None:
    """The new journal at ``path``, if it continues ``previous`` exactly; its records applied.

    It does when its header says it follows a checkpoint that folds in ``previous``'s records,
    all of them (``ledger`` holds exactly those), and names that checkpoint by the identity the
    checkpoint has now (``checkpoint_identity``). Then ``ledger`` is that checkpoint's state and
    only the new journal needs reading. None (nothing applied) when it does not.
    """
    try:
        handle = logfile.open_regular(path, follow_symlinks=False)
    except (FileNotFoundError, UnsafePath):
        return None
    try:
        data = handle.read()
        frames = scan(data, path)
        header = check_header(frames.payloads[0], path) if frames.payloads else None
        if (header is None or header["folds"] != previous.id or header["folded"] != previous.records
                or header.get("identity") != list(checkpoint_identity)):
            handle.close()
            return None
        records = [check_record(payload, seq, path) for seq, payload in enumerate(frames.payloads[1:], 1)]
    except BaseException:
        handle.close()
        raise
    for record in records:
        apply(ledger, record)
    skip_ids_in_torn_tail(ledger, data[frames.end:])
    return JournalView(path, handle, header, len(records), frames.end, current=True,
                       header_frame=_first_frame(data))


def _first_frame(data: bytes) -> bytes:
    """The bytes of the first frame of journal bytes that scan() found a frame in."""
    return data[:FRAME_HEADER + int.from_bytes(data[:4], "big")]

