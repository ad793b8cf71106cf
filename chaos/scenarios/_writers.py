"""Background writers shared by the scenarios that need a live, changing trade log."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from tradestore_chaos.scenarios._race import prepare
from tradestore_harness import generator, workers
from tradestore_harness.context import ScenarioContext
from tradestore_harness.flags import FileFlag

LIMITS = {"max_positions": 5}


def fixed_clock(ctx: ScenarioContext) -> datetime:
    """A clock the reconcilers and the reference rebuilds share: tomorrow, to the second."""
    moment = datetime.now(timezone.utc).replace(microsecond=0) + timedelta(days=1)
    return moment


def flag(ctx: ScenarioContext, name: str) -> FileFlag:
    """A fresh :class:`FileFlag` under ``ctx.workdir/flags`` (a kill cannot leave it locked)."""
    directory = ctx.workdir / "flags"
    directory.mkdir(exist_ok=True)
    return FileFlag(directory / name)


def start_writers(ctx: ScenarioContext, stop: FileFlag, limits: dict = LIMITS, seed_trades: int = 2) -> list:
    """Seed the log with a few trades (so it exists), then start ``ctx.writers`` writer loops."""
    r = ctx.rng("seed-trades")
    symbols = r.sample(generator.SYMBOLS, seed_trades)
    prepare(ctx, ctx.workdir, limits, [["open", generator.open_args(r, s, f"setup-{i}")] for i, s in enumerate(symbols)])
    procs, started = [], []
    for w in range(ctx.writers):
        spec = workers.make_spec(ctx.target, str(ctx.workdir), f"w{w}", limits=limits, seed=ctx.seed)
        started.append(flag(ctx, f"w{w}.started"))
        procs.append(workers.spawn(workers.writer_loop, spec, 0, stop, 10_000, started[-1]))
    for proc, event in zip(procs, started):  # the faults must land while the writers are really writing
        event.wait(workers.WAIT, [proc])
    return procs


def stop_writers(procs: list, stop, result, timeout: float = 30.0, since: str = "") -> None:
    """Signal ``stop``; a writer still running ``timeout`` seconds later is killed and is a
    liveness violation (``since`` says from when the time counts, for the message)."""
    stop.set()
    for proc in procs:
        proc.join(timeout)
        if proc.is_alive():
            proc.kill()
            result.violate("liveness", f"a writer did not stop within {timeout:g} s{since}")
