"""PgTradeStore: one account's trade log in PostgreSQL, shared by writers on several hosts.

The same API, errors and rules as :class:`tradestore.TradeStore`: both run the transaction of
:mod:`tradestore.core` (load -> operation with every risk check -> integrity -> commit of the
changed records); only the hold, the load and the write differ. A write here is one database
transaction at READ COMMITTED whose first statement is ``pg_advisory_xact_lock`` on the
account, so every writer of the account, on any host, runs its checks and its write alone;
the server releases the lock at COMMIT, at ROLLBACK and when a writer's connection dies. A
partial unique index allows one OPEN trade per (account, symbol): a second guard that holds
even against a writer that skips the lock.

Guarantees:

- A call that raises a TradeStoreError other than :class:`CommitOutcomeUnknown` has written
  nothing. A returned call is committed (durable as far as the server's ``fsync`` and
  ``synchronous_commit`` settings make commits durable; the defaults do).
- A COMMIT whose reply was lost is never retried (it may have landed; a retry could open the
  trade twice): it raises :class:`CommitOutcomeUnknown`; read the account before acting again.
- Serialization failures and deadlocks, which the server reports before anything is
  committed, are retried a bounded number of times (one-operation writes only; a
  ``transaction()`` block cannot be replayed, so it raises :class:`DatabaseError`).
- A session the server ended while idle (a restart, ``pg_terminate_backend``, a timeout) is
  replaced when its BEGIN fails, before anything of the call was sent; nothing after a BEGIN
  is ever resent.
- Only the store's own statements have their errors translated (and retried): an exception
  raised by the caller's code inside the transaction (a risk check, the block's body, a
  callback, the caller's own psycopg work) reaches the caller unchanged, and that code runs
  once per attempt of the store's own statements.
- :meth:`PgTradeStore.export_document` gives the account as the FORMAT.md document, byte for
  byte what the file store would write for the same trades.

psycopg 3 is imported on first use (``pip install 'tradestore[postgres]'``); importing this
module needs only the standard library. The tables are created by ``tradestore pg-init``
(:func:`init_schema`), never as a side effect of building a store.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import random
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from .core import LedgerStore, Transaction
from .errors import CorruptTradeLog, IntegrityError, LockTimeout, NestedTransactionError, TradeStoreError
from .document import loads_strict
from .ledger import Ledger
from .locking import check_timeout
from .values import id_number, symbol_key

DSN_ENV = "TRADESTORE_PG_DSN"
RETRIES = 5  # extra attempts after a serialization failure or deadlock
_RETRY_STATES = frozenset({"40001", "40P01"})  # serialization_failure, deadlock_detected

SCHEMA_SQL = (
    """CREATE TABLE IF NOT EXISTS tradestore_account (
    account text PRIMARY KEY CHECK (account <> ''),
    next_id bigint NOT NULL CHECK (next_id >= 1),
    version bigint NOT NULL,            -- commits so far: a reader reuses its copy while unchanged
    extra   json NOT NULL DEFAULT '{}'  -- unknown top-level keys of the document, kept
)""",
    """CREATE TABLE IF NOT EXISTS tradestore_trade (
    account text NOT NULL REFERENCES tradestore_account (account),
    id      text NOT NULL,
    seq     bigint NOT NULL,            -- the id's number: the log order
    symbol  text NOT NULL,              -- the normalised symbol, the duplicate-symbol key
    status  text NOT NULL CHECK (status IN ('OPEN', 'CLOSED')),
    version bigint NOT NULL,            -- the account version that last wrote this record
    record  json NOT NULL,              -- the FORMAT.md record, key order kept
    PRIMARY KEY (account, id)
)""",
    # The second guard: whatever a writer's code does, one OPEN trade per symbol and account.
    """CREATE UNIQUE INDEX IF NOT EXISTS tradestore_one_open_trade_per_symbol
    ON tradestore_trade (account, symbol) WHERE status = 'OPEN'""",
    """CREATE INDEX IF NOT EXISTS tradestore_trade_by_version ON tradestore_trade (account, version)""",
)


class DatabaseError(TradeStoreError):
    """The database failed the call; nothing was written. ``sqlstate`` is the server's code."""

    def __init__(self, message: str, sqlstate: str | None = None) -> None:
        self.sqlstate = sqlstate
        super().__init__(message)


