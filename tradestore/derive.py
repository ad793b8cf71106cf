"""Derived state as pure functions of the trade log: ``(trades, now, config) -> dict``.

Guarantees (every function here):

- the result depends only on the trades, the UTC *date* of ``now`` and the config, except for
  ``last_updated``, which is ``now`` itself; nothing is read from earlier derived files, so a
  lost or damaged derived file is rebuilt exactly by calling the function again;
- the result is strict JSON: every number is finite, undefined values are ``None`` (``null``);
- the input is not modified.

Every formula is written down in ``docs/DERIVED.md``. Money is rounded to 8 decimal places and
percentages, ratios and R multiples to 4, like the trade log itself (``docs/FORMAT.md``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from datetime import date, datetime, time, timedelta, timezone
from typing import Any, NamedTuple

FILES = ("portfolio.json", "equity.json", "risk_state.json", "setup_performance.json")

WIN, LOSS, BREAKEVEN = "W", "L", "B"
NO_SETUP = "UNKNOWN"  # setup name used for trades opened with an empty setup_type
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


@dataclass(frozen=True)
class DrawdownLimits:
    """Drawdown limits in percent (positive numbers); ``None`` disables a limit.

    ``daily`` is measured from equity at 00:00 UTC today, ``weekly`` from 00:00 UTC on Monday,
    ``total`` from peak equity. ``caution`` only changes ``drawdown_status``, never halts.
    """

    daily: float | None = 5.0
    weekly: float | None = 10.0
    total: float | None = 20.0
    caution: float | None = 10.0

    @classmethod
    def coerce(cls, value: DrawdownLimits | Mapping[str, float | None] | None) -> DrawdownLimits:
        """Accept an instance, ``None`` (defaults) or a mapping overriding some of the defaults."""
        if value is None:
            return cls()
        if isinstance(value, cls):
            limits = value
        elif isinstance(value, Mapping):
            known = {f.name for f in fields(cls)}
            unknown = sorted(set(value) - known)
            if unknown:
                raise ValueError(f"drawdown_limits: unknown keys {unknown}; allowed: {sorted(known)}")
            limits = replace(cls(), **dict(value))
        else:
            raise ValueError(f"drawdown_limits={value!r}: expected a mapping, DrawdownLimits or None")
        for f in fields(cls):
            v = getattr(limits, f.name)
            if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float))
                                  or not math.isfinite(v) or v <= 0):
                raise ValueError(f"drawdown_limits.{f.name}={v!r}: expected a positive finite percent or None")
        return limits


@dataclass(frozen=True)
class DeriveConfig:
    """Everything besides the trades and the clock that derived values depend on."""

    starting_capital: float = 5000.0
    drawdown_limits: DrawdownLimits = field(default_factory=DrawdownLimits)

    def __post_init__(self) -> None:
        c = self.starting_capital
        if isinstance(c, bool) or not isinstance(c, (int, float)) or not math.isfinite(c) or c <= 0:
            raise ValueError(f"starting_capital={c!r}: expected a positive finite number")
        object.__setattr__(self, "drawdown_limits", DrawdownLimits.coerce(self.drawdown_limits))


# --------------------------------------------------------------------------- small helpers


def _money(x: float) -> float | None:
    # + 0.0 turns -0.0 into 0.0 so equal values serialise equally; an overflow (a log with
    # absurd but finite numbers) becomes null rather than an Infinity no JSON reader accepts.
    return round(x, 8) + 0.0 if math.isfinite(x) else None


def _ratio(x: float | None) -> float | None:
    return None if x is None or not math.isfinite(x) else round(x, 4) + 0.0


def _num(value: Any, default: float = 0.0) -> float:
    """A finite float from a log field, or ``default`` (seed logs may miss optional fields)."""
    kind = type(value)
    if (kind is float or kind is int) and value - value == 0:  # x - x is nan for nan and inf
        return float(value)
    return default


def _parse_time(value: Any) -> datetime | None:
    """An aware UTC datetime from an ISO-8601 string; naive times are taken as UTC."""
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    tz = parsed.tzinfo
    if tz is timezone.utc:  # the log's own format: no conversion needed
        return parsed
    if tz is None:
        return parsed.replace(tzinfo=timezone.utc)
    return parsed.astimezone(timezone.utc)


def _utc(now: datetime) -> datetime:
    if now.tzinfo is None:
        return now.replace(tzinfo=timezone.utc)
    return now.astimezone(timezone.utc)


def _id_number(trade: Mapping[str, Any]) -> int:
    tid = trade.get("id")
    if isinstance(tid, str) and tid[1:].isdigit():
        return int(tid[1:])
    return 0


def sign(trade: Mapping[str, Any]) -> int:
    """+1 for LONG, -1 for SHORT."""
    return -1 if str(trade.get("direction", "")).upper() == "SHORT" else 1


def is_closed(trade: Mapping[str, Any]) -> bool:
    return trade.get("status") == "CLOSED"


def net_pnl(trade: Mapping[str, Any]) -> float:
    """Net P&L of a CLOSED trade: its ``pnl_usd``, which already includes partial exits."""
    return _num(trade.get("pnl_usd"))


def partial_pnls(trade: Mapping[str, Any]) -> list[float]:
    return [_num(p.get("pnl_usd")) for p in trade.get("partial_exits") or () if isinstance(p, Mapping)]


def initial_risk(trade: Mapping[str, Any]) -> float:
    """|entry - original_stop| x original_size (falls back to stop_price / size in seed logs)."""
    entry = _num(trade.get("entry_price"))
    stop = _num(trade.get("original_stop"), _num(trade.get("stop_price"), entry))
    size = _num(trade.get("original_size"), _num(trade.get("size")))
    return abs(entry - stop) * size


def r_multiple(trade: Mapping[str, Any]) -> float | None:
    """Net P&L over initial risk, so partial exits count; None when the initial risk is 0."""
    risk = initial_risk(trade)
    if risk <= 0:
        return None
    return net_pnl(trade) / risk


def result_of(pnl: float) -> str:
    """W for a net gain, L for a net loss, B (breakeven) for exactly 0 after the log's rounding."""
    if pnl > 0:
        return WIN
    if pnl < 0:
        return LOSS
    return BREAKEVEN


