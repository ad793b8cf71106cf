"""Money, defined once: every P&L, equity, risk and streak figure of the library. Pure, no I/O.

The store's risk checks, the close and partial-exit records it writes, and every derived file
take their numbers from these functions, so a report and a decision can never disagree about
what a trade made or what the account is worth.

Records are read as the seed's code meant them (``docs/FORMAT.md``, "Arithmetic"):

- a CLOSED trade's ``pnl_usd``, ``pnl_pct`` and ``r_multiple`` are those of its **final exit on
  the remaining size**; every partial exit carries its own ``pnl_usd``;
- a trade's **net** P&L is ``pnl_usd + Σ partial_exits[].pnl_usd`` (an OPEN trade has no
  ``pnl_usd`` yet, so its net is what its partial exits realized);
- a loss is a net P&L ``<= 0``.

Every function accepts records from any era of the format: fields a seed record lacks fall back
as FORMAT.md says (``original_stop`` -> ``stop_price``, ``original_size`` -> ``size`` plus the
partial exits' sizes, :func:`opening_size`), and a number that is missing, null or not finite
counts as 0, so no record can make a sum raise.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Iterable, Mapping, Sequence
from datetime import date, datetime, time, timedelta, timezone
from typing import Any, NamedTuple

from .values import MAX_AMOUNT, id_number, parse_time

SEED_DECIMALS = 2  # the seed's rounding of pnl_usd, pnl_pct, r_multiple (and of net_pnl_usd)
SIZE_DECIMALS = 6  # the seed's rounding of a partial exit's size_closed and remaining size
NET_R_DECIMALS = 4  # net_r_multiple, a field the seed does not have

WIN, LOSS, BREAKEVEN = "W", "L", "B"
EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)  # the time of an event with no readable time


# The largest magnitude a log field the store writes can have: an amount x a price
# (pnl_usd = price move x size). A field beyond it was not written by a store; reading it as
# the default keeps every sum and product over any number of records finite (no OverflowError).
MAX_FIELD = MAX_AMOUNT * MAX_AMOUNT


def number(value: Any, default: Any = 0.0) -> float:
    """A finite float from a log field, or ``default`` (seed records may miss optional fields).

    A number beyond :data:`MAX_FIELD` in magnitude (1e30) counts as missing too."""
    kind = type(value)
    if (kind is float or kind is int) and -MAX_FIELD <= value <= MAX_FIELD:  # False for nan too
        return float(value)
    return default


def direction_sign(direction: object) -> int:
    """+1 for LONG, -1 for SHORT (anything but SHORT counts as LONG, as the seed reads it)."""
    return -1 if isinstance(direction, str) and direction.strip().upper() == "SHORT" else 1


# --------------------------------------------------------------------------- one trade


def original_stop(trade: Mapping[str, Any]) -> float:
    stop = number(trade.get("original_stop"), None)  # the fallbacks only when needed: cheaper
    if stop is None:
        stop = number(trade.get("stop_price"), None)
    return number(trade.get("entry_price")) if stop is None else stop


def original_size(trade: Mapping[str, Any]) -> float:
    """The units the trade was opened with: its ``original_size`` where that is a number, else
    :func:`opening_size` (older seed records have no ``original_size``)."""
    size = number(trade.get("original_size"), None)
    return opening_size(trade) if size is None else size


def opening_size(trade: Mapping[str, Any]) -> float:
    """The size at opening as the record's exits say it: the remaining ``size`` plus every
    partial exit's ``size_closed``, rounded to :data:`SIZE_DECIMALS`, or ``size`` when there
    are no partial exits. The one meaning of a missing ``original_size``: the seed's partial
    exit reduces ``size``, so after the first the current size is not what was opened.

    The seed rounds each of those sizes to 6 decimals, so rounding their sum only removes the
    binary error of adding them: for a trade opened with a size of at most 6 decimals this is
    that size exactly, and a record the seed wrote always meets integrity's size rule."""
    size, parts = number(trade.get("size")), partials(trade)
    if not parts:
        return size
    return round(math.fsum([size, *(number(p.get("size_closed")) for p in parts)]), SIZE_DECIMALS)


def pnl_per_unit(trade: Mapping[str, Any], exit_price: float) -> float:
    """``exit - entry`` for a LONG, ``entry - exit`` for a SHORT."""
    return direction_sign(trade.get("direction")) * (exit_price - number(trade.get("entry_price")))


