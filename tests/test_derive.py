"""derive: hand-computed numbers, seed compatibility and hypothesis properties. No disk."""

from __future__ import annotations

import copy
import json
import math
from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tradestore import accounting, derive
from tradestore.ledger import Ledger
from tradestore.risk import RiskLimits

UTC = timezone.utc
PERMISSIVE = RiskLimits(starting_capital=1000.0, max_positions=1000, max_corr_group_risk_pct=1e9,
                        asset_consecutive_loss_cap=None)


def at(day: int, hour: int = 12) -> datetime:
    """March 2026: the 2nd is a Monday."""
    return datetime(2026, 3, day, hour, tzinfo=UTC)


def example_ledger() -> Ledger:
    """The worked example of docs/DERIVED.md, built through the real ledger operations."""
    led = Ledger()
    led.open_trade("BTC", "LONG", 100, 90, 130, 1, "A", now=at(2, 9))          # T001
    led.partial_close("T001", 0.5, 120, now=at(2, 15))                                               # +10
    led.close_trade("T001", 110, "TP", now=at(3, 10))                                                # +5, net 15
    led.open_trade("ETH", "SHORT", 50, 55, 40, 2, "A", now=at(3, 9))            # T002
    led.open_trade("SOL", "LONG", 10, 9, 12, 10, "", now=at(3, 9))              # T003
    led.close_trade("T002", 60, "SL", now=at(4, 10))                                                 # -20
    led.close_trade("T003", 10, "scratch", now=at(4, 11))                                            # 0
    led.open_trade("XAU", "LONG", 200, 190, 250, 1, "B", now=at(4, 12))         # T004
    led.partial_close("T004", 0.5, 220, now=at(5, 9))                                                # +10
    led.update_trade("T004", {"stop_price": 205})
    led.open_trade("DOGE", "SHORT", 1, 1.1, 0.8, 100, "B", now=at(5, 10))       # T005
    return led


NOW = at(5, 12)
CONFIG = RiskLimits(starting_capital=1000)


def files(trades, now=NOW, limits=CONFIG):
    return derive.derive_all(trades, now, limits)


def test_worked_example_portfolio():
    p = files(example_ledger().trades, NOW, CONFIG)["portfolio.json"]
    assert p["realized_pnl"] == 5.0  # 15 - 20 + 0 (closed) + 10 (partial of OPEN T004)
    assert p["balance"] == p["current_equity"] == 1005.0
    assert (p["total_trades"], p["winning_trades"], p["losing_trades"], p["breakeven_trades"]) == (3, 1, 2, 1)
    assert p["open_positions"] == 2
    assert p["open_partial_pnl"] == 10.0 and p["closed_pnl"] == -5.0
    risks = {pos["id"]: (pos["initial_risk_usd"], pos["open_risk_usd"]) for pos in p["positions"]}
    assert risks == {"T004": (10.0, 0.0), "T005": (10.0, 10.0)}  # T004's stop is past entry


def test_worked_example_equity():
    e = files(example_ledger().trades, NOW, CONFIG)["equity.json"]
    assert [(pt["date"], pt["equity"], pt["pnl"]) for pt in e["equity_curve"]] == [
        ("2026-03-02", 1010.0, 10.0), ("2026-03-03", 1015.0, 5.0),
        ("2026-03-04", 995.0, -20.0), ("2026-03-05", 1005.0, 10.0),
    ]
    assert e["peak_equity"] == 1015.0 and e["peak_date"] == "2026-03-03"
    assert e["drawdown_percent"] == round((1005 - 1015) / 1015 * 100, 4)
    assert e["max_drawdown_pct"] == round((995 - 1015) / 1015 * 100, 4)
    assert (e["current_drawdown_days"], e["max_drawdown_days"]) == (2, 2)
    assert e["win_rate"] == round(100 / 3, 4)
    assert e["profit_factor"] == 0.75
    assert e["avg_r"] == round((1.5 - 2.0 + 0.0) / 3, 4)
    assert e["total_pnl"] == -5.0 and e["realized_pnl"] == 5.0
    assert (e["current_streak"], e["max_win_streak"], e["max_loss_streak"]) == (0, 1, 1)
    assert e["last_5_results"] == ["W", "L", "B"]
    assert e["portfolio_heat"] == round(10 / 1005 * 100, 4)
    assert e["heat_per_position"] == {"XAU": 0.0, "DOGE": round(10 / 1005 * 100, 4)}
    assert e["inception_date"] == "2026-03-02"
    assert e["drawdown_status"] == "NORMAL"


