"""An independent reference for derived files: key numbers computed straight from the log.

The derived-file scenarios compare what a reconciler wrote with a fresh rebuild by the same
library (:mod:`tradestore_harness.derived`); a derivation that is consistently wrong would
agree with itself. This module recomputes, from the trade log alone and the formulas of
``docs/DERIVED.md``, without importing the library's derivation or accounting code, the numbers
a user reads first: counts, realized P&L, equity, open positions and open symbols.
:func:`check` compares them with the derived files.
"""

from __future__ import annotations

import json
import math
from typing import Any, Mapping

TOLERANCE = 1e-6  # the library rounds money to 8 decimals; this is far coarser than any bug


def _partials(trade: Mapping) -> float:
    return math.fsum(float(p.get("pnl_usd") or 0.0) for p in trade.get("partial_exits") or [])


def _net(trade: Mapping, schema: object) -> float:
    """Net P&L of a closed trade (``docs/FORMAT.md``): in the seed's meaning (seed logs and
    schema 2) ``pnl_usd`` is the final exit on the remaining size, so the partial exits are
    added; schema 1 logs stored the net itself in ``pnl_usd``."""
    final = float(trade.get("pnl_usd") or 0.0)
    # to the cent: every amount is whole cents, whose doubles need not sum to a whole cent
    return round(final if schema == 1 else final + _partials(trade), 2)


def expected(document: Mapping, starting_capital: float) -> dict[str, dict[str, Any]]:
    """File name -> {key -> value} that the derived files of ``document`` must hold."""
    trades = document.get("trades", [])
    closed = [t for t in trades if t.get("status") == "CLOSED"]
    open_ = [t for t in trades if t.get("status") == "OPEN"]
    nets = [_net(t, document.get("schema")) for t in closed]
    closed_pnl = math.fsum(nets)
    open_partial = math.fsum(_partials(t) for t in open_)
    equity = starting_capital + closed_pnl + open_partial
    wins = sum(n > 0 for n in nets)
    counts = {"total_trades": len(closed), "winning_trades": wins, "losing_trades": len(closed) - wins}
    portfolio = {**counts, "open_positions": len(open_), "trades_in_log": len(trades),
                 "breakeven_trades": sum(n == 0 for n in nets), "closed_pnl": closed_pnl,
                 "open_partial_pnl": open_partial, "realized_pnl": closed_pnl + open_partial,
                 "balance": equity, "current_equity": equity,
                 "positions": [t.get("id") for t in open_]}
    return {
        "portfolio.json": portfolio,
        "equity.json": {**counts, "current_equity": equity, "total_pnl": closed_pnl,
                        "win_rate": round(wins / len(closed) * 100, 4) if closed else 0.0},  # percent: 4 places
        "risk_state.json": {"open_positions": len(open_), "current_value": equity,
                            "open_symbols": [t.get("symbol") for t in open_]},
    }


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return abs(a - b) <= TOLERANCE * max(1.0, abs(a), abs(b))
    return a == b


def check(name: str, files: Mapping[str, Any], document: Mapping, starting_capital: float = 5000,
          prop: str = "derived-correct") -> list[tuple[str, str]]:
    """Findings where ``files`` (file name -> parsed document) disagree with :func:`expected`."""
    found = []
    for file_name, wanted in expected(document, starting_capital).items():
        doc = files.get(file_name)
        if not isinstance(doc, dict):
            continue  # missing or unreadable: the heal/consistency checks report that
        for key, value in wanted.items():
            have = doc.get(key)
            if key == "positions" and isinstance(have, list):
                have = [p.get("id") if isinstance(p, dict) else p for p in have]
            if not _same(have, value):
                found.append((prop, f"{name}: {file_name} {key} is {have!r}, the log says {value!r} "
                                    f"(computed from the log by docs/DERIVED.md, not by the library)"))
    return found


def check_named(name: str, files: Mapping[str, Any], versions: Mapping[str, bytes], starting_capital: float = 5000,
                prop: str = "derived-correct") -> list[tuple[str, str]]:
    """:func:`check` against the committed log version the files name in ``_meta.source``
    (nothing when they name none or an unknown one: the consistency checks report that)."""
    shas = {((d.get("_meta") or {}).get("source") or {}).get("sha256") for d in files.values() if isinstance(d, dict)}
    data = versions.get(shas.pop()) if len(shas) == 1 else None
    if data is None:
        return []
    return check(name, files, json.loads(data), starting_capital, prop)
