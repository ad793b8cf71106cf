"""Seeded generator of valid trade logs for the derive and reconciler tests and benchmarks.

The logs follow the arithmetic of docs/FORMAT.md, which is the seed's (sizes of partial exits
rounded to 6 decimals, P&L to cents, a closed trade's pnl_usd that of its final exit on the
remaining size, the net beside it), without going through the store, so 100,000 trades take a
second.
The tests below check the generator itself, so a broken generator cannot pass silently.
"""

from __future__ import annotations

import math
import random
from datetime import datetime, timedelta, timezone

SYMBOLS = ("BTC", "ETH", "SOL", "AVAX", "DOGE", "SPY", "QQQ", "GLD", "XAU", "LINK", "ADA", "NQ")
SETUPS = ("RSI_Div", "Breakout", "Pullback", "", "Range_Fade")
START = datetime(2026, 1, 5, 9, 30, tzinfo=timezone.utc)


def _pnl(sign: int, entry: float, exit_price: float, qty: float) -> float:
    return round(sign * (exit_price - entry) * qty, 2)


def make_trades(n: int, seed: int, *, open_tail: int = 3, start: datetime = START,
                spacing_minutes: float = 90.0) -> list[dict]:
    """``n`` trades in open order; the last ``open_tail`` stay OPEN (some with partial exits)."""
    rng = random.Random(seed)
    trades = []
    t = start
    for i in range(1, n + 1):
        t = t + timedelta(minutes=rng.uniform(1, 2 * spacing_minutes))
        direction = rng.choice(("LONG", "SHORT"))
        sign = 1 if direction == "LONG" else -1
        entry = round(rng.uniform(10, 70000), 2)
        dist = entry * rng.uniform(0.005, 0.05)
        stop = round(entry - sign * dist, 6)
        target = round(entry + sign * dist * rng.uniform(1, 3), 6)
        size = round(rng.uniform(0.01, 50) * 100 / entry, 8) or 0.001
        # the OPEN tail takes distinct symbols: the store allows one OPEN trade per symbol
        symbol = SYMBOLS[(n - i) % len(SYMBOLS)] if i > n - open_tail else rng.choice(SYMBOLS)
        trade = {
            "id": f"T{i:03d}", "symbol": symbol, "direction": direction,
            "entry_price": entry, "stop_price": stop, "original_stop": stop,
            "target_price": target, "size": size, "original_size": size,
            "entry_time": t.isoformat(), "exit_price": None, "exit_time": None,
            "exit_reason": None, "pnl_usd": None, "pnl_pct": None, "r_multiple": None,
            "net_pnl_usd": None, "net_r_multiple": None, "status": "OPEN", "setup_type": rng.choice(SETUPS), "grade": rng.choice("ABC"),
            "notes": "", "partial_exits": [], "lessons": "",
        }
        when = t
        for _ in range(rng.choice((0, 0, 0, 1, 2))):
            when = when + timedelta(hours=rng.uniform(0.1, 30))
            price = round(entry + sign * dist * rng.uniform(-0.9, 2.5), 6)
            closed = round(trade["size"] * 0.5, 6)
            trade["size"] = round(trade["size"] - closed, 6)
            trade["partial_exits"].append({"exit_price": price, "size_closed": closed,
                                           "pnl_usd": _pnl(sign, entry, price, closed),
                                           "reason": "Partial TP", "timestamp": when.isoformat()})
        if i <= n - open_tail:
            when = when + timedelta(hours=rng.uniform(0.1, 60))
            roll = rng.random()
            price = entry if roll < 0.05 else round(entry + sign * dist * rng.uniform(-1.2, 2.0), 6)
            rest = _pnl(sign, entry, price, trade["size"])
            net = math.fsum([rest, *(p["pnl_usd"] for p in trade["partial_exits"])])
            move = sign * (price - entry)
            risk = abs(entry - stop) * size
            trade.update(exit_price=price, exit_time=when.isoformat(), exit_reason="TP hit",
                         pnl_usd=rest, pnl_pct=round(move / entry * 100, 2),
                         r_multiple=round(move / abs(entry - stop), 2) if risk else 0.0,
                         net_pnl_usd=round(net, 2), net_r_multiple=round(net / risk, 4) if risk else None,
                         status="CLOSED")
        trades.append(trade)
    return trades


def make_log(n: int, seed: int, **kw) -> dict:
    trades = make_trades(n, seed, **kw)
    return {"schema": 2, "next_id": n + 1, "trades": trades}


def test_generator_follows_the_format_arithmetic():
    trades = make_trades(300, seed=7)
    assert [t["id"] for t in trades] == [f"T{i:03d}" for i in range(1, 301)]
    assert sum(t["status"] == "OPEN" for t in trades) == 3
    for t in trades:
        done = math.fsum(p["size_closed"] for p in t["partial_exits"])
        assert abs(done + t["size"] - t["original_size"]) <= 1e-6 * len(t["partial_exits"]) + 1e-12
        if t["status"] == "CLOSED":
            s = 1 if t["direction"] == "LONG" else -1
            rest = s * (t["exit_price"] - t["entry_price"]) * t["size"]
            assert abs(t["pnl_usd"] - rest) <= 0.005 + 1e-9  # the remaining size, to the cent
            partials = math.fsum(p["pnl_usd"] for p in t["partial_exits"])
            assert math.isclose(t["net_pnl_usd"], t["pnl_usd"] + partials, abs_tol=0.005)


def test_generator_is_seeded():
    assert make_trades(50, seed=3) == make_trades(50, seed=3)
    assert make_trades(50, seed=3) != make_trades(50, seed=4)
