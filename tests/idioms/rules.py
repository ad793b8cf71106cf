"""The trading rules of the idiom stores, as a bot author writes them: pure functions over the log.

Written from the specification (docs/FORMAT.md: the record, the arithmetic and the four risk
rules), not from tradestore's code, and importing nothing of it, so that the stores built on it
test the harness rather than agree with the library by construction. Every idiom store keeps its
trades in the one document ``{"schema": 2, "next_id": N, "trades": [...]}`` and changes it only
through the functions here; how it locks, reads and writes that document is its idiom.

Errors are plain exceptions (the harness counts any exception as a rejection): :class:`Rejected`
names the risk check (``duplicate_symbol``, ``position_cap``, ``loss_cap``,
``correlation_limit``), :class:`CorruptLog` an unreadable log, which is never taken for an empty
one.
"""

from __future__ import annotations

import copy
import json
import math
import re
from datetime import datetime, timezone

DEFAULT_GROUPS = {
    "crypto_majors": ["BTC", "ETH"],
    "crypto_l1": ["SOL", "AVAX", "ADA", "DOT", "NEAR", "ATOM"],
    "crypto_memes": ["DOGE", "SHIB", "PEPE", "WIF", "BONK"],
    "us_indices": ["SPY", "QQQ", "IWM", "DIA", "ES", "NQ"],
    "precious_metals": ["GLD", "SLV", "XAU", "XAG", "GC", "SI"],
}
DEFAULTS = {
    "max_positions": 7,
    "starting_capital": 5000.0,
    "correlation_groups": DEFAULT_GROUPS,
    "max_corr_group_risk_pct": 4.0,
    "asset_consecutive_loss_cap": 3,
}
EDITABLE = ("stop_price", "target_price", "notes", "grade", "setup_type")
_ID = re.compile(r"^T(\d+)$")


class BotError(Exception):
    """Any refusal of the bot's store."""


class BadInput(BotError, ValueError):
    """An argument is malformed; the message names it."""


class Rejected(BotError):
    """A risk rule refused the trade; ``check`` names the rule."""

    def __init__(self, check: str, reason: str) -> None:
        super().__init__(f"{check}: {reason}")
        self.check = check


class UnknownTrade(BotError, LookupError):
    """No trade has this id."""


class NotOpen(BotError):
    """The trade is already closed."""


class CorruptLog(BotError):
    """The log cannot be read; it must be left as it is, not replaced by an empty one."""


def limits_from(options: dict) -> dict:
    """The rules' limits: the known keyword options over :data:`DEFAULTS` (others ignored)."""
    limits = {k: options[k] for k in DEFAULTS if options.get(k) is not None}
    return {**DEFAULTS, **limits}


# -- the document ---------------------------------------------------------------------------------

def empty() -> dict:
    return {"schema": 2, "next_id": 1, "trades": []}


def _refuse_constant(name: str) -> None:
    raise ValueError(f"{name} is not JSON")


def parse(data: bytes, source: str = "trade log") -> dict:
    """The document in ``data``; raises :class:`CorruptLog` for anything but a well-formed log."""
    try:
        doc = json.loads(data.decode("utf-8"), parse_constant=_refuse_constant)
    except (UnicodeDecodeError, ValueError) as exc:
        raise CorruptLog(f"{source} ({len(data)} bytes) is not readable JSON: {exc}") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("trades"), list):
        raise CorruptLog(f"{source} has no list of trades")
    numbers = []
    for trade in doc["trades"]:
        match = _ID.match(trade.get("id", "")) if isinstance(trade, dict) and isinstance(trade.get("id"), str) else None
        if match is None or trade.get("status") not in ("OPEN", "CLOSED") or not isinstance(trade.get("symbol"), str):
            raise CorruptLog(f"{source} holds a malformed trade record: {str(trade)[:80]}")
        numbers.append(int(match.group(1)))
    next_id = doc.get("next_id")
    if next_id is not None and (not isinstance(next_id, int) or isinstance(next_id, bool) or next_id < 1):
        raise CorruptLog(f"{source}: next_id {next_id!r} is not a positive integer")
    doc["next_id"] = max([next_id or 1] + [n + 1 for n in numbers])
    doc.setdefault("schema", 2)
    return doc


def dumps(doc: dict) -> bytes:
    """The document as strict JSON (a NaN can never reach the disk)."""
    return json.dumps(doc, indent=2, allow_nan=False).encode("utf-8")


