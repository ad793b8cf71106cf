"""Negative controls: small stores that are each broken in exactly one way.

A proof counts only if it fails on a broken store, every time. Each control below reuses the
library's pure rules (``Ledger``, ``risk``) and OS helpers (``FileLock``, ``write_atomic``), and
differs from a correct store in one respect, named by its target name:

- ``unsafe-no-lock``: never takes the lock (lost updates, duplicates);
- ``unsafe-check-outside-lock``: runs the risk checks on a read made before taking the lock
  (TOCTOU: caps exceeded);
- ``unsafe-in-place-write``: truncates and rewrites the log in place (torn log on a crash);
- ``unsafe-reset-on-corrupt``: treats an unreadable log as empty (history lost);
- ``unsafe-stale-derived``: decides risk from the derived ``state/portfolio.json`` (stale data).

The flaw's window is marked with a wait-point (:mod:`tradestore_harness.waitpoints`): ``decided`` after
the store decided to accept and before it writes, ``mid-write`` halfway through an in-place
write. Scenarios arm these to make the catch deterministic; they cost nothing when unarmed.
"""

from __future__ import annotations

import contextlib
import copy
import json
import os
from datetime import datetime, timezone

from tradestore_harness import waitpoints
from tradestore import CorruptTradeLog, FileLock, Ledger, RiskLimits, risk
from tradestore.atomic import write_atomic
from tradestore.ledger import format_id

STATE_DIR = "state"  # derived files live in <dir of trade_log>/state, by the harness's convention


def state_dir_for(trade_log: str) -> str:
    """Where scenarios keep the derived files of ``trade_log``."""
    return os.path.join(os.path.dirname(os.path.abspath(trade_log)), STATE_DIR)


def _limits(limits: dict) -> RiskLimits:
    limits = dict(limits)
    limits.pop("fsync", None)
    limits.pop("lock_timeout", None)
    if limits.get("correlation_groups") is not None:
        limits["correlation_groups"] = {k: tuple(v) for k, v in limits["correlation_groups"].items()}
    else:
        limits.pop("correlation_groups", None)
    return RiskLimits(**limits)


class _ControlStore:
    """A deliberately plain, correct store; subclasses break one thing each."""

    def __init__(self, trade_log, lock_file=None, **limits) -> None:
        self.trade_log = os.path.abspath(trade_log)
        self.lock_file = os.path.abspath(lock_file or self.trade_log + ".lock")
        self.fsync = limits.get("fsync", True)
        self.limits = _limits(limits)
        self._lock = FileLock(self.lock_file, timeout=limits.get("lock_timeout", 30.0))

    # the pieces a control may break
    def _locked(self):
        return self._lock

    def _read(self) -> Ledger:
        try:
            with open(self.trade_log, "rb") as handle:
                data = handle.read()
        except FileNotFoundError:
            return Ledger()
        return Ledger.from_json(data, source=self.trade_log)

    def _write(self, ledger: Ledger) -> None:
        write_atomic(self.trade_log, ledger.to_json(), fsync=self.fsync)

    def _now(self) -> datetime:
        return datetime.now(timezone.utc)

    def _change(self, operation):
        with self._locked():
            ledger = self._read()
            result = operation(ledger)
            waitpoints.hit("decided")
            self._write(ledger)
            return copy.deepcopy(result)

    # the TradeStore API used by the harness
    def open_trade(self, symbol, direction, entry_price, stop_price, target_price, size,
                   setup_type="", grade="", notes=""):
        return self._change(lambda ledger: risk.checked_open(
            ledger, symbol, direction, entry_price, stop_price, target_price, size, setup_type, grade,
            notes, now=self._now(), limits=self.limits))

    def close_trade(self, trade_id, exit_price, exit_reason="", lessons=""):
        return self._change(lambda ledger: ledger.close_trade(
            trade_id, exit_price, exit_reason, lessons, now=self._now()))

    def partial_close(self, trade_id, close_pct, exit_price, reason="Partial TP"):
        return self._change(lambda ledger: ledger.partial_close(
            trade_id, close_pct, exit_price, reason, now=self._now()))

    def update_trade(self, trade_id, updates):
        return self._change(lambda ledger: ledger.update_trade(trade_id, updates))

    def get_all_trades(self):
        return copy.deepcopy(self._read().trades)


