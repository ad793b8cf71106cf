"""Histories: what every worker process invoked, what came back, and when it held the lock.

Each worker process appends JSON lines to its own file ``<dir>/<worker>.<pid>.history.jsonl``
(line-buffered, so a line is in the kernel the moment it is written and survives a SIGKILL of
the writer; a line torn by the kill is skipped when reading). Timestamps are
``time.monotonic()``, which on Linux and macOS is one clock for every process of the machine,
so events of different processes can be ordered.

Event kinds (key ``ev``):

- ``invoke`` ``{op, w, f, args, valid?}``: an operation is about to be called (``valid``: the
  store's rules allow it, so it must succeed).
- ``ok`` / ``fail`` ``{op, value | error}``: it returned / raised or was rejected. ``ok`` is
  written only after the call returned, so ``ok`` means acknowledged.
- ``lock`` / ``unlock``: the process acquired / released the exclusive lock on the lock file.
- ``commit`` ``{sha}``: the process replaced the trade log with the version stored as ``sha``.
- ``kill`` ``{pid, why}``: the nemesis killed a process. ``start``: a worker process began.
- ``contended``, ``sentinel-collision``, ``snapshot``: scenario-specific observations.

An ``invoke`` with no outcome is *unknown*: the process died during the call, so its effect may
or may not be in the log. Checkers never ignore unknown operations.
"""

from __future__ import annotations

import json
import os
import pathlib
import time
from dataclasses import dataclass, field
from typing import Any, Iterable

SUFFIX = ".history.jsonl"


def now() -> float:
    """The history clock: monotonic and shared by all processes of the machine."""
    return time.monotonic()


class HistoryWriter:
    """Appends events of one process to its own history file."""

    def __init__(self, directory: str | os.PathLike[str], worker: str) -> None:
        self.worker = worker
        self.pid = os.getpid()
        path = pathlib.Path(directory) / f"{worker}.{self.pid}{SUFFIX}"
        path.parent.mkdir(parents=True, exist_ok=True)
        # Line buffering: each event reaches the kernel as one write() when its line ends.
        self._file = open(path, "a", buffering=1, encoding="utf-8")
        self.path = path

    def record(self, ev: str, **data: Any) -> dict:
        event = {"ev": ev, "w": self.worker, "pid": self.pid, "t": now(), **data}
        self._file.write(json.dumps(event, default=repr) + "\n")
        return event

    def close(self) -> None:
        self._file.close()


def read_events(directory: str | os.PathLike[str]) -> list[dict]:
    """Every event of every history file under ``directory``, ordered by time."""
    events: list[dict] = []
    for path in sorted(pathlib.Path(directory).rglob("*" + SUFFIX)):
        with open(path, encoding="utf-8", errors="replace") as handle:
            for line in handle:
                try:
                    event = json.loads(line)
                except ValueError:
                    continue  # the last line of a killed process may be torn
                if isinstance(event, dict) and "ev" in event:
                    events.append(event)
    events.sort(key=lambda e: e.get("t", 0.0))
    return events


@dataclass
class Op:
    """One operation: its invocation and its outcome (``ok``, ``fail`` or ``unknown``)."""

    id: str
    worker: str
    pid: int
    f: str
    args: list
    invoke_t: float
    outcome: str = "unknown"
    end_t: float | None = None
    value: Any = None
    error: str | None = None
    valid: bool = False  # the rules allow it: it must succeed (``valid-ops-succeed``)

    @property
    def ok(self) -> bool:
        return self.outcome == "ok"


@dataclass
class Interval:
    """A time interval a process held the lock; ``end`` is None if it died holding it."""

    pid: int
    worker: str
    start: float
    end: float | None = None
    extra: dict = field(default_factory=dict)


def operations(events: Iterable[dict]) -> list[Op]:
    """Pair every invoke with its outcome; an invoke with no outcome stays ``unknown``."""
    ops: dict[str, Op] = {}
    for e in events:
        kind = e.get("ev")
        if kind == "invoke":
            ops[e["op"]] = Op(e["op"], e["w"], e["pid"], e["f"], e.get("args", []), e["t"], valid=bool(e.get("valid")))
        elif kind in ("ok", "fail") and e.get("op") in ops:
            op = ops[e["op"]]
            op.outcome, op.end_t = kind, e["t"]
            op.value, op.error = e.get("value"), e.get("error")
    return sorted(ops.values(), key=lambda o: o.invoke_t)


