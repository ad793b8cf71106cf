"""The whole-log integrity scan's shortcut agrees with the full rules it shortcuts.

``integrity._plainly_valid`` accepts the records the store writes with exact type checks;
``integrity._violations`` is the full set of rules. For records the store writes (random
histories of ledger operations), and for those records closed by seed-era code (its close
fields, the store's net fields left null), the shortcut must say yes, and for any record at all
(every field replaced by any JSON value, or removed, or by near-miss numbers such as an int,
0, -0.0, a huge value or a float subclass) a yes must mean the full rules find nothing.
``values.id_number`` is checked against the id pattern of docs/FORMAT.md the same way.
"""

from __future__ import annotations

import copy
import re
from datetime import timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tradestore import Ledger, accounting, integrity
from tradestore.values import id_number
from tests.test_accounting import SeedBook
from tests.test_hostile_records import CLOSED, OPEN, json_values
from tests.test_properties import NOW

MISSING = object()
FIELDS = sorted(set(CLOSED) | set(OPEN) | {"net_pnl_usd", "net_r_multiple"})


class Float(float):
    """A float subclass: a number, but not the exact type the shortcut accepts."""


near_misses = st.sampled_from([0, 1, -1, 0.0, -0.0, 1e-300, 1e30, 1e31, 1e308, -1e308, 2**1030, True, Float(1.0),
                               "1.0", None, [], {}, [{}], [1], float("nan"), float("inf")])


def history() -> list[dict]:
    """Records as the store writes them: opened, partially closed, updated, closed."""
    ledger = Ledger()
    for i, (symbol, side, entry, stop, target) in enumerate(
            [("BTC", "LONG", 100.0, 95.0, 120.0), ("ETH", "SHORT", 50.0, 55.0, 40.0),
             ("SOL", "LONG", 20.0, 19.5, 22.0), ("ADA", "SHORT", 1.5, 1.6, 1.2)]):
        at = NOW + timedelta(hours=i)
        trade = ledger.open_trade(symbol, side, entry, stop, target, 3.0, now=at)
        if i % 2:
            ledger.partial_close(trade["id"], 0.5, target, now=at + timedelta(minutes=5))
        if i < 3:
            exit_price = target if i % 3 else stop
            ledger.close_trade(trade["id"], exit_price, now=at + timedelta(minutes=30))
    ledger.open_trade("XRP", "LONG", 0.5, 0.45, 0.6, 100.0, now=NOW)
    return ledger.trades


def closed_by_the_seed() -> list[dict]:
    """Records the store opened (and partially closed) that seed-era code then closed: the
    seed's close fields set, the store's net fields left null as written on open."""
    ledger = Ledger(next_id=20)
    for fraction, symbol in ((None, "DOT"), (0.5, "LINK")):
        trade = ledger.open_trade(symbol, "LONG", 10.0, 9.0, 14.0, 2.0, now=NOW)
        if fraction:
            ledger.partial_close(trade["id"], fraction, 12.0, now=NOW + timedelta(minutes=5))
    records = copy.deepcopy(ledger.trades)
    for record in records:
        SeedBook().close(record, 13.0, NOW + timedelta(minutes=30))
    return records


STORE_RECORDS, SEED_CLOSED = history(), closed_by_the_seed()
RECORDS = STORE_RECORDS + SEED_CLOSED


def test_the_store_s_records_take_the_shortcut():
    assert {(t["status"], bool(t["partial_exits"])) for t in STORE_RECORDS} == {
        ("OPEN", False), ("OPEN", True), ("CLOSED", False), ("CLOSED", True)}
    assert {(t["net_pnl_usd"], t["net_r_multiple"], bool(t["partial_exits"])) for t in SEED_CLOSED} == {
        (None, None, False), (None, None, True)}
    for trade in RECORDS:
        assert integrity._violations(trade, 100) == []
        assert integrity._plainly_valid(trade, 100), trade


PLAIN = [t for t in STORE_RECORDS if not t["partial_exits"]]
LOSING, WINNING = sorted((t for t in PLAIN if t["status"] == "CLOSED"), key=lambda t: t["pnl_usd"])
OPEN_PLAIN = next(t for t in PLAIN if t["status"] == "OPEN")


def _near_misses(closed: dict) -> list[tuple[dict, dict]]:
    flipped = {"pnl_usd": -closed["pnl_usd"], "net_pnl_usd": -closed["net_pnl_usd"]}
    edits = [
        {"size": 1.0}, {"original_size": 0.0}, {"original_stop": None}, {"entry_price": 2**1030},
        {"entry_price": 0}, {"entry_price": -1.0}, {"entry_price": True}, {"size": True, "original_size": True},
        {"target_price": "1"}, {"stop_price": None}, flipped, {"pnl_usd": None}, {"exit_price": float("inf")},
        {"exit_time": ""}, {"exit_time": None}, {"exit_time": MISSING}, {"partial_exits": ""},
        {"partial_exits": 0}, {"partial_exits": {}}, {"partial_exits": [1]},
        {"net_pnl_usd": closed["net_pnl_usd"] + 0.01}, {"pnl_pct": "x"}, {"r_multiple": float("nan")},
        {"status": "closed"}, {"direction": "long"}, {"id": "T999"}, {"id": "T1x"},
    ]
    return [(closed, edit) for edit in edits]


# One edit per rule, each a violation the shortcut must leave to the full rules; on a winning
# and a losing trade, so that no other rule happens to catch it first.
WITH_PARTIALS = [t for t in STORE_RECORDS if t["partial_exits"]]
PARTIAL_EDITS = [{"exit_price": None}, {"size_closed": "1"}, {"pnl_usd": float("inf")}, {"size_closed": 10.0},
                 {"size_closed": True}]