def _append(ledger: Ledger, record: dict) -> dict:
    """Append an already-checked record to ``ledger`` under the next id (no checks)."""
    record = dict(record, id=format_id(ledger.next_id))
    ledger.trades.append(record)
    ledger.__init__(ledger.trades, ledger.next_id + 1, ledger.extra)  # rebuild the index
    return record


class NoLockStore(_ControlStore):
    """Flaw: never takes the lock, so concurrent writers overwrite each other."""

    def _locked(self):
        return contextlib.nullcontext()


class CheckOutsideLockStore(_ControlStore):
    """Flaw: the risk checks judge a read made before the lock; the write re-reads under it."""

    def open_trade(self, symbol, direction, entry_price, stop_price, target_price, size,
                   setup_type="", grade="", notes=""):
        seen = self._read()  # outside the lock: stale by the time we write
        record = risk.checked_open(seen, symbol, direction, entry_price, stop_price, target_price, size,
                              setup_type, grade, notes, now=self._now(), limits=self.limits)
        waitpoints.hit("decided")
        with self._locked():
            ledger = self._read()
            record = _append(ledger, record)
            self._write(ledger)
            return copy.deepcopy(record)


class InPlaceWriteStore(_ControlStore):
    """Flaw: truncates the log and writes the new content into it (a crash tears the log)."""

    def _write(self, ledger: Ledger) -> None:
        data = ledger.to_json()
        with open(self.trade_log, "wb") as handle:
            half = len(data) // 2
            handle.write(data[:half])
            handle.flush()
            waitpoints.hit("mid-write")
            handle.write(data[half:])


class ResetOnCorruptStore(_ControlStore):
    """Flaw: an unreadable log is taken for an empty one (the next write erases history)."""

    def _read(self) -> Ledger:
        try:
            return super()._read()
        except CorruptTradeLog:
            return Ledger()


class StaleDerivedStore(_ControlStore):
    """Flaw: judges risk from the derived ``portfolio.json`` instead of the log under the lock."""

    def _derived_view(self) -> Ledger:
        path = os.path.join(state_dir_for(self.trade_log), "portfolio.json")
        try:
            with open(path, "rb") as handle:
                positions = json.load(handle).get("positions", [])
        except (OSError, ValueError, AttributeError):
            positions = []  # "no state yet": nothing open, as the seed's scripts assume
        trades = []
        for n, p in enumerate(positions, 1):
            trades.append(dict(p, id=format_id(n), status="OPEN", original_stop=p.get("stop_price"),
                               original_size=p.get("size"), partial_exits=[]))
        return Ledger(trades)

    def open_trade(self, symbol, direction, entry_price, stop_price, target_price, size,
                   setup_type="", grade="", notes=""):
        with self._locked():
            proposal = Ledger().propose(symbol, direction, entry_price, stop_price, target_price,
                                        size, now=self._now(), limits=self.limits)
            risk.enforce(self._derived_view(), proposal)
            ledger = self._read()
            record = Ledger().open_trade(symbol, direction, entry_price, stop_price, target_price,
                                         size, setup_type, grade, notes, now=self._now())
            waitpoints.hit("decided")
            record = _append(ledger, record)
            self._write(ledger)
            return copy.deepcopy(record)


TARGETS = {
    "unsafe-no-lock": NoLockStore,
    "unsafe-check-outside-lock": CheckOutsideLockStore,
    "unsafe-in-place-write": InPlaceWriteStore,
    "unsafe-reset-on-corrupt": ResetOnCorruptStore,
    "unsafe-stale-derived": StaleDerivedStore,
}
