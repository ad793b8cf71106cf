"""corrupt-log: a torn, emptied or garbled trade log is refused by every writer and left as it
is, reads do not pretend there are no trades, and the reconciler's guard aborts. Then damage
that still parses (three quarters of the trades gone; the last trade gone and next_id moved back
onto its id): the guard must abort on its threshold and on its memory of next_id.

An unreadable log is the moment a store can destroy history: one that takes it for an empty
log replaces every trade with its next one. Here each writer process tries to open, close,
partially close, update and read; every call must fail, the log's bytes must be unchanged, and
a reconcile must abort without touching the derived files.

A journal-format log (a journal beside it; its ``trades.json`` is the checkpoint, damaged as
above) is damaged in its journal too (:data:`tradestore_harness.nemesis.JOURNAL_DAMAGE`): a bit
flipped in a frame that has frames after it, or the journal deleted, must be refused in the
same way, both files kept byte for byte. A torn last frame, or a digit changed in the last
record (its checksum fails), is a write that was never acknowledged
(:data:`tradestore_harness.nemesis.JOURNAL_TAIL_DAMAGE`): it must be ignored, never a reason to
refuse the log (``torn-tail-ignored``): a fresh store reads exactly the state without it (for
the changed digit: without that last write, as promised), every writer works as on a healthy
log, the next writer cuts the torn bytes off before it appends, and every acknowledged write
is in the final state (the history checks, by the independent reader).
"""

from __future__ import annotations


import os

from tradestore.logfile import lock_path
from tradestore_chaos.scenarios._race import prepare
from tradestore_harness.hooks import TRADE_LOG_FILE
from tradestore_harness import checkers, evaluate, journal_reader, nemesis, workers
from tradestore_harness.context import ScenarioContext
from tradestore_harness.derived import FILES
from tradestore_harness.generator import SYMBOLS, open_args
from tradestore_harness.history import lock_intervals, operations, read_events
from tradestore_harness.result import ScenarioResult, ScenarioStopped
from tradestore_harness.targets import call, resolve_target
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


LIMITS = {"max_positions": 7}


def _files(trade_log) -> tuple[bytes | None, bytes | None]:
    """The bytes of the log and of its journal (None: missing)."""
    out = []
    for path in (trade_log, journal_reader.journal_path(str(trade_log))):
        try:
            with open(path, "rb") as handle:
                out.append(handle.read())
        except FileNotFoundError:
            out.append(None)
    return out[0], out[1]


def _setup(ctx: ScenarioContext, how: str, r):
    """A log of four trades, one closed, reconciled once (the guard remembers); with its
    journal holding at least two records if it is journal-format. Returns (directory, log,
    symbols: four used, one free)."""
    workdir = ctx.subdir(how)
    symbols = r.sample(SYMBOLS, 5)
    setup = [["open", open_args(r, s, f"setup-{i}")] for i, s in enumerate(symbols[:4])]
    setup.append(["close", ["T001", 100.0, "setup"]])
    trade_log = workdir / "trades.json"
    journal = journal_reader.journal_path(str(trade_log))
    grow = 0
    while True:  # a checkpoint may just have emptied the journal: more writes refill it
        prepare(ctx, workdir, LIMITS, setup)  # also reconciles once: the guard remembers
        if not os.path.exists(journal) or len(journal_reader.scan(_files(trade_log)[1]).frames) >= 3:
            return workdir, trade_log, symbols
        grow += 1
        if grow > 20:
            raise ScenarioStopped("harness-error", f"{how}: the journal never held two records")
        setup = [["update", ["T004", {"notes": f"setup-grow-{grow}"}]]]


def _attempts(r, symbol: str) -> list:
    return [
        ["open", open_args(r, symbol, "")], ["close", ["T002", 101.0, "chaos"]],
        ["partial", ["T003", 0.5, 101.0, "chaos"]], ["update", ["T004", {"notes": "chaos"}]], ["read", []],
    ]


def _writers_try(ctx: ScenarioContext, workdir, attempts: list) -> None:
    """Every writer process tries every attempt, released together by one barrier."""
    barrier = workers.context().Barrier(ctx.writers)
    procs = []
    for w in range(ctx.writers):
        ops = [[f, list(args[:8]) + [f"w{w}-{n}"] if f == "open" else args] for n, (f, args) in enumerate(attempts)]
        spec = workers.make_spec(ctx.target, str(workdir), f"w{w}", limits=LIMITS)
        procs.append(workers.spawn(workers.script_worker, spec, ops, barrier))
    for proc in procs:
        proc.join(60)


