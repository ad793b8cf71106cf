"""Hostile use from outside: odd configuration files, odd arguments, extreme accepted values.

Each case is something a user can do; each must end in success or a documented error (exit 2
for a usage or configuration problem, with one JSON object on stderr under --json), never a
traceback, and must write nothing when refused.
"""

from __future__ import annotations

import json
import os
import threading

import pytest

from tradestore import NestedTransactionError, TradeStore
from tradestore.cli import EXIT_USAGE, main
from tradestore.reconciler import StateReconciler


def _files(directory):
    return {name: (directory / name).read_bytes() for name in sorted(os.listdir(directory))
            if (directory / name).is_file()}


@pytest.mark.parametrize("config", [
    b"trade_log = 5\n",                      # not a path
    b"lock_file = [1]\n",                    # not a path
    b"limits = 5\n",                         # [limits] must be a table
    b"correlation_groups = 5\n",             # correlation groups must be a table
    b"\xff\xfe[limits]\n",                   # not UTF-8: not TOML at all
], ids=["trade_log-int", "lock_file-list", "limits-int", "groups-int", "not-utf8"])
def test_a_malformed_config_file_is_a_usage_error_naming_the_file(tmp_path, capsys, monkeypatch, config):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "tradestore.toml").write_bytes(config)
    before = _files(tmp_path)
    code = main(["status", "--json"])
    err = capsys.readouterr().err
    assert code == EXIT_USAGE, err
    problem = json.loads(err)  # one JSON object, not a traceback
    assert problem["error"] == "UsageError" and "tradestore.toml" in problem["message"]
    assert _files(tmp_path) == before


def test_a_config_path_that_is_a_directory_is_a_usage_error(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "conf").mkdir()
    code = main(["status", "--json", "--config", "conf"])
    err = capsys.readouterr().err
    assert code == EXIT_USAGE, err
    assert "conf" in json.loads(err)["message"]


@pytest.mark.parametrize("next_id", ["-5", "0", "1000000000000002"])
def test_recover_with_an_out_of_range_next_id_is_a_usage_error_and_changes_nothing(tmp_path, capsys,
                                                                                   monkeypatch, next_id):
    monkeypatch.chdir(tmp_path)
    TradeStore("trades.json").open_trade("AAPL", "LONG", 100, 95, 110, 1)
    before = _files(tmp_path)
    code = main(["recover", "--json", "--next-id", next_id])
    err = capsys.readouterr().err
    assert code == EXIT_USAGE, err
    assert "next_id" in json.loads(err)["message"]
    assert _files(tmp_path) == before


def test_reconcile_works_on_r_multiples_the_store_accepted_near_the_double_limit(tmp_path):
    """Tiny prices with a tiny stop distance give R multiples near 1.7e308 that the store
    accepts one by one; their statistics must not overflow (the mean of values is within them)."""
    log = tmp_path / "trades.json"
    store = TradeStore(log, max_portfolio_heat_pct=100, max_corr_group_risk_pct=100)
    entry = 1e-291
    for n in range(1, 4):
        trade = store.open_trade(f"A{n}", "LONG", entry, entry - 6.7e-294, 1e15, 1)
        store.close_trade(trade["id"], 1e15)
    result = StateReconciler(log, output_dir=tmp_path / "state").reconcile()
    assert result.ok, result.summary()
    setups = json.loads((tmp_path / "state" / "setup_performance.json").read_text())
    assert "inf" not in json.dumps(setups).lower()


@pytest.mark.parametrize("where", ["pnl_usd", "partial_exits", "size"])
def test_old_records_with_money_beyond_any_amount_the_store_writes_do_not_block_writes(tmp_path, where):
    """Two records of another writer with finite but enormous amounts: each sum or product of
    them overflows the double range. They must not break equity, the risk checks, an unrelated
    write or a reconcile (they count as 0, like a field of the wrong type)."""
    def record(n):
        trade = {"id": f"T00{n}", "symbol": f"S{n}", "direction": "LONG", "entry_price": 100,
                 "stop_price": 95, "target_price": 110, "size": 1, "status": "CLOSED",
                 "entry_time": "2026-01-01T00:00:00Z", "exit_price": 105,
                 "exit_time": "2026-01-02T00:00:00Z", "pnl_usd": 5.0}
        if where == "pnl_usd":
            trade["pnl_usd"] = 1.7e308
        elif where == "partial_exits":
            trade["partial_exits"] = [{"exit_price": 105, "size_closed": 0.5, "pnl_usd": 1.7e308}] * 2
        else:
            trade.update(status="OPEN", size=1.7e308, exit_price=None, exit_time=None, pnl_usd=None)
        return trade
    log = tmp_path / "trades.json"
    log.write_text(json.dumps({"trades": [record(1), record(2)], "next_id": 3}))
    store = TradeStore(log, max_positions=10)
    assert store.equity() == {"pnl_usd": 5000.0, "partial_exits": 5010.0, "size": 5000.0}[where]
    assert store.can_open_position("AAPL", "LONG", 100, 95, 1)[0]
    assert store.open_trade("AAPL", "LONG", 100, 95, 110, 1)["id"] == "T003"
    assert StateReconciler(log, output_dir=tmp_path / "state").reconcile().ok


