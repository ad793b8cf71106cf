"""What one cold ``reconcile()`` costs, and where the time goes: ``python -m bench.reconcile_cost``.

For each history size (the benchmark's synthetic history, :mod:`bench.history`), the log is
written once; then each repeat runs ``StateReconciler(...).reconcile()`` into an empty output
directory (every derived file rebuilt, as the ``reconcile()`` row of ``python -m bench``), and
times its parts the same way: reading and parsing the log, deriving the four files, the
whole-log integrity scan, each with the cyclic collector paused as in a cycle, and beside them
``json.loads`` of the same bytes alone, the floor no reader of the document goes below. Wall time and
this process's CPU time are both shown (median and minimum over the repeats): on a shared
machine the CPU time moves less. ``--profile`` adds a
cProfile of one cycle at the largest size. Nothing here is judged; the figures go to
docs/PERFORMANCE.md.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import io
import json
import logging
import os
import pstats
import shutil
import statistics
import tempfile
import time
from datetime import datetime, timezone

from bench.history import build_history, write_tradestore_log

CAPITAL = 5000.0  # the benchmark's starting capital (bench.suite.RULES)


def _timed(fn) -> tuple[float, float, object]:
    """Run ``fn`` with the cyclic collector paused, as a reconcile cycle runs."""
    collecting = gc.isenabled()
    gc.disable()
    try:
        wall, cpu = time.perf_counter(), time.process_time()
        result = fn()
        return time.perf_counter() - wall, time.process_time() - cpu, result
    finally:
        if collecting:
            gc.enable()


def measure(path: str, workdir: str, repeat: int) -> dict[str, list[tuple[float, float]]]:
    """``{part: [(wall s, cpu s) per repeat]}`` for the cycle and its parts."""
    from tradestore import StateReconciler, derive, integrity, reconciler
    from tradestore.risk import RiskLimits

    limits = RiskLimits(starting_capital=CAPITAL)
    now = datetime.now(timezone.utc)
    parts: dict[str, list[tuple[float, float]]] = {}
    for r in range(repeat):
        out = os.path.join(workdir, f"out-{r}")
        shutil.rmtree(out, ignore_errors=True)
        wall, cpu, _ = _timed(lambda: StateReconciler(path, output_dir=out, limits=limits).reconcile())
        parts.setdefault("reconcile() cycle", []).append((wall, cpu))
        shutil.rmtree(out, ignore_errors=True)
        with open(path, "rb") as f:
            data = f.read()
        # What any reader of the document pays at least: the standard library's parser alone,
        # no strict checks, no records built (the floor under "read + parse the log").
        wall, cpu, _ = _timed(lambda: json.loads(data))
        parts.setdefault("json.loads of the log alone (floor)", []).append((wall, cpu))
        data = None  # the parsed copy is what the next row measures, not this one
        wall, cpu, (_, ledger) = _timed(lambda: reconciler.read_log(path))
        parts.setdefault("read + parse the log", []).append((wall, cpu))
        wall, cpu, _ = _timed(lambda: derive.derive_all(ledger, now, limits))
        parts.setdefault("derive the four files", []).append((wall, cpu))
        wall, cpu, _ = _timed(lambda: integrity.ledger_violations(ledger))
        parts.setdefault("integrity scan", []).append((wall, cpu))
        ledger = None
    return parts


def profile(path: str, workdir: str, top: int) -> str:
    from tradestore import StateReconciler

    out = os.path.join(workdir, "out-profile")
    prof = cProfile.Profile()
    prof.enable()
    StateReconciler(path, output_dir=out, starting_capital=CAPITAL).reconcile()
    prof.disable()
    text = io.StringIO()
    pstats.Stats(prof, stream=text).strip_dirs().sort_stats("cumulative").print_stats(top)
    return text.getvalue()


def _cell(samples: list[float]) -> str:
    return f"{statistics.median(samples):.3f} (min {min(samples):.3f})"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.reconcile_cost", description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default="1000,10000,100000", help="history sizes (default 1000,10000,100000)")
    ap.add_argument("--repeat", type=int, default=3, help="repeats per size (default 3)")
    ap.add_argument("--dir", help="where to put the files (default: a temporary directory, removed after)")
    ap.add_argument("--profile", action="store_true", help="also cProfile one cycle at the largest size")
    ap.add_argument("--profile-top", type=int, default=30, help="functions listed by --profile")
    args = ap.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",") if s]
    logging.getLogger("tradestore").setLevel(logging.ERROR)  # a cold run "heals" every file
    workdir = tempfile.mkdtemp(prefix="tradestore-reconcile-", dir=args.dir)
    try:
        print(f"load average at start: {', '.join(f'{x:.2f}' for x in os.getloadavg())}; "
              f"{os.cpu_count()} cores; repeats: {args.repeat}; seconds, median (min)\n")
        print("| history | part | wall s | cpu s |\n| ---: | --- | ---: | ---: |")
        path = ""
        for n in sizes:
            path = os.path.join(workdir, f"trades-{n}.json")
            trades, next_id = build_history(n)
            write_tradestore_log(path, trades, next_id)
            del trades
            for part, samples in measure(path, workdir, args.repeat).items():
                print(f"| {n:,} | {part} | {_cell([w for w, _ in samples])} | {_cell([c for _, c in samples])} |",
                      flush=True)
        print(f"\nload average at end: {', '.join(f'{x:.2f}' for x in os.getloadavg())}")
        if args.profile and path:
            print(profile(path, workdir, args.profile_top))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
