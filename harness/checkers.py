"""Checkers: pure functions from histories and final files to the properties that failed.

Each checker returns a list of ``(property, detail)`` pairs, empty when the property held.
Property names are short, stable and kebab-case; they appear in the verdict line:

- ``log-parses``: every version of the trade log that was ever observed or committed is
  strict JSON of the right shape;
- ``ack-durable``: every acknowledged (``ok``) operation's effect is in the final log;
- ``no-duplicate-trade``: no trade id appears twice and no single call created two trades;
- ``rejected-writes-nothing``: a call that failed left no trade behind;
- ``ids-unique-increasing``: ids are unique, increase in log order, ``next_id`` is beyond
  them, and an open acknowledged before another began got the smaller id;
- ``position-cap`` / ``duplicate-open-symbol``: no observed state held more OPEN trades than
  the cap, or two OPEN trades of one symbol;
- ``mutual-exclusion``: no two processes' lock-hold intervals overlap, no ``O_EXCL`` sentinel
  collided, and every commit of the log happened while its writer held the lock;
- ``valid-ops-succeed``: an operation the store's rules allow (marked ``valid`` by a writer
  that only makes such operations) was not refused;
- ``derived-consistent`` / ``derived-heals``: derived files equal a fresh rebuild of one
  committed version of the log.

They know nothing about processes or files beyond the data given, so a hand-made bad history
is enough to prove each one can fail (see ``tests/test_checkers.py``).
"""

from __future__ import annotations

import json
import re
from collections import Counter
from typing import Any, Iterable, Mapping

from tradestore_harness.history import Interval, Op

Finding = tuple[str, str]
_ID = re.compile(r"^T(\d+)$")


def _reject_constant(name: str) -> None:
    raise ValueError(f"{name} is not strict JSON")


def parse_log(data: bytes) -> tuple[dict | None, str | None]:
    """``(document, None)`` if ``data`` is a well-formed trade log, else ``(None, why)``."""
    if not data.strip():
        return None, "empty"
    try:
        doc = json.loads(data, parse_constant=_reject_constant)
    except (ValueError, UnicodeDecodeError) as exc:
        return None, f"not strict JSON ({exc})"
    if not isinstance(doc, dict) or not isinstance(doc.get("trades"), list):
        return None, "not an object with a 'trades' list"
    if not all(isinstance(t, dict) and isinstance(t.get("id"), str) for t in doc["trades"]):
        return None, "a trade is not a record with an id"
    return doc, None


def id_number(trade_id: Any) -> int | None:
    match = _ID.match(trade_id) if isinstance(trade_id, str) else None
    return int(match.group(1)) if match else None


def check_log_parses(versions: Mapping[str, bytes]) -> list[Finding]:
    """Every observed or committed version of the log (name -> bytes) parses."""
    found = []
    for name, data in versions.items():
        _, why = parse_log(data)
        if why:
            found.append(("log-parses", f"{name}: {why} ({len(data)} bytes)"))
    return found


def check_committed_states(events: Iterable[dict]) -> list[Finding]:
    """Every commit left the files holding a valid state (a journal-format log's checkpoint
    and journal, judged by the independent reader when the commit was made)."""
    return [("log-parses", f"{e.get('w')} (pid {e.get('pid')}) committed, and then the files held no valid "
                           f"state: {e['unreadable']}")
            for e in events if e.get("ev") == "commit" and e.get("unreadable")]


def _by_id(trades: list[dict]) -> dict[str, dict]:
    return {t["id"]: t for t in trades}


def _at(t: float | None, t0: float) -> str:
    """A time of the run as a person reads it: seconds since its first event."""
    return "?" if t is None else f"+{t - t0:.3f}s"


