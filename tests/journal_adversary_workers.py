"""Functions run in spawned processes by tests/test_journal_adversarial.py.

Each reports on a queue as ``(worker, outcome, detail)``.
"""

from __future__ import annotations

from tradestore import StateReconciler, TradeStore, journal
from tradestore.reconciler import _version_of

LIMITS = dict(max_positions=50, asset_consecutive_loss_cap=None, max_corr_group_risk_pct=100.0)


def write_cycles(log, barrier, results, worker, count, checkpoint_bytes, convert_every):
    """Open, update and close this worker's own symbol ``count`` times (checkpoints often);
    with ``convert_every``, convert the log to the other format every that many cycles."""
    journal.CHECKPOINT_MIN_BYTES = checkpoint_bytes
    store = TradeStore(log, log_format="journal", **LIMITS)
    barrier.wait()
    try:
        for n in range(count):
            trade = store.open_trade(f"W{worker}", "LONG", 100, 95, 110, 1)
            results.put((worker, "opened", trade["id"]))
            store.update_trade(trade["id"], {"notes": "n" * 300})
            store.close_trade(trade["id"], 101)
            results.put((worker, "closed", trade["id"]))
            if convert_every and n % convert_every == convert_every - 1:
                store.convert("document" if n // convert_every % 2 == 0 else "journal")
    except Exception as exc:  # reported, so the test fails with the reason
        results.put((worker, "error", repr(exc)))
    results.put((worker, "done", None))


def reconcile_until(log, output_dir, barrier, stop, results):
    """Reconcile over and over while the writers write; report what each cycle derived from."""
    reconciler = StateReconciler(log, output_dir, **LIMITS)
    barrier.wait()
    try:
        while not stop.is_set():
            result = reconciler.reconcile()
            if not result.ok:
                results.put(("reconciler", "error", result.summary()))
                continue
            # every derived file names the version this cycle read, and none needed healing
            outputs = reconciler._read_outputs()
            claimed = {name: _version_of(doc) for name, (status, doc) in outputs.items()}
            stale = sorted(name for name, version in claimed.items() if version != result.source)
            results.put(("reconciler", "cycle", (result.source.trade_count, result.healed, stale)))
    except Exception as exc:
        results.put(("reconciler", "error", repr(exc)))
    results.put(("reconciler", "done", None))
