"""PostgreSQL for the tests: one real local server per test session, or the one CI started.

``pg_dsn`` uses ``$TRADESTORE_PG_DSN`` when set (``ci/test`` starts a server and exports it),
else starts a throwaway server (:mod:`tradestore_harness.pg_server`) for the session. When no
server can be had the database tests are skipped with the reason, except under ``CI=true``,
where they fail: CI must never pass by skipping them.
"""

from __future__ import annotations

import os
import uuid

import pytest


def unavailable(reason: str):
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"PostgreSQL tests cannot run under CI=true: {reason}", pytrace=False)
    pytest.skip(f"PostgreSQL tests skipped: {reason}")


def _need_psycopg() -> None:
    try:
        import psycopg  # noqa: F401
    except ImportError:
        unavailable("psycopg 3 is not installed (pip install 'tradestore[postgres]')")


def start_private_server():
    """A server of the test's own (for faults that stop or restart it); caller destroys it."""
    from tradestore_harness.pg_server import LocalServer, ServerUnavailable

    _need_psycopg()
    try:
        server = LocalServer()
        server.start()
    except ServerUnavailable as exc:
        unavailable(str(exc))
    return server


@pytest.fixture(scope="session")
def pg_dsn():
    from tradestore.pgstore import init_schema

    _need_psycopg()
    dsn = os.environ.get("TRADESTORE_PG_DSN")
    server = None
    if not dsn:
        server = start_private_server()
        dsn = server.dsn
    init_schema(dsn)
    yield dsn
    if server is not None:
        server.destroy()


@pytest.fixture
def pg_account() -> str:
    """A fresh account name: every test has an empty account of its own on the shared server."""
    return f"test-{uuid.uuid4().hex[:12]}"