def check_acknowledged(ops: Iterable[Op], final_trades: list[dict], t0: float = 0.0) -> list[Finding]:
    """Every acknowledged open, close, partial close and last stop update is in the log.
    Findings give the time of the acknowledgement in seconds from ``t0`` (the run's start)."""
    found = []
    trades = _by_id(final_trades)
    ops = list(ops)
    partial_ok: Counter = Counter()
    last_update: dict[str, Op] = {}
    for op in ops:
        value = op.value if isinstance(op.value, dict) else {}
        if op.f == "update" and op.args:
            last_update[op.args[0]] = op  # ops are in invoke order
        if not op.ok:
            continue
        if op.f == "open":
            trade = trades.get(value.get("id"))
            if trade is None or trade.get("symbol") != value.get("symbol"):
                found.append(("ack-durable", f"open {op.id} acknowledged as {value.get('id')} "
                                             f"{value.get('symbol')} at {_at(op.end_t, t0)} but that trade is not in the final log"))
        elif op.f == "close":
            trade = trades.get(op.args[0])
            if trade is None or trade.get("status") != "CLOSED":
                found.append(("ack-durable", f"close {op.id} of {op.args[0]} acknowledged at {_at(op.end_t, t0)} but the trade is "
                                             f"{'missing' if trade is None else trade.get('status')} in the final log"))
        elif op.f == "partial":
            partial_ok[op.args[0]] += 1
    for trade_id, count in partial_ok.items():
        have = len((trades.get(trade_id) or {}).get("partial_exits") or [])
        if have < count:
            found.append(("ack-durable", f"{count} partial closes of {trade_id} acknowledged, {have} in the final log"))
    for trade_id, op in last_update.items():
        trade = trades.get(trade_id)
        wanted = op.args[1].get("stop_price") if len(op.args) > 1 and isinstance(op.args[1], dict) else None
        if op.ok and trade is not None and wanted is not None and trade.get("stop_price") != wanted:
            found.append(("ack-durable", f"update {op.id} set {trade_id} stop to {wanted} at {_at(op.end_t, t0)}, final log has "
                                         f"{trade.get('stop_price')}"))
    return found


def check_no_duplicates(ops: Iterable[Op], final_trades: list[dict]) -> list[Finding]:
    """No id twice; no call's token (its op id, in the notes) on two trades or on a failed call."""
    found = []
    for trade_id, n in Counter(t.get("id") for t in final_trades).items():
        if n > 1:
            found.append(("no-duplicate-trade", f"id {trade_id} appears {n} times"))
    tokens = Counter(t.get("notes") for t in final_trades if t.get("notes"))
    for op in ops:
        if op.f != "open":
            continue
        n = tokens.get(op.id, 0)
        if n > 1:
            found.append(("no-duplicate-trade", f"open {op.id} created {n} trades"))
        if n and op.outcome == "fail":
            found.append(("rejected-writes-nothing", f"open {op.id} failed ({op.error}) but its trade is in the log"))
    return found


def check_ids(ops: Iterable[Op], document: Mapping) -> list[Finding]:
    """Ids unique and increasing in log order, below ``next_id``, and in real-time order."""
    found = []
    numbers = [id_number(t.get("id")) for t in document.get("trades", [])]
    if None in numbers:
        found.append(("ids-unique-increasing", "a trade id is not of the form T<number>"))
        return found
    for a, b in zip(numbers, numbers[1:]):
        if b <= a:
            found.append(("ids-unique-increasing", f"T{b:03d} follows T{a:03d} in the log"))
    next_id = document.get("next_id")
    if numbers and isinstance(next_id, int) and next_id <= max(numbers):
        found.append(("ids-unique-increasing", f"next_id {next_id} is not beyond the highest id T{max(numbers):03d}"))
    opens = [op for op in ops if op.f == "open" and op.ok and isinstance(op.value, dict)
             and id_number(op.value.get("id")) is not None]
    # Sweep in invoke order, folding in every open acknowledged before it: a later call must
    # get an id above all of them.
    by_end = sorted((op for op in opens if op.end_t is not None), key=lambda o: o.end_t)
    best: Op | None = None
    k = 0
    for b in sorted(opens, key=lambda o: o.invoke_t):
        while k < len(by_end) and by_end[k].end_t < b.invoke_t:
            if best is None or id_number(by_end[k].value["id"]) > id_number(best.value["id"]):
                best = by_end[k]
            k += 1
        if best is not None and id_number(b.value["id"]) <= id_number(best.value["id"]):
            found.append(("ids-unique-increasing", f"{b.id} began after {best.id} was acknowledged "
                                                   f"but got {b.value['id']} <= {best.value['id']}"))
    return found


def check_valid_ops(ops: Iterable[Op]) -> list[Finding]:
    """Every operation marked valid (the rules allow it) succeeded or was cut off by a kill."""
    return [("valid-ops-succeed", f"{op.id}: {op.f}{tuple(op.args)} is valid under the rules but was refused: {op.error}")
            for op in ops if op.valid and op.outcome == "fail"]


def check_state(name: str, document: Mapping, max_positions: int | None) -> list[Finding]:
    """One observed state: at most ``max_positions`` OPEN trades and one OPEN trade per symbol."""
    found = []
    open_trades = [t for t in document.get("trades", []) if t.get("status") == "OPEN"]
    if max_positions is not None and len(open_trades) > max_positions:
        found.append(("position-cap", f"{name}: {len(open_trades)} OPEN trades, cap {max_positions}"))
    symbols = Counter(str(t.get("symbol", "")).strip().upper() for t in open_trades)
    for symbol, n in symbols.items():
        if n > 1:
            found.append(("duplicate-open-symbol", f"{name}: {n} OPEN trades of {symbol}"))
    return found


