"""Evaluate a finished run: read its histories and files, run the checkers, fill the result.

The glue between a scenario's working directory (``history/``, ``versions/``, ``trades.json``)
and the pure checkers of :mod:`tradestore_harness.checkers`.
"""

from __future__ import annotations

import os
import pathlib
from typing import Iterable

from tradestore.logfile import lock_path
from tradestore_harness import checkers, hooks
from tradestore_harness.history import Op, count_outcomes, lock_intervals, operations, read_events
from tradestore_harness.result import ScenarioResult
from tradestore_harness.targets import DEFAULT


def read_versions(workdir: str | os.PathLike[str]) -> dict[str, bytes]:
    """Every version of the trade log the writers committed (sha -> bytes)."""
    directory = pathlib.Path(workdir) / "versions"
    if not directory.is_dir():
        return {}
    return {p.stem: p.read_bytes() for p in sorted(directory.glob("*.json"))}


def read_log(workdir: str | os.PathLike[str], target: str = DEFAULT) -> bytes | None:
    """The final state of ``target``'s store run in ``workdir`` (the trade log's bytes, or the
    export hook's document for a store that is not one file; see :mod:`tradestore_harness.hooks`)."""
    workdir = pathlib.Path(workdir)
    trade_log = str(workdir / "trades.json")
    return hooks.read_state(target, trade_log, lock_path(trade_log))


def version_names(events: Iterable[dict], versions: dict[str, bytes]) -> dict[str, str]:
    """sha -> a name a person can find: the version's number in commit order, its trade count
    and next_id, who committed it and when (seconds from the run's first event), and the sha.

    Versions never committed by a worker (the setup's, kept by the scenario) are named ``setup``.
    """
    events = list(events)
    t0 = min((e.get("t", 0.0) for e in events), default=0.0)
    first: dict[str, dict] = {}
    for e in events:
        if e.get("ev") == "commit" and e.get("sha") in versions:
            first.setdefault(e["sha"], e)
    names = {}
    order = sorted(versions, key=lambda sha: first[sha]["t"] if sha in first else float("-inf"))
    for n, sha in enumerate(order, 1):
        doc, _ = checkers.parse_log(versions[sha])
        shape = f"{len(doc['trades'])} trades, next_id {doc.get('next_id')}" if doc else f"{len(versions[sha])} bytes"
        e = first.get(sha)
        who = f"committed by {e['w']} (pid {e['pid']}) at +{e['t'] - t0:.3f}s" if e else "setup"
        names[sha] = f"log version {n} ({shape}; {who}; sha {sha[:12]})"
    return names


def tally(result: ScenarioResult, ops: Iterable[Op]) -> None:
    """Add the operation counts of ``ops`` to the verdict table's numbers."""
    counts = count_outcomes(ops)
    result.invoked += counts["invoked"]
    result.ok += counts["ok"]
    result.rejected += counts["rejected"]
    result.unknown += counts["unknown"]


def add(result: ScenarioResult, findings: Iterable[tuple[str, str]], where: str = "") -> None:
    for prop, detail in findings:
        result.violate(prop, f"{where}{detail}")


def standard(result: ScenarioResult, workdir: str | os.PathLike[str], *, max_positions: int | None = None,
             where: str = "", final_required: bool = True) -> tuple[list[Op], list[dict]]:
    """Run every history checker on one directory's run; count its operations.

    Checks: every committed version and the final log parse, states within the cap and
    without duplicate open symbols, acknowledged operations durable, nothing duplicated,
    ids unique and increasing, critical sections never overlapped. Returns (ops, events).
    """
    events = read_events(pathlib.Path(workdir) / "history")
    ops = operations(events)
    tally(result, ops)
    versions = read_versions(workdir)
    unreadable = None
    try:
        final = read_log(workdir, result.target)
    except hooks.StateUnreadable as exc:
        final, unreadable = None, str(exc)
        result.violate("log-parses", f"{where}the final log holds no valid state: {unreadable}")
    names = version_names(events, versions)
    observed = {names[sha]: data for sha, data in versions.items()}
    if final is not None:
        observed["final log"] = final
    add(result, checkers.check_log_parses(observed), where)
    add(result, checkers.check_committed_states(events), where)
    add(result, checkers.check_states(observed, max_positions), where)
    result.states_checked += len(observed)
    if final is not None:
        doc = checkers.parse_log(final)[0]
    else:  # no log: an empty account, if none is required; an unreadable one is reported above
        doc = {"trades": []} if not final_required and unreadable is None else None
    if doc is not None:
        t0 = min((e.get("t", 0.0) for e in events), default=0.0)
        add(result, checkers.check_acknowledged(ops, doc["trades"], t0), where)
        add(result, checkers.check_no_duplicates(ops, doc["trades"]), where)
        add(result, checkers.check_ids(ops, doc), where)
    elif final is None and unreadable is None and any(op.ok for op in ops):
        result.violate("ack-durable", f"{where}operations were acknowledged but the trade log is missing")
    add(result, checkers.check_valid_ops(ops), where)
    add(result, checkers.check_mutual_exclusion(lock_intervals(events), events), where)
    return ops, events
