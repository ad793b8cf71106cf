"""Functions run in spawned processes by the PostgreSQL tests (importable by name)."""

from __future__ import annotations

import os

from tradestore_harness import waitpoints


def _store(kind: str, dsn: str, account: str, limits: dict):
    os.environ["TRADESTORE_PG_DSN"] = dsn
    from tradestore_harness import pg_target

    trade_log = f"/nonexistent/{account}/trades.json"  # only names the account
    factory = pg_target.tradestore_pg if kind == "ours" else pg_target.pg_unlocked
    return factory(trade_log, **limits)


def race_open(kind: str, dsn: str, account: str, limits: dict, symbol: str, barrier, decided, results, worker: str):
    """Open ``symbol`` once every racer is at ``barrier``; the control waits at ``decided`` too."""
    import threading

    store = _store(kind, dsn, account, limits)
    store.get_all_trades()  # connected and warm before the race starts

    def at_decided(_n: int) -> None:
        try:
            decided.wait(10)
        except threading.BrokenBarrierError:
            pass
    waitpoints.arm("decided", at_decided)
    barrier.wait(30)
    try:
        trade = store.open_trade(symbol, "LONG", 100.0, 95.0, 120.0, 1.0)
        results.put((worker, "ok", trade["id"]))
    except Exception as exc:  # every outcome is reported; the test judges it
        results.put((worker, type(exc).__name__, str(exc)))
    finally:
        if not waitpoints.hits("decided"):
            decided.abort()  # decided under the lock (ours): the others must not wait for it


def open_and_hold(dsn: str, account: str, symbol: str, at_commit, release, pid_queue, results):
    """Open a trade and stop right before COMMIT (rows written, account held) until killed."""
    from tradestore.pgstore import PgTradeStore

    class Holding(PgTradeStore):
        def _before_commit(self, ledger):
            pid_queue.put(self._conn().info.backend_pid)
            at_commit.set()
            release.wait(30)  # the parent terminates this backend meanwhile; COMMIT then fails

    store = Holding(account, dsn)
    try:
        store.open_trade(symbol, "LONG", 100.0, 95.0, 120.0, 1.0)
        results.put(("ok", ""))
    except Exception as exc:
        results.put((type(exc).__name__, str(exc)))


def write_loop(dsn: str, account: str, worker: str, count: int, started, results):
    """Open and close ``count`` trades of the worker's own symbol, acknowledging each success."""
    from tradestore.pgstore import PgTradeStore

    store = PgTradeStore(account, dsn, max_positions=50, asset_consecutive_loss_cap=None,
                         max_corr_group_risk_pct=100.0)
    started.set()
    for n in range(count):
        try:
            trade = store.open_trade(f"{worker}{n}", "LONG", 100.0, 99.0, 120.0, 0.01, notes=f"{worker}-{n}")
            results.put(("ok", trade["id"], f"{worker}-{n}"))
            store.close_trade(trade["id"], 101.0)
            results.put(("closed", trade["id"], f"{worker}-{n}"))
        except Exception as exc:
            results.put(("fail", type(exc).__name__, str(exc)[:200]))
            store.close()
    results.put(("done", worker, ""))


def init_at_barrier(dsn: str, barrier, results) -> None:
    """Run init_schema once every worker is at ``barrier``; report the outcome."""
    from tradestore.pgstore import init_schema

    barrier.wait(30)
    try:
        init_schema(dsn)
        results.put("ok")
    except BaseException as exc:  # every outcome is reported; the test judges it
        results.put(f"{type(exc).__module__}.{type(exc).__name__}: {exc}")