def check_states(versions: Mapping[str, bytes], max_positions: int | None) -> list[Finding]:
    """:func:`check_state` over every version that parses (the others fail log-parses)."""
    found = []
    for name, data in versions.items():
        doc, _ = parse_log(data)
        if doc is not None:
            found.extend(check_state(name, doc, max_positions))
    return found


def check_mutual_exclusion(intervals: list[Interval], events: Iterable[dict]) -> list[Finding]:
    """Lock-hold intervals of different processes never overlap; sentinels never collide;
    every commit of the log was made by a process holding the lock. Times are seconds from
    the first event."""
    events = list(events)
    t0 = min((e.get("t", 0.0) for e in events), default=min((i.start for i in intervals), default=0.0))
    horizon = max((e.get("t", 0.0) for e in events), default=0.0)
    found: list[Finding] = []
    # Sweep in start order, remembering the interval that reaches furthest: a long hold can
    # overlap several later ones, not only its neighbour.
    spans = sorted(intervals, key=lambda i: i.start)
    latest_end, latest = float("-inf"), None
    for i in spans:
        end = i.end if i.end is not None else horizon
        if latest is not None and i.start < latest_end and i.pid != latest.pid:
            detail = (f"{latest.worker} (pid {latest.pid}) held the lock until {_at(latest_end, t0)} while "
                      f"{i.worker} (pid {i.pid}) took it at {_at(i.start, t0)}")
            found.append(("mutual-exclusion", detail))
        if end > latest_end:
            latest_end, latest = end, i
    for e in events:
        if e.get("ev") == "sentinel-collision":
            found.append(("mutual-exclusion", f"{e['w']} (pid {e['pid']}) found the critical-section sentinel "
                                              f"already present at {_at(e['t'], t0)}"))
        elif e.get("ev") == "commit" and not e.get("locked"):
            found.append(("mutual-exclusion", f"{e['w']} (pid {e['pid']}) replaced the trade log without "
                                              f"holding the lock at {_at(e['t'], t0)} (version sha {str(e.get('sha'))[:12]}; "
                                              "no exclusive flock, lockf or fcntl lock on any file was held: a store "
                                              "that excludes writers another way declares chaos_observe)"))
    return found


def comparable(doc: Any) -> Any:
    """A derived document without its generation time (the one field allowed to differ)."""
    if not isinstance(doc, dict):
        return doc
    doc = dict(doc)
    doc.pop("last_updated", None)
    if isinstance(doc.get("_meta"), dict):
        doc["_meta"] = {k: v for k, v in doc["_meta"].items() if k != "generated_at"}
    return doc


def check_derived(name: str, files: Mapping[str, Any], rebuilds: Mapping[str, Mapping[str, Any]],
                  prop: str = "derived-consistent", names: Mapping[str, str] | None = None) -> list[Finding]:
    """A derived set equals the fresh rebuild of the log version it names.

    ``files``: file name -> parsed document (None if missing or unreadable). ``rebuilds``:
    log sha256 -> {file name -> fresh document} for every committed version. ``names``: sha ->
    how to call a version in a finding (its number, committer and time; default the sha).
    """
    metas = {n: (d.get("_meta") or {}).get("source", {}).get("sha256") if isinstance(d, dict) else None
             for n, d in files.items()}
    shas = set(metas.values())
    if None in shas or len(shas) != 1:
        return [(prop, f"{name}: derived files name different or no log versions: {metas}")]
    sha = shas.pop()
    fresh = rebuilds.get(sha)
    if fresh is None:
        return [(prop, f"{name}: built from log version {sha[:12]}, which was never committed")]
    called = (names or {}).get(sha, f"log version {sha[:12]}")
    found = []
    for file_name, doc in files.items():
        if comparable(doc) != comparable(fresh.get(file_name)):
            keys = sorted(k for k in set(comparable(doc) or {}) | set(comparable(fresh.get(file_name)) or {})
                          if (comparable(doc) or {}).get(k) != (comparable(fresh.get(file_name)) or {}).get(k)) \
                if isinstance(doc, dict) else []
            which = f" (keys {', '.join(keys[:5])})" if keys else ""
            found.append((prop, f"{name}: {file_name} differs from a fresh rebuild of {called}{which}"))
    return found