def lock_intervals(events: Iterable[dict]) -> list[Interval]:
    """Lock-hold intervals per process, from ``lock``/``unlock`` events.

    A process that died holding the lock has an interval ending when its kill was recorded
    (just before the signal was sent), or open-ended (``end=None``) if no kill was recorded.
    """
    open_by_pid: dict[int, Interval] = {}
    done: list[Interval] = []
    killed: set[int] = set()
    ending: set[int] = set()  # pids whose database session the nemesis is ending
    for e in events:
        kind = e.get("ev")
        if kind == "lock" and e["pid"] in killed:
            # Taken between the kill's record and the signal's delivery: it ends at once.
            done.append(Interval(e["pid"], e["w"], e["t"], e["t"], {"killed": True}))
        elif kind == "lock" and e["pid"] in ending:
            done.append(Interval(e["pid"], e["w"], e["t"], e["t"], {"session_ended": True}))
        elif kind == "lock":
            open_by_pid[e["pid"]] = Interval(e["pid"], e["w"], e["t"])
        elif kind == "unlock" and e["pid"] in open_by_pid:
            interval = open_by_pid.pop(e["pid"])
            interval.end = e["t"]
            done.append(interval)
        elif kind == "session-ending":
            # The nemesis is ending the process's database session: the server releases its
            # lock by the matching "session-ended", though the process lives on and notices
            # later. Its hold ends here; a hold it reports until then was granted to the dying
            # session, so it ends at once.
            ending.add(e.get("target_pid"))
            if e.get("target_pid") in open_by_pid:
                interval = open_by_pid.pop(e["target_pid"])
                interval.end = e["t"]
                interval.extra["session_ended"] = True
                done.append(interval)
        elif kind == "session-ended":
            ending.discard(e.get("target_pid"))
        elif kind == "kill":
            killed.add(e.get("target_pid"))
            if e.get("target_pid") not in open_by_pid:
                continue
            interval = open_by_pid.pop(e["target_pid"])
            interval.end = e["t"]
            interval.extra["killed"] = True
            done.append(interval)
    done.extend(open_by_pid.values())
    return sorted(done, key=lambda i: i.start)


def writes_cut_by_kills(events: Iterable[dict]) -> tuple[int, int]:
    """``(kills, cut)``: SIGKILLs recorded, and how many of them cut a write in progress.

    A kill cuts a write when its victim had invoked a write (anything but a read), had taken
    the lock since, and had not yet seen the result: the kill landed between the lock and the
    caller's acknowledgement, where a store can lose or tear what it was writing.
    """
    inflight: dict[int, float] = {}  # pid -> invoke time of its write with no outcome yet
    locked_since: dict[int, float] = {}  # pid -> time of its latest lock
    kills = cut = 0
    for e in sorted(events, key=lambda e: e.get("t", 0.0)):
        kind, pid = e.get("ev"), e.get("pid")
        if kind == "invoke" and e.get("f") not in ("read", "reconcile"):
            inflight[pid] = e["t"]
        elif kind in ("ok", "fail"):
            inflight.pop(pid, None)
        elif kind == "lock":
            locked_since[pid] = e["t"]
        elif kind == "kill":
            kills += 1
            victim = e.get("target_pid")
            if victim in inflight and locked_since.get(victim, float("-inf")) >= inflight[victim]:
                cut += 1
            inflight.pop(victim, None)
    return kills, cut


def count_outcomes(ops: Iterable[Op]) -> dict[str, int]:
    """Numbers for the verdict table: invoked, ok, rejected (fail) and unknown."""
    counts = {"invoked": 0, "ok": 0, "rejected": 0, "unknown": 0}
    for op in ops:
        counts["invoked"] += 1
        counts[{"ok": "ok", "fail": "rejected"}.get(op.outcome, "unknown")] += 1
    return counts
