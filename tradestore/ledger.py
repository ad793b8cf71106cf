"""Ledger: the trade log in memory and every business rule that changes it. Pure: no disk.

Each operation validates all of its input and runs its checks *before* it changes anything,
so an operation that raises leaves the ledger as it was. Records are plain dicts in the
format of ``docs/FORMAT.md``; the ledger owns them, so callers get copies.
"""

from __future__ import annotations

import bisect
import math
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from operator import itemgetter
from typing import Any

from . import accounting
from .document import (  # noqa: F401 (loads_strict, parse_document are re-exported for older imports)
    CLOSED,
    NET_IN_PNL_SCHEMA,
    OPEN,
    READABLE_SCHEMAS,
    SCHEMA,
    loads_strict,
    parse_document,
)
from .encoding import DocumentEncoding
from .errors import IntegrityError, InvalidTrade, TradeNotFound, TradeNotOpen
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
    symbol_key,
    time_key,
    trade_number,
    trade_text,
    utc_iso,
)


# Fields update_trade may change. Everything else that the format defines is protected:
# identity, status, entry, exits and P&L only change through open/close/partial_close.
UPDATABLE_FIELDS = frozenset({"stop_price", "target_price", "notes", "grade", "setup_type"})
PROTECTED_FIELDS = frozenset(
    {
        "id", "symbol", "direction", "entry_price", "original_stop", "size", "original_size",
        "entry_time", "exit_price", "exit_time", "exit_reason", "pnl_usd", "pnl_pct",
        "r_multiple", "net_pnl_usd", "net_r_multiple", "status", "partial_exits", "lessons",
    }
)


@dataclass(frozen=True)
class Proposal:
    """A trade about to be opened, validated and normalised: what the risk checks judge.

    ``limits`` is the :class:`tradestore.risk.RiskLimits` the checks apply; the ledger only
    carries it.
    """

    symbol: str
    direction: str
    entry_price: float
    stop_price: float
    target_price: float
    size: float
    now: datetime
    limits: Any
    setup_type: str = ""
    grade: str = ""
    notes: str = ""

    @property
    def risk(self) -> float:
        """USD lost if the stop is hit: |entry - stop| x size."""
        return abs(self.entry_price - self.stop_price) * self.size


_direction = normalize_direction
_first = itemgetter(0)


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
    """Give a trade from an older log its opening stop and size before anything changes them.

    The opening size is :func:`accounting.original_size`'s (the remaining size plus the seed's
    partial exits), the one every reader already uses for such a record."""
    # .get: a damaged record may lack the stop; the commit's integrity check then refuses it.
    trade.setdefault("original_stop", trade.get("stop_price"))
    if "original_size" not in trade:
        trade["original_size"] = accounting.original_size(trade)


