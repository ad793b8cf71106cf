"""The caller's code that a store runs, and file-writing calls made while a transaction is open.

- A risk check and ``on_integrity_violation`` run inside a write's transaction: every write they
  make through the store is refused (NestedTransactionError) before it changes anything, and the
  write they run inside ends as it would have without them. Reads are allowed.
- ``convert``, ``recover`` and ``export`` write files from the committed log: inside a
  transaction (this store's, or another store's on the same log in this thread) they are refused,
  nothing written, so no uncommitted change reaches a file.
"""

from __future__ import annotations

import json
import os

import pytest

from tradestore import IntegrityError, NestedTransactionError, RiskRejected, TradeStore

from .conftest import FakeClock

LIMITS = dict(max_positions=1, asset_consecutive_loss_cap=None, max_corr_group_risk_pct=100.0)

# Every write of the public API, as a call on a store (or a transaction) holding an OPEN T001.
WRITES = {
    "open_trade": lambda s: s.open_trade("ETH", "LONG", 100, 95, 110, 1),
    "close_trade": lambda s: s.close_trade("T001", 101),
    "partial_close": lambda s: s.partial_close("T001", 0.5, 101),
    "update_trade": lambda s: s.update_trade("T001", {"stop_price": 96}),
    "update_trades_batch": lambda s: s.update_trades_batch([("T001", {"stop_price": 96})]),
    "transaction": lambda s: s.transaction().__enter__(),
}


def _log(path) -> list[dict]:
    return json.loads(open(path, "rb").read())["trades"]


@pytest.mark.parametrize("write", WRITES)
def test_a_risk_check_cannot_write_through_the_store_it_checks_for(tmp_path, write):
    # Before: a check that opened a hedge joined the open it judged, unseen by the position cap.
    path = tmp_path / "t.json"
    seen: list[object] = []

    def check(ledger, proposal):
        seen.append(len(store.get_all_trades()))  # reading is fine
        try:
            WRITES[write](store)
        except NestedTransactionError as exc:
            seen.append(exc)
        return None

    TradeStore(path, clock=FakeClock(), **{**LIMITS, "max_positions": 2}).open_trade("BTC", "LONG", 100, 95, 110, 1)
    store = TradeStore(path, clock=FakeClock(), risk_checks=[check], **{**LIMITS, "max_positions": 2})
    opened = store.open_trade("SOL", "LONG", 100, 95, 110, 1)
    assert seen[0] == 1 and isinstance(seen[1], NestedTransactionError), seen
    assert [(t["id"], t["symbol"], t["status"], t["stop_price"]) for t in _log(path)] == [
        ("T001", "BTC", "OPEN", 95.0), (opened["id"], "SOL", "OPEN", 95.0)]


def test_a_risk_check_cannot_write_through_the_transaction_it_runs_in(tmp_path):
    path = tmp_path / "t.json"
    refused = []

    def check(ledger, proposal):
        try:
            tx.open_trade("ETH", "LONG", 100, 95, 110, 1)
        except NestedTransactionError as exc:
            refused.append(exc)

    store = TradeStore(path, clock=FakeClock(), risk_checks=[check], **LIMITS)
    with store.transaction() as tx:
        tx.open_trade("BTC", "LONG", 100, 95, 110, 1)
    assert len(refused) == 1 and [t["symbol"] for t in _log(path)] == ["BTC"]


def test_can_open_position_runs_checks_that_cannot_write(tmp_path):
    path = tmp_path / "t.json"

    def check(ledger, proposal):
        store.open_trade("ETH", "LONG", 100, 95, 110, 1)

    store = TradeStore(path, clock=FakeClock(), risk_checks=[check], **LIMITS)
    with pytest.raises(NestedTransactionError, match="a risk check"):
        store.can_open_position("BTC")
    assert not path.exists()


@pytest.mark.parametrize("write", WRITES)
def test_on_integrity_violation_cannot_write_through_the_store_that_refused(tmp_path, write):
    # Before: an open from the callback joined the refused transaction and returned T002,
    # which was never written.
    path = tmp_path / "t.json"
    TradeStore(path, clock=FakeClock(), **LIMITS).open_trade("BTC", "LONG", 100, 95, 110, 1)
    doc = json.loads(path.read_bytes())
    doc["trades"][0]["partial_exits"] = "not a list"  # a damaged record: touching it is refused
    path.write_text(json.dumps(doc))
    outcomes = []

    def callback(problems):
        try:
            outcomes.append(WRITES[write](store))
        except NestedTransactionError as exc:
            outcomes.append(exc)

    store = TradeStore(path, clock=FakeClock(), on_integrity_violation=callback, **LIMITS)
    before = path.read_bytes()
    with pytest.raises(IntegrityError):
        store.update_trade("T001", {"notes": "x"})
    assert len(outcomes) == 1 and isinstance(outcomes[0], NestedTransactionError), outcomes
    assert path.read_bytes() == before
    # the store is usable once the callback returned: refused by the cap, not by a leftover flag
    with pytest.raises(RiskRejected):
        store.open_trade("ETH", "LONG", 100, 95, 110, 1)


FILE_WRITES = {
    "convert to journal": lambda s, d: s.convert("journal"),
    "convert to document": lambda s, d: s.convert("document"),
    "recover": lambda s, d: s.recover(force=True),
    "export": lambda s, d: s.export(os.path.join(d, "snapshot.json")),
}


@pytest.mark.parametrize("log_format", ["document", "journal"])
@pytest.mark.parametrize("operation", FILE_WRITES)
@pytest.mark.parametrize("through", ["the same store", "another store"])
def test_no_file_is_written_from_inside_a_transaction(tmp_path, operation, log_format, through):
    # Before: convert() inside a block wrote the block's open even though the block then raised.
    path = tmp_path / "t.json"
    store = TradeStore(path, clock=FakeClock(), log_format=log_format, **{**LIMITS, "max_positions": 5})
    store.open_trade("SOL", "LONG", 100, 95, 110, 1)
    store.open_trade("ADA", "LONG", 100, 95, 110, 1)  # a backup exists (document format)
    files = {name: (tmp_path / name).read_bytes() for name in sorted(os.listdir(tmp_path))}
    other = TradeStore(path, clock=FakeClock(), **LIMITS) if through == "another store" else store

    class Abandon(Exception):
        pass

    with pytest.raises(Abandon):
        with store.transaction() as tx:
            tx.open_trade("BTC", "LONG", 100, 95, 110, 1)
            if operation == "export" and through == "another store":
                # another store exports the committed log, which it reads without this block
                (tmp_path / "elsewhere").mkdir()
                other.export(tmp_path / "elsewhere" / "snapshot.json")
            else:
                with pytest.raises(NestedTransactionError):
                    FILE_WRITES[operation](other, str(tmp_path))
            raise Abandon
    if (tmp_path / "elsewhere").exists():
        exported = json.loads((tmp_path / "elsewhere" / "snapshot.json").read_bytes())["trades"]
        assert [t["symbol"] for t in exported] == ["SOL", "ADA"]
        os.unlink(tmp_path / "elsewhere" / "snapshot.json")
        os.rmdir(tmp_path / "elsewhere")
    assert {name: (tmp_path / name).read_bytes() for name in sorted(os.listdir(tmp_path))} == files
    assert [t["symbol"] for t in TradeStore(path).get_all_trades()] == ["SOL", "ADA"]
