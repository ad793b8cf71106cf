"""Run scenarios against one target, each in its own fresh directory, and collect results.

A campaign never stops at the first violation: every selected scenario runs, so the verdict
names every property that failed. A scenario that raises is reported as the violation
``harness-error`` (with the exception) rather than hiding the others. A scenario that cannot
observe the target (see :func:`tradestore_harness.hooks.not_applicable`) is not run and is
reported NOT APPLICABLE with the reason.

The campaign's verdict (:attr:`Campaign.status`): ``FAIL`` if any scenario failed, else
``NOT PROVEN`` if any scenario did not exercise its fault (or none was applicable), else
``PASS``.
"""

from __future__ import annotations

import logging
import os
import pathlib
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass, field
from typing import Callable

from tradestore_harness import hooks
from tradestore_harness.context import ScenarioContext
from tradestore_harness.history import lock_intervals, operations, read_events
from tradestore_harness.result import FAIL, NOT_APPLICABLE, NOT_PROVEN, PASS, ScenarioResult, ScenarioStopped


@dataclass
class Campaign:
    """What to run: scenario modules (name -> module), target, seed and size."""

    scenarios: dict
    target: str
    seed: int
    quick: bool = False
    duration: float | None = None
    writers: int = 3
    progress: Callable[[str], None] = print
    keep: pathlib.Path | None = None  # keep the working files here instead of a temp dir
    start_method: str = "spawn"
    results: list[ScenarioResult] = field(default_factory=list)
    timelines: dict[str, dict] = field(default_factory=dict)
    elapsed_s: float = 0.0

    def run(self) -> list[ScenarioResult]:
        # The reconciler logs heals and guard aborts; here they are expected and reported in
        # the verdict table instead of interleaving with the progress lines. Restored after,
        # since a campaign may run inside someone's test session.
        logger = logging.getLogger("tradestore")
        quiet, propagate = logging.NullHandler(), logger.propagate
        logger.addHandler(quiet)
        logger.propagate = False
        started = time.monotonic()
        try:
            if self.keep is not None:
                self.keep.mkdir(parents=True, exist_ok=True)
                self._run_all(self.keep)
            else:
                with tempfile.TemporaryDirectory(prefix="chaos-") as base:
                    self._run_all(pathlib.Path(base))
        finally:
            logger.removeHandler(quiet)
            logger.propagate = propagate
        self.elapsed_s = time.monotonic() - started
        return self.results

    def _run_all(self, base: pathlib.Path) -> None:
        campaign_start = time.monotonic()
        for index, (name, module) in enumerate(self.scenarios.items(), 1):
            workdir = base / f"{index:02d}-{name}"
            workdir.mkdir()
            prefix = f"[{index}/{len(self.scenarios)}] {name}"

            def progress(message: str, prefix=prefix) -> None:
                self.progress(f"{time.monotonic() - campaign_start:6.1f}s {prefix}: {message}")

            ctx = ScenarioContext(self.target, self.seed, self.quick, self.duration, self.writers,
                                  workdir, progress, self.start_method)
            started = time.monotonic()
            reason = hooks.not_applicable(module, self.target)
            if reason is not None:
                result = ScenarioResult(name, self.target, self.seed, not_applicable=reason)
                self.results.append(result)
                self.timelines[name] = timeline(workdir)
                progress(f"not applicable: {reason}")
                continue
            progress("start")
            try:
                result = module.run(ctx)
            except ScenarioStopped as exc:
                result = ScenarioResult(name, self.target, self.seed)
                result.violate(exc.prop, str(exc))
            except Exception as exc:  # one broken scenario must not hide the others' verdicts
                result = ScenarioResult(name, self.target, self.seed)
                detail = "".join(traceback.format_exception_only(type(exc), exc)).strip()
                result.violate("harness-error", f"{detail} (at {traceback.extract_tb(exc.__traceback__)[-1].filename})")
            result.elapsed_s = time.monotonic() - started  # the one clock for every scenario
            self.results.append(result)
            self.timelines[name] = timeline(workdir)
            if result.verdict == FAIL:
                verdict = "VIOLATED " + ", ".join(sorted({v.property for v in result.violations}))
            elif result.verdict == NOT_PROVEN:
                verdict = "NOT PROVEN: " + "; ".join(result.unproven)
            else:
                verdict = "ok"
            progress(f"done in {result.elapsed_s:.1f}s: {result.invoked} ops, {verdict}")

    @property
    def status(self) -> str:
        """``FAIL``, ``NOT PROVEN`` or ``PASS`` for the whole campaign (see the module doc)."""
        verdicts = [r.verdict for r in self.results]
        if FAIL in verdicts:
            return FAIL
        if NOT_PROVEN in verdicts or all(v == NOT_APPLICABLE for v in verdicts):
            return NOT_PROVEN
        return PASS

    @property
    def passed(self) -> bool:
        return self.status == PASS

    def unproven(self) -> list[ScenarioResult]:
        """The scenarios whose fault was not exercised."""
        return [r for r in self.results if r.verdict == NOT_PROVEN]

    def violated(self) -> list[str]:
        """The violated property names, each once, in first-seen order."""
        seen: dict[str, None] = {}
        for result in self.results:
            for violation in result.violations:
                seen.setdefault(violation.property, None)
        return list(seen)


