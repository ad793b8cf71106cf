"""Limits and risk checks: the one definition of every limit, its default and its verdict.

:class:`RiskLimits` is the one configuration object: :class:`~tradestore.store.TradeStore`,
:class:`~tradestore.reconciler.StateReconciler`, the command line and ``tradestore.toml`` all
build it with the same names and defaults, and ``risk_state.json`` reports its verdicts by
calling the very checks below. So a derived file says "blocked", "halted" or "heat capped"
exactly when ``open_trade`` under the same limits refuses for that reason.

A check is a pure function of a ledger and a proposed trade that returns ``None`` to allow the
trade or a reason (with the numbers) to reject it. The store runs every check inside the same
locked section as the write, so what a check saw is still true when the trade is written (no
time-of-check to time-of-use gap). Custom checks passed as ``risk_checks=`` have the same
shape; the check's name in :class:`RiskRejected` is its ``check_name`` attribute or, failing
that, its ``__name__``. The money comes from :mod:`tradestore.accounting` through the ledger.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, fields, replace
from datetime import datetime
from typing import Any

from . import accounting
from .errors import RiskRejected, describe
from .ledger import Ledger, Proposal
from .values import add_hours, is_finite_number, limit_count, limit_number, symbol_key

__all__ = ["BUILTIN_CHECKS", "DEFAULT_CORRELATION_GROUPS", "Check", "Proposal", "RiskLimits",
           "check_name", "enforce", "first_rejection", "is_finite_number", "probe"]

# Symbols whose prices move together; opening several at once multiplies one bet.
DEFAULT_CORRELATION_GROUPS: dict[str, tuple[str, ...]] = {
    "crypto_majors": ("BTC", "ETH"),
    "crypto_l1": ("SOL", "AVAX", "ADA", "DOT", "NEAR", "ATOM"),
    "crypto_memes": ("DOGE", "SHIB", "PEPE", "WIF", "BONK"),
    "us_indices": ("SPY", "QQQ", "IWM", "DIA", "ES", "NQ"),
    "precious_metals": ("GLD", "SLV", "XAU", "XAG", "GC", "SI"),
}

_TOLERANCE = 1e-9  # relative slack so that a budget filled exactly is not rejected by rounding
_COUNTS = frozenset({"max_positions", "asset_consecutive_loss_cap"})
_HALT_PCTS = ("max_drawdown_pct", "max_daily_loss_pct", "max_weekly_loss_pct", "caution_drawdown_pct")


@dataclass(frozen=True)
class RiskLimits:
    """Every limit of the account, with its one default. ``None`` disables an optional limit.

    The drawdown limits are percentages > 0: ``max_drawdown_pct`` from peak equity,
    ``max_daily_loss_pct`` from equity at 00:00 UTC, ``max_weekly_loss_pct`` from equity at
    00:00 UTC on Monday. ``caution_drawdown_pct`` never refuses anything: it only makes the
    derived ``drawdown_status`` read CAUTION.
    """

    max_positions: int = 7
    starting_capital: float = 5000.0
    correlation_groups: Mapping[str, Iterable[str]] = field(
        default_factory=lambda: dict(DEFAULT_CORRELATION_GROUPS)
    )
    max_corr_group_risk_pct: float = 4.0
    asset_consecutive_loss_cap: int | None = 3
    loss_cap_cooldown_hours: float | None = None  # None: a loss-capped symbol stays blocked
    max_drawdown_pct: float | None = None
    max_daily_loss_pct: float | None = None
    max_weekly_loss_pct: float | None = None
    max_portfolio_heat_pct: float | None = None  # cap on total open risk, % of equity
    caution_drawdown_pct: float | None = 10.0

    def __post_init__(self) -> None:
        # A NaN or a string here would silently disable a cap or fail every later open, so
        # limits are checked once, when the store or reconciler is built, naming the option, and
        # kept as the plain int or float the value rules make of them (a Decimal stays no Decimal).
        def put(name: str, value: Any) -> None:
            object.__setattr__(self, name, value)

        put("max_positions", limit_count("max_positions", self.max_positions, positive=True))
        put("asset_consecutive_loss_cap",
            limit_count("asset_consecutive_loss_cap", self.asset_consecutive_loss_cap, optional=True))
        put("starting_capital", limit_number("starting_capital", self.starting_capital, positive=True))
        put("max_corr_group_risk_pct", limit_number("max_corr_group_risk_pct", self.max_corr_group_risk_pct))
        for name in ("loss_cap_cooldown_hours", "max_portfolio_heat_pct"):
            put(name, limit_number(name, getattr(self, name), optional=True))
        for name in _HALT_PCTS:  # 0 would halt a flat account, so a halt limit is > 0
            put(name, limit_number(name, getattr(self, name), optional=True, positive=True))
        groups = self.correlation_groups
        copied: dict[str, tuple[str, ...]] = {}
        if isinstance(groups, Mapping):
            for name, members in groups.items():
                # a bare string is refused: tuple("BTC") would be three symbols
                if isinstance(members, str) or not isinstance(members, Iterable):
                    break
                copied[name] = tuple(members)  # copied: the caller's lists cannot change it later
                if not isinstance(name, str) or not all(isinstance(m, str) for m in copied[name]):
                    break
            else:
                put("correlation_groups", copied)
                return
        raise ValueError(f"correlation_groups={describe(groups)}: must map group names to lists of symbols")

    @classmethod
    def from_options(cls, limits: RiskLimits | None = None, **options: Any) -> RiskLimits:
        """``limits`` (default: every default) with the keyword ``options`` replacing fields.

        The one way the store, the reconciler and the command line build their limits, so
        they share every name and default. An unknown option raises TypeError naming it.
        """
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(options) - known)
        if unknown:
            raise TypeError(f"unknown limit option(s) {unknown}; the limits are {sorted(known)}")
        if limits is not None and not isinstance(limits, cls):
            raise TypeError(f"limits={describe(limits)}: expected a RiskLimits")
        if options.get("correlation_groups", True) is None:
            del options["correlation_groups"]  # None: the default groups
        return replace(limits, **options) if limits is not None else cls(**options)

    @classmethod
    def option_types(cls) -> dict[str, type]:
        """Every numeric limit's name and type: the keyword options, flags and TOML keys."""
        return {f.name: int if f.name in _COUNTS else float for f in fields(cls) if f.name != "correlation_groups"}

    def groups_of(self, symbol: str) -> list[str]:
        """Names of the correlation groups ``symbol`` belongs to (case-insensitive)."""
        key = symbol_key(symbol)
        return [name for name, members in self.correlation_groups.items()
                if key in {symbol_key(m) for m in members}]

    def as_dict(self) -> dict[str, Any]:
        """The limits as JSON types (what a derived file records it was built under)."""
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        out["correlation_groups"] = {k: list(v) for k, v in self.correlation_groups.items()}
        return out