BROKEN = _near_misses(WINNING) + _near_misses(LOSING) + [
    (trade, {"partial_exits": [dict(trade["partial_exits"][0], **edit)]})
    for trade in WITH_PARTIALS for edit in PARTIAL_EDITS] + [
    (trade, {"partial_exits": trade["partial_exits"] + [5]}) for trade in WITH_PARTIALS] + [
    (OPEN_PLAIN, edit) for edit in ({"exit_price": 1.0}, {"exit_time": "x"}, {"pnl_usd": 0.0},
                                    {"net_pnl_usd": 0.0}, {"size": 2 * OPEN_PLAIN["size"]})] + [
    (trade, edit) for trade in SEED_CLOSED
    for edit in ({"net_pnl_usd": round(accounting.net_pnl(trade), 2) + 0.01}, {"net_pnl_usd": float("nan")},
                 {"net_pnl_usd": "3.0"}, {"pnl_usd": -trade["pnl_usd"]})]


@pytest.mark.parametrize("base,edit", BROKEN, ids=[f"{b['id']}-{'-'.join(e)}-{i}" for i, (b, e) in enumerate(BROKEN)])
def test_every_rule_s_near_miss_goes_to_the_full_rules(base, edit):
    trade = copy.deepcopy(base)
    for field, value in edit.items():
        if value is MISSING:
            del trade[field]
        else:
            trade[field] = value
    assert integrity._violations(trade, 100) != []
    assert not integrity._plainly_valid(trade, 100)
    assert integrity.trade_violations(trade, 100) == integrity._violations(trade, 100)


@settings(max_examples=500)
@given(base=st.sampled_from(RECORDS + [CLOSED, OPEN]), next_id=st.sampled_from([1, 2, 3, 6, 100]),
       edits=st.lists(st.tuples(st.sampled_from(FIELDS), st.one_of(json_values, near_misses, st.just(MISSING))),
                      max_size=3))
def test_a_record_the_shortcut_accepts_has_no_violation(base, next_id, edits):
    trade = copy.deepcopy(base)
    for field, value in edits:
        if value is MISSING:
            trade.pop(field, None)
        else:
            trade[field] = value
    if integrity._plainly_valid(trade, next_id):
        assert integrity._violations(trade, next_id) == []
    assert integrity.trade_violations(trade, next_id) == integrity._violations(trade, next_id)


_ID = re.compile(r"T([0-9]{1,15})")  # docs/FORMAT.md: "T" and 1 to 15 digits


class Text(str):
    pass


@given(st.one_of(st.text(max_size=18), st.from_regex(r"T[0-9]{0,17}", fullmatch=True),
                 st.from_regex(r"\s?T[0-9\u0660-\u0669\u00b2]{1,16}\s?", fullmatch=True)))
def test_id_number_reads_exactly_the_id_pattern(text):
    match = _ID.fullmatch(text)
    expected = int(match.group(1)) if match else None
    assert id_number(text) == expected
    assert id_number(Text(text)) == expected


# --------------------------------------------------------------------------- scans kept in the memo

# What every reader guarantees a record has (document.check_records): an id (merge finds the
# record it replaces by it), a status and a symbol; any other field may be anything.
EDITABLE = [f for f in FIELDS if f not in ("id", "status", "symbol")]
edit = st.one_of(
    st.tuples(st.sampled_from(EDITABLE), st.one_of(json_values, near_misses, st.just(MISSING))),
    st.tuples(st.just("status"), st.sampled_from(["OPEN", "CLOSED"])),
    st.tuples(st.just("symbol"), st.sampled_from(["BTC", "eth ", "NEW"])))


def _scans(ledger: Ledger) -> tuple:
    from tradestore import derive

    try:
        derived = derive.derive_all(ledger, NOW)
    except Exception as exc:  # a damaged record may stop a projection: then both must stop alike
        derived = type(exc).__name__
    return integrity.ledger_violations(ledger), derived


@settings(max_examples=300, deadline=None)
@given(next_id=st.sampled_from([1, 3, 6, 100]),
       merges=st.lists(st.tuples(st.integers(0, 7), st.lists(edit, max_size=2)), min_size=1, max_size=6))
def test_scans_repeated_on_a_followed_ledger_equal_scans_from_scratch(next_id, merges):
    """The integrity scan and the derived figures keep each record's result in the ledger's
    memo; a merge that changes a record any way at all (valid to damaged, damaged to valid, a
    CLOSED record rewritten) must drop exactly what it changed: every scan of the followed
    ledger equals the same scan of a ledger built from a copy of its records."""
    ledger = Ledger(copy.deepcopy(RECORDS), next_id)
    assert _scans(ledger) == _scans(Ledger(copy.deepcopy(ledger.trades), ledger.next_id))
    for position, edits in merges:
        if position < len(ledger.trades):
            record = copy.deepcopy(ledger.trades[position])
        else:  # a new record after the others
            record = copy.deepcopy(CLOSED if position % 2 else OPEN)
            record["id"] = f"T{ledger.next_id:03d}"
        for field, value in edits:
            if value is MISSING:
                record.pop(field, None)
            else:
                record[field] = value
        ledger.merge([record], ledger.next_id + (position >= len(ledger.trades)))
        assert _scans(ledger) == _scans(Ledger(copy.deepcopy(ledger.trades), ledger.next_id))
