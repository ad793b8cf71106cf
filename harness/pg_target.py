"""PostgreSQL targets of the chaos harness: our PgTradeStore, and its negative control.

Both are factories ``factory(trade_log, lock_file, **limits)`` like every target (see
:mod:`tradestore_harness.targets`). The database is ``$TRADESTORE_PG_DSN`` (spawned workers
inherit it); the account is named after the run's directory, so every scenario round gets a
fresh, empty account. File-only options (``fsync``, ``keep_backup``) are dropped: the server
decides durability.

The stores tell an observer (``store.observe(observer)``) what a file store tells the spy by
its system calls: ``lock()`` once it holds the account, ``contended()`` when it finds the
account taken (before it waits), ``commit(data)`` with the FORMAT.md document after its rows are
written and before COMMIT, ``unlock()`` right before the transaction ends. ``export_document()``
gives the committed state as the document ``trades.json`` would hold.

``pg-unlocked`` is the common idiom done wrong: read the account, run every check, insert, no
lock, no unique index (its tables live in their own PostgreSQL schema, created without the
partial index), ids from a sequence. It announces its window with the ``decided`` wait-point
(checked, nothing written yet), so a race catches it every run.
"""

from __future__ import annotations

import hashlib
import os

from tradestore.ledger import Ledger
from tradestore.pgstore import DSN_ENV, SCHEMA_SQL, PgTradeStore, resolve_dsn

from tradestore_harness import waitpoints

CONTROL_SCHEMA = "tradestore_control"
_FILE_OPTIONS = ("fsync", "keep_backup")
_ready: set[str] = set()  # DSNs whose tables this process has made sure of


def account_for(trade_log: str) -> str:
    """The account of a run: named after the directory the file store would have used."""
    directory = os.path.dirname(os.path.abspath(os.fspath(trade_log)))
    return "chaos-" + hashlib.sha256(directory.encode()).hexdigest()[:20]


def control_dsn(dsn: str) -> str:
    """``dsn`` with the control's own schema first on the search path."""
    from psycopg.conninfo import make_conninfo

    return make_conninfo(dsn, options=f"-csearch_path={CONTROL_SCHEMA}")


def _ensure_tables(dsn: str, statements: tuple[str, ...], namespace: str | None = None) -> None:
    """Create the tables once per DSN and process (serialised: workers start together)."""
    if dsn in _ready:
        return
    import psycopg

    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("SELECT pg_advisory_lock(7461357)")  # DDL of racing workers, one at a time
        try:
            if namespace:
                conn.execute(f"CREATE SCHEMA IF NOT EXISTS {namespace}")
            for statement in statements:
                conn.execute(statement)
        finally:
            conn.execute("SELECT pg_advisory_unlock(7461357)")
    _ready.add(dsn)


class ObservedPgStore(PgTradeStore):
    """PgTradeStore that reports its hold and commit to an observer (when one is set)."""

    _observer = None

    def observe(self, observer) -> None:
        self._observer = observer

    def _lock_account(self, conn) -> None:
        observer = self._observer
        if observer is not None:
            taken = not conn.execute("SELECT pg_try_advisory_xact_lock(%s)", (self._key,)).fetchone()[0]
            if taken:
                observer.contended()
                super()._lock_account(conn)
            self._local.locked = True
            observer.lock()
        else:
            super()._lock_account(conn)

    def _release_observed(self) -> None:
        if getattr(self._local, "locked", False):
            self._local.locked = False
            self._observer.unlock()

    def _before_commit(self, ledger: Ledger) -> None:
        if self._observer is not None:
            self._observer.commit(ledger.to_json())

    def _commit_now(self, conn) -> None:
        self._release_observed()
        super()._commit_now(conn)

    def _end(self, conn) -> None:
        self._release_observed()
        super()._end(conn)


class UnlockedPgStore(ObservedPgStore):
    """Negative control: checks, then inserts; no lock and no unique index; ids from a sequence."""

    def _lock_account(self, conn) -> None:
        """No lock (the checks see whatever was committed when they read); an id to use."""
        self._local.seq = conn.execute("SELECT nextval('tradestore_control_ids')").fetchone()[0]

    def _load(self, conn):
        self._cache = None  # no lock, so no version can be trusted: read everything
        version, ledger = super()._load(conn)
        seq, self._local.seq = getattr(self._local, "seq", None), None
        if seq is not None:  # a write: its ids come from the sequence, so racers never collide
            ledger.next_id = max(ledger.next_id, seq)
        return version, ledger

    def _persist(self, ledger: Ledger) -> None:
        waitpoints.hit("decided")  # checked and decided, nothing written yet
        super()._persist(ledger)


def _options(limits: dict) -> dict:
    return {k: v for k, v in limits.items() if k not in _FILE_OPTIONS}


def tradestore_pg(trade_log, lock_file=None, **limits) -> ObservedPgStore:
    dsn = resolve_dsn(None)
    _ensure_tables(dsn, SCHEMA_SQL)
    return ObservedPgStore(account_for(trade_log), dsn, **_options(limits))


def pg_unlocked(trade_log, lock_file=None, **limits) -> UnlockedPgStore:
    dsn = control_dsn(resolve_dsn(None))
    statements = tuple(s for s in SCHEMA_SQL if "UNIQUE INDEX" not in s) + (
        "CREATE SEQUENCE IF NOT EXISTS tradestore_control_ids",)
    _ensure_tables(dsn, statements, CONTROL_SCHEMA)
    return UnlockedPgStore(account_for(trade_log), dsn, **_options(limits))


TARGETS = {"tradestore-pg": tradestore_pg}
CONTROLS = {"pg-unlocked": pg_unlocked}
__all__ = ["DSN_ENV", "TARGETS", "CONTROLS", "account_for", "control_dsn", "tradestore_pg", "pg_unlocked"]
