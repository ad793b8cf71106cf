"""crash-points: crash at every file-system call of a workload; recovery gives before or after.

The approach of SQLite's crash tests. A workload of one to three operations runs once with
every file-system call recorded (:mod:`tradestore_harness.fsfaults`); then it runs again once per call
index, crashing with ``os._exit`` just before that call (and, for a ``write``, halfway through
it; and just after each operation returned). After each crash a fresh store opens the same
files and must find exactly the state before or after the interrupted operation, with every
earlier (acknowledged) operation present; it must then accept one more trade; and where the
workload reconciles, one reconcile must bring the derived files back to a fresh rebuild.

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
from tradestore_harness.result import ScenarioResult

NAME = "crash-points"
DESCRIPTION = "os._exit at every file-system call of 1-3 operations; recovery is exactly before or after"
REQUIRES = (TRADE_LOG_FILE,)  # works on the trade log file itself (see tradestore_harness.hooks)


def run(ctx: ScenarioContext) -> ScenarioResult:
    result = ScenarioResult(NAME, ctx.target, ctx.seed)
    # quick: a one-op workload and a three-op one ending in a reconcile (about 100 points)
    sizes = (1, 3) if ctx.quick else (1, 2, 3, 3, 3, 2, 3, 1)
    workloads = fw.make_workloads(ctx.seed, sizes, fw.uses_reconciler(ctx.target))
    report = fw.in_worker(crash_worker, (ctx.target, str(ctx.workdir), workloads), ctx.progress)
    for prop, detail in report["violations"]:
        result.violate(prop, detail)
    for key in ("invoked", "ok", "rejected", "unknown", "kills", "crash_points"):
        setattr(result, key, report[key])
    result.notes.extend(report["notes"])
    return result


def crash_plan(rec: dict) -> list[tuple[int, str]]:
    """(index, action) for every crash point of a recorded workload.

    ``crash`` before call ``index``; ``torn`` halfway through that ``write``; ``return``: just
    after operation number ``index`` returned, before its caller could act on the answer.
    """
    plan = []
    for call in rec["calls"]:
        plan.append((call.index, "crash"))
        if call.kind == "write" and call.data and len(call.data) > 1:
            plan.append((call.index, "torn"))
    plan.extend((k, "return") for k in range(len(rec["spans"])))
    return plan


def crash_worker(target: str, root: str, workloads: list, report) -> dict:
    """In a spawned worker: record each workload, then crash a forked child at every point."""
    factory = fw.resolve(target)
    out = {"violations": fw.Findings(), "notes": [], "invoked": 0, "ok": 0, "rejected": 0, "unknown": 0,
           "kills": 0, "crash_points": 0, "by_point": {}}
    for w, ops in enumerate(workloads):
        wdir = os.path.join(root, f"w{w}")
        ops, snapshot = fw.prepare(factory, wdir, ops)
        rec = fw.record(factory, os.path.join(wdir, "rec"), snapshot, ops)
        plan = crash_plan(rec)
        report("progress", f"workload {w + 1}/{len(workloads)} {ops}: "
                           f"{len(rec['calls'])} calls, {len(plan)} crash points")
        _run_plan(factory, ops, rec, plan, snapshot, wdir, out, w)
    out["violations"] = out["violations"].as_list()
    out["notes"].append("crash points by moment: " + ", ".join(
        f"{name} {count}" for name, count in sorted(out.pop("by_point").items())))
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
            messages = [json.loads(line) for line in b"".join(chunks).decode().splitlines() if line]
            _judge(factory, run_dir, ops, rec, index, action, os.waitstatus_to_exitcode(status), messages, out, w)
            free.append(run_dir)
    for run_dir in free:
        shutil.rmtree(run_dir, ignore_errors=True)


def _start_child(factory, run_dir: str, ops: list, index: int, action: str) -> tuple[int, int]:
    """Fork a child that runs ``ops`` under a fault at ``index``; return (pid, read end of its reports)."""
    from tradestore_harness.fsfaults import CRASH_EXIT, Fault, FsShim

    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns
        code = 3
        try:
            os.close(read_fd)

            def send(msg: dict) -> None:
                os.write(write_fd, (json.dumps(msg) + "\n").encode())

            fault = None if action == "return" else Fault(index, action)
            shim = FsShim(run_dir, recording=False, fault=fault,
                          on_crash=lambda call: send({"crash": call.kind, "index": call.index}))
            shim.install()
            store = factory(*fw.paths(run_dir)[:2])
            ids = fw.base_ids()
            for k, op in enumerate(ops):
                send({"invoke": k})
                outcome, _ = fw.run_op(store, run_dir, op, ids)
                send({"done": k, "outcome": outcome})
                if action == "return" and k == index:
                    send({"crash": "return", "index": k})
                    os._exit(CRASH_EXIT)
            code = 0
        finally:
            os._exit(code)
    os.close(write_fd)
    return pid, read_fd


def _judge(factory, run_dir, ops, rec, index, action, status, messages, out, w) -> None:
    from tradestore_harness.fsfaults import CRASH_EXIT

    if action == "return":
        where = f"workload {w} {ops}, crash after operation {index} returned"
    else:
        where = f"workload {w} {ops}, {action} at call {index} ({rec['calls'][index].describe()})"
    crashed = [m for m in messages if "crash" in m]
    if status != CRASH_EXIT or not crashed:
        out["notes"].append(f"{where}: crash point not reached (exit {status}); not counted")
        return
    if action != "return" and crashed[0]["crash"] != rec["calls"][index].kind:
        out["notes"].append(f"{where}: the call there was {crashed[0]['crash']} this time")
    out["crash_points"] += 1
    out["kills"] += 1
    point = "after return" if action == "return" else f"{action} {rec['calls'][index].kind}"
    out["by_point"][point] = out["by_point"].get(point, 0) + 1
    done = [m for m in messages if "done" in m]
    out["invoked"] += sum(1 for m in messages if "invoke" in m)
    out["ok"] += sum(1 for m in done if m["outcome"] == "ok")
    out["rejected"] += sum(1 for m in done if m["outcome"] != "ok")
    out["unknown"] += 0 if action == "return" else 1
    if action == "return":
        finished, allowed = index + 1, [rec["states"][index + 1]]
    else:
        finished, allowed = fw.allowed_after_calls(rec["spans"], rec["states"], index)
    acked = rec["states"][finished]
    try:
        found = fw.load_state(factory, run_dir)
    except fw.LogUnreadable as exc:
        lost = fw.describe_loss(acked, None)
        out["violations"].add("log-parses", f"{where}: {exc}; acknowledged trades unreadable: {', '.join(lost)}")
        return
    if found not in allowed:
        lost = fw.describe_loss(acked, found)
        if lost:
            out["violations"].add("ack-durable", f"{where}: lost {', '.join(lost)}")
        else:
            out["violations"].add("state-before-or-after", f"{where}: recovered {len(found)} trades, "
                                      f"neither the state before nor after the interrupted operation")
        return
    reconciles = [k for k, op in enumerate(ops) if op == ("reconcile",)]
    if action == "return":
        touched_derived = any(k <= index for k in reconciles)
    else:
        touched_derived = any(rec["spans"][k][0] <= index for k in reconciles)
    if touched_derived:  # earlier crashes cannot have changed the derived files
        healed = fw.reconcile(run_dir, fsync=False)
        problems = fw.derived_problems(run_dir)
        if not healed.ok or problems:
            out["violations"].add("derived-heals", f"{where}: one reconcile left "
                                      f"{problems or healed.reason}")
    why = fw.probe(factory, run_dir)
    if why is not None:
        out["violations"].add("recovers-writable", f"{where}: the next open after recovery failed: {why}")
        return
    after = fw.load_state(factory, run_dir)
    if after[:-1] != found or after[-1].get("symbol") != fw.PROBE[0]:
        out["violations"].add("recovers-writable", f"{where}: the open after recovery changed other trades")
