"""Properties of the pure parts: the ledger, the risk checks and the log format. No disk.

- Any sequence of ledger operations, accepted or refused, leaves a ledger without integrity
  violations; a refused operation leaves it byte for byte as it was.
- The risk checks are monotone: adding an OPEN trade never turns a rejection into an
  acceptance (position cap, duplicate symbol, correlation budget, portfolio heat, and the
  checks that do not look at open trades at all).
- Logs in the seed's format (no ``schema``, no ``next_id``, unknown fields) round-trip.
"""

from __future__ import annotations

import copy

import json
from datetime import datetime, timedelta, timezone

from hypothesis import assume, event, given, note
from hypothesis import strategies as st

from tradestore import InvalidTrade, Ledger, RiskLimits, RiskRejected, TradeNotFound, TradeNotOpen
from tradestore import integrity, risk
from tradestore.ledger import PROTECTED_FIELDS

NOW = datetime(2026, 3, 2, 9, 30, tzinfo=timezone.utc)
SYMBOLS = ["BTC", "ETH", "SOL", "ADA", "DOGE", "SPY", "XRP", "eth ", "Btc"]
GROUPS = {"majors": ("BTC", "ETH"), "layer1": ("SOL", "ADA"), "all": ("BTC", "ETH", "SOL", "ADA", "SPY")}

finite = st.floats(min_value=0.01, max_value=1e5, allow_nan=False, allow_infinity=False)
fraction = st.floats(min_value=0.001, max_value=0.999)

open_trade = risk.checked_open  # what a store's transaction does



@st.composite
def limits(draw) -> RiskLimits:
    return RiskLimits(
        max_positions=draw(st.integers(1, 6)),
        starting_capital=draw(st.sampled_from([1000.0, 5000.0, 25000.0])),
        correlation_groups=GROUPS,
        max_corr_group_risk_pct=draw(st.sampled_from([1.0, 4.0, 10.0, 50.0])),
        asset_consecutive_loss_cap=draw(st.sampled_from([None, 1, 2, 3])),
        loss_cap_cooldown_hours=draw(st.sampled_from([None, 1.0])),
        max_drawdown_pct=draw(st.sampled_from([None, 5.0, 20.0])),
        max_daily_loss_pct=draw(st.sampled_from([None, 2.0])),
        max_portfolio_heat_pct=draw(st.sampled_from([None, 5.0, 20.0])),
    )


@st.composite
def opening(draw):
    """Arguments of an open that is valid as input (sides right), whatever the risk checks say."""
    direction = draw(st.sampled_from(["LONG", "SHORT"]))
    entry = draw(finite)
    sign = 1 if direction == "LONG" else -1
    stop = entry * (1 - sign * draw(st.floats(0.001, 0.5)))
    target = entry * (1 + sign * draw(st.floats(0.001, 0.9)))
    size = draw(st.floats(min_value=0.001, max_value=100))
    return draw(st.sampled_from(SYMBOLS)), direction, entry, stop, target, size


def operation(ids):
    ids = st.sampled_from(ids) | st.sampled_from(["T999", "", 7])
    exit_price = finite | st.sampled_from([0.0, -1.0, float("nan"), float("inf")])
    return st.one_of(
        st.tuples(st.just("open"), opening()),
        st.tuples(st.just("open_bad"), opening(), st.sampled_from([0, 1, 2, 3, 4, 5]),
                  st.sampled_from([float("nan"), -1.0, 0, "1", None, True])),
        st.tuples(st.just("close"), ids, exit_price),
        st.tuples(st.just("partial"), ids, fraction | st.sampled_from([0.0, 1.0, 1.5, -0.5]), exit_price),
        st.tuples(st.just("update"), ids, st.dictionaries(
            st.sampled_from(["stop_price", "target_price", "notes", "pnl_usd", "status", "bogus"]),
            finite | st.text(max_size=5), max_size=3)),
        st.tuples(st.just("batch"), st.lists(st.tuples(ids, st.fixed_dictionaries({"notes": st.text(max_size=3)})),
                                             max_size=3)),
        st.tuples(st.just("advance"), st.integers(1, 48)),
    )