def exit_fields(trade: Mapping[str, Any], exit_price: float) -> dict[str, float]:
    """The seed's close of the **remaining** size at ``exit_price``: pnl_usd, pnl_pct, r_multiple.

    ``pnl_usd = round(ppu * size, 2)``, ``pnl_pct = round(ppu / entry * 100, 2)``,
    ``r_multiple = round(ppu / |entry - original_stop|, 2)`` (0.0 when that distance is 0).
    """
    ppu = pnl_per_unit(trade, exit_price)
    entry = number(trade.get("entry_price"))
    distance = abs(entry - original_stop(trade))
    return {
        "pnl_usd": round(ppu * number(trade.get("size")), SEED_DECIMALS),
        "pnl_pct": round(ppu / entry * 100, SEED_DECIMALS) if entry else 0.0,
        "r_multiple": round(ppu / distance, SEED_DECIMALS) if distance else 0.0,
    }


def partial_split(size: float, fraction: float) -> tuple[float, float]:
    """The seed's partial exit: ``(size_closed, remaining)``, each rounded to 6 decimals.

    The caller refuses the exit when ``remaining <= 0`` (or, here, when ``size_closed <= 0``).
    """
    closed = round(size * fraction, SIZE_DECIMALS)
    return closed, round(size - closed, SIZE_DECIMALS)


def partial_pnl(trade: Mapping[str, Any], exit_price: float, size_closed: float) -> float:
    """``round(ppu * size_closed, 2)``: a partial exit's ``pnl_usd``."""
    return round(pnl_per_unit(trade, exit_price) * size_closed, SEED_DECIMALS)


