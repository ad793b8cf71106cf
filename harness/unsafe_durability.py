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
"""

from __future__ import annotations

import os
from typing import Any

from tradestore import StateReconciler, TradeStore, atomic
from tradestore import reconciler as reconciler_module
from tradestore import store as store_module
from tradestore_harness.fsfaults import skipping
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


def _hash_one_read_derive_another(path: str):
    data, _ = _read_log(path)
    _, ledger = _read_log(path)  # the bug: a second read, which may be another version
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

TARGETS = {
    "unsafe-no-fsync": no_fsync,
    "unsafe-no-dir-fsync": no_dir_fsync,
    "unsafe-ignores-short-writes": ignores_short_writes,
    "unsafe-cache-ignores-inode": cache_ignores_inode,
    "unsafe-reconcile-two-reads": reconcile_two_reads,
}