def apply(ledger: Ledger, op: tuple, now: datetime, lim: RiskLimits):
    kind = op[0]
    if kind == "open":
        return open_trade(ledger, *op[1], now=now, limits=lim)
    if kind == "open_bad":
        args = list(op[1])
        args[op[2]] = op[3]
        return open_trade(ledger, *args, now=now, limits=lim)
    if kind == "close":
        return ledger.close_trade(op[1], op[2], "exit", now=now)
    if kind == "partial":
        return ledger.partial_close(op[1], op[2], op[3], now=now)
    if kind == "update":
        return ledger.update_trade(op[1], op[2])
    if kind == "batch":
        return ledger.update_trades_batch(op[1])
    raise AssertionError(kind)  # pragma: no cover - every generated kind is handled above


@given(lim=limits(), data=st.data())
def test_ledger_operations_never_break_an_invariant(lim, data):
    ledger = Ledger()
    now = NOW
    for _ in range(data.draw(st.integers(1, 20), label="steps")):
        ids = sorted(t["id"] for t in ledger.trades) or ["T001"]
        op = data.draw(operation(ids), label="op")
        if op[0] == "advance":
            now += timedelta(hours=op[1])
            continue
        before = ledger.to_json()
        try:
            apply(ledger, op, now, lim)
        except (InvalidTrade, RiskRejected, TradeNotFound, TradeNotOpen) as exc:
            note(f"refused {op}: {exc}")
            assert ledger.to_json() == before, "a refused operation changed the ledger"
        assert integrity.ledger_violations(ledger) == []
        open_trades = ledger.open_trades()
        assert len(open_trades) <= lim.max_positions
        symbols = [t["symbol"] for t in open_trades]
        assert len(symbols) == len(set(symbols))
        again = Ledger.from_json(ledger.to_json())
        assert again.trades == ledger.trades and again.next_id == ledger.next_id
        for trade in ledger.trades:  # protected fields never come from an update
            assert set(trade) >= PROTECTED_FIELDS


# -- monotonicity ---------------------------------------------------------------------------

MONOTONE_CHECKS = list(risk.BUILTIN_CHECKS)


@st.composite
def ledger_states(draw, lim: RiskLimits):
    """A ledger reached by accepted operations under permissive limits (any history)."""
    loose = RiskLimits(max_positions=100, correlation_groups={}, asset_consecutive_loss_cap=None,
                       starting_capital=lim.starting_capital)
    ledger = Ledger()
    now = NOW - timedelta(days=3)
    for _ in range(draw(st.integers(0, 12))):
        now += timedelta(hours=draw(st.integers(0, 6)))
        open_ids = [t["id"] for t in ledger.open_trades()]
        choice = draw(st.sampled_from(["open", "close", "partial"] if open_ids else ["open"]))
        try:
            if choice == "open":
                open_trade(ledger, *draw(opening()), now=now, limits=loose)
            elif choice == "close":
                trade = ledger.get(draw(st.sampled_from(open_ids)))
                ledger.close_trade(trade["id"], trade["entry_price"] * draw(st.floats(0.5, 1.5)), now=now)
            else:
                trade = ledger.get(draw(st.sampled_from(open_ids)))
                ledger.partial_close(trade["id"], draw(fraction), trade["entry_price"] * draw(st.floats(0.5, 1.5)), now=now)
        except (RiskRejected, InvalidTrade):
            pass  # a duplicate symbol, a partial exit that rounds to nothing: the state stays valid
    return ledger, now


@given(lim=limits(), data=st.data())
def test_adding_an_open_trade_never_turns_a_rejection_into_an_acceptance(lim, data):
    ledger, now = data.draw(ledger_states(lim), label="ledger")
    symbol, direction, entry, stop, target, size = data.draw(opening(), label="proposal")
    proposal = ledger.propose(symbol, direction, entry, stop, target, size, now=now, limits=lim)
    before = {risk.check_name(c): c(ledger, proposal) for c in MONOTONE_CHECKS}
    # one more OPEN trade, on any symbol not already open, opened regardless of the limits
    extra = data.draw(opening(), label="added trade")
    assume(ledger.open_trade_for(extra[0]) is None)
    bigger = Ledger(copy.deepcopy(ledger.trades), ledger.next_id)
    bigger.open_trade(*extra, now=now)  # the ledger records without any check
    after = {risk.check_name(c): c(bigger, proposal) for c in MONOTONE_CHECKS}
    for name, reason in before.items():
        if reason is not None:
            event(f"rejected by {name}")
            assert after[name] is not None, f"{name}: rejected ({reason}) before, accepted after adding {extra}"
    if risk.first_rejection(ledger, proposal) is not None:
        assert risk.first_rejection(bigger, proposal) is not None


