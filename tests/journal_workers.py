"""Functions run in spawned worker processes by tests/test_journal_processes.py.

Each reports on a queue as ``(worker, outcome, detail)``.
"""

from __future__ import annotations

from tradestore import TradeStore, journal

LIMITS = dict(max_positions=50, asset_consecutive_loss_cap=None, max_corr_group_risk_pct=100.0)


def cycles(log, barrier, results, worker, count, checkpoint_bytes):
    """Open and close this worker's own symbol ``count`` times; report every acknowledged id."""
    journal.CHECKPOINT_MIN_BYTES = checkpoint_bytes  # checkpoints under contention
    store = TradeStore(log, log_format="journal", **LIMITS)
    barrier.wait()
    try:
        for _ in range(count):
            trade = store.open_trade(f"W{worker}", "LONG", 100, 95, 110, 1)
            results.put((worker, "opened", trade["id"]))
            store.close_trade(trade["id"], 101)
            results.put((worker, "closed", trade["id"]))
    except Exception as exc:  # reported, so the test fails with the reason
        results.put((worker, "error", repr(exc)))
    results.put((worker, "done", None))


def follow(log, barrier, stop, results):
    """Read the log over and over while the writers write: report what each read saw."""
    store = TradeStore(log, log_format="journal", **LIMITS)
    barrier.wait()
    try:
        while not stop.is_set():
            results.put(("follower", "saw", {t["id"]: t["status"] for t in store.get_all_trades()}))
    except Exception as exc:
        results.put(("follower", "error", repr(exc)))
    results.put(("follower", "done", None))


class _NoLock:
    """A lock that excludes nothing (the negative control's bug)."""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return None

    def held_by_current_thread(self):
        return False

    def check_held(self):
        return None

    acquire = release = lambda self, *a, **k: None


def unlocked_append(log, barrier, results, worker):
    """Negative control: a journal writer without the lock. Every worker loads the same state,
    then all append (the barrier makes the overlap certain)."""
    store = TradeStore(log, log_format="journal", **LIMITS)
    store._lock = _NoLock()
    real = journal.JournalView.append

    def append_after_everyone_loaded(self, data, **kw):
        barrier.wait()
        return real(self, data, **kw)

    journal.JournalView.append = append_after_everyone_loaded
    try:
        trade = store.open_trade(f"W{worker}", "LONG", 100, 95, 110, 1)
        results.put((worker, "opened", trade["id"]))
    except Exception as exc:  # reported, so the test fails with the reason
        results.put((worker, "error", repr(exc)))
    results.put((worker, "done", None))
