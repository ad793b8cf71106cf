"""The pure rules: validation, P&L arithmetic, ids and every risk check. No disk, no processes."""

from __future__ import annotations

import copy
import json
import math
from datetime import datetime, timedelta, timezone

import pytest

from tradestore import InvalidTrade, Ledger, RiskLimits, RiskRejected, TradeNotFound, TradeNotOpen
from tradestore import accounting, integrity, risk
from tradestore.errors import CorruptTradeLog

NOW = datetime(2026, 3, 2, 9, 30, tzinfo=timezone.utc)
LIMITS = RiskLimits()


open_trade = risk.checked_open  # what a store's transaction does


def opened(ledger: Ledger, symbol="BTC", direction="LONG", entry=100.0, stop=95.0, target=120.0, size=1.0, *, limits=LIMITS, now=NOW, checks=()):
    return open_trade(ledger, symbol, direction, entry, stop, target, size, "Breakout", "A", "", now=now, limits=limits, checks=checks)


# -- validation: every kind of bad input is refused, naming the field, changing nothing ------

GOOD_OPEN = dict(symbol="BTC", direction="LONG", entry_price=100.0, stop_price=95.0, target_price=120.0, size=1.0)

OPEN_CASES = [
    ("symbol", 42), ("symbol", ""), ("symbol", "   "), ("symbol", None), ("symbol", "BT C"),
    ("symbol", "X" * 33), ("symbol", "BTC\x00"),
    ("direction", "UP"), ("direction", None), ("direction", 1), ("direction", ""),
    ("entry_price", float("nan")), ("entry_price", float("inf")), ("entry_price", -1.0),
    ("entry_price", 0), ("entry_price", "100"), ("entry_price", True), ("entry_price", None),
    ("stop_price", float("nan")), ("stop_price", -5.0), ("stop_price", 101.0), ("stop_price", 100.0),
    ("target_price", float("-inf")), ("target_price", 0.0), ("target_price", 90.0), ("target_price", 100.0),
    ("size", float("nan")), ("size", -0.5), ("size", 0), ("size", float("inf")), ("size", "1"), ("size", [1]),
]


@pytest.mark.parametrize("field,value", OPEN_CASES, ids=[f"{f}={v!r}" for f, v in OPEN_CASES])
def test_open_rejects_bad_input_naming_the_field(field, value):
    ledger = Ledger()
    args = dict(GOOD_OPEN, **{field: value})
    with pytest.raises(InvalidTrade) as caught:
        open_trade(ledger, *args.values(), now=NOW, limits=LIMITS)
    assert caught.value.field == field
    assert field in str(caught.value)
    assert ledger.trades == [] and ledger.next_id == 1


@pytest.mark.parametrize("field,value", [("stop_price", 90.0), ("target_price", 110.0)])
def test_short_sides_are_mirrored(field, value):
    # For a SHORT entry 100, the stop must be above (90 is on the profit side) and the
    # target below (110 is on the loss side).
    args = {**GOOD_OPEN, "direction": "SHORT", "stop_price": 105.0, "target_price": 80.0, field: value}
    with pytest.raises(InvalidTrade) as caught:
        open_trade(Ledger(), *args.values(), now=NOW, limits=LIMITS)
    assert caught.value.field == field


@pytest.mark.parametrize("field", ["setup_type", "grade", "notes"])
def test_open_text_fields_must_be_strings(field):
    kwargs = {"setup_type": "", "grade": "", "notes": "", field: 7}
    with pytest.raises(InvalidTrade) as caught:
        open_trade(Ledger(), *GOOD_OPEN.values(), **kwargs, now=NOW, limits=LIMITS)
    assert caught.value.field == field


def make_open_ledger() -> tuple[Ledger, str]:
    ledger = Ledger()
    return ledger, opened(ledger)["id"]


CLOSE_CASES = [("exit_price", float("nan")), ("exit_price", 0), ("exit_price", -3.0), ("exit_price", "101"),
               ("exit_reason", 5), ("lessons", ["x"]), ("trade_id", 7), ("trade_id", "")]


