"""Workers: real OS processes that play scanner, position monitor and reconciler.

Every entry point here runs in a process started with the ``spawn`` method (see
:mod:`tradestore_harness.processes`; a fresh interpreter: no lock, descriptor or cache inherited from the parent). A worker first
installs the spy (:mod:`tradestore_harness.spy`), then resolves its target *by name* and builds its own
store, so the parent never shares a store object with a child. Workers record every operation
in their history (:mod:`tradestore_harness.history`); ``ok`` is written only after the call returned.

Ordering between processes uses barriers and events, never sleeps.
"""

from __future__ import annotations

import json
import os
import signal
import threading
from datetime import datetime
from typing import Any

from tradestore.logfile import lock_path
from tradestore_harness import generator, hooks, spy as spy_mod, waitpoints
from tradestore_harness.processes import context
from tradestore_harness.history import HistoryWriter
from tradestore_harness.targets import call, resolve_target

WAIT = 10.0  # upper bound on any cross-process wait, so a broken target cannot hang a campaign


def spawn(fn, *args) -> Any:
    """Start ``fn(*args)`` in a new spawned daemon process."""
    process = context().Process(target=fn, args=args, daemon=True)
    process.start()
    return process


def make_spec(target: str, workdir: str, worker: str, **extra: Any) -> dict:
    """Everything a worker needs, as plain data (it crosses the process boundary)."""
    spec = {
        "target": target,
        "trade_log": os.path.join(workdir, "trades.json"),
        "lock_file": lock_path(os.path.join(workdir, "trades.json")),  # the log's one lock file
        "history_dir": os.path.join(workdir, "history"),
        "versions_dir": os.path.join(workdir, "versions"),
        "limits": {},
        "worker": worker,
    }
    spec.update(extra)
    return spec


def _setup(spec: dict):
    history = HistoryWriter(spec["history_dir"], spec["worker"])
    history.record("start")
    spy = spy_mod.install(history, spec["trade_log"], spec["lock_file"], spec.get("versions_dir"))
    if spec.get("sentinel"):
        _arm_sentinel(spy, history, spec["sentinel"])
    store = resolve_target(spec["target"])(spec["trade_log"], spec["lock_file"], **spec["limits"])
    hooks.observe(spec["target"], store, spy)
    return store, history, spy


