"""Promises of docs/FORMAT.md ("The journal format", "A damaged journal") that no data vector
can show: what a person is told, and what recovery does, when a journal-format log has lost its
journal. (A lock-free reader racing a conversion is in tests/test_journal_adversarial.py.)

Each failed on the first version of the journal format.
"""

from __future__ import annotations

import os
import pathlib

import pytest

from tradestore import CorruptTradeLog, RecoveryRefused, TradeStore


def converted_log_without_its_journal(tmp_path: pathlib.Path) -> pathlib.Path:
    """A log written in the document format (so it has a backup), converted to the journal
    format, written twice more, and then its journal is lost."""
    log = tmp_path / "trades.json"
    store = TradeStore(log)
    for symbol in ("BTC", "ETH"):
        store.open_trade(symbol, "LONG", 100, 95, 110, 1)
    store.convert("journal")
    for symbol in ("SOL", "ADA"):  # T003 and T004 are only in the journal
        store.open_trade(symbol, "LONG", 100, 95, 110, 1)
    os.rename(store.journal_file, tmp_path / "journal-moved-away")
    assert os.path.exists(str(log) + ".bak")
    return log


def test_a_checkpoint_without_its_journal_is_not_sent_to_recover(tmp_path):
    log = converted_log_without_its_journal(tmp_path)
    with pytest.raises(CorruptTradeLog, match="put the journal back") as refused:
        TradeStore(log).get_all_trades()
    assert "tradestore recover" not in str(refused.value)


def test_recover_refuses_a_checkpoint_whose_journal_is_missing(tmp_path):
    # Restoring the document-format backup would drop every write since the conversion and give
    # out again the ids T003 and T004 that only the journal showed.
    log = converted_log_without_its_journal(tmp_path)
    before = {name: (tmp_path / name).read_bytes() for name in os.listdir(tmp_path)}
    with pytest.raises(RecoveryRefused):
        TradeStore(log).recover()
    assert {name: (tmp_path / name).read_bytes() for name in os.listdir(tmp_path)} == before
