"""Derived state as pure projections of the trade log: ``(log, now, limits) -> dict``.

Guarantees (every function here):

- the result depends only on the trades, ``now`` and the limits: on ``now``'s UTC *date*,
  and on its time only through a loss cap's cooldown; ``last_updated`` is ``now`` itself.
  Nothing is read from earlier derived files, so a lost or damaged derived file is rebuilt
  exactly by calling the function again;
- every amount comes from :mod:`tradestore.accounting` and every verdict in
  ``risk_state.json`` (halted, blocked symbols, heat capped) from the store's own checks in
  :mod:`tradestore.risk`, so the reports say what ``open_trade`` decides under those limits;
- the result is strict JSON: every number is finite, undefined values are ``None`` (``null``);
- the input is not modified.

Every formula is written down in ``docs/DERIVED.md``. Money is rounded to 8 decimal places and
percentages, ratios and R multiples to 4.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from operator import attrgetter
from datetime import date, datetime
from typing import Any

from . import accounting, risk
from .accounting import BREAKEVEN, LOSS, WIN
from .ledger import Ledger
from .risk import RiskLimits
from .values import id_number, parse_time, utc

FILES = ("portfolio.json", "equity.json", "risk_state.json", "setup_performance.json")

NO_SETUP = "UNKNOWN"  # setup name used for trades opened with an empty setup_type
_UNSET = object()  # no entry in a memo yet (None is a value there)

_number = attrgetter("number")


# --------------------------------------------------------------------------- small helpers


def _money(x: float) -> float | None:
    # + 0.0 turns -0.0 into 0.0 so equal values serialise equally; an overflow (a log with
    # absurd but finite numbers) becomes null rather than an Infinity no JSON reader accepts.
    return round(x, 8) + 0.0 if math.isfinite(x) else None


def _ratio(x: float | None) -> float | None:
    return None if x is None or not math.isfinite(x) else round(x, 4) + 0.0


# --------------------------------------------------------------------------- time line


@dataclass(slots=True)
class _Closed:
    """What the statistics need of one CLOSED trade, computed once."""

    id: Any
    number: int
    setup: str
    pnl: float
    r: float | None
    result: str


def _closed(ledger: Ledger) -> list[_Closed]:
    """Closed trades in exit order (:meth:`Ledger.closed_in_exit_order`) with their net P&L to
    the cent (:func:`accounting.net_pnl_usd`, what a result is judged on), net R and result;
    each trade's figures are kept in the ledger's memo until it changes."""
    memo = ledger.memo("derive.closed")
    net_pnl, net_r, result_of = accounting.net_pnl_usd, accounting.net_r, accounting.result_of
    out = []
    for t in ledger.closed_in_exit_order():
        figures = memo.get(id(t))
        if figures is None:
            pnl = net_pnl(t)
            figures = memo[id(t)] = _Closed(t.get("id"), id_number(t.get("id")) or 0,
                                            str(t.get("setup_type") or "").strip() or NO_SETUP,
                                            pnl, net_r(t, pnl), result_of(pnl))
        out.append(figures)
    return out


def _entry_times(ledger: Ledger) -> list[datetime | None]:
    """Each trade's parsed entry time (:func:`accounting.entry_at` without its fallback), kept
    in the ledger's memo until the trade changes."""
    memo = ledger.memo("derive.entry_time")
    times = []
    for t in ledger.trades:
        moment = memo.get(id(t), _UNSET)
        if moment is _UNSET:
            moment = memo[id(t)] = parse_time(t.get("entry_time"))
        times.append(moment)
    return times


@dataclass
class _Curve:
    points: list[dict[str, Any]]
    peak: float
    peak_date: date | None
    max_drawdown_pct: float
    current_drawdown_days: int
    max_drawdown_days: int


def _curve(events: list[accounting.Event], capital: float, peak_equity: float, inception: date | None,
           today: date) -> _Curve:
    """Equity curve (one point per UTC date with realized P&L), peak and drawdowns.

    ``peak_equity`` is the account's :func:`accounting.peak_equity`, which the curve reports.

    Peak and max drawdown are taken after every realization, not only at the end of each day,
    so a dip that recovers within the day still counts. A drawdown lasts from the date its peak
    was set until the date equity is back at or above that peak (calendar days).
    """
    peak, peak_date = capital, inception
    max_dd = 0.0
    longest = 0
    below_since: date | None = None  # peak date of the drawdown in progress
    points: list[dict[str, Any]] = []
    day: date | None = None
    day_amounts: list[float] = []
    running = capital  # equity after the last event handled

    def close_day() -> None:
        points.append({"date": day.isoformat(), "equity": _money(running), "pnl": _money(math.fsum(day_amounts)),
                       "peak": _money(peak), "drawdown_pct": _ratio(accounting.drawdown_pct(running, peak))})

    for e, after in accounting.running_equity(events, capital):
        when = e.at.date()
        if when != day:
            if day is not None:
                close_day()
            day, day_amounts = when, []
        day_amounts.append(e.amount)
        running = after
        if running >= peak:
            if below_since is not None:
                longest = max(longest, (when - below_since).days)
                below_since = None
            peak, peak_date = running, when
        else:
            if below_since is None:
                below_since = peak_date or when
            max_dd = min(max_dd, accounting.drawdown_pct(running, peak))
    if day is not None:
        close_day()
    current = 0 if below_since is None else max(0, (today - below_since).days)
    return _Curve(points, peak_equity, peak_date, max_dd, current, max(longest, current))


