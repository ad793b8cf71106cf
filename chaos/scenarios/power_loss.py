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
recorded run left: a store that writes through something the file-system layer cannot see
(``mmap``, a C library; the builtin ``open()`` and ``os.fdopen`` are seen) cannot be judged
here, and the scenario is NOT APPLICABLE to it, naming the files, instead of misjudging it.
The findings come from the pure checkers of :mod:`tradestore_harness.fscheckers`.

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
from tradestore_harness.fscheckers import Observability, Recovery, check_recovery, not_observable
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
    fw.fill_result(result, report, ("states_checked", "invoked", "ok", "rejected"),
                   proof="states_checked", unproven="no power-cut state was checked")
    result.crash_points += report["cuts"]
    return result


def power_worker(target: str, root: str, workloads: list, seed: int, cap: int, report) -> dict:
    """In a spawned worker: record each workload, then check every power-cut state of it."""
    from tradestore_harness.powerloss import DiskModel

    factory = fw.resolve(target)
    workloads = fw.with_checkpoint_workload(factory, root, workloads)
    rng = random.Random(f"{seed}:power-loss")
    findings = fw.Findings()
    out = {"states_checked": 0, "cuts": 0, "unique": 0, "invoked": 0, "ok": 0, "rejected": 0, "notes": [],
           "not_applicable": None}
    for w, ops in enumerate(workloads):
        wdir = os.path.join(root, f"w{w}")
        ops, snapshot = fw.prepare(factory, wdir, ops)
        has_reconcile = ("reconcile",) in ops
        rec_dir = os.path.join(wdir, "rec")
        rec = fw.record(factory, rec_dir, snapshot, ops)
        out["not_applicable"] = not_observable(Observability(rec["unseen"]))
        if out["not_applicable"]:
            break
        findings.extend(rec["misread"])
        out["invoked"] += len(ops)
        out["ok"] += rec["outcomes"].count("ok")
        out["rejected"] += len(ops) - rec["outcomes"].count("ok")
        calls = rec["calls"]
        model = DiskModel(rec_dir, *snapshot)
        verdicts: dict[tuple, dict] = {}  # distinct disk -> what a fresh store made of it
        before = out["states_checked"]
        for done in range(len(calls) + 1):
            if done:
                model.apply(calls[done - 1])
            finished, allowed = fw.allowed_after_calls(rec["spans"], rec["states"], done)
            moment = f"cut after {done} calls" + (f" (last: {calls[done - 1].describe()})" if done else "")
            out["cuts"] += 1
            acked = rec["states"][finished]
            # cases that lose what the workload itself acknowledged go first: they name the trade
            workload_acked = bool(fw.describe_loss(acked, rec["states"][0]))
            for state in model.crash_states(rng, cap):
                key = state.key()
                if key not in verdicts:
                    verdicts[key] = _examine(factory, os.path.join(wdir, "pl"), state, snapshot[1], has_reconcile)
                out["states_checked"] += 1
                findings.extend(check_recovery(Recovery(f"workload {w} {ops}, {moment}, {state.label}",
                                                        acked, allowed, **verdicts[key])), first=workload_acked)
        out["unique"] += len(verdicts)
        shutil.rmtree(os.path.join(wdir, "pl"), ignore_errors=True)
        report("progress", f"workload {w + 1}/{len(workloads)} {ops}: {len(calls) + 1} cuts, "
                           f"{out['states_checked'] - before} states ({len(verdicts)} distinct)")
    out["violations"] = findings.as_list()
    out["notes"].append(f"{out['states_checked']} power-cut states checked at {out['cuts']} cut points "
                        f"({out['unique']} distinct disks materialised)")
    return out


def _examine(factory, scratch: str, state, dirs: tuple, has_reconcile: bool) -> dict:
    """Materialise one disk and open it fresh (see :func:`tradestore_harness.fsworkload.recover`)."""
    from tradestore_harness.powerloss import sync_dir

    sync_dir(state.files, dirs, scratch)
    return fw.recover(factory, scratch, reconcile_due=has_reconcile, probe_after=False)