class SchemaMissing(DatabaseError):
    """The tradestore tables do not exist in this database: run ``tradestore pg-init``."""


class CommitOutcomeUnknown(DatabaseError):
    """The connection broke while COMMIT was in flight: the write may or may not have landed.

    Never retried by the store. Read the account (a new store or a fresh read) before deciding
    whether to repeat the operation.
    """

    outcome_unknown = True  # for callers that sort failures into refused and unknown


class _Retryable(DatabaseError):
    """A serialization failure or deadlock of ``store``'s own statements: the server rolled
    back; that store's one-operation write may rerun."""

    def __init__(self, message: str, sqlstate: str | None, store: PgTradeStore) -> None:
        super().__init__(message, sqlstate)
        self.store = store


def _psycopg():
    try:
        import psycopg
    except ImportError:
        raise ImportError(
            "PgTradeStore needs psycopg 3; install it with: pip install 'tradestore[postgres]'"
        ) from None
    return psycopg


def resolve_dsn(dsn: str | None) -> str:
    """``dsn`` if given, else the environment variable ``TRADESTORE_PG_DSN``."""
    if dsn:
        return dsn
    env = os.environ.get(DSN_ENV)
    if env:
        return env
    raise ValueError(
        f"dsn=None and ${DSN_ENV} is not set: pass dsn='host=... dbname=... user=...' (a libpq "
        f"connection string or postgresql:// URL) or export {DSN_ENV}"
    )


def account_key(account: str) -> int:
    """The advisory-lock key of an account: 64 bits of its SHA-256, as a signed bigint.

    Two names sharing a key only serialise each other's writes; they never share a ledger.
    """
    return int.from_bytes(hashlib.sha256(b"tradestore:" + account.encode()).digest()[:8], "big", signed=True)


MAX_LOCK_TIMEOUT_MS = 2_147_483_647  # the largest lock_timeout PostgreSQL accepts (about 24.8 days)


def lock_timeout_ms(seconds: float | None) -> int:
    """``SET lock_timeout``'s value for ``seconds`` (as :func:`tradestore.locking.check_timeout`
    returns them): None waits forever (0); otherwise whole milliseconds rounded up, at least 1
    (0 would mean forever) and at most :data:`MAX_LOCK_TIMEOUT_MS`.
    """
    if seconds is None:
        return 0
    millis = seconds * 1000
    return MAX_LOCK_TIMEOUT_MS if millis >= MAX_LOCK_TIMEOUT_MS else max(1, math.ceil(millis))


def _connect(dsn: str, lock_timeout: float | None):
    psycopg = _psycopg()
    try:
        conn = psycopg.connect(dsn, autocommit=True)
    except psycopg.Error as exc:
        raise DatabaseError(f"cannot connect to PostgreSQL ({exc}); check the dsn or ${DSN_ENV}") from None
    # Statements are sent with autocommit and explicit BEGIN/COMMIT, so the first statement of
    # every write transaction is visibly the lock, and a COMMIT is never implicit.
    try:
        conn.execute(f"SET lock_timeout = {lock_timeout_ms(lock_timeout)}")
    except psycopg.Error as exc:
        conn.close()
        raise DatabaseError(f"PostgreSQL refused the session settings ({exc})", exc.sqlstate) from None
    _live.add(conn)
    return conn


# The advisory lock every init_schema takes before its DDL (any 64-bit key outside the
# accounts' will do; a collision would only make the two wait for each other).
SCHEMA_LOCK_KEY = int.from_bytes(hashlib.sha256(b"tradestore-schema").digest()[:8], "big", signed=True)


def _server_identity(conn) -> tuple:
    """Which database of which running server ``conn`` is on, however its DSN spelled the host.

    The nested-transaction guard keys on it, so two stores whose DSNs differ only in spelling
    (``/tmp/pg`` and ``/tmp/pg/``, ``localhost`` and ``127.0.0.1``, a ``hostaddr``, a proxy) are
    known to be one account's lock. It is the cluster's ``system_identifier`` (made by initdb),
    the postmaster's start time (a clone restored from the same base backup shares the
    identifier, never the start time) and the database's oid: all readable by any role, with no
    setting or privilege needed (unlike ``data_directory``), and not NULL over a Unix socket
    (unlike ``inet_server_addr()``).
    """
    return conn.execute(
        "SELECT (SELECT system_identifier FROM pg_control_system()), pg_postmaster_start_time(), "
        "(SELECT oid FROM pg_database WHERE datname = current_database())"
    ).fetchone()


