"""TradeStore: the one gateway through which processes change the trade log.

Every write is a transaction: lock -> load (parse at most once, not at all if the file is
unchanged since this process last saw it) -> Ledger operation (validation and every risk check)
-> integrity (no new violation) -> atomic write -> verify -> unlock. Because the checks run
under the same lock as the write, no other process can change what they saw before the write
lands. A call that raises a TradeStoreError has written nothing; one that raises an OSError
from the disk has left a valid log, holding the old version or (if only the final directory
fsync failed) the new one, never acknowledged.
"""

from __future__ import annotations

import copy
import os
import threading
import weakref
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime, timezone

from . import atomic, integrity, risk
from .errors import CorruptTradeLog, IntegrityError, NestedTransactionError
from .ledger import Ledger, format_id, normalize_symbol
from .locking import FileLock
from .risk import Proposal, RiskLimits

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
        self.handle.close()


_stores: weakref.WeakSet[TradeStore] = weakref.WeakSet()


def _reset_stores_after_fork() -> None:
    # A forked child must not inherit a transaction in progress, a thread lock held by a
    # parent thread that does not exist here, or the parent's lock bookkeeping.
    for store in list(_stores):
        store._start_fresh()


os.register_at_fork(after_in_child=_reset_stores_after_fork)


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


class Transaction:
    """Operations inside :meth:`TradeStore.transaction`: all see each other, commit together."""

    def __init__(self, store: TradeStore, ledger: Ledger) -> None:
        self._store = store
        self.ledger = ledger

    def _now(self) -> datetime:
        return self._store.now()

    # Records are handed out as copies: a caller changing one must not change the log.

    def open_trade(self, symbol, direction, entry_price, stop_price, target_price, size,
                   setup_type="", grade="", notes="") -> dict:
        s = self._store
        return copy.deepcopy(self.ledger.open_trade(
            symbol, direction, entry_price, stop_price, target_price, size, setup_type, grade,
            notes, now=self._now(), limits=s.limits, checks=s.risk_checks,
        ))

    def close_trade(self, trade_id, exit_price, exit_reason="", lessons="") -> dict:
        return copy.deepcopy(self.ledger.close_trade(trade_id, exit_price, exit_reason, lessons, now=self._now()))

    def partial_close(self, trade_id, close_pct, exit_price, reason="Partial TP") -> dict:
        return copy.deepcopy(self.ledger.partial_close(trade_id, close_pct, exit_price, reason, now=self._now()))

    def update_trade(self, trade_id, updates: Mapping) -> dict:
        return copy.deepcopy(self.ledger.update_trade(trade_id, updates))

    def update_trades_batch(self, batch: Iterable) -> int:
        return self.ledger.update_trades_batch(batch)