class Ledger:
    """The trade log in memory: trades in id order, ``next_id``, and the rules that change them.

    A ledger validates input and records operations; it decides nothing about risk (the
    transaction asks :mod:`tradestore.risk` between :meth:`propose` and :meth:`record_open`).
    Its queries are :mod:`tradestore.accounting` over its trades, kept as views (:class:`_Views`:
    open trades, each symbol's closed trades, the realization events, the exact realized sum,
    the equity peak) that are built once and then updated by each operation, so a risk check
    costs O(open trades + one symbol's history), not O(history); every view equals what
    accounting computes from scratch over the same trades.
    """

    def __init__(self, trades: Iterable[dict] = (), next_id: int | None = None, extra: Mapping | None = None) -> None:
        self.trades: list[dict] = list(trades)
        highest = max((id_number(t["id"]) or 0 for t in self.trades), default=0)
        # A seed log may lag its ids, a damaged one too. Never reuse an id.
        self.next_id = max(next_id or 1, highest + 1)
        self.extra = dict(extra or {})  # unknown top-level keys, preserved
        self._index = {t["id"]: t for t in self.trades}
        self._cache: dict[str, Any] = {}
        self._views: _Views | None = None
        self._encoding = DocumentEncoding()  # the document's bytes, kept between writes
        self._memos: dict[str, dict[int, Any]] = {}  # see memo()
        self.changed: set[str] = set()  # ids touched since the last mark_clean()

    # -- loading and saving -------------------------------------------------------------

    @classmethod
    def from_json(cls, data: bytes | str, source: str = "trade log", *,
                  schemas: tuple[int, ...] = READABLE_SCHEMAS) -> Ledger:
        return cls.from_document(parse_document(data, source, schemas=schemas))

    @classmethod
    def from_document(cls, doc: Mapping[str, Any]) -> Ledger:
        """The ledger of a parsed, shape-checked document (:func:`parse_document`); unknown
        top-level keys are kept in ``extra``."""
        if doc.get("schema") == NET_IN_PNL_SCHEMA:
            for trade in doc["trades"]:
                accounting.upgrade_schema_1(trade)
        extra = {k: v for k, v in doc.items() if k not in ("schema", "next_id", "trades")}
        return cls(doc["trades"], doc.get("next_id"), extra)

    def to_document(self) -> dict[str, Any]:
        """The log as a document (the records themselves, not copies): what :meth:`to_json` encodes."""
        return {"schema": SCHEMA, "next_id": self.next_id, **self.extra, "trades": self.trades}

    def to_json(self, *, schema: int = SCHEMA, head_keys: Mapping | None = None) -> bytes:
        """Compact strict JSON; raises ValueError rather than write NaN or Infinity.

        Byte for byte ``json.dumps(self.to_document(), separators=(",", ":"), allow_nan=False)``;
        ``schema`` and ``head_keys`` (top-level keys written before ``extra``, e.g. a journal
        checkpoint's marker) are for :mod:`tradestore.journal`.
        """
        return b"".join(self.to_json_parts(schema=schema, head_keys=head_keys))

    def to_json_parts(self, *, schema: int = SCHEMA, head_keys: Mapping | None = None) -> list[bytes | memoryview]:
        """:meth:`to_json` as buffers to write one after another (``os.writev``), unjoined.

        Encoding is most of a write's CPU on a long history, so the encodings of CLOSED records
        and of whole blocks of them are kept between writes (:mod:`tradestore.encoding`): a
        write encodes only the open and touched trades, and builds no copy of the document.
        """
        head_keys = head_keys or {}
        taken = head_keys.keys() & self.extra.keys()
        if taken:  # the format's own key would silently replace the document's (or the reverse)
            raise ValueError(f"the log's own top-level key {sorted(taken)[0]!r} is a key the format "
                             "writes itself; rename it")
        head = {"schema": schema, "next_id": self.next_id, **head_keys, **self.extra}
        return self._encoding.parts(head, self.trades)

    def mark_clean(self) -> None:
        self.changed.clear()

    def merge(self, records: Iterable[dict], next_id: int) -> None:
        """Take newer versions of records from the store: a known id is replaced in place, a
        new one appended (``records`` in id order, every new id above the known ones), and
        ``next_id`` if higher. For a store that reads only what changed since its copy.

        The views are updated with each record's change, as the operation that made it updated
        its writer's; a change no operation makes (an exit moved or removed) rebuilds them.
        """
        views = self._views
        for record in records:
            current = self._index.get(record["id"])
            before = None
            if current is None:
                self.trades.append(record)
                self._index[record["id"]] = record
                current = record
            else:
                before = dict(current)  # the previous version (its values are not changed in place)
                current.clear()
                current.update(record)
            self._touch(record["id"])
            if views is not None and not views.replaced(before, current):
                views = None
        self.next_id = max(self.next_id, next_id)
        self.mark_clean()
        self._cache.clear()
        self._views = views

    def _touch(self, trade_id: str) -> None:
        self.changed.add(trade_id)
        record = self._index[trade_id]
        self._encoding.forget(record)
        for memo in self._memos.values():
            memo.pop(id(record), None)

    def memo(self, kind: str) -> dict[int, Any]:
        """A cache of values each computed from one record alone, keyed by the record's ``id()``.

        Every operation and every :meth:`merge` drops the entries of the records it changes
        (records are changed only through them, and never leave the ledger, so an ``id()`` is
        never reused while its entry is kept): an entry is always what computing it again from
        the record would give. For whole-log scans that run again and again on one ledger (a
        reconciler following the log) to cost only what changed. ``kind`` names one cache.
        """
        return self._memos.setdefault(kind, {})

    def _view(self) -> _Views:
        if self._views is None:
            self._views = _Views(self.trades)
        return self._views

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

    def open_trades(self) -> list[dict]:
        """OPEN trades in log order (the view itself: do not change it)."""
        return self._view().open

    def closed_trades(self) -> list[dict]:
        if "closed" not in self._cache:
            self._cache["closed"] = [t for t in self.trades if t["status"] == CLOSED]
        return self._cache["closed"]

    def open_trade_for(self, symbol: str) -> dict | None:
        key = symbol_key(symbol)
        for trade in self.open_trades():
            if symbol_key(trade["symbol"]) == key:
                return trade
        return None

    def open_symbols(self) -> list[str]:
        return [t["symbol"] for t in self.open_trades()]

    def closed_in_exit_order(self) -> list[dict]:
        """Every CLOSED trade in exit order (:func:`accounting.exit_order_key`, ties in log
        order); the view itself: do not change it."""
        return self._view().closed_order

    def closed_symbols(self) -> list[str]:
        """The symbol keys (:func:`values.symbol_key`) of every CLOSED trade, sorted."""
        return sorted(self._view().closed_of)

    def closed_trades_of(self, symbol: str) -> list[dict]:
        """CLOSED trades of ``symbol`` in exit order (:func:`accounting.exit_order_key`)."""
        return self._view().closed_of.get(symbol_key(symbol), [])

    def events(self) -> list[accounting.Event]:
        """:func:`accounting.realization_events` of the whole log."""
        return self._view().events

    def realized_pnl(self) -> float:
        """:func:`accounting.realized_pnl` of the whole log."""
        return self._view().realized.value()

    def equity(self, starting_capital: float) -> float:
        """Starting capital plus realized P&L (partial exits included)."""
        return starting_capital + self.realized_pnl()

    def equity_at(self, starting_capital: float, moment: datetime) -> float:
        """Equity counting only P&L realized strictly before ``moment`` (:func:`accounting.equity_before`)."""
        view = self._view()
        return accounting.equity_before_from(view.realized, view.events, starting_capital, moment)

    def peak_equity(self, starting_capital: float) -> float:
        """:func:`accounting.peak_equity` of the log."""
        return accounting.peak_equity((), starting_capital, self.equity(starting_capital),
                                      self._view().peak(starting_capital))

    # -- operations ---------------------------------------------------------------------

    def propose(self, symbol, direction, entry_price, stop_price, target_price, size,
                setup_type="", grade="", notes="", *, now: datetime, limits: Any = None) -> Proposal:
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
        texts = trade_text("setup_type", setup_type), trade_text("grade", grade), trade_text("notes", notes)
        if self.next_id > MAX_ID_NUMBER:  # the id would be one the reader refuses
            raise IntegrityError([f"every trade id up to {format_id(MAX_ID_NUMBER)} is used; no trade can be opened"])
        return Proposal(symbol, direction, entry, stop, target, size, now, limits, *texts)

    def record_open(self, p: Proposal) -> dict:
        """Append the OPEN trade of a proposal the risk checks accepted; return the record."""
        trade = {
            "id": format_id(self.next_id),
            "symbol": p.symbol,
            "direction": p.direction,
            "entry_price": p.entry_price,
            "stop_price": p.stop_price,
            "original_stop": p.stop_price,
            "target_price": p.target_price,
            "size": p.size,
            "original_size": p.size,
            "entry_time": utc_iso(p.now),
            "exit_price": None,
            "exit_time": None,
            "exit_reason": None,
            "pnl_usd": None,
            "pnl_pct": None,
            "r_multiple": None,
            "net_pnl_usd": None,
            "net_r_multiple": None,
            "status": OPEN,
            "setup_type": p.setup_type,
            "grade": p.grade,
            "notes": p.notes,
            "partial_exits": [],
            "lessons": "",
        }
        self.trades.append(trade)
        self._index[trade["id"]] = trade
        self.next_id += 1
        self._touch(trade["id"])
        if self._views is not None:
            self._views.opened(trade)
        return trade

    def open_trade(self, symbol, direction, entry_price, stop_price, target_price, size,
                   setup_type="", grade="", notes="", *, now: datetime) -> dict:
        """Validate and record an OPEN trade without any risk check (the store adds them)."""
        return self.record_open(self.propose(symbol, direction, entry_price, stop_price, target_price,
                                             size, setup_type, grade, notes, now=now))

    def _open(self, trade_id: object) -> dict:
        if not isinstance(trade_id, str) or not trade_id:
            raise InvalidTrade("trade_id", trade_id, "must be a trade id string such as 'T001'")
        trade = self.get(trade_id)
        if trade["status"] != OPEN:
            raise TradeNotOpen(trade_id)
        return trade

    def close_trade(self, trade_id, exit_price, exit_reason="", lessons="", *, now: datetime) -> dict:
        """Close the remaining size at ``exit_price`` with the seed's fields, plus the net ones."""
        trade = self._open(trade_id)
        exit_price = trade_number("exit_price", exit_price)
        exit_reason, lessons = trade_text("exit_reason", exit_reason), trade_text("lessons", lessons)
        figures = accounting.exit_fields(trade, exit_price)
        if not all(math.isfinite(v) for v in figures.values()):
            raise InvalidTrade("exit_price", exit_price, f"gives P&L figures {figures} outside the range of a finite double")
        _fill_originals(trade)
        trade.update(exit_price=exit_price, exit_time=utc_iso(now), exit_reason=exit_reason, **figures,
                     status=CLOSED, lessons=lessons)
        trade.update(accounting.net_fields(trade))
        self._touch(trade["id"])
        self._cache.pop("closed", None)
        if self._views is not None and not self._views.closed(trade):
            self._views = None  # rebuilt from the records when next asked
        return trade

    def partial_close(self, trade_id, close_pct, exit_price, reason="Partial TP", *, now: datetime) -> dict:
        """Close the fraction ``close_pct`` (0 < p < 1) of the remaining size at ``exit_price``."""
        trade = self._open(trade_id)
        close_pct = trade_number("close_pct", close_pct, positive=False, above=0.0, below=1.0, at_most=None)
        exit_price = trade_number("exit_price", exit_price)
        reason = trade_text("reason", reason)
        size = accounting.number(trade.get("size"))  # a damaged record's size counts as 0
        closed, remaining = accounting.partial_split(size, close_pct)
        if closed <= 0 or remaining <= 0:
            raise InvalidTrade("close_pct", close_pct, f"closes {closed:g} of size {size:g} leaving "
                               f"{remaining:g} after rounding sizes to {accounting.SIZE_DECIMALS} decimals; "
                               "both must be > 0 (close the trade instead)")
        pnl = accounting.partial_pnl(trade, exit_price, closed)
        if not math.isfinite(pnl):
            raise InvalidTrade("exit_price", exit_price, f"gives a P&L of {pnl!r}, outside the range of a finite double")
        _fill_originals(trade)
        if trade.get("partial_exits") is None:
            trade["partial_exits"] = []
        recorded = isinstance(trade["partial_exits"], list)  # else damaged: the commit's integrity check refuses it
        if recorded:
            trade["partial_exits"].append(
                {"exit_price": exit_price, "size_closed": closed, "pnl_usd": pnl, "reason": reason, "timestamp": utc_iso(now)}
            )
        trade["size"] = remaining
        self._touch(trade["id"])
        if self._views is not None:
            if recorded:
                self._views.realized_exit(trade)
            else:  # no exit to add: the views are rebuilt from the records when next asked
                self._views = None
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
        # Fields of a damaged record are read as the accounting reads them (not a number: 0),
        # so the checks run; the commit's integrity check then refuses a record still broken.
        direction = trade.get("direction")
        if "target_price" in clean:
            _check_target_side(direction, accounting.number(trade.get("entry_price")), clean["target_price"])
        # A trailing stop may move past entry, but never past the target.
        stop = clean.get("stop_price", accounting.number(trade.get("stop_price")))
        target = clean.get("target_price", accounting.number(trade.get("target_price")))
        if direction == "LONG" and stop >= target:
            raise InvalidTrade("stop_price", stop, f"must be below target_price {target:g} for a LONG")
        if direction == "SHORT" and stop <= target:
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


