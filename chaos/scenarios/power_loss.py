"""power-loss: every disk a power cut could leave must load with every acknowledged trade.

A kill keeps the page cache, so it cannot catch a missing fsync; this scenario can. Each
workload (one to three operations, some reconciling) runs once with every file-system call
recorded; :class:`tradestore_harness.powerloss.DiskModel` then replays the calls and, before and after
every call, lists the disks a power cut could leave (unsynced data dropped, torn at a sector or
kept; unsynced name changes undone or kept, in order). Each distinct disk is materialised in a
directory and opened with a fresh store, which must find:

- a log that parses (``log-parses``),
- every operation whose calls had all run (acknowledged) present (``ack-durable``; the
  violation names the lost trades),
- exactly the state before or after the operation that was running (``state-before-or-after``),
- and, where the workload reconciles, derived files that one reconcile brings back to a fresh
  rebuild (``derived-heals``): whatever the cut left in the output directory.

Before any of that, the model's view after the last call must equal the real files the
recorded run left (``writes-visible``): a store that writes through something the shim cannot
see (the builtin ``open()``) cannot be judged here, and is reported instead of misjudged.

The negative controls ``unsafe-no-fsync`` and ``unsafe-no-dir-fsync`` fail here every time:
every workload's first operation writes the log, and the state right after it returns already
has the unsynced data dropped (no-fsync) or the unsynced rename undone (no-dir-fsync).
"""

from __future__ import annotations

import os
import random
import shutil

from tradestore_harness.hooks import TRADE_LOG_FILE
from tradestore_harness import fsworkload as fw
from tradestore_harness.context import ScenarioContext
from tradestore_harness.result import ScenarioResult

NAME = "power-loss"
DESCRIPTION = "every disk state a power cut could leave loads with all acknowledged trades"
REQUIRES = (TRADE_LOG_FILE,)  # works on the trade log file itself (see tradestore_harness.hooks)


def run(ctx: ScenarioContext) -> ScenarioResult:
    result = ScenarioResult(NAME, ctx.target, ctx.seed)
    sizes = (1, 2, 3) if ctx.quick else (1, 2, 3, 3, 3, 2, 3, 1)
    cap = 12 if ctx.quick else 64
    workloads = fw.make_workloads(ctx.seed, sizes, fw.uses_reconciler(ctx.target))
    report = fw.in_worker(power_worker, (ctx.target, str(ctx.workdir), workloads, ctx.seed, cap), ctx.progress)
    for prop, detail in report["violations"]:
        result.violate(prop, detail)
    result.states_checked = report["states_checked"]
    result.crash_points = report["cuts"]
    result.invoked = report["invoked"]
    result.ok = report["ok"]
    result.rejected = report["rejected"]
    result.notes.extend(report["notes"])
    return result


