"""io-errors: ENOSPC and EIO at every file-system call, short writes and EINTR at every write.

Each workload (one to three operations) runs once recorded, then once per fault point (see
:func:`fault_points`): the call at that index raises ``OSError`` instead of running (persistent:
so does every later call of the same kind, as on a full or failing disk), or a write lands only
half its bytes and says so, or raises ``InterruptedError`` before landing any. After every
operation a fresh store must find:

- a log that parses (``log-parses``);
- an operation that returned ok in the log as returned (``ack-durable``), and no ok answer
  from an operation whose fsync or directory fsync failed unless every disk a power cut could
  leave holds its result (``fault-surfaced``: after a failed fsync the kernel may have dropped
  the file's data, so retrying that fsync into a success acknowledges data that may be gone;
  writing the data again into a new file and syncing that is a true success); every other
  failure may be absorbed or retried, since what it loses shows in the files;
- after a failed operation, the state before it or (when only the final directory fsync failed)
  after it, with nothing else changed (``state-before-or-after``);

and once the fault clears, the same store must accept the next trade, changing nothing else
(``next-call-succeeds``), and one reconcile must bring the derived files back to a fresh rebuild
(``derived-heals``). A run that does not meet, at the fault's index, the call the recording had
there fails ``calls-repeatable``. The runs of a workload share two forked children; an injected
error does not end the process. The findings come from :mod:`tradestore_harness.fscheckers`.
"""

from __future__ import annotations

import errno
import os
import shutil

from tradestore_harness.hooks import TRADE_LOG_FILE
from tradestore_harness import fsworkload as fw
from tradestore_harness.context import ScenarioContext
from tradestore_harness.fscheckers import (MUST_SURFACE, AfterFault, FaultedStep, Observability, PointReached,
                                           Recovery, check_after_fault, check_faulted_step, check_point_reached,
                                           check_recovery, not_observable)
from tradestore_harness.fsfaults import Fault
from tradestore_harness.powerloss import snapshot_dir, sync_dir
from tradestore_harness.result import ScenarioResult

NAME = "io-errors"
DESCRIPTION = ("ENOSPC/EIO at every file-system call, once and persistently, short writes and EINTR at every "
               "write: raises, loses nothing, recovers")
REQUIRES = (TRADE_LOG_FILE,)  # works on the trade log file itself (see tradestore_harness.hooks)

ERRNOS = (errno.ENOSPC, errno.EIO)
STOPPED = "StoreStopped:"  # how an operation's failure says the store stopped (see tradestore.errors)
PARALLEL = 2  # forked children sharing a workload's fault points: independent runs, two cores


def _must_surface(call, lock_path: str) -> bool:
    """An injected failure the operation must report (the lock file holds only a pid hint)."""
    return call.injected == "error" and call.kind in MUST_SURFACE and call.path != lock_path


def run(ctx: ScenarioContext) -> ScenarioResult:
    result = ScenarioResult(NAME, ctx.target, ctx.seed)
    sizes = (1, 3) if ctx.quick else (1, 2, 3, 3)  # full: every kind of step, reconciles too
    # A reconcile step is 45 calls of five atomic writes; the quick size leaves it to full runs
    # (crash-points and power-loss cover the reconciler at every size).
    workloads = fw.make_workloads(ctx.seed, sizes, fw.uses_reconciler(ctx.target) and not ctx.quick)
    report = fw.in_worker(io_worker, (ctx.target, str(ctx.workdir), workloads), ctx.progress)
    fw.fill_result(result, report, ("invoked", "ok", "rejected", "crash_points"),
                   proof="crash_points", unproven="no injected fault was hit")
    return result


def fault_points(calls: list) -> list[Fault]:
    """The faults to inject, one run each, for a recording's ``calls``.

    Errors: every index once and persistently, the errno alternating with the index, so each
    errno still meets every mode (a store that tells ENOSPC from EIO is rare; one that tells a
    passing error from a lasting one is the point). At every write: a short write (half the
    bytes land, the count says so) and EINTR (nothing lands, ``InterruptedError``), each once.
    The full size differs from the quick one by its workloads, not by its points per call.
    """
    points = [Fault(i, "error", ERRNOS[(i + p) % 2], bool(p)) for i in range(len(calls)) for p in (0, 1)]
    for call in calls:
        if call.writes:
            points.append(Fault(call.index, "short"))
            points.append(Fault(call.index, "eintr"))
    return points


def describe_fault(fault: Fault) -> str:
    if fault.action == "error":
        return f"{errno.errorcode[fault.errno]} {'persistent' if fault.persistent else 'once'}"
    return {"short": "a short write", "eintr": "EINTR"}[fault.action]


