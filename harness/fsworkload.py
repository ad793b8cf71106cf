"""Small seeded workloads for the file-system fault scenarios, and how to run and observe them.

A workload is one to three operations (open, partial close, update, close, reconcile) on a
directory that already holds a durable baseline (two trades, one closed, and derived files).
The crash-points, io-errors and power-loss scenarios all run the same workloads so their
numbers can be compared. Every choice comes from the seed.

Observed states are *normalised*: time fields (``entry_time``, ``exit_time``, ``timestamp``) are
dropped, because two runs of the same operation differ only in the clock.
"""

from __future__ import annotations

import json
import os
import random
import shutil
from datetime import datetime, timezone
from typing import Any, Callable

from tradestore_harness.fscheckers import describe_loss  # noqa: F401  (scenarios' one import)

LOG = "trades.json"
LOCK = "trades.json.lock"
STATE = "state"  # derived files: <dir of the log>/state, as every scenario keeps them
FIXED_NOW = datetime(2026, 11, 28, 12, 0, tzinfo=timezone.utc)  # the reconciler's clock
TIME_FIELDS = frozenset({"entry_time", "exit_time", "timestamp"})
NEW_SYMBOLS = ("XRP", "LTC", "BNB", "TRX", "XLM")  # in no default correlation group
PROBE = ("PROBE", "LONG", 10.0, 9.0, 12.0, 1.0)  # the "next call after the fault" open

Op = tuple  # ("open", symbol) | ("partial", ref) | ("update", ref) | ("close", ref) | ("reconcile",)


class LogUnreadable(Exception):
    """The trade log on disk is not strict JSON of the expected shape (or the store refused it)."""

    prop = "log-parses"  # the property a recovery that meets it violates


class LogMisread(LogUnreadable):
    """A fresh store reads another state than the files hold: the library's replay of a
    journal-format log differs from the independent reader's (:mod:`tradestore_harness.journal_reader`).

    ``files``: the normalised trades the files hold."""

    prop = "replay-exact"

    def __init__(self, message: str, files: list) -> None:
        super().__init__(message)
        self.files = files


_reconciler: Any = None  # the reconciler class the target last resolved here declares, if any


def resolve(target: str) -> Callable[..., Any]:
    """The factory of a target name (ours, a negative control, or ``module:factory``).

    A factory may name the reconciler its log is reconciled with (``factory.reconciler``, a
    :class:`tradestore.StateReconciler` subclass); :func:`reconcile` then uses it in this worker.
    """
    from tradestore_harness.targets import resolve_target  # knows tradestore_harness.unsafe_durability's controls too

    global _reconciler
    factory = resolve_target(target)
    _reconciler = getattr(factory, "reconciler", None)
    return factory


def uses_reconciler(target: str) -> bool:
    """Reconcile steps only make sense for stores that keep our log format: ours, in either
    format, and the negative controls (every named target)."""
    from tradestore_harness.targets import registry

    return target in registry()


FRESH = ("fresh",)  # first element of a workload that starts from an empty directory


def make_workloads(seed: int, sizes: tuple[int, ...], reconcile: bool, fresh: bool = True) -> list[list[Op]]:
    """One workload per entry of ``sizes`` (its number of operations), from ``seed`` alone.

    With ``fresh``, the first workload opens the very first trade in an empty directory: the
    log, its lock file and their directory entries are all created by it.
    """
    rng = random.Random(f"{seed}:fs-workloads")
    workloads: list[list[Op]] = [[FRESH, ("open", NEW_SYMBOLS[-1])]] if fresh else []
    for n, size in enumerate(sizes):
        ops: list[Op] = []
        opened = False
        closed: set[str] = set()
        for step in range(size):
            kinds = ["open"] if not opened else []
            live = [r for r in (("new",) if opened else ()) + ("base",) if r not in closed]
            if live:
                kinds += ["partial", "update", "close"]
            if reconcile and step > 0:  # the first op always writes the log: every workload can lose a trade
                kinds.append("reconcile")
            kind = rng.choice(kinds)
            if kind == "open":
                ops.append(("open", NEW_SYMBOLS[n % len(NEW_SYMBOLS)]))
                opened = True
            elif kind == "reconcile":
                ops.append(("reconcile",))
            else:
                ref = rng.choice(live)
                ops.append((kind, ref))
                if kind == "close":
                    closed.add(ref)
        if reconcile and ("reconcile",) not in ops and size == max(sizes) and size > 1:
            ops[-1] = ("reconcile",)  # make sure derived files are exercised by some workload
        workloads.append(ops)
    return workloads