def _arm_sentinel(spy, history: HistoryWriter, sentinel: str) -> None:
    """Inside the critical section, hold an O_EXCL sentinel: a second holder cannot create it."""
    owned = []

    def enter() -> None:
        try:
            os.close(os.open(sentinel, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
            owned.append(True)
        except FileExistsError:
            history.record("sentinel-collision")

    def leave() -> None:
        if owned:
            owned.clear()
            os.unlink(sentinel)

    spy.on_lock.append(enter)
    spy.on_unlock.append(leave)


def run_op(store, history: HistoryWriter, op_id: str, f: str, args: list) -> tuple[str, Any]:
    """Invoke one operation and record its invoke and outcome."""
    history.record("invoke", op=op_id, f=f, args=args)
    outcome, value = call(store, f, args)
    if outcome == "ok":
        history.record("ok", op=op_id, value=value if isinstance(value, (dict, list)) else repr(value))
    else:
        history.record("fail", op=op_id, error=value)
    return outcome, value


# --------------------------------------------------------------------------- scripted workers

def script_worker(spec: dict, ops: list, barrier=None, decided=None) -> None:
    """Run ``ops`` (``[f, args]`` pairs) in order, after ``barrier`` releases every worker.

    ``decided``: a barrier armed at the negative controls' ``decided`` wait-point, so every
    worker of a race has decided before any of them writes (the widened window). A worker
    that finishes without reaching it breaks it, so the others never wait in vain.
    """
    store, history, spy = _setup(spec)
    if decided is not None:
        def at_decided(n: int) -> None:
            if n != 1:
                return
            if spy.holding:
                # A store that decides under the lock cannot be raced here: waiting would only
                # hold the others off until the timeout.
                decided.abort()
            else:
                _wait(decided)
        waitpoints.arm("decided", at_decided)
    if barrier is not None:
        _wait(barrier)
    try:
        for n, (f, args) in enumerate(ops):
            run_op(store, history, f"{spec['worker']}-{n}", f, args)
    finally:
        if decided is not None and not waitpoints.hits("decided"):
            decided.abort()


def _wait(barrier) -> None:
    try:
        barrier.wait(WAIT)
    except threading.BrokenBarrierError:
        pass  # a peer finished without reaching the barrier: carry on


def toctou_worker(spec: dict, op: list, role: str, at_commit, ready: list) -> None:
    """The deterministic TOCTOU race, with no hook in the store.

    The ``holder`` runs ``op``; when it is about to replace the trade log (its checks passed,
    the lock held) it sets ``at_commit`` and waits until every contender is ``ready``. A
    ``contender`` starts its ``op`` only after ``at_commit``; it is ready once it finds the
    lock taken (it now waits behind the holder's checks), once it reaches its own commit (a
    store without a lock), or once its call returned.
    """
    store, history, spy = _setup(spec)
    f, args = op
    if role == "holder":
        def hold(_sha: str) -> None:
            if not at_commit.is_set():
                at_commit.set()
                history.record("waitpoint", name="holder-at-commit")
                for event in ready:
                    event.wait(WAIT)
        spy.on_commit.append(hold)
        try:
            run_op(store, history, f"{spec['worker']}-0", f, args)
        finally:
            at_commit.set()
        return
    mine = ready[0]
    spy.on_contended.append(mine.set)
    spy.on_commit.append(lambda _sha: mine.set())
    at_commit.wait(WAIT)
    try:
        run_op(store, history, f"{spec['worker']}-0", f, args)
    finally:
        mine.set()


# --------------------------------------------------------------------------- looping writers

def writer_loop(spec: dict, life: int, stop, max_ops: int = 10_000, started=None) -> None:
    """A scanner/monitor: open, partially close, trail the stop of, and close its own trades.

    Operations follow the seeded stream of :func:`tradestore_harness.generator.writer_ops` for this
    worker and life. Its own trades are those whose notes start with ``<worker>-``; after a
    restart it finds them again in the log. ``started`` (an event) is set as the first
    operation is invoked. With ``spec["suicide_at"] = k`` the process kills
    itself with SIGKILL at the k-th ``mid-write`` wait-point (only controls have one).
    """
    store, history, _ = _setup(spec)
    worker = spec["worker"]
    if spec.get("suicide_at"):
        def die(n: int) -> None:
            if n == spec["suicide_at"]:
                history.record("kill", target_pid=os.getpid(), why="mid-write wait-point")
                os.kill(os.getpid(), signal.SIGKILL)
        waitpoints.arm("mid-write", die)
    mine: dict[str, dict] = {}

    def refresh() -> None:
        mine.clear()
        outcome, trades = call(store, "read", [])
        if outcome == "ok":
            for t in trades:
                if str(t.get("notes", "")).startswith(worker + "-") and t.get("status") == "OPEN":
                    mine[t["id"]] = t

    refresh()
    for intent in generator.writer_ops(spec["seed"], worker, life, tuple(spec.get("symbols", generator.SYMBOLS))):
        if stop.is_set() or intent["n"] >= max_ops:
            break
        op_id = f"{worker}-L{life}-{intent['n']}"
        f = intent["f"]
        if f == "open":
            args = intent["args"][:8] + [op_id]
        else:
            if not mine:
                continue
            ids = sorted(mine)
            trade = mine[ids[int(intent["r"] * len(ids))]]
            entry = float(trade["entry_price"])
            if f == "close":
                args = [trade["id"], round(entry * (1 + intent["price_move"]), 2), "chaos close"]
            elif f == "partial":
                args = [trade["id"], intent["pct"], round(entry * (1 + intent["price_move"]), 2), "chaos partial"]
            else:
                long = trade["direction"] == "LONG"
                moved = float(trade["stop_price"]) * (1 + intent["stop_move"])
                stop_price = round(min(moved, entry * 0.995) if long else max(moved, entry * 1.005), 2)
                args = [trade["id"], {"stop_price": stop_price}]
        if started is not None:
            started.set()  # set up and at work (before the call: the call may kill the process)
        outcome, value = run_op(store, history, op_id, f, args)
        if outcome == "ok" and isinstance(value, dict) and "id" in value:
            if value.get("status") == "CLOSED":
                mine.pop(value["id"], None)
            else:
                mine[value["id"]] = value
        elif outcome == "fail" and f != "open":
            refresh()


# --------------------------------------------------------------------------- reconciler

def reconciler_loop(spec: dict, stop, clock_iso: str, snapshot_dir: str, max_cycles: int = 10_000) -> None:
    """The reconciler role: reconcile until ``stop``; after each cycle keep what it wrote.

    Each snapshot (``snapshot_dir/<pid>-<n>.json``) holds the derived files as they are right
    after a cycle returned; only this process writes them, so that is the set it wrote.
    """
    import logging

    from tradestore_harness.derived import read_derived
    from tradestore import StateReconciler

    # Guard aborts are findings the scenario reports; keep them off the campaign's terminal.
    logging.getLogger("tradestore").addHandler(logging.NullHandler())
    logging.getLogger("tradestore").propagate = False
    history = HistoryWriter(spec["history_dir"], spec["worker"])
    history.record("start")
    fixed = datetime.fromisoformat(clock_iso)
    state_dir = spec["state_dir"]
    reconciler = StateReconciler(spec["trade_log"], state_dir, clock=lambda: fixed)
    os.makedirs(snapshot_dir, exist_ok=True)
    n = 0
    while not stop.is_set() and n < max_cycles:
        history.record("invoke", op=f"{spec['worker']}-{n}", f="reconcile", args=[])
        result = reconciler.reconcile()
        files = read_derived(state_dir)
        with open(os.path.join(snapshot_dir, f"{os.getpid()}-{n}.json"), "w") as handle:
            json.dump({"aborted": result.aborted, "files": files}, handle)
        kind = "fail" if result.aborted else "ok"
        history.record(kind, op=f"{spec['worker']}-{n}", value={"healed": result.healed}, error=getattr(result, "reason", None))
        n += 1