def open_risk(trade: Mapping[str, Any]) -> float:
    """USD lost from entry if the current stop is hit: 0 once the stop is at or past entry."""
    entry = _num(trade.get("entry_price"))
    stop = _num(trade.get("stop_price"), entry)
    return max(0.0, sign(trade) * (entry - stop)) * _num(trade.get("size"))


def realized_pnl(trades: Sequence[Mapping[str, Any]]) -> float:
    """Closed trades' net P&L plus the partial exits of OPEN trades (unrounded, exact sum)."""
    amounts: list[float] = []
    for t in trades:
        if is_closed(t):
            amounts.append(net_pnl(t))
        else:
            amounts.extend(partial_pnls(t))
    return math.fsum(amounts)


# --------------------------------------------------------------------------- time line


class _Event(NamedTuple):
    """P&L realized at one moment: a partial exit, or the rest of a trade at its exit."""

    at: datetime
    order: int  # trade id number, then position inside the trade: a stable tie-break
    amount: float


@dataclass(slots=True)
class _Closed:
    """What the statistics need of one CLOSED trade, computed once."""

    id: Any
    number: int
    setup: str
    pnl: float
    r: float | None
    result: str
    exit_at: datetime


def _scan(trades: Sequence[Mapping[str, Any]]) -> tuple[list[_Event], list[_Closed], date | None]:
    """One pass: realization events in time order, closed trades in exit order, inception date.

    A CLOSED trade's events are its partial exits at their timestamps and the rest of its net
    pnl_usd at its exit time, so they add up to its pnl_usd. A missing or unreadable time falls
    back to the trade's entry time (then to 1970-01-01), so its P&L is never dropped.
    """
    events: list[_Event] = []
    closed: list[_Closed] = []
    first: datetime | None = None
    for t in trades:
        entry_at = _parse_time(t.get("entry_time"))
        if entry_at is not None and (first is None or entry_at < first):
            first = entry_at
        fallback = entry_at or _EPOCH
        number = _id_number(t)
        base = number * 1_000_000
        partials = [p for p in t.get("partial_exits") or () if isinstance(p, Mapping)]
        amounts = []
        for i, p in enumerate(partials):
            amount = _num(p.get("pnl_usd"))
            amounts.append(amount)
            events.append(_Event(_parse_time(p.get("timestamp")) or fallback, base + i, amount))
        if t.get("status") == "CLOSED":
            pnl = _num(t.get("pnl_usd"))
            exit_at = _parse_time(t.get("exit_time")) or fallback
            events.append(_Event(exit_at, base + 999_999, pnl - math.fsum(amounts) if amounts else pnl))
            risk = initial_risk(t)
            closed.append(_Closed(t.get("id"), number, str(t.get("setup_type") or "").strip() or NO_SETUP,
                                  pnl, pnl / risk if risk > 0 else None, result_of(pnl), exit_at))
    events.sort()  # by time, then order; orders are unique so amounts never decide
    closed.sort(key=lambda c: (c.exit_at, c.number))
    if events and (first is None or events[0].at < first):
        first = events[0].at
    return events, closed, first.date() if first else None


