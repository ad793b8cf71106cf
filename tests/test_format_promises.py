"""Promises of docs/FORMAT.md ("The journal format") that no data vector can show: a reader
racing a conversion, and what a person is told to do with a journal-format log whose journal
is gone.

Each test here fails on the library today and is marked ``xfail(strict=True)`` with the reason:
when the library is fixed the test passes, strict xfail reports it, and the mark is removed.
"""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys

import pytest

from tradestore import CorruptTradeLog, RecoveryRefused, TradeStore, journal

ROOT = pathlib.Path(__file__).resolve().parent.parent
CONVERT_TO_DOCUMENT = "import sys; from tradestore import TradeStore; TradeStore(sys.argv[1]).convert('document')"


def journal_log(path: pathlib.Path, symbols=("BTC", "ETH")) -> TradeStore:
    store = TradeStore(path, log_format="journal")
    for symbol in symbols:
        store.open_trade(symbol, "LONG", 100, 95, 110, 1)
    return store


@pytest.mark.xfail(strict=True, raises=CorruptTradeLog, reason=(
    "journal.load, called without the lock, raises CorruptTradeLog ('journal is missing') for a schema 3 "
    "checkpoint whose journal a conversion to the document format removed after the checkpoint was read; "
    "it should raise LockNeeded, so that the read is made again holding the lock"))
def test_a_reader_racing_a_conversion_to_the_document_format_reads_one_whole_version(tmp_path, monkeypatch):
    log = tmp_path / "trades.json"
    journal_log(log)
    reader = TradeStore(log)
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    real_open = journal.logfile.open_regular
    converted = []

    def convert_first(path):
        # The reader has read the schema 3 checkpoint without the lock; another process converts
        # the log to the document format (holding the lock) before the reader opens the journal.
        if path == reader.journal_file and not converted:
            converted.append(subprocess.run([sys.executable, "-c", CONVERT_TO_DOCUMENT, str(log)], env=env,
                                            check=True))
        return real_open(path)

    monkeypatch.setattr(journal.logfile, "open_regular", convert_first)
    try:
        trades = reader.get_all_trades()
    finally:
        assert converted, "the conversion did not run between the two reads: the race was not made"
    assert [t["symbol"] for t in trades] == ["BTC", "ETH"]
    assert not os.path.exists(reader.journal_file)


def test_the_race_is_made_and_the_converted_log_reads_whole_afterwards(tmp_path):
    # The control of the test above: the conversion in another process works and keeps every
    # trade, so what that test sees is the reader's race and nothing else.
    log = tmp_path / "trades.json"
    journal_log(log)
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    subprocess.run([sys.executable, "-c", CONVERT_TO_DOCUMENT, str(log)], env=env, check=True)
    assert [t["symbol"] for t in TradeStore(log).get_all_trades()] == ["BTC", "ETH"]
    assert not os.path.exists(journal.journal_path(str(log)))


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


@pytest.mark.xfail(strict=True, reason=(
    "TradeStore._load adds 'run `tradestore recover`' to the refusal of a schema 3 checkpoint whose "
    "journal is missing (it looks only at whether the journal exists); FORMAT.md says to put the journal "
    "back, and recover would restore a backup older than the whole journal"))
def test_a_checkpoint_without_its_journal_is_not_sent_to_recover(tmp_path):
    log = converted_log_without_its_journal(tmp_path)
    with pytest.raises(CorruptTradeLog, match="put the journal back") as refused:
        TradeStore(log).get_all_trades()
    assert "tradestore recover" not in str(refused.value)


@pytest.mark.xfail(strict=True, reason=(
    "TradeStore.recover refuses only while the journal exists: for a schema 3 checkpoint whose journal is "
    "missing it restores the document-format backup, drops every write since, and gives out again the ids "
    "T003 and T004 that only the journal showed (FORMAT.md, 'A damaged journal': recover does not apply)"))
def test_recover_refuses_a_checkpoint_whose_journal_is_missing(tmp_path):
    log = converted_log_without_its_journal(tmp_path)
    before = {name: (tmp_path / name).read_bytes() for name in os.listdir(tmp_path)}
    with pytest.raises(RecoveryRefused):
        TradeStore(log).recover()
    assert {name: (tmp_path / name).read_bytes() for name in os.listdir(tmp_path)} == before