class _Views:
    """A ledger's derived views, built from its trades and updated by each operation.

    Each equals what :mod:`tradestore.accounting` computes from scratch: ``open`` the OPEN
    trades in log order, ``closed_of`` each symbol key's CLOSED trades in exit order,
    ``events`` the realization events in order, ``realized`` their exact sum; the equity peak
    is kept per starting capital and extended while new events come last in time.
    """

    def __init__(self, trades: list[dict]) -> None:
        self.open = [t for t in trades if t["status"] == OPEN]
        self.closed_of: dict[str, list[dict]] = {}
        self._keys: dict[str, list[tuple]] = {}  # exit order keys, beside closed_of, for bisect
        # every CLOSED trade in exit order (a stable sort: ties in log order), and its keys
        keyed = sorted(((accounting.exit_order_key(t), t) for t in trades if t["status"] == CLOSED), key=_first)
        self.closed_order = [trade for _, trade in keyed]
        self._order_keys = [order for order, _ in keyed]
        for order, trade in keyed:
            key = symbol_key(trade["symbol"])
            self.closed_of.setdefault(key, []).append(trade)
            self._keys.setdefault(key, []).append(order)
        self.events = accounting.realization_events(trades)
        self.realized = accounting.ExactSum(e.amount for e in self.events)
        self._peak: accounting.Peak | None = None

    def peak(self, capital: float) -> accounting.Peak:
        if self._peak is None or self._peak.capital != capital:
            self._peak = accounting.peak_of(self.events, capital)
        return self._peak

    def opened(self, trade: dict) -> None:
        self.open.append(trade)

    def realized_exit(self, trade: dict) -> None:
        """The trade's newest exit (its last event) was just recorded."""
        self._add_event(accounting.trade_events(trade)[-1])

    def _add_event(self, event: accounting.Event) -> None:
        self.realized.add(event.amount)
        position = bisect.bisect(self.events, event)
        self.events.insert(position, event)
        if self._peak is not None:
            # extended only while the new event is the latest; an earlier one redraws the curve
            last = position == len(self.events) - 1
            self._peak = accounting.extend_peak(self._peak, event) if last else None

    def closed(self, trade: dict) -> bool:
        """The OPEN ``trade`` was just closed; False (views no longer valid) if it could not
        be filed (see :meth:`_file_closed`)."""
        self.open[:] = [t for t in self.open if t is not trade]
        if not self._file_closed(trade):
            return False
        self.realized_exit(trade)
        return True

    def _file_closed(self, trade: dict) -> bool:
        """File a newly CLOSED trade in exit order. False, filing nothing, when another closed
        trade has the very same key (same exit time and id number: ids such as ``T2`` and
        ``T002`` in a foreign log): the order between them is their order in the log, which
        only a rebuild knows."""
        key, order = symbol_key(trade["symbol"]), accounting.exit_order_key(trade)
        position = bisect.bisect(self._order_keys, order)
        if position and self._order_keys[position - 1] == order:
            return False
        self._order_keys.insert(position, order)
        self.closed_order.insert(position, trade)
        keys = self._keys.setdefault(key, [])
        position = bisect.bisect(keys, order)
        keys.insert(position, order)
        self.closed_of.setdefault(key, []).insert(position, trade)
        return True

    def replaced(self, before: dict | None, trade: dict) -> bool:
        """``trade`` (the record object itself) replaced ``before`` (a copy of its previous
        version; None: a new record): update the views as the operations that made the change
        would have. False (nothing updated) for a change no operation makes: an exit moved or
        removed, a CLOSED record's exits or symbol changed, or the record reopened."""
        old = accounting.trade_events(before) if before is not None else []
        new = accounting.trade_events(trade)
        if new[:len(old)] != old:
            return False
        was = before["status"] if before is not None else None
        if was == CLOSED and (trade["status"] != CLOSED or new != old
                              or symbol_key(before["symbol"]) != symbol_key(trade["symbol"])):
            return False
        if was is None and trade["status"] == OPEN:
            self.open.append(trade)
        elif trade["status"] == CLOSED and was != CLOSED:
            if was == OPEN:
                self.open[:] = [t for t in self.open if t is not trade]
            if not self._file_closed(trade):
                return False
        for event in new[len(old):]:
            self._add_event(event)
        return True