def _equity_at(events: list[_Event], capital: float, before: datetime) -> float:
    """Equity from P&L realized strictly before ``before``."""
    return capital + math.fsum(e.amount for e in events if e.at < before)


def _drawdown_pct(equity: float, peak: float) -> float:
    """(equity - peak) / peak x 100: 0 at the peak, negative below it, never positive."""
    if peak <= 0:
        return 0.0
    return min(0.0, (equity - peak) / peak * 100.0)


@dataclass
class _Curve:
    points: list[dict[str, Any]]
    peak: float
    peak_date: date | None
    max_drawdown_pct: float
    current_drawdown_days: int
    max_drawdown_days: int


def _curve(events: list[_Event], capital: float, inception: date | None, today: date) -> _Curve:
    """Equity curve (one point per UTC date with realized P&L), peak and drawdowns.

    Peak and max drawdown are taken after every realization, not only at the end of each day,
    so a dip that recovers within the day still counts. A drawdown lasts from the date its peak
    was set until the date equity is back at or above that peak (calendar days).
    """
    running = capital
    peak, peak_date = capital, inception
    max_dd = 0.0
    longest = 0
    below_since: date | None = None  # peak date of the drawdown in progress
    points: list[dict[str, Any]] = []
    day: date | None = None
    day_amounts: list[float] = []

    def close_day() -> None:
        points.append({"date": day.isoformat(), "equity": _money(running), "pnl": _money(math.fsum(day_amounts)),
                       "peak": _money(peak), "drawdown_pct": _ratio(_drawdown_pct(running, peak))})

    for e in events:
        when = e.at.date()
        if when != day:
            if day is not None:
                close_day()
            day, day_amounts = when, []
        day_amounts.append(e.amount)
        running += e.amount
        if running >= peak:
            if below_since is not None:
                longest = max(longest, (when - below_since).days)
                below_since = None
            peak, peak_date = running, when
        else:
            if below_since is None:
                below_since = peak_date or when
            dd = (running - peak) / peak * 100.0
            if dd < max_dd:
                max_dd = dd
    if day is not None:
        close_day()
    current = 0 if below_since is None else max(0, (today - below_since).days)
    return _Curve(points, peak, peak_date, max_dd, current, max(longest, current))


# --------------------------------------------------------------------------- statistics


def _mean(values: Sequence[float]) -> float | None:
    return math.fsum(values) / len(values) if values else None


def _stats(closed: Sequence[_Closed]) -> dict[str, Any]:
    """Counts, rates and R statistics of closed trades (shared by equity and setups)."""
    pnls = [c.pnl for c in closed]
    results = [c.result for c in closed]
    rs = [c.r for c in closed if c.r is not None]
    win_rs = [r for r in rs if r > 0]
    loss_rs = [r for r in rs if r < 0]
    gross_profit = math.fsum(p for p in pnls if p > 0)
    gross_loss = -math.fsum(p for p in pnls if p < 0)
    n = len(closed)
    wins, losses, even = results.count(WIN), results.count(LOSS), results.count(BREAKEVEN)
    expectancy = None
    if rs:
        # P(win) x avg win R + P(loss) x avg loss R over trades with a defined R; breakeven adds 0
        expectancy = (len(win_rs) / len(rs)) * (_mean(win_rs) or 0.0) + (len(loss_rs) / len(rs)) * (_mean(loss_rs) or 0.0)
    return {
        "n": n,
        "wins": wins,
        "losses": losses,
        "breakeven": even,
        "win_rate": _ratio(wins / n * 100.0) if n else 0.0,
        "profit_factor": _ratio(gross_profit / gross_loss) if gross_loss > 0 else None,
        "gross_profit": _money(gross_profit),
        "gross_loss": _money(gross_loss),
        "total_pnl": _money(math.fsum(pnls)),
        "avg_r": _ratio(_mean(rs)),
        "avg_win_r": _ratio(_mean(win_rs)),
        "avg_loss_r": _ratio(_mean(loss_rs)),
        "expectancy": _ratio(expectancy),
        "expectancy_usd": _money(math.fsum(pnls) / n) if n else None,
        "avg_win_usd": _money(gross_profit / wins) if wins else None,
        "avg_loss_usd": _money(-gross_loss / losses) if losses else None,
        "results": results,
    }


