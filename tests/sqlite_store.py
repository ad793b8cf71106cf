"""A trade store on stdlib sqlite3, tested by the chaos harness through its two hooks.

The worked example of ``docs/CHAOS.md`` ("Stores that are not one JSON file"): the state lives
in a SQLite database beside ``trade_log`` (so each scenario round gets its own), the write lock
is ``BEGIN IMMEDIATE``, and the rules are the library's pure :class:`tradestore.Ledger`.

``make_store.chaos_export`` gives the harness the committed state as the FORMAT.md document;
``make_store.chaos_observe`` hands the store the harness's observer, which the store calls when
it takes the lock, finds it taken, is about to commit, and releases it.
"""

from __future__ import annotations

import copy
import json
import sqlite3
from datetime import datetime, timezone

from tradestore import Ledger, RiskLimits, risk


class _Silent:
    """The observer a store has when no harness is watching."""

    def locked(self): pass
    def contended(self): pass
    def commit(self, document): pass
    def unlocked(self): pass


def database_path(trade_log: str) -> str:
    return str(trade_log) + ".sqlite3"


def _connect(trade_log: str) -> sqlite3.Connection:
    conn = sqlite3.connect(database_path(trade_log), timeout=30.0, isolation_level=None)
    conn.execute("CREATE TABLE IF NOT EXISTS trades (pos INTEGER PRIMARY KEY, record TEXT NOT NULL)")
    conn.execute("CREATE TABLE IF NOT EXISTS meta (k TEXT PRIMARY KEY, v INTEGER NOT NULL)")
    return conn


def _load(conn: sqlite3.Connection) -> Ledger:
    trades = [json.loads(r) for (r,) in conn.execute("SELECT record FROM trades ORDER BY pos")]
    row = conn.execute("SELECT v FROM meta WHERE k = 'next_id'").fetchone()
    return Ledger(trades, row[0] if row else None)


class SqliteStore:
    """open/close/partial/update/read; every change in one ``BEGIN IMMEDIATE`` transaction."""

    def __init__(self, trade_log, lock_file=None, **limits):
        self.trade_log = str(trade_log)
        limits = {k: v for k, v in limits.items() if k not in ("fsync", "lock_timeout")}
        if limits.get("correlation_groups") is not None:
            limits["correlation_groups"] = {k: tuple(v) for k, v in limits["correlation_groups"].items()}
        self.limits = RiskLimits(**limits)
        self.observer = _Silent()
        self.conn = _connect(self.trade_log)

    def _begin(self) -> None:
        self.conn.execute("PRAGMA busy_timeout = 0")
        try:
            self.conn.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError:  # locked: say so before waiting for it
            self.observer.contended()
            self.conn.execute("PRAGMA busy_timeout = 30000")
            self.conn.execute("BEGIN IMMEDIATE")
        # COMMIT and reads wait for readers and writers too: never with a zero timeout.
        self.conn.execute("PRAGMA busy_timeout = 30000")
        self.observer.locked()

    def _commit(self, ledger: Ledger) -> None:
        """Inside the transaction: write ``ledger``, show it to the observer, COMMIT.

        COMMIT is what releases the lock, so the observer hears ``unlocked`` right before it.
        """
        self.conn.execute("DELETE FROM trades")
        self.conn.executemany("INSERT INTO trades VALUES (?, ?)",
                              [(n, json.dumps(t, allow_nan=False)) for n, t in enumerate(ledger.trades)])
        self.conn.execute("INSERT OR REPLACE INTO meta VALUES ('next_id', ?)", (ledger.next_id,))
        self.observer.commit(ledger.to_document())
        self.observer.unlocked()
        self.conn.execute("COMMIT")

    def _locked(self, work):
        """Run ``work()`` inside ``BEGIN IMMEDIATE``; ROLLBACK if it raises."""
        self._begin()
        try:
            return work()
        except BaseException:
            self.observer.unlocked()
            self.conn.execute("ROLLBACK")
            raise

    def _change(self, operation):
        def work():
            ledger = _load(self.conn)
            result = operation(ledger, datetime.now(timezone.utc))
            self._commit(ledger)
            return copy.deepcopy(result)
        return self._locked(work)

    def open_trade(self, symbol, direction, entry_price, stop_price, target_price, size,
                   setup_type="", grade="", notes=""):
        return self._change(lambda ledger, now: risk.checked_open(
            ledger, symbol, direction, entry_price, stop_price, target_price, size, setup_type, grade, notes,
            now=now, limits=self.limits))

    def close_trade(self, trade_id, exit_price, exit_reason="", lessons=""):
        return self._change(lambda ledger, now: ledger.close_trade(trade_id, exit_price, exit_reason, lessons, now=now))

    def partial_close(self, trade_id, close_pct, exit_price, reason="Partial TP"):
        return self._change(lambda ledger, now: ledger.partial_close(trade_id, close_pct, exit_price, reason, now=now))

    def update_trade(self, trade_id, updates):
        return self._change(lambda ledger, now: ledger.update_trade(trade_id, updates))

    def get_all_trades(self):
        return _load(self.conn).trades


def make_store(trade_log, lock_file=None, **limits):
    return SqliteStore(trade_log, lock_file, **limits)


def _export(trade_log, lock_file):
    """The committed state as the FORMAT.md document (None before the first write)."""
    conn = _connect(trade_log)
    try:
        ledger = _load(conn)
    finally:
        conn.close()
    return ledger.to_document() if ledger.trades or ledger.next_id > 1 else None


def _observe(store, observer):
    store.observer = observer


make_store.chaos_export = _export
make_store.chaos_observe = _observe


class SkipsTheLockStore(SqliteStore):
    """Negative control: decides on a read made before taking the write lock, then writes that
    stale state under the lock (the check-then-act race, and lost updates)."""

    def _change(self, operation):
        ledger = _load(self.conn)
        result = operation(ledger, datetime.now(timezone.utc))
        self._locked(lambda: self._commit(ledger))
        return copy.deepcopy(result)


def make_racy_store(trade_log, lock_file=None, **limits):
    return SkipsTheLockStore(trade_log, lock_file, **limits)


make_racy_store.chaos_export = _export
make_racy_store.chaos_observe = _observe