def test_worked_example_risk_state():
    r = files(example_ledger().trades, NOW, CONFIG)["risk_state.json"]
    assert r["daily_start_value"] == 995.0  # everything realized before 2026-03-05 00:00 UTC
    assert r["weekly_start_value"] == 1000.0  # nothing before Monday 2026-03-02 00:00 UTC
    assert (r["daily_reset_date"], r["weekly_reset_date"]) == ("2026-03-05", "2026-03-02")
    assert r["daily_pnl"] == 10.0 and r["daily_drawdown_pct"] == 0.0
    assert r["total_drawdown_pct"] == round(-10 / 1015 * 100, 4)
    assert r["halted"] is False and r["halt_reason"] is None


def test_worked_example_setups_sorted_by_expectancy():
    s = files(example_ledger().trades, NOW, CONFIG)["setup_performance.json"]
    assert list(s["setups"]) == s["ranking"] == ["UNKNOWN", "A"]  # 0.0R before -0.25R
    a = s["setups"]["A"]
    assert (a["total_trades"], a["wins"], a["losses"], a["breakeven"]) == (2, 1, 1, 0)
    assert (a["avg_r"], a["avg_win_r"], a["avg_loss_r"], a["expectancy"]) == (-0.25, 1.5, -2.0, -0.25)
    assert a["total_pnl"] == -5.0 and a["trades"] == ["T001", "T002"] and a["win_rate"] == 50.0
    assert s["setups"]["UNKNOWN"]["breakeven"] == 1 and s["total_closed"] == 3


def test_halt_on_daily_limit_and_reason_names_it():
    led = example_ledger()
    led.close_trade("T005", 1.6, "SL", now=at(5, 11))  # -60 today: 1005 - 60 = 945 vs day start 995
    r = files(led.trades, NOW, RiskLimits(starting_capital=1000, max_daily_loss_pct=5.0))["risk_state.json"]
    assert r["halted"] is True and "loss since 00:00 UTC" in r["halt_reason"]
    assert r["daily_drawdown_pct"] == round((945 - 995) / 995 * 100, 4)
    relaxed = files(led.trades, NOW, RiskLimits(starting_capital=1000, max_daily_loss_pct=6.0))["risk_state.json"]
    assert relaxed["halted"] is False


def test_r_uses_original_stop_and_size_so_partials_count():
    t = example_ledger().get("T001")
    t["stop_price"] = 109  # trailed after the fact: R is still measured on the original risk
    assert accounting.net_r(t) == 1.5
    assert accounting.initial_risk(t) == 10.0


def test_breakeven_is_exactly_zero_net_pnl():
    assert [accounting.result_of(x) for x in (0.01, 0.0, -0.0, -1e-8)] == ["W", "B", "B", "L"]


def test_empty_log_is_all_defined_json():
    out = derive.derive_all([], NOW, CONFIG)
    json.dumps(out, allow_nan=False)
    e = out["equity.json"]
    assert e["profit_factor"] is None and e["avg_r"] is None and e["equity_curve"] == []
    assert e["current_equity"] == 1000.0 and e["inception_date"] is None and e["win_rate"] == 0.0