# Four writes in a row on the baseline's open trade. A journal-format store folds its journal
# into a checkpoint about every second write here, so this workload has appends to the journal
# a checkpoint started: the moment a checkpoint whose renames are not yet durable can lose them.
CHECKPOINT_WORKLOAD: list[Op] = [("update", "base"), ("partial", "base"), ("update", "base"), ("close", "base")]


def with_checkpoint_workload(factory: Callable[..., Any], root: str, workloads: list[list[Op]]) -> list[list[Op]]:
    """``workloads``, and :data:`CHECKPOINT_WORKLOAD` after them if the store keeps a journal
    beside its log (it wrote one for a first trade in a scratch directory under ``root``)."""
    from tradestore_harness import journal_reader

    scratch = os.path.join(root, "format-probe")
    os.makedirs(scratch, exist_ok=True)
    log, lock, _ = paths(scratch)
    _check_ok(factory(log, lock).open_trade(*PROBE), "probe open")
    journal = os.path.lexists(journal_reader.journal_path(log))
    shutil.rmtree(scratch, ignore_errors=True)
    return [*workloads, list(CHECKPOINT_WORKLOAD)] if journal else workloads


def paths(directory: str) -> tuple[str, str, str]:
    return os.path.join(directory, LOG), os.path.join(directory, LOCK), os.path.join(directory, STATE)


def reconcile(directory: str, fsync: bool = True) -> Any:
    """One reconcile cycle of ``directory``'s log into its ``state`` directory (fixed clock).

    Checks pass ``fsync=False``: they reconcile scratch copies whose durability is not on
    trial, and an fsync per file per checked state would dominate the scenario's time.
    """
    from tradestore import StateReconciler

    log, _, state = paths(directory)
    return (_reconciler or StateReconciler)(log, state, clock=lambda: FIXED_NOW, fsync=fsync).reconcile()


def derived_problems(directory: str) -> dict[str, str]:
    """Derived files that differ from a fresh rebuild of the current log (empty: healed)."""
    from tradestore import StateReconciler

    log, _, state = paths(directory)
    return StateReconciler(log, state, clock=lambda: FIXED_NOW).verify()


def setup_baseline(factory: Callable[..., Any], directory: str, with_reconcile: bool) -> None:
    """Make the durable starting point: T001 ETH (closed with a win), T002 LINK (open)."""
    os.makedirs(directory, exist_ok=True)
    log, lock, state = paths(directory)
    store = factory(log, lock)
    first = store.open_trade("ETH", "LONG", 3000.0, 2900.0, 3300.0, 0.1, "Breakout", "A")
    _check_ok(first, "baseline open ETH")
    _check_ok(store.close_trade(first["id"], 3100.0, "TP"), "baseline close ETH")
    _check_ok(store.open_trade("LINK", "LONG", 20.0, 19.0, 23.0, 5.0, "Pullback", "B"), "baseline open LINK")
    if with_reconcile:
        os.makedirs(state, exist_ok=True)
        reconcile(directory)


