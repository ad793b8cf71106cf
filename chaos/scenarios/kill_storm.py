"""kill-storm: writers open, move stops of, partially close and close trades while the
nemesis SIGKILLs them at seeded random moments and restarts them.

The writers stay productive under the store's own rules for as long as the storm runs
(:func:`tradestore_harness.generator.lifecycle_ops`: each writer rotates through its own
symbols, keeps at most one trade open, alternates wins and losses per symbol), so every
operation is valid and must succeed (``valid-ops-succeed``), and the kills land on writes.
After every kill the trade log must parse strictly (a kill can stop a writer anywhere, and the
kernel releases its lock). At the end every acknowledged operation must be in the log, nothing
duplicated, ids unique and increasing, and no committed state over the cap. A negative control
that writes in place announces its half-written moment with a wait-point; the first writer's
first life kills itself there, so a torn log is caught every time, not by luck. And half the
lives of every writer die inside a seeded critical section of their own (right after taking
the lock, right before replacing the log or COMMIT, or right after it, lock still held), so
kills cut writes of any store, whatever the timing of the nemesis.

A kill *cuts a write* when its victim had taken the lock for a write whose result it had not
yet seen (:func:`tradestore_harness.history.writes_cut_by_kills`, from the lock-hold records).
A storm whose kills cut fewer than :func:`cut_floor` writes is NOT PROVEN.

Workers are told to stop and report that they started through files
(:class:`tradestore_harness.flags.FileFlag`), never through shared multiprocessing locks: a
worker killed inside ``Event.is_set()`` would leave its lock taken and hang everyone else.
"""

from __future__ import annotations

import math
import time

from tradestore_harness.processes import wait

from tradestore_harness import evaluate, generator, hooks, nemesis, workers
from tradestore_harness.checkers import parse_log
from tradestore_harness.context import ScenarioContext
from tradestore_harness.flags import FileFlag
from tradestore_harness.history import HistoryWriter, read_events, writes_cut_by_kills
from tradestore_harness.result import ScenarioResult

NAME = "kill-storm"
DESCRIPTION = "writers SIGKILLed at random moments and restarted; log always parses, acks never lost"


def kill_plan(ctx: ScenarioContext, duration: float, segment: int = 0) -> list[tuple[float, int]]:
    """``(delay, victim)`` pairs: seconds of work before each kill and which writer dies.

    Drawn up front from the seed alone, so the same seed gives the same plan however many of
    its slots fit into the duration on this machine.
    """
    r = ctx.rng(NAME if segment == 0 else f"{NAME}:{segment}")
    return [(round(r.uniform(0.02, 0.2), 4), r.randrange(ctx.writers)) for _ in range(int(duration / 0.02) + 1)]


LONG = 120.0  # seconds: storms longer than this keep no committed versions and run in segments
SEGMENT = 120.0  # seconds of one segment of a long storm