def _streaks(results: Sequence[str]) -> dict[str, Any]:
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


def _positions(trades: Sequence[Mapping[str, Any]], equity: float) -> list[dict[str, Any]]:
    """OPEN trades in log order with their initial and open (current-stop) risk."""
    out = []
    for t in trades:
        if is_closed(t):
            continue
        risk = open_risk(t)
        out.append({
            "id": t.get("id"),
            "symbol": t.get("symbol"),
            "direction": t.get("direction"),
            "entry_price": _num(t.get("entry_price")),
            "stop_price": _num(t.get("stop_price")),
            "size": _num(t.get("size")),
            "setup_type": t.get("setup_type") or "",
            "entry_time": t.get("entry_time"),
            "initial_risk_usd": _money(initial_risk(t)),
            "open_risk_usd": _money(risk),
            "risk_pct": _ratio(risk / equity * 100.0) if equity > 0 else None,
            "realized_partial_pnl": _money(math.fsum(partial_pnls(t))),
        })
    return out


def _heat(positions: Sequence[Mapping[str, Any]], equity: float) -> tuple[float | None, dict[str, float | None], float]:
    """(total heat % of equity, heat % per symbol, open risk USD); None when equity <= 0."""
    total = math.fsum(p["open_risk_usd"] for p in positions)
    per_symbol: dict[str, list[float]] = {}
    for p in positions:
        per_symbol.setdefault(str(p["symbol"]), []).append(p["open_risk_usd"])
    if equity <= 0:
        return None, {s: None for s in per_symbol}, _money(total)
    return (
        _ratio(total / equity * 100.0),
        {s: _ratio(math.fsum(v) / equity * 100.0) for s, v in per_symbol.items()},
        _money(total),
    )


# --------------------------------------------------------------------------- the model


@dataclass
class Snapshot:
    """Everything the four files are projected from, computed once per (trades, now, config)."""

    config: DeriveConfig
    now: datetime
    today: date
    week_start: date
    trades: Sequence[Mapping[str, Any]]
    realized: float
    equity: float
    closed_pnl: float
    events: list[_Event]
    curve: _Curve
    stats: dict[str, Any]
    closed: list[_Closed]
    positions: list[dict[str, Any]]
    inception: date | None


def snapshot(trades: Sequence[Mapping[str, Any]], now: datetime, config: DeriveConfig | None = None) -> Snapshot:
    """Compute the shared model once; the ``*_file`` functions project it into each file."""
    config = config or DeriveConfig()
    now = _utc(now)
    today = now.date()
    capital = float(config.starting_capital)
    realized = realized_pnl(trades)
    equity = capital + realized
    events, closed, inception = _scan(trades)
    return Snapshot(
        config=config,
        now=now,
        today=today,
        week_start=today - timedelta(days=today.weekday()),
        trades=trades,
        realized=realized,
        equity=equity,
        closed_pnl=math.fsum(c.pnl for c in closed),
        events=events,
        curve=_curve(events, capital, inception, today),
        stats=_stats(closed),
        closed=closed,
        positions=_positions(trades, equity),
        inception=inception,
    )


def _midnight(d: date) -> datetime:
    return datetime.combine(d, time(0), tzinfo=timezone.utc)


