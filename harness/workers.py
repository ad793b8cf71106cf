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


def spawn(fn, *args, method: str = "spawn", preload: tuple[str, ...] = ()) -> Any:
    """Start ``fn(*args)`` in a new daemon process (spawned, or see :func:`processes.context`)."""
    process = context(method, preload).Process(target=fn, args=args, daemon=True)
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


def run_op(store, history: HistoryWriter, op_id: str, f: str, args: list, valid: bool = False) -> tuple[str, Any]:
    """Invoke one operation and record its invoke and outcome. ``valid``: the rules allow it,
    so it must succeed (checked by ``valid-ops-succeed``)."""
    if valid:
        history.record("invoke", op=op_id, f=f, args=args, valid=True)
    else:
        history.record("invoke", op=op_id, f=f, args=args)
    outcome, value = call(store, f, args)
    if outcome == "ok":
        history.record("ok", op=op_id, value=value if isinstance(value, (dict, list)) else repr(value))
    elif outcome == "unknown":  # no outcome event: the operation stays unknown to the checkers
        history.record("outcome-unknown", op=op_id, error=value)
    else:
        history.record("fail", op=op_id, error=value)
    return outcome, value


# --------------------------------------------------------------------------- scripted workers

def script_worker(spec: dict, ops: list, barrier=None, decided=None, read=None) -> None:
    """Run ``ops`` (``[f, args]`` pairs) in order, after ``barrier`` releases every worker.

    ``decided``: a barrier armed at the negative controls' ``decided`` wait-point, so every
    worker of a race has decided before any of them writes (the widened window). ``read``: a
    barrier at each worker's first open of the trade log for reading, when it does not hold
    the lock then: every worker of a store that reads outside the lock (checks before it
    locks) then holds the same stale version, in any store, without a wait-point of its own.
    A worker that reads under the lock, or finishes without reaching a barrier, breaks it, so
    the others never wait in vain.
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
    reads = []
    if read is not None:
        def at_read() -> None:
            if reads:
                return
            reads.append(True)
            if spy.holding:
                read.abort()  # reads under the lock: nothing stale to race on
            else:
                history.record("waitpoint", name="read-outside-lock")
                _wait(read)
        spy.on_read.append(at_read)
    try:
        for n, (f, args) in enumerate(ops):
            run_op(store, history, f"{spec['worker']}-{n}", f, args)
    finally:
        if decided is not None and not waitpoints.hits("decided"):
            decided.abort()
        if read is not None and not reads:
            read.abort()


def _wait(barrier) -> None:
    try:
        barrier.wait(WAIT)
    except threading.BrokenBarrierError:
        pass  # a peer finished without reaching the barrier: carry on


def toctou_worker(spec: dict, op: list, role: str, at_commit, ready: list, rivals: list[int] = ()) -> None:
    """The deterministic TOCTOU race, with no hook in the store.

    The ``holder`` runs ``op``; when it is about to replace the trade log (its checks passed,
    the lock held) it sets ``at_commit`` and waits until every contender is committed to its
    call. A ``contender`` starts its ``op`` only after ``at_commit``. Contender ``i`` (pid
    ``rivals[i]``) counts as committed once it is seen blocked in a lock call on a file the
    holder holds locked (``/proc/locks``: a blocking ``flock`` or ``lockf`` waits in the kernel, where no wrapper
    sees it), once it found the lock taken (``LOCK_NB``, or a store's ``contended()``), once it
    reached its own commit (a store without a lock), or once its call returned. The holder
    records how it saw each rival (event ``rivals``), so the scenario can tell a race that
    happened from one that timed out.
    """
    store, history, spy = _setup(spec)
    f, args = op
    if role == "holder":
        def hold(_sha: str) -> None:
            if at_commit.is_set():
                return
            at_commit.set()
            history.record("waitpoint", name="holder-at-commit")
            seen = _await_rivals(spy, ready, list(rivals))
            history.record("rivals", seen=seen)
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


def _await_rivals(spy, ready: list, pids: list[int]) -> dict[str, str]:
    """Wait (at most :data:`WAIT`) until each rival signalled or is blocked on a file the
    holder has locked (``spy.locked_files``: the store's own lock file, whatever it is).

    Returns pid -> ``"blocked"`` (seen waiting in the kernel), ``"signalled"`` (its event) or
    ``"missing"`` (neither before the deadline).
    """
    import time

    from tradestore_harness import proclocks

    seen: dict[str, str] = {}
    deadline = time.monotonic() + WAIT
    while True:
        waiting, anonymous = proclocks.waiting_for(spy.locked_files) or (set(), 0)
        for event, pid in zip(ready, pids):
            if str(pid) not in seen:
                if pid in waiting:
                    seen[str(pid)] = "blocked"
                elif event.is_set():
                    seen[str(pid)] = "signalled"
        unseen = [pid for pid in pids if str(pid) not in seen]
        if unseen and anonymous >= len(unseen):
            # Waiters without a pid (open file description locks) on the holder's lock: only
            # the rivals can be waiting there, and there are as many as rivals unaccounted for.
            seen.update((str(pid), "blocked") for pid in unseen)
        pending = [event for event, pid in zip(ready, pids) if str(pid) not in seen]
        if not pending or time.monotonic() >= deadline:
            break
        pending[0].wait(0.002)  # re-read /proc/locks every 2 ms, or sooner when a rival signals
    for pid in pids:
        seen.setdefault(str(pid), "missing")
    return seen


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
    _arm_suicide(spec, history)
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
        if started is not None and not started.is_set():
            started.set()  # set up and at work (before the call: the call may kill the process)
        outcome, value = run_op(store, history, op_id, f, args)
        if outcome == "ok" and isinstance(value, dict) and "id" in value:
            if value.get("status") == "CLOSED":
                mine.pop(value["id"], None)
            else:
                mine[value["id"]] = value
        elif outcome == "fail" and f != "open":
            refresh()


def lifecycle_writer(spec: dict, life: int, stop, max_ops: int = 10_000, started=None) -> None:
    """A writer whose every operation is valid under the store's rules, for as long as it runs.

    Follows :func:`tradestore_harness.generator.lifecycle_ops`: it opens the next of its own
    symbols (``spec["symbols"]``), moves the stop of, partially closes and closes that one
    trade, alternating wins and losses per symbol. After a restart it finds its open trade and
    each symbol's last result again in the log. ``stop`` and ``started`` are
    :class:`tradestore_harness.flags.FileFlag` objects (a kill cannot leave them locked).
    ``spec["suicide_at"]`` as in :func:`writer_loop`.
    """
    store, history, spy = _setup(spec)
    worker = spec["worker"]
    _arm_suicide(spec, history)
    if spec.get("die_in_lock"):
        _arm_critical_death(spy, history, *spec["die_in_lock"])
    symbols = list(spec["symbols"])
    trade: dict | None = None
    last_win: dict[str, bool] = {}
    outcome, trades = call(store, "read", [])
    for t in trades if outcome == "ok" else []:
        if str(t.get("notes", "")).startswith(worker + "-"):
            if t.get("status") == "OPEN":
                trade = t
            elif t.get("pnl_usd") is not None:
                net = float(t["pnl_usd"]) + sum(float(p.get("pnl_usd") or 0) for p in t.get("partial_exits") or [])
                last_win[str(t["symbol"])] = net > 0
    turn = generator.rng(spec["seed"], "rotation", worker, life).randrange(len(symbols))
    for intent in generator.lifecycle_ops(spec["seed"], worker, life):
        if stop.is_set() or intent["n"] >= max_ops:
            break
        f = intent["f"]
        if (f == "open") != (trade is None):
            continue  # an open while one is open, or a change with none open: not this step
        op_id = f"{worker}-L{life}-{intent['n']}"
        if f == "open":
            symbol = symbols[turn % len(symbols)]
            turn += 1
            args = [symbol, *intent["args"][1:8], op_id]
        else:
            entry, long = float(trade["entry_price"]), trade["direction"] == "LONG"
            win = not last_win.get(str(trade["symbol"]), False)  # a loss only right after a win
            sign = (1 if long else -1) * (1 if win else -1)
            price = round(entry * (1 + sign * intent["move"]), 2)
            if f == "close":
                args = [trade["id"], price, "chaos close"]
            elif f == "partial":
                args = [trade["id"], intent["pct"], price, "chaos partial"]
            else:
                moved = float(trade["stop_price"]) * (1 + intent["stop_move"])
                stop_price = round(min(moved, entry * 0.995) if long else max(moved, entry * 1.005), 2)
                args = [trade["id"], {"stop_price": stop_price}]
        if started is not None and not started.is_set():
            started.set()  # set up and at work (before the call: the call may kill the process)
        outcome, value = run_op(store, history, op_id, f, args, valid=True)
        if outcome == "ok" and isinstance(value, dict) and "id" in value:
            if f == "close":
                last_win[str(trade["symbol"])] = win
                trade = None
            else:
                trade = value
        elif outcome == "fail":
            return  # a valid operation was refused: the finding is recorded; stop here


CRITICAL_POINTS = ("lock", "commit", "unlock")


def _arm_critical_death(spy, history: HistoryWriter, nth: int, point: str) -> None:
    """SIGKILL this process inside its ``nth`` critical section, at ``point``: right after it
    took the lock, right before it replaces the log (or COMMITs), or right after the commit
    while it still holds the lock. Any store's write can be cut there, whatever the timing of
    the nemesis: this is where a store loses or tears what it was writing."""
    holds = [0]

    def count() -> None:
        holds[0] += 1
        if point == "lock":
            die()

    def die(*_: Any) -> None:
        if holds[0] == nth:
            history.record("kill", target_pid=os.getpid(), why=f"in critical section {nth}, at {point}")
            os.kill(os.getpid(), signal.SIGKILL)

    spy.on_lock.append(count)
    if point == "commit":
        spy.on_commit.append(die)
    elif point == "unlock":
        spy.on_unlock.append(die)


def _arm_suicide(spec: dict, history: HistoryWriter) -> None:
    """With ``spec["suicide_at"] = k``, SIGKILL this process at its k-th ``mid-write``
    wait-point (only the controls that write in place have one)."""
    if spec.get("suicide_at"):
        def die(n: int) -> None:
            if n == spec["suicide_at"]:
                history.record("kill", target_pid=os.getpid(), why="mid-write wait-point")
                os.kill(os.getpid(), signal.SIGKILL)
        waitpoints.arm("mid-write", die)


# --------------------------------------------------------------------------- reconciler

def reconciler_loop(spec: dict, stop, clock_iso: str, snapshot_dir: str, max_cycles: int = 10_000,
                    started=None) -> None:
    """The reconciler role: reconcile until ``stop``; after each cycle keep what it wrote.

    ``started`` (a flag) is set once the first cycle is done, so a scenario can start its clock
    when the reconciler is really reconciling.

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
        if started is not None and n == 1:
            started.set()
