"""crash-points: crash at every file-system call of a workload; recovery gives before or after.

The approach of SQLite's crash tests. A workload of one to three operations runs once with
every file-system call recorded (:mod:`tradestore_harness.fsfaults`); then it runs again once per call
index, crashing with ``os._exit`` just before that call (and, for a ``write``, halfway through
it; and just after each operation returned). After each crash a fresh store opens the same
files and must find exactly the state before or after the interrupted operation, with every
earlier (acknowledged) operation present; it must then accept one more trade; and where the
workload reconciles, one reconcile must bring the derived files back to a fresh rebuild.
A crash point whose run did not meet the recorded call there fails ``calls-repeatable``; a
crash that would leave the same files as the point before it is run once (see
:func:`crash_plan`); each crashed child's history and files become observations for the pure
checkers of :mod:`tradestore_harness.fscheckers`.

Each crash runs in its own process: a spawned worker forks one child per crash point (two at
a time, in two directories), because a fork costs milliseconds where a spawn costs a tenth of a
second, and the whole scenario must fit a few seconds. The worker forks only from its main
thread and the children touch nothing but their own directory and report pipe.
"""

from __future__ import annotations

import json
import os
import select
import shutil

from tradestore_harness.hooks import TRADE_LOG_FILE
from tradestore_harness import fsworkload as fw
from tradestore_harness.context import ScenarioContext
from tradestore_harness.fscheckers import (Observability, PointReached, Recovery, check_point_reached,
                                           check_recovery, not_observable)
from tradestore_harness.history import count_outcomes, now, operations
from tradestore_harness.result import ScenarioResult

NAME = "crash-points"
DESCRIPTION = "os._exit at every file-system call of 1-3 operations; recovery is exactly before or after"
REQUIRES = (TRADE_LOG_FILE,)  # works on the trade log file itself (see tradestore_harness.hooks)


def run(ctx: ScenarioContext) -> ScenarioResult:
    result = ScenarioResult(NAME, ctx.target, ctx.seed)
    # quick: the first write, a one-op workload and a three-op one ending in a reconcile
    sizes = (1, 3) if ctx.quick else (1, 2, 3, 3, 3, 2, 3, 1)
    workloads = fw.make_workloads(ctx.seed, sizes, fw.uses_reconciler(ctx.target))
    report = fw.in_worker(crash_worker, (ctx.target, str(ctx.workdir), workloads), ctx.progress)
    fw.fill_result(result, report, ("invoked", "ok", "rejected", "unknown", "kills", "crash_points"),
                   proof="crash_points", unproven="no crash point was reached")
    return result


def crash_plan(rec: dict, views: list | None = None) -> list[tuple[int, str]]:
    """(index, action) for every crash point of a recorded workload.

    ``crash`` before call ``index``; ``torn`` halfway through that write; ``return``: just
    after operation number ``index`` returned, before its caller could act on the answer.

    ``views`` (what a reader sees after each prefix of the calls, see :func:`disk_views`)
    drops a ``crash`` point that would leave the same files, in the same operation, as the
    point before it: a crash keeps the page cache, so a call that changes no file's bytes or
    names (a read-only open, a close, an fsync) leaves nothing a recovery could tell apart. A
    ``torn`` point is never dropped: half a write leaves files no crash before it leaves (an
    append to a file opened without creating it comes right after calls that change nothing).
    """
    plan = []
    seen = set()
    for call in rec["calls"]:
        torn = call.writes and call.data and len(call.data) > 1
        if views is not None:
            finished, _ = fw.allowed_after_calls(rec["spans"], rec["states"], call.index)
            key = (views[call.index], finished, any(start < call.index for start, _ in rec["spans"][finished:finished + 1]))
            if key in seen:
                if torn:  # half of this write leaves files no earlier point leaves
                    plan.append((call.index, "torn"))
                continue
            seen.add(key)
        plan.append((call.index, "crash"))
        if torn:
            plan.append((call.index, "torn"))
    plan.extend((k, "return") for k in range(len(rec["spans"])))
    return plan


def disk_views(rec: dict, root: str, snapshot: tuple) -> list:
    """What a reader sees in ``root`` after each prefix of the recorded calls (hashable)."""
    from tradestore_harness.powerloss import DiskModel

    model = DiskModel(root, *snapshot)
    views = [tuple(sorted(model.current().items()))]
    for call in rec["calls"]:
        model.apply(call)
        views.append(tuple(sorted(model.current().items())))
    return views


def crash_worker(target: str, root: str, workloads: list, report) -> dict:
    """In a spawned worker: record each workload, then crash a forked child at every point."""
    factory = fw.resolve(target)
    workloads = fw.with_checkpoint_workload(factory, root, workloads)
    out = {"violations": fw.Findings(), "notes": [], "invoked": 0, "ok": 0, "rejected": 0, "unknown": 0,
           "kills": 0, "crash_points": 0, "by_point": {}, "not_applicable": None, "same_files": 0}
    for w, ops in enumerate(workloads):
        wdir = os.path.join(root, f"w{w}")
        ops, snapshot = fw.prepare(factory, wdir, ops)
        rec = fw.record(factory, os.path.join(wdir, "rec"), snapshot, ops)
        out["not_applicable"] = not_observable(Observability(rec["unseen"]))
        if out["not_applicable"]:
            break
        out["violations"].extend(rec["misread"])
        plan = crash_plan(rec, disk_views(rec, os.path.join(wdir, "rec"), snapshot))
        out["same_files"] += len(crash_plan(rec)) - len(plan)
        report("progress", f"workload {w + 1}/{len(workloads)} {ops}: "
                           f"{len(rec['calls'])} calls, {len(plan)} crash points")
        _run_plan(factory, ops, rec, plan, snapshot, wdir, out, w)
    out["violations"] = out["violations"].as_list()
    out["notes"].append("crash points by moment: " + ", ".join(
        f"{name} {count}" for name, count in sorted(out.pop("by_point").items()))
        + f"; {out.pop('same_files')} more calls would leave the same files as the point before them "
          "(a crash keeps the page cache) and were not run again")
    return out