Check = Callable[[Ledger, Proposal], "str | None"]


def probe(symbol: str, now: datetime, limits: RiskLimits, direction: str = "LONG") -> Proposal:
    """A trade of ``symbol`` with no risk of its own: asks only what the account allows."""
    return Proposal(symbol_key(symbol), direction, 1.0, 1.0, 1.0, 0.0, now, limits)


def _exceeds(total: float, budget: float) -> bool:
    return total > budget + _TOLERANCE * max(1.0, abs(budget))


def position_cap(ledger: Ledger, p: Proposal) -> str | None:
    """Rule 1: at most ``max_positions`` OPEN trades."""
    count = len(ledger.open_trades())
    if count >= p.limits.max_positions:
        return f"{count}/{p.limits.max_positions} positions open"
    return None


def duplicate_symbol(ledger: Ledger, p: Proposal) -> str | None:
    """Rule 2: at most one OPEN trade per symbol."""
    existing = ledger.open_trade_for(p.symbol)
    if existing is not None:
        return f"{p.symbol} already has OPEN trade {existing['id']}"
    return None


def group_risk(ledger: Ledger, limits: RiskLimits, group: str) -> float:
    """Initial risk of the OPEN trades in correlation ``group`` (symbols compared normalised)."""
    members = {symbol_key(m) for m in limits.correlation_groups[group]}
    return sum(accounting.initial_risk(t) for t in ledger.open_trades() if symbol_key(t["symbol"]) in members)


def correlation_limit(ledger: Ledger, p: Proposal) -> str | None:
    """Rule 3: open risk per correlation group, new trade included, within the % of equity."""
    equity = ledger.equity(p.limits.starting_capital)
    budget = p.limits.max_corr_group_risk_pct / 100.0 * equity
    for group in p.limits.groups_of(p.symbol):
        used = group_risk(ledger, p.limits, group)
        if _exceeds(used + p.risk, budget):
            return (
                f"group {group}: open risk {used:.2f} + new {p.risk:.2f} = {used + p.risk:.2f} USD "
                f"exceeds {budget:.2f} USD ({p.limits.max_corr_group_risk_pct:g}% of equity {equity:.2f})"
            )
    return None


def loss_cap(ledger: Ledger, p: Proposal) -> str | None:
    """Rule 4: block a symbol whose last N closed trades all lost (net P&L <= 0).

    With ``loss_cap_cooldown_hours`` the block lifts that long after the last losing exit.
    """
    cap = p.limits.asset_consecutive_loss_cap
    if not cap:
        return None
    recent = ledger.closed_trades_of(p.symbol)[-cap:]
    if len(recent) < cap or not all(accounting.is_loss(t) for t in recent):
        return None
    cooldown = p.limits.loss_cap_cooldown_hours
    if cooldown is not None:
        until = add_hours(accounting.exit_at(recent[-1]), cooldown)
        if p.now >= until:
            return None
        return f"{p.symbol}: last {cap} closed trades lost; blocked until {until.isoformat()}"
    return f"{p.symbol}: last {cap}/{cap} closed trades lost (net P&L <= 0); blocked"