@pytest.mark.parametrize("field,value", CLOSE_CASES, ids=[f"{f}={v!r}" for f, v in CLOSE_CASES])
def test_close_rejects_bad_input(field, value):
    ledger, tid = make_open_ledger()
    before = copy.deepcopy(ledger.trades)
    args = {"trade_id": tid, "exit_price": 110.0, "exit_reason": "TP", "lessons": "", field: value}
    with pytest.raises(InvalidTrade) as caught:
        ledger.close_trade(*args.values(), now=NOW)
    assert caught.value.field == field
    assert ledger.trades == before


PARTIAL_CASES = [("close_pct", 0), ("close_pct", 1), ("close_pct", 1.5), ("close_pct", -0.2),
                 ("close_pct", float("nan")), ("close_pct", "0.5"), ("exit_price", float("inf")), ("reason", None)]


@pytest.mark.parametrize("field,value", PARTIAL_CASES, ids=[f"{f}={v!r}" for f, v in PARTIAL_CASES])
def test_partial_close_rejects_bad_input(field, value):
    ledger, tid = make_open_ledger()
    before = copy.deepcopy(ledger.trades)
    args = {"trade_id": tid, "close_pct": 0.5, "exit_price": 110.0, "reason": "TP1", field: value}
    with pytest.raises(InvalidTrade) as caught:
        ledger.partial_close(*args.values(), now=NOW)
    assert caught.value.field == field
    assert ledger.trades == before


UPDATE_CASES = [
    ({"status": "CLOSED"}, "status"), ({"id": "T999"}, "id"), ({"entry_price": 1.0}, "entry_price"),
    ({"pnl_usd": 1e9}, "pnl_usd"), ({"size": 5.0}, "size"), ({"exit_price": 1.0}, "exit_price"),
    ({"partial_exits": []}, "partial_exits"), ({"colour": "red"}, "colour"),
    ({"stop_price": float("nan")}, "stop_price"), ({"stop_price": 130.0}, "stop_price"),
    ({"target_price": 90.0}, "target_price"), ({"notes": 3}, "notes"), ({}, "updates"),
]


@pytest.mark.parametrize("updates,field", UPDATE_CASES, ids=[repr(u) for u, _ in UPDATE_CASES])
def test_update_rejects_protected_and_bad_fields(updates, field):
    ledger, tid = make_open_ledger()
    before = copy.deepcopy(ledger.trades)
    with pytest.raises(InvalidTrade) as caught:
        ledger.update_trade(tid, updates)
    assert caught.value.field == field
    assert ledger.trades == before


def test_update_needs_a_dict():
    ledger, tid = make_open_ledger()
    with pytest.raises(InvalidTrade, match="updates"):
        ledger.update_trade(tid, [("stop_price", 99.0)])


def test_batch_is_all_or_nothing():
    ledger = Ledger()
    a = opened(ledger, "BTC")["id"]
    b = opened(ledger, "ETH", limits=RiskLimits(max_corr_group_risk_pct=100))["id"]
    before = copy.deepcopy(ledger.trades)
    with pytest.raises(InvalidTrade) as caught:
        ledger.update_trades_batch([(a, {"stop_price": 97.0}), (b, {"status": "CLOSED"})])
    assert caught.value.field == "status"
    assert ledger.trades == before
    for bad in ("nope", {"T001": {}}, [("T001",)], [(a, {"notes": "x"}), (a, {"notes": "y"})], 5):
        with pytest.raises(InvalidTrade):
            ledger.update_trades_batch(bad)
    assert ledger.trades == before
    assert ledger.update_trades_batch([(a, {"stop_price": 97.0}), (b, {"notes": "trail"})]) == 2
    assert ledger.get(a)["stop_price"] == 97.0 and ledger.get(b)["notes"] == "trail"


def test_unknown_and_closed_trades():
    ledger, tid = make_open_ledger()
    with pytest.raises(TradeNotFound):
        ledger.close_trade("T404", 1.0, now=NOW)
    assert isinstance(TradeNotFound("x"), LookupError)
    ledger.close_trade(tid, 101.0, now=NOW)
    for action in (lambda: ledger.close_trade(tid, 1.0, now=NOW),
                   lambda: ledger.partial_close(tid, 0.5, 1.0, now=NOW),
                   lambda: ledger.update_trade(tid, {"notes": "x"})):
        with pytest.raises(TradeNotOpen):
            action()


