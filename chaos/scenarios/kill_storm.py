"""kill-storm: writers loop over open / partial close / stop update / close while the nemesis
SIGKILLs them at seeded random moments and restarts them.

After every kill the trade log must parse strictly (a kill can stop a writer anywhere, and the
kernel releases its lock). At the end every acknowledged operation must be in the log, nothing
duplicated, ids unique and increasing, and no committed state over the cap. A negative control
that writes in place announces its half-written moment with a wait-point; the first writer's
first life kills itself there, so a torn log is caught every time, not by luck.
"""

from __future__ import annotations

import time

from tradestore_harness.processes import wait

from tradestore_harness import evaluate, generator, nemesis, workers
from tradestore_harness.checkers import parse_log
from tradestore_harness.context import ScenarioContext
from tradestore_harness.history import HistoryWriter
from tradestore_harness.result import ScenarioResult

NAME = "kill-storm"
DESCRIPTION = "writers SIGKILLed at random moments and restarted; log always parses, acks never lost"


def kill_plan(ctx: ScenarioContext, duration: float) -> list[tuple[float, int]]:
    """``(delay, victim)`` pairs: seconds of work before each kill and which writer dies.

    Drawn up front from the seed alone, so the same seed gives the same plan however many of
    its slots fit into the duration on this machine.
    """
    r = ctx.rng(NAME)
    return [(round(r.uniform(0.05, 0.3), 4), r.randrange(ctx.writers)) for _ in range(int(duration / 0.05) + 1)]


def run(ctx: ScenarioContext) -> ScenarioResult:
    result = ScenarioResult(NAME, ctx.target, ctx.seed)
    workdir = ctx.workdir
    duration = ctx.duration or (3.0 if ctx.quick else 6.0)
    limits = {"max_positions": 5}
    deaths = ctx.rng(NAME + ":wait-point")
    plan = kill_plan(ctx, duration)
    mp = workers.context()
    stop = mp.Event()
    nemesis_history = HistoryWriter(workdir / "history", "nemesis")
    lives = [0] * ctx.writers
    working = [None] * ctx.writers
    trade_log = workdir / "trades.json"

    def start(w: int):
        # The first life of w0 dies at the 1st in-place half-write; later lives at a seeded one.
        suicide = 1 if (w == 0 and lives[w] == 0) else deaths.randint(1, 4)
        spec = workers.make_spec(ctx.target, str(workdir), f"w{w}", limits=limits, seed=ctx.seed,
                                 suicide_at=suicide)
        working[w] = mp.Event()
        return workers.spawn(workers.writer_loop, spec, lives[w], stop, 10_000, working[w])

    def after_kill(why: str) -> None:
        result.kills += 1
        data = trade_log.read_bytes() if trade_log.exists() else None
        if data is not None:
            _, broken = parse_log(data)
            if broken:
                result.violate("log-parses", f"after kill {result.kills} ({why}): the trade log is {broken}")

    procs = [start(w) for w in range(ctx.writers)]
    ctx.progress(f"{ctx.writers} writers for {duration:.0f}s, SIGKILL every 0.05-0.3s of work")
    for event in working:  # the storm's clock starts once every writer is at work
        event.wait(workers.WAIT)
    deadline = time.monotonic() + duration
    used = 0
    for delay, victim in plan:
        if time.monotonic() >= deadline:
            break
        used += 1
        # Kill a process that is working, not one still starting its interpreter.
        working[victim].wait(workers.WAIT)
        # Wake early if a worker died by itself (a control killed at its wait-point).
        wait([p.sentinel for p in procs], timeout=min(delay, max(0.0, deadline - time.monotonic())))
        for w, proc in enumerate(procs):
            if not proc.is_alive():
                after_kill(f"w{w} died by itself, exit code {proc.exitcode}")
                lives[w] += 1
                procs[w] = start(w)
        if time.monotonic() >= deadline:
            break
        nemesis.kill(procs[victim], nemesis_history)
        after_kill(f"SIGKILL of w{victim}")
        lives[victim] += 1
        procs[victim] = start(victim)
        if result.kills % 5 == 0:
            ctx.progress(f"{result.kills} kills, {duration - (deadline - time.monotonic()):.1f}s")
    stop.set()
    for proc in procs:
        proc.join(30)
        if proc.is_alive():
            nemesis.kill(proc, nemesis_history, why="did not stop")
    evaluate.standard(result, workdir, max_positions=limits["max_positions"], final_required=False)
    result.notes.append(f"schedule {generator.digest(plan)}: {used} of {len(plan)} kill slots used, lives {lives}")
    return result
