"""Adversarial sequences where a following StateReconciler and a fresh one disagree.

Each test builds one long-lived reconciler, lets it read the log (so its LogFollower holds
state), changes the files on disk, then compares what the follower reads and derives with
what a brand-new reconciler on the same files reads and derives (the promise of
tests/test_reconciler_follow.py). Each of these failed on the first version of the follower,
which trusted the path it resolved once, the files' identities and a half-read journal.
"""

from __future__ import annotations

import hashlib
import json
import os
from datetime import datetime, timezone

import pytest

from tradestore import StateReconciler, TradeStore, atomic, journal, reconciler
from tradestore.errors import TradeStoreError
from tradestore.integrity import ledger_violations
from tradestore.reconciler import _comparable

UTC = timezone.utc
NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
LIMITS = dict(max_positions=50, asset_consecutive_loss_cap=None, max_corr_group_risk_pct=100.0,
              max_daily_loss_pct=None, max_weekly_loss_pct=None, max_drawdown_pct=None)


def _rec(log, out):
    return StateReconciler(log, str(out), fsync=False, clock=lambda: NOW, starting_capital=5000.0)


def _seen(rec):
    """What a reconciler reads and derives now (no writes): version, documents, violations;
    or the refusal's type."""
    try:
        data, ledger = rec._read_log()
    except (TradeStoreError, OSError) as exc:
        return type(exc).__name__
    version, docs = rec._build(data, ledger, NOW, reconciler._version(data, ledger))
    return version, {n: _comparable(d) for n, d in docs.items()}, ledger_violations(ledger)


def _assert_same_as_fresh(following, log, tmp_path):
    assert _seen(following) == _seen(_rec(log, tmp_path / "fresh"))


def _store(log, log_format="journal", clock=lambda: NOW):
    return TradeStore(log, fsync=False, clock=clock, log_format=log_format, **LIMITS)


def _flip(path, at):
    """A bit flip on disk: in place, same size, mtime kept."""
    st = os.stat(path)
    with open(path, "r+b") as f:
        f.seek(at)
        byte = f.read(1)
        f.seek(at)
        f.write(bytes([byte[0] ^ 0x01]))
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))


# ----------------------------------------------------------------- A: symlink swap


def test_symlink_swapped_to_another_journal_format_log(tmp_path):
    """The follower's private TradeStore resolved the symlink once, at its construction."""
    for name, symbols in (("a", ["BTC"]), ("b", ["ETH", "SOL"])):
        (tmp_path / name).mkdir()
        store = _store(str(tmp_path / name / "trades.json"))
        for symbol in symbols:
            store.open_trade(symbol, "LONG", 10.0, 9.0, 12.0, 1.0)
    log = str(tmp_path / "trades.json")
    os.symlink(tmp_path / "a" / "trades.json", log)
    following = _rec(log, tmp_path / "state")
    assert following.reconcile().ok
    os.symlink(tmp_path / "b" / "trades.json", log + ".new")
    os.replace(log + ".new", log)  # the path now names log b
    _assert_same_as_fresh(following, log, tmp_path)  # follower: still log a (1 trade)


def test_backup_turned_into_a_fifo_beside_a_journal_format_log(tmp_path):
    """TradeStore's constructor checks (log, backup, journal regular) run once per follower,
    but at every cycle of a fresh reconciler."""
    log = str(tmp_path / "trades.json")
    _store(log).open_trade("BTC", "LONG", 10.0, 9.0, 12.0, 1.0)
    following = _rec(log, tmp_path / "state")
    assert following.reconcile().ok
    os.mkfifo(log + ".bak")
    _assert_same_as_fresh(following, log, tmp_path)  # fresh: UnsafePath; follower: reads on


# ----------------------------------------------------------------- B: a journal appears


def test_interrupted_conversion_beside_an_unchanged_seed_document(tmp_path):
    """convert('journal') cut short after its first step (the journal naming the checkpoint
    about to be written) beside a document whose bytes the follower already hashed."""
    log = str(tmp_path / "trades.json")
    store = _store(log, "document")
    store.open_trade("BTC", "LONG", 10.0, 9.0, 12.0, 1.0)
    with open(log) as f:
        doc = json.load(f)
    with open(log, "w") as f:  # a seed-era tool wrote it, pretty-printed
        json.dump(doc, f, indent=2)
    following = _rec(log, tmp_path / "state")
    assert following.reconcile().ok
    data = journal.checkpoint_bytes(store._load(locked=True), None, 0)
    header = journal._header(hashlib.sha256(data).hexdigest(), None, None, 0)
    atomic.write_atomic(journal.journal_path(log), journal.encode_frame(header), fsync=False)
    # fresh: read through a TradeStore (ledger.to_json() bytes); follower: the cached raw bytes
    _assert_same_as_fresh(following, log, tmp_path)