def init_schema(dsn: str | None = None, statements: tuple[str, ...] = SCHEMA_SQL) -> str:
    """Create the tradestore tables and indexes if missing (idempotent); return a summary.

    Safe to run from several hosts at once: the DDL is one transaction that first takes the
    advisory lock :data:`SCHEMA_LOCK_KEY`, so concurrent runs take turns (PostgreSQL's
    ``IF NOT EXISTS`` alone does not stop two sessions from creating one table at the same
    moment) and each later one finds the tables there. Raises :class:`DatabaseError`, having
    created nothing, when the database refuses (no privilege, unreachable, ...).
    """
    psycopg = _psycopg()
    conn = _connect(resolve_dsn(dsn), None)
    try:
        with conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (SCHEMA_LOCK_KEY,))
            for statement in statements:
                conn.execute(statement)
        count = conn.execute("SELECT count(*) FROM tradestore_account").fetchone()[0]
    except psycopg.Error as exc:
        raise DatabaseError(f"tradestore schema not created: {type(exc).__name__}: {exc}",
                            getattr(exc, "sqlstate", None)) from None
    finally:
        conn.close()
    return f"tradestore schema ready ({count} accounts)"


def _encode(record: dict) -> str:
    # Any exact encoding will do: the document is always re-encoded by Ledger.to_json.
    return json.dumps(record, separators=(",", ":"), allow_nan=False)


# A forked child must never speak on its parent's sockets: libpq's close sends a Terminate
# message, which would end the parent's session. The child points its copy of each socket at
# /dev/null (so a later close goes nowhere) and starts with no connection and no account held.
_live: weakref.WeakSet = weakref.WeakSet()
_stores: weakref.WeakSet[PgTradeStore] = weakref.WeakSet()
_held = threading.local()  # accounts this thread holds: (server, account) pairs


def _disown_connections_after_fork() -> None:
    null = os.open(os.devnull, os.O_RDWR)
    try:
        for conn in list(_live):
            try:
                os.dup2(null, conn.fileno())
            except Exception:  # already closed: nothing to disown
                pass
    finally:
        os.close(null)
    _live.clear()
    # The child holds no account: the forking thread's set named what its parent held.
    _held.accounts = set()
    for store in list(_stores):
        store._start_fresh()


os.register_at_fork(after_in_child=_disown_connections_after_fork)


class _Cached:
    """The last ledger this process loaded or committed, and the account version it is."""

    def __init__(self, version: int, ledger: Ledger) -> None:
        self.version = version
        self.ledger = ledger


