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


def _updates(directory, fault=None, count=5):
    """``count`` stop updates of one trade of a journal-format log in ``directory`` (every
    file-system call recorded, ``fault`` armed); returns (calls, outcomes)."""
    from tradestore_harness.journal_target import JournalStore

    with FsShim(directory, fault=fault, real_sync=False) as shim:
        store = JournalStore(directory / "trades.json", max_positions=10)  # checkpoints when the journal outgrows it
        outcomes = []
        for n in range(count):
            try:
                store.update_trade("T001", {"notes": f"update {n}"})
                outcomes.append("ok")
            except OSError:
                outcomes.append("fail")
    return shim.calls, outcomes


def test_an_acknowledged_append_survives_a_power_cut_after_its_journal_rename_was_not_synced(tmp_path):
    # Found by io-errors on the journal format (seed 2): a checkpoint renames a new journal
    # into place and its directory fsync fails, so the checkpoint raises (logged: the write it
    # followed is in the old journal). The next write appended to the new journal and was
    # acknowledged after the fsync of its data, but the journal's name was never made durable:
    # a power cut undoes the rename, and the acknowledged write is gone.
    import random

    from tradestore_harness import journal_reader
    from tradestore_harness.powerloss import DiskModel, materialise, snapshot_dir

    base = tmp_path / "base"
    base.mkdir()
    store = TradeStore(base / "trades.json", log_format="journal", max_positions=10)
    for symbol in ("ETH", "XRP", "LTC", "BNB", "TRX", "XLM"):  # a checkpoint larger than two records
        store.open_trade(symbol, "LONG", 100.0, 95.0, 110.0, 1.0)
    snapshot = snapshot_dir(str(base))
    materialise(*snapshot, str(tmp_path / "rec"))
    calls, _ = _updates(tmp_path / "rec")
    renamed = next(c.index for c in calls if c.kind == "replace" and c.dst.endswith(".journal"))
    synced = next(c.index for c in calls[renamed:] if c.kind == "dirfsync")
    run = tmp_path / "run"
    materialise(*snapshot, str(run))
    calls, outcomes = _updates(run, Fault(synced, "error", errno.EIO))
    last = max(k for k, outcome in enumerate(outcomes) if outcome == "ok")
    model = DiskModel(str(run), *snapshot)
    for call in calls:
        model.apply(call)
    for state in model.crash_states(random.Random(0)):
        held = journal_reader.state_of(state.files.get("trades.json"), state.files.get("trades.json.journal"))
        assert held.document["trades"][0]["notes"] == f"update {last}", (state.label, outcomes)