# -- arithmetic -----------------------------------------------------------------------------

def test_close_after_a_partial_exit_keeps_the_seed_fields_and_adds_the_net():
    ledger = Ledger()
    t = open_trade(ledger, "btc ", "long", 65000, 63500, 68000, 0.02, "RSI_Div", "A", now=NOW, limits=LIMITS)
    assert t["symbol"] == "BTC" and t["direction"] == "LONG" and t["id"] == "T001"
    ledger.partial_close(t["id"], 0.5, 66500, now=NOW)
    assert t["size"] == 0.01 and t["partial_exits"][0]["size_closed"] == 0.01
    assert t["partial_exits"][0]["pnl_usd"] == 15.0  # 1500 x 0.01
    ledger.close_trade(t["id"], 67000, "TP hit", now=NOW)
    # the final exit on the remaining 0.01: 2000 per unit
    assert (t["pnl_usd"], t["pnl_pct"], t["r_multiple"]) == (20.0, 3.08, 1.33)  # 2000/65000, 2000/1500
    assert t["net_pnl_usd"] == 35.0 and t["net_r_multiple"] == 1.1667  # 35 / (1500 x 0.02)
    assert ledger.realized_pnl() == 35.0
    assert ledger.equity(5000) == 5035.0


def test_short_pnl_sign():
    ledger = Ledger()
    t = opened(ledger, "ETH", "SHORT", 3000, 3100, 2700, 2)
    ledger.close_trade(t["id"], 2900, now=NOW)
    assert t["pnl_usd"] == pytest.approx(200.0) and t["r_multiple"] == pytest.approx(1.0)


def test_realized_pnl_counts_partial_exits_of_open_trades():
    ledger = Ledger()
    t = opened(ledger, "SOL", entry=100, stop=90, target=130, size=10)
    ledger.partial_close(t["id"], 0.25, 110, now=NOW)
    assert ledger.realized_pnl() == pytest.approx(25.0)


def test_ids_increase_and_are_never_reused():
    ledger = Ledger()
    ids = [opened(ledger, s, limits=RiskLimits(max_corr_group_risk_pct=100))["id"] for s in ("A", "B", "C")]
    assert ids == ["T001", "T002", "T003"]
    doc = json.loads(ledger.to_json())
    doc["trades"].pop()  # the newest trade vanished, next_id remembers it
    again = Ledger.from_json(json.dumps(doc))
    assert opened(again, "D")["id"] == "T004"


# -- parsing --------------------------------------------------------------------------------

def seed_log() -> str:
    """A log as the seed's original code wrote it: indent=2, no schema, no next_id."""
    trades = [
        {"id": "T001", "symbol": "BTC", "direction": "LONG", "entry_price": 65000, "stop_price": 63500,
         "original_stop": 63500, "target_price": 68000, "size": 0.02, "original_size": 0.02,
         "entry_time": "2026-01-01T00:00:00+00:00", "exit_price": 67000, "exit_time": "2026-01-02T00:00:00+00:00",
         "exit_reason": "TP", "pnl_usd": 40.0, "pnl_pct": 3.08, "r_multiple": 1.33, "status": "CLOSED",
         "setup_type": "RSI_Div", "grade": "A", "notes": "", "partial_exits": [], "lessons": "ok"},
        {"id": "T002", "symbol": "ETH", "direction": "SHORT", "entry_price": 3000, "stop_price": 3100,
         "original_stop": 3100, "target_price": 2700, "size": 1, "original_size": 1,
         "entry_time": "2026-01-03T00:00:00+00:00", "exit_price": None, "exit_time": None, "exit_reason": None,
         "pnl_usd": None, "pnl_pct": None, "r_multiple": None, "status": "OPEN", "setup_type": "", "grade": "",
         "notes": "", "partial_exits": []},
    ]
    return json.dumps({"trades": trades}, indent=2)


