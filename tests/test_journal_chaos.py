"""The chaos campaign on the journal format: our store passes, its four controls are caught."""

from __future__ import annotations

import errno

import pytest

from tradestore import StoreStopped, TradeStore
from tradestore_harness.fsfaults import Fault, FsShim


def test_a_stopped_store_refuses_its_next_write_with_store_stopped(tmp_path):
    # Found by io-errors on the journal format: a store that stopped (its failed record could
    # not be cut off) keeps the lock, and its next write from the same thread raised
    # NestedTransactionError ("already holds the lock through another TradeStore") instead.
    store = TradeStore(tmp_path / "trades.json", log_format="journal")
    store.open_trade("ETH", "LONG", 100.0, 95.0, 110.0, 1.0)
    with FsShim(tmp_path, faults=[Fault(None, "error", errno.EIO, persistent=True, kind="fsync")]):
        with pytest.raises(StoreStopped):
            store.open_trade("XRP", "LONG", 100.0, 95.0, 110.0, 1.0)
    with pytest.raises(StoreStopped):
        store.open_trade("LTC", "LONG", 100.0, 95.0, 110.0, 1.0)
