"""Invariants of a trade log. Pure functions over a Ledger; each returns readable violations.

The store refuses any write that would *add* a violation (existing ones, e.g. in a log
written by other code, are reported by ``verify`` but do not block unrelated writes). To keep
writes fast on long histories, a write checks only the trades it touched plus the cheap
ledger-wide rules; ``verify`` checks everything.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

from . import accounting
from .ledger import CLOSED, DIRECTIONS, OPEN, Ledger
from .errors import describe
from .values import id_number, symbol_key
from .values import is_finite_number as _finite

_SIZE_TOLERANCE = 1e-9
# Each partial exit rounds its size and the remaining size to 6 decimals (the seed's rule),
# which moves the sum of the parts by at most this much per exit.
_SIZE_ROUNDING = 10.0 ** -accounting.SIZE_DECIMALS
_EMPTY_WHILE_OPEN = ("exit_price", "exit_time", "pnl_usd", "net_pnl_usd")
_INF = math.inf
_NO_LIMIT = math.inf  # a next_id above every id: the record's own rules only


def trade_violations(trade: dict, next_id: int) -> list[str]:
    """Violations of one trade record on its own."""
    if _plainly_valid(trade, next_id):
        return []
    return _violations(trade, next_id)


def _plainly_valid(trade: dict, next_id: int) -> bool:
    """True only when :func:`_violations` finds nothing wrong with ``trade``; False decides nothing.

    It accepts the shape the store writes (every number an exact ``float``, partial exits a
    list of objects) with exact type checks in place of the general number conversions, so a whole-log scan
    (``verify``, every reconcile) costs a few comparisons per record. Each test below is one of
    ``_violations``' rules restricted to that shape; tests/test_integrity_fast.py holds the two
    to agreement on random and mutated records.
    """
    get = trade.get
    number = id_number(get("id"))
    if number is None or number >= next_id or get("direction") not in DIRECTIONS:
        return False
    size, stop = get("size"), get("stop_price")
    original = _original_size(trade)
    for value in (get("entry_price"), stop, get("target_price"), size, get("original_stop", stop), original):
        if type(value) is not float or not 0.0 < value < _INF:
            return False
    parts, closed = get("partial_exits"), 0
    if parts:
        if type(parts) is not list:
            return False
        for part in parts:
            if type(part) is not dict:
                return False
            for value in (part.get("exit_price"), part.get("size_closed"), part.get("pnl_usd")):
                if type(value) is not float or not -_INF < value < _INF:
                    return False
        closed = sum(part["size_closed"] for part in parts)
    elif parts is not None and type(parts) is not list:
        return False
    if _sizes_disagree(size, closed, original, len(parts) if parts else 0):
        return False
    status = get("status")
    if status == OPEN:
        return all(get(field) is None for field in _EMPTY_WHILE_OPEN)
    if status != CLOSED or not get("exit_time"):
        return False
    exit_price, pnl, pct, r = get("exit_price"), get("pnl_usd"), get("pnl_pct"), get("r_multiple")
    # pnl_pct and r_multiple may be null (undefined); a number must be finite, as the others
    for value in (exit_price, pnl, 0.0 if pct is None else pct, 0.0 if r is None else r):
        if type(value) is not float or not -_INF < value < _INF:
            return False
    if pnl * accounting.pnl_per_unit(trade, exit_price) < 0:
        return False
    net = get("net_pnl_usd")  # absent or null: not computed (see _pnl_violations)
    return net is None or net == accounting.net_pnl_usd(trade)


def _original_size(trade: dict) -> object:
    """The size to hold the exits to: the record's own ``original_size`` as stored (so that a
    wrong value is judged as it is), or, without one, the size at opening the exits define
    (:func:`accounting.original_size`), which they agree with by construction."""
    return trade["original_size"] if "original_size" in trade else accounting.original_size(trade)


def _sizes_disagree(size: float, closed: float, original: float, exits: int) -> bool:
    """The remaining size plus the ``exits`` partial exits' ``closed`` sizes is not the
    original size, give or take the rounding each exit does."""
    return abs(size + closed - original) > _SIZE_TOLERANCE * max(1.0, original) + _SIZE_ROUNDING * exits


def _violations(trade: dict, next_id: int) -> list[str]:
    tid = trade.get("id")
    problems = []
    number = id_number(tid)
    if number is None:
        return [f"trade id {tid!r} is not of the form T001"]
    if number >= next_id:
        problems.append(f"{tid}: id is not below next_id {next_id}")
    if trade.get("direction") not in DIRECTIONS:
        problems.append(f"{tid}: direction {trade.get('direction')!r} is not LONG or SHORT")
    for field in ("entry_price", "stop_price", "target_price", "size"):
        value = trade.get(field)
        if not _finite(value) or value <= 0:
            problems.append(f"{tid}: {field} {value!r} is not a finite positive number")
    for field in ("original_stop", "original_size"):  # absent in some seed records
        if field in trade and (not _finite(trade[field]) or trade[field] <= 0):
            problems.append(f"{tid}: {field} {trade[field]!r} is not a finite positive number")
    original = _original_size(trade)
    listed = trade.get("partial_exits")
    if listed is not None and not (isinstance(listed, list) and all(isinstance(p, dict) for p in listed)):
        problems.append(f"{tid}: partial_exits {describe(listed)} is not a list of objects")
    parts = accounting.partials(trade)
    if _finite(original) and _finite(trade.get("size")):
        closed = sum(p.get("size_closed", 0) for p in parts if _finite(p.get("size_closed")))
        if _sizes_disagree(trade["size"], closed, original, len(parts)):
            problems.append(
                f"{tid}: size {trade['size']} + partial exits {closed} != original_size {original}"
            )
    for position, part in enumerate(parts):
        for field in ("exit_price", "size_closed", "pnl_usd"):
            if not _finite(part.get(field)):
                problems.append(f"{tid}: partial_exits[{position}].{field} {part.get(field)!r} is not finite")
    status = trade.get("status")
    if status == OPEN:
        for field in _EMPTY_WHILE_OPEN:
            if trade.get(field) is not None:
                problems.append(f"{tid}: OPEN trade has {field} {trade.get(field)!r}")
    elif status == CLOSED:
        for field in ("exit_price", "pnl_usd"):
            if not _finite(trade.get(field)):
                problems.append(f"{tid}: CLOSED trade has {field} {trade.get(field)!r}")
        for field in ("pnl_pct", "r_multiple"):  # null where undefined
            if trade.get(field) is not None and not _finite(trade.get(field)):
                problems.append(f"{tid}: CLOSED trade has {field} {trade.get(field)!r}")
        if not trade.get("exit_time"):
            problems.append(f"{tid}: CLOSED trade has no exit_time")
        problems.extend(_pnl_violations(trade, tid))
    else:
        problems.append(f"{tid}: status {status!r} is not OPEN or CLOSED")
    return problems


def _pnl_violations(trade: dict, tid: object) -> list[str]:
    """The seed's own check, which holds because pnl_usd is the final exit's: its sign agrees
    with ``(exit - entry) x direction``; and ``net_pnl_usd``, unless absent or null, is the net.

    A null ``net_pnl_usd`` means "not computed" exactly as an absent one: the store writes it
    null on open, and a seed-era close, which does not know the field, leaves it so."""
    problems = []
    exit_price, pnl = trade.get("exit_price"), trade.get("pnl_usd")
    if _finite(exit_price) and _finite(pnl) and _finite(trade.get("entry_price")):
        move = accounting.pnl_per_unit(trade, exit_price)
        if pnl * move < 0:
            problems.append(f"{tid}: pnl_usd {pnl} has the opposite sign of the exit's move "
                            f"{move:+g} per unit (pnl_usd is the final exit's P&L, not the net)")
    net = trade.get("net_pnl_usd")
    if net is not None:
        expected = accounting.net_pnl_usd(trade)
        if net != expected:
            problems.append(f"{tid}: net_pnl_usd {net!r} is not pnl_usd + partial exits = {expected}")
    return problems


def open_symbol_violations(ledger: Ledger) -> list[str]:
    """At most one OPEN trade per normalised symbol."""
    seen: dict[str, str] = {}
    problems = []
    for trade in ledger.open_trades():
        symbol = symbol_key(trade["symbol"])
        if symbol in seen:
            problems.append(f"{symbol}: OPEN in both {seen[symbol]} and {trade['id']}")
        seen[symbol] = trade["id"]
    return problems


def id_violations(ledger: Ledger) -> list[str]:
    """Ids are unique and increase in log order."""
    return _increasing(ledger.trades, [id_number(t.get("id")) for t in ledger.trades])


def _increasing(trades: list[dict], numbers: list[int | None]) -> list[str]:
    """:func:`id_violations`, given each trade's id number (None: not an id)."""
    problems = []
    previous = 0
    for trade, number in zip(trades, numbers):
        number = number or 0
        if number <= previous:
            problems.append(f"{trade.get('id')}: id does not increase (after T{previous:03d})")
        else:
            previous = number
    return problems


