"""race-correlation: processes open correlated symbols at once; the group's risk budget admits
exactly two of them."""

from __future__ import annotations


from tradestore_chaos.scenarios._race import run_race
from tradestore_harness.context import ScenarioContext
from tradestore_harness.result import ScenarioResult

NAME = "race-correlation"
DESCRIPTION = "processes released together exceed a correlation group's risk budget; exactly two succeed"

GROUP = ("BTC", "ETH", "SOL", "AVAX", "DOT", "ATOM")


def run(ctx: ScenarioContext) -> ScenarioResult:
    result = ScenarioResult(NAME, ctx.target, ctx.seed)
    r = ctx.rng(NAME)
    racers = max(3, ctx.writers + 1)
    # Budget: 4% of 5000 = 200 USD of initial risk; each trade risks 90, so two fit and three do not.
    limits = {"max_positions": 7, "starting_capital": 5000, "max_corr_group_risk_pct": 4.0,
              "correlation_groups": {"L1": list(GROUP)}}
    for n in range(1 if ctx.quick else 2):
        symbols = r.sample(GROUP, racers)
        ctx.progress(f"round {n + 1}: {racers} processes open {', '.join(symbols)} against a budget for two")
        contenders = []
        for i, s in enumerate(symbols):
            entry = 100.0
            args = [s, "LONG", entry, entry - 9.0, entry + 20.0, 10.0, "chaos", "B", f"racer{i}-0"]
            contenders.append([["open", args]])
        run_race(ctx, result, limits=limits, setup_ops=[], contenders=contenders, allowed=2,
                 prop="correlation-limit", label=f"round{n + 1}")
    return result