@given(lim=limits(), data=st.data())
def test_enforce_agrees_with_first_rejection_and_the_checks(lim, data):
    ledger, now = data.draw(ledger_states(lim), label="ledger")
    proposal = ledger.propose(*data.draw(opening(), label="proposal"), now=now, limits=lim)
    first = risk.first_rejection(ledger, proposal)
    reasons = [(risk.check_name(c), c(ledger, proposal)) for c in risk.BUILTIN_CHECKS]
    expected = next(((n, r) for n, r in reasons if r is not None), None)
    assert first == expected
    try:
        risk.enforce(ledger, proposal)
    except RiskRejected as exc:
        assert (exc.check, exc.reason) == first
    else:
        assert first is None


# -- the seed's format round-trips ----------------------------------------------------------

text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=8)
json_scalars = st.none() | st.booleans() | st.integers(-10**6, 10**6) | text | \
    st.floats(allow_nan=False, allow_infinity=False)


@st.composite
def seed_trade(draw, number: int):
    direction = draw(st.sampled_from(["LONG", "SHORT"]))
    entry = draw(finite)
    sign = 1 if direction == "LONG" else -1
    stop = entry * (1 - sign * draw(st.floats(0.001, 0.5)))
    size = draw(st.floats(0.001, 100))
    closed = draw(st.booleans())
    exit_price = draw(finite) if closed else None
    trade = {
        "id": f"T{number:03d}", "symbol": draw(st.sampled_from(["BTC", "ETH", "SOL"])) + str(number),
        "direction": direction, "entry_price": entry, "stop_price": stop, "original_stop": stop,
        "target_price": entry * (1 + sign * 0.1), "size": size, "original_size": size,
        "entry_time": "2026-01-01T00:00:00+00:00",
        "exit_price": exit_price, "exit_time": "2026-01-02T00:00:00+00:00" if closed else None,
        "exit_reason": "TP" if closed else None,
        "pnl_usd": round(sign * (exit_price - entry) * size, 8) if closed else None,
        "pnl_pct": None, "r_multiple": None, "status": "CLOSED" if closed else "OPEN",
        "setup_type": draw(text), "grade": draw(text), "notes": draw(text), "partial_exits": [],
    }
    if closed:
        trade["lessons"] = draw(text)
    trade.update(draw(st.dictionaries(st.sampled_from(["bot", "exchange", "x_meta"]), json_scalars, max_size=2)))
    return trade


@st.composite
def seed_logs(draw):
    numbers = sorted(draw(st.sets(st.integers(1, 2000), max_size=8)))
    trades = [draw(seed_trade(n)) for n in numbers]
    doc = {"trades": trades}
    doc.update(draw(st.dictionaries(st.sampled_from(["account", "version_note"]), json_scalars, max_size=2)))
    indent = draw(st.sampled_from([None, 2, 4]))
    return json.dumps(doc, indent=indent), doc


@given(seed=seed_logs())
def test_seed_format_logs_round_trip(seed):
    data, doc = seed
    ledger = Ledger.from_json(data)
    assert ledger.trades == doc["trades"]  # unchanged, unknown fields included
    highest = max((int(t["id"][1:]) for t in doc["trades"]), default=0)
    assert ledger.next_id == highest + 1  # ids are never reused
    written = ledger.to_json()
    document = {"schema": 2, "next_id": ledger.next_id, **ledger.extra, "trades": ledger.trades}
    assert written == json.dumps(document, separators=(",", ":"), allow_nan=False).encode()
    again = Ledger.from_json(written)
    assert again.trades == ledger.trades and again.next_id == ledger.next_id
    assert again.extra == {k: v for k, v in doc.items() if k != "trades"}
    assert json.loads(written)["schema"] == 2
    assert Ledger.from_json(again.to_json()).to_json() == written  # a fixed point after one write