# --------------------------------------------------------------------------- statistics


def _mean(values: Sequence[float]) -> float | None:
    if not values:
        return None
    try:
        return math.fsum(values) / len(values)
    except OverflowError:  # accepted R multiples near the double's limit: their mean is not
        return math.fsum(v / len(values) for v in values)


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


def _positions(open_trades: Sequence[Mapping[str, Any]], equity: float) -> list[dict[str, Any]]:
    """OPEN trades in log order with their initial and open (current-stop) risk."""
    out = []
    for t in open_trades:
        risk_usd = accounting.open_risk(t)
        out.append({
            "id": t.get("id"),
            "symbol": t.get("symbol"),
            "direction": t.get("direction"),
            "entry_price": accounting.number(t.get("entry_price")),
            "stop_price": accounting.number(t.get("stop_price")),
            "size": accounting.number(t.get("size")),
            "setup_type": t.get("setup_type") or "",
            "entry_time": t.get("entry_time"),
            "initial_risk_usd": _money(accounting.initial_risk(t)),
            "open_risk_usd": _money(risk_usd),
            "risk_pct": _ratio(risk_usd / equity * 100.0) if equity > 0 else None,
            "realized_partial_pnl": _money(accounting.net_pnl(t)),
        })
    return out


def _heat(s: Snapshot) -> tuple[float | None, dict[str, float | None], float | None]:
    """(total heat % of equity, heat % per symbol, open risk USD); None when equity <= 0."""
    total = accounting.total_open_risk(s.open_trades)
    per_symbol: dict[str, list[Mapping[str, Any]]] = {}
    for t in s.open_trades:
        per_symbol.setdefault(str(t.get("symbol")), []).append(t)
    if s.equity <= 0:
        return None, {sym: None for sym in per_symbol}, _money(total)
    return (
        _ratio(total / s.equity * 100.0),
        {sym: _ratio(accounting.total_open_risk(ts) / s.equity * 100.0) for sym, ts in per_symbol.items()},
        _money(total),
    )


# --------------------------------------------------------------------------- the model


@dataclass
class Snapshot:
    """Everything the four files are projected from, computed once per (log, now, limits)."""

    limits: RiskLimits
    ledger: Ledger
    now: datetime
    today: date
    week_start: date
    open_trades: list[dict[str, Any]]
    realized: float
    equity: float
    closed_pnl: float
    events: list[accounting.Event]
    curve: _Curve
    stats: dict[str, Any]
    closed: list[_Closed]
    inception: date | None
    verdicts: _Verdicts | None = field(default=None, repr=False)  # computed when first asked


def snapshot(log: Ledger | Sequence[Mapping[str, Any]], now: datetime, limits: RiskLimits | None = None) -> Snapshot:
    """Compute the shared model once; the ``*_file`` functions project it into each file.

    ``log`` is a :class:`Ledger` or its list of trade records.
    """
    limits = limits or RiskLimits()
    ledger = log if isinstance(log, Ledger) else Ledger(log)
    now = utc(now)
    today = now.date()
    capital = limits.starting_capital
    equity = ledger.equity(capital)
    events = ledger.events()
    closed = _closed(ledger)
    inception = accounting.inception(_entry_times(ledger), events)
    return Snapshot(
        limits=limits,
        ledger=ledger,
        now=now,
        today=today,
        week_start=accounting.week_start(now).date(),
        open_trades=ledger.open_trades(),
        realized=ledger.realized_pnl(),
        equity=equity,
        closed_pnl=math.fsum(c.pnl for c in closed),
        events=events,
        # the ledger's peak (accounting.peak_equity of its events), which its drawdown check shares
        curve=_curve(events, capital, ledger.peak_equity(capital), inception, today),
        stats=_stats(closed),
        closed=closed,
        inception=inception,
    )


@dataclass
class _Verdicts:
    """The store's own decisions at ``now``, from :mod:`tradestore.risk`'s checks."""

    halt_reasons: list[str]
    blocked: dict[str, str]
    heat_capped: str | None
    status: str