def loss_capped(ledger: Ledger, now: datetime, limits: RiskLimits) -> dict[str, str]:
    """Every symbol :func:`loss_cap` blocks at ``now``: ``{symbol key: reason}``, sorted by key
    (one entry per symbol, however the log spells it), as ``open_trade`` decides."""
    blocked = {}
    for symbol in ledger.closed_symbols():
        reason = loss_cap(ledger, probe(symbol, now, limits))
        if reason is not None:
            blocked[symbol] = reason
    return blocked


def halt_reasons(ledger: Ledger, now: datetime, limits: RiskLimits) -> list[str]:
    """Every reason the account is halted at ``now``; empty when new trades may open.

    Equity at or below 0 always halts. A drawdown limit ``L`` is reached when the loss from
    its reference (peak equity; equity at 00:00 UTC today; on Monday) is ``>= L`` percent, or
    when that reference is 0 or less. Decided from the trade log itself, never from derived
    files, which may be stale.
    """
    capital = limits.starting_capital
    equity = ledger.equity(capital)
    reasons = [f"equity {equity:.2f} <= 0"] if equity <= 0 else []
    references = (
        ("max_drawdown_pct", "drawdown from peak equity", lambda: ledger.peak_equity(capital)),
        ("max_daily_loss_pct", "loss since 00:00 UTC", lambda: ledger.equity_at(capital, accounting.day_start(now))),
        ("max_weekly_loss_pct", "loss since Monday 00:00 UTC",
         lambda: ledger.equity_at(capital, accounting.week_start(now))),
    )
    for name, label, reference in references:
        limit = getattr(limits, name)
        if limit is None:
            continue
        start = reference()
        drawdown = accounting.drawdown_pct(equity, start)
        if drawdown is None:
            reasons.append(f"{label}: reference equity {start:.2f} <= 0 ({name} {limit:g}%)")
        elif -drawdown >= limit:
            reasons.append(f"{label} {-drawdown:.2f}% (from {start:.2f}) reached the {limit:g}% halt ({name})")
    return reasons


def drawdown_halt(ledger: Ledger, p: Proposal) -> str | None:
    """Refuse every new trade while the account is halted (see :func:`halt_reasons`)."""
    reasons = halt_reasons(ledger, p.now, p.limits)
    return "; ".join(reasons) if reasons else None


def portfolio_heat(ledger: Ledger, p: Proposal) -> str | None:
    """Cap on the total open risk of all OPEN trades, new trade included, as % of equity."""
    if p.limits.max_portfolio_heat_pct is None:
        return None
    equity = ledger.equity(p.limits.starting_capital)
    budget = p.limits.max_portfolio_heat_pct / 100.0 * equity
    used = accounting.total_open_risk(ledger.open_trades())
    if _exceeds(used + p.risk, budget):
        return (
            f"open risk {used:.2f} + new {p.risk:.2f} = {used + p.risk:.2f} USD exceeds "
            f"{budget:.2f} USD ({p.limits.max_portfolio_heat_pct:g}% of equity {equity:.2f})"
        )
    return None


BUILTIN_CHECKS: tuple[Check, ...] = (
    duplicate_symbol,
    position_cap,
    loss_cap,
    drawdown_halt,
    correlation_limit,
    portfolio_heat,
)


def check_name(check: Check) -> str:
    return getattr(check, "check_name", None) or getattr(check, "__name__", None) or repr(check)


def first_rejection(ledger: Ledger, proposal: Proposal, extra_checks: Iterable[Check] = ()) -> tuple[str, str] | None:
    """``(check, reason)`` of the first check that refuses (built-in ones first), or None."""
    for check in (*BUILTIN_CHECKS, *extra_checks):
        reason = check(ledger, proposal)
        if reason is not None:
            return check_name(check), str(reason)
    return None


def enforce(ledger: Ledger, proposal: Proposal, extra_checks: Iterable[Check] = ()) -> None:
    """Raise :class:`RiskRejected` naming the first check that refuses."""
    refusal = first_rejection(ledger, proposal, extra_checks)
    if refusal is not None:
        raise RiskRejected(*refusal)


def checked_open(ledger: Ledger, symbol, direction, entry_price, stop_price, target_price, size,
                 setup_type="", grade="", notes="", *, now: datetime, limits: RiskLimits,
                 checks: Iterable[Check] = ()) -> dict:
    """Open a trade in ``ledger`` the one way: the ledger validates, the checks decide, the
    ledger records. Raises InvalidTrade or RiskRejected having changed nothing."""
    proposal = ledger.propose(symbol, direction, entry_price, stop_price, target_price, size,
                              setup_type, grade, notes, now=now, limits=limits)
    enforce(ledger, proposal, checks)
    return ledger.record_open(proposal)
