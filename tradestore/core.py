"""The transaction core every backend shares: one write sequence, one set of rules.

A write is one transaction: the backend's exclusive hold and load (``_begin``) -> Ledger
operation (the ledger validates, :mod:`tradestore.risk` decides, the ledger records) -> integrity (no new violation) -> the backend's
commit of the changed records (``_persist``). The rules (Ledger, risk, integrity) run here, in
the same place for every backend, so a file store and a database store cannot disagree on
what is allowed; a backend only decides how it holds the account exclusively, how it loads
the ledger and how it writes what changed.

A backend subclasses :class:`LedgerStore` and provides:

- ``_local``: a ``threading.local`` (the transaction of the current thread);
- ``_begin()``: a context manager that holds the account exclusively (so no other writer
  can change what the checks see before the write lands), yields its current Ledger, and
  drops any cached state if the block raises;
- ``_persist(ledger)``: write the records in ``ledger.changed`` (and ``next_id``) durably,
  or raise, having written nothing that is acknowledged;
- ``_snapshot()``: a context manager yielding one complete, committed version for reads.

A transaction commits only in the process that began it: a child forked inside the block does
not hold the parent's lock (or connection), so its changes raise :class:`ForkedTransaction`
instead of being written.

Logging (logger ``tradestore.core``; the package installs a NullHandler, so nothing is printed
unless the application configures logging): every refused operation at INFO, with the check
(``record.check``: the risk check's name, or the error type) and the reason
(``record.reason``); every integrity problem at ERROR.
"""

from __future__ import annotations

import copy
import logging
import os
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime, timezone
from typing import Any

from . import atomic, integrity, risk
from .errors import (ForkedTransaction, IntegrityError, InvalidTrade, NestedTransactionError, RiskRejected,
                     TradeNotFound, TradeNotOpen)
from .ledger import Ledger
from .risk import RiskLimits
from .values import MAX_AMOUNT, format_id, normalize_direction, normalize_symbol, trade_number, utc

log = logging.getLogger(__name__)


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


@contextmanager
def _refusals_logged(operation: str) -> Iterator[None]:
    """Log a refused operation at INFO (check and reason), then let the error propagate."""
    try:
        yield
    except RiskRejected as exc:
        log.info("%s refused by %s: %s", operation, exc.check, exc.reason,
                 extra={"check": exc.check, "reason": exc.reason})
        raise
    except (InvalidTrade, TradeNotFound, TradeNotOpen) as exc:
        log.info("%s refused: %s", operation, exc, extra={"check": type(exc).__name__, "reason": str(exc)})
        raise


class Transaction:
    """Operations inside :meth:`LedgerStore.transaction`: all see each other, commit together."""

    def __init__(self, store: LedgerStore, ledger: Ledger) -> None:
        self._store = store
        self.ledger = ledger
        self.failed_inside = False  # a joined block raised: its changes cannot be undone alone
        self.active = True  # until the block ends
        self._thread = threading.get_ident()  # the thread inside the block (kept by a fork)

    def _now(self) -> datetime:
        self._check_active()
        return self._store.now()

    def _check_active(self) -> None:
        # Only the thread inside the block holds the lock: a write through this object from
        # anywhere else (after the block, another thread) would never be committed by its call.
        if not self.active or threading.get_ident() != self._thread:
            raise NestedTransactionError(
                "this transaction's block has ended or belongs to another thread, which holds "
                "the lock: nothing was changed; make the change inside the block, or call the store")
        self._store._check_not_in_callback()

    # Records are handed out as copies: a caller changing one must not change the log.

    def open_trade(self, symbol, direction, entry_price, stop_price, target_price, size,
                   setup_type="", grade="", notes="") -> dict:
        s = self._store
        now = self._now()
        with _refusals_logged("open_trade"), s._callback("a risk check"):
            return copy.deepcopy(risk.checked_open(
                self.ledger, symbol, direction, entry_price, stop_price, target_price, size, setup_type,
                grade, notes, now=now, limits=s.limits, checks=s.risk_checks,
            ))

    def close_trade(self, trade_id, exit_price, exit_reason="", lessons="") -> dict:
        with _refusals_logged("close_trade"):
            return copy.deepcopy(self.ledger.close_trade(trade_id, exit_price, exit_reason, lessons, now=self._now()))

    def partial_close(self, trade_id, close_pct, exit_price, reason="Partial TP") -> dict:
        with _refusals_logged("partial_close"):
            return copy.deepcopy(self.ledger.partial_close(trade_id, close_pct, exit_price, reason, now=self._now()))

    def update_trade(self, trade_id, updates: Mapping) -> dict:
        self._check_active()
        with _refusals_logged("update_trade"):
            return copy.deepcopy(self.ledger.update_trade(trade_id, updates))

    def update_trades_batch(self, batch: Iterable) -> int:
        self._check_active()
        with _refusals_logged("update_trades_batch"):
            return self.ledger.update_trades_batch(batch)


