"""TradeStore: the one gateway through which processes change the trade log.

Every write is a transaction of the shared core (:mod:`tradestore.core`): lock -> load (parse
at most once, not at all if the file is unchanged since this process last saw it) -> Ledger
operation (validation and every risk check) -> integrity (no new violation) -> atomic write ->
verify -> unlock. This module is the file backend: the lock, the load and the write. Because the checks run
under the same lock as the write, no other process can change what they saw before the write
lands. A call that raises a TradeStoreError has written nothing; one that raises an OSError
from the disk has left a valid log, holding the old version or (if only the final directory
fsync failed) the new one, never acknowledged.

The write is in the log's format: the whole document replaced (``log_format="document"``), or
one record appended to the journal and fsynced (``"journal"``, :mod:`tradestore.journal`), which
costs the same at any history size; a load then reads only what other processes appended.
"""

from __future__ import annotations

import logging
import os
import threading
import weakref
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from datetime import datetime

from . import atomic, integrity, journal, logfile, recovery, risk
from .core import LedgerStore, Transaction, utc_now
from .errors import (
    ConversionRefused, CorruptTradeLog, IntegrityError, NestedTransactionError, RecoveryRefused, StoreStopped,
    TradeStoreError, UnsafePath,
)
from .ledger import Ledger
from .values import MAX_ID_NUMBER, describe, format_id
from . import locking
from .locking import FileLock, check_timeout

log = logging.getLogger("tradestore.store")
from .risk import RiskLimits

__all__ = ["TradeStore", "Transaction", "file_identity", "utc_now"]

file_identity = logfile.file_identity