def test_seed_log_loads_unchanged_and_keeps_ids():
    ledger = Ledger.from_json(seed_log())
    assert [t["id"] for t in ledger.trades] == ["T001", "T002"]
    assert ledger.next_id == 3
    assert ledger.trades == json.loads(seed_log())["trades"]
    assert integrity.ledger_violations(ledger) == []


@pytest.mark.parametrize(
    "data",
    ["", "   ", "{", '{"trades": [', "[]", '{"trades": {}}', '{"schema": 3, "trades": []}',
     '{"schema": 0, "trades": []}',
     '{"trades": [{"id": 1}]}', '{"trades": [{"id": "T001", "status": "MAYBE", "symbol": "X"}]}',
     '{"trades": [], "next_id": -1}', '{"trades": [], "next_id": NaN}', "\x00\x01garbage",
     b"\xff\xfe{}"],
)
def test_unreadable_or_wrongly_shaped_logs_are_corrupt(data):
    with pytest.raises(CorruptTradeLog):
        Ledger.from_json(data)


def test_serialisation_is_compact_and_strict():
    ledger = Ledger()
    opened(ledger)
    text = ledger.to_json().decode()
    assert ": " not in text and ", " not in text
    ledger.trades[0]["notes"] = math.nan  # only possible by poking the internals
    with pytest.raises(ValueError):
        ledger.to_json()


# -- risk checks ----------------------------------------------------------------------------

def test_position_cap_says_the_numbers():
    ledger = Ledger()
    limits = RiskLimits(max_positions=3, max_corr_group_risk_pct=100)
    for symbol in ("A", "B", "C"):
        opened(ledger, symbol, limits=limits)
    with pytest.raises(RiskRejected) as caught:
        opened(ledger, "D", limits=limits)
    assert caught.value.check == "position_cap" and "3/3 positions open" in caught.value.reason
    assert len(ledger.trades) == 3


def test_duplicate_symbol_after_normalising():
    ledger = Ledger()
    opened(ledger, "BTC")
    with pytest.raises(RiskRejected) as caught:
        opened(ledger, " btc ")
    assert caught.value.check == "duplicate_symbol" and "T001" in caught.value.reason


def test_correlation_group_budget_is_a_share_of_equity():
    # 4% of 5000 = 200 USD per group; each trade risks 50 USD -> exactly 4 fit.
    limits = RiskLimits(correlation_groups={"g": ["A", "B", "C", "D", "E"]}, max_positions=10)
    ledger = Ledger()
    for symbol in "ABCD":
        opened(ledger, symbol, entry=100, stop=95, size=10, limits=limits)
    with pytest.raises(RiskRejected) as caught:
        opened(ledger, "E", entry=100, stop=95, size=10, limits=limits)
    assert caught.value.check == "correlation_limit"
    assert "200.00" in caught.value.reason and "g" in caught.value.reason
    opened(ledger, "F", entry=100, stop=95, size=10, limits=limits)  # not in the group


def test_correlation_budget_grows_with_realized_pnl():
    limits = RiskLimits(correlation_groups={"g": ["A", "B"]}, max_positions=10)
    ledger = Ledger()
    a = opened(ledger, "A", entry=100, stop=90, size=15, limits=limits)  # risk 150 of 200
    with pytest.raises(RiskRejected):
        opened(ledger, "B", entry=100, stop=90, size=10, limits=limits)  # 250 > 200
    ledger.partial_close(a["id"], 0.5, 200, now=NOW)  # +750 realized: budget 230
    with pytest.raises(RiskRejected):
        opened(ledger, "B", entry=100, stop=90, size=10, limits=limits)  # original size counts
    ledger.close_trade(a["id"], 200, now=NOW)
    opened(ledger, "B", entry=100, stop=90, size=10, limits=limits)


def close_at(ledger, symbol, pnl_sign, when, limits=LIMITS):
    t = opened(ledger, symbol, limits=limits, now=when)
    ledger.close_trade(t["id"], 100 + pnl_sign, now=when)
    return t


