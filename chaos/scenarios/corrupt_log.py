"""corrupt-log: a torn, emptied or garbled trade log is refused by every writer and left as it
is, reads do not pretend there are no trades, and the reconciler's guard aborts. Then damage
that still parses (three quarters of the trades gone; the last trade gone and next_id moved back
onto its id): the guard must abort on its threshold and on its memory of next_id.

An unreadable log is the moment a store can destroy history: one that takes it for an empty
log replaces every trade with its next one. Here each writer process tries to open, close,
partially close, update and read; every call must fail, the log's bytes must be unchanged, and
a reconcile must abort without touching the derived files.
"""

from __future__ import annotations


from tradestore_chaos.scenarios._race import prepare
from tradestore_harness.hooks import TRADE_LOG_FILE
from tradestore_harness import checkers, evaluate, nemesis, workers
from tradestore_harness.context import ScenarioContext
from tradestore_harness.derived import FILES
from tradestore_harness.generator import SYMBOLS, open_args
from tradestore_harness.history import lock_intervals, operations, read_events
from tradestore_harness.result import ScenarioResult
from tradestore_harness.unsafe import state_dir_for

NAME = "corrupt-log"
DESCRIPTION = "a torn/emptied/garbled log is refused by every writer, left intact; the guard aborts"
REQUIRES = (TRADE_LOG_FILE,)  # works on the trade log file itself (see tradestore_harness.hooks)


def _snapshot(state: str) -> dict[str, bytes | None]:
    out = {}
    for name in (*FILES, "reconcile_guard.json"):
        try:
            with open(f"{state}/{name}", "rb") as handle:
                out[name] = handle.read()
        except OSError:
            out[name] = None
    return out


def _round(ctx: ScenarioContext, result: ScenarioResult, how: str, r) -> None:
    from tradestore import StateReconciler

    workdir = ctx.subdir(how)
    symbols = r.sample(SYMBOLS, 5)
    setup = [["open", open_args(r, s, f"setup-{i}")] for i, s in enumerate(symbols[:4])]
    setup.append(["close", ["T001", 100.0, "setup"]])
    prepare(ctx, workdir, {"max_positions": 7}, setup)  # also reconciles once: the guard remembers
    trade_log = workdir / "trades.json"
    state = state_dir_for(str(trade_log))
    nemesis.damage_file(str(trade_log), how, r)
    result.corruptions_injected += 1
    damaged = trade_log.read_bytes()
    derived_before = _snapshot(state)
    attempts = [
        ["open", open_args(r, symbols[4], "")], ["close", ["T002", 101.0, "chaos"]],
        ["partial", ["T003", 0.5, 101.0, "chaos"]], ["update", ["T004", {"notes": "chaos"}]], ["read", []],
    ]
    barrier = workers.context().Barrier(ctx.writers)
    procs = []
    for w in range(ctx.writers):
        ops = [[f, list(args[:8]) + [f"w{w}-{n}"] if f == "open" else args] for n, (f, args) in enumerate(attempts)]
        spec = workers.make_spec(ctx.target, str(workdir), f"w{w}", limits={"max_positions": 7})
        procs.append(workers.spawn(workers.script_worker, spec, ops, barrier))
    for proc in procs:
        proc.join(60)
    events = read_events(workdir / "history")
    ops = operations(events)
    evaluate.tally(result, ops)
    evaluate.add(result, checkers.check_mutual_exclusion(lock_intervals(events), events), f"{how}: ")
    for op in ops:
        if op.ok:
            shown = f"{len(op.value)} trades" if op.f == "read" and isinstance(op.value, list) else "accepted"
            result.violate("corrupt-log-refused", f"{how} log: {op.worker} {op.f} succeeded ({shown}) "
                                                  f"instead of refusing the unreadable log")
    now = trade_log.read_bytes() if trade_log.exists() else None
    if now != damaged:
        doc, _ = checkers.parse_log(now or b"")
        count = len(doc["trades"]) if doc else "?"
        result.violate("log-untouched", f"{how} log ({len(damaged)} bytes) was replaced by {len(now or b'')} bytes "
                                        f"holding {count} trades: the 4 trades before the damage are lost")
    outcome = StateReconciler(str(trade_log), state).reconcile()
    if not outcome.aborted:
        result.violate("guard-aborts", f"{how} log: the reconciler did not abort")
    if _snapshot(state) != derived_before:
        result.violate("guard-aborts", f"{how} log: derived files changed although the log is unreadable")


def _guard_round(ctx: ScenarioContext, result: ScenarioResult, how: str, r) -> None:
    """Damage that parses (trades lost, next_id moved back): writers cannot tell, the
    reconciler's guard must, from its threshold or its memory, and then write nothing."""
    from tradestore import StateReconciler

    workdir = ctx.subdir(how)
    symbols = r.sample(SYMBOLS, 4)
    prepare(ctx, workdir, {"max_positions": 7},  # reconciles once: the guard remembers 4 trades
            [["open", open_args(r, s, f"setup-{i}")] for i, s in enumerate(symbols)])
    trade_log = workdir / "trades.json"
    state = state_dir_for(str(trade_log))
    before = checkers.parse_log(trade_log.read_bytes())[0]
    nemesis.damage_file(str(trade_log), how, r)
    result.corruptions_injected += 1
    after = checkers.parse_log(trade_log.read_bytes())[0]
    derived_before = _snapshot(state)
    outcome = StateReconciler(str(trade_log), state).reconcile()
    change = (f"{how} log: {len(before['trades'])} trades and next_id {before['next_id']} became "
              f"{len(after['trades'])} trades and next_id {after['next_id']}")
    if not outcome.aborted:
        result.violate("guard-aborts", f"{change}, and the reconciler did not abort")
    elif _snapshot(state) != derived_before:
        result.violate("guard-aborts", f"{change}: the reconciler aborted but changed derived files")
    else:
        result.notes.append(f"{change}: the guard aborted ({outcome.reason})")


def run(ctx: ScenarioContext) -> ScenarioResult:
    result = ScenarioResult(NAME, ctx.target, ctx.seed)
    r = ctx.rng(NAME)
    for how in nemesis.LOG_DAMAGE if not ctx.quick else ("torn", "emptied"):
        ctx.progress(f"{how} log: {ctx.writers} writers try every operation")
        _round(ctx, result, how, r)
    for how in nemesis.LOG_DAMAGE_PARSEABLE:
        ctx.progress(f"{how} log: the reconciler's guard must abort")
        _guard_round(ctx, result, how, r)
    return result