def test_only_the_date_of_the_clock_matters():
    trades = example_ledger().trades
    morning = derive.derive_all(trades, at(5, 0) + timedelta(seconds=1), CONFIG)
    night = derive.derive_all(trades, at(5, 23), CONFIG)
    for name in derive.FILES:
        a, b = dict(morning[name]), dict(night[name])
        assert a.pop("last_updated") != b.pop("last_updated")
        assert a == b, name


def test_bad_limits_are_refused():
    with pytest.raises(ValueError, match="starting_capital"):
        RiskLimits(starting_capital=0)
    with pytest.raises(TypeError, match="unknown limit option"):
        RiskLimits.from_options(max_dayly_loss_pct=3)
    with pytest.raises(ValueError, match="max_drawdown_pct"):
        RiskLimits(max_drawdown_pct=float("nan"))
    with pytest.raises(ValueError, match="max_daily_loss_pct"):
        RiskLimits(max_daily_loss_pct=0)  # a 0 % halt would halt a flat account


# --------------------------------------------------------------------------- seed compatibility


def seed_style_log() -> list[dict]:
    """Trades as the seed's code wrote them: no schema, no next_id, r_multiple its own way."""
    trades = copy.deepcopy(example_ledger().trades)
    for t in trades:
        t["r_multiple"] = 99.0  # whatever the seed stored is not trusted for R
    return trades


def test_values_the_seed_gets_right_are_unchanged():
    """Realized P&L, equity, counts, win rate, profit factor and per-setup counts and P&L,
    computed the plain way the seed's reports compute them."""
    trades = seed_style_log()
    closed = [t for t in trades if t["status"] == "CLOSED"]
    pnls = [t["pnl_usd"] + sum(p["pnl_usd"] for p in t["partial_exits"]) for t in closed]  # the seed's net
    realized = sum(pnls) + sum(p["pnl_usd"] for t in trades if t["status"] == "OPEN" for p in t["partial_exits"])
    wins = sum(p > 0 for p in pnls)
    out = derive.derive_all(trades, NOW, CONFIG)
    p, e, s = out["portfolio.json"], out["equity.json"], out["setup_performance.json"]
    assert math.isclose(p["realized_pnl"], realized, abs_tol=1e-8)
    assert math.isclose(p["current_equity"], 1000 + realized, abs_tol=1e-8)
    assert (p["total_trades"], p["winning_trades"], p["losing_trades"]) == (len(closed), wins, len(closed) - wins)
    assert e["win_rate"] == round(wins / len(closed) * 100, 4)
    gross_win = sum(x for x in pnls if x > 0)
    gross_loss = -sum(x for x in pnls if x < 0)
    assert e["profit_factor"] == round(gross_win / gross_loss, 4)
    for name, row in s["setups"].items():
        mine = [t for t in closed if (t["setup_type"] or "UNKNOWN") == name]
        assert row["total_trades"] == len(mine)
        nets = [pnl for t, pnl in zip(closed, pnls) if t in mine]
        assert math.isclose(row["total_pnl"], sum(nets), abs_tol=1e-8)
        assert row["wins"] == sum(n > 0 for n in nets)
    assert e["avg_r"] != 99.0  # R is recomputed from the definition, on purpose


SEED_KEYS = {
    "portfolio.json": "balance starting_capital realized_pnl current_equity total_trades winning_trades "
                      "losing_trades open_positions last_updated",
    "equity.json": "starting_capital current_equity total_return_pct peak_equity drawdown_percent "
                   "max_drawdown_pct drawdown_status current_drawdown_days max_drawdown_days total_trades "
                   "winning_trades losing_trades win_rate profit_factor avg_r total_pnl inception_date "
                   "last_updated equity_curve portfolio_heat heat_per_position current_streak "
                   "max_win_streak max_loss_streak last_5_results",
    "risk_state.json": "starting_value current_value daily_start_value weekly_start_value daily_reset_date "
                       "weekly_reset_date open_positions halted halt_reason",
    "setup_performance.json": "setups total_closed last_updated",
}
SEED_SETUP_KEYS = set("total_trades wins losses breakeven win_rate avg_r avg_win_r avg_loss_r expectancy "
                      "total_pnl trades".split())