class TradeStore:
    """A trade log on disk, safe to share between processes and threads.

    Limits are keyword options (see :class:`tradestore.risk.RiskLimits`); ``risk_checks`` are
    extra checks ``fn(ledger, proposal) -> reason | None`` run under the lock after the
    built-in ones. ``clock`` returns the current time as an aware datetime (default: UTC now).
    ``on_integrity_violation(violations)`` is called when a write is refused for integrity or
    when the post-write verification finds the log is not the file just written.
    """

    def __init__(
        self,
        trade_log: str | os.PathLike[str],
        lock_file: str | os.PathLike[str] | None = None,
        *,
        max_positions: int = 7,
        starting_capital: float = 5000.0,
        correlation_groups: Mapping[str, Iterable[str]] | None = None,
        max_corr_group_risk_pct: float = 4.0,
        asset_consecutive_loss_cap: int | None = 3,
        loss_cap_cooldown_hours: float | None = None,
        max_drawdown_pct: float | None = None,
        max_daily_loss_pct: float | None = None,
        max_portfolio_heat_pct: float | None = None,
        risk_checks: Iterable[risk.Check] = (),
        lock_timeout: float | None = 30.0,
        fsync: bool = True,
        keep_backup: bool = True,
        clock: Callable[[], datetime] | None = None,
        on_integrity_violation: Callable[[list[str]], object] | None = None,
    ) -> None:
        self.trade_log = os.path.abspath(os.fspath(trade_log))
        self.lock_file = os.path.abspath(os.fspath(lock_file)) if lock_file else self.trade_log + ".lock"
        if os.path.realpath(self.lock_file) in {
            os.path.realpath(p) for p in (self.trade_log, atomic.backup_path(self.trade_log))
        }:
            # Locking writes a pid hint into the lock file, which would overwrite the log.
            raise ValueError(f"lock_file {self.lock_file} must not be the trade log or its backup")
        limits = dict(
            max_positions=max_positions,
            starting_capital=starting_capital,
            max_corr_group_risk_pct=max_corr_group_risk_pct,
            asset_consecutive_loss_cap=asset_consecutive_loss_cap,
            loss_cap_cooldown_hours=loss_cap_cooldown_hours,
            max_drawdown_pct=max_drawdown_pct,
            max_daily_loss_pct=max_daily_loss_pct,
            max_portfolio_heat_pct=max_portfolio_heat_pct,
        )
        if correlation_groups is not None:
            # Copied, so the caller's lists cannot change the limits later; a bare string is
            # left as it is for RiskLimits to refuse (tuple("BTC") would be three symbols).
            limits["correlation_groups"] = {
                k: v if isinstance(v, str) else tuple(v) for k, v in dict(correlation_groups).items()
            }
        self.limits = RiskLimits(**limits)
        self.risk_checks = tuple(risk_checks)
        self.fsync = fsync
        self.keep_backup = keep_backup
        self._clock = clock or utc_now
        self._on_integrity_violation = on_integrity_violation
        self._lock_timeout = lock_timeout
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
        if self._cache is not None and self._cache is not version:
            self._cache.close()
        self._cache = version

    # -- time ---------------------------------------------------------------------------

    def now(self) -> datetime:
        moment = self._clock()
        # Naive times are taken as UTC; aware ones are converted, so "today" is a UTC day.
        return moment.astimezone(timezone.utc) if moment.tzinfo else moment.replace(tzinfo=timezone.utc)

    # -- loading ------------------------------------------------------------------------

    def _load(self) -> Ledger:
        """The current ledger: the cached one if the file is unchanged, else parsed once."""
        try:
            st = os.stat(self.trade_log)
        except FileNotFoundError:
            if os.path.exists(atomic.backup_path(self.trade_log)):
                raise CorruptTradeLog(
                    f"{self.trade_log} is missing but its backup exists; run "
                    f"`tradestore recover --log {self.trade_log}` to restore it"
                ) from None
            self._set_cache(None)
            return Ledger()
        if self._cache is not None and self._cache.identity == file_identity(st):
            return self._cache.ledger
        self._set_cache(None)
        handle = open(self.trade_log, "rb")
        try:
            ledger = Ledger.from_json(handle.read(), source=self.trade_log)
        except BaseException:
            handle.close()
            raise
        self._set_cache(_Version(handle, ledger))
        return ledger

    # -- the write path -----------------------------------------------------------------

    @contextmanager
    def transaction(self) -> Iterator[Transaction]:
        """Hold the lock across several operations and commit them with one atomic write.

        If the block raises, nothing is written. Nested use of the same store in the same
        thread joins the outer transaction. Opening a transaction while this thread holds the
        lock through another store raises :class:`NestedTransactionError` at once, because the
        outer commit would overwrite the inner one's write.
        """
        active = getattr(self._local, "transaction", None)
        if active is not None:
            yield active
            return
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
            ledger.mark_clean()
            before = integrity.open_symbol_violations(ledger)
            self._local.transaction = tx = Transaction(self, ledger)
            try:
                yield tx
                if ledger.changed:
                    self._commit(ledger, before)
            except BaseException:
                # The ledger may hold half-applied changes; the next load re-reads the file.
                self._set_cache(None)
                raise
            finally:
                self._local.transaction = None

    def _commit(self, ledger: Ledger, open_symbols_before: list[str]) -> None:
        problems = integrity.new_violations(open_symbols_before, ledger, ledger.changed)
        if problems:
            self._report(problems)
            raise IntegrityError(problems)
        written = self._write_log(ledger.to_json())
        ledger.mark_clean()
        # Verify: the log at the path is the file just written (and keep it open, see _Version).
        version = _Version(open(self.trade_log, "rb"), ledger)
        if version.identity != file_identity(written):
            # Someone replaced the log without holding the lock: do not trust our copy.
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

    def _report(self, problems: list[str]) -> None:
        if self._on_integrity_violation is not None:
            self._on_integrity_violation(list(problems))

    # -- public writes: each is a one-operation transaction -----------------------------

    def open_trade(self, symbol, direction, entry_price, stop_price, target_price, size,
                   setup_type="", grade="", notes="") -> dict:
        """Open a trade if input is valid and every risk check passes; return the stored record.

        Raises InvalidTrade, RiskRejected (``.check``, ``.reason``), CorruptTradeLog, LockTimeout.
        """
        with self.transaction() as tx:
            trade = tx.open_trade(symbol, direction, entry_price, stop_price, target_price, size,
                                  setup_type, grade, notes)
        return trade

    def close_trade(self, trade_id, exit_price, exit_reason="", lessons="") -> dict:
        """Close an OPEN trade at ``exit_price``; ``pnl_usd`` is the trade's net P&L."""
        with self.transaction() as tx:
            trade = tx.close_trade(trade_id, exit_price, exit_reason, lessons)
        return trade

    def partial_close(self, trade_id, close_pct, exit_price, reason="Partial TP") -> dict:
        """Close the fraction ``close_pct`` (0 < p < 1) of an OPEN trade's remaining size."""
        with self.transaction() as tx:
            trade = tx.partial_close(trade_id, close_pct, exit_price, reason)
        return trade

    def update_trade(self, trade_id, updates: Mapping) -> dict:
        """Change updatable fields (stop_price, target_price, notes, grade, setup_type)."""
        with self.transaction() as tx:
            trade = tx.update_trade(trade_id, updates)
        return trade

    def update_trades_batch(self, batch: Iterable) -> int:
        """Apply ``[(trade_id, updates), ...]`` all or nothing; return how many were applied."""
        with self.transaction() as tx:
            return tx.update_trades_batch(batch)

    # -- reads (no lock: os.replace makes every read see one complete version) ----------

    @contextmanager
    def _reading(self) -> Iterator[Ledger]:
        active = getattr(self._local, "transaction", None)
        if active is not None:
            yield active.ledger
            return
        with self._state:
            yield self._load()

    def get_all_trades(self) -> list[dict]:
        with self._reading() as ledger:
            return copy.deepcopy(ledger.trades)

    def get_open_trades(self) -> list[dict]:
        with self._reading() as ledger:
            return copy.deepcopy(ledger.open_trades())

    def get_closed_trades(self) -> list[dict]:
        with self._reading() as ledger:
            return copy.deepcopy(ledger.closed_trades())

    def get_trade(self, trade_id: str) -> dict:
        """The trade with ``trade_id``; raises TradeNotFound."""
        with self._reading() as ledger:
            return copy.deepcopy(ledger.get(trade_id))

    def get_open_symbols(self) -> list[str]:
        with self._reading() as ledger:
            return ledger.open_symbols()

    def position_count(self) -> int:
        with self._reading() as ledger:
            return len(ledger.open_trades())

    def get_next_id(self) -> str:
        """The id the next opened trade will get (advisory: another process may take it)."""
        with self._reading() as ledger:
            return format_id(ledger.next_id)

    def equity(self) -> float:
        """Starting capital plus realized P&L, from the log."""
        with self._reading() as ledger:
            return ledger.equity(self.limits.starting_capital)

    def can_open_position(self, symbol, direction="LONG", entry_price=None, stop_price=None,
                          size=None) -> tuple[bool, str]:
        """Advisory only: would a trade pass the checks right now? ``(ok, reason)``.

        Without prices the trade's own risk counts as 0. The answer can be stale the moment it
        is returned; ``open_trade`` repeats every check under the lock.
        """
        with self._reading() as ledger:
            if None in (entry_price, stop_price, size):
                proposal = Proposal(normalize_symbol(symbol), str(direction).upper(), 1.0, 1.0, 1.0,
                                    0.0, self.now(), self.limits)
            else:
                target = entry_price * (2 if stop_price < entry_price else 0.5)
                proposal = ledger.propose(symbol, direction, entry_price, stop_price, target, size,
                                          now=self.now(), limits=self.limits)
            refusal = risk.first_rejection(ledger, proposal, self.risk_checks)
        if refusal is None:
            return True, "ok"
        return False, f"{refusal[0]}: {refusal[1]}"

    def verify_integrity(self) -> list[str]:
        """Every integrity violation in the log as it is on disk now (empty list: all good)."""
        with self._reading() as ledger:
            return integrity.ledger_violations(ledger)

    # -- recovery -----------------------------------------------------------------------

    def recover(self, *, force: bool = False) -> str:
        """Restore the log from its backup (the previous version) after validating the backup.

        Only when the log is unreadable or missing, unless ``force``. The unreadable log is
        kept as ``<log>.corrupt`` for inspection. Returns a one-line summary.
        """
        backup = atomic.backup_path(self.trade_log)
        with self._lock, self._state:
            try:
                self._set_cache(None)
                current = self._load()
                if not force:
                    return f"{self.trade_log} is readable ({len(current.trades)} trades); nothing to recover"
            except CorruptTradeLog:
                pass
            try:
                with open(backup, "rb") as f:
                    data = f.read()
            except FileNotFoundError:
                raise CorruptTradeLog(f"no backup {backup} to recover from") from None
            restored = Ledger.from_json(data, source=backup)
            problems = integrity.ledger_violations(restored)
            if problems:
                raise IntegrityError([f"backup {backup}: {p}" for p in problems])
            if os.path.exists(self.trade_log):
                with open(self.trade_log, "rb") as f:
                    atomic.write_atomic(self.trade_log + ".corrupt", f.read(), fsync=self.fsync)
            atomic.write_atomic(self.trade_log, restored.to_json(), fsync=self.fsync)
            self._set_cache(None)
            return f"restored {self.trade_log} from {backup}: {len(restored.trades)} trades, next id T{restored.next_id:03d}"