def prepare(factory: Callable[..., Any], wdir: str, workload: list[Op]) -> tuple[list[Op], tuple]:
    """Build ``workload``'s baseline in ``wdir/base``: (its operations, snapshot of the baseline)."""
    from tradestore_harness.powerloss import snapshot_dir

    base = os.path.join(wdir, "base")
    if workload and workload[0] == FRESH:
        os.makedirs(base, exist_ok=True)
        return list(workload[1:]), snapshot_dir(base)
    setup_baseline(factory, base, ("reconcile",) in workload)
    return list(workload), snapshot_dir(base)


def _check_ok(value: Any, what: str) -> None:
    if isinstance(value, dict) and "error" in value:
        raise RuntimeError(f"{what} was rejected: {value['error']}")


def run_op(store: Any, directory: str, op: Op, ids: dict[str, str]) -> tuple[str, Any]:
    """Run one operation: ("ok", record) or ("fail", "Type: message").

    ``ids`` maps references ("base", "new") to trade ids and is updated by an ok open.
    """
    kind = op[0]
    try:
        if kind == "reconcile":
            result = reconcile(directory)
            return ("ok", None) if result.ok else ("fail", f"Aborted: {result.reason}")
        if kind == "open":
            value = store.open_trade(op[1], "LONG", 100.0, 95.0, 110.0, 1.0, "Test", "B")
        elif kind == "partial":
            value = store.partial_close(ids[op[1]], 0.5, 104.0 if op[1] == "new" else 21.0, "Partial TP")
        elif kind == "update":
            value = store.update_trade(ids[op[1]], {"notes": "trailed", "target_price": 111.0 if op[1] == "new" else 24.0})
        elif kind == "close":
            value = store.close_trade(ids[op[1]], 106.0 if op[1] == "new" else 21.5, "TP hit")
        else:
            raise ValueError(f"unknown op {op!r}")
    except KeyError as exc:
        return "fail", f"NoTarget: {exc}"
    except Exception as exc:  # every failure of the store is an outcome to check
        return "fail", f"{type(exc).__name__}: {exc}"
    if isinstance(value, dict) and "error" in value:
        return "fail", f"Rejected: {value['error']}"
    if kind == "open" and isinstance(value, dict):
        ids["new"] = value.get("id")
    return "ok", value


def base_ids() -> dict[str, str]:
    return {"base": "T002"}


def normalise(value: Any) -> Any:
    """``value`` without time fields (recursively), for comparing runs of the same operations."""
    if isinstance(value, dict):
        return {k: normalise(v) for k, v in value.items() if k not in TIME_FIELDS}
    if isinstance(value, list):
        return [normalise(v) for v in value]
    return value


def _reject_constant(name: str) -> None:
    raise ValueError(f"{name} is not strict JSON")


def files_state(directory: str) -> list:
    """The normalised trades the files of ``directory``'s log hold, read without the library:
    a document by strict JSON, a journal-format log (a journal beside it) by the independent
    reader (:mod:`tradestore_harness.journal_reader`). A missing log is an empty account.
    Raises :class:`LogUnreadable` when they hold no valid state. Reads without the writers'
    lock: call it where no writer is at work."""
    from tradestore_harness import journal_reader

    log = paths(directory)[0]
    if os.path.lexists(journal_reader.journal_path(log)):
        try:
            state = journal_reader.read(log)
        except journal_reader.Unreadable as exc:
            raise LogUnreadable(f"{LOG} and its journal hold no valid state: {exc}") from None
        return normalise(state.document["trades"])
    if not os.path.exists(log):
        return []
    with open(log, "rb") as f:
        raw = f.read()
    try:
        doc = json.loads(raw.decode("utf-8"), parse_constant=_reject_constant)
    except (UnicodeDecodeError, ValueError) as exc:
        raise LogUnreadable(f"{LOG} ({len(raw)} bytes) does not parse: {exc}") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("trades"), list):
        raise LogUnreadable(f"{LOG} parses but has no list of trades")
    if doc.get("schema") == journal_reader.CHECKPOINT_SCHEMA:
        raise LogUnreadable(f"{LOG} is a journal-format checkpoint whose journal is missing")
    return normalise(doc["trades"])