def io_worker(target: str, root: str, workloads: list, report) -> dict:
    """In a spawned worker: every (workload, fault point) run."""
    factory = fw.resolve(target)
    workloads = fw.with_checkpoint_workload(factory, root, workloads)
    findings = fw.Findings()
    out = {"invoked": 0, "ok": 0, "rejected": 0, "crash_points": 0, "synced_before": 0, "stops": 0, "notes": [],
           "not_applicable": None}
    kinds: dict[str, int] = {}
    for w, ops in enumerate(workloads):
        wdir = os.path.join(root, f"w{w}")
        ops, snapshot = fw.prepare(factory, wdir, ops)
        rec = fw.record(factory, os.path.join(wdir, "rec"), snapshot, ops)
        out["not_applicable"] = not_observable(Observability(rec["unseen"]))
        if out["not_applicable"]:
            break
        findings.extend(rec["misread"])
        points = fault_points(rec["calls"])
        report("progress", f"workload {w + 1}/{len(workloads)} {ops}: {len(points)} fault points")

        def share(faults: list, w=w, ops=ops, snapshot=snapshot, rec=rec, wdir=wdir) -> tuple:
            """In a forked child: these fault points, in its own directory reset before each."""
            mine, hit = fw.Findings(), {}
            counts = {"invoked": 0, "ok": 0, "rejected": 0, "crash_points": 0, "synced_before": 0, "stops": 0}
            run_dir = os.path.join(wdir, f"run-{os.getpid()}")
            cuts = PowerCuts(run_dir, snapshot)  # the runs of a workload leave many disks alike
            for fault in faults:
                call = rec["calls"][fault.at]
                where = f"workload {w} {ops}, {describe_fault(fault)} at call {fault.at} ({call.describe()})"
                if _one_run(factory, run_dir, snapshot, ops, rec, fault, where, mine, counts, cuts):
                    hit[fault.action] = hit.get(fault.action, 0) + 1
            for directory in (run_dir, run_dir + ".after-stop", cuts.scratch):
                shutil.rmtree(directory, ignore_errors=True)
            return mine.by_prop, counts, hit

        for by_prop, counts, hit in fw.forked_map(share, points, PARALLEL):
            findings.merge(by_prop)
            for key, n in counts.items():
                out[key] += n
            for action, n in hit.items():
                kinds[action] = kinds.get(action, 0) + n
    out["violations"] = findings.as_list()
    out["notes"].append(f"{out['crash_points']} I/O fault points injected (counted as crash points): "
                        + ", ".join(f"{n} {k}" for k, n in sorted(kinds.items())))
    synced_before, stops = out.pop("synced_before"), out.pop("stops")
    if synced_before or stops:
        out["notes"].append(f"{synced_before} ok answers after a failed sync that came once the result was on disk "
                            f"(every power-cut state before it held it); {stops} stores stopped (a write that "
                            "could not be cut off), each recovered by a new process")
    return out