def test_amounts_the_store_writes_at_its_limits_still_count(tmp_path):
    """The bound on log fields is above every amount a store can write: a trade of the largest
    size closed at the largest price move is counted in full (negative control of the above)."""
    store = TradeStore(tmp_path / "trades.json", max_portfolio_heat_pct=100, max_corr_group_risk_pct=100)
    trade = store.open_trade("AAPL", "LONG", 1.0, 1 - 1e-15, 1e15, 1e15 - 1)
    closed = store.close_trade(trade["id"], 1e15)
    assert closed["pnl_usd"] > 9.9e29
    assert store.equity() == 5000.0 + closed["pnl_usd"]


def test_a_transaction_used_after_its_block_ended_is_refused_and_changes_nothing(tmp_path):
    """A Transaction kept past its block holds no lock: a write through it would change the
    cached ledger, be acknowledged without being written, and ride along with some later
    commit (or be lost). It must be refused, also from another thread during the block."""
    store = TradeStore(tmp_path / "trades.json")
    with store.transaction() as tx:
        tx.open_trade("AAPL", "LONG", 100, 95, 110, 1)
        seen = []
        other = threading.Thread(target=lambda: seen.append(_refusal(lambda: tx.open_trade(
            "NVDA", "LONG", 100, 95, 110, 1))))
        other.start()
        other.join()
    assert seen == [NestedTransactionError]
    before = (tmp_path / "trades.json").read_bytes()
    for write in (lambda: tx.open_trade("MSFT", "LONG", 100, 95, 110, 1),
                  lambda: tx.close_trade("T001", 105), lambda: tx.partial_close("T001", 0.5, 105),
                  lambda: tx.update_trade("T001", {"notes": "x"}),
                  lambda: tx.update_trades_batch([("T001", {"notes": "x"})])):
        assert _refusal(write) is NestedTransactionError
    assert store.get_open_symbols() == ["AAPL"]
    store.open_trade("TSLA", "LONG", 100, 95, 110, 1)
    assert [t["symbol"] for t in json.loads((tmp_path / "trades.json").read_text())["trades"]] == ["AAPL", "TSLA"]
    assert before != (tmp_path / "trades.json").read_bytes()  # the control write did write


def test_a_joined_block_that_raises_writes_nothing_even_when_the_outer_block_swallows_it(tmp_path):
    """'If the block raises, nothing is written' holds for a nested (joined) block too: its
    changes cannot be undone alone, so the outer commit is refused and the log is unchanged."""
    log = tmp_path / "trades.json"
    store = TradeStore(log)
    store.open_trade("AAPL", "LONG", 100, 95, 110, 1)
    before = log.read_bytes()
    with pytest.raises(NestedTransactionError, match="nested"):
        with store.transaction() as outer:
            outer.open_trade("MSFT", "LONG", 100, 95, 110, 1)
            try:
                with store.transaction() as inner:
                    inner.open_trade("NVDA", "LONG", 100, 95, 110, 1)
                    raise KeyError("inner failure")
            except KeyError:
                pass
    assert log.read_bytes() == before
    assert store.get_open_symbols() == ["AAPL"]
    # Control: a joined block that does not raise commits with the outer one.
    with store.transaction() as outer:
        outer.open_trade("MSFT", "LONG", 100, 95, 110, 1)
        with store.transaction() as inner:
            inner.open_trade("NVDA", "LONG", 100, 95, 110, 1)
    assert store.get_open_symbols() == ["AAPL", "MSFT", "NVDA"]


def _refusal(call):
    try:
        call()
    except NestedTransactionError as exc:
        return type(exc)
    return None