def load_state(factory: Callable[..., Any], directory: str) -> list:
    """The normalised trades a fresh store finds in ``directory``.

    Raises :class:`LogUnreadable` when the files hold no valid state (:func:`files_state`) or
    when the store refuses to read them, and :class:`LogMisread` when the store reads a
    journal-format log (a journal beside it) as another state than its files hold: there the
    independent reader is the judge. A missing log is an empty account. Reads without the
    writers' lock: call it where no writer is at work.
    """
    from tradestore_harness import journal_reader

    log, lock, _ = paths(directory)
    held = files_state(directory)
    try:
        trades = normalise(factory(log, lock).get_all_trades())
    except Exception as exc:
        raise LogUnreadable(f"a fresh store cannot read {LOG}: {type(exc).__name__}: {exc}") from None
    if trades != held and os.path.lexists(journal_reader.journal_path(log)):
        raise LogMisread(f"a fresh store reads {_summary(trades)} where the files hold {_summary(held)} "
                         f"(by the independent reader): {', '.join(describe_loss(held, trades) or ['extra or reordered trades'])}",
                         held)
    return trades


def _summary(trades: list) -> str:
    ids = [t.get("id") for t in trades]
    repeated = sorted({i for i in ids if ids.count(i) > 1})
    return f"{len(trades)} trades" + (f" (repeated: {', '.join(repeated)})" if repeated else "")


def recover(factory: Callable[..., Any], directory: str, *, reconcile_due: bool, probe_after: bool) -> dict:
    """Open ``directory`` with a fresh store, as after a crash: the fields of a
    :class:`tradestore_harness.fscheckers.Recovery` but ``where``/``acked``/``allowed``.

    With ``reconcile_due`` one reconcile must heal the derived files; with ``probe_after`` one
    more open must work and change nothing else.
    """
    try:
        found = load_state(factory, directory)
    except LogUnreadable as exc:
        return {"found": None, "unreadable": str(exc), "unreadable_prop": exc.prop}
    out: dict[str, Any] = {"found": found}
    if reconcile_due:
        healed = reconcile(directory, fsync=False)
        problems = derived_problems(directory)
        if not healed.ok or problems:
            out["derived"] = (f"the reconcile aborted ({healed.reason})" if not healed.ok
                              else f"one reconcile left {problems}")
    if probe_after:
        out["probe"] = probe(factory, directory)
        if out["probe"] is None:
            try:
                after = load_state(factory, directory)
            except LogUnreadable as exc:
                out["probe"] = f"the log after it: {exc}"
            else:
                out["probe_changed"] = after[:-1] != found or after[-1].get("symbol") != PROBE[0]
    return out


def probe(factory: Callable[..., Any], directory: str) -> str | None:
    """Open one more trade with a fresh store; None if it worked, else why not."""
    log, lock, _ = paths(directory)
    try:
        value = factory(log, lock).open_trade(*PROBE)
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"
    if isinstance(value, dict) and "error" in value:
        return f"Rejected: {value['error']}"
    return None


class Findings:
    """Violations grouped by property, so that a thousand bad states make one readable line each."""

    def __init__(self, examples: int = 3) -> None:
        self.examples = examples
        self.by_prop: dict[str, list[str]] = {}
        self._first: dict[str, int] = {}

    def add(self, prop: str, detail: str, first: bool = False) -> None:
        """Keep ``detail``; with ``first`` it goes before earlier ordinary ones (a clearer example)."""
        details = self.by_prop.setdefault(prop, [])
        if first:
            details.insert(self._first.get(prop, 0), detail)
            self._first[prop] = self._first.get(prop, 0) + 1
        else:
            details.append(detail)

    def extend(self, findings: list[tuple[str, str]], first: bool = False) -> None:
        """Add a checker's ``(property, detail)`` findings (see :meth:`add` for ``first``)."""
        for prop, detail in findings:
            self.add(prop, detail, first=first)

    def merge(self, by_prop: dict[str, list[str]]) -> None:
        """Add another :class:`Findings`' ``by_prop`` (e.g. a forked child's) after these."""
        for prop, details in by_prop.items():
            self.by_prop.setdefault(prop, []).extend(details)

    def as_list(self) -> list[tuple[str, str]]:
        """One (property, detail) per property: the count and the first few examples."""
        out = []
        for prop, details in self.by_prop.items():
            shown = "; ".join(details[: self.examples])
            more = f" (and {len(details) - self.examples} more)" if len(details) > self.examples else ""
            out.append((prop, f"{len(details)} case(s): {shown}{more}"))
        return out


