"""race-duplicate: N processes open the same symbol at the same instant; exactly one may win."""

from __future__ import annotations


from tradestore_chaos.scenarios._race import run_race
from tradestore_harness.context import ScenarioContext
from tradestore_harness.generator import SYMBOLS, open_args
from tradestore_harness.result import ScenarioResult

NAME = "race-duplicate"
DESCRIPTION = "processes released together open one symbol; exactly one succeeds"


def run(ctx: ScenarioContext) -> ScenarioResult:
    result = ScenarioResult(NAME, ctx.target, ctx.seed)
    r = ctx.rng(NAME)
    racers = max(2, ctx.writers)
    for n in range(1 if ctx.quick else 2):
        symbol = r.choice(SYMBOLS)
        ctx.progress(f"round {n + 1}: {racers} processes open {symbol} at once")
        contenders = [[["open", open_args(r, symbol, f"racer{i}-0")]] for i in range(racers)]
        run_race(ctx, result, limits={"max_positions": 7}, setup_ops=[], contenders=contenders,
                 allowed=1, prop="duplicate-open-symbol", label=f"round{n + 1}")
    return result
