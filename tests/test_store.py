"""The store in one process: the write path, refusal of unreadable logs, caching, recovery."""

from __future__ import annotations

import json
import os
import stat
import threading

import pytest

from tradestore import (
    CorruptTradeLog,
    IntegrityError,
    InvalidTrade,
    LockTimeout,
    NestedTransactionError,
    RecoveryRefused,
    RiskRejected,
    TradeStore,
)
from tradestore import atomic
from tradestore.ledger import Ledger

from .test_ledger import seed_log
from .workers import in_forked_child


def open_btc(store, symbol="BTC"):
    return store.open_trade(symbol, "LONG", 65000, 63500, 68000, 0.02, "RSI_Div", "A")


def test_api_tour_from_the_design(store):
    trade = open_btc(store)
    assert trade["id"] == "T001" and trade["status"] == "OPEN"
    store.partial_close(trade["id"], 0.5, 66500, "Partial TP")
    store.update_trade(trade["id"], {"stop_price": 65000})
    closed = store.close_trade(trade["id"], 67000, "TP hit")
    assert closed["pnl_usd"] == 20.0 and closed["net_pnl_usd"] == 35.0  # final exit; with the partial
    assert store.get_trade("T001") == closed
    assert store.get_open_trades() == [] and store.get_closed_trades() == [closed]
    assert store.get_next_id() == "T002" and store.position_count() == 0
    assert store.verify_integrity() == []
    assert store.equity() == pytest.approx(5035.0)
    doc = json.loads(open(store.trade_log).read())
    assert doc["schema"] == 2 and doc["next_id"] == 2 and doc["trades"] == [closed]


def test_returned_records_are_copies(store):
    trade = open_btc(store)
    trade["symbol"] = "HACKED"
    store.get_all_trades()[0]["size"] = 999
    assert store.get_trade("T001")["symbol"] == "BTC"
    assert store.get_trade("T001")["size"] == 0.02