def _one_run(factory, run_dir, snapshot, ops, rec, fault, where, findings, out, cuts: "PowerCuts") -> bool:
    """Run ``ops`` under ``fault`` from the baseline; judge every step; True if the point was hit."""
    from tradestore_harness.fsfaults import FsShim

    sync_dir(*snapshot, run_dir, renew=True)  # new inodes: as fresh for this process as the recording's
    shim = FsShim(run_dir, fault=fault, real_sync=False)  # a faulted fsync never reaches the disk anyway
    lock_path = fw.paths(run_dir)[1]
    current = rec["states"][0]
    ids = fw.base_ids()
    stopped = False  # an operation raised StoreStopped: the store refuses every later call
    synced_failed = False  # a sync the operations must report failed: is what they acknowledge on disk?
    with shim:
        try:
            store = factory(*fw.paths(run_dir)[:2])
        except Exception:  # the fault hit the store's constructor: it refused to start, a refusal
            store = None   # like any other; the files must be as they were, and it must start later
        for k, op in enumerate(ops if store is not None else ()):
            first_call = len(shim.calls)
            out["invoked"] += 1
            outcome, value = fw.run_op(store, run_dir, op, ids)
            out["ok" if outcome == "ok" else "rejected"] += 1
            hit = [c for c in shim.calls[first_call:] if c.injected]
            failed = [c for c in hit if _must_surface(c, lock_path)]
            stopped = stopped or (outcome == "fail" and str(value).startswith(STOPPED))
            with shim.paused():
                try:
                    # A stopped store refuses every reader of its process too; the files are
                    # judged alone here, and a new process reads them (below).
                    after = fw.files_state(run_dir) if stopped else fw.load_state(factory, run_dir)
                except fw.LogUnreadable as exc:
                    findings.add(exc.prop, f"{where}, after op {k} {op}: {exc}")
                    return True
                synced_failed = synced_failed or bool(failed)
                lost = None
                if outcome == "ok" and op[0] != "reconcile" and synced_failed:
                    # after a failed sync, what this operation acknowledged must survive a power cut
                    # (the model keeps the pages dirty at a failed fsync off the disk until written again)
                    lost = cuts.lost(shim.calls, len(shim.calls), [after])
                    if lost is not None:
                        findings.add("ack-durable", f"{where}, op {k} {op} -> ok: a power cut right after it "
                                                    f"could leave {lost}")
                # An ok answer despite a failed sync is true if its result was on disk before the
                # sync (a journal's checkpoint after an fsynced record) or is on disk when the
                # answer comes (the store wrote the data again into a new file and synced that).
                durable = outcome == "ok" and bool(failed) and (
                    cuts.lost(shim.calls, failed[0].index, [after]) is None
                    or (op[0] != "reconcile" and lost is None))
            on_path = current == rec["states"][k]
            findings.extend(check_faulted_step(FaultedStep(
                f"{where}, op {k} {op} -> {outcome}", op[0], outcome,
                fw.normalise(value) if outcome == "ok" else None,
                frozenset(c.kind for c in failed), bool(hit), current, after,
                (rec["states"][k], rec["states"][k + 1]) if on_path else None,
                ids.get(op[1]) if op[0] not in ("open", "reconcile") else None, durable)))
            out["synced_before"] += durable
            current = after
        shim.clear_fault()
        met = shim.calls[fault.at].kind if len(shim.calls) > fault.at else None
        problems = check_point_reached(PointReached(where, rec["calls"][fault.at].kind, met))
        findings.extend(problems)
        if problems:
            return False
        out["crash_points"] += 1
        if store is None:
            try:
                with shim.paused():
                    refused = fw.load_state(factory, run_dir)
            except fw.LogUnreadable as exc:
                findings.add(exc.prop, f"{where}, after the store's constructor failed: {exc}")
                return True
            if refused != current:
                findings.add("state-before-or-after", f"{where}: the store's constructor failed and changed "
                                                      f"the trade log ({len(current)} -> {len(refused)} trades)")
        # the next call after the fault clears, on the same store (its memory must be clean too),
        # or on a new one if the first never started
        try:
            store = store if store is not None else factory(*fw.paths(run_dir)[:2])
            value = store.open_trade(*fw.PROBE)
            problem = value.get("error") if isinstance(value, dict) else None
        except Exception as exc:
            problem = f"{type(exc).__name__}: {exc}"
    after, derived = [], None
    if stopped:
        # The store keeps its lock until its process ends; a copy of the files is what a new
        # process finds then (the page cache survives a process), and it must recover.
        out["stops"] += 1
        copy = run_dir + ".after-stop"
        sync_dir(*snapshot_dir(run_dir), copy, renew=True)
        seen = fw.recover(factory, copy, reconcile_due=("reconcile",) in ops, probe_after=True)
        findings.extend(check_recovery(Recovery(f"{where}, a new process after the store stopped",
                                                current, [current], **seen)))
    elif problem is None:
        try:
            after = fw.load_state(factory, run_dir)
        except fw.LogUnreadable as exc:
            findings.add(exc.prop, f"{where}, after the open once the fault cleared: {exc}")
            return True
        if ("reconcile",) in ops:
            healed = fw.reconcile(run_dir, fsync=False)
            problems = fw.derived_problems(run_dir)
            if not healed.ok or problems:
                derived = f"{healed.reason if not healed.ok else problems}"
    findings.extend(check_after_fault(AfterFault(where, problem, current, after, fw.PROBE[0], derived, stopped)))
    return True


class PowerCuts:
    """Whether a run's acknowledged state is on disk: the disks a power cut at some moment of
    the run could leave (replaying its calls from ``snapshot`` in
    :class:`tradestore_harness.powerloss.DiskModel`), each read by the files alone
    (:func:`tradestore_harness.fsworkload.files_state`); each distinct disk is read once."""

    CAP = 8  # disks per moment (the power-loss scenario enumerates them all)

    def __init__(self, root: str, snapshot: tuple) -> None:
        self.root, self.snapshot = root, snapshot
        self.scratch = root + ".power-cut"
        self.read: dict[tuple, list | str] = {}  # disk -> its trades, or why it is unreadable

    def lost(self, calls: list, index: int, allowed: list) -> str | None:
        """None if every disk a power cut right before call ``index`` leaves holds one of the
        ``allowed`` states; else what the first other one holds."""
        import random

        from tradestore_harness.powerloss import DiskModel

        model = DiskModel(self.root, *self.snapshot)
        for call in calls[:index]:
            model.apply(call)
        for state in model.crash_states(random.Random(index), cap=self.CAP):
            held = self.read.get(state.key())
            if held is None:
                sync_dir(state.files, self.snapshot[1], self.scratch)
                try:
                    held = fw.files_state(self.scratch)
                except fw.LogUnreadable as exc:
                    held = str(exc)
                self.read[state.key()] = held
            if isinstance(held, str):
                return f"an unreadable log ({state.label}): {held}"
            if held not in allowed:
                lost = fw.describe_loss(allowed[0], held)
                return f"{len(held)} trades ({state.label}){': lost ' + ', '.join(lost) if lost else ''}"
        return None
