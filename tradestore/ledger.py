"""Ledger: the trade log in memory and every business rule that changes it. Pure: no disk.

Each operation validates all of its input and runs its checks *before* it changes anything,
so an operation that raises leaves the ledger as it was. Records are plain dicts in the
format of ``docs/FORMAT.md``; the ledger owns them, so callers get copies.
"""

from __future__ import annotations

import copy
import json
import math
import sys
from collections.abc import Iterable, Mapping
from datetime import datetime, timezone
from typing import Any

from . import risk
from .document import CLOSED, OPEN, SCHEMA, loads_strict, parse_document  # noqa: F401 (re-exported)
from .errors import IntegrityError, InvalidTrade, TradeNotFound, TradeNotOpen
from .risk import Proposal, RiskLimits
from .values import (  # noqa: F401 (format_id, utc_iso... are re-exported for older imports)
    DIRECTIONS,
    MAX_ID_NUMBER,
    MONEY_DECIMALS,
    RATIO_DECIMALS,
    format_id,
    id_number,
    normalize_direction,
    normalize_symbol,
    parse_id,
    time_key,
    trade_number,
    trade_text,
    utc_iso,
)
from .values import ratio as _ratio


# Fields update_trade may change. Everything else that the format defines is protected:
# identity, status, entry, exits and P&L only change through open/close/partial_close.
UPDATABLE_FIELDS = frozenset({"stop_price", "target_price", "notes", "grade", "setup_type"})
PROTECTED_FIELDS = frozenset(
    {
        "id", "symbol", "direction", "entry_price", "original_stop", "size", "original_size",
        "entry_time", "exit_price", "exit_time", "exit_reason", "pnl_usd", "pnl_pct",
        "r_multiple", "status", "partial_exits", "lessons",
    }
)
_ENCODER = json.JSONEncoder(separators=(",", ":"), allow_nan=False)


_direction = normalize_direction


def _sign(direction: str) -> int:
    return 1 if direction == "LONG" else -1


def _check_stop_side(direction: str, entry: float, stop: float) -> None:
    if direction == "LONG" and stop >= entry:
        raise InvalidTrade("stop_price", stop, f"must be below entry_price {entry:g} for a LONG")
    if direction == "SHORT" and stop <= entry:
        raise InvalidTrade("stop_price", stop, f"must be above entry_price {entry:g} for a SHORT")


def _check_target_side(direction: str, entry: float, target: float) -> None:
    if direction == "LONG" and target <= entry:
        raise InvalidTrade("target_price", target, f"must be above entry_price {entry:g} for a LONG")
    if direction == "SHORT" and target >= entry:
        raise InvalidTrade("target_price", target, f"must be below entry_price {entry:g} for a SHORT")


def _fill_originals(trade: dict) -> None:
    """Give a trade from an older log its opening stop and size before anything changes them."""
    trade.setdefault("original_stop", trade["stop_price"])
    trade.setdefault("original_size", trade["size"])


