"""Shared machinery of the barrier races: N processes released together, one operation each.

Each round: the parent prepares the log through the target (the ``setup`` operations), builds
the derived files once (so a store that reads them has something stale to read), then starts
one process per contender; all wait on one barrier and call at once. The negative controls'
``decided`` wait-point is armed with a second barrier, so every contender of a broken store
decides before any of them writes; a third holds every contender at its first read of the
trade log made outside the lock, so any store that checks before it locks decides on one
stale version, with or without a wait-point. Exactly ``allowed`` contenders may succeed.
"""

from __future__ import annotations

from tradestore_harness import evaluate, hooks, workers
from tradestore_harness.context import ScenarioContext
from tradestore_harness.result import ScenarioResult, ScenarioStopped
from tradestore_harness.spy import store_version
from tradestore_harness.targets import call, resolve_target


def prepare(ctx: ScenarioContext, workdir, limits: dict, setup_ops: list) -> None:
    """Run ``setup_ops`` through the target in this process; keep the resulting version."""
    spec = workers.make_spec(ctx.target, str(workdir), "setup", limits=limits)
    store = resolve_target(ctx.target)(spec["trade_log"], spec["lock_file"], **limits)
    for f, args in setup_ops:
        outcome, value = call(store, f, args)
        if outcome != "ok":
            raise ScenarioStopped("valid-ops-succeed", f"setup {f}{tuple(args)} is valid under the rules "
                                                       f"but was refused by the target: {value}")
    data = hooks.read_state(ctx.target, spec["trade_log"], spec["lock_file"])
    if data is not None:
        store_version(spec["versions_dir"], data)
    if hooks.hooks_of(ctx.target).file_backed:  # derived files are built from the log file
        reconcile_once(spec["trade_log"], limits)


def reconcile_once(trade_log: str, limits: dict) -> None:
    from tradestore_harness.unsafe import state_dir_for
    from tradestore import StateReconciler

    StateReconciler(trade_log, state_dir_for(trade_log),
                    starting_capital=limits.get("starting_capital", 5000)).reconcile()


def run_race(ctx: ScenarioContext, result: ScenarioResult, *, limits: dict, setup_ops: list,
             contenders: list[list], allowed: int, prop: str, label: str) -> None:
    """One round; adds its findings to ``result``. ``contenders``: one op list per process."""
    workdir = ctx.subdir(label)
    prepare(ctx, workdir, limits, setup_ops)
    mp = workers.context()
    barrier, decided, read = (mp.Barrier(len(contenders)) for _ in range(3))
    procs = []
    for n, ops in enumerate(contenders):
        spec = workers.make_spec(ctx.target, str(workdir), f"racer{n}", limits=limits)
        procs.append(workers.spawn(workers.script_worker, spec, ops, barrier, decided, read))
    for proc in procs:
        proc.join(60)
        if proc.is_alive():
            proc.kill()
            result.violate("liveness", f"{label}: a racer did not finish within 60 s")
    ops, _ = evaluate.standard(result, workdir, max_positions=limits.get("max_positions"), where=f"{label}: ")
    raced = [op for op in ops if op.worker.startswith("racer") and op.f == "open"]
    won = [op for op in raced if op.ok]
    if len(won) > allowed:
        ids = ", ".join(f"{op.value.get('id')} {op.value.get('symbol')}" for op in won)
        result.violate(prop, f"{label}: {len(won)} of {len(raced)} racing opens succeeded, "
                             f"at most {allowed} allowed ({ids})")
    elif len(won) < allowed:
        errors = "; ".join(sorted({str(op.error) for op in raced if not op.ok}))[:300]
        result.violate("allowed-count", f"{label}: only {len(won)} of {len(raced)} racing opens succeeded, "
                                        f"{allowed} should have ({errors})")
