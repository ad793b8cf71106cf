"""The id rule: an id given to an operation names the stored id whatever its case and
surrounding whitespace; its digits are compared as written. Ids are written in upper case."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tradestore import TradeNotFound, TradeStore
from tradestore.ledger import Ledger
from tradestore.values import format_id, parse_id

WHITESPACE = st.text(alphabet=" \t\n", max_size=3)


def spelled(trade_id: str, draw) -> str:
    """``trade_id`` with its letter in either case and whitespace around it."""
    letter = draw(st.sampled_from([trade_id[0].lower(), trade_id[0].upper()]))
    return draw(WHITESPACE) + letter + trade_id[1:] + draw(WHITESPACE)


def ledger_with(numbers: list[int]) -> Ledger:
    return Ledger([{"id": format_id(n), "symbol": f"S{n}", "status": "OPEN"} for n in numbers])


@settings(max_examples=60, deadline=None)
@given(numbers=st.lists(st.integers(1, 10**6), min_size=1, max_size=5, unique=True).map(sorted), data=st.data())
def test_every_spelling_of_a_stored_id_names_it_and_no_other(numbers, data):
    ledger = ledger_with(numbers)
    for n in numbers:
        stored = format_id(n)
        assert ledger.get(spelled(stored, data.draw))["id"] == stored
    missing = data.draw(st.integers(1, 10**7).filter(lambda n: n not in numbers))
    with pytest.raises(TradeNotFound):
        ledger.get(spelled(format_id(missing), data.draw))


def test_digits_are_compared_as_written():
    ledger = ledger_with([1])
    assert ledger.get("T001")["id"] == "T001"
    for other in ("T1", "T01", "T0001", "X001", "T001x", "", "T 001"):
        with pytest.raises(TradeNotFound):
            ledger.get(other)


@pytest.mark.parametrize("value", [1, None, b"T001", ["T001"]])
def test_what_is_not_text_is_left_as_it_is_and_not_found(value):
    assert parse_id(value) is value
    with pytest.raises(TradeNotFound):
        ledger_with([1]).get(value)


def test_every_operation_takes_a_lowercase_id(tmp_path):
    store = TradeStore(tmp_path / "trades.json", fsync=False)
    store.open_trade("BTC", "LONG", 100, 90, 120, 1)
    assert store.get_trade("t001")["id"] == "T001"
    store.update_trade("t001", {"stop_price": 95})
    store.partial_close(" t001", 0.5, 110)
    assert store.update_trades_batch([("t001 ", {"stop_price": 96})]) == 1
    closed = store.close_trade("t001", 115)
    assert closed["id"] == "T001" and closed["status"] == "CLOSED" and closed["stop_price"] == 96
    assert [t["id"] for t in store.get_all_trades()] == ["T001"]
