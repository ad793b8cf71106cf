"""Synthetic trade histories for the benchmark, valid under tradestore's rules and format.

A history of ``n`` trades is mostly CLOSED trades (wins and losses, some with a partial exit)
and a few OPEN ones, with increasing ids, entry and exit times, and P&L figures computed with
the arithmetic of docs/FORMAT.md, so tradestore's integrity checks accept it and every store
starts from the same trades.
"""

from __future__ import annotations

import json
import random
from datetime import datetime, timedelta, timezone

__all__ = ["HISTORY_SYMBOLS", "WORKER_SYMBOLS", "CORRELATION_GROUPS", "build_history",
           "write_tradestore_log", "write_seed_log"]

HISTORY_SYMBOLS = [f"H{i:02d}" for i in range(40)]
# Each benchmark writer opens and closes its own symbol, so no write is rejected as a duplicate.
WORKER_SYMBOLS = [f"W{i}" for i in range(8)]
# Worker symbols share a group with the history's open trades, so the correlation check sums
# real open risk on every open instead of finding an empty group.
CORRELATION_GROUPS = {"bench": WORKER_SYMBOLS + HISTORY_SYMBOLS[:4]}
OPEN_IN_HISTORY = 2

_EPOCH = datetime(2024, 1, 1, tzinfo=timezone.utc)


def _iso(dt: datetime) -> str:
    return dt.isoformat(timespec="microseconds")


def build_history(n: int, seed: int = 6) -> tuple[list[dict], int]:
    """Return ``(trades, next_id)``: ``n`` trades, the last few OPEN, the rest CLOSED.

    Deterministic for a given ``(n, seed)``. Equity stays well above zero and no open trade's
    symbol is loss-capped, so the benchmark's own opens are never rejected by the history.
    """
    rng = random.Random(seed)
    trades: list[dict] = []
    n_open = min(OPEN_IN_HISTORY, n)
    for i in range(n):
        num = i + 1
        is_open = i >= n - n_open
        symbol = HISTORY_SYMBOLS[i - (n - n_open)] if is_open else rng.choice(HISTORY_SYMBOLS[n_open:])
        direction = "LONG" if rng.random() < 0.6 else "SHORT"
        sign = 1 if direction == "LONG" else -1
        entry = round(rng.uniform(50, 150), 2)
        stop = round(entry - sign * entry * 0.02, 2)
        target = round(entry + sign * entry * 0.04, 2)
        size = round(rng.uniform(0.1, 2.0), 3)
        entry_time = _EPOCH + timedelta(hours=num)
        t = {
            "id": f"T{num:03d}", "symbol": symbol, "direction": direction,
            "entry_price": entry, "stop_price": stop, "original_stop": stop,
            "target_price": target, "size": size, "original_size": size,
            "entry_time": _iso(entry_time), "exit_price": None, "exit_time": None,
            "exit_reason": None, "pnl_usd": None, "pnl_pct": None, "r_multiple": None,
            "net_pnl_usd": None, "net_r_multiple": None,
            "status": "OPEN", "setup_type": rng.choice(["RSI_Div", "Breakout", "Pullback", "Range"]),
            "grade": rng.choice("ABC"), "notes": "", "partial_exits": [], "lessons": "",
        }
        if not is_open:
            partial_pnl = 0.0
            if rng.random() < 0.1:  # some trades took partial profit first
                px = round(entry + sign * entry * 0.02, 2)
                closed = round(t["size"] * 0.5, 6)  # the format's (the seed's) rounding
                t["size"] = round(t["size"] - closed, 6)
                pp = round(sign * (px - entry) * closed, 2)
                partial_pnl = pp
                t["partial_exits"].append({
                    "exit_price": px, "size_closed": closed, "pnl_usd": pp, "reason": "Partial TP",
                    "timestamp": _iso(entry_time + timedelta(minutes=20)),
                })
            win = rng.random() < 0.55
            exit_price = target if win else stop
            move = sign * (exit_price - entry)  # pnl_usd, pnl_pct, r_multiple: the final exit's
            pnl = round(move * t["size"], 2)
            net = pnl + partial_pnl
            risk = abs(entry - stop) * t["original_size"]
            t.update(
                exit_price=exit_price, exit_time=_iso(entry_time + timedelta(minutes=40)),
                exit_reason="TP hit" if win else "SL hit", pnl_usd=pnl,
                pnl_pct=round(move / entry * 100, 2), r_multiple=round(move / abs(entry - stop), 2),
                net_pnl_usd=round(net, 2), net_r_multiple=round(net / risk, 4) if risk else None, status="CLOSED",
                lessons="held to plan" if win else "stopped out",
            )
        trades.append(t)
    return trades, n + 1


def write_tradestore_log(path: str, trades: list[dict], next_id: int) -> None:
    """Write a schema-2 trade log (compact, as tradestore writes it)."""
    with open(path, "w", encoding="utf-8") as f:
        json.dump({"schema": 2, "next_id": next_id, "trades": trades}, f,
                  separators=(",", ":"), allow_nan=False)


def write_seed_log(path: str, trades: list[dict], next_id: int) -> None:
    """Write the log as the seed's pattern keeps it: pretty-printed with ``indent=2``."""
    with open(path, "w", encoding="utf-8") as f:
        json.dump({"next_id": next_id, "trades": trades}, f, indent=2)
