"""The journal format against a hostile user and a hostile environment.

Each test states one way the journal format could lose an acknowledged write, reuse an id,
show a reader an unacknowledged write, accept a damaged or foreign file, raise something other
than a TradeStoreError, or leave the log unreadable, and checks it does not. Tests marked
``xfail(strict=True)`` are known defects: they fail on the current code, and the reason says why.
"""

from __future__ import annotations

import errno
import json
import os

import pytest

from tradestore import (CorruptTradeLog, StateReconciler, StoreStopped, TradeStore, TradeStoreError, UnsafePath,
                        atomic, journal)

from .conftest import FakeClock

LIMITS = dict(max_positions=50, asset_consecutive_loss_cap=None, max_corr_group_risk_pct=100.0)


def journal_store(path, **kw) -> TradeStore:
    return TradeStore(path, log_format="journal", clock=kw.pop("clock", FakeClock()), **{**LIMITS, **kw})


def opened(store: TradeStore, *symbols: str) -> None:
    for symbol in symbols:
        store.open_trade(symbol, "LONG", 100, 95, 110, 1)


def symbols(path) -> list[str]:
    return [t["symbol"] for t in TradeStore(path).get_all_trades()]


def files_of(directory) -> dict[str, bytes]:
    return {name: open(os.path.join(directory, name), "rb").read() for name in sorted(os.listdir(directory))
            if os.path.isfile(os.path.join(directory, name))}


# --------------------------------------------------------------------------- writing over the log's own files


@pytest.mark.xfail(strict=True, reason="export(path) writes to any path, the log's journal or checkpoint "
                   "included: the acknowledged writes in the journal are destroyed")
@pytest.mark.parametrize("target", ["journal", "checkpoint"])
def test_export_never_writes_over_the_logs_own_files(tmp_path, target):
    store = journal_store(tmp_path / "t.json")
    opened(store, "BTC", "ETH")
    path = store.journal_file if target == "journal" else store.trade_log
    before = files_of(tmp_path)
    with pytest.raises(UnsafePath):
        store.export(path)
    assert files_of(tmp_path) == before
    assert symbols(tmp_path / "t.json") == ["BTC", "ETH"]


def test_export_to_another_file_is_the_single_document(tmp_path):
    """The negative control of the test above: export to a free path works."""
    store = journal_store(tmp_path / "t.json")
    opened(store, "BTC", "ETH")
    assert store.export(tmp_path / "out.json") == 2
    assert (tmp_path / "out.json").read_bytes() == store.export_document()
