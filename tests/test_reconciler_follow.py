"""A reconciler that follows its log between cycles derives what a fresh one derives.

:class:`tradestore.reconciler.LogFollower` keeps the last version read (a document by the hash
of its bytes, a journal-format log as a TradeStore follows it) and the ledger's memo keeps
each record's figures. Every step below changes the log one way a user's processes can (a
write, a refused write, a conversion either way, a checkpoint, another writer's store, a
seed-era rewrite in place of the same size, damage); after each, the follower's read and the
following reconciler's files must equal a fresh read and a fresh reconciler's files of the
same log. Two planted followers (one that knows a document by size and mtime, one that
skips the journal's tail) are caught by the same check.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import random
from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tradestore import StateReconciler, TradeStore, journal, reconciler
from tradestore.errors import TradeStoreError
from tradestore.reconciler import LogFollower, _comparable

UTC = timezone.utc
NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
LIMITS = dict(max_positions=50, asset_consecutive_loss_cap=None, max_corr_group_risk_pct=100.0,
              max_daily_loss_pct=None, max_weekly_loss_pct=None, max_drawdown_pct=None)
SYMBOLS = ["BTC", "ETH", "SOL", "ADA"]


def outcome(read):
    """What one read gives: (bytes, next_id, records) or the refusal's type."""
    try:
        data, ledger = read()
    except (TradeStoreError, OSError) as exc:
        return type(exc).__name__
    return data, ledger.next_id, json.loads(json.dumps(ledger.trades))


def derived(rec: StateReconciler):
    try:
        _, docs = rec.build(NOW)
    except (TradeStoreError, OSError) as exc:
        return type(exc).__name__
    return {name: _comparable(doc) for name, doc in docs.items()}, rec._log_violations(*_ledger(rec))


def _ledger(rec):
    data, ledger = rec._read_log()
    return ledger, reconciler._version(data, ledger)


class World:
    """A log, the stores that write it, and one following reconciler."""

    def __init__(self, tmp_path, log_format: str, follower_class=LogFollower):
        self.tmp = tmp_path
        self.log = str(tmp_path / "trades.json")
        self.stores = [TradeStore(self.log, fsync=False, log_format=log_format, clock=self.clock, **LIMITS)
                       for _ in range(2)]  # two writers, each with its own cached version
        self.now = NOW
        self.stores[0].open_trade("XRP", "LONG", 1.0, 0.9, 1.3, 10)  # the log exists
        self.rec = self.reconciler()
        self.rec._follower = follower_class(self.log)

    def clock(self):
        return self.now

    def reconciler(self):
        return StateReconciler(self.log, str(self.tmp / "state"), fsync=False, clock=lambda: NOW,
                               starting_capital=5000.0)

    def step(self, action: str, rng: random.Random) -> None:
        self.now += timedelta(minutes=rng.randint(1, 90))
        store = rng.choice(self.stores)
        try:
            if action == "open":
                entry = rng.uniform(10, 100)
                store.open_trade(rng.choice(SYMBOLS), "LONG", entry, entry * 0.95, entry * 1.2, rng.uniform(0.1, 2))
            elif action in ("close", "partial", "trail"):
                open_trades = store.get_open_trades()
                if not open_trades:
                    return
                trade = rng.choice(open_trades)
                price = trade["entry_price"] * rng.uniform(0.9, 1.15)
                if action == "close":
                    store.close_trade(trade["id"], price)
                elif action == "partial":
                    store.partial_close(trade["id"], 0.5, price)
                else:
                    store.update_trade(trade["id"], {"stop_price": trade["entry_price"] * 0.97})
            elif action == "refused":
                store.close_trade("T99999", 1.0)
            elif action == "convert":
                store.convert("journal" if not os.path.exists(journal.journal_path(self.log)) else "document")
            elif action == "checkpoint":
                if os.path.exists(journal.journal_path(self.log)):
                    with store.transaction() as tx:  # a write that pays for a checkpoint
                        store._checkpoint(tx.ledger, store._cache.journal if store._cache else None)
            elif action == "rewrite_same_size":
                self.rewrite_same_size()
        except TradeStoreError:
            pass  # refused: changes nothing, which the follower must see too

    def rewrite_same_size(self) -> None:
        """A seed-era writer edits the document in place: one digit of one price, same size."""
        if os.path.exists(journal.journal_path(self.log)):
            return
        with open(self.log, "rb") as f:
            data = f.read()
        at = data.rfind(b'"entry_price":')
        if at < 0:
            return
        digit = at + len(b'"entry_price":')
        changed = b"8" if data[digit:digit + 1] != b"8" else b"7"
        before = os.stat(self.log)
        with open(self.log, "r+b") as f:  # in place: same inode, same size
            f.seek(digit)
            f.write(changed)
        # and the same mtime, as within one coarse timestamp tick (or a tool that keeps times)
        os.utime(self.log, ns=(before.st_atime_ns, before.st_mtime_ns))

    def check(self) -> None:
        follower = self.rec._follower
        assert outcome(follower.read) == outcome(lambda: reconciler.read_log(self.log))
        assert derived(self.rec) == derived(self.reconciler())


