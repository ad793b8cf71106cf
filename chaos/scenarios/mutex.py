"""mutex: critical sections of competing writers never overlap.

Inside the critical section (from the moment a writer's lock call succeeds until it unlocks)
each writer process creates an ``O_CREAT|O_EXCL`` sentinel file and removes it on the way out:
a second process inside at the same time cannot create it and records a collision. Every lock
and unlock is timestamped on the machine-wide monotonic clock, and every replacement of the
trade log must happen while its writer holds the lock.
"""

from __future__ import annotations


from tradestore_harness import evaluate, workers
from tradestore_harness.context import ScenarioContext
from tradestore_harness.flags import FileFlag
from tradestore_harness.history import lock_intervals, read_events
from tradestore_harness.result import ScenarioResult

NAME = "mutex"
DESCRIPTION = "writers hold an O_EXCL sentinel inside the critical section; intervals never overlap"


def run(ctx: ScenarioContext) -> ScenarioResult:
    result = ScenarioResult(NAME, ctx.target, ctx.seed)
    workdir = ctx.workdir
    ops_each = 25 if ctx.quick else 60
    limits = {"max_positions": 5}
    stop = FileFlag(workdir / "stop")  # never set: each writer stops after ops_each
    ctx.progress(f"{ctx.writers} writers, {ops_each} operations each, sentinel inside the lock")
    procs = []
    for w in range(ctx.writers):
        spec = workers.make_spec(ctx.target, str(workdir), f"w{w}", limits=limits, seed=ctx.seed,
                                 sentinel=str(workdir / "critical-section.sentinel"))
        procs.append(workers.spawn(workers.writer_loop, spec, 0, stop, ops_each))
    for proc in procs:
        proc.join(120)
        if proc.is_alive():
            proc.kill()
            result.violate("liveness", "a writer did not finish within 120 s")
    evaluate.standard(result, workdir, max_positions=limits["max_positions"], final_required=False)
    events = read_events(workdir / "history")
    intervals = lock_intervals(events)
    commits = sum(1 for e in events if e.get("ev") == "commit")
    result.states_checked = max(result.states_checked, len(intervals))
    result.notes.append(f"{len(intervals)} lock-hold intervals by {len({i.pid for i in intervals})} processes, "
                        f"{commits} commits of the log")
    if commits and not intervals:
        result.violate("mutual-exclusion", f"{commits} commits of the trade log and not one lock acquisition")
    return result
