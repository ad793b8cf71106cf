"""race-cap: more processes than free slots open distinct symbols at once; exactly the free
slots may be filled."""

from __future__ import annotations


from tradestore_chaos.scenarios._race import run_race
from tradestore_harness.context import ScenarioContext
from tradestore_harness.generator import SYMBOLS, open_args
from tradestore_harness.result import ScenarioResult

NAME = "race-cap"
DESCRIPTION = "processes released together exceed the position cap; exactly the cap succeeds"


def run(ctx: ScenarioContext) -> ScenarioResult:
    result = ScenarioResult(NAME, ctx.target, ctx.seed)
    r = ctx.rng(NAME)
    racers = max(3, ctx.writers + 1)
    for n in range(1 if ctx.quick else 2):
        cap = r.randint(2, 3)
        held = r.randint(0, cap - 1)  # some slots already taken before the race
        symbols = r.sample(SYMBOLS, held + racers)
        setup = [["open", open_args(r, s, f"setup-{i}")] for i, s in enumerate(symbols[:held])]
        free = cap - held
        ctx.progress(f"round {n + 1}: cap {cap}, {held} open, {racers} processes race for {free} slots")
        contenders = [[["open", open_args(r, s, f"racer{i}-0")]] for i, s in enumerate(symbols[held:])]
        run_race(ctx, result, limits={"max_positions": cap}, setup_ops=setup, contenders=contenders,
                 allowed=min(free, racers), prop="position-cap", label=f"round{n + 1}")
    return result