PARALLEL = 2  # crash children in flight: each waits mostly on fsync, so two overlap well


def _run_plan(factory, ops, rec, plan, snapshot, wdir, out, w) -> None:
    """Run every crash point of ``plan``, up to :data:`PARALLEL` at once, each in its own
    directory reset to the baseline, and judge each as soon as its child has exited."""
    from tradestore_harness.powerloss import sync_dir

    free = [os.path.join(wdir, f"run{j}") for j in range(PARALLEL)]
    todo = list(plan)
    running: dict[int, list] = {}  # read end of a child's pipe -> [pid, dir, index, action, chunks]
    while todo or running:
        while todo and free:
            index, action = todo.pop(0)
            run_dir = free.pop()
            sync_dir(*snapshot, run_dir)
            pid, read_fd = _start_child(factory, run_dir, ops, index, action)
            running[read_fd] = [pid, run_dir, index, action, []]
        ready, _, _ = select.select(list(running), [], [])
        for read_fd in ready:
            entry = running[read_fd]
            chunk = os.read(read_fd, 65536)
            if chunk:
                entry[4].append(chunk)
                continue
            os.close(read_fd)  # end of file: the child has exited
            del running[read_fd]
            pid, run_dir, index, action, chunks = entry
            _, status = os.waitpid(pid, 0)
            events = [json.loads(line) for line in b"".join(chunks).decode().splitlines() if line]
            _judge(factory, run_dir, ops, rec, index, action, os.waitstatus_to_exitcode(status), events, out, w)
            free.append(run_dir)
    for run_dir in free:
        shutil.rmtree(run_dir, ignore_errors=True)


def _start_child(factory, run_dir: str, ops: list, index: int, action: str) -> tuple[int, int]:
    """Fork a child that runs ``ops`` under a fault at ``index``; return (pid, read end of its history).

    The child writes its history to the pipe in the events of :mod:`tradestore_harness.history`:
    ``invoke``/``ok``/``fail`` per operation and ``crash`` (with the call's kind) where it died.
    """
    from tradestore_harness.fsfaults import CRASH_EXIT, Fault, FsShim

    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns
        code = 3
        try:
            os.close(read_fd)

            def record(ev: str, **data) -> None:
                event = {"ev": ev, "w": "crash", "pid": os.getpid(), "t": now(), **data}
                os.write(write_fd, (json.dumps(event, default=repr) + "\n").encode())

            fault = None if action == "return" else Fault(index, action)
            shim = FsShim(run_dir, recording=False, fault=fault, real_sync=False,  # a kill keeps the page cache
                          on_crash=lambda call: record("crash", kind=call.kind, index=call.index))
            shim.install()
            store = factory(*fw.paths(run_dir)[:2])
            ids = fw.base_ids()
            for k, op in enumerate(ops):
                record("invoke", op=f"op{k}", f=op[0], args=list(op[1:]))
                outcome, _ = fw.run_op(store, run_dir, op, ids)
                record(outcome, op=f"op{k}")
                if action == "return" and k == index:
                    record("crash", kind="return", index=k)
                    os._exit(CRASH_EXIT)
            code = 0
        finally:
            os._exit(code)
    os.close(write_fd)
    return pid, read_fd


def _judge(factory, run_dir, ops, rec, index, action, status, events, out, w) -> None:
    """Turn one crashed child's history and files into observations for the pure checkers."""
    from tradestore_harness.fsfaults import CRASH_EXIT

    if action == "return":
        where, expected = f"workload {w} {ops}, crash after operation {index} returned", "return"
    else:
        call = rec["calls"][index]
        where, expected = f"workload {w} {ops}, {action} at call {index} ({call.describe()})", call.kind
    crashed = [e for e in events if e.get("ev") == "crash"]
    met = crashed[0]["kind"] if crashed and status == CRASH_EXIT else None
    problems = check_point_reached(PointReached(where, expected, met))
    out["violations"].extend(problems)
    if met is None:
        return
    out["crash_points"] += 1
    out["kills"] += 1
    point = "after return" if action == "return" else f"{action} {expected}"
    out["by_point"][point] = out["by_point"].get(point, 0) + 1
    ops_seen = operations(events)
    for key, n in count_outcomes(ops_seen).items():
        out[key] += n
    if problems:
        return  # judged against the wrong moment, the state checks would only mislead
    if action == "return":
        finished, allowed = index + 1, [rec["states"][index + 1]]
    else:
        finished, allowed = fw.allowed_after_calls(rec["spans"], rec["states"], index)
    reconciles = [k for k, op in enumerate(ops) if op == ("reconcile",)]
    if action == "return":
        touched_derived = any(k <= index for k in reconciles)
    else:
        touched_derived = any(rec["spans"][k][0] <= index for k in reconciles)
    # earlier crashes cannot have changed the derived files: only then is a reconcile due
    seen = fw.recover(factory, run_dir, reconcile_due=touched_derived, probe_after=True)
    out["violations"].extend(check_recovery(Recovery(where, rec["states"][finished], allowed, **seen)))
