"""A store in stdlib ``sqlite3``: one row per trade, the record as JSON.

The database lives beside the path the harness gives as the trade log (``trades.db`` for
``trades.json``), and SQLite does its own locking, so the lock file is not used.
:class:`Store` runs every write as ``BEGIN IMMEDIATE`` ... ``COMMIT``: the write lock is taken
before the first read, so the checks see what the write will change. Negative control:

- :class:`AutocommitCheck`: the sqlite3 module's default (implicit transactions), where the
  checking ``SELECT`` runs on its own in autocommit mode and the ``INSERT`` opens a deferred
  transaction afterwards: two processes both pass the checks and both insert.

Both declare the chaos harness's hooks for stores that are not one JSON file (docs/CHAOS.md):
``chaos_export`` gives the state as the trade-log document, ``chaos_observe`` hands the store an
observer it tells, truthfully, when it holds SQLite's write lock and what it commits. Taking
the lock without waiting first is what lets it say ``contended`` before it waits.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3

from tests.idioms import rules
from tests.idioms.base import BotStore

SCHEMA = "CREATE TABLE IF NOT EXISTS trades (num INTEGER PRIMARY KEY AUTOINCREMENT, body TEXT NOT NULL)"


def database_for(trade_log: str) -> str:
    return os.path.splitext(os.path.abspath(os.fspath(trade_log)))[0] + ".db"


class _Unobserved:
    """The observer of a store no harness watches: every call does nothing."""

    def locked(self) -> None: ...
    def contended(self) -> None: ...
    def commit(self, document: dict) -> None: ...
    def unlocked(self) -> None: ...


def _read(conn: sqlite3.Connection) -> dict:
    doc = rules.empty()
    doc["trades"] = [json.loads(body) for (body,) in conn.execute("SELECT body FROM trades ORDER BY num")]
    row = conn.execute("SELECT seq FROM sqlite_sequence WHERE name = 'trades'").fetchone()
    doc["next_id"] = (row[0] if row else 0) + 1
    return doc


class Store(BotStore):
    isolation = None  # autocommit; transactions are begun explicitly

    def __init__(self, trade_log, lock_file=None, **options) -> None:
        super().__init__(trade_log, lock_file, **options)
        self.database = database_for(trade_log)
        self.observer = _Unobserved()
        self.conn = sqlite3.connect(self.database, timeout=30, isolation_level=self.isolation)
        self.conn.execute(SCHEMA)
        if self.isolation is not None:
            self.conn.commit()

    def write_locked(self, sql: str, params: tuple = ()) -> sqlite3.Cursor:
        """Run the statement that takes SQLite's write lock: first without waiting, so a busy
        lock is reported as contended before this process waits for it."""
        self.conn.execute("PRAGMA busy_timeout = 0")
        try:
            try:
                cursor = self.conn.execute(sql, params)
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) and "busy" not in str(exc):
                    raise
                self.observer.contended()
                self.conn.execute("PRAGMA busy_timeout = 30000")
                cursor = self.conn.execute(sql, params)
        finally:
            self.conn.execute("PRAGMA busy_timeout = 30000")
        self.observer.locked()
        return cursor

    def load(self) -> dict:
        return _read(self.conn)

    def change(self, edit):
        self.write_locked("BEGIN IMMEDIATE")
        try:
            doc = _read(self.conn)
            before = {t["id"]: t for t in json.loads(json.dumps(doc["trades"]))}
            result = edit(doc)
            for trade in doc["trades"]:
                if before.get(trade["id"]) != trade:
                    self.conn.execute("INSERT OR REPLACE INTO trades (num, body) VALUES (?, ?)",
                                      (int(trade["id"][1:]), json.dumps(trade, allow_nan=False)))
            self.observer.commit(doc)
            self.observer.unlocked()  # COMMIT ends the lock
            self.conn.execute("COMMIT")
        except BaseException:
            self.observer.unlocked()
            with contextlib.suppress(sqlite3.Error):
                self.conn.execute("ROLLBACK")
            raise
        return result

    @staticmethod
    def chaos_export(trade_log, lock_file=None) -> dict | None:
        """The committed state as the trade-log document; None while nothing was written."""
        if not os.path.exists(database_for(trade_log)):
            return None
        conn = sqlite3.connect(database_for(trade_log), timeout=30)
        try:
            conn.execute(SCHEMA)
            doc = _read(conn)
        finally:
            conn.close()
        return doc if doc["trades"] or doc["next_id"] > 1 else None

    @staticmethod
    def chaos_observe(store, observer) -> None:
        store.observer = observer


make_store = Store


class AutocommitCheck(Store):
    """Flaw: checks in autocommit mode, inserts in a later transaction."""

    isolation = ""  # the sqlite3 module's default: BEGIN is issued before the INSERT, not the SELECT

    def open_trade(self, symbol, direction, entry_price, stop_price, target_price, size,
                   setup_type="", grade="", notes=""):
        doc = _read(self.conn)  # a SELECT outside any transaction
        fields = rules.check_open(doc, self.limits, symbol, direction, entry_price, stop_price, target_price, size)
        record = rules.add_open(rules.empty(), fields, setup_type, grade, notes)
        # the implicit BEGIN is deferred: the write lock comes with the INSERT, after the checks
        cur = self.write_locked("INSERT INTO trades (body) VALUES ('{}')")
        record["id"] = f"T{cur.lastrowid:03d}"
        self.conn.execute("UPDATE trades SET body = ? WHERE num = ?", (json.dumps(record), cur.lastrowid))
        self._commit()
        return record

    def change(self, edit):
        doc = _read(self.conn)
        result = edit(doc)
        for n, trade in enumerate(doc["trades"]):
            statement = "INSERT OR REPLACE INTO trades (num, body) VALUES (?, ?)"
            params = (int(trade["id"][1:]), json.dumps(trade))
            (self.write_locked if n == 0 else self.conn.execute)(statement, params)
        self._commit()
        return result

    def _commit(self) -> None:
        self.observer.commit(_read(self.conn))  # what COMMIT makes visible: this transaction's view
        self.observer.unlocked()
        self.conn.commit()