def test_every_seed_key_is_present():
    out = derive.derive_all(example_ledger().trades, NOW, CONFIG)
    for name, keys in SEED_KEYS.items():
        missing = set(keys.split()) - set(out[name])
        assert not missing, (name, missing)
    for row in out["setup_performance.json"]["setups"].values():
        assert SEED_SETUP_KEYS <= set(row)


# --------------------------------------------------------------------------- properties

SYMBOLS = ["BTC", "ETH", "SOL", "XAU", "SPY"]

op = st.one_of(
    st.tuples(st.just("open"), st.sampled_from(SYMBOLS), st.sampled_from(["LONG", "SHORT"]),
              st.floats(1, 1000), st.floats(0.001, 0.5), st.floats(0.01, 10), st.sampled_from(["A", "B", ""])),
    st.tuples(st.just("partial"), st.integers(0, 30), st.floats(0.1, 0.9), st.floats(-0.9, 2.0)),
    st.tuples(st.just("close"), st.integers(0, 30), st.floats(-1.5, 2.5)),
)


def build(ops, gaps) -> list[dict]:
    """Apply a random operation list through the real ledger rules; skip the ones it refuses."""
    led = Ledger()
    now = datetime(2026, 1, 1, tzinfo=UTC)
    for i, o in enumerate(ops):
        now = now + timedelta(minutes=gaps[i % len(gaps)])
        try:
            if o[0] == "open":
                _, sym, direction, entry, dist, size, setup = o
                s = 1 if direction == "LONG" else -1
                led.open_trade(sym, direction, entry, entry * (1 - s * dist), entry * (1 + s * dist), size, setup,
                               now=now)
            else:
                open_ = led.open_trades()
                if not open_:
                    continue
                t = open_[o[1] % len(open_)]
                s = 1 if t["direction"] == "LONG" else -1
                move = abs(t["entry_price"] - t["original_stop"])
                price = max(t["entry_price"] + s * move * o[-1], 1e-6)
                if o[0] == "partial":
                    led.partial_close(t["id"], o[2], price, now=now)
                else:
                    led.close_trade(t["id"], price, now=now)
        except Exception as exc:  # the ledger refusing an input is fine; anything else is not
            from tradestore.errors import TradeStoreError
            assert isinstance(exc, TradeStoreError), exc
    return led.trades


logs = st.builds(build, st.lists(op, max_size=40), st.lists(st.integers(1, 3000), min_size=1, max_size=8))
capitals = st.floats(100, 1e6)
clocks = st.datetimes(min_value=datetime(2025, 12, 1), max_value=datetime(2026, 6, 1), timezones=st.just(UTC))


@settings(max_examples=150, deadline=None)
@given(logs, capitals, clocks)
def test_equity_is_starting_capital_plus_realized(trades, capital, now):
    out = derive.derive_all(trades, now, RiskLimits(starting_capital=capital))
    # every final exit and every partial exit, open trade or closed: the seed's realized P&L
    realized = math.fsum([t["pnl_usd"] for t in trades if t["status"] == "CLOSED"]
                         + [p["pnl_usd"] for t in trades for p in t["partial_exits"]])
    p = out["portfolio.json"]
    assert p["current_equity"] == round(capital + realized, 8)
    assert p["current_equity"] == out["equity.json"]["current_equity"] == out["risk_state.json"]["current_value"]
    curve = out["equity.json"]["equity_curve"]
    if curve:
        assert math.isclose(curve[-1]["equity"], p["current_equity"], rel_tol=1e-9, abs_tol=1e-6)
        assert [pt["date"] for pt in curve] == sorted({pt["date"] for pt in curve})
    else:
        assert p["current_equity"] == round(capital, 8)


