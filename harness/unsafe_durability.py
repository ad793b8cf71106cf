"""Negative controls for the file-system scenarios: our real store plus one fault, or one bug.

Both pass every kill test (a killed process leaves the page cache, so a rename without fsync
still looks complete), and both lose acknowledged trades when the power goes. The power-loss
scenario must catch each of them, every time, naming the lost trade:

- ``unsafe-no-fsync``: :class:`tradestore.TradeStore` whose log writes run under a fault of the
  file-system layer that skips every ``fsync`` of a file: after a power cut the new name can
  point to an empty or torn file;
- ``unsafe-no-dir-fsync``: the same, skipping every ``fsync`` of a directory: after a power cut
  the rename can be undone and the log is the previous version.

Nothing of the write path is copied: the library's own ``atomic.write_atomic`` runs, and the
fault (:func:`tradestore_harness.fsfaults.skipping`) makes the one call return without reaching the
disk, so a shim that records the run (power-loss's) sees that call never made.

Three mutants, each the real store or reconciler with one plausible bug patched in for the
length of one call, mark the fault classes the harness injects for them:

- ``unsafe-ignores-short-writes``: the write loop becomes one ``os.write`` whose count is
  ignored, so a short write drops the rest of the log (io-errors' short writes catch it);
- ``unsafe-cache-ignores-inode``: the version cache knows a file by device, size and mtime
  only, so a log replaced by a different file of the same size within one timestamp tick
  passes for the cached one and a write starts from stale data (log-replaced catches it);
- ``unsafe-reconcile-two-reads``: the reconciler hashes one read of the log and derives from a
  second read, so derived files name one version and hold another when the log is replaced
  between the two (log-replaced catches it).

Four more for the journal format, each our ``tradestore-journal`` target
(:class:`tradestore_harness.journal_target.JournalStore`) with one step of the journal protocol
missing or wrong, patched in for the length of one call:

- ``journal-no-fsync``: records are appended but never fsynced: a power cut right after the
  acknowledgement loses the record (power-loss: ``ack-durable``);
- ``journal-torn-accepted``: the replay takes the bytes after the last good frame (a torn or
  checksum-failing last frame) as one more record, as a reader without the torn-tail rule
  does: a crash in the middle of an append leaves a log it refuses (crash-points:
  ``log-parses``), a changed digit in the last record is read as written (corrupt-log:
  ``torn-tail-ignored``);
- ``journal-checkpoint-no-dirfsync``: a checkpoint (and the first write, which makes one)
  renames its files without the directory fsync: a power cut can undo the renames and with
  them a new log, or the new journal that later records went to (power-loss: ``ack-durable``);
- ``journal-replay-twice``: the replay appends every trade of a record instead of replacing
  the trade with its id, so a trade changed by two writes is there twice for every process
  that reads the journal (crash-points, power-loss, io-errors: ``replay-exact``; the process
  scenarios: ``no-duplicate-trade``). Replaying a journal the checkpoint already folds in
  would not do: records are whole trades replaced by id, so a second replay changes nothing.
"""

from __future__ import annotations

import os
from typing import Any

from tradestore import StateReconciler, TradeStore, atomic, journal
from tradestore import reconciler as reconciler_module
from tradestore import store as store_module
from tradestore.document import DocumentError, loads_strict
from tradestore.errors import CorruptTradeLog
from tradestore_harness.fsfaults import skipping
from tradestore_harness.journal_target import JournalStore
from tradestore_harness.patching import patched


class _SkippingStore(TradeStore):
    """TradeStore whose log writes skip every call of kind :attr:`SKIP` (one step removed)."""

    SKIP = ""

    def _write_log(self, data: bytes) -> os.stat_result:
        with skipping(os.path.dirname(self.trade_log), self.SKIP):
            return super()._write_log(data)


class NoFsyncStore(_SkippingStore):
    """Renames a temp file whose data was never fsynced (the directory is fsynced)."""

    SKIP = "fsync"


class NoDirFsyncStore(_SkippingStore):
    """Fsyncs the data but never the directory after the rename."""

    SKIP = "dirfsync"


def no_fsync(trade_log, lock_file=None, **limits):
    """Flaw: renames the temp file without fsyncing its data (a power cut leaves an empty or torn log)."""
    return NoFsyncStore(trade_log, lock_file, **limits)


def no_dir_fsync(trade_log, lock_file=None, **limits):
    """Flaw: never fsyncs the directory after the rename (a power cut undoes acknowledged writes)."""
    return NoDirFsyncStore(trade_log, lock_file, **limits)


class _OneWrite:
    """The ``os`` module as a write loop that ignores short writes sees it: one ``os.write``
    call, and the caller takes every byte as written."""

    def __getattr__(self, name: str) -> Any:
        return getattr(os, name)

    @staticmethod
    def write(fd: int, data) -> int:
        os.write(fd, data)  # the bug: the count it returns is dropped
        return len(data)


class IgnoresShortWritesStore(TradeStore):
    """The atomic write with one ``os.write`` call per file, the remainder of a short write dropped."""

    def _write_log(self, data: bytes) -> os.stat_result:
        with patched(atomic, "os", _OneWrite()):
            return super()._write_log(data)


def _identity_without_inode(st: os.stat_result) -> tuple:
    return (st.st_dev, 0, st.st_size, st.st_mtime_ns)  # the bug: st_ino left out