# -- running a recorded workload ------------------------------------------------------------------


def record(factory: Callable[..., Any], run_dir: str, snapshot: tuple, ops: list[Op]) -> dict:
    """Run ``ops`` on a copy of ``snapshot`` in ``run_dir`` recording every file-system call.

    Returns ``calls`` (FsCall list), ``spans`` (per op: [first call, end) indices), ``outcomes``,
    ``states`` (normalised trades before the first op and after each op: what the files hold),
    ``misread`` (findings: a fresh store read another state than the files held, see
    :class:`LogMisread`) and ``unseen`` (files the recorded calls do not account for: see
    :func:`tradestore_harness.powerloss.unseen_changes`).
    """
    from tradestore_harness.fsfaults import FsShim
    from tradestore_harness.powerloss import materialise, unseen_changes

    misread: list[tuple[str, str]] = []

    def state(directory: str, when: str) -> list:
        try:
            return load_state(factory, directory)
        except LogMisread as exc:  # judged by what the files hold; the misreading is a finding
            misread.append((exc.prop, f"recorded run of {ops}, {when}: {exc}"))
            return exc.files

    # The state before: read from a copy, so that this process opens nothing of ``run_dir``
    # (a read of a journal-format log takes the lock, whose descriptor a process keeps) before
    # the recording starts: the runs under faults, in fresh processes, must make the same calls.
    before = run_dir + ".before"
    materialise(*snapshot, before)
    states = [state(before, "before the first operation")]
    shutil.rmtree(before, ignore_errors=True)
    materialise(*snapshot, run_dir)
    shim = FsShim(run_dir, real_sync=False)  # the disk model, not the disk, judges durability
    spans, outcomes = [], []
    ids = base_ids()
    with shim:
        store = factory(*paths(run_dir)[:2])
        for k, op in enumerate(ops):
            start = shim.count
            outcome, _ = run_op(store, run_dir, op, ids)
            spans.append((start, shim.count))
            outcomes.append(outcome)
            with shim.paused():
                states.append(state(run_dir, f"after operation {k} {op}"))
    # the recording ran on a copy of the baseline made file by file (no hard links), so the
    # model starts from the same: every baseline file its own inode
    return {"calls": shim.calls, "spans": spans, "outcomes": outcomes, "states": states, "misread": misread,
            "unseen": unseen_changes(run_dir, snapshot, shim.calls)}


def allowed_after_calls(spans: list[tuple[int, int]], states: list, done: int) -> tuple[int, list]:
    """After the first ``done`` calls: (ops fully done, allowed states).

    An op whose calls all ran counts as acknowledged (it has no file-system work left); an op
    with some calls run may be before or after; an op none of whose calls ran is before.
    """
    finished = sum(1 for _, end in spans if end <= done)
    allowed = [states[finished]]
    if finished < len(spans) and spans[finished][0] < done:
        allowed.append(states[finished + 1])
    return finished, allowed