def test_loss_cap_blocks_after_n_losses_and_breakeven_counts_as_loss():
    ledger = Ledger()
    t0 = NOW
    close_at(ledger, "XRP", -1, t0)
    close_at(ledger, "XRP", 0, t0 + timedelta(hours=1))   # breakeven counts as a loss
    opened_ok = opened(ledger, "XRP", now=t0 + timedelta(hours=2))  # only 2 losses so far
    ledger.close_trade(opened_ok["id"], 99, now=t0 + timedelta(hours=3))
    with pytest.raises(RiskRejected) as caught:
        opened(ledger, "xrp", now=t0 + timedelta(days=30))
    assert caught.value.check == "loss_cap" and "3/3" in caught.value.reason
    opened(ledger, "ADA")  # other symbols unaffected


def test_a_win_resets_the_loss_streak():
    ledger = Ledger()
    for i, sign in enumerate((-1, -1, +1, -1, -1)):
        close_at(ledger, "XRP", sign, NOW + timedelta(hours=i))
    opened(ledger, "XRP", now=NOW + timedelta(hours=9))


def test_loss_cap_cooldown_unblocks():
    limits = RiskLimits(loss_cap_cooldown_hours=24)
    ledger = Ledger()
    for i in range(3):
        close_at(ledger, "XRP", -1, NOW + timedelta(hours=i), limits)
    with pytest.raises(RiskRejected, match="blocked until"):
        opened(ledger, "XRP", limits=limits, now=NOW + timedelta(hours=25))
    opened(ledger, "XRP", limits=limits, now=NOW + timedelta(hours=26))


def test_drawdown_halt_from_the_log():
    limits = RiskLimits(max_drawdown_pct=10, asset_consecutive_loss_cap=None, max_corr_group_risk_pct=100)
    ledger = Ledger()
    win = opened(ledger, "A", entry=100, stop=50, size=10, limits=limits)
    ledger.close_trade(win["id"], 200, now=NOW)  # equity 6000 (peak)
    loss = opened(ledger, "A", entry=100, stop=10, size=10, limits=limits)
    ledger.close_trade(loss["id"], 40, now=NOW + timedelta(minutes=1))  # 5400: 10% down
    with pytest.raises(RiskRejected) as caught:
        opened(ledger, "B", limits=limits)
    assert caught.value.check == "drawdown_halt" and "10.00%" in caught.value.reason


def test_daily_loss_halt_counts_only_today():
    limits = RiskLimits(max_daily_loss_pct=5, asset_consecutive_loss_cap=None, max_corr_group_risk_pct=100)
    ledger = Ledger()
    yesterday = NOW - timedelta(days=1)
    t = opened(ledger, "A", entry=100, stop=10, size=10, limits=limits, now=yesterday)
    ledger.close_trade(t["id"], 70, now=yesterday)  # -300 yesterday: not today's loss
    opened(ledger, "B", limits=limits)
    t = opened(ledger, "C", entry=100, stop=10, size=10, limits=limits)
    ledger.close_trade(t["id"], 70, now=NOW)  # -300 today: 6.4% of 4700
    with pytest.raises(RiskRejected) as caught:
        opened(ledger, "D", limits=limits)
    assert caught.value.check == "drawdown_halt" and "loss since 00:00 UTC" in caught.value.reason


def test_portfolio_heat_caps_total_open_risk():
    limits = RiskLimits(max_portfolio_heat_pct=2, max_corr_group_risk_pct=100)  # 100 USD
    ledger = Ledger()
    opened(ledger, "A", entry=100, stop=95, size=10, limits=limits)  # 50
    opened(ledger, "B", entry=100, stop=95, size=10, limits=limits)  # 100: exactly full
    with pytest.raises(RiskRejected) as caught:
        opened(ledger, "C", entry=100, stop=99, size=1, limits=limits)
    assert caught.value.check == "portfolio_heat" and "100.00" in caught.value.reason


