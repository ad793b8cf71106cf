"""log-replaced: another writer replaces the log at the two moments a cache or a reconciler trusts it.

Two faults of the file system's naming, neither of which a kill or an I/O error produces:

- **the same size within one timestamp tick.** A store does one write (and so holds a version
  of the log in memory); another writer, holding the lock, replaces the log with a different
  file of exactly the same size (one trade's stop moved to a number of the same length) and
  the same mtime, as on a file system whose timestamps are coarse, twice, so that on a file
  system that reuses inode numbers the new file can take the number of the version the store
  read; then the store does one more operation. A cache that knows the log by size and mtime
  (or by inode too, without holding its version open) takes the new file for the one it holds
  and writes from stale data: the other writer's acknowledged change is lost (``ack-durable``,
  judged by the same checker as the process scenarios' histories).
- **between two reads of one reconcile.** The reconcile runs once per ``open`` it makes (every
  read of a file starts with one), and the log is replaced by the next committed version (one
  more trade) right before that open. Whatever the reconciler read, the derived files it
  writes must equal the fresh rebuild of the log version they name (``derived-consistent``):
  a reconciler that hashes one read and derives from another names one version and holds the
  other.

Each replacement is counted in the ``crash pts`` column. The negative controls
``unsafe-cache-ignores-inode`` and ``unsafe-reconcile-two-reads`` fail here every time.

A journal-format log (a journal beside it) is its checkpoint and its journal, and a writer that
follows its protocol appends to the journal; so there the two moments are:

- **a writer that does not know the journal rewrites the checkpoint** (same size, same mtime,
  one stop moved), between two calls of a store. Combining that checkpoint with the journal
  would drop the journal's writes or apply them to a state they never followed: the store's
  next call must be refused, both files kept byte for byte, and a fresh store must refuse to
  read them too (``never-combined``);
- **another writer commits the next version right before an open of a reconcile**, whenever
  the lock is free at that moment (while the reconciler holds it no writer can commit): the
  derived files must equal the fresh rebuild of the version they name (``derived-consistent``).
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import shutil

from tradestore_harness import checkers, journal_reader
from tradestore_harness import fsworkload as fw
from tradestore_harness.context import ScenarioContext
from tradestore_harness.history import operations
from tradestore_harness.hooks import TRADE_LOG_FILE
from tradestore_harness.result import ScenarioResult

NAME = "log-replaced"
DESCRIPTION = "another writer replaces the log (same size and mtime; before each open of a reconcile): no ack lost"
REQUIRES = (TRADE_LOG_FILE,)  # works on the trade log file itself (see tradestore_harness.hooks)

SECOND_OPS = (("open", "XRP"), ("partial", "base"), ("close", "base"))
MOVED = "T002"  # the baseline's open LINK trade: its stop (19.0) moves down
# In a journal-format checkpoint: T001 is in every checkpoint (the first write makes one), T002
# may still be only in the journal, so there T001's stop (2900.0) moves.
MOVED_IN_CHECKPOINT = "T001"
_STOP_VALUE = re.compile(rb'"stop_price"\s*:\s*(-?[0-9]+(?:\.[0-9]+)?(?:[eE][-+]?[0-9]+)?)')


def _lowered(token: bytes) -> list[bytes]:
    """JSON numbers as long as ``token`` (padded with a space) and smaller than it, those above
    zero first: a non-zero digit made one smaller, the last first (``19.0`` -> ``18.0``,
    ``19.25`` -> ``19.24``; the last digits of a long float may round to the same value, so
    every one is offered), then its integer part less one (``1000000`` -> ``999999 ``)."""
    found = []
    mantissa_end = next((i for i, c in enumerate(token) if c in b"eE"), len(token))
    for i in range(mantissa_end - 1, -1, -1):
        if token[i:i + 1] in (b"", b".", b"-") or token[i] == 0x30:
            continue
        first_digit = i == (1 if token[:1] == b"-" else 0)
        if not (first_digit and token[i] == 0x31 and token[i + 1:i + 2].isdigit()):  # "19" -> "09": no number
            found.append(token[:i] + bytes([token[i] - 1]) + token[i + 1:])
    value = json.loads(token)
    if value >= 2:
        found.append(str(int(value) - 1).encode().ljust(len(token)))
    fits = [t for t in found if len(t) == len(token)]
    return sorted(fits, key=lambda t: json.loads(t) <= 0)


def moved_stop(data: bytes, trade_id: str) -> tuple[bytes, float] | None:
    """``data`` with trade ``trade_id``'s stop moved down to a number of the same length, and that
    stop; None if the log holds no such trade with a numeric stop.

    Found by parsing, not by the layout: each ``"stop_price": <number>`` in the bytes is tried,
    and the one whose change alters nothing but that trade's stop in the parsed document is
    taken, whatever the store's key order, nesting, spacing or number format."""
    doc, _ = checkers.parse_log(data)
    trade = next((t for t in doc["trades"] if t.get("id") == trade_id), None) if doc else None
    if trade is None or isinstance(trade.get("stop_price"), bool) or not isinstance(trade.get("stop_price"), (int, float)):
        return None
    for match in _STOP_VALUE.finditer(data):
        for token in _lowered(match.group(1)):
            candidate = data[:match.start(1)] + token + data[match.end(1):]
            changed, _ = checkers.parse_log(candidate)
            expected = json.loads(json.dumps(doc))
            stop = json.loads(token)
            next(t for t in expected["trades"] if t.get("id") == trade_id)["stop_price"] = stop
            if stop < trade["stop_price"] and changed == expected:
                return candidate, float(stop)
    return None