# -- values ---------------------------------------------------------------------------------------

def _now() -> str:
    return datetime.now(timezone.utc).isoformat()


def _price(name: str, value) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise BadInput(f"{name}={value!r}: must be a finite number above 0")
    return float(value)


def _text(name: str, value) -> str:
    if not isinstance(value, str) or len(value) > 10_000:
        raise BadInput(f"{name}: must be a string of at most 10,000 characters")
    return value


def symbol_key(symbol) -> str:
    if not isinstance(symbol, str) or not symbol.strip() or len(symbol.strip()) > 32 or any(c.isspace() for c in symbol.strip()):
        raise BadInput(f"symbol={symbol!r}: must be 1-32 characters without spaces")
    return symbol.strip().upper()


def _sign(trade: dict) -> int:
    return 1 if trade["direction"] == "LONG" else -1


def _initial_risk(trade: dict) -> float:
    return abs(trade["entry_price"] - trade.get("original_stop", trade["stop_price"])) * trade.get("original_size", trade["size"])


def net(trade: dict) -> float:
    """A trade's net P&L: its final exit's pnl_usd plus its partial exits'."""
    return math.fsum([trade.get("pnl_usd") or 0.0, *(p["pnl_usd"] for p in trade.get("partial_exits") or [])])


def equity(doc: dict, limits: dict) -> float:
    """Starting capital plus realized P&L: every trade's net (an open trade's partial exits)."""
    return limits["starting_capital"] + math.fsum(net(t) for t in doc["trades"])


# -- opening: the checks, then the record ---------------------------------------------------------

def check_open(doc: dict, limits: dict, symbol, direction, entry, stop, target, size) -> tuple:
    """Validate an open and run the four risk rules on ``doc``; the normalised fields."""
    key = symbol_key(symbol)
    side = direction.strip().upper() if isinstance(direction, str) else direction
    if side not in ("LONG", "SHORT"):
        raise BadInput(f"direction={direction!r}: must be LONG or SHORT")
    entry, stop, target, size = (_price(n, v) for n, v in
                                 (("entry_price", entry), ("stop_price", stop), ("target_price", target), ("size", size)))
    long = side == "LONG"
    if (stop >= entry) if long else (stop <= entry):
        raise BadInput(f"stop_price={stop}: must be on the loss side of entry {entry}")
    if (target <= entry) if long else (target >= entry):
        raise BadInput(f"target_price={target}: must be on the profit side of entry {entry}")
    open_trades = [t for t in doc["trades"] if t["status"] == "OPEN"]
    if any(t["symbol"].strip().upper() == key for t in open_trades):
        raise Rejected("duplicate_symbol", f"{key} already has an open trade")
    if len(open_trades) >= limits["max_positions"]:
        raise Rejected("position_cap", f"{len(open_trades)} open trades, cap {limits['max_positions']}")
    cap = limits["asset_consecutive_loss_cap"]
    if cap:
        closed = sorted((t for t in doc["trades"] if t["status"] == "CLOSED" and t["symbol"].strip().upper() == key),
                        key=lambda t: (t.get("exit_time") or "", int(t["id"][1:])))
        if len(closed) >= cap and all(round(net(t), 2) <= 0 for t in closed[-cap:]):  # a loss: net to the cent <= 0
            raise Rejected("loss_cap", f"{key} lost its last {cap} trades")
    if equity(doc, limits) <= 0:
        raise Rejected("drawdown_halt", "the account has no equity left")
    risk = abs(entry - stop) * size
    budget = limits["max_corr_group_risk_pct"] / 100 * equity(doc, limits)
    for group, members in limits["correlation_groups"].items():
        names = {m.strip().upper() for m in members}
        if key in names:
            used = sum(_initial_risk(t) for t in open_trades if t["symbol"] in names)
            if used + risk > budget + 1e-9 * max(1.0, abs(budget)):
                raise Rejected("correlation_limit", f"{group}: {used:.2f} + {risk:.2f} over the budget {budget:.2f}")
    return key, side, entry, stop, target, size


