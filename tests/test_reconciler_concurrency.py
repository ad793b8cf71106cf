"""Two reconcilers and a writer at once, as real spawned processes: no reader ever sees a torn
derived file, nothing is left behind, and one more cycle equals a fresh rebuild."""

from __future__ import annotations

import json
import multiprocessing
import os
from datetime import datetime, timezone

from tradestore import StateReconciler, TradeStore
from tradestore.derive import FILES
from tradestore.reconciler import GUARD_FILE

from .test_derive_logs import make_log

SPAWN = multiprocessing.get_context("spawn")
NOW = datetime(2026, 11, 28, 12, tzinfo=timezone.utc)
WRITES = 24


def fixed_clock() -> datetime:
    return NOW


def reconcile_until_done(log: str, out: str, barrier, done, results) -> None:
    """Reconcile in a loop until the writer is done (and at least 5 times)."""
    rec = StateReconciler(log, out, clock=fixed_clock, fsync=False)
    barrier.wait()
    cycles = aborts = 0
    while not done.is_set() or cycles < 5:
        result = rec.reconcile()
        cycles += 1
        aborts += result.aborted
    results.put((cycles, aborts))


def write_trades(log: str, barrier, done) -> None:
    """Open and close trades through the store while the reconcilers run."""
    store = TradeStore(log, fsync=False)
    barrier.wait()
    try:
        for i in range(WRITES):
            trade = store.open_trade(f"SYM{i}", "LONG", 100.0, 95.0, 110.0, 1.0, "Conc")
            store.close_trade(trade["id"], 100.0 + (i % 5) - 2, "test")
    finally:
        done.set()


def test_two_reconcilers_and_a_writer_at_once(tmp_path):
    log, out = str(tmp_path / "trades.json"), str(tmp_path / "state")
    with open(log, "w") as f:
        json.dump(make_log(200, seed=11), f)
    assert StateReconciler(log, out, clock=fixed_clock, fsync=False).reconcile().ok

    barrier, done, results = SPAWN.Barrier(3), SPAWN.Event(), SPAWN.Queue()
    procs = [SPAWN.Process(target=reconcile_until_done, args=(log, out, barrier, done, results)) for _ in range(2)]
    procs.append(SPAWN.Process(target=write_trades, args=(log, barrier, done)))
    for p in procs:
        p.start()
    reads = 0
    try:
        # Read the derived files for as long as the others write them: every read must parse.
        while any(p.is_alive() for p in procs):
            for name in (*FILES, GUARD_FILE):
                with open(os.path.join(out, name), "rb") as f:
                    json.loads(f.read())
                reads += 1
    finally:
        for p in procs:
            p.join(timeout=120)
    assert [p.exitcode for p in procs] == [0, 0, 0]
    counts = [results.get(timeout=10) for _ in range(2)]
    assert all(cycles >= 5 and aborts == 0 for cycles, aborts in counts), counts
    assert reads > 0
    assert sorted(os.listdir(out)) == sorted((*FILES, GUARD_FILE)), "temp files left behind"

    rec = StateReconciler(log, out, clock=fixed_clock, fsync=False)
    final = rec.reconcile()
    assert final.ok and final.source.trade_count == 200 + WRITES
    fresh = str(tmp_path / "fresh")
    StateReconciler(log, fresh, clock=fixed_clock, fsync=False).reconcile()
    for name in (*FILES, GUARD_FILE):
        with open(os.path.join(out, name), "rb") as a, open(os.path.join(fresh, name), "rb") as b:
            assert a.read() == b.read(), name
