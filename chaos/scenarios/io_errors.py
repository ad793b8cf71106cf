"""io-errors: ENOSPC and EIO at every file-system call, once and persistently.

Each workload (one to three operations) runs once recorded, then once per (call index, errno,
once|persistent): the call at that index raises ``OSError`` instead of running (persistent: so
does every later call of the same kind, as on a full or failing disk). After every operation a
fresh store must find:

- a log that parses (``log-parses``);
- an operation that returned ok in the log as returned (``ack-durable``), and no ok answer
  from an operation whose write, fsync, rename or directory fsync failed (``fault-surfaced``:
  a failed fsync means the data may be gone, so it must not be retried into a success); only a
  failed ``close``, ``unlink``, ``mkdir`` of an existing directory or write of the lock file
  (which holds only a pid) may be absorbed;
- after a failed operation, the state before it or (when only the final directory fsync failed)
  after it, with nothing else changed (``state-before-or-after``);

and once the fault clears, the same store must accept the next trade, changing nothing else
(``next-call-succeeds``), and one reconcile must bring the derived files back to a fresh rebuild
(``derived-heals``). All runs of a workload happen in one spawned worker: an injected error does
not end the process.
"""

from __future__ import annotations

import errno
import os
import shutil

from tradestore_harness.hooks import TRADE_LOG_FILE
from tradestore_harness import fsworkload as fw
from tradestore_harness.context import ScenarioContext
from tradestore_harness.result import ScenarioResult

NAME = "io-errors"
DESCRIPTION = "ENOSPC/EIO at every file-system call, once and persistently: raises, loses nothing, recovers"
REQUIRES = (TRADE_LOG_FILE,)  # works on the trade log file itself (see tradestore_harness.hooks)

ERRNOS = (errno.ENOSPC, errno.EIO)
# Failures a store may swallow without losing data: closing or removing a temp file, and
# creating a directory that already exists (``os.makedirs(exist_ok=True)`` checks it is there).
# A failed write of the lock file is absorbable too: it holds only a pid, as a hint.
ABSORBABLE = frozenset({"close", "unlink", "mkdir"})


def _must_surface(call, lock_path: str) -> bool:
    return call.kind not in ABSORBABLE and call.path != lock_path


def run(ctx: ScenarioContext) -> ScenarioResult:
    result = ScenarioResult(NAME, ctx.target, ctx.seed)
    sizes = (1, 3) if ctx.quick else (1, 2, 3, 3, 3, 2)
    # A reconcile step is 45 calls of five atomic writes; the quick size leaves it to full runs
    # (crash-points and power-loss cover the reconciler at every size).
    workloads = fw.make_workloads(ctx.seed, sizes, fw.uses_reconciler(ctx.target) and not ctx.quick)
    report = fw.in_worker(io_worker, (ctx.target, str(ctx.workdir), workloads, ctx.quick), ctx.progress)
    for prop, detail in report["violations"]:
        result.violate(prop, detail)
    for key in ("invoked", "ok", "rejected", "crash_points"):
        setattr(result, key, report[key])
    result.notes.extend(report["notes"])
    return result


def fault_points(calls: int, quick: bool) -> list[tuple[int, int, bool]]:
    """(call index, errno, persistent) to inject.

    Full size: both errnos in both modes at every index. Quick size: every index once and
    persistently, the errno alternating with the index, so each errno still meets every mode.
    """
    if not quick:
        return [(i, code, p) for i in range(calls) for code in ERRNOS for p in (False, True)]
    return [(i, ERRNOS[(i + p) % 2], bool(p)) for i in range(calls) for p in (0, 1)]


def io_worker(target: str, root: str, workloads: list, quick: bool, report) -> dict:
    """In a spawned worker: every (workload, call index, errno, once|persistent) fault point."""
    factory = fw.resolve(target)
    findings = fw.Findings()
    out = {"invoked": 0, "ok": 0, "rejected": 0, "crash_points": 0, "notes": []}
    for w, ops in enumerate(workloads):
        wdir = os.path.join(root, f"w{w}")
        ops, snapshot = fw.prepare(factory, wdir, ops)
        rec = fw.record(factory, os.path.join(wdir, "rec"), snapshot, ops)
        points = fault_points(len(rec["calls"]), quick)
        report("progress", f"workload {w + 1}/{len(workloads)} {ops}: {len(points)} fault points")
        run_dir = os.path.join(wdir, "run")  # reset to the baseline before every fault point
        for index, code, persistent in points:
            where = (f"workload {w} {ops}, {errno.errorcode[code]} {'persistent' if persistent else 'once'} "
                     f"from call {index} ({rec['calls'][index].describe()})")
            _one_run(factory, run_dir, snapshot, ops, rec, index, code, persistent, where, findings, out)
        shutil.rmtree(run_dir, ignore_errors=True)
    out["violations"] = findings.as_list()
    out["notes"].append(f"{out['crash_points']} I/O fault points injected (counted as crash points)")
    return out


