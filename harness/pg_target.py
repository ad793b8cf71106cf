"""PostgreSQL targets of the chaos harness: our PgTradeStore, and its negative control.

Targets ``tradestore_harness.pg_target:tradestore_pg`` and
``tradestore_harness.pg_target:pg_unlocked``, factories ``factory(trade_log, lock_file,
**limits)`` like every target (see :mod:`tradestore_harness.targets`). The database is
``$TRADESTORE_PG_DSN`` (spawned workers inherit it); the account is named after the run's
directory, so every scenario round gets a fresh, empty account. File-only options (``fsync``,
``keep_backup``) are dropped: the server decides durability.

Beside each factory are the harness's hooks for stores that are not one file
(:mod:`tradestore_harness.hooks`): ``chaos_export`` (the account as the FORMAT.md document),
``chaos_observe`` (the store calls the observer when it holds the account, finds it taken,
is about to COMMIT and is about to release it) and ``chaos_database`` (ends the writers'
sessions, or stops the server with ``-m immediate`` and starts it again when
``$TRADESTORE_PG_SERVER_DIR`` names a server the harness started).

``pg_unlocked`` is the common idiom done wrong: read the account, run every check, insert, no
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
_ready: set[tuple] = set()  # (DSN, DDL) pairs this process has made sure of


def account_for(trade_log: str) -> str:
    """The account of a run: named after the directory the file store would have used."""
    directory = os.path.dirname(os.path.abspath(os.fspath(trade_log)))
    return "chaos-" + hashlib.sha256(directory.encode()).hexdigest()[:20]


def _ensure_tables(dsn: str, statements: tuple[str, ...], namespace: str | None = None,
                   probe: tuple[str, ...] = ("tradestore_trade",)) -> None:
    """Create the tables once per DSN and process (serialised: workers start together).

    Nothing is done when every relation in ``probe`` exists: even ``CREATE ... IF NOT EXISTS``
    would wait for a table lock behind a writer's open transaction (a toctou holder stopped at
    its commit), which must never hold up a worker's start.
    """
    if (dsn, statements) in _ready:
        return
    import psycopg

    with psycopg.connect(dsn, autocommit=True) as conn:
        present = conn.execute("SELECT bool_and(to_regclass(name) IS NOT NULL) FROM unnest(%s::text[]) name",
                               (list(probe),)).fetchone()[0]
        if not present:
            conn.execute("SELECT pg_advisory_lock(7461357)")  # DDL of racing workers, one at a time
            try:
                if namespace:
                    conn.execute(f"CREATE SCHEMA IF NOT EXISTS {namespace}")
                for statement in statements:
                    conn.execute(statement)
            finally:
                conn.execute("SELECT pg_advisory_unlock(7461357)")
    _ready.add((dsn, statements))


class ObservedPgStore(PgTradeStore):
    """PgTradeStore that reports its hold and commit to an observer (when one is set)."""

    _observer = None

    def _lock_account(self, conn) -> None:
        observer = self._observer
        if observer is not None:
            # Try first, so a rival's hold is seen (and reported) before this one waits.
            taken = not conn.execute("SELECT pg_try_advisory_xact_lock(%s)", (self._key,)).fetchone()[0]
            if taken:
                observer.contended()
                super()._lock_account(conn)
            self._local.locked = True
            observer.locked()
        else:
            super()._lock_account(conn)

    def _release_observed(self) -> None:
        if getattr(self._local, "locked", False):
            self._local.locked = False
            self._observer.unlocked()

    def _before_commit(self, ledger: Ledger) -> None:
        if self._observer is not None:
            self._observer.commit(ledger.to_document())

    def _commit_now(self, conn) -> None:
        self._release_observed()
        super()._commit_now(conn)

    def _end(self, conn) -> None:
        self._release_observed()
        super()._end(conn)


class UnlockedPgStore(ObservedPgStore):
    """Negative control: checks, then inserts; no lock and no unique index; ids from a sequence."""

    sequence = "tradestore_control_ids"

    def open_trade(self, *args, **kwargs) -> dict:
        self._local.opening = True  # only an open takes an id, so ids run T001, T002, ...
        try:
            return super().open_trade(*args, **kwargs)
        finally:
            self._local.opening = False

    def _lock_account(self, conn) -> None:
        """No lock (the checks see whatever was committed when they read); an id to use."""
        if getattr(self._local, "opening", False):
            self._local.seq = conn.execute(f"SELECT nextval('{self.sequence}')").fetchone()[0]

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


def _dsn(trade_log, control: bool) -> str:
    """The run's DSN: the control's schema first, and a session name that marks the run's writers."""
    from psycopg.conninfo import make_conninfo

    dsn = resolve_dsn(None)
    if control:
        dsn = make_conninfo(dsn, options=f"-csearch_path={CONTROL_SCHEMA}")
    # The session name marks the run and this process, so a fault can end the sessions of the
    # run's writers and say which process it hit.
    return make_conninfo(dsn, application_name=f"{account_for(trade_log)}:{os.getpid()}")