def ledger_violations(ledger: Ledger) -> list[str]:
    """Every violation in the whole ledger (what ``verify`` reports).

    Each record's id number and whether its own check found anything are kept in the
    ledger's memo (:meth:`Ledger.memo`, dropped when the record changes), so a scan repeated
    on a ledger that follows the log checks only the records changed since. The rules that
    depend on more than one record (ids increase, ids below ``next_id``, one OPEN trade per
    symbol) are applied to the kept numbers every time.
    """
    memo, next_id, trades = ledger.memo("integrity"), ledger.next_id, ledger.trades
    numbers, flagged = [], []
    for trade in trades:
        kept = memo.get(id(trade))  # (id number, found nothing wrong besides the rules on several records)
        if kept is None:
            kept = memo[id(trade)] = (id_number(trade.get("id")), not trade_violations(trade, _NO_LIMIT))
        number, clean = kept
        numbers.append(number)
        if not clean or number is None or number >= next_id:
            flagged.append(trade)
    problems = _increasing(trades, numbers) + open_symbol_violations(ledger)
    for trade in flagged:
        problems.extend(trade_violations(trade, next_id))
    return problems


def new_violations(before_open_symbols: Iterable[str], ledger: Ledger, changed_ids: Iterable[str]) -> list[str]:
    """Violations a write adds: in the trades it touched, or in the ledger-wide open-symbol rule.

    ``before_open_symbols`` are the open-symbol violations before the write, which are not new.
    Ids are checked only for the touched trades, which is where a write can break them.
    """
    known = set(before_open_symbols)
    problems = [p for p in open_symbol_violations(ledger) if p not in known]
    # The id index holds one entry per distinct id, so a shorter index means a repeated id.
    repeated = ledger.distinct_id_count() != len(ledger.trades)
    for trade_id in sorted(changed_ids):
        trade = ledger.get(trade_id)
        problems.extend(trade_violations(trade, ledger.next_id))
        if repeated and sum(t.get("id") == trade_id for t in ledger.trades) > 1:
            problems.append(f"{trade_id}: id appears more than once")
    return problems