class Ledger:
    """The trade log in memory: trades in id order, ``next_id``, and the rules that change them."""

    def __init__(self, trades: Iterable[dict] = (), next_id: int | None = None, extra: Mapping | None = None) -> None:
        self.trades: list[dict] = list(trades)
        highest = max((id_number(t["id"]) or 0 for t in self.trades), default=0)
        # A seed log has no next_id; a damaged one may lag its ids. Never reuse an id.
        self.next_id = max(next_id or 1, highest + 1)
        self.extra = dict(extra or {})  # unknown top-level keys, preserved
        self._index = {t["id"]: t for t in self.trades}
        self._cache: dict[str, Any] = {}
        self._encoded: dict[int, tuple[dict, bytes]] = {}  # id(record) -> (record, its JSON)
        self.changed: set[str] = set()  # ids touched since the last mark_clean()

    # -- loading and saving -------------------------------------------------------------

    @classmethod
    def from_json(cls, data: bytes | str, source: str = "trade log") -> Ledger:
        doc = parse_document(data, source)
        extra = {k: v for k, v in doc.items() if k not in ("schema", "next_id", "trades")}
        return cls(doc["trades"], doc.get("next_id"), extra)

    def to_document(self) -> dict[str, Any]:
        return {"schema": SCHEMA, "next_id": self.next_id, **self.extra, "trades": self.trades}

    def to_json(self) -> bytes:
        """Compact strict JSON; raises ValueError rather than write NaN or Infinity.

        Byte for byte ``json.dumps(self.to_document(), separators=(",", ":"), allow_nan=False)``.
        """
        # Encoding is most of a write's CPU on a long history, and CLOSED records never change
        # (every operation needs an OPEN trade and calls _touch), so their encodings are kept
        # between writes: a write encodes only the open and touched trades. Keyed by the record
        # object, not its id, so a damaged log with a repeated id cannot mix two records up.
        encoded = self._encoded
        parts = []
        for trade in self.trades:
            entry = encoded.get(id(trade))
            if entry is not None and entry[0] is trade:
                parts.append(entry[1])
                continue
            text = _ENCODER.encode(trade).encode()
            if trade.get("status") == CLOSED:
                encoded[id(trade)] = (trade, text)
            parts.append(text)
        head = _ENCODER.encode({"schema": SCHEMA, "next_id": self.next_id, **self.extra}).encode()
        return head[:-1] + b',"trades":[' + b",".join(parts) + b"]}"

    def copy(self) -> Ledger:
        return Ledger(copy.deepcopy(self.trades), self.next_id, copy.deepcopy(self.extra))

    def mark_clean(self) -> None:
        self.changed.clear()

    def merge(self, records: Iterable[dict], next_id: int) -> None:
        """Take newer versions of records from the store: a known id is replaced in place, a
        new one appended (``records`` in id order, every new id above the known ones), and
        ``next_id`` if higher. For a store that reads only what changed since its copy."""
        for record in records:
            current = self._index.get(record["id"])
            if current is None:
                self.trades.append(record)
                self._index[record["id"]] = record
            else:
                current.clear()
                current.update(record)
            self._touch(record["id"])
        self.next_id = max(self.next_id, next_id)
        self.mark_clean()

    def _touch(self, trade_id: str) -> None:
        self.changed.add(trade_id)
        self._cache.clear()
        self._encoded.pop(id(self._index[trade_id]), None)

    # -- queries ------------------------------------------------------------------------

    def distinct_id_count(self) -> int:
        """How many different ids the trades have (fewer than trades means a repeated id)."""
        return len(self._index)

    def get(self, trade_id: object) -> dict:
        """The trade ``trade_id`` names (see :func:`values.parse_id`: ``t001`` is ``T001``)."""
        trade = self._index.get(parse_id(trade_id)) if isinstance(trade_id, str) else None
        if trade is None:
            raise TradeNotFound(trade_id)
        return trade

    def _cached(self, key: str, compute):
        if key not in self._cache:
            self._cache[key] = compute()
        return self._cache[key]

    def open_trades(self) -> list[dict]:
        return self._cached("open", lambda: [t for t in self.trades if t["status"] == OPEN])

    def closed_trades(self) -> list[dict]:
        return self._cached("closed", lambda: [t for t in self.trades if t["status"] == CLOSED])

    def open_trade_for(self, symbol: str) -> dict | None:
        symbol = symbol.strip().upper()
        for trade in self.open_trades():
            if trade["symbol"].strip().upper() == symbol:
                return trade
        return None

    def open_symbols(self) -> list[str]:
        return [t["symbol"] for t in self.open_trades()]

    def closed_trades_of(self, symbol: str) -> list[dict]:
        """CLOSED trades of ``symbol`` ordered by exit time (then id)."""
        symbol = symbol.strip().upper()

        # Only the one symbol: every write clears the cache, and grouping and sorting every
        # symbol's whole history again was the largest cost of an open on a long log.
        def compute() -> list[dict]:
            trades = [t for t in self.closed_trades() if t["symbol"].strip().upper() == symbol]
            trades.sort(key=lambda t: (time_key(t.get("exit_time")), id_number(t["id"])))
            return trades
        return self._cached("closed_of:" + symbol, compute)

    time_key = staticmethod(time_key)

    @staticmethod
    def initial_risk(trade: Mapping) -> float:
        """|entry - original stop| x original size: what the trade risked when it was opened."""
        stop = trade.get("original_stop", trade.get("stop_price"))
        size = trade.get("original_size", trade.get("size"))
        return abs(trade["entry_price"] - stop) * size

    @staticmethod
    def open_risk(trade: Mapping) -> float:
        """What is still lost from entry if the current stop is hit; 0 once it is at or past entry."""
        sign = 1 if trade["direction"] == "LONG" else -1
        return max(0.0, sign * (trade["entry_price"] - trade["stop_price"])) * trade["size"]

    def realized_events(self) -> list[tuple[datetime, float]]:
        """Every realized P&L as (UTC time, USD), in time order.

        A CLOSED trade contributes its final exit (its net ``pnl_usd`` minus the partial exits,
        which are events of their own); an OPEN trade its partial exits.
        """
        def compute() -> list[tuple[datetime, float]]:
            events = []
            for trade in self.trades:
                partial_total = 0.0
                for part in trade.get("partial_exits") or ():
                    events.append((time_key(part.get("timestamp")), part.get("pnl_usd") or 0.0))
                    partial_total += part.get("pnl_usd") or 0.0
                if trade["status"] == CLOSED:
                    events.append((time_key(trade.get("exit_time")), (trade.get("pnl_usd") or 0.0) - partial_total))
            events.sort(key=lambda e: e[0])
            return events
        return self._cached("events", compute)

    def realized_pnl(self) -> float:
        def compute() -> float:
            total = sum(t.get("pnl_usd") or 0.0 for t in self.closed_trades())
            total += sum(p.get("pnl_usd") or 0.0 for t in self.open_trades() for p in t.get("partial_exits") or ())
            return total
        return self._cached("realized", compute)

    def equity(self, starting_capital: float) -> float:
        """Starting capital plus realized P&L (partial exits included)."""
        return starting_capital + self.realized_pnl()

    def equity_at(self, starting_capital: float, moment: datetime) -> float:
        """Realized equity counting only P&L realized before ``moment``."""
        cutoff = moment.astimezone(timezone.utc)
        return starting_capital + sum(pnl for when, pnl in self.realized_events() if when < cutoff)

    def peak_equity(self, starting_capital: float) -> float:
        equity = peak = starting_capital
        for _, pnl in self.realized_events():
            equity += pnl
            peak = max(peak, equity)
        return peak

    # -- operations ---------------------------------------------------------------------

    def propose(self, symbol, direction, entry_price, stop_price, target_price, size, *, now: datetime, limits: RiskLimits) -> Proposal:
        """Validate opening input; the normalised :class:`Proposal` the risk checks judge."""
        symbol = normalize_symbol(symbol)
        direction = _direction(direction)
        entry = trade_number("entry_price", entry_price)
        stop = trade_number("stop_price", stop_price)
        target = trade_number("target_price", target_price)
        size = trade_number("size", size)
        _check_stop_side(direction, entry, stop)
        _check_target_side(direction, entry, target)
        # Every later ratio (P&L %, R) divides by these; keep them normal finite numbers.
        for name, value in (("entry_price x size", entry * size), ("risk |entry - stop| x size", abs(entry - stop) * size)):
            if not (math.isfinite(value) and value >= sys.float_info.min):
                raise InvalidTrade("size", size, f"gives {name} = {value!r}, outside the range of a finite double")
        return Proposal(symbol, direction, entry, stop, target, size, now, limits)

    def open_trade(
        self, symbol, direction, entry_price, stop_price, target_price, size,
        setup_type="", grade="", notes="", *, now: datetime, limits: RiskLimits,
        checks: Iterable[risk.Check] = (),
    ) -> dict:
        """Validate, run every risk check, then append the new OPEN trade and return it."""
        proposal = self.propose(symbol, direction, entry_price, stop_price, target_price, size, now=now, limits=limits)
        setup_type, grade, notes = trade_text("setup_type", setup_type), trade_text("grade", grade), trade_text("notes", notes)
        risk.enforce(self, proposal, checks)
        if self.next_id > MAX_ID_NUMBER:  # the id would be one the reader refuses
            raise IntegrityError([f"every trade id up to {format_id(MAX_ID_NUMBER)} is used; no trade can be opened"])
        trade = {
            "id": format_id(self.next_id),
            "symbol": proposal.symbol,
            "direction": proposal.direction,
            "entry_price": proposal.entry_price,
            "stop_price": proposal.stop_price,
            "original_stop": proposal.stop_price,
            "target_price": proposal.target_price,
            "size": proposal.size,
            "original_size": proposal.size,
            "entry_time": utc_iso(now),
            "exit_price": None,
            "exit_time": None,
            "exit_reason": None,
            "pnl_usd": None,
            "pnl_pct": None,
            "r_multiple": None,
            "status": OPEN,
            "setup_type": setup_type,
            "grade": grade,
            "notes": notes,
            "partial_exits": [],
            "lessons": "",
        }
        self.trades.append(trade)
        self._index[trade["id"]] = trade
        self.next_id += 1
        self._touch(trade["id"])
        return trade

    def _open(self, trade_id: object) -> dict:
        if not isinstance(trade_id, str) or not trade_id:
            raise InvalidTrade("trade_id", trade_id, "must be a trade id string such as 'T001'")
        trade = self.get(trade_id)
        if trade["status"] != OPEN:
            raise TradeNotOpen(trade_id)
        return trade

    def close_trade(self, trade_id, exit_price, exit_reason="", lessons="", *, now: datetime) -> dict:
        """Close the remaining size at ``exit_price``; ``pnl_usd`` becomes the trade's net P&L."""
        trade = self._open(trade_id)
        exit_price = trade_number("exit_price", exit_price)
        exit_reason, lessons = trade_text("exit_reason", exit_reason), trade_text("lessons", lessons)
        _fill_originals(trade)
        remaining = _sign(trade["direction"]) * (exit_price - trade["entry_price"]) * trade["size"]
        net = remaining + sum(p.get("pnl_usd") or 0.0 for p in trade.get("partial_exits") or ())
        basis = trade["entry_price"] * trade["original_size"]
        initial = self.initial_risk(trade)
        trade.update(
            exit_price=exit_price,
            exit_time=utc_iso(now),
            exit_reason=exit_reason,
            pnl_usd=round(net, MONEY_DECIMALS),
            pnl_pct=_ratio(net * 100.0, basis),
            r_multiple=_ratio(net, initial),
            status=CLOSED,
            lessons=lessons,
        )
        self._touch(trade["id"])
        return trade

    def partial_close(self, trade_id, close_pct, exit_price, reason="Partial TP", *, now: datetime) -> dict:
        """Close the fraction ``close_pct`` (0 < p < 1) of the remaining size at ``exit_price``."""
        trade = self._open(trade_id)
        close_pct = trade_number("close_pct", close_pct, positive=False, above=0.0, below=1.0, at_most=None)
        exit_price = trade_number("exit_price", exit_price)
        reason = trade_text("reason", reason)
        _fill_originals(trade)
        closed = trade["size"] * close_pct
        pnl = _sign(trade["direction"]) * (exit_price - trade["entry_price"]) * closed
        trade.setdefault("partial_exits", []).append(
            {
                "exit_price": exit_price,
                "size_closed": closed,
                "pnl_usd": round(pnl, MONEY_DECIMALS),
                "reason": reason,
                "timestamp": utc_iso(now),
            }
        )
        trade["size"] = trade["size"] - closed
        self._touch(trade["id"])
        return trade

    def validate_updates(self, trade_id, updates) -> tuple[dict, dict]:
        """Check an update without applying it; return (trade, normalised updates)."""
        trade = self._open(trade_id)
        if not isinstance(updates, Mapping) or not updates:
            raise InvalidTrade("updates", updates, "must be a non-empty dict of field -> value")
        clean: dict[str, Any] = {}
        for field, value in updates.items():
            if field in PROTECTED_FIELDS:
                raise InvalidTrade(field, value, "is protected; use open/close/partial_close to change it")
            if field not in UPDATABLE_FIELDS:
                raise InvalidTrade(field, value, f"is not updatable; allowed: {', '.join(sorted(UPDATABLE_FIELDS))}")
            if field in ("stop_price", "target_price"):
                clean[field] = trade_number(field, value)
            else:
                clean[field] = trade_text(field, value)
        if "target_price" in clean:
            _check_target_side(trade["direction"], trade["entry_price"], clean["target_price"])
        # A trailing stop may move past entry, but never past the target.
        stop = clean.get("stop_price", trade["stop_price"])
        target = clean.get("target_price", trade["target_price"])
        if trade["direction"] == "LONG" and stop >= target:
            raise InvalidTrade("stop_price", stop, f"must be below target_price {target:g} for a LONG")
        if trade["direction"] == "SHORT" and stop <= target:
            raise InvalidTrade("stop_price", stop, f"must be above target_price {target:g} for a SHORT")
        return trade, clean

    def update_trade(self, trade_id, updates) -> dict:
        """Change updatable fields (stops, targets, notes...) of an OPEN trade."""
        trade, clean = self.validate_updates(trade_id, updates)
        _fill_originals(trade)
        trade.update(clean)
        self._touch(trade["id"])
        return trade

    def update_trades_batch(self, batch) -> int:
        """Apply every update or none: all are validated before the first is applied."""
        if isinstance(batch, (str, bytes, Mapping)) or not isinstance(batch, Iterable):
            raise InvalidTrade("batch", batch, "must be a list of (trade_id, updates) pairs")
        pairs = list(batch)
        checked = []
        for position, pair in enumerate(pairs):
            if not isinstance(pair, (tuple, list)) or len(pair) != 2:
                raise InvalidTrade(f"batch[{position}]", pair, "must be a (trade_id, updates) pair")
            checked.append(self.validate_updates(*pair))
        ids = [trade["id"] for trade, _ in checked]
        if len(set(ids)) != len(ids):
            raise InvalidTrade("batch", ids, "names a trade more than once")
        for trade, clean in checked:
            _fill_originals(trade)
            trade.update(clean)
            self._touch(trade["id"])
        return len(checked)