def _status(s: Snapshot) -> tuple[str, bool, str | None, dict[str, float | None]]:
    """(drawdown_status, halted, halt_reason, drawdowns) against the configured limits."""
    capital = float(s.config.starting_capital)
    limits = s.config.drawdown_limits
    daily_start = _equity_at(s.events, capital, _midnight(s.today))
    weekly_start = _equity_at(s.events, capital, _midnight(s.week_start))
    dd = {
        "daily_start": daily_start,
        "weekly_start": weekly_start,
        "daily": _drawdown_pct(s.equity, daily_start) if daily_start > 0 else None,
        "weekly": _drawdown_pct(s.equity, weekly_start) if weekly_start > 0 else None,
        "total": _drawdown_pct(s.equity, s.curve.peak),
    }
    reasons = []
    for name, label in (("daily", "daily drawdown"), ("weekly", "weekly drawdown"), ("total", "drawdown from peak")):
        limit = getattr(limits, name)
        value = dd[name]
        if limit is None:
            continue
        if value is None:  # start value <= 0: the account is gone, which is past every limit
            reasons.append(f"{label}: start equity <= 0")
        elif -value >= limit:
            reasons.append(f"{label} {-value:.2f}% reached the {limit:g}% limit")
    if s.equity <= 0:
        reasons.insert(0, f"equity {s.equity:.2f} <= 0")
    halted = bool(reasons)
    if halted:
        status = "HALTED"
    elif limits.caution is not None and -dd["total"] >= limits.caution:
        status = "CAUTION"
    else:
        status = "NORMAL"
    return status, halted, "; ".join(reasons) or None, dd


def portfolio_file(s: Snapshot) -> dict[str, Any]:
    """``portfolio.json``: balance, P&L, counts and open positions."""
    capital = float(s.config.starting_capital)
    heat, _, risk_usd = _heat(s.positions, s.equity)
    return {
        "balance": _money(s.equity),
        "starting_capital": _money(capital),
        "realized_pnl": _money(s.realized),
        "current_equity": _money(s.equity),
        "total_trades": s.stats["n"],
        "winning_trades": s.stats["wins"],
        "losing_trades": s.stats["losses"] + s.stats["breakeven"],
        "open_positions": len(s.positions),
        "last_updated": s.now.isoformat(),
        "breakeven_trades": s.stats["breakeven"],
        "trades_in_log": len(s.trades),
        "closed_pnl": _money(s.closed_pnl),
        "open_partial_pnl": _money(s.realized - s.closed_pnl),
        "open_risk_usd": risk_usd,
        "portfolio_heat": heat,
        "positions": s.positions,
    }


def equity_file(s: Snapshot) -> dict[str, Any]:
    """``equity.json``: equity curve, drawdowns, performance statistics, heat and streaks."""
    capital = float(s.config.starting_capital)
    status, _, _, _ = _status(s)
    heat, per_position, risk_usd = _heat(s.positions, s.equity)
    st = s.stats
    return {
        "starting_capital": _money(capital),
        "current_equity": _money(s.equity),
        "total_return_pct": _ratio((s.equity - capital) / capital * 100.0),
        "peak_equity": _money(s.curve.peak),
        "drawdown_percent": _ratio(_drawdown_pct(s.equity, s.curve.peak)),
        "max_drawdown_pct": _ratio(s.curve.max_drawdown_pct),
        "drawdown_status": status,
        "current_drawdown_days": s.curve.current_drawdown_days,
        "max_drawdown_days": s.curve.max_drawdown_days,
        "total_trades": st["n"],
        "winning_trades": st["wins"],
        "losing_trades": st["losses"] + st["breakeven"],
        "win_rate": st["win_rate"],
        "profit_factor": st["profit_factor"],
        "avg_r": st["avg_r"],
        "total_pnl": _money(s.closed_pnl),
        "inception_date": s.inception.isoformat() if s.inception else None,
        "last_updated": s.now.isoformat(),
        "equity_curve": s.curve.points,
        "portfolio_heat": heat,
        "heat_per_position": per_position,
        **_streaks(st["results"]),
        "breakeven_trades": st["breakeven"],
        "realized_pnl": _money(s.realized),
        "peak_date": s.curve.peak_date.isoformat() if s.curve.peak_date else None,
        "gross_profit": st["gross_profit"],
        "gross_loss": st["gross_loss"],
        "avg_win_usd": st["avg_win_usd"],
        "avg_loss_usd": st["avg_loss_usd"],
        "avg_win_r": st["avg_win_r"],
        "avg_loss_r": st["avg_loss_r"],
        "expectancy": st["expectancy"],
        "expectancy_usd": st["expectancy_usd"],
        "open_risk_usd": risk_usd,
    }