ACTIONS = ["open", "open", "close", "partial", "trail", "refused", "convert", "checkpoint", "rewrite_same_size"]


@settings(max_examples=25, deadline=None)
@given(st.sampled_from(["document", "journal"]), st.lists(st.sampled_from(ACTIONS), min_size=1, max_size=14),
       st.integers(0, 2**32))
def test_a_following_reconciler_equals_a_fresh_one_after_every_change(tmp_path_factory, log_format, actions, seed):
    world = World(tmp_path_factory.mktemp("follow"), log_format)
    rng = random.Random(seed)
    world.check()
    for action in actions:
        world.step(action, rng)
        world.check()


class KnowsDocumentsBySize(LogFollower):
    """Planted: a document counts as unchanged while its size and mtime are (no hash)."""

    def _read_document(self, *, locked=False):
        st_ = os.stat(self.path)
        if self._document is not None and getattr(self, "_seen", None) == (st_.st_size, st_.st_mtime_ns):
            with open(self.path, "rb") as f:
                return f.read(), self._document[1]
        self._seen = (st_.st_size, st_.st_mtime_ns)
        return super()._read_document(locked=locked)


class SkipsTheJournalTail(LogFollower):
    """Planted: a journal-format log is read once; later reads return that first state."""

    def read(self):
        if getattr(self, "_first", None) is None:
            self._first = super().read()
        return self._first


@pytest.mark.parametrize("planted,log_format,actions", [
    (KnowsDocumentsBySize, "document", ["open", "rewrite_same_size"]),
    (SkipsTheJournalTail, "journal", ["open", "close"]),
])
def test_the_check_catches_a_follower_that_misses_a_change(tmp_path, planted, log_format, actions):
    world = World(tmp_path, log_format, planted)
    rng = random.Random(7)
    world.check()
    with pytest.raises(AssertionError):
        for action in actions:
            world.step(action, rng)
            world.check()


def test_the_document_follower_parses_only_a_changed_log(tmp_path, monkeypatch):
    """Unchanged bytes reuse the parsed ledger; one changed byte is parsed again."""
    world = World(tmp_path, "document")
    follower = world.rec._follower
    parses = []
    real = journal.load
    monkeypatch.setattr(journal, "load", lambda *a, **k: parses.append(1) or real(*a, **k))
    first = follower.read()[1]
    assert follower.read()[1] is first and parses == [1]
    world.rewrite_same_size()
    assert follower.read()[1] is not first and parses == [1, 1]


def test_the_journal_follower_reads_only_the_new_records(tmp_path, monkeypatch):
    world = World(tmp_path, "journal")
    follower = world.rec._follower
    ledger = follower.read()[1]
    world.stores[1].open_trade("ETH", "LONG", 10, 9, 12, 1)
    parses = []
    real = journal.load
    monkeypatch.setattr(journal, "load", lambda *a, **k: parses.append(1) or real(*a, **k))
    data, again = follower.read()
    assert again is ledger and parses == [] and "ETH" in {t["symbol"] for t in again.trades}
    assert data == reconciler.read_log(world.log)[0]


# --------------------------------------------------------------------------- real processes


def _writer(log, barrier, worker, count, log_format):
    journal.CHECKPOINT_MIN_BYTES = 4096  # checkpoints while the reconciler follows
    store = TradeStore(log, log_format=log_format, fsync=False, **LIMITS)
    barrier.wait()
    for _ in range(count):
        trade = store.open_trade(f"W{worker}", "LONG", 100, 95, 110, 1)
        store.close_trade(trade["id"], 101 + worker)


@pytest.mark.parametrize("log_format", ["document", "journal"])
def test_a_reconciler_following_competing_writers_ends_equal_to_a_fresh_one(tmp_path, log_format):
    log = str(tmp_path / "trades.json")
    TradeStore(log, log_format=log_format, fsync=False, **LIMITS).open_trade("XRP", "LONG", 1.0, 0.9, 1.3, 10)
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(3)
    workers = [ctx.Process(target=_writer, args=(log, barrier, w, 40, log_format)) for w in range(2)]
    for p in workers:
        p.start()
    following = StateReconciler(log, str(tmp_path / "state"), fsync=False, clock=lambda: NOW)
    barrier.wait()
    cycles = 0
    while any(p.is_alive() for p in workers) or cycles == 0:
        result = following.reconcile()
        assert result.ok and not result.violations, result.summary()
        cycles += 1
    for p in workers:
        p.join()
        assert p.exitcode == 0
    result = following.reconcile()
    assert result.ok and result.source.trade_count == 81
    fresh = StateReconciler(log, str(tmp_path / "fresh"), fsync=False, clock=lambda: NOW)
    assert derived(following) == derived(fresh)