CORRUPT_LOGS = {
    "torn": lambda good: good[: len(good) // 2],
    "empty": lambda good: b"",
    "garbage": lambda good: os.urandom(64),
    "wrong-shape": lambda good: b'[{"id": "T001"}]',
    "nan": lambda good: good.replace(b"65000.0", b"NaN", 1),
}


@pytest.mark.parametrize("kind", sorted(CORRUPT_LOGS))
def test_unreadable_log_is_refused_for_reads_and_writes_and_left_intact(store, kind):
    open_btc(store)
    good = open(store.trade_log, "rb").read()
    bad = CORRUPT_LOGS[kind](good)
    with open(store.trade_log, "wb") as f:
        f.write(bad)
    before = os.stat(store.trade_log)
    fresh = TradeStore(store.trade_log)
    for action in (fresh.get_all_trades, fresh.get_open_trades, fresh.position_count,
                   lambda: open_btc(fresh, "ETH"), lambda: fresh.close_trade("T001", 1.0),
                   lambda: store.open_trade("SOL", "LONG", 10, 9, 12, 1)):
        with pytest.raises(CorruptTradeLog):
            action()
    assert open(store.trade_log, "rb").read() == bad
    assert os.stat(store.trade_log).st_mtime_ns == before.st_mtime_ns


def test_missing_log_with_a_backup_is_not_treated_as_empty(store):
    open_btc(store)
    open_btc(store, "ETH")  # now a backup exists
    os.unlink(store.trade_log)
    with pytest.raises(CorruptTradeLog, match="recover"):
        TradeStore(store.trade_log).get_all_trades()


def test_recover_restores_the_previous_version_after_validating_it(store):
    open_btc(store)
    open_btc(store, "ETH")
    previous = open(atomic.backup_path(store.trade_log), "rb").read()
    assert [t["id"] for t in Ledger.from_json(previous).trades] == ["T001"]
    assert "nothing to recover" in store.recover()
    damaged = open(store.trade_log, "rb").read()[:-7]  # torn: the end of the document is gone
    with open(store.trade_log, "wb") as f:
        f.write(damaged)
    summary = store.recover()
    assert "1 trades" in summary and "dropped (not in the backup, ids not reused): T002" in summary
    assert [t["id"] for t in store.get_all_trades()] == ["T001"]
    kept = [n for n in os.listdir(os.path.dirname(store.trade_log)) if ".corrupt-" in n]
    assert len(kept) == 1 and kept[0] in summary
    assert open(os.path.join(os.path.dirname(store.trade_log), kept[0]), "rb").read() == damaged
    assert store.get_next_id() == "T003"  # not the backup's T002: that id was acknowledged


def test_recover_refuses_a_bad_backup(store):
    open_btc(store)
    open_btc(store, "ETH")
    with open(atomic.backup_path(store.trade_log), "wb") as f:
        f.write(b"garbage")
    with open(store.trade_log, "wb") as f:
        f.write(b"")
    with pytest.raises(CorruptTradeLog):
        store.recover()
    assert open(store.trade_log, "rb").read() == b""
    os.unlink(atomic.backup_path(store.trade_log))
    with pytest.raises(CorruptTradeLog, match="no backup"):
        store.recover()


def test_recover_refuses_a_backup_with_violations(store):
    open_btc(store)
    open_btc(store, "ETH")
    doc = json.loads(open(atomic.backup_path(store.trade_log)).read())
    doc["trades"][0]["size"] = -1
    with open(atomic.backup_path(store.trade_log), "w") as f:
        json.dump(doc, f)
    with open(store.trade_log, "wb") as f:
        f.write(b"{")
    with pytest.raises(IntegrityError):
        store.recover(next_id=3)
    assert open(store.trade_log, "rb").read() == b"{"


def test_seed_log_loads_and_continues_its_ids(tmp_path, clock):
    path = tmp_path / "trades.json"
    path.write_text(seed_log())
    store = TradeStore(path, clock=clock)
    assert [t["id"] for t in store.get_all_trades()] == ["T001", "T002"]
    assert open_btc(store, "SOL")["id"] == "T003"
    doc = json.loads(path.read_text())
    assert doc["trades"][:2] == json.loads(seed_log())["trades"]


def test_rejected_and_invalid_calls_write_nothing(store):
    open_btc(store)
    before = open(store.trade_log, "rb").read(), os.stat(store.trade_log).st_ino
    with pytest.raises(RiskRejected):
        open_btc(store)
    with pytest.raises(InvalidTrade):
        store.open_trade("ETH", "LONG", float("nan"), 1, 2, 1)
    with pytest.raises(InvalidTrade):
        store.update_trades_batch([("T001", {"stop_price": 64000}), ("T001", {"status": "x"})])
    after = open(store.trade_log, "rb").read(), os.stat(store.trade_log).st_ino
    assert after == before


def test_transaction_commits_once_and_rolls_back_on_error(store, monkeypatch):
    writes = []
    real = atomic.write_atomic
    monkeypatch.setattr(atomic, "write_atomic", lambda *a, **k: writes.append(a[0]) or real(*a, **k))
    with store.transaction() as tx:
        a = tx.open_trade("BTC", "LONG", 100, 95, 120, 1)
        store.open_trade("SOL", "LONG", 100, 95, 120, 1)  # same store, same thread: joins
        tx.update_trade(a["id"], {"notes": "both in one write"})
        assert len(store.get_all_trades()) == 2  # reads see the transaction's own state
    assert len(writes) == 1
    with pytest.raises(RuntimeError):
        with store.transaction() as tx:
            tx.close_trade("T001", 110)
            raise RuntimeError("abort")
    assert len(writes) == 1
    assert store.get_trade("T001")["status"] == "OPEN"  # the half-done close did not stick
    with store.transaction():
        pass  # nothing changed: nothing written
    assert len(writes) == 1


def test_nested_transaction_of_another_store_fails_fast(store):
    other = TradeStore(store.trade_log)
    with store.transaction() as tx:
        tx.open_trade("BTC", "LONG", 100, 95, 120, 1)
        with pytest.raises(NestedTransactionError):
            other.open_trade("ETH", "LONG", 100, 95, 120, 1)
    assert [t["symbol"] for t in other.get_all_trades()] == ["BTC"]


def test_integrity_violation_blocks_the_write(store):
    seen = []
    store = TradeStore(store.trade_log, on_integrity_violation=seen.append)
    open_btc(store)
    before = open(store.trade_log, "rb").read()
    with pytest.raises(IntegrityError, match="size"):
        with store.transaction() as tx:
            tx.ledger.get("T001")["size"] = 5.0  # a bug that bypasses the rules
            tx.ledger.changed.add("T001")
    assert open(store.trade_log, "rb").read() == before
    assert seen and "original_size" in seen[0][0]


def test_existing_violations_do_not_block_unrelated_writes(tmp_path):
    doc = json.loads(seed_log())
    doc["trades"][0]["size"] = -1  # damaged by some other program
    path = tmp_path / "t.json"
    path.write_text(json.dumps(doc))
    store = TradeStore(path)
    assert store.verify_integrity()
    store.open_trade("SOL", "LONG", 100, 95, 120, 1)
    with pytest.raises(IntegrityError):
        with store.transaction() as tx:
            tx.update_trade("T002", {"notes": "x"})
            tx.ledger.get("T002")["direction"] = "SIDEWAYS"


def test_post_write_verification_reports_a_writer_that_ignores_the_lock(store, monkeypatch):
    seen = []
    store = TradeStore(store.trade_log, on_integrity_violation=seen.append)
    open_btc(store)
    real = atomic.write_atomic

    def write_then_intruder(path, data, **kw):
        result = real(path, data, **kw)
        with open(path, "ab") as f:  # another program appends without the lock
            f.write(b" ")
        return result

    monkeypatch.setattr(atomic, "write_atomic", write_then_intruder)
    open_btc(store, "ETH")
    assert seen and "ignores the lock" in seen[0][0]


def test_log_is_parsed_at_most_once_per_write_and_not_when_unchanged(store, monkeypatch):
    open_btc(store)
    parses = []
    real = Ledger.from_document.__func__
    monkeypatch.setattr(Ledger, "from_document", classmethod(lambda cls, *a, **k: parses.append(1) or real(cls, *a, **k)))
    store.update_trade("T001", {"notes": "a"})
    store.update_trade("T001", {"notes": "b"})
    store.get_all_trades()
    assert parses == []  # this process wrote the file last: the cached ledger is reused
    other = TradeStore(store.trade_log)
    other.update_trade("T001", {"notes": "c"})  # first sight of the file: one parse
    assert len(parses) == 1
    store.update_trade("T001", {"notes": "d"})  # changed by another writer: one parse
    assert len(parses) == 2
    assert store.get_trade("T001")["notes"] == "d"


def test_fsync_of_file_and_directory_on_every_write(store, monkeypatch):
    synced = []
    real = os.fsync

    def record(fd):
        synced.append(stat.S_ISDIR(os.fstat(fd).st_mode))
        return real(fd)

    monkeypatch.setattr(os, "fsync", record)
    open_btc(store)
    assert synced == [False, True]
    store.update_trade("T001", {"notes": "x"})
    assert synced == [False, True, False, True]
    nosync = TradeStore(store.trade_log, fsync=False)
    nosync.update_trade("T001", {"notes": "y"})
    assert len(synced) == 4


def test_failed_fsync_fails_the_write_and_leaves_no_temp(store, monkeypatch):
    open_btc(store)
    before = open(store.trade_log, "rb").read()

    def broken(fd):
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(os, "fsync", broken)
    with pytest.raises(OSError):
        open_btc(store, "ETH")
    monkeypatch.undo()
    assert open(store.trade_log, "rb").read() == before
    assert not [n for n in os.listdir(os.path.dirname(store.trade_log)) if n.endswith(".tmp")]
    assert open_btc(store, "ETH")["id"] == "T002"


def test_file_mode_is_kept_and_strays_are_swept(store):
    open_btc(store)
    os.chmod(store.trade_log, 0o600)
    directory = os.path.dirname(store.trade_log)
    stray = os.path.join(directory, atomic.temp_prefix(store.trade_log) + "0123456789ab.tmp")
    other_log = os.path.join(directory, atomic.temp_prefix(store.trade_log) + "paper.0123456789ab.tmp")
    for name in (stray, other_log):
        with open(name, "w") as f:
            f.write("half a write")
    open_btc(store, "ETH")
    assert stat.S_IMODE(os.stat(store.trade_log).st_mode) == 0o600
    assert not os.path.exists(stray)
    assert os.path.exists(other_log)  # the temp of trades.json.paper, another log's writer


def test_threads_on_one_store_lose_nothing(tmp_path):
    store = TradeStore(tmp_path / "t.json", max_positions=100, max_corr_group_risk_pct=100, fsync=False)
    barrier = threading.Barrier(8)
    errors = []

    def worker(n):
        barrier.wait()
        try:
            for i in range(10):
                trade = store.open_trade(f"S{n}X{i}", "LONG", 100, 95, 120, 1)
                store.update_trade(trade["id"], {"notes": f"thread {n}"})
                if i % 2:
                    store.close_trade(trade["id"], 101)
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    trades = TradeStore(store.trade_log).get_all_trades()
    assert len(trades) == 80 and len({t["id"] for t in trades}) == 80
    assert all(t["notes"].startswith("thread") for t in trades)
    assert sum(t["status"] == "CLOSED" for t in trades) == 40


def test_can_open_position_is_advisory(store):
    assert store.can_open_position("BTC") == (True, "ok")
    open_btc(store)
    ok, reason = store.can_open_position("btc")
    assert not ok and reason.startswith("duplicate_symbol")
    ok, reason = store.can_open_position("ETH", "LONG", 3000, 2000, 1)
    assert not ok and reason.startswith("correlation_limit")


def test_naive_clock_is_taken_as_utc(tmp_path):
    from datetime import datetime

    store = TradeStore(tmp_path / "t.json", clock=lambda: datetime(2026, 1, 1, 12, 0))
    assert open_btc(store)["entry_time"] == "2026-01-01T12:00:00+00:00"


def test_open_symbols_and_recover_of_a_missing_log(store):
    open_btc(store)
    open_btc(store, " eth")
    assert store.get_open_symbols() == ["BTC", "ETH"]
    os.unlink(store.trade_log)
    with pytest.raises(RecoveryRefused, match="next_id"):  # which ids the lost write gave out is unknown
        store.recover()
    assert "the log was missing" in store.recover(next_id=3)  # the backup holds the version before ETH
    assert store.get_open_symbols() == ["BTC"] and store.get_next_id() == "T003"
    assert not [n for n in os.listdir(os.path.dirname(store.trade_log)) if ".corrupt" in n]


def test_cache_is_never_mistaken_for_a_newer_log_with_a_recycled_inode(tmp_path):
    # Coarse timestamps (pinned here) and equal sizes: only the inode can tell versions apart,
    # and file systems reuse freed inodes at once. The cached version's file is kept open, so
    # its inode cannot be recycled while the cache trusts it.
    log = str(tmp_path / "trades.json")
    pinned = 1_700_000_000_000_000_000

    def pin():
        os.utime(log, ns=(pinned, pinned))

    a, b = TradeStore(log, correlation_groups={}), TradeStore(log, correlation_groups={})
    a.open_trade("BTC", "LONG", 100, 90, 120, 1, notes="n" * 1000)
    pin()
    first = os.stat(log)
    b.open_trade("ETH", "LONG", 100, 90, 120, 1)
    pin()
    grow = os.stat(log).st_size - first.st_size
    for i in range(6):
        b.update_trade("T001", {"notes": "nm"[i % 2] * (1000 - grow)})
        pin()
        assert os.stat(log).st_ino != first.st_ino
    a.open_trade("SOL", "LONG", 100, 90, 120, 1)
    assert [t["symbol"] for t in TradeStore(log).get_all_trades()] == ["BTC", "ETH", "SOL"]


def test_records_from_a_transaction_are_copies(store):
    with store.transaction() as tx:
        trade = tx.open_trade("BTC", "LONG", 100, 95, 120, 1)
    trade["stop_price"] = -5.0
    store.open_trade("SOL", "LONG", 100, 95, 120, 1)
    assert TradeStore(store.trade_log).get_trade("T001")["stop_price"] == 95.0


def test_a_child_forked_inside_a_transaction_does_not_join_it(tmp_path):
    store = TradeStore(tmp_path / "t.json", lock_timeout=0.1)
    with store.transaction() as tx:
        tx.open_trade("BTC", "LONG", 100, 95, 120, 1)
        # Without the fork handler the child would join the inherited transaction, with no
        # lock and no commit, and "succeed"; with it the child must wait for the parent's lock.
        child_open = lambda: store.open_trade("ETH", "LONG", 100, 95, 120, 1)  # noqa: E731
        assert in_forked_child(child_open) == "LockTimeout"
    assert [t["symbol"] for t in store.get_all_trades()] == ["BTC"]


def test_fork_handler_gives_the_child_a_fresh_store(store):
    with store.transaction():
        assert store._local.transaction is not None
        from tradestore.store import _reset_stores_after_fork

        state, lock = store._state, store._lock
        _reset_stores_after_fork()  # as in a forked child
        assert store._local.__dict__.get("transaction") is None
        assert store._state is not state and store._lock is not lock
        store._state, store._lock = state, lock  # back to the parent's view to leave cleanly


@pytest.mark.parametrize(
    "option,value",
    [("max_positions", float("nan")), ("max_positions", "7"), ("max_positions", 0),
     ("max_corr_group_risk_pct", float("nan")), ("starting_capital", -1), ("max_drawdown_pct", "5"),
     ("asset_consecutive_loss_cap", 2.5), ("correlation_groups", {"g": "BTC"})],
)
def test_bad_limits_are_refused_when_the_store_is_built(tmp_path, option, value):
    with pytest.raises(ValueError, match=option):
        TradeStore(tmp_path / "t.json", **{option: value})


def test_lock_file_may_not_be_the_log(tmp_path):
    log = tmp_path / "t.json"
    for lock in (log, tmp_path / "t.json.bak"):
        with pytest.raises(ValueError, match="the lock file of .* is always"):
            TradeStore(log, lock)


@pytest.mark.parametrize("entry,size", [(1e-200, 1e-200), (1e300, 1e300)])
def test_sizes_whose_products_leave_the_double_range_are_refused(store, entry, size):
    with pytest.raises(InvalidTrade, match="size|entry_price"):
        store.open_trade("BTC", "LONG", entry, entry / 2, entry * 2, size)


def test_seed_closed_trade_without_pnl_does_not_break_the_loss_cap(tmp_path):
    doc = json.loads(seed_log())
    doc["trades"][0]["pnl_usd"] = None  # an old record: closed, P&L never filled in
    path = tmp_path / "t.json"
    path.write_text(json.dumps(doc))
    store = TradeStore(path, asset_consecutive_loss_cap=1)
    with pytest.raises(RiskRejected, match="loss_cap"):
        store.open_trade("BTC", "LONG", 100, 95, 120, 1)  # null counts as "not a win"


def test_reads_do_not_wait_for_a_writer_queued_behind_another_process(tmp_path):
    from .workers import SPAWN, hold_lock

    store = TradeStore(tmp_path / "t.json", lock_timeout=30)
    store.open_trade("BTC", "LONG", 100, 95, 120, 1)
    acquired, release = SPAWN.Event(), SPAWN.Event()
    holder = SPAWN.Process(target=hold_lock, args=(store.lock_file, acquired, release))
    holder.start()
    assert acquired.wait(60)
    writer = threading.Thread(target=store.open_trade, args=("ETH", "LONG", 100, 95, 120, 1))
    try:
        writer.start()
        # The writer thread now waits for the other process. A read must not: it would block
        # on the store's own thread lock if the writer took that before the process lock.
        reader_done = threading.Event()
        threading.Thread(target=lambda: (store.get_all_trades(), reader_done.set())).start()
        assert reader_done.wait(10)
    finally:
        release.set()
        holder.join(60)
        writer.join(60)
    assert [t["symbol"] for t in store.get_all_trades()] == ["BTC", "ETH"]


def test_an_unexpected_error_while_parsing_leaves_no_file_open(store, monkeypatch):
    open_btc(store)
    fresh = TradeStore(store.trade_log)
    open_fds = len(os.listdir("/proc/self/fd"))

    def explode(*args, **kwargs):
        raise MemoryError("parsing a huge log")

    monkeypatch.setattr(Ledger, "from_document", explode)
    with pytest.raises(MemoryError):
        fresh.get_all_trades()
    assert len(os.listdir("/proc/self/fd")) == open_fds
