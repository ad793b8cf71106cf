"""Risk checks: pure functions of a ledger and a proposed trade.

A check returns ``None`` to allow the trade or a reason (with the numbers) to reject it. The
store runs every check inside the same locked section as the write, so what a check saw is
still true when the trade is written (no time-of-check to time-of-use gap). Custom checks
passed as ``risk_checks=`` have the same shape; the check's name in :class:`RiskRejected`
is its ``check_name`` attribute or, failing that, its ``__name__``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING

from .errors import RiskRejected, describe
from .values import add_hours, is_finite_number, limit_count, limit_number  # noqa: F401 (is_finite_number: re-exported)

if TYPE_CHECKING:
    from .ledger import Ledger

# Symbols whose prices move together; opening several at once multiplies one bet.
DEFAULT_CORRELATION_GROUPS: dict[str, tuple[str, ...]] = {
    "crypto_majors": ("BTC", "ETH"),
    "crypto_l1": ("SOL", "AVAX", "ADA", "DOT", "NEAR", "ATOM"),
    "crypto_memes": ("DOGE", "SHIB", "PEPE", "WIF", "BONK"),
    "us_indices": ("SPY", "QQQ", "IWM", "DIA", "ES", "NQ"),
    "precious_metals": ("GLD", "SLV", "XAU", "XAG", "GC", "SI"),
}

_TOLERANCE = 1e-9  # relative slack so that a budget filled exactly is not rejected by rounding


@dataclass(frozen=True)
class RiskLimits:
    """The limits a store enforces. ``None`` disables an optional limit."""

    max_positions: int = 7
    starting_capital: float = 5000.0
    correlation_groups: Mapping[str, Iterable[str]] = field(
        default_factory=lambda: dict(DEFAULT_CORRELATION_GROUPS)
    )
    max_corr_group_risk_pct: float = 4.0
    asset_consecutive_loss_cap: int | None = 3
    loss_cap_cooldown_hours: float | None = None  # None: a loss-capped symbol stays blocked
    max_drawdown_pct: float | None = None  # halt new trades at this drawdown from peak equity
    max_daily_loss_pct: float | None = None  # halt new trades after this loss since 00:00 UTC
    max_portfolio_heat_pct: float | None = None  # cap on total open risk, % of equity

    def __post_init__(self) -> None:
        # A NaN or a string here would silently disable a cap or fail every later open, so
        # limits are checked once, when the store is built, naming the option, and kept as
        # the plain int or float the value rules make of them (a Decimal stays no Decimal).
        def put(name: str, value: object) -> None:
            object.__setattr__(self, name, value)

        put("max_positions", limit_count("max_positions", self.max_positions, positive=True))
        put("asset_consecutive_loss_cap",
            limit_count("asset_consecutive_loss_cap", self.asset_consecutive_loss_cap, optional=True))
        put("starting_capital", limit_number("starting_capital", self.starting_capital, positive=True))
        put("max_corr_group_risk_pct", limit_number("max_corr_group_risk_pct", self.max_corr_group_risk_pct))
        for name in ("loss_cap_cooldown_hours", "max_drawdown_pct", "max_daily_loss_pct", "max_portfolio_heat_pct"):
            put(name, limit_number(name, getattr(self, name), optional=True))
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

    def groups_of(self, symbol: str) -> list[str]:
        """Names of the correlation groups ``symbol`` belongs to (case-insensitive)."""
        return [
            name
            for name, members in self.correlation_groups.items()
            if symbol in {m.strip().upper() for m in members}
        ]


@dataclass(frozen=True)
class Proposal:
    """A trade about to be opened, as the checks see it (already validated and normalised)."""

    symbol: str
    direction: str
    entry_price: float
    stop_price: float
    target_price: float
    size: float
    now: datetime
    limits: RiskLimits

    @property
    def risk(self) -> float:
        """USD lost if the stop is hit: |entry - stop| x size."""
        return abs(self.entry_price - self.stop_price) * self.size


Check = Callable[["Ledger", Proposal], "str | None"]


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
    """Opening risk of the OPEN trades in correlation ``group`` (symbols compared normalised)."""
    members = {m.strip().upper() for m in limits.correlation_groups[group]}
    return sum(ledger.initial_risk(t) for t in ledger.open_trades() if t["symbol"].strip().upper() in members)


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
    if len(recent) < cap or any((t.get("pnl_usd") or 0) > 0 for t in recent):
        return None
    last_exit = recent[-1]["exit_time"]
    cooldown = p.limits.loss_cap_cooldown_hours
    if cooldown is not None:
        until = add_hours(ledger.time_key(last_exit), cooldown)
        if p.now >= until:
            return None
        return f"{p.symbol}: last {cap} closed trades lost; blocked until {until.isoformat()}"
    return f"{p.symbol}: last {cap}/{cap} closed trades lost (net P&L <= 0); blocked"


def drawdown_halt(ledger: Ledger, p: Proposal) -> str | None:
    """Halt new trades when realized equity is too far below its peak, or today's loss too big.

    Decided from the trade log itself under the lock, never from derived files (which may be
    stale or damaged).
    """
    limits = p.limits
    if limits.max_drawdown_pct is not None:
        peak, equity = ledger.peak_equity(limits.starting_capital), ledger.equity(limits.starting_capital)
        drawdown = 0.0 if peak <= 0 else (peak - equity) / peak * 100.0
        if drawdown >= limits.max_drawdown_pct:
            return (
                f"drawdown {drawdown:.2f}% from peak equity {peak:.2f} reached the "
                f"{limits.max_drawdown_pct:g}% halt"
            )
    if limits.max_daily_loss_pct is not None:
        midnight = p.now.astimezone(timezone.utc).replace(hour=0, minute=0, second=0, microsecond=0)
        start = ledger.equity_at(limits.starting_capital, midnight)
        equity = ledger.equity(limits.starting_capital)
        loss = 0.0 if start <= 0 else (start - equity) / start * 100.0
        if loss >= limits.max_daily_loss_pct:
            return f"daily loss {loss:.2f}% since 00:00 UTC reached the {limits.max_daily_loss_pct:g}% halt"
    return None


def portfolio_heat(ledger: Ledger, p: Proposal) -> str | None:
    """Cap on the total open risk (current stops) of all OPEN trades, new trade included, as % of equity."""
    if p.limits.max_portfolio_heat_pct is None:
        return None
    equity = ledger.equity(p.limits.starting_capital)
    budget = p.limits.max_portfolio_heat_pct / 100.0 * equity
    used = sum(ledger.open_risk(t) for t in ledger.open_trades())
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


def enforce(ledger: Ledger, proposal: Proposal, extra_checks: Iterable[Check] = ()) -> None:
    """Run the built-in checks, then ``extra_checks``; raise RiskRejected at the first refusal."""
    for check in (*BUILTIN_CHECKS, *extra_checks):
        reason = check(ledger, proposal)
        if reason is not None:
            raise RiskRejected(check_name(check), str(reason))


def first_rejection(ledger: Ledger, proposal: Proposal, extra_checks: Iterable[Check] = ()) -> tuple[str, str] | None:
    """``(check, reason)`` of the first check that refuses, or None (advisory use)."""
    try:
        enforce(ledger, proposal, extra_checks)
    except RiskRejected as exc:
        return exc.check, exc.reason
    return None

