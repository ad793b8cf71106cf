"""TradeStore: the one gateway through which processes change the trade log.

Every write is a transaction of the shared core (:mod:`tradestore.core`): lock -> load (parse
at most once, not at all if the file is unchanged since this process last saw it) -> Ledger
operation (validation and every risk check) -> integrity (no new violation) -> atomic write ->
verify -> unlock. This module is the file backend: the lock, the load and the write. Because the checks run
under the same lock as the write, no other process can change what they saw before the write
lands. A call that raises a TradeStoreError has written nothing; one that raises an OSError
from the disk has left a valid log, holding the old version or (if only the final directory
fsync failed) the new one, never acknowledged.
"""

from __future__ import annotations

import logging
import os
import threading
import weakref
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime

from . import atomic, integrity, logfile, recovery, risk
from .core import LedgerStore, Transaction, utc_now
from .errors import (
    CorruptTradeLog, IntegrityError, NestedTransactionError, RecoveryRefused, TradeStoreError, UnsafePath,
)
from .ledger import Ledger
from .values import MAX_ID_NUMBER, describe, format_id
from .locking import FileLock, check_timeout

log = logging.getLogger("tradestore.store")
from .risk import RiskLimits

__all__ = ["TradeStore", "Transaction", "file_identity", "utc_now"]

Identity = tuple[int, int, int, int]


def file_identity(st: os.stat_result) -> Identity:
    """Device, inode, size and mtime of a file."""
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


class _Version:
    """One version of the log as this process parsed or wrote it, with that file kept open.

    Keeping the file open keeps its inode allocated, so no later file can get the same device
    and inode number: a path whose identity equals ours really is this version (size and
    mtime catch in-place edits by programs that ignore the protocol). Without the open file, a
    freed inode reused by a later write of the same size within one mtime tick (coarse
    timestamps) would pass for this version and a write would start from stale data.
    """

    def __init__(self, handle, ledger: Ledger) -> None:
        self.handle = handle
        self.ledger = ledger
        self.identity = file_identity(os.fstat(handle.fileno()))

    def close(self) -> None:
        # A read-only descriptor: a failing close (EIO on some file systems) cannot lose data,
        # and must not stop the caller from dropping this version.
        try:
            self.handle.close()
        except OSError:
            pass


_stores: weakref.WeakSet[TradeStore] = weakref.WeakSet()


def _reset_stores_after_fork() -> None:
    # A forked child must not inherit a transaction in progress, a thread lock held by a
    # parent thread that does not exist here, or the parent's lock bookkeeping.
    for store in list(_stores):
        store._start_fresh()


os.register_at_fork(after_in_child=_reset_stores_after_fork)