@settings(max_examples=150, deadline=None)
@given(logs, capitals, clocks)
def test_drawdowns_are_never_positive(trades, capital, now):
    out = derive.derive_all(trades, now, RiskLimits(starting_capital=capital))
    e, r = out["equity.json"], out["risk_state.json"]
    values = [e["drawdown_percent"], e["max_drawdown_pct"], r["total_drawdown_pct"]]
    values += [v for v in (r["daily_drawdown_pct"], r["weekly_drawdown_pct"]) if v is not None]
    values += [pt["drawdown_pct"] for pt in e["equity_curve"]]
    assert all(v <= 0 for v in values), values
    assert e["max_drawdown_pct"] <= e["drawdown_percent"]
    assert e["max_drawdown_pct"] <= min((pt["drawdown_pct"] for pt in e["equity_curve"]), default=0.0)
    assert e["peak_equity"] >= max([capital] + [pt["equity"] for pt in e["equity_curve"]]) - 1e-6
    assert e["max_drawdown_days"] >= e["current_drawdown_days"] >= 0


@settings(max_examples=100, deadline=None)
@given(logs, capitals, clocks)
def test_same_log_and_clock_give_the_same_output(trades, capital, now):
    before = copy.deepcopy(trades)
    config = RiskLimits(starting_capital=capital)
    first = derive.derive_all(trades, now, config)
    assert trades == before  # the input is not modified
    again = derive.derive_all(json.loads(json.dumps(trades)), now, config)  # as read back from disk
    assert json.dumps(first, allow_nan=False) == json.dumps(again, allow_nan=False)


@settings(max_examples=100, deadline=None)
@given(logs, clocks)
def test_counts_add_up(trades, now):
    out = derive.derive_all(trades, now)
    p, s = out["portfolio.json"], out["setup_performance.json"]
    closed = [t for t in trades if t["status"] == "CLOSED"]
    assert p["total_trades"] == len(closed) == s["total_closed"]
    assert p["winning_trades"] + p["losing_trades"] == len(closed)
    assert sum(r["wins"] + r["losses"] + r["breakeven"] for r in s["setups"].values()) == len(closed)
    assert sorted(i for r in s["setups"].values() for i in r["trades"]) == sorted(t["id"] for t in closed)
    exps = [r["expectancy"] for r in s["setups"].values() if r["expectancy"] is not None]
    assert exps == sorted(exps, reverse=True)
    assert p["open_positions"] == len(trades) - len(closed)


def test_times_in_other_offsets_naive_or_unreadable_are_placed_in_utc():
    led = example_ledger()
    t = led.get("T002")
    t["exit_time"] = "2026-03-05T01:00:00+02:00"  # 2026-03-04 23:00 UTC: before today's start
    r = files(led.trades, NOW, CONFIG)["risk_state.json"]
    assert r["daily_start_value"] == 995.0
    t["exit_time"] = "2026-03-05T01:00:00"  # naive: taken as UTC, so today
    assert files(led.trades, NOW, CONFIG)["risk_state.json"]["daily_start_value"] == 1015.0
    t["exit_time"] = "not a time"  # falls back to its entry time, 2026-03-03 09:00: before T001's +5
    e = files(led.trades, NOW, CONFIG)["equity.json"]
    assert e["equity_curve"][1] == {"date": "2026-03-03", "equity": 995.0, "pnl": -15.0,
                                    "peak": 1010.0, "drawdown_pct": round(-15 / 1010 * 100, 4)}
    assert e["current_equity"] == 1005.0  # P&L is never dropped


def test_equity_below_zero_halts_and_heat_is_undefined():
    led = example_ledger()
    led.close_trade("T005", 12.0, "gap", now=at(5, 11))  # SHORT 100 units from 1 to 12: -1100
    r = files(led.trades, NOW, CONFIG)["risk_state.json"]
    assert r["current_value"] < 0 and r["halted"] and r["halt_reason"].startswith("equity")
    p = files(led.trades, NOW, CONFIG)["portfolio.json"]
    assert p["portfolio_heat"] is None and p["positions"][0]["risk_pct"] is None
    json.dumps([r, p], allow_nan=False)
