"""The PostgreSQL store in the benchmark (``tradestore-pg``): histories as accounts, copied fresh per run.

The benchmark's "path" of a ``tradestore-pg`` cell is an account name in the database of
``$TRADESTORE_PG_DSN``; :func:`server_for_run` starts a throwaway local server when that is
not set (and says why it cannot, in which case the cells are left out).
"""

from __future__ import annotations

import json
import os

from tradestore.pgstore import DSN_ENV, PgTradeStore, init_schema, resolve_dsn
from tradestore.values import id_number, symbol_key


def server_for_run(log=print):
    """``(server or None, reason or None)``: a server to stop at the end, or why there is none."""
    if os.environ.get(DSN_ENV):
        return None, None
    try:
        import psycopg  # noqa: F401
    except ImportError:
        return None, "psycopg 3 is not installed (pip install 'tradestore[postgres]')"
    from tradestore_harness.pg_server import LocalServer, ServerUnavailable

    try:
        server = LocalServer()
        os.environ[DSN_ENV] = server.start()  # the spawned writers inherit it
    except ServerUnavailable as exc:
        return None, str(exc)
    log(f"started a local PostgreSQL server for the benchmark ({server.root})")
    return server, None


def _conn():
    import psycopg

    return psycopg.connect(resolve_dsn(None), autocommit=True)


def create_account(account: str, trades: list[dict], next_id: int) -> str:
    """Load a history as ``account`` (replacing it); returns the account name."""
    init_schema()
    with _conn() as conn, conn.transaction():
        _drop(conn, account)
        conn.execute("INSERT INTO tradestore_account (account, next_id, version) VALUES (%s, %s, 0)",
                     (account, next_id))
        with conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO tradestore_trade (account, id, seq, symbol, status, version, record) "
                "VALUES (%s, %s, %s, %s, %s, 0, %s)",
                [(account, t["id"], id_number(t["id"]), symbol_key(t["symbol"]), t["status"],
                  json.dumps(t, separators=(",", ":"), allow_nan=False)) for t in trades],
            )
    return account


def copy_account(source: str, account: str) -> str:
    with _conn() as conn, conn.transaction():
        _drop(conn, account)
        conn.execute("INSERT INTO tradestore_account (account, next_id, version, extra) "
                     "SELECT %s, next_id, version, extra FROM tradestore_account WHERE account = %s",
                     (account, source))
        conn.execute("INSERT INTO tradestore_trade (account, id, seq, symbol, status, version, record) "
                     "SELECT %s, id, seq, symbol, status, version, record FROM tradestore_trade "
                     "WHERE account = %s", (account, source))
    return account


def drop_account(account: str) -> None:
    with _conn() as conn, conn.transaction():
        _drop(conn, account)


def _drop(conn, account: str) -> None:
    conn.execute("DELETE FROM tradestore_trade WHERE account = %s", (account,))
    conn.execute("DELETE FROM tradestore_account WHERE account = %s", (account,))


def count_trades(account: str) -> int:
    with _conn() as conn:
        return conn.execute("SELECT count(*) FROM tradestore_trade WHERE account = %s", (account,)).fetchone()[0]


def make_store(account: str, **options) -> PgTradeStore:
    return PgTradeStore(account, None, **options)
