"""reconcile-under-writes: a reconciler process loops while writer processes write; every set
of derived files it writes equals a fresh rebuild of one version the writers committed.

The reconciler reads the log without the lock, so this is the proof that ``os.replace`` makes
every read see one complete version, and that the four derived files of one cycle agree with
each other (they name the same log version and equal its rebuild).
"""

from __future__ import annotations


from tradestore_chaos.scenarios._writers import LIMITS, fixed_clock, flag, start_writers, stop_writers
from tradestore_harness.hooks import TRADE_LOG_FILE
from tradestore_harness import checkers, derived, evaluate, reference, workers
from tradestore_harness.context import ScenarioContext
from tradestore_harness.history import read_events
from tradestore_harness.result import ScenarioResult
from tradestore_harness.unsafe import state_dir_for

NAME = "reconcile-under-writes"
DESCRIPTION = "a reconciler loops while writers write; every derived set matches one committed log version"
REQUIRES = (TRADE_LOG_FILE,)  # works on the trade log file itself (see tradestore_harness.hooks)


def run(ctx: ScenarioContext) -> ScenarioResult:
    import json

    result = ScenarioResult(NAME, ctx.target, ctx.seed)
    now = fixed_clock(ctx)
    duration = ctx.duration or (2.0 if ctx.quick else 4.0)
    stop = flag(ctx, "stop")
    procs = start_writers(ctx, stop)
    trade_log = str(ctx.workdir / "trades.json")
    snapshots_dir = ctx.workdir / "snapshots"
    spec = workers.make_spec(ctx.target, str(ctx.workdir), "reconciler", state_dir=state_dir_for(trade_log))
    reconciling = flag(ctx, "reconciler.started")
    reconciler = workers.spawn(workers.reconciler_loop, spec, stop, now.isoformat(), str(snapshots_dir),
                               10_000, reconciling)
    if not reconciling.wait(workers.WAIT * 3, [reconciler]):  # the clock starts once it reconciles
        result.violate("liveness", f"the reconciler process did not complete a first cycle "
                                   f"(exit code {reconciler.exitcode})")
    ctx.progress(f"{ctx.writers} writers and one reconciler for {duration:.0f}s")
    stop.wait(duration, [reconciler])  # the run's length; ends early if the reconciler dies
    if not reconciler.is_alive():
        result.violate("liveness", f"the reconciler process died while the writers wrote (exit code "
                                   f"{reconciler.exitcode}); a dead reconciler leaves derived files stale")
    stop_writers([*procs, reconciler], stop, result)
    if reconciler.exitcode not in (0, None):
        result.violate("liveness", f"the reconciler process ended with exit code {reconciler.exitcode}")
    evaluate.standard(result, ctx.workdir, max_positions=LIMITS["max_positions"])
    snapshots = []
    for path in sorted(snapshots_dir.glob("*.json")):
        snap = json.loads(path.read_text())
        if snap["aborted"]:
            result.violate("derived-consistent", f"cycle {path.stem}: the guard aborted on a healthy log")
        else:
            snapshots.append((path.stem, snap["files"]))
    ctx.progress(f"{len(snapshots)} reconcile cycles; rebuilding each named log version")
    versions = evaluate.read_versions(ctx.workdir)
    names = evaluate.version_names(read_events(ctx.workdir / "history"), versions)
    rebuilds = derived.rebuild(versions, derived.named_versions(files for _, files in snapshots), now,
                               str(ctx.workdir / "rebuild"))
    for name, files in snapshots:
        evaluate.add(result, checkers.check_derived(f"cycle {name}", files, rebuilds, names=names))
        evaluate.add(result, reference.check_named(f"cycle {name}", files, versions))
    result.states_checked += len(snapshots)
    if not snapshots:
        result.violate("derived-consistent", "the reconciler completed no cycle")
    result.notes.append(f"{len(snapshots)} derived sets checked against {len(rebuilds)} distinct log versions")
    return result