class CacheIgnoresInodeStore(TradeStore):
    """A version cache that knows the log by device, size and mtime, not by inode."""

    def _load(self, *, locked):
        with patched(store_module, "file_identity", _identity_without_inode):
            return super()._load(locked=locked)

    def _persist(self, ledger) -> None:
        with patched(store_module, "file_identity", _identity_without_inode):
            super()._persist(ledger)


def _hash_one_read_derive_another(path: str, *follower):
    data, _ = _read_log(path, *follower)
    _, ledger = _read_log(path, *follower)  # the bug: a second read, which may be another version
    return data, ledger


_read_log = reconciler_module.read_log


class TwoReadsReconciler(StateReconciler):
    """A reconciler that hashes one read of the log and derives from a second read."""

    def reconcile(self, *args, **kwargs):
        with patched(reconciler_module, "read_log", _hash_one_read_derive_another):
            return super().reconcile(*args, **kwargs)


def ignores_short_writes(trade_log, lock_file=None, **limits):
    """Mutant: one os.write per file, its count ignored (a short write tears the log)."""
    return IgnoresShortWritesStore(trade_log, lock_file, **limits)


def cache_ignores_inode(trade_log, lock_file=None, **limits):
    """Mutant: the cached version's identity leaves out the inode (a same-size replace goes unseen)."""
    return CacheIgnoresInodeStore(trade_log, lock_file, **limits)


def reconcile_two_reads(trade_log, lock_file=None, **limits):
    """Mutant: our store, with a reconciler that hashes one read of the log and derives from another."""
    return TradeStore(trade_log, lock_file, **limits)


reconcile_two_reads.reconciler = TwoReadsReconciler  # what the derived-file checks reconcile with

# -- the journal format ------------------------------------------------------------------------

_append = journal.JournalView.append


def _append_without_fsync(view, data: bytes, *, fsync: bool):
    return _append(view, data, fsync=False)  # the bug: the record is never made durable


class JournalNoFsyncStore(JournalStore):
    """Appends each record and acknowledges it without an fsync."""

    def _persist_journal(self, ledger, cache) -> None:
        with patched(journal.JournalView, "append", _append_without_fsync):
            super()._persist_journal(ledger, cache)


_scan = journal.scan


def _scan_taking_the_tail(data: bytes, source: str, base: int = 0) -> journal.Frames:
    frames = _scan(data, source, base)
    tail = data[frames.end - base:]
    if tail:  # the bug: whatever follows the last good frame is taken as one more record
        try:
            frames.payloads.append(loads_strict(tail[journal.FRAME_HEADER:]))
        except DocumentError as exc:
            raise CorruptTradeLog(f"{source}: the frame at byte {frames.end} is not valid JSON ({exc})") from None
        frames.end = base + len(data)
    return frames


class JournalTornAcceptedStore(JournalStore):
    """Replays a journal without the torn-tail rule: its last bytes are always a record."""

    def _load(self, *, locked):
        with patched(journal, "scan", _scan_taking_the_tail):
            return super()._load(locked=locked)


class JournalCheckpointNoDirFsyncStore(JournalStore):
    """Writes each checkpoint (and a new log) without fsyncing the directory after its renames."""

    def _checkpoint(self, ledger, view) -> None:
        with skipping(os.path.dirname(self.trade_log), "dirfsync"):
            super()._checkpoint(ledger, view)


def _apply_appending(ledger, record: dict) -> None:
    # the bug: the record's trades are appended, the ones with the same ids kept too
    ledger.__init__([*ledger.trades, *record["trades"]], record["next_id"], ledger.extra)


class JournalReplayTwiceStore(JournalStore):
    """Replays each record by appending its trades, never replacing the trade with its id."""

    def _load(self, *, locked):
        with patched(journal, "apply", _apply_appending):
            return super()._load(locked=locked)


def journal_no_fsync(trade_log, lock_file=None, **limits):
    """Flaw: journal format, records appended but never fsynced (a power cut loses acknowledged writes)."""
    return JournalNoFsyncStore(trade_log, lock_file, **limits)


def journal_torn_accepted(trade_log, lock_file=None, **limits):
    """Mutant: journal format, a torn or checksum-failing last frame is replayed as a record."""
    return JournalTornAcceptedStore(trade_log, lock_file, **limits)


def journal_checkpoint_no_dir_fsync(trade_log, lock_file=None, **limits):
    """Flaw: journal format, checkpoints renamed without the directory fsync (a power cut undoes them)."""
    return JournalCheckpointNoDirFsyncStore(trade_log, lock_file, **limits)


def journal_replay_twice(trade_log, lock_file=None, **limits):
    """Mutant: journal format, the replay appends a record's trades instead of replacing them by id."""
    return JournalReplayTwiceStore(trade_log, lock_file, **limits)


TARGETS = {
    "unsafe-no-fsync": no_fsync,
    "unsafe-no-dir-fsync": no_dir_fsync,
    "unsafe-ignores-short-writes": ignores_short_writes,
    "unsafe-cache-ignores-inode": cache_ignores_inode,
    "unsafe-reconcile-two-reads": reconcile_two_reads,
    "journal-no-fsync": journal_no_fsync,
    "journal-torn-accepted": journal_torn_accepted,
    "journal-checkpoint-no-dirfsync": journal_checkpoint_no_dir_fsync,
    "journal-replay-twice": journal_replay_twice,
}