def _verdicts(s: Snapshot) -> _Verdicts:
    """The snapshot's verdicts, computed once (two files show them)."""
    if s.verdicts is None:
        s.verdicts = _decide(s)
    return s.verdicts


def _decide(s: Snapshot) -> _Verdicts:
    ledger, limits, now = s.ledger, s.limits, s.now
    reasons = risk.halt_reasons(ledger, now, limits)
    blocked = risk.loss_capped(ledger, now, limits)
    heat_capped = risk.portfolio_heat(ledger, risk.probe("", now, limits))
    total_dd = accounting.drawdown_pct(s.equity, s.curve.peak)
    caution = limits.caution_drawdown_pct
    if reasons:
        status = "HALTED"
    elif caution is not None and total_dd is not None and -total_dd >= caution:
        status = "CAUTION"
    else:
        status = "NORMAL"
    return _Verdicts(reasons, blocked, heat_capped, status)


def portfolio_file(s: Snapshot) -> dict[str, Any]:
    """``portfolio.json``: balance, P&L, counts and open positions."""
    heat, _, risk_usd = _heat(s)
    return {
        "balance": _money(s.equity),
        "starting_capital": _money(s.limits.starting_capital),
        "realized_pnl": _money(s.realized),
        "current_equity": _money(s.equity),
        "total_trades": s.stats["n"],
        "winning_trades": s.stats["wins"],
        "losing_trades": s.stats["losses"] + s.stats["breakeven"],
        "open_positions": len(s.open_trades),
        "last_updated": s.now.isoformat(),
        "breakeven_trades": s.stats["breakeven"],
        "trades_in_log": len(s.ledger.trades),
        "closed_pnl": _money(s.closed_pnl),
        "open_partial_pnl": _money(s.realized - s.closed_pnl),
        "open_risk_usd": risk_usd,
        "portfolio_heat": heat,
        "positions": _positions(s.open_trades, s.equity),
    }


def equity_file(s: Snapshot) -> dict[str, Any]:
    """``equity.json``: equity curve, drawdowns, performance statistics, heat and streaks."""
    capital = s.limits.starting_capital
    heat, per_position, risk_usd = _heat(s)
    st = s.stats
    return {
        "starting_capital": _money(capital),
        "current_equity": _money(s.equity),
        "total_return_pct": _ratio((s.equity - capital) / capital * 100.0),
        "peak_equity": _money(s.curve.peak),
        "drawdown_percent": _ratio(accounting.drawdown_pct(s.equity, s.curve.peak)),
        "max_drawdown_pct": _ratio(s.curve.max_drawdown_pct),
        "drawdown_status": _verdicts(s).status,
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
        **accounting.streaks(st["results"]),
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
    """``risk_state.json``: day and week start values, drawdowns and the store's verdicts."""
    capital = s.limits.starting_capital
    v = _verdicts(s)
    heat, _, risk_usd = _heat(s)
    daily_start = s.ledger.equity_at(capital, accounting.day_start(s.now))
    weekly_start = s.ledger.equity_at(capital, accounting.week_start(s.now))
    return {
        "starting_value": _money(capital),
        "current_value": _money(s.equity),
        "daily_start_value": _money(daily_start),
        "weekly_start_value": _money(weekly_start),
        "daily_reset_date": s.today.isoformat(),
        "weekly_reset_date": s.week_start.isoformat(),
        "open_positions": len(s.open_trades),
        "halted": bool(v.halt_reasons),
        "halt_reason": "; ".join(v.halt_reasons) or None,
        "peak_value": _money(s.curve.peak),
        "daily_pnl": _money(s.equity - daily_start),
        "weekly_pnl": _money(s.equity - weekly_start),
        "daily_drawdown_pct": _ratio(accounting.drawdown_pct(s.equity, daily_start)),
        "weekly_drawdown_pct": _ratio(accounting.drawdown_pct(s.equity, weekly_start)),
        "total_drawdown_pct": _ratio(accounting.drawdown_pct(s.equity, s.curve.peak)),
        "drawdown_status": v.status,
        "limits": s.limits.as_dict(),
        "blocked_symbols": v.blocked,
        "heat_capped": v.heat_capped is not None,
        "heat_capped_reason": v.heat_capped,
        "open_risk_usd": risk_usd,
        "portfolio_heat": heat,
        "open_symbols": [t.get("symbol") for t in s.open_trades],
        "positions": _positions(s.open_trades, s.equity),
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
            "trades": [c.id for c in sorted(group, key=_number)],
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


def derive_all(log: Ledger | Sequence[Mapping[str, Any]], now: datetime,
               limits: RiskLimits | None = None) -> dict[str, dict[str, Any]]:
    """All four derived files, by file name, from one pass over the log."""
    s = snapshot(log, now, limits)
    return {name: project(s) for name, project in PROJECTIONS.items()}