def _round(ctx: ScenarioContext, result: ScenarioResult, how: str, r) -> None:
    from tradestore import StateReconciler

    workdir, trade_log, symbols = _setup(ctx, how, r)
    state = state_dir_for(str(trade_log))
    if how in nemesis.JOURNAL_DAMAGE:
        nemesis.damage_journal(journal_reader.journal_path(str(trade_log)), how, r)
    else:
        nemesis.damage_file(str(trade_log), how, r)
    result.corruptions_injected += 1
    damaged = _files(trade_log)
    derived_before = _snapshot(state)
    _writers_try(ctx, workdir, _attempts(r, symbols[4]))
    events = read_events(workdir / "history")
    ops = operations(events)
    evaluate.tally(result, ops)
    evaluate.add(result, checkers.check_mutual_exclusion(lock_intervals(events), events), f"{how}: ")
    for op in ops:
        if op.ok:
            shown = f"{len(op.value)} trades" if op.f == "read" and isinstance(op.value, list) else "accepted"
            result.violate("corrupt-log-refused", f"{how} log: {op.worker} {op.f} succeeded ({shown}) "
                                                  f"instead of refusing the unreadable log")
    now = _files(trade_log)
    if now[0] != damaged[0]:
        doc, _ = checkers.parse_log(now[0] or b"")
        count = len(doc["trades"]) if doc else "?"
        result.violate("log-untouched", f"{how} log ({len(damaged[0] or b'')} bytes) was replaced by "
                                        f"{len(now[0] or b'')} bytes holding {count} trades: the 4 trades before "
                                        "the damage are lost")
    if now[1] != damaged[1]:
        result.violate("log-untouched", f"{how} log: its journal ({len(damaged[1] or b'')} bytes) became "
                                        f"{'missing' if now[1] is None else f'{len(now[1])} bytes'}")
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


def _tail_round(ctx: ScenarioContext, result: ScenarioResult, how: str, r) -> None:
    """A journal's torn or checksum-failing last frame: ignored, cut off, nothing else lost."""
    workdir, trade_log, symbols = _setup(ctx, how, r)
    checkpoint, journal = _files(trade_log)
    last = journal_reader.scan(journal).frames[-1]
    # what the files must read as: all of them, or (a changed digit) all but that last record
    keep = journal if how == "journal-torn-tail" else journal[:last.start]
    expected = journal_reader.state_of(checkpoint, keep).document["trades"]
    nemesis.damage_journal(journal_reader.journal_path(str(trade_log)), how, r)
    result.corruptions_injected += 1
    where = f"{how} ({'the first bytes of one more record' if how == 'journal-torn-tail' else 'its last record'})"
    outcome, value = call(resolve_target(ctx.target)(str(trade_log), lock_path(str(trade_log)), **LIMITS), "read", [])
    if outcome != "ok":
        result.violate("torn-tail-ignored", f"{where}: a fresh store refused the log: {value}")
    elif value != expected:
        ids = {t.get("id"): t for t in expected}
        wrong = [t.get("id") for t in value if ids.get(t.get("id")) != t] + [i for i in ids if i not in {t.get("id") for t in value}]
        result.violate("torn-tail-ignored", f"{where}: a fresh store read {len(value)} trades, not the {len(expected)} "
                                            f"the acknowledged records hold (differs in {', '.join(map(str, wrong))}): "
                                            "the unacknowledged frame was taken as a write")
    _writers_try(ctx, workdir, _attempts(r, symbols[4]))
    ops, _ = evaluate.standard(result, workdir, max_positions=LIMITS["max_positions"], where=f"{how}: ")
    for op in ops:
        if not op.ok and "CorruptTradeLog" in str(op.error):
            result.violate("torn-tail-ignored", f"{where}: {op.worker} {op.f} was refused: {op.error}")
    _, journal = _files(trade_log)
    if journal is not None and journal_reader.scan(journal).torn:
        result.violate("torn-tail-ignored", f"{where}: after the writers' calls the journal still ends in bytes "
                                            "that are no frame (the next writer must cut them off first)")


def run(ctx: ScenarioContext) -> ScenarioResult:
    result = ScenarioResult(NAME, ctx.target, ctx.seed)
    r = ctx.rng(NAME)
    journal_format = None
    for how in nemesis.LOG_DAMAGE if not ctx.quick else ("torn", "emptied"):
        ctx.progress(f"{how} log: {ctx.writers} writers try every operation")
        _round(ctx, result, how, r)
        if journal_format is None:
            journal_format = os.path.lexists(journal_reader.journal_path(str(ctx.workdir / how / "trades.json")))
    if journal_format:
        for how in nemesis.JOURNAL_DAMAGE:
            ctx.progress(f"{how}: {ctx.writers} writers try every operation")
            _round(ctx, result, how, r)
        for how in nemesis.JOURNAL_TAIL_DAMAGE:
            ctx.progress(f"{how}: ignored, then {ctx.writers} writers try every operation")
            _tail_round(ctx, result, how, r)
    for how in nemesis.LOG_DAMAGE_PARSEABLE:
        ctx.progress(f"{how} log: the reconciler's guard must abort")
        _guard_round(ctx, result, how, r)
    return result