def cut_floor(kills: int) -> int:
    """The fewest kills that must cut a write for the storm to count: one in ten, at least one."""
    return max(1, kills // 10)


def run(ctx: ScenarioContext) -> ScenarioResult:
    result = ScenarioResult(NAME, ctx.target, ctx.seed)
    duration = ctx.duration or (3.0 if ctx.quick else 6.0)
    if duration <= LONG:
        kills, cut, plan, used = _storm(ctx, result, ctx.workdir, duration, 0)
        schedule = f"schedule {generator.digest(plan)}: {used} of {len(plan)} kill slots used"
    else:
        # A long storm is a chain of segments, each on a fresh log: one log that grows for an
        # hour makes every write, restart and check slower, and the storm would stop storming.
        count = math.ceil(duration / SEGMENT)
        kills = cut = 0
        digests = []
        for k in range(count):
            ctx.progress(f"segment {k + 1}/{count}: {result.kills} kills so far, {result.ok} acknowledged")
            seg_kills, seg_cut, plan, _ = _storm(ctx, result, ctx.subdir(f"segment{k + 1}"), duration / count, k,
                                                 where=f"segment {k + 1}: ")
            kills, cut = kills + seg_kills, cut + seg_cut
            digests.append(generator.digest(plan))
        schedule = f"schedule {generator.digest(digests)}: {count} segments of {duration / count:.0f}s on fresh logs"
    result.writes_cut = cut
    share = f"{100 * cut / kills:.0f}%" if kills else "-"
    result.notes.append(f"{cut} of {kills} kills cut a write in progress ({share}); "
                        f"{result.ok} of {result.invoked} operations acknowledged")
    if cut < cut_floor(kills):
        result.not_proven(f"only {cut} of {kills} kills cut a write in progress (between taking the lock "
                          f"and the caller seeing the result); at least {cut_floor(kills)} needed")
    result.notes.append(schedule)
    return result


def _storm(ctx: ScenarioContext, result: ScenarioResult, workdir, duration: float, segment: int,
           where: str = "") -> tuple[int, int, list, int]:
    """One storm on the log in ``workdir``; adds its findings to ``result``.
    Returns (kills, kills that cut a write, the kill plan, plan slots used)."""
    limits = {"max_positions": max(5, ctx.writers)}  # one open trade per writer always fits
    deaths = ctx.rng(f"{NAME}:wait-point:{segment}")
    plan = kill_plan(ctx, duration, segment)
    # A long storm keeps no copy of every committed version (each is the whole log: that would
    # be quadratic on disk); the log after every kill and at the end is checked.
    long_storm = ctx.duration is not None and ctx.duration > LONG
    flags = workdir / "flags"
    flags.mkdir()
    stop = FileFlag(flags / "stop")
    nemesis_history = HistoryWriter(workdir / "history", "nemesis")
    lives = [0] * ctx.writers
    working: list[FileFlag] = [FileFlag(flags / "unused")] * ctx.writers
    paths = workers.make_spec(ctx.target, str(workdir), "nemesis")
    trade_log, lock_file = paths["trade_log"], paths["lock_file"]

    def start(w: int):
        # The first life of w0 dies at the 1st in-place half-write; later lives at a seeded one.
        suicide = 1 if (w == 0 and lives[w] == 0) else deaths.randint(1, 4)
        spec = workers.make_spec(ctx.target, str(workdir), f"w{w}", limits=limits, seed=ctx.seed,
                                 suicide_at=suicide, symbols=generator.own_symbols(w, ctx.writers))
        if long_storm:
            spec["versions_dir"] = None
        if deaths.random() < 0.5:  # half the lives also die inside a critical section of their own
            spec["die_in_lock"] = [deaths.randint(1, 6), deaths.choice(workers.CRITICAL_POINTS)]
        working[w] = FileFlag(flags / f"w{w}-L{lives[w]}.working")
        return workers.spawn(workers.lifecycle_writer, spec, lives[w], stop, 1_000_000, working[w],
                             method=ctx.start_method, preload=preload)

    def after_kill(why: str, killed: bool = True) -> None:
        result.kills += killed
        try:
            data = hooks.read_state(ctx.target, trade_log, lock_file)
        except hooks.StateUnreadable as exc:
            result.violate("log-parses", f"{where}after kill {result.kills} ({why}): the log holds no valid state: {exc}")
            return
        if data is not None:
            _, broken = parse_log(data)
            if broken:
                result.violate("log-parses", f"{where}after kill {result.kills} ({why}): the trade log is {broken}")

    preload = ("tradestore_harness.workers", "tradestore", ctx.target.partition(":")[0] if ":" in ctx.target else "tradestore_harness.unsafe")
    procs = [start(w) for w in range(ctx.writers)]
    ctx.progress(f"{ctx.writers} writers for {duration:.0f}s, SIGKILL every 0.02-0.2s of work")
    for w, flag in enumerate(working):  # the storm's clock starts once every writer is at work
        flag.wait(workers.WAIT, [procs[w]])
    deadline = time.monotonic() + duration
    used = 0
    for delay, victim in plan:
        if time.monotonic() >= deadline:
            break
        used += 1
        # Kill a process that is working, not one still starting its interpreter.
        working[victim].wait(workers.WAIT, [procs[victim]])
        # Wake early if a worker died by itself (a control killed at its wait-point).
        wait([p.sentinel for p in procs], timeout=min(delay, max(0.0, deadline - time.monotonic())))
        for w, proc in enumerate(procs):
            if not proc.is_alive():
                # A control killed at its wait-point; a writer that stopped (exit 0) after a
                # refused valid operation is restarted too, its refusal already recorded.
                after_kill(f"w{w} died by itself, exit code {proc.exitcode}", killed=proc.exitcode < 0)
                lives[w] += 1
                procs[w] = start(w)
        if time.monotonic() >= deadline:
            break
        nemesis.kill(procs[victim], nemesis_history)
        after_kill(f"SIGKILL of w{victim}")
        lives[victim] += 1
        procs[victim] = start(victim)
        if result.kills % (5 if duration < 60 else 250) == 0:
            ctx.progress(f"{result.kills} kills, {duration - (deadline - time.monotonic()):.1f}s")
    stop.set()
    for proc in procs:
        proc.join(30)
        if proc.is_alive():
            nemesis.kill(proc, nemesis_history, why="did not stop")
    evaluate.standard(result, workdir, max_positions=limits["max_positions"], final_required=False, where=where)
    kills, cut = writes_cut_by_kills(read_events(workdir / "history"))
    return kills, cut, plan, used
