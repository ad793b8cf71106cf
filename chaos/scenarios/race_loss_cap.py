"""race-loss-cap: the consecutive-loss cap, raced and then checked on both sides of the cap.

Round kinds, with a cap of two losses:

- ``race``: a symbol one loss away from its cap is closed at a loss while other processes try
  to open it; no open may succeed, before the close (the symbol is still open) or after it
  (the cap is reached);
- ``at-cap``: the symbol already took its capped losses and is closed; processes released
  together open it. Only the loss cap can refuse them (nothing of the symbol is open), so this
  is where a store without the rule is caught: no open may succeed;
- ``below-cap``: the same with one loss fewer: exactly one open must succeed (the others are
  duplicates), so a store that refuses a symbol too early is caught too (``allowed-count``).
"""

from __future__ import annotations


from tradestore_chaos.scenarios._race import run_race
from tradestore_harness.context import ScenarioContext
from tradestore_harness.generator import SYMBOLS
from tradestore_harness.result import ScenarioResult

NAME = "race-loss-cap"
DESCRIPTION = "opens race the loss that reaches a symbol's consecutive-loss cap, and meet it on both sides"

CAP = 2


def _losses(trade: list, count: int) -> list:
    """Setup operations: ``count`` opened-and-closed losing trades of ``trade``'s symbol."""
    setup = []
    for k in range(count):
        setup += [["open", trade + [f"setup-{k}"]], ["close", [f"T{k + 1:03d}", 96.0, "loss"]]]
    return setup


def run(ctx: ScenarioContext) -> ScenarioResult:
    result = ScenarioResult(NAME, ctx.target, ctx.seed)
    r = ctx.rng(NAME)
    racers = max(3, ctx.writers + 1)
    limits = {"max_positions": 7, "asset_consecutive_loss_cap": CAP}
    kinds = ["race", "at-cap", "below-cap"] + ([] if ctx.quick else ["race"])
    for n, kind in enumerate(kinds, 1):
        symbol = r.choice(SYMBOLS)
        trade = [symbol, "LONG", 100.0, 95.0, 110.0, 1.0, "chaos", "B"]
        label = f"round{n}"
        if kind == "race":
            setup = _losses(trade, CAP - 1) + [["open", trade + ["setup-last"]]]
            ctx.progress(f"{label} ({kind}): {symbol} takes loss {CAP} of {CAP} while {racers - 1} processes open it")
            contenders = [[["close", [f"T{CAP:03d}", 96.0, "loss"]]]]
            contenders += [[["open", trade + [f"racer{i}-0"]]] for i in range(1, racers)]
            allowed = 0
        else:
            losses = CAP if kind == "at-cap" else CAP - 1
            setup = _losses(trade, losses)
            allowed = 0 if kind == "at-cap" else 1
            ctx.progress(f"{label} ({kind}): {symbol} has {losses} of {CAP} losses, nothing open; "
                         f"{racers} processes open it, {allowed} may succeed")
            contenders = [[["open", trade + [f"racer{i}-0"]]] for i in range(racers)]
        run_race(ctx, result, limits=limits, setup_ops=setup, contenders=contenders, allowed=allowed,
                 prop="loss-cap", label=f"{label}-{kind}")
    return result
