"""Shared machinery of the database-fault scenarios: writers at work, faults from outside.

The target declares ``chaos_database(trade_log)`` (see :data:`tradestore_harness.hooks.DATABASE`):
an object that ends the sessions of the run's writers (``terminate_writers``) and crashes and
restarts the server (``restart``). Writers loop over open / partial close / stop update / close
(the kill storm's writers) while the faults land at seeded moments; afterwards every
acknowledged operation must be in the exported state, nothing duplicated, ids unique and
increasing, no committed state over the cap, critical sections never overlapping.
"""

from __future__ import annotations

from typing import Callable

from tradestore_harness import evaluate, generator, workers
from tradestore_harness.context import ScenarioContext
from tradestore_harness.history import HistoryWriter
from tradestore_harness.hooks import DATABASE
from tradestore_harness.result import ScenarioResult
from tradestore_harness.targets import resolve_target

from tradestore_chaos.scenarios._writers import stop_writers

LIMITS = {"max_positions": 5}


def database(ctx: ScenarioContext):
    return getattr(resolve_target(ctx.target), DATABASE)(str(ctx.workdir / "trades.json"))


def storm(ctx: ScenarioContext, result: ScenarioResult, faults: int, gap: tuple[float, float],
          fault: Callable[[HistoryWriter], int], label: str) -> int:
    """Run writers, inject ``faults`` faults ``gap`` seconds of work apart; return how many landed."""
    r = ctx.rng(result.scenario)
    plan = [round(r.uniform(*gap), 4) for _ in range(faults)]
    mp = workers.context()
    stop = mp.Event()
    nemesis_history = HistoryWriter(ctx.workdir / "history", "nemesis")
    started, procs = [], []
    for w in range(ctx.writers):
        spec = workers.make_spec(ctx.target, str(ctx.workdir), f"w{w}", limits=LIMITS, seed=ctx.seed)
        started.append(mp.Event())
        procs.append(workers.spawn(workers.writer_loop, spec, 0, stop, 10_000, started[-1]))
    for event in started:  # the faults must land while the writers are really writing
        event.wait(workers.WAIT)
    landed = 0
    for n, delay in enumerate(plan, 1):
        stop.wait(delay)  # a seeded stretch of work before the fault (timing, not ordering)
        hit = fault(nemesis_history)
        landed += hit
        ctx.progress(f"{label} {n}/{len(plan)}: {hit} hit")
    stop.wait(max(gap))  # work after the last fault, so the writers recover from it
    stop_writers(procs, stop, result, timeout=60, since=" of the last fault")
    evaluate.standard(result, ctx.workdir, max_positions=LIMITS["max_positions"], final_required=False)
    result.notes.append(f"schedule {generator.digest(plan)}: {landed} of {len(plan)} {label}s hit a writer")
    return landed