def run(ctx: ScenarioContext) -> ScenarioResult:
    result = ScenarioResult(NAME, ctx.target, ctx.seed)
    report = fw.in_worker(replaced_worker, (ctx.target, str(ctx.workdir), fw.uses_reconciler(ctx.target)),
                          ctx.progress)
    fw.fill_result(result, report, ("invoked", "ok", "rejected", "crash_points", "states_checked"),
                   proof="crash_points", unproven="the log was never replaced")
    return result


def replaced_worker(target: str, root: str, reconcile: bool, report) -> dict:
    """In a spawned worker: every same-size replacement, then every replacement during a reconcile."""
    factory = fw.resolve(target)
    findings = fw.Findings()
    out = {"invoked": 0, "ok": 0, "rejected": 0, "crash_points": 0, "states_checked": 0, "notes": []}
    for k, second in enumerate(SECOND_OPS):
        findings.extend(same_size_round(factory, os.path.join(root, f"same-size-{k}"), second, out))
    journal_format = os.path.lexists(journal_reader.journal_path(fw.paths(os.path.join(root, "same-size-0"))[0]))
    report("progress", f"same-size replacement before {len(SECOND_OPS)} second operations"
                       + (" (of the checkpoint of a journal-format log)" if journal_format else ""))
    if reconcile:
        findings.extend(reconcile_rounds(factory, os.path.join(root, "reconcile"), out, report))
    out["violations"] = findings.as_list()
    reused = out.pop("inode_reused", None)  # None: a journal-format log, whose checkpoint is rewritten once
    out["notes"].append(f"{out['crash_points']} replacements of the log by another writer"
                        + ("" if reused is None else f"; in {reused} of {len(SECOND_OPS)} same-size ones the new "
                                                     "file took the inode number of the version the store had read"))
    return out


# -- the same size within one timestamp tick ---------------------------------------------------