def test_directory_at_the_journal_path_beside_an_unchanged_document(tmp_path):
    log = str(tmp_path / "trades.json")
    _store(log, "document").open_trade("BTC", "LONG", 10.0, 9.0, 12.0, 1.0)
    following = _rec(log, tmp_path / "state")
    assert following.reconcile().ok
    os.mkdir(journal.journal_path(log))
    _assert_same_as_fresh(following, log, tmp_path)  # fresh: UnsafePath; follower: cache hit


# ----------------------------------------------------------------- C: exit-order ties


def test_closed_in_exit_order_ties_follow_log_order(tmp_path):
    """Ids 'T2' and 'T002' have one id number; both closed at the same time. A fresh sort is
    stable (log order: T2 first); the followed view bisects the newly closed T2 after T002."""
    log = str(tmp_path / "trades.json")
    exit_time = datetime(2026, 11, 27, 10, 0, tzinfo=UTC)
    store = _store(log, "document", clock=lambda: exit_time)
    store.open_trade("BTC", "LONG", 10.0, 9.0, 12.0, 1.0)
    store.open_trade("ETH", "LONG", 10.0, 9.0, 12.0, 1.0)
    store.close_trade("T002", 9.5)  # a loss
    with open(log) as f:
        doc = json.load(f)
    doc["trades"][0]["id"] = "T2"  # a seed-era tool's id (parse_id keeps 'T2' apart from 'T002')
    with open(log, "w") as f:
        json.dump(doc, f)
    writer = _store(log, clock=lambda: exit_time)
    writer.convert("journal")
    following = _rec(log, tmp_path / "state")
    assert following.reconcile().ok
    writer.close_trade("T2", 11.0)  # a win, same exit time: one journal record
    _assert_same_as_fresh(following, log, tmp_path)  # current_streak +1 vs -1


# ----------------------------------------------------------------- E: exception mid-read


def test_bad_record_appended_then_cut_off(tmp_path):
    """read_tail applies record n+1, then raises on a well-framed record with a wrong seq;
    the store keeps the half-read view (records counted, end not moved)."""
    log = str(tmp_path / "trades.json")
    writer = _store(log)
    writer.open_trade("BTC", "LONG", 10.0, 9.0, 12.0, 1.0)
    following = _rec(log, tmp_path / "state")
    assert following.reconcile().ok
    writer.open_trade("ETH", "LONG", 10.0, 9.0, 12.0, 1.0)
    path = journal.journal_path(log)
    good = os.path.getsize(path)
    with open(path, "ab") as f:  # a writer that ignores the lock
        f.write(journal.encode_frame({"seq": 7, "next_id": 3, "trades": []}))
    assert following.reconcile().aborted  # as a fresh one: fine
    os.truncate(path, good)  # repaired
    _assert_same_as_fresh(following, log, tmp_path)  # follower: "record 1 found where record 2 belongs"


# ----------------------------------------------------------------- F/G: damage in place


@pytest.mark.parametrize("where", ["journal-middle", "journal-last-frame", "checkpoint"])
def test_bit_flip_in_bytes_already_followed(tmp_path, where):
    """Fresh: a damaged frame with good ones after it, a dropped last write, or a checkpoint
    the journal does not continue. Follower: identity (dev, ino, size, mtime) unchanged and
    only the tail is read, so it sees none of it."""
    log = str(tmp_path / "trades.json")
    writer = _store(log)
    writer.open_trade("BTC", "LONG", 10.0, 9.0, 12.0, 1.0)
    path = journal.journal_path(log)
    writer.open_trade("ETH", "LONG", 10.0, 9.0, 12.0, 1.0)
    middle = os.path.getsize(path) - 20
    writer.open_trade("SOL", "LONG", 10.0, 9.0, 12.0, 1.0)
    following = _rec(log, tmp_path / "state")
    assert following.reconcile().ok
    if where == "journal-middle":
        _flip(path, middle)
    elif where == "journal-last-frame":
        _flip(path, os.path.getsize(path) - 20)
    else:
        _flip(log, os.path.getsize(log) - 30)
    _assert_same_as_fresh(following, log, tmp_path)


def test_torn_tail_cut_off_after_the_follower_salvaged_its_ids(tmp_path):
    log = str(tmp_path / "trades.json")
    _store(log).open_trade("BTC", "LONG", 10.0, 9.0, 12.0, 1.0)
    path = journal.journal_path(log)
    end = os.path.getsize(path)
    following = _rec(log, tmp_path / "state")
    assert following.reconcile().ok
    frame = journal.encode_frame({"seq": 2, "next_id": 9, "trades": [{"id": "T008", "status": "OPEN",
                                                                        "symbol": "X"}]})
    with open(path, "ab") as f:  # a writer died mid-append
        f.write(frame[:-5])
    _assert_same_as_fresh(following, log, tmp_path)  # both: next_id 9
    os.truncate(path, end)  # the torn tail cut off
    _assert_same_as_fresh(following, log, tmp_path)  # follower next_id 9, fresh 2
