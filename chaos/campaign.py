"""Run scenarios against one target, each in its own fresh directory, and collect results.

A campaign never stops at the first violation: every selected scenario runs, so the verdict
names every property that failed. A scenario that raises is reported as the violation
``harness-error`` (with the exception) rather than hiding the others.
"""

from __future__ import annotations

import logging
import pathlib
import tempfile
import time
import traceback
from dataclasses import dataclass, field
from typing import Callable

from tradestore_harness.context import ScenarioContext
from tradestore_harness.history import lock_intervals, operations, read_events
from tradestore_harness.result import ScenarioResult


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
                                  workdir, progress)
            progress("start")
            started = time.monotonic()
            try:
                result = module.run(ctx)
            except Exception as exc:  # one broken scenario must not hide the others' verdicts
                result = ScenarioResult(name, self.target, self.seed)
                detail = "".join(traceback.format_exception_only(type(exc), exc)).strip()
                result.violate("harness-error", f"{detail} (at {traceback.extract_tb(exc.__traceback__)[-1].filename})")
            result.elapsed_s = time.monotonic() - started  # the one clock for every scenario
            self.results.append(result)
            self.timelines[name] = timeline(workdir)
            verdict = "ok" if result.passed else "VIOLATED " + ", ".join(sorted({v.property for v in result.violations}))
            progress(f"done in {result.elapsed_s:.1f}s: {result.invoked} ops, {verdict}")

    @property
    def passed(self) -> bool:
        return all(r.passed for r in self.results)

    def violated(self) -> list[str]:
        """The violated property names, each once, in first-seen order."""
        seen: dict[str, None] = {}
        for result in self.results:
            for violation in result.violations:
                seen.setdefault(violation.property, None)
        return list(seen)


def timeline(workdir: pathlib.Path, max_ops: int = 4000) -> dict:
    """Lanes of lock-hold intervals, operations and kills of one scenario, for the report."""
    events = read_events(workdir)
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
        end = op.end_t if op.end_t is not None else t1
        lane(op.pid, op.worker)["ops"].append([op.invoke_t - t0, end - t0, op.f, op.outcome])
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