def risk_state_file(s: Snapshot) -> dict[str, Any]:
    """``risk_state.json``: day and week start values, drawdowns and the halt decision."""
    status, halted, reason, dd = _status(s)
    heat, _, risk_usd = _heat(s.positions, s.equity)
    limits = s.config.drawdown_limits
    return {
        "starting_value": _money(float(s.config.starting_capital)),
        "current_value": _money(s.equity),
        "daily_start_value": _money(dd["daily_start"]),
        "weekly_start_value": _money(dd["weekly_start"]),
        "daily_reset_date": s.today.isoformat(),
        "weekly_reset_date": s.week_start.isoformat(),
        "open_positions": len(s.positions),
        "halted": halted,
        "halt_reason": reason,
        "peak_value": _money(s.curve.peak),
        "daily_pnl": _money(s.equity - dd["daily_start"]),
        "weekly_pnl": _money(s.equity - dd["weekly_start"]),
        "daily_drawdown_pct": _ratio(dd["daily"]),
        "weekly_drawdown_pct": _ratio(dd["weekly"]),
        "total_drawdown_pct": _ratio(dd["total"]),
        "drawdown_status": status,
        "limits": {"daily_pct": limits.daily, "weekly_pct": limits.weekly,
                   "total_pct": limits.total, "caution_pct": limits.caution},
        "open_risk_usd": risk_usd,
        "portfolio_heat": heat,
        "open_symbols": [p["symbol"] for p in s.positions],
        "positions": s.positions,
        "last_updated": s.now.isoformat(),
    }


def setup_performance_file(s: Snapshot) -> dict[str, Any]:
    """``setup_performance.json``: per setup statistics, best expectancy first."""
    by_setup: dict[str, list[_Closed]] = {}
    for c in s.closed:
        by_setup.setdefault(c.setup, []).append(c)
    rows = {}
    for name, group in by_setup.items():
        st = _stats(group)
        rows[name] = {
            "total_trades": st["n"],
            "wins": st["wins"],
            "losses": st["losses"],
            "breakeven": st["breakeven"],
            "win_rate": st["win_rate"],
            "avg_r": st["avg_r"],
            "avg_win_r": st["avg_win_r"],
            "avg_loss_r": st["avg_loss_r"],
            "expectancy": st["expectancy"],
            "total_pnl": st["total_pnl"],
            "trades": [c.id for c in sorted(group, key=lambda c: c.number)],
            "profit_factor": st["profit_factor"],
            "expectancy_usd": st["expectancy_usd"],
        }
    # best expectancy first; setups without a defined R last; the name breaks ties
    order = sorted(rows, key=lambda n: (rows[n]["expectancy"] is None, -(rows[n]["expectancy"] or 0.0), n))
    return {
        "setups": {name: rows[name] for name in order},
        "total_closed": len(s.closed),
        "last_updated": s.now.isoformat(),
        "ranking": order,
    }


PROJECTIONS = {
    "portfolio.json": portfolio_file,
    "equity.json": equity_file,
    "risk_state.json": risk_state_file,
    "setup_performance.json": setup_performance_file,
}


def derive_all(trades: Sequence[Mapping[str, Any]], now: datetime,
               config: DeriveConfig | None = None) -> dict[str, dict[str, Any]]:
    """All four derived files, by file name, from one pass over the trades."""
    s = snapshot(trades, now, config)
    return {name: project(s) for name, project in PROJECTIONS.items()}


Trades = Sequence[Mapping[str, Any]]


def portfolio(trades: Trades, now: datetime, config: DeriveConfig | None = None) -> dict[str, Any]:
    """``portfolio.json`` alone."""
    return portfolio_file(snapshot(trades, now, config))


def equity(trades: Trades, now: datetime, config: DeriveConfig | None = None) -> dict[str, Any]:
    """``equity.json`` alone."""
    return equity_file(snapshot(trades, now, config))


def risk_state(trades: Trades, now: datetime, config: DeriveConfig | None = None) -> dict[str, Any]:
    """``risk_state.json`` alone."""
    return risk_state_file(snapshot(trades, now, config))


def setup_performance(trades: Trades, now: datetime, config: DeriveConfig | None = None) -> dict[str, Any]:
    """``setup_performance.json`` alone."""
    return setup_performance_file(snapshot(trades, now, config))
