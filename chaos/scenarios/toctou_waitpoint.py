"""toctou-waitpoint: the time-of-check/time-of-use race, made deterministic, then fuzzed.

Process A (the holder) opens a trade; when it is about to replace the trade log (its checks
passed, the lock held) the harness stops it there until every other process B is committed to
its own call: B is blocked in a lock call on the lock file (seen in ``/proc/locks``, so a
blocking ``flock`` needs no ``LOCK_NB``), B found the lock taken, or (a store without a lock) B
reached its own commit. A round in which a B was never seen waiting is NOT PROVEN: the race
did not happen, whatever the outcome.
Then A commits and B continues. B's trade would break the rule given A's (same symbol, or the
last free slot), so B must be rejected. No hook in the store is needed: the pause is a wrapper
around ``os.replace`` in A's process.

The first rounds are the fixed race (one B); later rounds draw the rule, the number of Bs and
the symbols from the seed.
"""

from __future__ import annotations


from tradestore_chaos.scenarios._race import prepare
from tradestore_harness import evaluate, workers
from tradestore_harness.context import ScenarioContext
from tradestore_harness.generator import SYMBOLS, open_args
from tradestore_harness.history import read_events
from tradestore_harness.result import ScenarioResult

NAME = "toctou-waitpoint"
DESCRIPTION = "A holds the lock after its checks, B waits, A commits, B must be rejected; then fuzzed"


def _round(ctx: ScenarioContext, result: ScenarioResult, label: str, mode: str, contenders: int, r) -> str | None:
    workdir = ctx.subdir(label)
    if mode == "duplicate":
        symbol = r.choice(SYMBOLS)
        limits, setup = {"max_positions": 7}, []
        ops = [["open", open_args(r, symbol, f"{w}-0")] for w in ["holder"] + [f"b{i}" for i in range(contenders)]]
        prop = "duplicate-open-symbol"
    else:
        cap = r.randint(2, 3)
        symbols = r.sample(SYMBOLS, cap - 1 + 1 + contenders)
        limits = {"max_positions": cap}
        setup = [["open", open_args(r, s, f"setup-{i}")] for i, s in enumerate(symbols[:cap - 1])]
        names = ["holder"] + [f"b{i}" for i in range(contenders)]
        ops = [["open", open_args(r, s, f"{w}-0")] for w, s in zip(names, symbols[cap - 1:])]
        prop = "position-cap"
    prepare(ctx, workdir, limits, setup)
    mp = workers.context()
    at_commit = mp.Event()
    ready = [mp.Event() for _ in range(contenders)]
    procs = []
    for i in range(contenders):  # first, so the holder knows whose pids to look for in /proc/locks
        spec = workers.make_spec(ctx.target, str(workdir), f"b{i}", limits=limits)
        procs.append(workers.spawn(workers.toctou_worker, spec, ops[i + 1], "contender", at_commit, [ready[i]]))
    procs.append(workers.spawn(workers.toctou_worker,
                               workers.make_spec(ctx.target, str(workdir), "holder", limits=limits),
                               ops[0], "holder", at_commit, ready, [p.pid for p in procs]))
    for proc in procs:
        proc.join(60)
        if proc.is_alive():
            proc.kill()
            result.violate("liveness", f"{label}: a process did not finish within 60 s")
    found, _ = evaluate.standard(result, workdir, max_positions=limits["max_positions"], where=f"{label}: ")
    opens = [op for op in found if op.f == "open" and op.worker in {"holder"} | {f"b{i}" for i in range(contenders)}]
    winners = [op for op in opens if op.ok]
    holder_ok = any(op.ok for op in opens if op.worker == "holder")
    if len(winners) > 1:
        result.violate(prop, f"{label} ({mode}): {len(winners)} opens succeeded where one may: "
                             + ", ".join(f"{op.worker} got {op.value.get('id')} {op.value.get('symbol')}" for op in winners))
    elif not holder_ok:
        why = next((op.error for op in opens if op.worker == "holder"), "no outcome")
        result.violate("allowed-count", f"{label} ({mode}): the holder's open was refused: {why}")
    return _exercised(read_events(workdir / "history"), [p.pid for p in procs[:contenders]])


def _exercised(events: list[dict], rivals: list[int]) -> str | None:
    """None if the race happened (the holder stopped at its commit and saw every rival waiting
    for the lock or committing); else what was missing."""
    if not any(e.get("ev") == "waitpoint" for e in events):
        return "the holder never reached its commit (no replace of the trade log, no commit() call)"
    seen = next((e.get("seen", {}) for e in events if e.get("ev") == "rivals"), {})
    missing = []
    for pid in rivals:
        committed = any(e.get("ev") in ("contended", "commit") and e.get("pid") == pid for e in events)
        if not committed and seen.get(str(pid)) != "blocked":
            missing.append(pid)
    if missing:
        return (f"{len(missing)} of {len(rivals)} rivals were never seen waiting for the lock "
                "(not blocked in /proc/locks, no LOCK_NB refusal, no contended()) while the holder held it")
    return None


def run(ctx: ScenarioContext) -> ScenarioResult:
    result = ScenarioResult(NAME, ctx.target, ctx.seed)
    r = ctx.rng(NAME)
    plan = [("duplicate", 1), ("cap", 1)]
    for _ in range(1 if ctx.quick else 3):
        plan.append((r.choice(("duplicate", "cap")), r.randint(1, max(1, ctx.writers - 1))))
    exercised = 0
    for n, (mode, contenders) in enumerate(plan, 1):
        kind = "fixed" if n <= 2 else "fuzzed"
        ctx.progress(f"round {n}/{len(plan)} ({kind}): {mode}, holder + {contenders} waiting")
        missing = _round(ctx, result, f"round{n}", mode, contenders, r)
        if missing is None:
            exercised += 1
        else:
            result.not_proven(f"round{n} ({mode}): {missing}")
    result.notes.append(f"race exercised (every B seen waiting behind A's uncommitted check) in {exercised}/{len(plan)} rounds")
    return result