def tradestore_pg(trade_log, lock_file=None, **limits) -> ObservedPgStore:
    dsn = _dsn(trade_log, control=False)
    _ensure_tables(dsn, SCHEMA_SQL)
    return ObservedPgStore(account_for(trade_log), dsn, **_options(limits))


def pg_unlocked(trade_log, lock_file=None, **limits) -> UnlockedPgStore:
    dsn = _dsn(trade_log, control=True)
    account = account_for(trade_log)
    # One id sequence per account (never blocking, never rolled back), so ids start at T001
    # like every store's and racers never collide on one.
    sequence = "ids_" + account.replace("-", "_")
    statements = tuple(s for s in SCHEMA_SQL if "UNIQUE INDEX" not in s) + (
        f"CREATE SEQUENCE IF NOT EXISTS {sequence}",)
    _ensure_tables(dsn, statements, CONTROL_SCHEMA, probe=("tradestore_trade", sequence))
    store = UnlockedPgStore(account, dsn, **_options(limits))
    store.sequence = sequence
    return store


def _exporter(factory):
    def export(trade_log, lock_file=None) -> dict | None:
        store = factory(trade_log, lock_file)
        try:
            with store._reading() as ledger:
                return ledger.to_document() if ledger.trades or ledger.next_id > 1 else None
        finally:
            store.close()
    return export


def _observe(store: ObservedPgStore, observer) -> None:
    store._observer = observer


class Database:
    """The run's database, for the fault scenarios: end the writers' sessions, crash the server."""

    def __init__(self, trade_log: str, control: bool) -> None:
        self.control = control
        self.account = self.writers = account_for(trade_log)  # the sessions are named after it
        self.server_dir = os.environ.get(SERVER_DIR_ENV)

    def terminate_writers(self, before=lambda client_pid: None, after=lambda client_pid: None) -> int:
        """pg_terminate_backend of the run's writer inside its transaction; how many were ended.

        Our store: the session holding the account's lock once its client is past the lock
        statement (a waiter could take the lock between the choice and the signal, and its hold
        would then seem to outlive the server's release). The control takes no lock: every session of the run inside a transaction.
        ``before(client_pid)`` is called for each victim first and ``after(client_pid)`` once
        its server process has exited, which is when the server released its lock (the
        nemesis records both). A victim is ended only if it is still what it was chosen as.
        """
        import psycopg

        from tradestore.pgstore import account_key

        key = account_key(self.account) & 0xFFFFFFFFFFFFFFFF
        holder = ("SELECT a.pid, a.application_name FROM pg_locks l JOIN pg_stat_activity a USING (pid) "
                  "WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1 AND l.classid::bigint = %s "
                  "AND l.objid::bigint = %s AND a.application_name LIKE %s "
                  # Its client has sent a statement after the lock, so it has already reported
                  # the hold: a grant still on its way to the client would be reported after
                  # the session died, as a hold that outlived the server's release.
                  "AND a.query NOT ILIKE '%%advisory_xact_lock%%'")
        in_transaction = ("SELECT pid, application_name FROM pg_stat_activity WHERE application_name LIKE %s "
                          "AND xact_start IS NOT NULL AND pid <> pg_backend_pid()")
        query, args = (in_transaction, ()) if self.control else (holder, (key >> 32, key & 0xFFFFFFFF))
        with psycopg.connect(resolve_dsn(None), autocommit=True) as admin:
            victims = admin.execute(query, (*args, self.writers + ":%")).fetchall()
            ended = 0
            for pid, name in victims:
                client = int(name.rpartition(":")[2])
                before(client)
                # With a timeout, pg_terminate_backend returns once the session has exited.
                still = f"SELECT pg_terminate_backend(pid, 10000) FROM ({query}) v WHERE v.pid = %s"
                ended += sum(row[0] for row in admin.execute(still, (*args, self.writers + ":%", pid)).fetchall())
                after(client)
            return ended

    def can_restart(self) -> str | None:
        """None if :meth:`restart` can work, else why not."""
        if not self.server_dir:
            return f"${SERVER_DIR_ENV} is not set: the harness stops only a server it started"
        return None

    def restart(self) -> None:
        """``pg_ctl stop -m immediate`` (a crash: no checkpoint, recovery from the WAL), then start."""
        from tradestore_harness.pg_server import LocalServer

        server = LocalServer(self.server_dir)
        server.stop("immediate")
        server.start()


SERVER_DIR_ENV = "TRADESTORE_PG_SERVER_DIR"
for _factory, _control in ((tradestore_pg, False), (pg_unlocked, True)):
    _factory.chaos_export = _exporter(_factory)
    _factory.chaos_observe = _observe
    _factory.chaos_database = lambda trade_log, _control=_control: Database(trade_log, _control)

__all__ = ["DSN_ENV", "SERVER_DIR_ENV", "Database", "account_for", "tradestore_pg", "pg_unlocked"]