class TradeStore(LedgerStore):
    """A trade log on disk, safe to share between processes and threads.

    Limits are ``limits=`` (a :class:`tradestore.risk.RiskLimits`) and/or its fields as keyword
    options (``max_positions=5``), with the defaults of RiskLimits; ``risk_checks`` are
    extra checks ``fn(ledger, proposal) -> reason | None`` run under the lock after the
    built-in ones. The transaction, the writes and the reads are the shared core's
    (:class:`tradestore.core.LedgerStore`); this class is how they reach a file. ``clock``
    returns the current time as an aware datetime (default: UTC now).
    ``on_integrity_violation(violations)`` is called when a write is refused for integrity or
    when the post-write verification finds the log is not the file just written.

    Files (see :mod:`tradestore.logfile`): ``trade_log`` is used by its real path (symlinks
    resolved); the lock file is always that path plus ``.lock``, and ``lock_file``, if given,
    must name that same file (UnsafePath otherwise: two lock files for one log exclude
    nothing). A log, backup or lock file that is not a regular file, or a lock file that is the
    log or its backup under another name, is refused here at once (UnsafePath).
    ``lock_timeout``: seconds, or None / ``math.inf`` to wait forever; NaN and negatives raise
    ValueError.
    """

    def __init__(
        self,
        trade_log: str | os.PathLike[str],
        lock_file: str | os.PathLike[str] | None = None,
        *,
        limits: RiskLimits | None = None,
        risk_checks: Iterable[risk.Check] = (),
        lock_timeout: float | None = 30.0,
        fsync: bool = True,
        keep_backup: bool = True,
        clock: Callable[[], datetime] | None = None,
        on_integrity_violation: Callable[[list[str]], object] | None = None,
        **limit_options,
    ) -> None:
        self.trade_log = logfile.resolve(trade_log)
        self.lock_file = logfile.check_lock_file(self.trade_log, lock_file)
        for path in (self.trade_log, atomic.backup_path(self.trade_log)):
            logfile.check_regular_if_present(path)
        self._lock_timeout = check_timeout(lock_timeout, "lock_timeout")
        super().__init__(
            limits=limits,
            risk_checks=risk_checks,
            clock=clock,
            on_integrity_violation=on_integrity_violation,
            **limit_options,
        )
        self.fsync = fsync
        self.keep_backup = keep_backup
        self._cache: _Version | None = None
        self._start_fresh()
        _stores.add(self)

    def _start_fresh(self) -> None:
        """Per-process state: a new store, or the copy of one in a forked child."""
        self._lock = FileLock(self.lock_file, timeout=self._lock_timeout)
        self._state = threading.RLock()  # guards the cache between threads of this process
        self._local = threading.local()
        self._set_cache(None)

    def _set_cache(self, version: _Version | None) -> None:
        previous, self._cache = self._cache, version
        if previous is not None and previous is not version:
            previous.close()

    # -- loading ------------------------------------------------------------------------

    def _load(self) -> Ledger:
        """The current ledger: the cached one if the file is unchanged, else parsed once.

        A missing log is empty unless its backup exists (then it was lost: CorruptTradeLog);
        a path that is not a regular file raises UnsafePath without blocking
        (:func:`tradestore.logfile.open_log`, the reconciler's decision too).
        """
        try:
            st = os.stat(self.trade_log)
        except FileNotFoundError:
            st = None
        if st is not None and self._cache is not None and self._cache.identity == file_identity(st):
            return self._cache.ledger
        self._set_cache(None)
        try:
            handle = logfile.open_log(self.trade_log)
        except CorruptTradeLog as exc:
            log.error("%s", exc)
            raise
        if handle is None:
            return Ledger()
        try:
            ledger = Ledger.from_json(handle.read(), source=self.trade_log)
        except CorruptTradeLog as exc:
            handle.close()
            log.error("unreadable trade log: %s", exc)
            raise CorruptTradeLog(f"{exc}; {logfile.recover_hint(self.trade_log)}") from exc
        except BaseException:
            handle.close()
            raise
        self._set_cache(_Version(handle, ledger))
        return ledger

    # -- the write path -----------------------------------------------------------------

    # -- the file backend of the core's transaction -----------------------------------

    @contextmanager
    def _begin(self) -> Iterator[Ledger]:
        """Take the lock, sweep stray temps and load; forget the cache if the block raises."""
        if self._lock.held_by_current_thread():
            raise NestedTransactionError(
                f"this thread already holds the lock of {self.trade_log} through another "
                "TradeStore or FileLock; do both changes in one transaction of one store"
            )
        # The process lock first, then the cache: readers of this process wait for a write in
        # progress, never for a writer that is still waiting on another process.
        with self._lock, self._state:
            atomic.sweep_stray_temps(self.trade_log)
            ledger = self._load()
            try:
                yield ledger
            except TradeStoreError:
                # A refusal changes nothing before it raises: an operation that changed nothing
                # keeps the parsed version (a refused open must not cost the next write a parse).
                if ledger.changed:
                    self._set_cache(None)
                raise
            except BaseException:
                # The ledger may hold half-applied changes; the next load re-reads the file.
                self._set_cache(None)
                raise

    def _persist(self, ledger: Ledger) -> None:
        """Write the whole log atomically, then verify the path holds the file just written."""
        written = self._write_log(ledger.to_json())
        ledger.mark_clean()
        # Verify: the log at the path is the file just written (and keep it open, see _Version).
        # Opened without blocking: a FIFO put there by another program must not hang us here.
        try:
            version: _Version | None = _Version(logfile.open_regular(self.trade_log), ledger)
        except (OSError, UnsafePath):  # gone, or no longer a regular file
            version = None
        if version is None or version.identity != file_identity(written):
            # Someone replaced the log without holding the lock: do not trust our copy.
            if version is not None:
                version.close()
            self._set_cache(None)
            self._report([f"{self.trade_log} changed right after this write: a writer ignores the lock"])
        else:
            self._set_cache(version)

    def _write_log(self, data: bytes) -> os.stat_result:
        """Replace the log with ``data``, atomically (and durably with ``fsync``).

        Returns the stat of the file written, which the commit verifies is the log afterwards.
        """
        return atomic.write_atomic(self.trade_log, data, fsync=self.fsync, keep_backup=self.keep_backup)

    @contextmanager
    def _snapshot(self) -> Iterator[Ledger]:
        # No lock: os.replace makes every read see one complete version.
        with self._state:
            yield self._load()

    # -- recovery -----------------------------------------------------------------------

    def recover(self, *, force: bool = False, next_id: int | None = None) -> str:
        """Restore an unreadable or lost log from its backup; returns a one-line summary.

        Guarantees, all under the writers' lock:

        - a readable log is never replaced: without ``force`` the summary says there is nothing
          to recover; with ``force`` RecoveryRefused names the trades the backup lacks (the
          backup is one write older, so restoring it would drop them);
        - no id is ever reused: the restored ``next_id`` is raised past every id and
          ``next_id`` still legible in the damaged log, and past ``next_id`` if given. When the
          damaged log shows no ``next_id`` (it is missing, or destroyed from its first bytes)
          the ids its last write gave out are unknown: RecoveryRefused, unless ``next_id``
          says where ids may continue;
        - no version is destroyed: the damaged log is kept under a new unique name
          (``<log>.corrupt-<time>-<n>``, a hard link) before the log is replaced, and the
          backup is left as it is;
        - the summary names the trades the damaged log holds that the backup lacks (dropped,
          their ids not reused) and where the damaged log was kept;
        - stray temp files are swept first, as every writer does; a crash at any point leaves
          either the damaged log (run recover again) or the restored one.

        The backup must be readable and free of integrity violations (CorruptTradeLog /
        IntegrityError otherwise, nothing changed).
        """
        if next_id is not None and (isinstance(next_id, bool) or not isinstance(next_id, int)
                                    or not 1 <= next_id <= MAX_ID_NUMBER + 1):
            raise ValueError(f"next_id={describe(next_id)}: expected an integer from 1 to "
                             f"{MAX_ID_NUMBER + 1}, above every trade id given out")
        backup = atomic.backup_path(self.trade_log)
        with self._lock, self._state:
            atomic.sweep_stray_temps(self.trade_log)
            self._set_cache(None)
            try:
                current = self._load()
            except CorruptTradeLog:
                current = None
            if current is not None and not force:
                return f"{self.trade_log} is readable ({len(current.trades)} trades); nothing to recover"
            restored = self._read_backup(backup)
            if current is not None:
                lacking = sorted({t["id"] for t in current.trades} - {t["id"] for t in restored.trades})
                raise RecoveryRefused(
                    f"{self.trade_log} is readable ({len(current.trades)} trades): recover never "
                    f"replaces a readable log, since the backup lacks the last write "
                    f"(trades not in it: {', '.join(lacking) or 'none, but changes to others'}); "
                    "to undo a trade, close or update it instead")
            damaged = self._read_damaged()
            found = recovery.salvage(damaged)
            if found.next_id is None and next_id is None:
                where = "is missing" if damaged is None else "shows no next_id"
                raise RecoveryRefused(
                    f"{self.trade_log} {where}, so the ids its last write gave out are unknown and "
                    f"restoring {backup} (next id {format_id(restored.next_id)}) could give an "
                    "acknowledged id to another trade; pass next_id=N (`tradestore recover "
                    "--next-id N`) with N above every trade id your bots were given")
            backup_next = restored.next_id
            restored.next_id = max(backup_next, found.floor(), next_id or 1)
            kept = recovery.keep_copy(self.trade_log) if damaged is not None else None
            self._write_restored(restored)
            # Every id below the backup's next_id is in the backup; those from it up to the new
            # next_id were given out after it (or appear so in damaged bytes): gone, never reused.
            summary = (
                f"restored {self.trade_log} from {backup}: {len(restored.trades)} trades, next id "
                f"{format_id(restored.next_id)}; dropped (not in the backup, ids not reused): "
                f"{recovery.describe_range(backup_next, restored.next_id)}; other changes of the "
                "last write are lost too"
                + (f"; the damaged log is kept as {kept}" if kept else "; the log was missing"))
            log.warning("%s", summary)
            return summary

    def _read_backup(self, backup: str) -> Ledger:
        try:
            with logfile.open_regular(backup) as f:
                data = f.read()
        except FileNotFoundError:
            raise CorruptTradeLog(f"no backup {backup} to recover from") from None
        restored = Ledger.from_json(data, source=backup)
        problems = integrity.ledger_violations(restored)
        if problems:
            raise IntegrityError([f"backup {backup}: {p}" for p in problems])
        return restored

    def _read_damaged(self) -> bytes | None:
        try:
            with logfile.open_regular(self.trade_log) as f:
                return f.read()
        except FileNotFoundError:
            return None

    def _write_restored(self, restored: Ledger) -> None:
        # No new backup: the backup is the version restored, and stays as it is.
        atomic.write_atomic(self.trade_log, restored.to_json(), fsync=self.fsync)
        self._set_cache(None)