def partials(trade: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """A record's partial exits: the objects in its ``partial_exits`` list. A missing field, or
    one that is not a list (a damaged or foreign record), has none; an item that is not an
    object is no partial exit. (integrity reports both.)"""
    parts = trade.get("partial_exits")
    if not parts or not isinstance(parts, list):  # most records: an empty list
        return []
    return [p for p in parts if isinstance(p, Mapping)]


def partial_amounts(trade: Mapping[str, Any]) -> list[float]:
    parts = partials(trade)
    return [number(p.get("pnl_usd")) for p in parts] if parts else []


def realized_amounts(trade: Mapping[str, Any]) -> list[float]:
    """What a trade has realized, one amount per exit: its partial exits, then (CLOSED) its final exit."""
    amounts = partial_amounts(trade)
    if trade.get("status") == "CLOSED":
        amounts.append(number(trade.get("pnl_usd")))
    return amounts


def net_pnl(trade: Mapping[str, Any]) -> float:
    """``pnl_usd + Σ partial_exits[].pnl_usd`` (exact sum). For an OPEN trade: Σ partials."""
    return math.fsum(realized_amounts(trade))


def initial_risk(trade: Mapping[str, Any]) -> float:
    """``|entry - original_stop| x original_size``: what the trade risked when it was opened."""
    return abs(number(trade.get("entry_price")) - original_stop(trade)) * original_size(trade)


def open_risk(trade: Mapping[str, Any]) -> float:
    """What is still lost from entry if the current stop is hit; 0 once it is at or past entry."""
    entry = number(trade.get("entry_price"))
    stop = number(trade.get("stop_price"), entry)
    return max(0.0, direction_sign(trade.get("direction")) * (entry - stop)) * number(trade.get("size"))


def total_open_risk(trades: Iterable[Mapping[str, Any]]) -> float:
    """Σ open risk of the OPEN trades among ``trades`` (portfolio heat, in USD)."""
    return math.fsum(open_risk(t) for t in trades if t.get("status") != "CLOSED")


def net_r(trade: Mapping[str, Any], net: float | None = None) -> float | None:
    """Net P&L over initial risk (partial exits count); None when the initial risk is 0.

    ``net`` is the trade's :func:`net_pnl`, for a caller that has it already."""
    risk = initial_risk(trade)
    if not risk > 0:
        return None
    return (net_pnl(trade) if net is None else net) / risk


def net_pnl_usd(trade: Mapping[str, Any]) -> float:
    """The ``net_pnl_usd`` field of a closed trade: :func:`net_pnl` to the cent.

    Also what a trade's result is judged on (:func:`is_loss`, :func:`result_of` in the derived
    statistics): every amount of the log is a whole number of cents, but their binary doubles
    do not add up to one exactly (+41.15 +1.01 -42.16 sums to 2e-15), so only the net to the
    cent says that such a trade broke even, as the record's own ``net_pnl_usd`` does."""
    return round(net_pnl(trade), SEED_DECIMALS)


def net_fields(trade: Mapping[str, Any]) -> dict[str, float | None]:
    """The new fields a close adds beside the seed's: ``net_pnl_usd`` and ``net_r_multiple``."""
    r = net_r(trade)
    return {
        "net_pnl_usd": net_pnl_usd(trade),
        "net_r_multiple": round(r, NET_R_DECIMALS) if r is not None and math.isfinite(r) else None,
    }


def is_loss(trade: Mapping[str, Any]) -> bool:
    """The loss cap's and the seed's loss: net P&L to the cent (:func:`net_pnl_usd`) ``<= 0``
    (breakeven counts)."""
    return net_pnl_usd(trade) <= 0


def result_of(pnl: float) -> str:
    """W for a net gain, L for a net loss, B for exactly 0 (no tolerance band)."""
    return WIN if pnl > 0 else LOSS if pnl < 0 else BREAKEVEN


def upgrade_schema_1(trade: dict) -> dict:
    """A record of a schema-1 log (``pnl_usd`` was the net) in today's meaning, in place.

    The seed's fields are recomputed from the record's own exit price and remaining size (the
    seed's formulas), then the net fields from them: the net read is the old one to the cent.
    A record without a usable exit price is left as it is (``verify`` reports it).
    """
    if trade.get("status") == "CLOSED" and number(trade.get("exit_price"), -1.0) > 0:
        trade.update(exit_fields(trade, trade["exit_price"]))
        trade.update(net_fields(trade))
    return trade


# --------------------------------------------------------------------------- time line


class Event(NamedTuple):
    """P&L realized at one moment: a partial exit, or a closed trade's final exit."""

    at: datetime
    order: int  # id number, then position inside the trade: a stable, unique tie-break
    amount: float


def entry_at(trade: Mapping[str, Any]) -> datetime:
    return parse_time(trade.get("entry_time")) or EPOCH


def exit_at(trade: Mapping[str, Any]) -> datetime:
    """The exit time; a missing or unreadable one falls back to the entry time, then 1970."""
    return parse_time(trade.get("exit_time")) or entry_at(trade)


def trade_events(trade: Mapping[str, Any]) -> list[Event]:
    """One trade's :func:`realized_amounts` as events: each partial exit at its ``timestamp``,
    the final exit (CLOSED) at its ``exit_time``; the newest exit is the last. Missing times
    fall back as :func:`exit_at` does."""
    base = (id_number(trade.get("id")) or 0) * 1_000_000
    parts = partials(trade)
    events = [Event(parse_time(p.get("timestamp")) or entry_at(trade), base + i, number(p.get("pnl_usd")))
              for i, p in enumerate(parts)] if parts else []
    if trade.get("status") == "CLOSED":
        events.append(Event(exit_at(trade), base + 999_999, number(trade.get("pnl_usd"))))
    return events


def realization_events(trades: Iterable[Mapping[str, Any]]) -> list[Event]:
    """Every realized amount of ``trades`` (:func:`trade_events`) in time order."""
    events = [e for t in trades for e in trade_events(t)]
    events.sort()  # by time, then order; orders are unique so amounts never decide
    return events


def realized_pnl(trades: Iterable[Mapping[str, Any]]) -> float:
    """Σ net P&L of every trade (closed trades in full, OPEN trades their partial exits): the
    exact sum of every realized amount, correctly rounded once, so no order of summing and no
    running total kept beside it (:class:`ExactSum`) can give another number."""
    return math.fsum(a for t in trades for a in realized_amounts(t))


class ExactSum:
    """A running sum kept exactly (non-overlapping partials, as math.fsum keeps them), so
    adding amounts one by one gives what :func:`math.fsum` gives over all of them at once."""

    __slots__ = ("partials",)

    def __init__(self, amounts: Iterable[float] = ()) -> None:
        self.partials: list[float] = []
        for amount in amounts:
            self.add(amount)

    def add(self, x: float) -> None:
        i = 0
        partials = self.partials
        for y in partials:
            if abs(x) < abs(y):
                x, y = y, x
            hi = x + y
            lo = y - (hi - x)
            if lo:
                partials[i] = lo
                i += 1
            x = hi
        partials[i:] = [x]

    def value(self, minus: Iterable[float] = ()) -> float:
        """The sum, less ``minus``, correctly rounded."""
        return math.fsum([*self.partials, *(-m for m in minus)])


def equity_before(events: Sequence[Event], capital: float, moment: datetime) -> float:
    """Starting capital plus the P&L realized strictly before ``moment``."""
    return capital + math.fsum(e.amount for e in events if e.at < moment)


def equity_before_from(total: ExactSum, events: Sequence[Event], capital: float, moment: datetime) -> float:
    """:func:`equity_before` from the exact sum of all ``events`` (sorted) and the few at or
    after ``moment``: the same number, without summing the whole history again."""
    start = bisect.bisect_left(events, (moment,))  # a 1-tuple sorts before every event at ``moment``
    return capital + total.value(e.amount for e in events[start:])


def running_equity(events: Iterable[Event], capital: float) -> Iterable[tuple[Event, float]]:
    """Each event with the equity right after it (the running sums of :func:`extend_peak`)."""
    running = capital
    for e in events:
        running = running + e.amount
        yield e, running


class Peak(NamedTuple):
    """The equity curve so far: the last event, the equity after it, the highest after any."""

    capital: float
    last: Event | None
    running: float
    highest: float


def peak_of(events: Iterable[Event], capital: float) -> Peak:
    """The :class:`Peak` after ``events``: :func:`extend_peak` over each, without building a
    Peak per event (a whole history's curve is a loop of two float operations)."""
    running = highest = capital
    last = None
    for last in events:
        running = running + last.amount
        if running > highest:  # max(highest, running) keeps the first of equal values too
            highest = running
    return Peak(capital, last, running, highest)


def extend_peak(peak: Peak, event: Event) -> Peak:
    """``peak`` after one more event, which must come after every event it holds."""
    running = peak.running + event.amount
    return Peak(peak.capital, event, running, max(peak.highest, running))


def peak_equity(events: Iterable[Event], capital: float, equity: float, peak: Peak | None = None) -> float:
    """The highest equity the account has had: starting capital, after any event, or now."""
    return max(capital, equity, (peak or peak_of(events, capital)).highest)


def drawdown_pct(equity: float, reference: float) -> float | None:
    """``min(0, (equity - reference) / reference * 100)``: 0 at or above, negative below.

    None when the reference is 0 or negative (the account is gone: no percentage exists).
    """
    if not reference > 0:
        return None
    return min(0.0, (equity - reference) / reference * 100.0)


def day_start(now: datetime) -> datetime:
    """00:00 UTC of ``now``'s UTC date."""
    return datetime.combine(now.astimezone(timezone.utc).date(), time(0), tzinfo=timezone.utc)


def week_start(now: datetime) -> datetime:
    """00:00 UTC on the Monday of ``now``'s UTC week."""
    midnight = day_start(now)
    return midnight - timedelta(days=midnight.weekday())


# --------------------------------------------------------------------------- closed trades


def exit_order_key(trade: Mapping[str, Any]) -> tuple[datetime, int]:
    """Closed trades are ordered by exit time, then id number, then their order in the log
    (a stable sort by this key)."""
    return exit_at(trade), id_number(trade.get("id")) or 0


def streaks(results: Sequence[str]) -> dict[str, Any]:
    """Signed current streak (+wins, -losses, 0 after a breakeven), longest runs, last five."""
    max_win = max_loss = run = 0
    last = None
    for r in results:
        run = run + 1 if r == last else 1
        last = r
        if r == WIN:
            max_win = max(max_win, run)
        elif r == LOSS:
            max_loss = max(max_loss, run)
    current = 0 if last is None or last == BREAKEVEN else (run if last == WIN else -run)
    return {
        "current_streak": current,
        "max_win_streak": max_win,
        "max_loss_streak": max_loss,
        "last_5_results": list(results[-5:]),
    }


def inception(entry_times: Iterable[datetime | None], events: Sequence[Event]) -> date | None:
    """UTC date of the earliest entry time (each trade's ``entry_time`` parsed, None where
    unreadable) or event; None for an empty log."""
    times = [m for m in entry_times if m is not None]
    if events:
        times.append(events[0].at)
    return min(times).date() if times else None
