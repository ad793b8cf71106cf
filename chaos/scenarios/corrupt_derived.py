"""corrupt-derived: derived files damaged five ways while writers write; one reconcile heals.

Each round damages two of the reconciler's files (the four derived files and its guard record)
in one way: deleted, truncated, overwritten with garbage, emptied, or forged (valid JSON with
wrong values). One reconcile cycle later every derived file must equal a fresh rebuild of the
log version it names, and that version must be one the writers committed.
"""

from __future__ import annotations

import json

from tradestore_chaos.scenarios._writers import LIMITS, fixed_clock, flag, start_writers, stop_writers
from tradestore_harness.hooks import TRADE_LOG_FILE
from tradestore_harness import checkers, derived, evaluate, reference, nemesis
from tradestore_harness.context import ScenarioContext
from tradestore_harness.history import read_events
from tradestore_harness.result import ScenarioResult
from tradestore_harness.unsafe import state_dir_for

NAME = "corrupt-derived"
DESCRIPTION = "derived files deleted/truncated/garbled/emptied/forged under writers; one reconcile heals"
REQUIRES = (TRADE_LOG_FILE,)  # works on the trade log file itself (see tradestore_harness.hooks)

TARGETS = (*derived.FILES, "reconcile_guard.json")


def _parses(path: str) -> bool:
    try:
        with open(path, "rb") as handle:
            json.loads(handle.read())
    except (OSError, ValueError):
        return False
    return True


def run(ctx: ScenarioContext) -> ScenarioResult:
    from tradestore import StateReconciler

    result = ScenarioResult(NAME, ctx.target, ctx.seed)
    r = ctx.rng(NAME)
    now = fixed_clock(ctx)
    stop = flag(ctx, "stop")
    procs = start_writers(ctx, stop)
    trade_log = str(ctx.workdir / "trades.json")
    state = state_dir_for(trade_log)
    reconciler = StateReconciler(trade_log, state, clock=lambda: now)
    ways = list(nemesis.DERIVED_DAMAGE) * 1
    snapshots = []
    pace = (ctx.duration or (1.5 if ctx.quick else 3.0)) / len(ways)
    for n, how in enumerate(ways, 1):
        stop.wait(pace)  # let the writers commit between rounds (pacing, not ordering)
        first = reconciler.reconcile()
        if first.aborted:
            result.violate("derived-heals", f"round {n}: reconcile before the damage aborted: {first.reason}")
            continue
        victims = r.sample(TARGETS, 2)
        for name in victims:
            nemesis.damage_file(f"{state}/{name}", how, r)
        result.corruptions_injected += len(victims)
        ctx.progress(f"round {n}/{len(ways)}: {how} {', '.join(victims)}")
        healed = reconciler.reconcile()
        if healed.aborted:
            result.violate("derived-heals", f"round {n} ({how} {victims}): the healing reconcile aborted: {healed.reason}")
            continue
        guard_ok = _parses(f"{state}/reconcile_guard.json")
        snapshots.append((n, how, victims, derived.read_derived(state), guard_ok))
    stop_writers(procs, stop, result)
    ctx.progress("writers stopped; checking histories and rebuilding derived files")
    evaluate.standard(result, ctx.workdir, max_positions=LIMITS["max_positions"])
    versions = evaluate.read_versions(ctx.workdir)
    names = evaluate.version_names(read_events(ctx.workdir / "history"), versions)
    rebuilds = derived.rebuild(versions, derived.named_versions(s[3] for s in snapshots), now,
                               str(ctx.workdir / "rebuild"))
    for n, how, victims, files, guard_ok in snapshots:
        label = f"round {n} ({how} {', '.join(victims)})"
        found = checkers.check_derived(label, files, rebuilds, "derived-heals", names)
        evaluate.add(result, found)
        evaluate.add(result, reference.check_named(label, files, versions))
        if not guard_ok:
            result.violate("derived-heals", f"{label}: the guard record is still unreadable")
        for victim in victims:
            fine = guard_ok if victim == "reconcile_guard.json" else not any(victim in d for _, d in found) and \
                not any("different or no log versions" in d or "never committed" in d for _, d in found)
            result.corruptions_healed += fine
        result.states_checked += 1
    return result