def fill_result(result: Any, report: dict, counts: tuple[str, ...], *, proof: str, unproven: str) -> None:
    """Copy a worker's report (violations, counts, notes, not-applicable reason) into ``result``.

    A run whose count ``proof`` stayed 0 (no crash point reached, no fault hit, no state
    checked) proved nothing: it is NOT PROVEN with ``unproven`` as the reason.
    """
    for prop, detail in report["violations"]:
        result.violate(prop, detail)
    for key in counts:
        setattr(result, key, getattr(result, key) + report[key])
    result.notes.extend(report["notes"])
    if report.get("not_applicable"):
        result.mark_not_applicable(report["not_applicable"])
    elif not report[proof]:
        result.not_proven(unproven)


def forked_map(func: Callable[[list], Any], items: list, parallel: int = 2) -> list:
    """``func(share)`` for each of ``parallel`` shares of ``items`` (every ``parallel``-th item),
    each share in a child forked from this worker; the results (pickled back) in share order.

    Fault points are independent runs from the baseline, each in its own directory, so two
    children make use of two cores. Call only from a worker's main thread. A child that raises
    or dies raises RuntimeError here, with its traceback.
    """
    import pickle
    import traceback

    children = []
    for j in range(parallel):
        share = items[j::parallel]
        if not share:
            continue
        read_fd, write_fd = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child: never returns
            try:
                os.close(read_fd)
                try:
                    payload = ("result", func(share))
                except BaseException:
                    payload = ("error", traceback.format_exc())
                data = pickle.dumps(payload)
                while data:
                    data = data[os.write(write_fd, data):]
            finally:
                os._exit(0)
        os.close(write_fd)
        children.append((pid, read_fd))
    results = []
    for pid, read_fd in children:
        chunks = []
        while chunk := os.read(read_fd, 1 << 16):
            chunks.append(chunk)
        os.close(read_fd)
        _, status = os.waitpid(pid, 0)
        if not chunks:
            raise RuntimeError(f"a forked child ended without a result (exit code {os.waitstatus_to_exitcode(status)})")
        kind, value = pickle.loads(b"".join(chunks))
        if kind == "error":
            raise RuntimeError(f"a forked child failed:\n{value}")
        results.append(value)
    return results


def in_worker(func: Callable[..., dict], args: tuple, progress: Callable[[str], None], timeout: float = 600.0) -> dict:
    """Run ``func(*args, report)`` in a spawned process; relay its progress; return its result.

    ``report(kind, payload)`` sends ("progress", text) or ("result", dict). A worker that dies
    without a result raises RuntimeError naming its exit code.
    """
    import queue as queue_module
    import time

    from tradestore_harness.processes import context

    mp = context()
    queue = mp.Queue()
    proc = mp.Process(target=_worker_main, args=(func, args, queue), daemon=True)
    proc.start()
    result = None
    silent_since = time.monotonic()
    try:
        while result is None:
            try:
                kind, payload = queue.get(timeout=0.5)
            except queue_module.Empty:
                # a worker that died (e.g. killed by the OOM killer) sends nothing ever again
                if not proc.is_alive() or time.monotonic() - silent_since > timeout:
                    raise RuntimeError(f"worker {func.__name__} ended without a result "
                                       f"(exit code {proc.exitcode})") from None
                continue
            silent_since = time.monotonic()
            if kind == "progress":
                progress(payload)
            elif kind == "error":
                raise RuntimeError(f"worker {func.__name__} failed:\n{payload}")
            else:
                result = payload
    finally:
        proc.join(timeout=30)
        if proc.is_alive():
            proc.terminate()
            proc.join()
    return result


def _worker_main(func: Callable[..., dict], args: tuple, queue: Any) -> None:
    import logging
    import traceback

    # Healing after an injected crash is expected here; the library's warnings would be noise.
    logging.getLogger("tradestore").addHandler(logging.NullHandler())
    logging.getLogger("tradestore").propagate = False

    def report(kind: str, payload: Any) -> None:
        queue.put((kind, payload))

    try:
        report("result", func(*args, report))
    except BaseException:
        report("error", traceback.format_exc())