def test_custom_checks_run_after_builtins_with_their_name():
    def no_memes(ledger, proposal):
        return f"{proposal.symbol} is a meme" if proposal.symbol == "DOGE" else None

    def blocked(ledger, proposal):
        return "weekend"

    blocked.check_name = "weekend_block"
    ledger = Ledger()
    with pytest.raises(RiskRejected) as caught:
        opened(ledger, "DOGE", checks=[no_memes])
    assert (caught.value.check, caught.value.reason) == ("no_memes", "DOGE is a meme")
    with pytest.raises(RiskRejected) as caught:
        opened(ledger, "SOL", checks=[no_memes, blocked])
    assert caught.value.check == "weekend_block"
    assert ledger.trades == []


def test_first_rejection_is_advisory():
    ledger = Ledger()
    opened(ledger, "BTC")
    proposal = ledger.propose("BTC", "LONG", 100, 95, 120, 1, now=NOW, limits=LIMITS)
    assert risk.first_rejection(ledger, proposal)[0] == "duplicate_symbol"
    other = ledger.propose("SOL", "LONG", 100, 95, 120, 1, now=NOW, limits=LIMITS)
    assert risk.first_rejection(ledger, other) is None


# -- integrity ------------------------------------------------------------------------------

def test_integrity_finds_each_kind_of_violation():
    ledger = Ledger.from_json(seed_log())
    assert integrity.ledger_violations(ledger) == []
    bad = copy.deepcopy(ledger.trades)
    bad[0]["status"] = "OPEN"                       # open with exit fields
    bad[1]["symbol"] = "BTC"                        # now two OPEN BTC
    bad.append(dict(bad[1], id="T002"))             # repeated id
    bad[1]["size"] = -1                             # not positive; size != original
    broken = Ledger(bad, 3)
    text = "\n".join(integrity.ledger_violations(broken))
    for expected in ("OPEN trade has exit_price", "BTC: OPEN in both", "does not increase",
                     "size -1 is not a finite positive", "partial exits"):
        assert expected in text, (expected, text)


# -- logs written by other tools --------------------------------------------------------------

def test_seed_trade_without_opening_fields_can_be_partially_closed():
    doc = json.loads(seed_log())
    for field in ("original_size", "original_stop"):
        del doc["trades"][1][field]
    ledger = Ledger.from_json(json.dumps(doc))
    trade = ledger.partial_close("T002", 0.5, 2900, now=NOW)
    assert trade["original_size"] == 1 and trade["original_stop"] == 3100
    changed = integrity.new_violations([], ledger, ledger.changed)
    assert changed == []
    ledger.close_trade("T002", 2800, now=NOW)
    assert trade["r_multiple"] == 2.0  # the final exit: 200 per unit over the 100 risked per unit
    assert trade["net_r_multiple"] == 1.5  # (50 + 100) / (100 x 1)


def test_lowercase_symbols_in_an_old_log_count_towards_their_group():
    doc = json.loads(seed_log())
    doc["trades"][1]["symbol"] = "eth "
    doc["trades"][1].update(direction="LONG", entry_price=3000, stop_price=2900, original_stop=2900, target_price=3300)
    ledger = Ledger.from_json(json.dumps(doc))  # ETH risks 100 of the 201.60 budget
    with pytest.raises(RiskRejected) as caught:
        opened(ledger, "BTC", entry=1000, stop=900, target=1200, size=1.1)  # +110
    assert caught.value.check == "correlation_limit"


def test_times_with_other_offsets_order_by_instant():
    limits = RiskLimits(asset_consecutive_loss_cap=2)
    ledger = Ledger()
    for when, sign in (("2026-03-01T10:00:00Z", -1), ("2026-03-01T08:00:00-05:00", +1), ("2026-03-01T11:30:00+01:00", -1)):
        t = opened(ledger, "XRP", limits=limits)
        ledger.close_trade(t["id"], 100 + sign, now=NOW)
        t["exit_time"] = when
    ledger = Ledger(ledger.trades, ledger.next_id)  # as read from a log another tool wrote
    # By instant: loss 10:00Z, loss 10:30Z, win 13:00Z. Compared as text the win would sort
    # first and the last two would look like a losing streak.
    assert [t["pnl_usd"] > 0 for t in ledger.closed_trades_of("XRP")] == [False, False, True]
    opened(ledger, "XRP", limits=limits)