def power_worker(target: str, root: str, workloads: list, seed: int, cap: int, report) -> dict:
    """In a spawned worker: record each workload, then check every power-cut state of it."""
    from tradestore_harness.powerloss import DiskModel

    factory = fw.resolve(target)
    rng = random.Random(f"{seed}:power-loss")
    findings = fw.Findings()
    out = {"states_checked": 0, "cuts": 0, "unique": 0, "invoked": 0, "ok": 0, "rejected": 0, "notes": []}
    for w, ops in enumerate(workloads):
        wdir = os.path.join(root, f"w{w}")
        ops, snapshot = fw.prepare(factory, wdir, ops)
        has_reconcile = ("reconcile",) in ops
        rec_dir = os.path.join(wdir, "rec")
        rec = fw.record(factory, rec_dir, snapshot, ops)
        out["invoked"] += len(ops)
        out["ok"] += rec["outcomes"].count("ok")
        out["rejected"] += len(ops) - rec["outcomes"].count("ok")
        # the recording ran on a copy of the baseline made file by file (no hard links), so the
        # model starts from the same: every baseline file its own inode
        calls = rec["calls"]
        unseen = _unseen_changes(DiskModel(rec_dir, *snapshot), calls, rec_dir)
        if unseen:
            findings.add("writes-visible", f"workload {w} {ops}: the files differ from what the recorded os "
                         f"calls produce ({', '.join(unseen)}): the store writes through something other than "
                         f"the os module (e.g. the builtin open()), so its power-cut states cannot be built")
            continue
        model = DiskModel(rec_dir, *snapshot)
        verdicts: dict[tuple, tuple] = {}  # distinct disk -> what a fresh store made of it
        before = out["states_checked"]
        for done in range(len(calls) + 1):
            if done:
                model.apply(calls[done - 1])
            finished, allowed = fw.allowed_after_calls(rec["spans"], rec["states"], done)
            moment = f"cut after {done} calls" + (f" (last: {calls[done - 1].describe()})" if done else "")
            out["cuts"] += 1
            for state in model.crash_states(rng, cap):
                key = state.key()
                if key not in verdicts:
                    verdicts[key] = _examine(factory, os.path.join(wdir, "pl"), state, snapshot[1], has_reconcile)
                out["states_checked"] += 1
                _judge(findings, f"workload {w} {ops}, {moment}, {state.label}", verdicts[key],
                       rec["states"][finished], allowed, rec["states"][0])
        out["unique"] += len(verdicts)
        shutil.rmtree(os.path.join(wdir, "pl"), ignore_errors=True)
        report("progress", f"workload {w + 1}/{len(workloads)} {ops}: {len(calls) + 1} cuts, "
                           f"{out['states_checked'] - before} states ({len(verdicts)} distinct)")
    out["violations"] = findings.as_list()
    out["notes"].append(f"{out['states_checked']} power-cut states checked at {out['cuts']} cut points "
                        f"({out['unique']} distinct disks materialised)")
    return out


def _unseen_changes(model, calls: list, rec_dir: str) -> list[str]:
    """Files whose real content differs from the model's page-cache view after every call.

    The model is only as good as the calls it sees; this is its check against the real disk.
    """
    from tradestore_harness.powerloss import snapshot_dir

    for call in calls:
        model.apply(call)
    modelled, (actual, _) = model.current(), snapshot_dir(rec_dir)
    return sorted(name for name in set(modelled) | set(actual) if modelled.get(name) != actual.get(name))


def _examine(factory, scratch: str, state, dirs: tuple, has_reconcile: bool) -> tuple:
    """Materialise one disk and open it fresh: (trades or None, load error, derived problem)."""
    from tradestore_harness.powerloss import sync_dir

    sync_dir(state.files, dirs, scratch)
    try:
        found = fw.load_state(factory, scratch)
    except fw.LogUnreadable as exc:
        return None, str(exc), None
    derived = None
    if has_reconcile:
        healed = fw.reconcile(scratch, fsync=False)
        problems = fw.derived_problems(scratch)
        if not healed.ok or problems:
            derived = (f"the reconcile aborted ({healed.reason})" if not healed.ok
                       else f"one reconcile left {problems}")
    return found, None, derived


def _judge(findings: "fw.Findings", where: str, verdict: tuple, acked: list, allowed: list, baseline: list) -> None:
    found, error, derived = verdict
    # Cases that lose what the workload itself acknowledged are listed first: they name the trade.
    workload_acked = bool(fw.describe_loss(acked, baseline))
    if error is not None:
        lost = fw.describe_loss(acked, None)
        findings.add("log-parses", f"{where}: {error}; acknowledged trades unreadable: {', '.join(lost)}",
                     first=workload_acked)
        return
    if found not in allowed:
        lost = fw.describe_loss(acked, found)
        if lost:
            findings.add("ack-durable", f"{where}: lost {', '.join(lost)}", first=workload_acked)
        else:
            findings.add("state-before-or-after", f"{where}: {len(found)} trades, neither before nor after")
    if derived is not None:
        findings.add("derived-heals", f"{where}: {derived}")