def replace_with(log: str, lock: str, data: bytes, *, keep_mtime: bool) -> None:
    """Replace ``log`` by ``data`` as another writer would: under the lock, temp file + rename;
    with ``keep_mtime`` the new file gets the old one's mtime (a coarse timestamp tick)."""
    old = os.stat(log)
    with open(lock, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            temp = f"{log}.other-writer.tmp"
            with open(temp, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            if keep_mtime:
                os.utime(temp, ns=(old.st_atime_ns, old.st_mtime_ns))
            os.replace(temp, log)
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _event(events: list, ev: str, op: str, **data) -> None:
    events.append({"ev": ev, "w": "log-replaced", "pid": 0, "t": float(len(events)), "op": op, **data})


def same_size_round(factory, directory: str, second: tuple, out: dict) -> list[tuple[str, str]]:
    """One store writes, another writer replaces the log with a same-size file, the store writes
    again. A journal-format log: :func:`foreign_checkpoint_round` instead."""
    fw.setup_baseline(factory, directory, with_reconcile=False)
    log, lock, _ = fw.paths(directory)
    if os.path.lexists(journal_reader.journal_path(log)):
        return foreign_checkpoint_round(factory, directory, second, out)
    where = f"same-size replacement before {second}"
    store = factory(log, lock)
    ids = fw.base_ids()
    events: list[dict] = []
    for k, op in enumerate((("update", "base"), None, second)):
        if op is None:  # the other writer's turn
            moved = moved_stop(open(log, "rb").read(), MOVED)
            if moved is None:
                return [("harness-error", f"{where}: the log has no {MOVED} with a numeric stop to move")]
            data, stop = moved
            _event(events, "invoke", "other", f="update", args=[MOVED, {"stop_price": stop}])
            known = os.stat(log)
            # Twice: the first replacement frees the inode of the version the store knows, and
            # on a file system that reuses inode numbers (ext4 does) the second file takes it,
            # so a cache that knows the log by device, inode, size and mtime meets a file it
            # cannot tell from its own, unless it holds its version open (which keeps the inode).
            replace_with(log, lock, data, keep_mtime=True)
            replace_with(log, lock, data, keep_mtime=True)
            out["inode_reused"] = out.get("inode_reused", 0) + (os.stat(log).st_ino == known.st_ino)
            _event(events, "ok", "other", value={"id": MOVED, "stop_price": stop})
            out["crash_points"] += 1
            continue
        args = [ids.get(op[1], op[1])] if op[0] != "open" else [op[1]]
        _event(events, "invoke", f"op{k}", f=op[0], args=args)
        outcome, value = fw.run_op(store, directory, op, ids)
        _event(events, outcome, f"op{k}", value=value if outcome == "ok" else None,
               error=None if outcome == "ok" else value)
        out["invoked"] += 1
        out["ok" if outcome == "ok" else "rejected"] += 1
    final = open(log, "rb").read()
    out["states_checked"] += 1
    found = [(p, f"{where}: {d}") for p, d in checkers.check_log_parses({"final log": final})]
    doc, _ = checkers.parse_log(final)
    if doc is not None:
        ops = operations(events)
        found += [(p, f"{where}: {d}") for p, d in checkers.check_acknowledged(ops, doc["trades"])]
    return found


def foreign_checkpoint_round(factory, directory: str, second: tuple, out: dict) -> list[tuple[str, str]]:
    """Journal format: one store writes, a writer that does not know the journal rewrites the
    checkpoint (same size and mtime), the store tries ``second``: refused, nothing changed, and
    a fresh store refuses the files too (``directory`` holds the baseline, unreconciled)."""
    log, lock, _ = fw.paths(directory)
    journal = journal_reader.journal_path(log)
    where = f"checkpoint rewritten by a writer that does not know the journal, before {second}"
    store = factory(log, lock)
    ids = fw.base_ids()
    _check(fw.run_op(store, directory, ("update", "base"), ids), "the first operation")
    checkpoint = open(log, "rb").read()
    moved = moved_stop(checkpoint, MOVED_IN_CHECKPOINT)
    if moved is None:
        return [("harness-error", f"{where}: the checkpoint has no {MOVED_IN_CHECKPOINT} with a numeric stop to move")]
    replace_with(log, lock, moved[0], keep_mtime=True)
    out["crash_points"] += 1
    files = (open(log, "rb").read(), open(journal, "rb").read())
    outcome, value = fw.run_op(store, directory, second, ids)
    out["invoked"] += 2
    out["ok"] += 1 + (outcome == "ok")
    out["rejected"] += outcome != "ok"
    out["states_checked"] += 1
    found = []
    if outcome == "ok":
        found.append(("never-combined", f"{where}: the store accepted it ({value.get('id') if isinstance(value, dict) else value})"))
    if (open(log, "rb").read(), open(journal, "rb").read()) != files:
        found.append(("never-combined", f"{where}: the checkpoint or the journal was changed ({outcome}: {value})"))
    try:
        trades = fw.load_state(factory, directory)
    except fw.LogUnreadable:
        pass  # refused, as it must be
    else:
        found.append(("never-combined", f"{where}: a fresh store read the two files as {len(trades)} trades"))
    return found


# -- between two reads of one reconcile ----------------------------------------------------------


def reconcile_rounds(factory, directory: str, out: dict, report) -> list[tuple[str, str]]:
    """Record one reconcile; rerun it once per open it made, the log replaced right before that open."""
    from tradestore_harness.derived import read_derived, rebuild
    from tradestore_harness.fsfaults import Fault, FsShim
    from tradestore_harness.powerloss import snapshot_dir, sync_dir

    base = os.path.join(directory, "base")
    fw.setup_baseline(factory, base, with_reconcile=True)
    log, lock, state = fw.paths(base)
    if os.path.lexists(journal_reader.journal_path(log)):
        return journal_reconcile_rounds(factory, directory, out, report)
    versions = {"baseline": open(log, "rb").read()}
    _check(fw.run_op(factory(log, lock), base, ("update", "base"), fw.base_ids()), "update before the reconcile")
    snapshot = snapshot_dir(base)
    versions["reconciled"] = open(log, "rb").read()
    # the version another writer commits meanwhile: one more trade
    scratch = os.path.join(directory, "next")
    sync_dir(*snapshot, scratch)
    _check(fw.run_op(factory(*fw.paths(scratch)[:2]), scratch, ("open", "LTC"), fw.base_ids()), "the next version")
    versions["next"] = open(fw.paths(scratch)[0], "rb").read()
    by_sha = {hashlib.sha256(data).hexdigest(): data for data in versions.values()}
    rebuilds = rebuild(by_sha, by_sha, fw.FIXED_NOW, os.path.join(directory, "rebuilds"))

    run_dir = os.path.join(directory, "run")
    sync_dir(*snapshot, run_dir, renew=True)
    with FsShim(run_dir, real_sync=False) as recording:
        fw.reconcile(run_dir)
    opens = [c.index for c in recording.calls if c.kind == "open"]
    report("progress", f"reconcile: {len(recording.calls)} calls, the log replaced before each of its {len(opens)} opens")
    found: list[tuple[str, str]] = []
    for index in opens:
        sync_dir(*snapshot, run_dir, renew=True)
        run_log, run_lock, run_state = fw.paths(run_dir)
        hook = Fault(index, "hook", hook=lambda _call: replace_with(run_log, run_lock, versions["next"],
                                                                     keep_mtime=False))
        with FsShim(run_dir, fault=hook, recording=False, real_sync=False) as shim:
            result = fw.reconcile(run_dir)
            hit = shim.count > index
        out["invoked"] += 1
        out["ok" if result.ok else "rejected"] += 1
        if not hit:
            continue
        out["crash_points"] += 1
        out["states_checked"] += 1
        where = f"log replaced before call {index} ({recording.calls[index].describe()}) of a reconcile"
        found += checkers.check_derived(where, read_derived(run_state), rebuilds)
    for d in ("next", "run", "rebuilds"):
        shutil.rmtree(os.path.join(directory, d), ignore_errors=True)
    return found


def journal_reconcile_rounds(factory, directory: str, out: dict, report) -> list[tuple[str, str]]:
    """Journal format: record one reconcile; rerun it once per open it made, another writer
    committing one more trade right before that open if the lock is free then (the baseline,
    reconciled, is in ``directory/base``)."""
    from tradestore_harness.derived import read_derived, rebuild
    from tradestore_harness.fsfaults import Fault, FsShim
    from tradestore_harness.powerloss import snapshot_dir, sync_dir

    base = os.path.join(directory, "base")
    log, lock, _ = fw.paths(base)
    _check(fw.run_op(factory(log, lock), base, ("update", "base"), fw.base_ids()), "update before the reconcile")
    snapshot = snapshot_dir(base)
    reconciled = journal_reader.read(log).data
    run_dir = os.path.join(directory, "run")
    run_log, run_lock, run_state = fw.paths(run_dir)
    sync_dir(*snapshot, run_dir, renew=True)
    with FsShim(run_dir, real_sync=False) as recording:
        fw.reconcile(run_dir)
    opens = [c.index for c in recording.calls if c.kind == "open"]
    report("progress", f"reconcile: {len(recording.calls)} calls, another writer commits before each of its "
                       f"{len(opens)} opens when the lock is free")
    found: list[tuple[str, str]] = []
    busy = 0
    for index in opens:
        sync_dir(*snapshot, run_dir, renew=True)
        committed: list[int] = []

        def other_writer(_call) -> None:
            if not _lock_free(run_lock):
                return  # the reconciler holds it: no writer that follows the protocol commits now
            pid = os.fork()  # another process: this one may be inside the lock's own bookkeeping
            if pid == 0:
                code = 3
                try:
                    outcome, _ = fw.run_op(factory(run_log, run_lock), run_dir, ("open", "LTC"), fw.base_ids())
                    code = 0 if outcome == "ok" else 2
                finally:
                    os._exit(code)
            committed.append(os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]))

        with FsShim(run_dir, fault=Fault(index, "hook", hook=other_writer), recording=False, real_sync=False):
            result = fw.reconcile(run_dir)
        out["invoked"] += 1
        out["ok" if result.ok else "rejected"] += 1
        if not committed:
            busy += 1
            continue
        if committed[0] != 0:
            raise RuntimeError(f"log-replaced: the other writer's open failed (exit code {committed[0]})")
        out["crash_points"] += 1
        out["states_checked"] += 1
        by_sha = {hashlib.sha256(data).hexdigest(): data for data in (reconciled, journal_reader.read(run_log).data)}
        rebuilds = rebuild(by_sha, by_sha, fw.FIXED_NOW, os.path.join(directory, "rebuilds"))
        where = f"another writer committed before call {index} ({recording.calls[index].describe()}) of a reconcile"
        found += checkers.check_derived(where, read_derived(run_state), rebuilds)
    out["notes"].append(f"{busy} opens of the reconcile came while it held the writers' lock (no commit possible)")
    for d in ("run", "rebuilds"):
        shutil.rmtree(os.path.join(directory, d), ignore_errors=True)
    return found


def _lock_free(lock: str) -> bool:
    """No process holds the writers' lock now (probed on a descriptor of this call's own)."""
    fd = os.open(lock, os.O_RDONLY | os.O_CLOEXEC)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    finally:
        os.close(fd)  # and with it the probe's lock
    return True


def _check(outcome: tuple, what: str) -> None:
    if outcome[0] != "ok":
        raise RuntimeError(f"log-replaced: {what} was rejected: {json.dumps(outcome[1], default=str)}")