class LedgerStore:
    """What every store shares: limits, clock, the transaction sequence, writes and reads.

    Limits are ``limits=`` (a :class:`tradestore.risk.RiskLimits`) and/or its fields as keyword
    options (``max_positions=5``), with RiskLimits' defaults, the ones the reconciler and the
    command line use too; ``risk_checks`` are
    extra checks ``fn(ledger, proposal) -> reason | None`` run inside the transaction after
    the built-in ones. ``clock`` returns the current time as an aware datetime (default: UTC
    now). ``on_integrity_violation(violations)`` is called when a write is refused for
    integrity (and by a backend that finds its write was not what it reads back).
    """

    _local: object  # threading.local, set by the backend (per process)

    def __init__(
        self,
        *,
        limits: RiskLimits | None = None,
        risk_checks: Iterable[risk.Check] = (),
        clock: Callable[[], datetime] | None = None,
        on_integrity_violation: Callable[[list[str]], object] | None = None,
        **limit_options: Any,
    ) -> None:
        self.limits = RiskLimits.from_options(limits, **limit_options)
        self.risk_checks = tuple(risk_checks)
        self._clock = clock or utc_now
        self._on_integrity_violation = on_integrity_violation

    # -- time ---------------------------------------------------------------------------

    def now(self) -> datetime:
        # Naive times are taken as UTC; aware ones are converted, so "today" is a UTC day.
        return utc(self._clock(), "clock")

    # -- the write path -----------------------------------------------------------------

    @contextmanager
    def transaction(self) -> Iterator[Transaction]:
        """Hold the account across several operations and commit them together.

        If the block raises, nothing is written. Nested use of the same store in the same
        thread joins the outer transaction. Opening a transaction while this thread holds the
        account through another store raises :class:`NestedTransactionError` at once, because
        the outer commit would overwrite the inner one's write (or wait for it forever).
        """
        self._check_not_in_callback()
        active = getattr(self._local, "transaction", None)
        if active is not None:
            try:
                yield active
            except BaseException:
                active.failed_inside = True
                raise
            return
        with self._begin() as ledger:
            ledger.mark_clean()
            before = integrity.open_symbol_violations(ledger)
            self._local.transaction = tx = Transaction(self, ledger)
            owner = os.getpid()
            try:
                yield tx
                if tx.failed_inside:
                    raise NestedTransactionError(
                        "a nested transaction block raised and the outer block went on: the "
                        "nested block's changes cannot be undone alone, so nothing was written")
                if ledger.changed:
                    if os.getpid() != owner:
                        # A child forked inside the block: it holds no lock, and the parent
                        # may have committed since the child's copy was loaded.
                        raise ForkedTransaction(
                            f"this transaction was begun in process {owner} and left in its "
                            f"forked child {os.getpid()}, which does not hold the lock; its "
                            "changes were not written: open a new transaction in the child")
                    self._commit(ledger, before)
            finally:
                tx.active = False
                self._local.transaction = None

    def _commit(self, ledger: Ledger, open_symbols_before: list[str]) -> None:
        """Refuse a write that adds an integrity violation; else the backend persists it."""
        problems = integrity.new_violations(open_symbols_before, ledger, ledger.changed)
        if problems:
            self._report(problems)
            raise IntegrityError(problems)
        self._persist(ledger)

    def _report(self, problems: list[str]) -> None:
        log.error("integrity problem: %s", "; ".join(problems))
        if self._on_integrity_violation is not None:
            with self._callback("on_integrity_violation"):
                self._on_integrity_violation(list(problems))

    # -- the caller's code, run by the store --------------------------------------------

    @contextmanager
    def _callback(self, name: str) -> Iterator[None]:
        """Run the caller's code (a risk check, ``on_integrity_violation``) that may not write
        through this store: see :meth:`_check_not_in_callback`."""
        outer = getattr(self._local, "callback", None)
        self._local.callback = name
        try:
            yield
        finally:
            self._local.callback = outer

    def _check_not_in_callback(self) -> None:
        """Refuse a write made from a callback, before it changes anything.

        A risk check runs while the open it judges is being decided: a trade it opened would
        join that transaction unseen by the checks already passed (two positions under a cap
        of one). ``on_integrity_violation`` runs while the refused transaction is still this
        thread's: a write from it would join the transaction about to be dropped and return as
        if it had been written. Reads are allowed in both.
        """
        name = getattr(self._local, "callback", None)
        if name is not None:
            raise NestedTransactionError(
                f"{name} cannot write through the store that runs it: the write would join the "
                "transaction being decided (or refused); nothing was changed; write after the "
                "store call returns")

    def _check_no_transaction(self, operation: str) -> None:
        """Refuse ``operation``, which writes a file from the committed log, inside this
        thread's transaction: it would write the block's uncommitted changes."""
        if getattr(self._local, "transaction", None) is not None:
            raise NestedTransactionError(
                f"{operation} inside a transaction would write the block's uncommitted changes, "
                "written or not when the block ends; nothing was written: call it after the block")

    # -- public writes: each is a one-operation transaction -----------------------------

    def _run(self, operation: Callable[[Transaction], Any]) -> Any:
        """Run ``operation(tx)`` as one transaction (a backend may rerun it after a conflict)."""
        with self.transaction() as tx:
            return operation(tx)

    def open_trade(self, symbol, direction, entry_price, stop_price, target_price, size,
                   setup_type="", grade="", notes="") -> dict:
        """Open a trade if input is valid and every risk check passes; return the stored record.

        Raises InvalidTrade, RiskRejected (``.check``, ``.reason``), CorruptTradeLog, LockTimeout.
        """
        return self._run(lambda tx: tx.open_trade(symbol, direction, entry_price, stop_price, target_price,
                                                  size, setup_type, grade, notes))

    def close_trade(self, trade_id, exit_price, exit_reason="", lessons="") -> dict:
        """Close an OPEN trade at ``exit_price``: the seed's fields for the final exit, plus the net."""
        return self._run(lambda tx: tx.close_trade(trade_id, exit_price, exit_reason, lessons))

    def partial_close(self, trade_id, close_pct, exit_price, reason="Partial TP") -> dict:
        """Close the fraction ``close_pct`` (0 < p < 1) of an OPEN trade's remaining size."""
        return self._run(lambda tx: tx.partial_close(trade_id, close_pct, exit_price, reason))

    def update_trade(self, trade_id, updates: Mapping) -> dict:
        """Change updatable fields (stop_price, target_price, notes, grade, setup_type)."""
        return self._run(lambda tx: tx.update_trade(trade_id, updates))

    def update_trades_batch(self, batch: Iterable) -> int:
        """Apply ``[(trade_id, updates), ...]`` all or nothing; return how many were applied."""
        return self._run(lambda tx: tx.update_trades_batch(batch))

    # -- reads: one complete committed version (or this thread's transaction) -----------

    @contextmanager
    def _reading(self) -> Iterator[Ledger]:
        active = getattr(self._local, "transaction", None)
        if active is not None:
            yield active.ledger
            return
        with self._snapshot() as ledger:
            yield ledger

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

        Without prices (all three None) the trade's own risk counts as 0. Input is validated as
        ``open_trade`` validates it, raising the same InvalidTrade. The answer can be stale the
        moment it is returned; ``open_trade`` repeats every check inside its transaction.
        """
        key, side = normalize_symbol(symbol), normalize_direction(direction)
        with self._reading() as ledger, self._callback("a risk check"):
            if entry_price is None and stop_price is None and size is None:
                proposal = risk.probe(key, self.now(), self.limits, side)
            else:
                entry, stop = trade_number("entry_price", entry_price), trade_number("stop_price", stop_price)
                # Any target on the profit side will do: no check reads it.
                target = min(entry * 2, MAX_AMOUNT) if side == "LONG" else entry / 2
                proposal = ledger.propose(key, side, entry, stop, target, size, now=self.now(), limits=self.limits)
            refusal = risk.first_rejection(ledger, proposal, self.risk_checks)
        if refusal is None:
            return True, "ok"
        return False, f"{refusal[0]}: {refusal[1]}"

    def export_document(self) -> bytes:
        """The log as one FORMAT.md document (schema 2), byte for byte what a document-format
        ``trades.json`` holds: the snapshot every reader of the format takes, whatever the backend."""
        with self._reading() as ledger:
            return ledger.to_json()

    def export(self, path: str | os.PathLike[str], *, fsync: bool = True) -> int:
        """Write :meth:`export_document` to ``path`` atomically; return the number of trades.

        The file is a snapshot for the reconciler, ``tradestore verify`` and other readers of
        the file format; writes to it change nothing in the store.
        """
        self._check_no_transaction("export()")
        self._check_export_path(os.fspath(path))
        with self._reading() as ledger:
            data, count = ledger.to_json(), len(ledger.trades)
        atomic.write_atomic(os.fspath(path), data, fsync=fsync, keep_backup=False)
        return count

    def _check_export_path(self, path: str) -> None:
        """Raise UnsafePath if writing ``path`` would destroy one of the store's own files."""

    def verify_integrity(self) -> list[str]:
        """Every integrity violation in the log as it is now (empty list: all good)."""
        with self._reading() as ledger:
            return integrity.ledger_violations(ledger)