def add_open(doc: dict, fields: tuple, setup_type="", grade="", notes="") -> dict:
    """Append the checked trade under the next id; return a copy of the record."""
    key, side, entry, stop, target, size = fields
    record = {
        "id": f"T{doc['next_id']:03d}", "symbol": key, "direction": side, "entry_price": entry,
        "stop_price": stop, "original_stop": stop, "target_price": target, "size": size,
        "original_size": size, "entry_time": _now(), "exit_price": None, "exit_time": None,
        "exit_reason": None, "pnl_usd": None, "pnl_pct": None, "r_multiple": None,
        "net_pnl_usd": None, "net_r_multiple": None, "status": "OPEN",
        "setup_type": _text("setup_type", setup_type), "grade": _text("grade", grade),
        "notes": _text("notes", notes), "partial_exits": [], "lessons": "",
    }
    doc["trades"].append(record)
    doc["next_id"] += 1
    return copy.deepcopy(record)


def open_trade(doc: dict, limits: dict, symbol, direction, entry_price, stop_price, target_price, size,
               setup_type="", grade="", notes="") -> dict:
    fields = check_open(doc, limits, symbol, direction, entry_price, stop_price, target_price, size)
    return add_open(doc, fields, setup_type, grade, notes)


# -- changing an open trade -----------------------------------------------------------------------

def find_open(doc: dict, trade_id) -> dict:
    trade = next((t for t in doc["trades"] if t["id"] == trade_id), None)
    if trade is None:
        raise UnknownTrade(f"no trade {trade_id!r}")
    if trade["status"] != "OPEN":
        raise NotOpen(f"{trade_id} is {trade['status']}")
    return trade


def close_trade(doc: dict, trade_id, exit_price, exit_reason="", lessons="") -> dict:
    trade = find_open(doc, trade_id)
    price = _price("exit_price", exit_price)
    per_unit = _sign(trade) * (price - trade["entry_price"])  # the final exit, of the remaining size
    distance = abs(trade["entry_price"] - trade.get("original_stop", trade["stop_price"]))
    trade.update({
        "exit_price": price, "exit_time": _now(), "exit_reason": _text("exit_reason", exit_reason),
        "pnl_usd": round(per_unit * trade["size"], 2), "pnl_pct": round(per_unit / trade["entry_price"] * 100, 2),
        "r_multiple": round(per_unit / distance, 2) if distance else 0.0, "status": "CLOSED",
        "lessons": _text("lessons", lessons),
    })
    total, risk = net(trade), _initial_risk(trade)
    trade.update({"net_pnl_usd": round(total, 2), "net_r_multiple": round(total / risk, 4) if risk > 0 else None})
    return copy.deepcopy(trade)


def partial_close(doc: dict, trade_id, close_pct, exit_price, reason="Partial TP") -> dict:
    trade = find_open(doc, trade_id)
    if isinstance(close_pct, bool) or not isinstance(close_pct, (int, float)) or not 0 < close_pct < 1:
        raise BadInput(f"close_pct={close_pct!r}: must be a fraction between 0 and 1")
    price = _price("exit_price", exit_price)
    closed = round(trade["size"] * close_pct, 6)  # sizes to 6 decimals, P&L to cents
    remaining = round(trade["size"] - closed, 6)
    if closed <= 0 or remaining <= 0:
        raise BadInput(f"close_pct={close_pct!r}: closes {closed} and leaves {remaining}; both must be > 0")
    trade["partial_exits"].append({
        "exit_price": price, "size_closed": closed,
        "pnl_usd": round(_sign(trade) * (price - trade["entry_price"]) * closed, 2),
        "reason": _text("reason", reason), "timestamp": _now(),
    })
    trade["size"] = remaining
    return copy.deepcopy(trade)


def update_trade(doc: dict, trade_id, updates) -> dict:
    trade = find_open(doc, trade_id)
    if not isinstance(updates, dict) or not updates:
        raise BadInput("updates: must be a non-empty dict")
    new = dict(trade)
    for name, value in updates.items():
        if name not in EDITABLE:
            raise BadInput(f"{name!r} cannot be updated (only {', '.join(EDITABLE)})")
        new[name] = _price(name, value) if name.endswith("_price") else _text(name, value)
    long = trade["direction"] == "LONG"
    if (new["target_price"] <= trade["entry_price"]) if long else (new["target_price"] >= trade["entry_price"]):
        raise BadInput(f"target_price={new['target_price']}: must be on the profit side of entry")
    if (new["stop_price"] >= new["target_price"]) if long else (new["stop_price"] <= new["target_price"]):
        raise BadInput(f"stop_price={new['stop_price']}: must be on the loss side of the target")
    trade.update(new)
    return copy.deepcopy(trade)