class PgTradeStore(LedgerStore):
    """One account (by name) of a trade log in PostgreSQL, safe to share between hosts.

    ``dsn`` is a libpq connection string or URL (default: ``$TRADESTORE_PG_DSN``). Every
    other option is :class:`tradestore.TradeStore`'s (limits, ``risk_checks``, ``clock``,
    ``on_integrity_violation``, ``lock_timeout`` in seconds or None / ``math.inf`` to wait
    forever, validated by TradeStore's rule when the store is built; waits beyond PostgreSQL's
    longest lock_timeout, about 24.8 days, are cut to it). Each thread uses its own
    connection, opened on first use.
    """

    def __init__(self, account: str, dsn: str | None = None, *, lock_timeout: float | None = 30.0,
                 **options: Any) -> None:
        if not isinstance(account, str) or not account.strip() or len(account) > 200:
            raise ValueError(f"account={account!r}: must be a non-empty name of at most 200 characters")
        if "\x00" in account:
            raise ValueError(f"account={account!r}: contains NUL, which PostgreSQL text cannot hold")
        try:
            account.encode("utf-8")
        except UnicodeEncodeError:
            raise ValueError(f"account={account!r}: is not valid Unicode (a lone surrogate)") from None
        lock_timeout = check_timeout(lock_timeout, "lock_timeout")  # TradeStore's rule, at construction
        super().__init__(**options)
        self.account = account
        self.dsn = resolve_dsn(dsn)
        self.name = f"postgresql account {account!r}"
        self._lock_timeout = lock_timeout
        self._key = account_key(account)
        self._start_fresh()
        _stores.add(self)

    def _start_fresh(self) -> None:
        """Per-process state: a new store, or the copy of one in a forked child."""
        self._local = threading.local()
        self._state = threading.RLock()  # guards the cached ledger between threads
        self._cache: _Cached | None = None

    def __repr__(self) -> str:
        return f"PgTradeStore({self.account!r})"

    # -- connections and errors ---------------------------------------------------------

    def _conn(self):
        conn = getattr(self._local, "conn", None)
        if conn is None or conn.closed:
            conn = self._local.conn = _connect(self.dsn, self._lock_timeout)
            self._local.server = _server_identity(conn)
        return conn

    def _drop_conn(self) -> None:
        conn = getattr(self._local, "conn", None)
        self._local.conn = None
        self._local.open = False  # a transaction on it ends with it (the server rolls back)
        if conn is not None:
            try:
                conn.close()
            except Exception:  # the connection is already broken; nothing left to close
                pass

    @contextmanager
    def _translated(self) -> Iterator[None]:
        """Database errors of the store's own statements as TradeStoreErrors that say what
        happened and what to do. Only the store's statements run under it: an exception of the
        caller's code (a risk check, the body of a transaction block, a callback) passes
        through unchanged, psycopg's included, and is never retried."""
        psycopg = _psycopg()
        try:
            yield
        except psycopg.Error as exc:
            state = getattr(exc, "sqlstate", None)
            if state == "55P03":
                raise LockTimeout(
                    f"{self.name}: another writer held it for more than lock_timeout="
                    f"{self._lock_timeout}s"
                ) from None
            if state == "42P01":
                raise SchemaMissing(
                    f"{self.name}: the tradestore tables are missing; run "
                    f"`tradestore pg-init --dsn ...` once for this database ({str(exc).splitlines()[0]})", state
                ) from None
            if state in _RETRY_STATES:
                raise _Retryable(f"{self.name}: {exc}", state, self) from None
            if state == "23505":
                constraint = getattr(getattr(exc, "diag", None), "constraint_name", None)
                what = ("a second OPEN trade of one symbol" if constraint == "tradestore_one_open_trade_per_symbol"
                        else "a trade id that another writer had just written")
                problems = [f"{self.name}: the database refused {what} (constraint {constraint}): a writer "
                            "ignores the account lock"]
                self._report(problems)
                raise IntegrityError(problems) from None
            raise DatabaseError(f"{self.name}: {type(exc).__name__}: {exc}; nothing was written", state) from None

    def _server(self) -> tuple:
        """The identity of the database this thread's connection is on (see :func:`_server_identity`)."""
        self._conn()
        return self._local.server

    # -- the PostgreSQL backend of the core's transaction -------------------------------

    def _begun(self, statement: str):
        """This thread's connection, in a transaction that ``statement`` (a BEGIN) opened.

        A connection the server ended while it sat idle (a restart, ``pg_terminate_backend``,
        ``idle_session_timeout``, a proxy) is found dead only when BEGIN is sent. Nothing has
        run on it yet, so it is replaced once and BEGIN sent again; no statement after a BEGIN
        is ever repeated here.
        """
        psycopg = _psycopg()
        conn = getattr(self._local, "conn", None)
        if conn is not None and not conn.closed:
            try:
                conn.execute(statement)
            except psycopg.OperationalError:
                if not conn.broken:
                    raise
                self._drop_conn()  # ended by the server: a new session, then BEGIN again
            else:
                self._local.open = True
                return conn
        conn = self._conn()
        conn.execute(statement)
        self._local.open = True
        return conn

    @contextmanager
    def _begin(self) -> Iterator[Ledger]:
        """BEGIN at READ COMMITTED, lock the account, load; ROLLBACK unless committed."""
        held = getattr(_held, "accounts", None)
        if held is None:
            held = _held.accounts = set()
        self._local.open = False
        conn = key = None
        try:
            with self._translated():
                conn = self._local.tx_conn = self._begun("BEGIN ISOLATION LEVEL READ COMMITTED")
                server = self._server()
            if (server, self.account) in held:
                raise NestedTransactionError(
                    f"this thread already holds {self.name} through another PgTradeStore; do both "
                    "changes in one transaction of one store"
                )
            key = (server, self.account)
            held.add(key)
            with self._translated():
                self._lock_account(conn)
            # The process's cache lock after the account lock: readers of this process wait
            # for a write in progress, never for a writer still waiting on another host.
            with self._state:
                with self._translated():
                    version, ledger = self._load(conn)
                self._local.version, self._local.first_new = version, ledger.next_id
                try:
                    yield ledger  # the caller's block and the checks: their errors are theirs
                except BaseException:
                    # The ledger may hold half-applied changes; the next load re-reads.
                    self._cache = None
                    raise
        finally:
            self._local.tx_conn = None
            if key is not None:
                held.discard(key)
            if conn is not None:
                self._end(conn)

    def _end(self, conn) -> None:
        """Close a transaction that did not commit; a connection that cannot is dropped."""
        if not getattr(self._local, "open", False):
            return
        self._local.open = False
        try:
            conn.execute("ROLLBACK")
        except Exception:  # the connection is gone, and the server rolled back with it
            self._drop_conn()

    def _lock_account(self, conn) -> None:
        """Hold the account until the transaction ends: the first statement of a write."""
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (self._key,))

    def _load(self, conn) -> tuple[int, Ledger]:
        """The account's version and ledger: the cached one if unchanged, else only what changed."""
        row = conn.execute(
            "SELECT next_id, version, extra::text FROM tradestore_account WHERE account = %s",
            (self.account,),
        ).fetchone()
        if row is None:
            self._cache = None
            return 0, Ledger()
        next_id, version, extra = row
        cached = self._cache
        if cached is not None and cached.version == version:
            return version, cached.ledger
        since = cached.version if cached is not None and cached.version < version else -1
        rows = conn.execute(
            "SELECT id, record::text FROM tradestore_trade WHERE account = %s AND version > %s ORDER BY seq",
            (self.account, since),
        ).fetchall()
        records = [self._parse(trade_id, text) for trade_id, text in rows]
        if since >= 0:
            # Only what other writers changed since our copy: merged into it, not rebuilt
            # (rebuilding a long history was most of a contended write's cost).
            ledger = cached.ledger
            ledger.merge(records, next_id)
        else:
            try:
                extra_doc = loads_strict(extra)
            except ValueError as exc:
                raise CorruptTradeLog(f"{self.name}: extra is not strict JSON ({exc})") from None
            ledger = Ledger(records, next_id, extra_doc if isinstance(extra_doc, dict) else {})
        self._cache = _Cached(version, ledger)
        return version, ledger

    def _parse(self, trade_id: str, text: str) -> dict:
        try:
            record = loads_strict(text)
        except ValueError as exc:
            raise CorruptTradeLog(f"{self.name}: trade {trade_id} is not strict JSON ({exc})") from None
        if not isinstance(record, dict) or record.get("id") != trade_id or record.get("status") not in ("OPEN", "CLOSED") \
                or not isinstance(record.get("symbol"), str):
            raise CorruptTradeLog(f"{self.name}: row {trade_id} is not a trade record with that id, a status and a symbol")
        return record

    def _persist(self, ledger: Ledger) -> None:
        """Write the changed records and the account row, then COMMIT (never retried)."""
        if getattr(self._local, "conn", None) is not self._local.tx_conn:
            raise TradeStoreError(
                f"{self.name}: the store was closed inside its transaction block, which ended the "
                "transaction: nothing was written"
            )
        with self._translated():
            self._write(ledger)

    def _write(self, ledger: Ledger) -> None:
        """The statements of :meth:`_persist`: the account row, the changed rows, COMMIT."""
        conn = self._local.conn
        version = self._local.version + 1
        # next_id never moves back, whoever writes: an id is never handed out twice.
        conn.execute(
            "INSERT INTO tradestore_account (account, next_id, version, extra) VALUES (%s, %s, %s, %s) "
            "ON CONFLICT (account) DO UPDATE SET next_id = GREATEST(tradestore_account.next_id, "
            "EXCLUDED.next_id), version = EXCLUDED.version",
            (self.account, ledger.next_id, version, _encode(ledger.extra)),
        )
        new, changed = [], []
        for trade_id in sorted(ledger.changed, key=id_number):
            trade = ledger.get(trade_id)
            row = (symbol_key(trade["symbol"]), trade["status"], version, _encode(trade), self.account, trade_id)
            # A new trade is inserted, never upserted: a row with its id already there means
            # another writer got the same id, and the primary key refuses the second.
            (new if id_number(trade_id) >= self._local.first_new else changed).append(row)
        # Updates first, then inserts: any sequence the ledger allowed in one transaction then
        # passes the one-OPEN-per-symbol index row by row. An update never adds an OPEN
        # (account, symbol) pair (a record's symbol is not updatable and its status only goes
        # from OPEN to CLOSED), so after the updates the table's OPEN trades are a subset of the
        # final ones, and each insert adds a row of the final state, which the integrity check
        # has passed. (Inserting first meets, for example, a trade closed and its symbol
        # reopened in one block, while the old row is still OPEN.)
        with conn.cursor() as cur:
            if changed:
                cur.executemany(
                    "UPDATE tradestore_trade SET symbol = %s, status = %s, version = %s, record = %s "
                    "WHERE account = %s AND id = %s",
                    changed,
                )
            if new:
                cur.executemany(
                    "INSERT INTO tradestore_trade (symbol, status, version, record, account, id, seq) "
                    "VALUES (%s, %s, %s, %s, %s, %s, %s)",
                    [row + (id_number(row[-1]),) for row in new],
                )
        self._before_commit(ledger)
        self._commit_now(conn)
        ledger.mark_clean()
        self._cache = _Cached(version, ledger)

    def _before_commit(self, ledger: Ledger) -> None:
        """Called with the rows written and the account held, right before COMMIT (no-op)."""

    def _commit_now(self, conn) -> None:
        psycopg = _psycopg()
        self._local.open = False
        try:
            conn.execute("COMMIT")
        except psycopg.Error as exc:
            severity = getattr(getattr(exc, "diag", None), "severity_nonlocalized", None)
            if getattr(exc, "sqlstate", None) is None or conn.broken or severity in ("FATAL", "PANIC"):
                # No answer to the COMMIT, only a dead session: it may have committed. Never retried.
                self._cache = None
                self._drop_conn()
                raise CommitOutcomeUnknown(
                    f"{self.name}: the connection broke during COMMIT ({exc}); the write may or may "
                    "not have landed: read the account before repeating it"
                ) from None
            raise  # the server answered: it rolled back; _translated says what happened

    # -- retries of one-operation writes -----------------------------------------------

    def _run(self, operation: Callable[[Transaction], Any]) -> Any:
        if getattr(self._local, "transaction", None) is not None:
            return super()._run(operation)  # joins the caller's transaction: nothing to replay
        for attempt in range(RETRIES + 1):
            try:
                with self.transaction() as tx:
                    return operation(tx)
            except _Retryable as exc:
                if exc.store is not self:
                    raise  # another store's conflict, raised through the caller's code: not ours to rerun
                if attempt == RETRIES:
                    raise DatabaseError(f"{exc} (still failing after {RETRIES} retries)", exc.sqlstate) from None
                # Jittered backoff, so the writers that collided do not collide again.
                time.sleep(random.uniform(0, 0.01 * 2 ** attempt))
        raise AssertionError("unreachable")  # pragma: no cover

    # -- reads --------------------------------------------------------------------------

    @contextmanager
    def _snapshot(self) -> Iterator[Ledger]:
        """One committed version, read in a REPEATABLE READ READ ONLY transaction."""
        with self._state:
            self._local.open = False
            with self._translated():
                conn = self._begun("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            try:
                with self._translated():
                    _, ledger = self._load(conn)
                yield ledger  # can_open_position runs the caller's checks here: their errors are theirs
            finally:
                self._end(conn)

    def recover(self, *, force: bool = False, next_id: int | None = None) -> str:
        """Nothing to restore: the server recovers its own data from its write-ahead log.

        Takes :meth:`TradeStore.recover`'s arguments, so code written for either store runs on
        both; here they change nothing."""
        return f"{self.name}: nothing to recover (PostgreSQL recovers committed data itself)"

    def close(self) -> None:
        """Close this thread's connection (another is opened on the next call).

        Inside a transaction block this ends the transaction: nothing of it is written, and the
        block's commit raises TradeStoreError saying so.
        """
        self._drop_conn()
