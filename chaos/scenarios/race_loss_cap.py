"""race-loss-cap: a symbol one loss away from its consecutive-loss cap is closed at a loss
while other processes try to open it; no open may succeed, before or after the close."""

from __future__ import annotations


from tradestore_chaos.scenarios._race import run_race
from tradestore_harness.context import ScenarioContext
from tradestore_harness.generator import SYMBOLS
from tradestore_harness.result import ScenarioResult

NAME = "race-loss-cap"
DESCRIPTION = "opens race the loss that reaches a symbol's consecutive-loss cap; none succeeds"


def run(ctx: ScenarioContext) -> ScenarioResult:
    result = ScenarioResult(NAME, ctx.target, ctx.seed)
    r = ctx.rng(NAME)
    racers = max(3, ctx.writers + 1)
    cap = 2
    limits = {"max_positions": 7, "asset_consecutive_loss_cap": cap}
    for n in range(1 if ctx.quick else 2):
        symbol = r.choice(SYMBOLS)
        trade = [symbol, "LONG", 100.0, 95.0, 110.0, 1.0, "chaos", "B"]
        setup = []
        for k in range(cap - 1):  # cap - 1 losses: the symbol is still allowed
            setup += [["open", trade + [f"setup-{k}"]], ["close", [f"T{k + 1:03d}", 96.0, "loss"]]]
        setup.append(["open", trade + ["setup-last"]])
        last_id = f"T{cap:03d}"
        ctx.progress(f"round {n + 1}: {symbol} takes loss {cap} of {cap} (the cap) while {racers - 1} processes open it")
        contenders = [[["close", [last_id, 96.0, "loss"]]]]
        contenders += [[["open", trade + [f"racer{i}-0"]]] for i in range(1, racers)]
        run_race(ctx, result, limits=limits, setup_ops=setup, contenders=contenders, allowed=0,
                 prop="loss-cap", label=f"round{n + 1}")
    return result
