"""A child forked inside a transaction never commits it: it holds no lock, and its copy of the
log may already be stale. Real fork(2), ordering by pipes."""

from __future__ import annotations

import os

import pytest

from tradestore import TradeStore

pytestmark = pytest.mark.xdist_group("processes")

# What a child may do inside the inherited block before leaving it normally.
CHILD_ACTIONS = {
    "open": lambda tx: tx.open_trade("SOL", "LONG", 100, 95, 120, 1),
    "close": lambda tx: tx.close_trade("T001", 110),
    "partial": lambda tx: tx.partial_close("T001", 0.5, 110),
    "update": lambda tx: tx.update_trade("T001", {"notes": "child"}),
    "batch": lambda tx: tx.update_trades_batch([("T001", {"notes": "child"})]),
    "store call joining the block": None,  # filled per store below
    "nothing": lambda tx: None,
}


@pytest.mark.parametrize("action", sorted(CHILD_ACTIONS))
def test_a_child_forked_inside_a_transaction_never_overwrites_what_the_parent_acknowledged(tmp_path, action):
    store = TradeStore(tmp_path / "trades.json", correlation_groups={}, lock_timeout=5)
    parent = os.getpid()
    go_r, go_w = os.pipe()
    report_r, report_w = os.pipe()
    # A store call in the child opens its own transaction: it takes the lock itself and
    # loads the current log, so its write is legitimate and keeps ETH.
    do = CHILD_ACTIONS[action] or (lambda tx: store.update_trade("T001", {"notes": "c"}))

    def body():
        with store.transaction() as tx:
            tx.open_trade("BTC", "LONG", 100, 95, 120, 1)
            pid = os.fork()
            if pid == 0:
                os.read(go_r, 1)  # wait until the parent has committed and acknowledged ETH
                do(tx)
                return 0  # leave the block normally: its commit runs here, in the child
        return pid

    try:
        child = body()
    except BaseException as exc:
        if os.getpid() == parent:
            raise
        os.write(report_w, type(exc).__name__.encode())  # pragma: no cover - in the child
        os._exit(0)  # pragma: no cover
    if child == 0:  # pragma: no cover - the child's stale copy was committed
        os.write(report_w, b"committed")
        os._exit(0)
    eth = store.open_trade("ETH", "LONG", 100, 95, 120, 1)  # acknowledged after the fork
    os.write(go_w, b"x")
    os.close(report_w)
    os.waitpid(child, 0)
    with os.fdopen(report_r, "rb") as reports:
        report = reports.read().decode()
    assert report == "ForkedTransaction"
    trades = TradeStore(store.trade_log).get_all_trades()
    assert [t["symbol"] for t in trades] == ["BTC", "ETH"], report
    assert trades[1] == eth and trades[0]["status"] == "OPEN"
    assert trades[0]["notes"] == ("c" if CHILD_ACTIONS[action] is None else "")


def test_the_child_sees_forked_transaction_when_it_leaves_the_block(tmp_path):
    """The exception itself, observed in the child (the test above observes the log)."""
    store = TradeStore(tmp_path / "trades.json", correlation_groups={})
    report_r, report_w = os.pipe()

    def body():
        with store.transaction() as tx:
            tx.open_trade("BTC", "LONG", 100, 95, 120, 1)
            pid = os.fork()
            if pid == 0:
                tx.update_trade("T001", {"notes": "child"})
                return "child"  # leaves the block normally: the commit runs in the child
        return pid

    try:
        pid = body()
    except BaseException as exc:  # pragma: no cover - only the child gets here
        os.write(report_w, type(exc).__name__.encode() + b": " + str(exc).encode())
        os._exit(0)
    if pid == "child":  # pragma: no cover - the commit did not raise: report and end
        os.write(report_w, b"committed")
        os._exit(0)
    os.close(report_w)
    os.waitpid(pid, 0)
    with os.fdopen(report_r, "rb") as reports:
        report = reports.read().decode()
    assert report.startswith("ForkedTransaction: ") and "open a new transaction in the child" in report
    assert TradeStore(store.trade_log).get_trade("T001")["notes"] == ""