def import_root(target: str) -> str | None:
    """Where a ``module:factory`` target was imported from, when that is not an installed
    location: ``.`` for the current directory, or the ``PYTHONPATH`` entry that holds it. None
    for installed modules (and registered names), which need nothing."""
    if ":" not in target:
        return None
    origin = getattr(sys.modules.get(target.partition(":")[0]), "__file__", None)
    if origin is None:
        return None
    origin, cwd = os.path.realpath(origin), os.path.realpath(os.getcwd())
    pythonpath = {os.path.realpath(p): p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p}
    for entry in sys.path:  # the first entry holding the module is the one it came from
        root = os.path.realpath(entry or cwd)
        if origin.startswith(root + os.sep):
            if root == cwd:
                return "."
            return pythonpath.get(root)
    return None


def reproduce_command(target: str, seed: int, scenarios: list[str], *, quick: bool = False,
                      writers: int = 3, duration: float | None = None) -> str:
    """The shell command that reruns these scenarios with this seed and size, including the
    ``PYTHONPATH`` a target outside any installed package needs."""
    from tradestore_harness.targets import DEFAULT

    root = import_root(target)
    parts = [f"PYTHONPATH={root}"] if root is not None else []
    parts.append("python -m chaos")
    if target != DEFAULT:
        parts.append(f"--target {target}")
    parts.append(f"--seed {seed}")
    parts += [f"--scenario {n}" for n in scenarios]
    if quick:
        parts.append("--quick")
    if writers != 3:
        parts.append(f"--writers {writers}")
    if duration is not None:
        parts.append(f"--duration {duration:g}")
    return " ".join(parts)


def timeline(workdir: pathlib.Path, max_ops: int = 4000) -> dict:
    """The report's timelines of one scenario: one group of lanes per round (each round has
    its own processes and history directory), ``{"rounds": [{"label", "lanes", "t1"}]}``."""
    directories = sorted({p.parent.parent for p in workdir.rglob("*.history.jsonl")})
    rounds = []
    for directory in directories:
        group = _lanes(read_events(directory / "history"), max_ops)
        if group["lanes"]:
            label = str(directory.relative_to(workdir)) if directory != workdir else ""
            rounds.append({"label": label, **group})
    return {"rounds": rounds}


def _lanes(events: list[dict], max_ops: int) -> dict:
    """Lanes of lock-hold intervals, operations and kills of one round's processes. An
    operation with no outcome (cut off by a kill) has no end: it is drawn as a mark."""
    if not events:
        return {"lanes": [], "t0": 0.0, "t1": 0.0}
    t0 = min(e["t"] for e in events)
    t1 = max(e["t"] for e in events)
    lanes: dict[int, dict] = {}
    names = {e["pid"]: e["w"] for e in events if e.get("ev") == "start"}

    def lane(pid: int, worker: str) -> dict:
        return lanes.setdefault(pid, {"pid": pid, "worker": names.get(pid, worker), "locks": [], "ops": [],
                                      "kills": [], "first": None})

    for interval in lock_intervals(events):
        end = interval.end if interval.end is not None else t1
        lane(interval.pid, interval.worker)["locks"].append([interval.start - t0, end - t0])
    for op in operations(events)[:max_ops]:
        end = op.end_t - t0 if op.end_t is not None else None
        lane(op.pid, op.worker)["ops"].append([op.invoke_t - t0, end, op.f, op.outcome])
    for e in events:
        if e.get("ev") == "kill":
            lane(e.get("target_pid"), f"pid {e.get('target_pid')}")["kills"].append(e["t"] - t0)
        elif e.get("ev") == "start" and e["pid"] in lanes:
            lanes[e["pid"]]["first"] = e["t"] - t0
    for ln in lanes.values():
        starts = [x[0] for x in ln["locks"] + ln["ops"]] + ln["kills"]
        ln["first"] = ln["first"] if ln["first"] is not None else min(starts, default=0.0)
    # One lane per process, grouped by worker name, lives of a worker in the order they began.
    ordered = sorted(lanes.values(), key=lambda ln: (ln["worker"], ln["first"]))
    return {"lanes": ordered, "t0": 0.0, "t1": t1 - t0}
