"""Records the seed's own code wrote, read and managed as the seed meant them.

- A seed-era record may lack ``original_size`` (and ``original_stop``) although the seed's
  partial exits have already reduced its ``size``: its size at opening is the remaining size
  plus the exits' ``size_closed``. Integrity accepts such a record, the store can trail and
  close it, and its initial risk is the one of the same record with ``original_size``.
- The seed's close of a trade the store opened leaves the store's ``net_pnl_usd`` and
  ``net_r_multiple`` null: "not computed", exactly as a record without the keys.
"""

from __future__ import annotations

import copy
import json
import os
import tempfile
from datetime import timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from tests.test_accounting import START, SeedBook
from tradestore import StateReconciler, TradeStore, accounting, integrity

CLOCK = START + timedelta(days=1)


def _store(directory: str, name: str, trades: list[dict]) -> TradeStore:
    """A store on a log written as the seed writes one (indent=2, next_id beside the trades)."""
    path = os.path.join(directory, name)
    with open(path, "w") as f:
        json.dump({"trades": trades, "next_id": len(trades) + 1}, f, indent=2)
    return TradeStore(path, fsync=False, clock=lambda: CLOCK)


@st.composite
def seed_trades(draw) -> dict:
    """One trade kept with the seed's formulas: opened with a size of the format's 6 decimals,
    then any number of partial exits (each refused by the seed when a size rounds to 0), then
    perhaps closed by the seed too."""
    direction = draw(st.sampled_from(["LONG", "SHORT"]))
    sign = 1 if direction == "LONG" else -1
    entry_cents = draw(st.integers(100, 10_000_000))
    distance = draw(st.integers(1, entry_cents // 4)) / 100
    entry = entry_cents / 100
    size = draw(st.integers(1, 10**12)) / 10**6
    book = SeedBook()
    trade = book.open("BTC", direction, entry, round(entry - sign * distance, 2),
                      round(entry + 3 * sign * distance, 2), size, "Breakout", START)
    for i, fraction in enumerate(draw(st.lists(st.floats(0.01, 0.99), max_size=6))):
        closed = round(trade["size"] * fraction, 6)
        if closed <= 0 or round(trade["size"] - closed, 6) <= 0:
            break  # the seed refuses this exit; the trade stays as it is
        moved = draw(st.integers(0, 300)) / 100
        book.partial(trade, fraction, round(entry + sign * distance * moved, 2), START + timedelta(minutes=i + 1))
    if draw(st.booleans()):
        book.close(trade, round(entry + sign * distance * draw(st.integers(-100, 300)) / 100, 2),
                   START + timedelta(hours=1))
    return trade


@settings(max_examples=150, deadline=None)
@given(trade=seed_trades(), without_stop=st.booleans())
def test_a_seed_record_without_original_size_is_the_same_trade_as_with_it(trade, without_stop):
    bare = copy.deepcopy(trade)
    del bare["original_size"]
    if without_stop:
        del bare["original_stop"]

    # both integrity checks accept what the seed's arithmetic wrote
    assert integrity._violations(bare, 2) == []
    assert integrity._plainly_valid(bare, 2)
    # the size at opening, and so what the trade risked, is the record's own
    assert accounting.original_size(bare) == trade["original_size"]
    assert accounting.initial_risk(bare) == accounting.initial_risk(trade)

    with tempfile.TemporaryDirectory() as directory:
        store, reference = _store(directory, "bare.json", [bare]), _store(directory, "full.json", [trade])
        assert store.verify_integrity() == []
        if trade["status"] == "CLOSED":
            return
        sign = 1 if trade["direction"] == "LONG" else -1
        exit_price = round(trade["entry_price"] + sign * abs(trade["entry_price"] - trade["stop_price"]), 2)
        for s in (store, reference):  # trail the stop to entry, then close the rest
            s.update_trade("T001", {"stop_price": trade["entry_price"]})
            s.close_trade("T001", exit_price, "TP")
        closed, expected = store.get_trade("T001"), reference.get_trade("T001")
        assert closed["original_size"] == expected["original_size"] == trade["original_size"]
        assert (closed["net_pnl_usd"], closed["net_r_multiple"]) == (expected["net_pnl_usd"], expected["net_r_multiple"])
        assert store.verify_integrity() == []


def test_the_seed_s_partial_exit_of_a_record_without_original_size():
    """The case the property generalises, worked by hand: 2 units opened at 100 (stop 95), half
    closed at 110 by the seed (size 1.0 left); the seed wrote no original_size."""
    trade = {"id": "T001", "symbol": "BTC", "direction": "LONG", "entry_price": 100.0, "stop_price": 95.0,
             "target_price": 120.0, "size": 1.0, "entry_time": START.isoformat(), "exit_price": None,
             "exit_time": None, "exit_reason": None, "pnl_usd": None, "pnl_pct": None, "r_multiple": None,
             "status": "OPEN", "setup_type": "Breakout", "grade": "A", "notes": "",
             "partial_exits": [{"exit_price": 110.0, "size_closed": 1.0, "pnl_usd": 10.0, "reason": "Partial TP",
                                "timestamp": START.isoformat()}]}
    assert accounting.original_size(trade) == 2.0 and accounting.initial_risk(trade) == 10.0
    with tempfile.TemporaryDirectory() as directory:
        store = _store(directory, "trades.json", [trade])
        assert store.verify_integrity() == []
        store.update_trade("T001", {"stop_price": 100.0})
        closed = store.close_trade("T001", 105.0, "TP")
    assert closed["original_size"] == 2.0 and closed["original_stop"] == 95.0
    assert (closed["pnl_usd"], closed["net_pnl_usd"], closed["net_r_multiple"]) == (5.0, 15.0, 1.5)


def test_a_record_without_original_size_or_partial_exits_opened_with_its_size():
    trade = {"size": 3, "entry_price": 100, "stop_price": 90}
    assert accounting.original_size(trade) == 3.0 and accounting.initial_risk(trade) == 30.0


# --------------------------------------------------------------------------- null net fields


def test_the_seed_s_close_of_a_trade_the_store_opened_is_no_violation():
    """The store writes net_pnl_usd and net_r_multiple null on open; the seed's close does not
    know them and leaves them null. verify and every reconcile accept the record, which reads
    the net the store would have written."""
    with tempfile.TemporaryDirectory() as directory:
        path = os.path.join(directory, "trades.json")
        store = TradeStore(path, fsync=False, clock=lambda: CLOCK)
        store.open_trade("BTC", "LONG", 100.0, 95.0, 120.0, 2.0, "Breakout")
        store.partial_close("T001", 0.5, 110.0)
        with open(path) as f:
            doc = json.load(f)
        record = doc["trades"][0]
        assert record["net_pnl_usd"] is None and record["net_r_multiple"] is None
        SeedBook().close(record, 104.0, CLOCK)  # the seed's formulas, on the record as it is
        with open(path, "w") as f:
            json.dump(doc, f, indent=2)

        reread = TradeStore(path, fsync=False, clock=lambda: CLOCK)
        assert reread.verify_integrity() == []
        result = StateReconciler(path, output_dir=os.path.join(directory, "state"), clock=lambda: CLOCK,
                                 fsync=False).reconcile()
        assert result.violations == []
        closed = reread.get_trade("T001")
        assert closed["net_pnl_usd"] is None  # kept as the seed wrote it
        assert accounting.net_pnl_usd(closed) == 4.0 + 10.0
        assert reread.equity() == reread.limits.starting_capital + 14.0


def test_a_null_net_field_is_still_checked_where_it_is_a_number():
    """The null is "not computed"; a wrong number on the same record is still a violation."""
    with tempfile.TemporaryDirectory() as directory:
        path = os.path.join(directory, "trades.json")
        store = TradeStore(path, fsync=False, clock=lambda: CLOCK)
        closed = store.close_trade(store.open_trade("BTC", "LONG", 100.0, 95.0, 120.0, 1.0)["id"], 110.0)
    for net, flagged in ((None, False), (closed["net_pnl_usd"], False), (closed["net_pnl_usd"] + 0.01, True),
                         (float("nan"), True), ("10.0", True)):
        record = dict(closed, net_pnl_usd=net, net_r_multiple=None)
        assert bool(integrity._violations(record, 2)) is flagged, net
        assert integrity.trade_violations(record, 2) == integrity._violations(record, 2)