class _Version:
    """One version of the log as this process parsed or wrote it, with that file kept open.

    Keeping the file open keeps its inode allocated, so no later file can get the same device
    and inode number: a path whose identity equals ours really is this version (size and
    mtime catch in-place edits by programs that ignore the protocol). Without the open file, a
    freed inode reused by a later write of the same size within one mtime tick (coarse
    timestamps) would pass for this version and a write would start from stale data.
    """

    def __init__(self, handle, ledger: Ledger, loaded: journal.Loaded | None = None) -> None:
        self.handle = handle
        self.ledger = ledger
        self.identity = file_identity(os.fstat(handle.fileno()))
        # The journal format: the checkpoint's hash and the journal followed (see journal.load).
        self.journal_format = loaded is not None and loaded.journal_format
        self.checkpoint_sha = loaded.checkpoint_sha if loaded is not None else None
        self.journal = loaded.journal if loaded is not None else None

    def close(self) -> None:
        # A read-only descriptor: a failing close (EIO on some file systems) cannot lose data,
        # and must not stop the caller from dropping this version.
        try:
            self.handle.close()
        except OSError:
            pass
        if self.journal is not None:
            self.journal.close()


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

    ``log_format``: ``"document"`` (the default: one JSON document rewritten by every write,
    the seed's format) or ``"journal"`` (each write appends one record to ``<log>.journal``; the
    log is a checkpoint rewritten now and then: :mod:`tradestore.journal`). It decides the
    format of a log that does not exist yet; an existing log is read and written in the format
    it has (``tradestore convert`` changes it). In the journal format, reads take the lock
    (briefly) to read the journal, and ``keep_backup`` does not apply: the journal protocol keeps
    the previous checkpoint until the new one is durable.
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
        log_format: str = "document",
        **limit_options,
    ) -> None:
        self.log_format = journal.check_format(log_format)
        self.trade_log = logfile.resolve(trade_log)
        self.journal_file = journal.journal_path(self.trade_log)
        self.lock_file = logfile.check_lock_file(self.trade_log, lock_file)
        self._check_paths()
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

    def _check_paths(self) -> None:
        """UnsafePath unless the log, its backup and its journal are each a regular file or
        absent, and the lock file is not one of them by another name (no open, no wait)."""
        for path in (self.trade_log, atomic.backup_path(self.trade_log), self.journal_file):
            logfile.check_regular_if_present(path)
        logfile.check_lock_file(self.trade_log, self.lock_file)

    def _start_fresh(self) -> None:
        """Per-process state: a new store, or the copy of one in a forked child."""
        self._lock = FileLock(self.lock_file, timeout=self._lock_timeout)
        self._state = threading.RLock()  # guards the cache between threads of this process
        self._local = threading.local()
        self._stopped: StoreStopped | None = None
        self._set_cache(None)

    def _set_cache(self, version: _Version | None) -> None:
        previous, self._cache = self._cache, version
        if previous is not None and previous is not version:
            previous.close()

    # -- loading ------------------------------------------------------------------------

    def _load(self, *, locked: bool) -> Ledger:
        """The current ledger: the cached one if the file is unchanged, else parsed once.

        A missing log is empty unless its backup exists (then it was lost: CorruptTradeLog);
        a path that is not a regular file raises UnsafePath without blocking
        (:func:`tradestore.logfile.open_log`, the reconciler's decision too). ``locked``: the
        caller holds the writers' lock; only then is a journal read (journal.LockNeeded
        otherwise). Never creates a file: not even the lock file.
        """
        try:
            st = os.stat(self.trade_log)
        except FileNotFoundError:
            st = None
        cache = self._cache
        if st is not None and cache is not None:
            if cache.journal is None and cache.identity == file_identity(st):
                return cache.ledger
            if cache.journal is not None:
                try:
                    followed = self._follow_journal(cache, st)
                except BaseException:
                    self._set_cache(None)  # nothing half-read is kept: the next load reads it all
                    raise
                if followed:
                    return cache.ledger
        self._set_cache(None)
        try:
            handle = logfile.open_log(self.trade_log)
        except CorruptTradeLog as exc:
            log.error("%s", exc)
            raise
        if handle is None:
            # A new log; or a conversion cut short beside a journal, or a lost checkpoint.
            loaded = journal.load(self.trade_log, None, locked=locked)
            if loaded.journal is not None:
                loaded.journal.close()
            return loaded.ledger
        data = None
        try:
            data = handle.read()
            loaded = journal.load(self.trade_log, data, locked=locked)
        except CorruptTradeLog as exc:
            handle.close()
            log.error("unreadable trade log: %s", exc)
            journal_format = os.path.lexists(self.journal_file) or journal.looks_like_checkpoint(data)
            hint = journal.REPAIR_HINT if journal_format else logfile.recover_hint(self.trade_log)
            raise CorruptTradeLog(f"{exc}; {hint}") from exc
        except BaseException:
            handle.close()
            raise
        self._set_cache(_Version(handle, loaded.ledger, loaded))
        return loaded.ledger

    def _follow_journal(self, cache: _Version, st: os.stat_result) -> bool:
        """Bring a cached journal-format state up to date by reading only what is new.

        True if done: the journal's new records applied, or a new journal that continues the
        one read here adopted (the checkpoint at the path is the one it names, by identity).
        False: read everything again.
        """
        view = cache.journal
        try:
            current = os.stat(self.journal_file)
        except FileNotFoundError:
            return False
        if not view.intact():
            return False
        view.read_tail(cache.ledger)
        if (current.st_dev, current.st_ino) == view.identity:
            return cache.identity == file_identity(st)
        successor = journal.successor(self.journal_file, view, file_identity(st), cache.ledger)
        handle = self._open_log_if(file_identity(st)) if successor is not None else None
        if handle is None:
            if successor is not None:
                successor.close()
            return False
        adopted = _Version(handle, cache.ledger, journal.Loaded(cache.ledger, True, successor.header["checkpoint"],
                                                                 successor))
        cache.journal = None  # closed with the old version, not with the adopted one
        view.close()
        self._set_cache(adopted)
        return True

    # -- the write path -----------------------------------------------------------------

    # -- the file backend of the core's transaction -----------------------------------

    @contextmanager
    def _begin(self) -> Iterator[Ledger]:
        """Take the lock, sweep stray temps and load; forget the cache if the block raises."""
        self._check_running()  # first: a stopped store holds the lock itself, on purpose
        self._check_lock_free("do both changes in one transaction of one store")
        # The process lock first, then the cache: readers of this process wait for a write in
        # progress, never for a writer that is still waiting on another process.
        with self._lock, self._state:
            self._check_running()
            atomic.sweep_stray_temps(self.trade_log)
            atomic.sweep_stray_temps(self.journal_file)
            ledger = self._load(locked=True)
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

    def _check_lock_free(self, advice: str) -> None:
        """Refuse to take the lock this thread already holds through another store or a
        FileLock: what it then wrote, the outer holder's commit would overwrite."""
        if self._lock.held_by_current_thread():
            raise NestedTransactionError(
                f"this thread already holds the lock of {self.trade_log} through another "
                f"TradeStore or FileLock; {advice}")

    def _check_running(self) -> None:
        if self._stopped is not None:
            raise StoreStopped(str(self._stopped))

    def _persist(self, ledger: Ledger) -> None:
        """Write in the log's format: a journal record, or the whole document."""
        self._lock.check_held()  # the lock file removed meanwhile: another writer may be in
        cache = self._cache
        if cache is not None and cache.journal_format or cache is None and self.log_format == "journal":
            self._persist_journal(ledger, cache)
            return
        if cache is not None and cache.journal is not None:
            # A journal the document already holds (a conversion cut short): removed first, so
            # no later document is ever read beside a journal it does not know.
            journal.remove(self.trade_log, fsync=self.fsync)
        self._persist_document(ledger)

    def _persist_journal(self, ledger: Ledger, cache: _Version | None) -> None:
        """Append one record (acknowledged once fsynced); start or fold a journal when due."""
        view = cache.journal if cache is not None else None
        if view is None:  # a new log
            self._checkpoint(ledger, None)
            return
        if not view.current:
            # The checkpoint already holds this journal (a checkpoint cut short): a new one first.
            cache.journal = journal.start(self.trade_log, cache.checkpoint_sha, view,
                                          os.fstat(cache.handle.fileno()), fsync=self.fsync)
            view.close()
            view = cache.journal
            if view is None:
                self._set_cache(None)
                self._report([f"{self.journal_file} changed right after this write: a writer ignores the lock"])
                raise CorruptTradeLog(f"{self.journal_file} was replaced by a writer that ignores the lock; "
                                      "nothing was written")
        frame = journal.record_frame(ledger, view.records + 1)
        if frame is None:  # a write too large for one record: the whole state as a checkpoint
            self._checkpoint(ledger, view)
            return
        try:
            appended = view.append(frame, fsync=self.fsync)
        except StoreStopped as exc:
            self._stop(exc)
            raise
        except BaseException:
            self._set_cache(None)
            raise
        if not appended:  # the journal has another name too: give this log its own
            self._checkpoint(ledger, view)
            return
        ledger.mark_clean()
        if journal.needs_checkpoint(view, self._cache.identity[2]):
            try:
                self._checkpoint(ledger, view)
            except OSError as exc:
                # The write is committed in the journal; the next write tries again.
                self._set_cache(None)
                log.warning("checkpoint of %s failed (%s); the journal keeps every write", self.trade_log, exc)

    def _checkpoint(self, ledger: Ledger, view: journal.JournalView | None) -> None:
        """Fold the whole state into a new checkpoint and journal, then follow them (as the
        document write does, verifying that the files at the paths are the ones written)."""
        try:
            written, sha, new_view = journal.checkpoint(self.trade_log, ledger, view, fsync=self.fsync)
        except journal.JournalNotStarted as exc:
            self._set_cache(None)
            log.warning("%s", exc)
            return
        self._follow_written(written, ledger, journal.Loaded(ledger, True, sha, new_view))

    def _stop(self, exc: StoreStopped) -> None:
        """Refuse every later call, and keep the lock until this process ends (see StoreStopped)."""
        self._stopped = exc
        locking.poison(self.lock_file, exc)  # no reader in this process either
        log.critical("%s", exc)

    def _persist_document(self, ledger: Ledger) -> None:
        """Write the whole log atomically, then verify the path holds the file just written."""
        written = self._write_log(ledger.to_json())
        ledger.mark_clean()
        self._follow_written(written, ledger)

    def _follow_written(self, written: os.stat_result, ledger: Ledger,
                        loaded: journal.Loaded | None = None) -> None:
        """Cache ``ledger`` as the version just written, if the log at the path is that file.

        Else (someone replaced the log without holding the lock) report it and trust nothing:
        the next load reads the files again. The file is kept open (see _Version); it is opened
        without blocking, so a FIFO put there by another program cannot hang us here.
        """
        handle = self._open_log_if(file_identity(written))
        if handle is None or (loaded is not None and loaded.journal is None):
            for opened in (handle, loaded and loaded.journal):
                if opened is not None:
                    opened.close()
            self._set_cache(None)
            self._report([f"{self.trade_log} changed right after this write: a writer ignores the lock"])
            return
        self._set_cache(_Version(handle, ledger, loaded))

    def _open_log_if(self, identity: tuple[int, int, int, int]):
        """The log, open, if it is the file of ``identity``; None if not (or gone, or not regular)."""
        try:
            handle = logfile.open_regular(self.trade_log)
        except (OSError, UnsafePath):
            return None
        if file_identity(os.fstat(handle.fileno())) != identity:
            handle.close()
            return None
        return handle

    def _write_log(self, data: bytes) -> os.stat_result:
        """Replace the log with ``data``, atomically (and durably with ``fsync``).

        Returns the stat of the file written, which the commit verifies is the log afterwards.
        """
        return atomic.write_atomic(self.trade_log, data, fsync=self.fsync, keep_backup=self.keep_backup)

    @contextmanager
    def _snapshot(self) -> Iterator[Ledger]:
        # A document needs no lock: os.replace makes every read see one complete version. A
        # journal is read holding the lock, so only finished writers' frames are seen.
        self._check_running()
        with self._state:
            cache = self._cache
            if cache is None or cache.journal is None:
                try:
                    ledger = self._load(locked=False)
                except journal.LockNeeded:
                    pass
                else:
                    yield ledger
                    return
        with self._lock, self._state:
            yield self._load(locked=True)

    def _check_export_path(self, path: str) -> None:
        logfile.check_not_log_file(path, self.trade_log, "export file")

    # -- formats ------------------------------------------------------------------------

    def convert(self, log_format: str) -> str:
        """Rewrite the log in ``log_format`` ("document" or "journal"); returns a summary.

        Under the writers' lock, and safe against a crash at any point (the log is then in its
        old format or its new one, every acknowledged write in it):

        - to the journal: the journal naming the checkpoint about to be written, then the
          checkpoint (``schema: 3``) itself;
        - to the document: the document (``schema: 2``, marked as holding the journal's
          records), then the journal is removed.
        """
        target = journal.check_format(log_format)
        self._check_no_transaction("convert()")
        self._check_lock_free("convert after that hold ends")
        with self._lock, self._state:
            self._check_running()
            atomic.sweep_stray_temps(self.trade_log)
            atomic.sweep_stray_temps(self.journal_file)
            ledger = self._load(locked=True)
            cache = self._cache
            if cache is None:
                return f"{self.trade_log} does not exist yet; nothing to convert"
            count = len(ledger.trades)
            if (target == "journal") == cache.journal_format:
                return f"{self.trade_log} is already in the {target} format ({count} trades)"
            self._lock.check_held()
            view = cache.journal
            if target == "journal":
                if journal.MARKER in ledger.extra:
                    raise ConversionRefused(
                        f"{self.trade_log} has its own top-level key {journal.MARKER!r}, which a "
                        "journal-format checkpoint uses for its marker: converting would drop it; "
                        "rename or remove that key, then convert (nothing was changed)")
                self._checkpoint(ledger, view)
            else:
                marker = {"folds": view.id, "folded": view.records}
                atomic.write_atomic(self.trade_log, ledger.to_json(head_keys={journal.MARKER: marker}),
                                    fsync=self.fsync)
                journal.remove(self.trade_log, fsync=self.fsync)
                self._set_cache(None)
        summary = f"converted {self.trade_log} to the {target} format ({count} trades)"
        log.warning("%s", summary)
        return summary

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
        self._check_no_transaction("recover()")
        self._check_lock_free("recover after that hold ends")
        with self._lock, self._state:
            if os.path.lexists(self.journal_file) or journal.looks_like_checkpoint(self._read_damaged()):
                # Its backup (if any) is from before the journal: restoring it would drop every
                # write since, and give their ids out again.
                raise RecoveryRefused(f"{self.trade_log} is a journal-format log: {journal.REPAIR_HINT}")
            atomic.sweep_stray_temps(self.trade_log)
            self._set_cache(None)
            try:
                current = self._load(locked=True)
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
        self._lock.check_held()
        atomic.write_atomic(self.trade_log, restored.to_json(), fsync=self.fsync)
        self._set_cache(None)