def test_daily_loss_day_is_the_utc_day_whatever_the_clock_zone():
    limits = RiskLimits(max_daily_loss_pct=5, asset_consecutive_loss_cap=None, max_corr_group_risk_pct=100)
    ledger = Ledger()
    t = opened(ledger, "A", entry=100, stop=10, size=10, limits=limits)
    ledger.close_trade(t["id"], 70, now=datetime(2026, 3, 2, 0, 30, tzinfo=timezone.utc))  # -300 today (UTC)
    tokyo = timezone(timedelta(hours=9))
    with pytest.raises(RiskRejected):  # 09:40 in Tokyo is 00:40 UTC: the loss is today's
        opened(ledger, "B", limits=limits, now=datetime(2026, 3, 2, 9, 40, tzinfo=tokyo))
    new_york = timezone(timedelta(hours=-5))
    opened(ledger, "B", limits=limits, now=datetime(2026, 3, 2, 20, 0, tzinfo=new_york))  # 01:00 UTC on the 3rd


def test_trailing_a_stop_to_entry_frees_heat_but_not_group_risk():
    limits = RiskLimits(max_portfolio_heat_pct=2, max_corr_group_risk_pct=2, correlation_groups={"g": ["A", "B"]})  # 100 USD each
    ledger = Ledger()
    a = opened(ledger, "A", entry=100, stop=90, size=10, limits=limits)  # 100 of 100
    with pytest.raises(RiskRejected) as caught:
        opened(ledger, "C", entry=100, stop=99, size=1, limits=limits)
    assert caught.value.check == "portfolio_heat"
    ledger.update_trade(a["id"], {"stop_price": 100})  # stop at entry: nothing left at risk
    opened(ledger, "C", entry=100, stop=99, size=1, limits=limits)
    with pytest.raises(RiskRejected) as caught:  # the group budget still counts the opening risk
        opened(ledger, "B", entry=100, stop=99, size=1, limits=limits)
    assert caught.value.check == "correlation_limit"


def good_closed_record() -> dict:
    ledger = Ledger()
    trade = opened(ledger, "SOL")
    ledger.partial_close(trade["id"], 0.5, 110, now=NOW)
    ledger.close_trade(trade["id"], 115, now=NOW)
    return copy.deepcopy(trade)


RECORD_DAMAGE = [
    (lambda t: t.update(id="X1"), "is not of the form T001"),
    (lambda t: t.update(id="T009"), "is not below next_id"),
    (lambda t: t.update(original_size="lots"), "original_size 'lots' is not a finite positive number"),
    (lambda t: t["partial_exits"][0].update(pnl_usd=None), "partial_exits[0].pnl_usd None is not finite"),
    (lambda t: t.update(exit_price=math.inf), "CLOSED trade has exit_price inf"),
    (lambda t: t.update(exit_time=""), "CLOSED trade has no exit_time"),
    (lambda t: t.update(status="PENDING"), "status 'PENDING' is not OPEN or CLOSED"),
]


@pytest.mark.parametrize("damage,message", RECORD_DAMAGE, ids=[m for _, m in RECORD_DAMAGE])
def test_each_record_invariant_is_checked(damage, message):
    record = good_closed_record()
    assert integrity.trade_violations(record, next_id=2) == []
    damage(record)
    assert any(message in problem for problem in integrity.trade_violations(record, next_id=2)), message


def test_a_write_that_repeats_an_id_is_a_new_violation():
    ledger = Ledger()
    opened(ledger, "A")
    ledger.mark_clean()
    ledger.next_id = 1  # a bug that would reuse an id
    opened(ledger, "B")
    assert any("appears more than once" in p for p in integrity.new_violations([], ledger, ledger.changed))


def test_unreadable_exit_times_fall_back_to_the_entry_then_sort_first():
    entry = "2020-01-01T00:00:00+00:00"
    assert accounting.exit_at({"exit_time": "yesterday", "entry_time": entry}).isoformat() == entry
    assert accounting.exit_at({"exit_time": None}) == accounting.EPOCH
    assert accounting.exit_order_key({"id": "T009"}) < accounting.exit_order_key({"id": "T001", "exit_time": entry})