def _one_run(factory, run_dir, snapshot, ops, rec, index, code, persistent, where, findings, out) -> None:
    from tradestore_harness.fsfaults import Fault, FsShim
    from tradestore_harness.powerloss import sync_dir

    sync_dir(*snapshot, run_dir)
    shim = FsShim(run_dir, fault=Fault(index, "error", code, persistent))
    current = rec["states"][0]
    ids = fw.base_ids()
    hit = False
    with shim:
        store = factory(*fw.paths(run_dir)[:2])
        for k, op in enumerate(ops):
            first_call = len(shim.calls)
            out["invoked"] += 1
            outcome, value = fw.run_op(store, run_dir, op, ids)
            out["ok" if outcome == "ok" else "rejected"] += 1
            injected = [c for c in shim.calls[first_call:] if c.injected == "error"]
            failed = {c.kind for c in injected if _must_surface(c, fw.paths(run_dir)[1])}
            hit = hit or bool(injected)
            with shim.paused():
                try:
                    after = fw.load_state(factory, run_dir)
                except fw.LogUnreadable as exc:
                    findings.add("log-parses", f"{where}, after op {k} {op}: {exc}")
                    return
                step = f"{where}, op {k} {op} -> {outcome}"
                _judge_step(findings, step, op, outcome, value, failed, bool(injected), current, after,
                            rec["states"], k, ids)
            current = after
        shim.clear_fault()
        if hit:
            out["crash_points"] += 1
        # the next call after the fault clears, on the same store: its memory must be clean too
        try:
            value = store.open_trade(*fw.PROBE)
            problem = value.get("error") if isinstance(value, dict) else None
        except Exception as exc:
            problem = f"{type(exc).__name__}: {exc}"
    if problem is not None:
        findings.add("next-call-succeeds", f"{where}: the open after the fault cleared failed: {problem}")
        return
    after = fw.load_state(factory, run_dir)
    if after[:-1] != current or after[-1].get("symbol") != fw.PROBE[0]:
        findings.add("next-call-succeeds", f"{where}: the open after the fault cleared also changed "
                                           f"{fw.describe_loss(current, after[:-1]) or 'the trade list'}")
    if ("reconcile",) in ops:
        healed = fw.reconcile(run_dir, fsync=False)
        problems = fw.derived_problems(run_dir)
        if not healed.ok or problems:
            findings.add("derived-heals", f"{where}: after the fault cleared one reconcile left "
                                          f"{healed.reason if not healed.ok else problems}")


def _judge_step(findings, step, op, outcome, value, failed, faulted, current, after, states, k, ids) -> None:
    """Check one operation's effect under an injected fault (see the module docstring).

    ``failed``: kinds of injected failures the operation had to report; ``faulted``: whether any
    fault (even an absorbable one) hit it.
    """
    if op[0] == "reconcile":
        if after != current:
            findings.add("state-before-or-after", f"{step}: a reconcile changed the trade log")
        if outcome == "ok" and failed:
            findings.add("fault-surfaced", f"{step}: reported ok although {sorted(failed)} failed")
        return
    if outcome == "ok":
        if failed:
            findings.add("fault-surfaced", f"{step}: returned ok although {sorted(failed)} failed")
        record = fw.normalise(value)
        stored = next((t for t in after if t.get("id") == record.get("id")), None)
        if stored != record:
            findings.add("ack-durable", f"{step}: acknowledged {record.get('id')} {record.get('symbol')} "
                                        f"is {'missing' if stored is None else 'stored differently'}")
        lost = [t for t in fw.describe_loss(current, after) if not t.startswith(f"{record.get('id')} ")]
        if lost:
            findings.add("ack-durable", f"{step}: other trades changed or lost: {', '.join(lost)}")
        return
    if not faulted:  # a plain rejection (e.g. the trade an earlier failed op would have opened)
        if after != current:
            findings.add("state-before-or-after", f"{step}: a rejected operation changed the log")
        return
    if current == states[k]:  # the run so far matches the recording: we know both answers
        if after not in (states[k], states[k + 1]):
            lost = fw.describe_loss(current, after)
            findings.add("ack-durable" if lost else "state-before-or-after",
                         f"{step}: neither before nor after" + (f"; lost {', '.join(lost)}" if lost else ""))
        return
    target = ids.get(op[1]) if op[0] != "open" else None
    changed = [t for t in fw.describe_loss(current, after) if target is None or not t.startswith(f"{target} ")]
    added = len(after) - len(current)
    if changed or added > (1 if op[0] == "open" else 0):
        findings.add("state-before-or-after", f"{step}: the failed operation changed other trades: {changed}")
