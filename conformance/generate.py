"""Build the conformance vectors from readable case definitions.

    python conformance/generate.py            # (re)write conformance/vectors/
    python conformance/generate.py --check    # exit 1 if a file is missing, stale or extra

Each case below is a few lines of Python: a starting log (built by running ``setup`` steps
through a real :class:`tradestore.TradeStore` with a moving clock, or given as raw text), a
config, a clock and one operation (operation vectors) or nothing more (derivation vectors).
The expected outcome is computed by :func:`run_operation` / :func:`run_derivation`, which read
only the vector itself, exactly as a port would. Because expectations computed by the code under
test only prove consistency, :data:`HAND_CHECKS` pins a sample of numbers worked out by hand,
and generation fails if the library disagrees with any of them.

The journal vectors (``vectors/journal/``) are built differently, by
:mod:`conformance.journal_cases`: from bytes laid out by hand with an encoder of their own and
outcomes stated by hand, without running the library; this module only writes them out.

The vector format is described in ``conformance/README.md``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import pathlib
import sys
import tempfile
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent))

from tradestore import (  # noqa: E402
    CorruptTradeLog,
    IntegrityError,
    InvalidTrade,
    RiskRejected,
    TradeNotFound,
    TradeNotOpen,
    TradeStore,
)
from conformance import journal_cases  # noqa: E402
from tradestore.reconciler import StateReconciler  # noqa: E402
from tradestore.risk import DEFAULT_CORRELATION_GROUPS, RiskLimits  # noqa: E402

FORMAT = "tradestore-conformance-1"
VECTORS = pathlib.Path(__file__).resolve().parent / "vectors"
UTC = timezone.utc
T0 = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)  # a Monday; every clock below is T0 + hours

# Numbers a JSON document cannot hold are written as {"$number": "NaN" | "Infinity" | "-Infinity"}.
SPECIAL = "$number"

# Written out rather than taken from RiskLimits(): a changed default must change the vectors.
DEFAULT_LIMITS = {
    "max_positions": 7,
    "starting_capital": 5000.0,
    "correlation_groups": {k: list(v) for k, v in DEFAULT_CORRELATION_GROUPS.items()},
    "max_corr_group_risk_pct": 4.0,
    "asset_consecutive_loss_cap": 3,
    "loss_cap_cooldown_hours": None,
    "max_drawdown_pct": None,
    "max_daily_loss_pct": None,
    "max_weekly_loss_pct": None,
    "max_portfolio_heat_pct": None,
    "caution_drawdown_pct": 10.0,
}
assert DEFAULT_LIMITS == RiskLimits().as_dict(), "the vectors' default limits are not the library's"

# Limits under which any setup can be built (the case's own limits apply to its operation).
PERMISSIVE = {"max_positions": 1000, "max_corr_group_risk_pct": 1e9, "asset_consecutive_loss_cap": None}

ERROR_KINDS = {
    InvalidTrade: "invalid_trade",
    RiskRejected: "risk_rejected",
    TradeNotFound: "trade_not_found",
    TradeNotOpen: "trade_not_open",
    CorruptTradeLog: "corrupt_log",
    IntegrityError: "integrity_error",
}


def iso(hours: float) -> str:
    return (T0 + timedelta(hours=hours)).isoformat()


def decode(value: Any) -> Any:
    """Turn ``{"$number": "NaN"}`` markers back into floats, recursively."""
    if isinstance(value, dict):
        if set(value) == {SPECIAL}:
            return float(value[SPECIAL])
        return {k: decode(v) for k, v in value.items()}
    if isinstance(value, list):
        return [decode(v) for v in value]
    return value


def special(text: str) -> dict:
    return {SPECIAL: text}


# --------------------------------------------------------------------------- running a vector


def _store(path: str, config: dict, clock: str) -> TradeStore:
    now = datetime.fromisoformat(clock)
    limits = dict(config)
    return TradeStore(path, clock=lambda: now, fsync=False, keep_backup=False, **limits)


def _read(path: str) -> bytes | None:
    try:
        with open(path, "rb") as f:
            return f.read()
    except FileNotFoundError:
        return None


def run_operation(vector: dict) -> dict:
    """The outcome of an operation vector on the Python implementation, in the vectors' shape.

    Reads only ``log_text``, ``config``, ``clock`` and ``operation`` of the vector. Raises
    AssertionError if a refused operation changed the file (a refusal must write nothing).
    """
    op = vector["operation"]
    args = decode(op.get("args", {}))
    with tempfile.TemporaryDirectory(prefix="conformance-") as directory:
        path = os.path.join(directory, "trades.json")
        if vector["log_text"] is not None:
            with open(path, "w", encoding="utf-8") as f:
                f.write(vector["log_text"])
        before = _read(path)
        store = _store(path, vector["config"], vector["clock"])
        try:
            if op["op"] == "open":
                result = store.open_trade(**args)
            elif op["op"] == "close":
                result = store.close_trade(**args)
            elif op["op"] == "partial_close":
                result = store.partial_close(**args)
            elif op["op"] == "update":
                result = store.update_trade(**args)
            elif op["op"] == "update_batch":
                result = store.update_trades_batch(args["batch"])  # JSON pairs are lists
            elif op["op"] == "load":
                result = {"next_id": store.get_next_id(), "trades": store.get_all_trades()}
            else:
                raise ValueError(f"unknown operation {op['op']!r}")
        except tuple(ERROR_KINDS) as exc:
            after = _read(path)
            assert after == before, f"{vector.get('name')}: a refused operation changed the log"
            error = {"outcome": "error", "error": ERROR_KINDS[type(exc)]}
            if isinstance(exc, InvalidTrade):
                error["field"] = exc.field
            if isinstance(exc, RiskRejected):
                error["check"] = exc.check
            return error
        after = _read(path)
        return {"outcome": "ok", "result": result,
                "log": None if after is None else json.loads(after)}


def run_derivation(vector: dict) -> dict:
    """Every derived file for a derivation vector, without its generation time."""
    with tempfile.TemporaryDirectory(prefix="conformance-") as directory:
        path = os.path.join(directory, "trades.json")
        with open(path, "w", encoding="utf-8") as f:
            f.write(vector["log_text"])
        reconciler = StateReconciler(path, os.path.join(directory, "state"), fsync=False, **vector["config"])
        _, docs = reconciler.build(datetime.fromisoformat(vector["clock"]))
    # the files as written (strict JSON), minus the one field that is the generation time
    docs = json.loads(json.dumps(docs, allow_nan=False))
    for doc in docs.values():
        doc.pop("last_updated", None)
        doc["_meta"].pop("generated_at", None)
    return docs


# --------------------------------------------------------------------------- building cases


def opening(symbol, direction, entry, stop, target, size, setup_type="", grade="", notes="") -> dict:
    return {"symbol": symbol, "direction": direction, "entry_price": entry, "stop_price": stop,
            "target_price": target, "size": size, "setup_type": setup_type, "grade": grade,
            "notes": notes}


def build_log(setup: list[tuple], limits: dict | None = None) -> str | None:
    """Run ``(hours, op, kwargs)`` steps through a TradeStore; the resulting log file's text."""
    if not setup:
        return None
    config = {**DEFAULT_LIMITS, **PERMISSIVE, **(limits or {})}
    with tempfile.TemporaryDirectory(prefix="conformance-setup-") as directory:
        path = os.path.join(directory, "trades.json")
        for hours, op, kwargs in setup:
            store = _store(path, config, iso(hours))
            {"open": store.open_trade, "close": store.close_trade, "partial_close": store.partial_close,
             "update": store.update_trade}[op](**kwargs)
        return _read(path).decode("utf-8")


@dataclass
class Case:
    name: str
    description: str
    covers: list[str]
    operation: tuple[str, dict] | None = None  # None: a derivation vector
    setup: list[tuple] = field(default_factory=list)
    log_text: str | None = None  # raw starting log instead of ``setup``
    limits: dict = field(default_factory=dict)  # the operation's limits, over DEFAULT_LIMITS
    setup_limits: dict = field(default_factory=dict)
    clock: float = 100.0  # hours after T0

    def vector(self) -> dict:
        text = self.log_text if self.log_text is not None else build_log(self.setup, self.setup_limits)
        base = {"format": FORMAT, "name": self.name, "description": self.description,
                "covers": self.covers, "clock": iso(self.clock), "log_text": text}
        if self.operation is None:
            assert text is not None, f"{self.name}: a derivation needs a log"
            base["kind"] = "derivation"
            base["config"] = {**DEFAULT_LIMITS, **self.limits}
            base["expect"] = run_derivation(base)
        else:
            base["kind"] = "operation"
            base["config"] = {**DEFAULT_LIMITS, **self.limits}
            op, args = self.operation
            base["operation"] = {"op": op, "args": args}
            base["expect"] = run_operation(base)
        return {k: base[k] for k in ("format", "kind", "name", "description", "covers", "config",
                                     "clock", "log_text", *(("operation",) if self.operation else ()),
                                     "expect")}


def op(name, description, covers, operation, **kw) -> Case:
    return Case(name, description, covers, operation, **kw)


def derivation(name, description, covers, **kw) -> Case:
    return Case(name, description, covers, None, **kw)


BTC = opening("BTC", "LONG", 100, 95, 110, 2, "RSI_Div", "A")        # initial risk 10
ETH_SHORT = opening("ETH", "SHORT", 3000, 3100, 2700, 1, "Breakout")  # initial risk 100


def losses(symbol: str, n: int, start: float = 0.0, *, last_pnl: float = -5.0) -> list[tuple]:
    """``n`` closed trades of ``symbol`` (LONG 100/95/110 x1), each losing 5 except the last."""
    steps = []
    for i in range(n):
        t = start + 2 * i
        steps.append((t, "open", {**opening(symbol, "LONG", 100, 95, 110, 1)}))
        steps.append((t + 1, "close", {"trade_id": f"T{i + 1:03d}",
                                       "exit_price": 100 + (last_pnl if i == n - 1 else -5.0)}))
    return steps


def seed_log(extra_trades: list[dict] | None = None, next_id: int | None = 3) -> str:
    """A log as the seed's original code wrote it: indent=2, no schema, its ``next_id`` (which
    may lag behind extra trades); the open trade lacks ``lessons``."""
    trades = [
        {"id": "T001", "symbol": "BTC", "direction": "LONG", "entry_price": 65000, "stop_price": 63500,
         "original_stop": 63500, "target_price": 68000, "size": 0.02, "original_size": 0.02,
         "entry_time": "2026-01-01T00:00:00+00:00", "exit_price": 67000,
         "exit_time": "2026-01-02T00:00:00+00:00", "exit_reason": "TP", "pnl_usd": 40.0, "pnl_pct": 3.08,
         "r_multiple": 1.33, "status": "CLOSED", "setup_type": "RSI_Div", "grade": "A", "notes": "",
         "partial_exits": [], "lessons": "ok"},
        {"id": "T002", "symbol": "ETH", "direction": "SHORT", "entry_price": 3000, "stop_price": 3100,
         "original_stop": 3100, "target_price": 2700, "size": 1, "original_size": 1,
         "entry_time": "2026-01-03T00:00:00+00:00", "exit_price": None, "exit_time": None,
         "exit_reason": None, "pnl_usd": None, "pnl_pct": None, "r_multiple": None, "status": "OPEN",
         "setup_type": "", "grade": "", "notes": "", "partial_exits": []},
    ] + (extra_trades or [])
    doc = {"trades": trades} if next_id is None else {"trades": trades, "next_id": next_id}
    return json.dumps(doc, indent=2)


SEED_BARE_OPEN = {"id": "T003", "symbol": "SOL", "direction": "LONG", "entry_price": 100, "stop_price": 90,
                  "target_price": 130, "size": 3, "entry_time": "2026-01-04T00:00:00+00:00",
                  "status": "OPEN"}


def raw(doc: dict) -> str:
    return json.dumps(doc, separators=(",", ":"))


def _record(tid, symbol, direction, entry, stop, size, original_size, entry_time, **fields) -> dict:
    return {"id": tid, "symbol": symbol, "direction": direction, "entry_price": entry, "stop_price": stop,
            "original_stop": stop, "target_price": entry * (1.5 if direction == "LONG" else 0.5), "size": size,
            "original_size": original_size, "entry_time": entry_time, "exit_price": None, "exit_time": None,
            "exit_reason": None, "pnl_usd": None, "pnl_pct": None, "r_multiple": None, "status": "OPEN",
            "setup_type": "", "grade": "", "notes": "", "partial_exits": [], "lessons": "", **fields}


def _part(price, size_closed, pnl, timestamp) -> dict:
    return {"exit_price": price, "size_closed": size_closed, "pnl_usd": pnl, "reason": "TP1", "timestamp": timestamp}


# Written as the seed's code writes them, every number worked out by hand with its formulas:
# T001 LONG 100 stop 90, 2 units: 1 at 120 (+20), the other 1 at 95: pnl_usd -5, pnl_pct -5, r -0.5
# T002 SHORT 50 stop 55, 4 units: 2 at 45 (+10), the other 2 at 52: pnl_usd -4, pnl_pct -4, r -0.4
# T003 LONG 10 stop 9, 10 units at 9: pnl_usd -10, pnl_pct -10, r -1
# T004 LONG 200 stop 190, 1 unit, OPEN: 0.5 at 210 (+5)
SEED_PARTIALS = json.dumps({"trades": [
    _record("T001", "BTC", "LONG", 100.0, 90.0, 1.0, 2.0, "2026-01-01T00:00:00+00:00", setup_type="A",
            exit_price=95.0, exit_time="2026-01-02T00:00:00+00:00", exit_reason="SL", pnl_usd=-5.0, pnl_pct=-5.0,
            r_multiple=-0.5, status="CLOSED", partial_exits=[_part(120.0, 1.0, 20.0, "2026-01-01T06:00:00+00:00")]),
    _record("T002", "ETH", "SHORT", 50.0, 55.0, 2.0, 4.0, "2026-01-02T01:00:00+00:00", setup_type="A",
            exit_price=52.0, exit_time="2026-01-03T00:00:00+00:00", exit_reason="SL", pnl_usd=-4.0, pnl_pct=-4.0,
            r_multiple=-0.4, status="CLOSED", partial_exits=[_part(45.0, 2.0, 10.0, "2026-01-02T02:00:00+00:00")]),
    _record("T003", "SOL", "LONG", 10.0, 9.0, 10.0, 10.0, "2026-01-03T01:00:00+00:00", setup_type="B",
            exit_price=9.0, exit_time="2026-01-03T02:00:00+00:00", exit_reason="SL", pnl_usd=-10.0, pnl_pct=-10.0,
            r_multiple=-1.0, status="CLOSED"),
    _record("T004", "XAU", "LONG", 200.0, 190.0, 0.5, 1.0, "2026-01-04T00:00:00+00:00",
            partial_exits=[_part(210.0, 0.5, 5.0, "2026-01-04T01:00:00+00:00")]),
], "next_id": 5}, indent=2)

# The same log with T004 as an older seed record: no original_stop or original_size. Its
# opening size is its 0.5 left + the 0.5 its partial exit closed = 1 unit (FORMAT.md, "Seed-format
# logs"); closing the rest at 220 makes pnl_usd +10, the net 15 and net_r_multiple 15 / (10 x 1).
SEED_PARTIALS_WITHOUT_ORIGINALS = json.dumps({**json.loads(SEED_PARTIALS), "trades": [
    t if t["id"] != "T004" else {k: v for k, v in t.items() if k not in ("original_stop", "original_size")}
    for t in json.loads(SEED_PARTIALS)["trades"]]}, indent=2)

# An earlier version's log (schema 1): pnl_usd, pnl_pct and r_multiple were the NET of the trade.
# BTC LONG 100 stop 95, 2 units: 1 at 110 (+10), the other 1 at 104 (+4): net 14, 7 %, 1.4 R.
SCHEMA_1_LOG = raw({"schema": 1, "next_id": 2, "trades": [
    _record("T001", "BTC", "LONG", 100.0, 95.0, 1.0, 2.0, "2026-01-05T09:00:00+00:00", exit_price=104.0,
            exit_time="2026-01-05T11:00:00+00:00", exit_reason="TP", pnl_usd=14.0, pnl_pct=7.0, r_multiple=1.4,
            status="CLOSED", partial_exits=[_part(110.0, 1.0, 10.0, "2026-01-05T10:00:00+00:00")])]})


def operation_cases() -> list[Case]:
    cases: list[Case] = []
    add = cases.append

    # -- opening and the record -----------------------------------------------------------
    add(op("open/long-on-missing-log", "the first trade creates the log: id T001, next_id 2, every field",
           ["op:open", "field:all", "file:created"],
           ("open", opening("BTC", "LONG", 65000, 63500, 68000, 0.02, "RSI_Div", "A", "first")), clock=0.5))
    add(op("open/short", "a SHORT: stop above entry, target below", ["op:open", "direction:SHORT"],
           ("open", ETH_SHORT), setup=[(0, "open", BTC)]))
    add(op("open/normalises-symbol-and-direction", "' btc ' / 'long' are stored as 'BTC' / 'LONG'",
           ["op:open", "normalise:symbol", "normalise:direction"],
           ("open", opening(" btc ", "long", 100, 95, 110, 1))))
    add(op("open/id-beyond-999", "ids are zero-padded to at least 3 digits: T999 then T1000",
           ["id:format"], ("open", BTC),
           log_text=raw({"schema": 1, "next_id": 1000, "trades": []})))
    add(op("open/next-id-behind-ids", "a next_id at or below an existing id is raised past it (ids never reused)",
           ["id:never-reused"], ("open", BTC),
           log_text=raw({"schema": 1, "next_id": 2, "trades": [
               {**json.loads(build_log([(0, "open", opening("SOL", "LONG", 100, 90, 130, 1))]))["trades"][0],
                "id": "T005"}]})))
    add(op("open/unknown-fields-preserved", "unknown top-level keys and trade fields are kept as they are",
           ["field:unknown-preserved"], ("open", ETH_SHORT),
           log_text=raw({"schema": 1, "next_id": 2, "account": "main", "trades": [
               {**json.loads(build_log([(0, "open", BTC)]))["trades"][0], "exchange": "X", "tags": ["a"]}]})))
    add(op("open/after-symbol-closed", "a symbol whose trade is CLOSED may be opened again",
           ["rule:duplicate_symbol", "boundary"], ("open", BTC),
           setup=[(0, "open", BTC), (1, "close", {"trade_id": "T001", "exit_price": 105})]))

    # -- closing, partial exits, P&L ------------------------------------------------------
    add(op("close/long-win", "LONG 100 -> 110 x2, stop 95: pnl 20, pnl_pct 10 (per unit), r 2",
           ["op:close", "pnl:long", "pnl_pct", "r_multiple"],
           ("close", {"trade_id": "T001", "exit_price": 110, "exit_reason": "TP hit", "lessons": "patience"}),
           setup=[(0, "open", BTC)]))
    add(op("close/short-loss", "SHORT 3000 stopped at 3100 x1: pnl -100, r -1",
           ["op:close", "pnl:short", "direction:SHORT"],
           ("close", {"trade_id": "T001", "exit_price": 3100, "exit_reason": "SL"}), setup=[(0, "open", ETH_SHORT)]))
    add(op("close/breakeven", "closed at entry: pnl 0, pnl_pct 0, r 0", ["op:close", "breakeven"],
           ("close", {"trade_id": "T001", "exit_price": 100}), setup=[(0, "open", BTC)]))
    add(op("partial/long-quarter", "a quarter of 2 units at 105: size_closed 0.5, pnl 2.5, size 1.5",
           ["op:partial_close", "partial:size", "partial:pnl"],
           ("partial_close", {"trade_id": "T001", "close_pct": 0.25, "exit_price": 105}), setup=[(0, "open", BTC)]))
    add(op("partial/short-then-close", "SHORT: half at 2900 (+50) then the rest at 2950: pnl_usd 25, pnl_pct 1.67, r 0.5 (the rest's); net 75, net R 0.75",
           ["op:close", "partial:net-pnl", "direction:SHORT"],
           ("close", {"trade_id": "T001", "exit_price": 2950}),
           setup=[(0, "open", ETH_SHORT), (1, "partial_close", {"trade_id": "T001", "close_pct": 0.5,
                                                                 "exit_price": 2900, "reason": "TP1"})]))
    add(op("partial/two-then-close-loss", "two halves, then a loss on the rest: the seed's fields are the rest's, the net counts every exit",
           ["op:close", "partial:net-pnl", "partial:repeated"],
           ("close", {"trade_id": "T001", "exit_price": 96}),
           setup=[(0, "open", BTC), (1, "partial_close", {"trade_id": "T001", "close_pct": 0.5, "exit_price": 104}),
                  (2, "partial_close", {"trade_id": "T001", "close_pct": 0.5, "exit_price": 98})]))
    add(op("close/r-uses-original-stop", "the stop trailed to 104 does not change r: (104-100)x1 / 5 = 0.8",
           ["op:close", "r_multiple", "original_stop"],
           ("close", {"trade_id": "T001", "exit_price": 104}),
           setup=[(0, "open", opening("BTC", "LONG", 100, 95, 110, 1)),
                  (1, "update", {"trade_id": "T001", "updates": {"stop_price": 104}})]))
    add(op("partial/sizes-rounded", "a half of 1/3 unit: size_closed and size rounded to 6 decimals, P&L to cents",
           ["op:partial_close", "partial:size", "rounding"],
           ("partial_close", {"trade_id": "T001", "close_pct": 0.5, "exit_price": 10.6}),
           setup=[(0, "open", opening("LINK", "LONG", 10, 9.7, 11, 1 / 3))]))
    add(op("close/rounding", "the seed's rounding: P&L, percent and R to 2 decimals (1/3 unit x 0.1); net R to 4",
           ["rounding"], ("close", {"trade_id": "T001", "exit_price": 10.1}),
           setup=[(0, "open", opening("LINK", "LONG", 10, 9.7, 11, 1 / 3))]))

    # -- updates --------------------------------------------------------------------------
    add(op("update/trail-stop-past-entry", "a LONG stop may move above entry (but stays below target)",
           ["op:update"], ("update", {"trade_id": "T001", "updates": {"stop_price": 105}}), setup=[(0, "open", BTC)]))
    add(op("update/text-fields-and-target", "notes, grade, setup_type and target_price are updatable",
           ["op:update"], ("update", {"trade_id": "T001", "updates": {
               "notes": "moved", "grade": "B", "setup_type": "Pullback", "target_price": 2600}}),
           setup=[(0, "open", ETH_SHORT)]))
    add(op("update/batch", "a batch updates several trades at once and returns the count",
           ["op:update_batch"], ("update_batch", {"batch": [["T001", {"stop_price": 99}],
                                                            ["T002", {"stop_price": 3050}]]}),
           setup=[(0, "open", BTC), (0, "open", ETH_SHORT)]))

    # -- validation: one vector per field an InvalidTrade can name -------------------------
    def bad_open(name, field_, **changes):
        args = {**opening("BTC", "LONG", 100, 95, 110, 1), **changes}
        add(op(f"invalid/open-{name}", f"open refused: {field_} {changes}", [f"error:invalid_trade:{field_}"],
               ("open", args), setup=[(0, "open", opening("XAU", "LONG", 100, 95, 110, 1))]))

    bad_open("symbol-empty", "symbol", symbol="  ")
    bad_open("symbol-not-string", "symbol", symbol=42)
    bad_open("symbol-inner-space", "symbol", symbol="BT C")
    bad_open("symbol-too-long", "symbol", symbol="X" * 33)
    bad_open("direction-unknown", "direction", direction="UP")
    bad_open("direction-not-string", "direction", direction=1)
    bad_open("entry-zero", "entry_price", entry_price=0)
    bad_open("entry-string", "entry_price", entry_price="100")
    bad_open("entry-bool", "entry_price", entry_price=True)
    bad_open("entry-nan", "entry_price", entry_price=special("NaN"))
    bad_open("size-infinite", "size", size=special("Infinity"))
    bad_open("size-negative", "size", size=-1)
    bad_open("stop-negative", "stop_price", stop_price=-95)
    bad_open("stop-above-entry-long", "stop_price", stop_price=101)
    bad_open("stop-equal-entry-long", "stop_price", stop_price=100)
    bad_open("stop-below-entry-short", "stop_price", direction="SHORT", stop_price=95, target_price=90)
    bad_open("target-below-entry-long", "target_price", target_price=99)
    bad_open("target-above-entry-short", "target_price", direction="SHORT", stop_price=105, target_price=110)
    bad_open("target-zero", "target_price", target_price=0)
    bad_open("setup-type-not-string", "setup_type", setup_type=7)
    bad_open("grade-not-string", "grade", grade=None)
    bad_open("notes-too-long", "notes", notes="n" * 10_001)
    add(op("invalid/validation-before-risk", "bad input is reported even when a risk check would also refuse",
           ["error:invalid_trade:size", "order:validation-first"],
           ("open", {**BTC, "size": 0}), setup=[(0, "open", BTC)]))

    one_open = [(0, "open", BTC)]

    def bad(name, field_, operation, setup=one_open):
        add(op(f"invalid/{name}", f"refused: {field_}", [f"error:invalid_trade:{field_}"], operation, setup=setup))

    bad("close-trade-id-empty", "trade_id", ("close", {"trade_id": "", "exit_price": 105}))
    bad("close-trade-id-number", "trade_id", ("close", {"trade_id": 1, "exit_price": 105}))
    bad("close-exit-zero", "exit_price", ("close", {"trade_id": "T001", "exit_price": 0}))
    bad("close-reason-not-string", "exit_reason", ("close", {"trade_id": "T001", "exit_price": 105, "exit_reason": 3}))
    bad("close-lessons-not-string", "lessons", ("close", {"trade_id": "T001", "exit_price": 105, "lessons": ["x"]}))
    bad("partial-pct-zero", "close_pct", ("partial_close", {"trade_id": "T001", "close_pct": 0, "exit_price": 105}))
    bad("partial-pct-one", "close_pct", ("partial_close", {"trade_id": "T001", "close_pct": 1, "exit_price": 105}))
    bad("partial-pct-percent", "close_pct", ("partial_close", {"trade_id": "T001", "close_pct": 50, "exit_price": 105}))
    bad("partial-pct-string", "close_pct", ("partial_close", {"trade_id": "T001", "close_pct": "0.5", "exit_price": 105}))
    tiny = [(0, "open", opening("BTC", "LONG", 100, 95, 110, 0.000001))]
    bad("partial-closes-nothing", "close_pct",
        ("partial_close", {"trade_id": "T001", "close_pct": 0.4, "exit_price": 105}), setup=tiny)
    bad("partial-leaves-nothing", "close_pct",
        ("partial_close", {"trade_id": "T001", "close_pct": 0.6, "exit_price": 105}), setup=tiny)
    bad("partial-exit-negative", "exit_price", ("partial_close", {"trade_id": "T001", "close_pct": 0.5, "exit_price": -1}))
    bad("partial-reason-not-string", "reason", ("partial_close", {"trade_id": "T001", "close_pct": 0.5,
                                                                  "exit_price": 105, "reason": None}))
    bad("update-empty", "updates", ("update", {"trade_id": "T001", "updates": {}}))
    bad("update-not-a-dict", "updates", ("update", {"trade_id": "T001", "updates": [["stop_price", 99]]}))
    for protected in ("entry_price", "status", "pnl_usd", "id", "size"):
        bad(f"update-protected-{protected}", protected,
            ("update", {"trade_id": "T001", "updates": {protected: 1}}))
    bad("update-unknown-field", "leverage", ("update", {"trade_id": "T001", "updates": {"leverage": 3}}))
    bad("update-stop-not-positive", "stop_price", ("update", {"trade_id": "T001", "updates": {"stop_price": 0}}))
    bad("update-stop-at-target-long", "stop_price", ("update", {"trade_id": "T001", "updates": {"stop_price": 110}}))
    bad("update-target-wrong-side-long", "target_price",
        ("update", {"trade_id": "T001", "updates": {"target_price": 100}}))
    bad("update-stop-below-target-short", "stop_price",
        ("update", {"trade_id": "T001", "updates": {"stop_price": 2600}}), setup=[(0, "open", ETH_SHORT)])
    bad("update-notes-not-string", "notes", ("update", {"trade_id": "T001", "updates": {"notes": 5}}))
    bad("batch-not-a-list", "batch", ("update_batch", {"batch": {"T001": {"stop_price": 99}}}))
    bad("batch-not-pairs", "batch[0]", ("update_batch", {"batch": [["T001"]]}))
    bad("batch-repeated-id", "batch", ("update_batch", {"batch": [["T001", {"stop_price": 99}],
                                                                  ["T001", {"notes": "x"}]]}))
    bad("batch-all-or-nothing", "stop_price",
        ("update_batch", {"batch": [["T001", {"stop_price": 99}], ["T002", {"stop_price": 1}]]}),
        setup=[(0, "open", BTC), (0, "open", ETH_SHORT)])

    # -- other refusals -------------------------------------------------------------------
    add(op("error/trade-not-found", "closing an id that does not exist", ["error:trade_not_found"],
           ("close", {"trade_id": "T999", "exit_price": 105}), setup=one_open))
    closed = [(0, "open", BTC), (1, "close", {"trade_id": "T001", "exit_price": 105})]
    add(op("error/close-closed", "a CLOSED trade cannot be closed again", ["error:trade_not_open"],
           ("close", {"trade_id": "T001", "exit_price": 106}), setup=closed))
    add(op("error/partial-closed", "nor partially closed", ["error:trade_not_open"],
           ("partial_close", {"trade_id": "T001", "close_pct": 0.5, "exit_price": 106}), setup=closed))
    add(op("error/update-closed", "nor updated", ["error:trade_not_open"],
           ("update", {"trade_id": "T001", "updates": {"notes": "late"}}), setup=closed))
    # a record that breaks an invariant (size + partial exits != original_size) written by other code
    damaged = json.loads(build_log([(0, "open", BTC), (0, "open", ETH_SHORT)]))
    damaged["trades"][0]["original_size"] = 3
    add(op("error/integrity-touched-trade", "a write touching a record that breaks an invariant is refused",
           ["error:integrity_error"], ("update", {"trade_id": "T001", "updates": {"stop_price": 99}}),
           log_text=raw(damaged)))
    add(op("integrity/untouched-violation-tolerated", "an old violation in another record does not block a write",
           ["integrity:only-new-violations"], ("update", {"trade_id": "T002", "updates": {"stop_price": 3050}}),
           log_text=raw(damaged)))

    # -- corrupt logs: the store refuses to read and to write, and leaves the file as it is ---
    for name, text in [
        ("empty-file", ""), ("whitespace", "  \n"), ("truncated", '{"schema":1,"next_id":2,"trades":[{"id":"T0'),
        ("top-level-list", "[]"), ("trades-not-list", '{"trades":{}}'), ("schema-3", '{"schema":3,"trades":[]}'),
        ("schema-true", '{"schema":true,"trades":[]}'),
        ("trade-without-id", '{"trades":[{"symbol":"BTC","status":"OPEN"}]}'),
        ("bad-id", '{"trades":[{"id":"X1","symbol":"BTC","status":"OPEN"}]}'),
        ("bad-status", '{"trades":[{"id":"T001","symbol":"BTC","status":"MAYBE"}]}'),
        ("symbol-not-string", '{"trades":[{"id":"T001","symbol":1,"status":"OPEN"}]}'),
        ("next-id-zero", '{"next_id":0,"trades":[]}'), ("next-id-float", '{"next_id":2.0,"trades":[]}'),
        ("nan-literal", '{"trades":[],"x":NaN}'),
    ]:
        add(op(f"corrupt/load-{name}", f"an unreadable log ({name}) is refused for reads",
               ["error:corrupt_log"], ("load", {}), log_text=text))
    add(op("corrupt/open-on-truncated", "an unreadable log is refused for writes too and left unchanged",
           ["error:corrupt_log", "never-write-over-unreadable"], ("open", BTC), log_text='{"schema":1,"tra'))

    # -- seed-format logs -----------------------------------------------------------------
    add(op("seed/load", "a seed log (no schema, its next_id, indent=2) loads unchanged",
           ["seed:load", "seed:next_id"], ("load", {}), log_text=seed_log()))
    add(op("seed/open-upgrades", "the first write of a seed log adds schema 2, trades unchanged",
           ["seed:upgrade", "op:open"], ("open", opening("SOL", "LONG", 100, 90, 130, 1)), log_text=seed_log()))
    add(op("seed/close-bare-record", "closing a seed record without original_stop/original_size uses stop_price/size",
           ["seed:missing-fields", "op:close"], ("close", {"trade_id": "T003", "exit_price": 110}),
           log_text=seed_log([SEED_BARE_OPEN])))
    add(op("seed/next-id-lags", "a seed next_id behind its highest id is raised past it",
           ["seed:next_id", "id:never-reused"], ("load", {}), log_text=seed_log([SEED_BARE_OPEN])))
    add(op("seed/close-after-seed-partial", "closing a seed trade after its partial exit: pnl_usd is the rest's",
           ["seed:partials", "op:close"], ("close", {"trade_id": "T004", "exit_price": 220}), log_text=SEED_PARTIALS))
    add(op("seed/close-after-seed-partial-without-originals",
           "a seed record without original_size after its partial exit opened with size + the exits' "
           "size_closed: the close is accepted and net_r_multiple is over that whole size's risk",
           ["seed:partials", "seed:missing-fields", "op:close"], ("close", {"trade_id": "T004", "exit_price": 220}),
           log_text=SEED_PARTIALS_WITHOUT_ORIGINALS))
    add(op("seed/loss-cap-counts-net", "a seed trade that lost on its rest but won net does not count as a loss",
           ["seed:partials", "rule:loss_cap"], ("open", opening("BTC", "LONG", 100, 95, 110, 1)),
           log_text=SEED_PARTIALS, limits={"asset_consecutive_loss_cap": 1}))
    add(op("schema1/load-converts", "a schema-1 log (net pnl_usd) is read with today's meanings",
           ["schema:1", "op:load"], ("load", {}), log_text=SCHEMA_1_LOG))
    add(op("schema1/write-upgrades", "the first write of a schema-1 log writes schema 2 and the converted records",
           ["schema:1", "seed:upgrade"], ("open", ETH_SHORT), log_text=SCHEMA_1_LOG))
    add(op("seed/duplicate-symbol", "the seed's OPEN ETH blocks another ETH", ["seed:rules", "rule:duplicate_symbol"],
           ("open", opening("eth", "LONG", 3000, 2900, 3300, 0.1)), log_text=seed_log()))

    # -- risk rules -----------------------------------------------------------------------
    add(op("risk/duplicate-symbol", "at most one OPEN trade per symbol", ["rule:duplicate_symbol"],
           ("open", BTC), setup=one_open))
    add(op("risk/duplicate-symbol-normalised", "' Btc' is the same symbol as 'BTC'", ["rule:duplicate_symbol"],
           ("open", {**BTC, "symbol": " Btc"}), setup=one_open))
    two = [(0, "open", BTC), (0, "open", ETH_SHORT)]
    add(op("risk/position-cap", "max_positions 2 with 2 OPEN: refused", ["rule:position_cap"],
           ("open", opening("SPY", "LONG", 500, 495, 520, 1)), setup=two, limits={"max_positions": 2}))
    add(op("risk/position-cap-below", "max_positions 3 with 2 OPEN: allowed", ["rule:position_cap", "boundary"],
           ("open", opening("SPY", "LONG", 500, 495, 520, 1)), setup=two, limits={"max_positions": 3}))
    add(op("risk/order-duplicate-before-cap", "both the duplicate and the cap refuse: duplicate_symbol is reported",
           ["order:checks"], ("open", BTC), setup=two, limits={"max_positions": 2}))
    add(op("risk/order-cap-before-correlation", "cap and correlation both refuse: position_cap is reported",
           ["order:checks"], ("open", opening("SOL", "LONG", 100, 50, 200, 10)), setup=two, limits={"max_positions": 2}))
    add(op("risk/loss-cap", "three closed BTC losses in a row block BTC", ["rule:loss_cap"],
           ("open", BTC), setup=losses("BTC", 3)))
    add(op("risk/loss-cap-two-losses", "two losses do not", ["rule:loss_cap", "boundary"],
           ("open", BTC), setup=losses("BTC", 2)))
    add(op("risk/loss-cap-breakeven-counts", "a breakeven close (net 0) counts as a loss", ["rule:loss_cap", "breakeven"],
           ("open", BTC), setup=losses("BTC", 3, last_pnl=0.0)))
    add(op("risk/loss-cap-win-breaks-run", "loss, loss, win: not blocked", ["rule:loss_cap"],
           ("open", BTC), setup=losses("BTC", 3, last_pnl=1.0)))
    add(op("risk/loss-cap-other-symbol", "a loss-capped BTC does not block ETH", ["rule:loss_cap"],
           ("open", ETH_SHORT), setup=losses("BTC", 3)))
    net_win = [(0, "open", opening("BTC", "LONG", 100, 95, 110, 2)),
               (1, "partial_close", {"trade_id": "T001", "close_pct": 0.5, "exit_price": 110}),
               (2, "close", {"trade_id": "T001", "exit_price": 96})] + [
        (3 + 2 * i + d, step, {**kw, "trade_id": f"T{i + 2:03d}"} if step == "close" else kw)
        for i in range(2) for d, (step, kw) in enumerate([("open", opening("BTC", "LONG", 100, 95, 110, 1)),
                                                           ("close", {"exit_price": 99})])]
    add(op("risk/loss-cap-net-pnl", "a trade with a winning partial (+10) and a losing rest (-4) is a net win",
           ["rule:loss_cap", "partial:net-pnl"], ("open", BTC), setup=net_win))
    add(op("risk/loss-cap-disabled", "asset_consecutive_loss_cap null disables the rule", ["rule:loss_cap"],
           ("open", BTC), setup=losses("BTC", 3), limits={"asset_consecutive_loss_cap": None}))
    add(op("risk/loss-cap-cooldown-active", "24 h cooldown, 23 h after the last losing exit: still blocked",
           ["rule:loss_cap:cooldown"], ("open", BTC), setup=losses("BTC", 3), clock=5 + 23,
           limits={"loss_cap_cooldown_hours": 24}))
    add(op("risk/loss-cap-cooldown-over", "exactly 24 h after the last losing exit: allowed",
           ["rule:loss_cap:cooldown", "boundary"], ("open", BTC), setup=losses("BTC", 3), clock=5 + 24,
           limits={"loss_cap_cooldown_hours": 24}))
    # equity 5000 -> +1000 (peak 6000) -> -600 (5400): drawdown exactly 10 %
    dd = [(0, "open", opening("SPY", "LONG", 500, 400, 700, 10)), (1, "close", {"trade_id": "T001", "exit_price": 600}),
          (2, "open", opening("QQQ", "LONG", 400, 300, 500, 6))]
    add(op("risk/drawdown-halt", "drawdown 10 % from peak 6000 reaches a 10 % halt",
           ["rule:drawdown_halt:total"], ("open", BTC),
           setup=dd + [(3, "close", {"trade_id": "T002", "exit_price": 300})], limits={"max_drawdown_pct": 10}))
    add(op("risk/drawdown-below-halt", "drawdown 9.98 % (equity 5401) does not", ["rule:drawdown_halt:total", "boundary"],
           ("open", BTC), setup=dd + [(3, "close", {"trade_id": "T002", "exit_price": 300 + 1 / 6})],
           limits={"max_drawdown_pct": 10}))
    daily = [(0, "open", opening("SPY", "LONG", 500, 400, 700, 1)), (30, "close", {"trade_id": "T001", "exit_price": 400})]
    add(op("risk/daily-loss-halt", "a 100 loss today on 5000 at 00:00 UTC reaches a 2 % daily halt",
           ["rule:drawdown_halt:daily"], ("open", BTC), setup=daily, clock=31, limits={"max_daily_loss_pct": 2}))
    add(op("risk/daily-loss-yesterday", "the same loss yesterday does not count today",
           ["rule:drawdown_halt:daily", "boundary"], ("open", BTC), setup=daily, clock=36 + 1,
           limits={"max_daily_loss_pct": 2}))
    add(op("risk/daily-loss-partial", "a partial exit's loss today counts toward the daily halt",
           ["rule:drawdown_halt:daily", "partial:realized"], ("open", BTC), clock=31,
           setup=[(0, "open", opening("SPY", "LONG", 500, 300, 700, 2)),
                  (30, "partial_close", {"trade_id": "T001", "close_pct": 0.5, "exit_price": 400})],
           limits={"max_daily_loss_pct": 2}))
    weekly = [(0, "open", opening("SPY", "LONG", 500, 400, 700, 1)), (24, "close", {"trade_id": "T001", "exit_price": 400})]
    add(op("risk/weekly-loss-halt", "a 100 loss on Tuesday, seen on Wednesday, reaches a 2 % weekly halt",
           ["rule:drawdown_halt:weekly"], ("open", BTC), setup=weekly, clock=48, limits={"max_weekly_loss_pct": 2}))
    add(op("risk/weekly-loss-last-week", "the same loss seen the next Monday does not count",
           ["rule:drawdown_halt:weekly", "boundary"], ("open", BTC), setup=weekly, clock=24 * 7,
           limits={"max_weekly_loss_pct": 2}))
    add(op("risk/equity-gone-halts", "equity below 0 halts every open, with no drawdown limit configured",
           ["rule:drawdown_halt:equity"], ("open", opening("LINK", "LONG", 10, 9, 12, 1)),
           setup=[(0, "open", opening("SPY", "LONG", 500, 100, 900, 20)),
                  (1, "close", {"trade_id": "T001", "exit_price": 240})]))
    btc_risk_100 = [(0, "open", opening("BTC", "LONG", 100, 95, 110, 20))]
    add(op("risk/correlation-limit", "BTC risk 100 + ETH risk 101 > 4 % of 5000", ["rule:correlation_limit"],
           ("open", opening("ETH", "LONG", 100, 99, 110, 101)), setup=btc_risk_100))
    # 1.1 - 1.0 is 0.10000000000000009 in binary: the sum is a hair above the budget
    assert 100 + abs(1.1 - 1.0) * 1000 > 200
    add(op("risk/correlation-budget-exactly-filled", "BTC risk 100 + ETH risk 100 = the 200 budget: allowed",
           ["rule:correlation_limit", "tolerance"], ("open", opening("ETH", "LONG", 1.1, 1.0, 1.5, 1000)),
           setup=btc_risk_100))
    add(op("risk/correlation-no-group", "a symbol in no group has no group budget", ["rule:correlation_limit"],
           ("open", opening("LINK", "LONG", 100, 50, 110, 100)), setup=btc_risk_100))
    add(op("risk/correlation-equity-includes-realized", "after a +1000 win the budget is 4 % of 6000 = 240",
           ["rule:correlation_limit", "equity"], ("open", opening("ETH", "LONG", 100, 99, 110, 140)),
           setup=[(0, "open", opening("SPY", "LONG", 500, 400, 700, 10)),
                  (1, "close", {"trade_id": "T001", "exit_price": 600})] +
           [(2, "open", opening("BTC", "LONG", 100, 95, 110, 20))]))
    add(op("risk/correlation-original-risk", "a trailed stop and a partial exit do not free group budget",
           ["rule:correlation_limit", "original_stop"], ("open", opening("ETH", "LONG", 100, 99, 110, 101)),
           setup=btc_risk_100 + [(1, "update", {"trade_id": "T001", "updates": {"stop_price": 100}}),
                                 (2, "partial_close", {"trade_id": "T001", "close_pct": 0.5, "exit_price": 100})]))
    add(op("risk/correlation-custom-groups", "groups come from the config, members compared case-insensitively",
           ["rule:correlation_limit", "config:correlation_groups"],
           ("open", opening("MSFT", "LONG", 100, 90, 120, 10)),
           setup=[(0, "open", opening("AAPL", "LONG", 100, 90, 120, 10))],
           limits={"correlation_groups": {"tech": ["aapl", " msft"]}, "max_corr_group_risk_pct": 3}))
    heat = [(0, "open", opening("SPY", "LONG", 100, 90, 120, 10)), (0, "open", opening("GLD", "LONG", 100, 90, 120, 10))]
    add(op("risk/portfolio-heat", "open risk 200 + new 60 > 5 % of 5000", ["rule:portfolio_heat"],
           ("open", opening("LINK", "LONG", 100, 90, 120, 6)), setup=heat, limits={"max_portfolio_heat_pct": 5}))
    add(op("risk/portfolio-heat-filled", "open risk 200 + new 50 = the 250 budget: allowed",
           ["rule:portfolio_heat", "tolerance"], ("open", opening("LINK", "LONG", 100, 90, 120, 5)), setup=heat,
           limits={"max_portfolio_heat_pct": 5}))
    return cases


# --------------------------------------------------------------------------- derivations


def derivation_cases() -> list[Case]:
    cases: list[Case] = []
    add = cases.append
    mixed = [
        (0, "open", opening("BTC", "LONG", 100, 90, 130, 2, "RSI_Div", "A")),           # T001 risk 20
        (1, "partial_close", {"trade_id": "T001", "close_pct": 0.5, "exit_price": 120}),  # +20
        (26, "close", {"trade_id": "T001", "exit_price": 110}),                           # +10, net 30
        (2, "open", opening("ETH", "SHORT", 50, 55, 40, 4, "Breakout")),                 # T002 risk 20
        (27, "close", {"trade_id": "T002", "exit_price": 55}),                            # -20
        (3, "open", opening("SOL", "LONG", 10, 9, 12, 10, "")),                           # T003 risk 10
        (50, "close", {"trade_id": "T003", "exit_price": 10}),                            # 0
        (51, "open", opening("XAU", "LONG", 200, 190, 250, 1, "RSI_Div")),              # T004 risk 10
        (52, "partial_close", {"trade_id": "T004", "close_pct": 0.5, "exit_price": 220}), # +10
        (53, "update", {"trade_id": "T004", "updates": {"stop_price": 205}}),
        (54, "open", opening("SPY", "SHORT", 500, 510, 480, 1, "Breakout")),            # T005 risk 10
    ]
    add(derivation("mixed-long-short-partials", "wins, a loss, a breakeven, partial exits, SHORT trades, an empty "
                   "setup and two open positions (one with its stop past entry)",
                   ["derived:portfolio.json:*", "derived:equity.json:*", "derived:risk_state.json:*",
                    "derived:setup_performance.json:*", "breakeven", "partial", "direction:SHORT"],
                   setup=mixed, clock=60))
    add(derivation("empty-log", "no trades: every value at its neutral start", ["derived:empty"],
                   log_text=raw({"schema": 1, "next_id": 1, "trades": []}), clock=0))
    add(derivation("open-only", "one OPEN trade: heat and open risk, no statistics",
                   ["derived:positions", "derived:heat"], setup=[(0, "open", opening("BTC", "LONG", 100, 95, 110, 4))],
                   clock=1))
    add(derivation("all-wins", "no loss: profit_factor and loss averages are null",
                   ["derived:profit_factor:null", "derived:streaks"],
                   setup=[(0, "open", opening("BTC", "LONG", 100, 95, 110, 1, "A")),
                          (1, "close", {"trade_id": "T001", "exit_price": 105}),
                          (2, "open", opening("ETH", "SHORT", 100, 105, 90, 1, "A")),
                          (3, "close", {"trade_id": "T002", "exit_price": 95})], clock=4))
    add(derivation("loss-streak", "three losses after a win: current streak -3, longest loss run 3",
                   ["derived:streaks"],
                   setup=[(0, "open", opening("BTC", "LONG", 100, 95, 110, 1)),
                          (1, "close", {"trade_id": "T001", "exit_price": 105})] +
                         [(2 + 2 * i + d, s, kw) for i in range(3)
                          for d, (s, kw) in enumerate([("open", opening("BTC", "LONG", 100, 95, 110, 1)),
                                                       ("close", {"trade_id": f"T{i + 2:03d}", "exit_price": 98})])],
                   clock=10))

    def halting(name, description, covers, pnl, clock, hours=1, limits=None, size=10):
        steps = [(0, "open", opening("SPY", "LONG", 500, 100, 900, size)),
                 (hours, "close", {"trade_id": "T001", "exit_price": 500 + pnl / size})]
        add(derivation(name, description, covers, setup=steps, clock=clock, limits=limits or {}))

    halting("halt-daily", "a 300 loss today (6 %) halts on a 5 % max_daily_loss_pct", ["derived:halt:daily"], -300, 2,
            limits={"max_daily_loss_pct": 5})
    halting("halt-weekly", "a 600 loss on Tuesday seen on Wednesday (12 %) halts on a 10 % max_weekly_loss_pct",
            ["derived:halt:weekly"], -600, 48, hours=24, limits={"max_weekly_loss_pct": 10})
    halting("halt-total", "a 1100 loss last week (22 %) halts on a 20 % max_drawdown_pct", ["derived:halt:total"],
            -1100, 24 * 8, limits={"max_drawdown_pct": 20})
    halting("no-halt-by-default", "the same 22 % loss with no drawdown limit configured: not halted, as the store "
            "would open a trade", ["derived:halt:none"], -1100, 24 * 8)
    halting("caution", "an 11 % drawdown from last week is CAUTION, not halted", ["derived:caution"], -550, 24 * 8)
    halting("equity-gone", "equity at or below 0 halts whatever the limits", ["derived:halt:equity"], -6000, 24 * 8,
            limits={"caution_drawdown_pct": None}, size=20)
    add(derivation("verdicts-blocked-and-heat", "three BTC losses block BTC; open risk 100 over a 2 % heat budget "
                   "of equity 4985 caps heat: the store refuses both, so risk_state says both",
                   ["derived:blocked_symbols", "derived:heat_capped"],
                   setup=losses("BTC", 3) + [(6, "open", opening("SPY", "LONG", 500, 490, 520, 10))],
                   clock=7, limits={"max_portfolio_heat_pct": 2}))
    add(derivation("seed-partials", "a log written by the seed's own code, with partial exits: pnl_usd is the final "
                   "exit's, a trade's net adds its partials (T001 -5 on the rest after +20 is a net win)",
                   ["seed:derive", "seed:partials", "partial:net-pnl"], log_text=SEED_PARTIALS, clock=0))
    add(derivation("schema-1-log", "a log of an earlier version (schema 1, net P&L in pnl_usd) reads the same money",
                   ["schema:1"], log_text=SCHEMA_1_LOG, clock=0))
    add(derivation("drawdown-days", "a peak on day 1, below it since: drawdown days counted to the clock's date",
                   ["derived:drawdown_days", "derived:equity_curve"],
                   setup=[(0, "open", opening("SPY", "LONG", 500, 400, 700, 1)),
                          (1, "close", {"trade_id": "T001", "exit_price": 600}),
                          (25, "open", opening("QQQ", "LONG", 400, 300, 500, 1)),
                          (49, "close", {"trade_id": "T002", "exit_price": 350}),
                          (73, "open", opening("GLD", "LONG", 100, 90, 130, 1)),
                          (97, "close", {"trade_id": "T003", "exit_price": 130})], clock=24 * 6))
    add(derivation("seed-format", "a seed log with a bare record (no original_* fields) and a zero-risk record",
                   ["seed:derive", "derived:r:null"],
                   log_text=seed_log([SEED_BARE_OPEN, {
                       "id": "T004", "symbol": "DOGE", "direction": "LONG", "entry_price": 1, "stop_price": 1,
                       "target_price": 2, "size": 10, "entry_time": "2026-01-04T01:00:00+00:00", "exit_price": 1.5,
                       "exit_time": "2026-01-04T02:00:00+00:00", "pnl_usd": 5.0, "status": "CLOSED",
                       "setup_type": "Scalp"}]), clock=24))
    return cases


# --------------------------------------------------------------------------- hand checks

HAND_CHECKS: dict[str, list[tuple[tuple, Any]]] = {
    # (path into the vector's "expect") -> value worked out by hand
    "open/long-on-missing-log": [(("result", "id"), "T001"), (("log", "next_id"), 2), (("log", "schema"), 2),
                                 (("result", "original_stop"), 63500), (("result", "entry_time"), "2026-01-05T12:30:00+00:00")],
    "open/id-beyond-999": [(("result", "id"), "T1000"), (("log", "next_id"), 1001)],
    "open/next-id-behind-ids": [(("result", "id"), "T006")],
    # 10 per unit: x2 = 20 USD, 10 / 100 = 10 %, 10 / 5 = 2 R; no partial exit, so the net is the same
    "close/long-win": [(("result", "pnl_usd"), 20.0), (("result", "pnl_pct"), 10.0), (("result", "r_multiple"), 2.0),
                       (("result", "net_pnl_usd"), 20.0), (("result", "net_r_multiple"), 2.0)],
    "close/short-loss": [(("result", "pnl_usd"), -100.0), (("result", "pnl_pct"), -3.33), (("result", "r_multiple"), -1.0)],
    "close/breakeven": [(("result", "pnl_usd"), 0.0), (("result", "r_multiple"), 0.0)],
    "partial/long-quarter": [(("result", "size"), 1.5), (("result", "partial_exits", 0, "size_closed"), 0.5),
                             (("result", "partial_exits", 0, "pnl_usd"), 2.5)],
    # the rest, 0.5 at 2950: 50 per unit -> 25 USD, 50 / 3000 = 1.67 %, 50 / 100 = 0.5 R;
    # net +50 (half at 2900) + 25 = 75, over the initial risk 100 x 1 = 0.75 R
    "partial/short-then-close": [(("result", "pnl_usd"), 25.0), (("result", "pnl_pct"), 1.67),
                                 (("result", "r_multiple"), 0.5), (("result", "net_pnl_usd"), 75.0),
                                 (("result", "net_r_multiple"), 0.75)],
    # 1 at 104 (+4), 0.5 at 98 (-1), the rest 0.5 at 96: -4 per unit -> -2 USD, -4 %, -0.8 R;
    # net 4 - 1 - 2 = 1 over the initial risk 5 x 2 = 0.1 R
    "partial/two-then-close-loss": [(("result", "pnl_usd"), -2.0), (("result", "pnl_pct"), -4.0),
                                    (("result", "r_multiple"), -0.8), (("result", "net_pnl_usd"), 1.0),
                                    (("result", "net_r_multiple"), 0.1),
                                    (("result", "partial_exits", 1, "size_closed"), 0.5)],
    # 1/3 x 0.5 = 0.1666666... -> 0.166667; 0.3333333... - 0.166667 -> 0.166666; 0.6 x 0.166667 -> 0.10
    "partial/sizes-rounded": [(("result", "partial_exits", 0, "size_closed"), 0.166667),
                              (("result", "size"), 0.166666), (("result", "partial_exits", 0, "pnl_usd"), 0.1)],
    "invalid/partial-closes-nothing": [(("field",), "close_pct")],
    "invalid/partial-leaves-nothing": [(("field",), "close_pct")],
    "close/r-uses-original-stop": [(("result", "r_multiple"), 0.8)],
    # 0.1 x 1/3 = 0.0333... -> 0.03 USD; 0.1 / 10 = 1 %; 0.1 / 0.3 = 0.333... -> 0.33 R;
    # net R 0.03 / (0.3 x 1/3) = 0.3
    "close/rounding": [(("result", "pnl_usd"), 0.03), (("result", "pnl_pct"), 1.0),
                       (("result", "r_multiple"), 0.33), (("result", "net_r_multiple"), 0.3)],
    "update/batch": [(("result",), 2)],
    "seed/load": [(("result", "next_id"), "T003")],
    "seed/open-upgrades": [(("result", "id"), "T003"), (("log", "schema"), 2), (("log", "next_id"), 4)],
    "seed/next-id-lags": [(("result", "next_id"), "T004")],
    # T004's rest, 0.5 at 220: 20 per unit -> 10 USD, 10 %, 2 R; net 5 + 10 = 15 over 10 x 1 = 1.5 R
    "seed/close-after-seed-partial": [(("result", "pnl_usd"), 10.0), (("result", "pnl_pct"), 10.0),
                                      (("result", "r_multiple"), 2.0), (("result", "net_pnl_usd"), 15.0),
                                      (("result", "net_r_multiple"), 1.5)],
    "seed/loss-cap-counts-net": [(("outcome",), "ok")],
    # the rest, 1 at 104: 4 USD, 4 %, 4 / 5 = 0.8 R; the old net 14 stays the net, 14 / 10 = 1.4 R
    "schema1/load-converts": [(("result", "trades", 0, "pnl_usd"), 4.0), (("result", "trades", 0, "pnl_pct"), 4.0),
                              (("result", "trades", 0, "r_multiple"), 0.8),
                              (("result", "trades", 0, "net_pnl_usd"), 14.0),
                              (("result", "trades", 0, "net_r_multiple"), 1.4)],
    "schema1/write-upgrades": [(("log", "schema"), 2), (("log", "trades", 0, "pnl_usd"), 4.0),
                               (("log", "trades", 0, "net_pnl_usd"), 14.0)],
    "risk/weekly-loss-halt": [(("check",), "drawdown_halt")],
    "risk/weekly-loss-last-week": [(("outcome",), "ok")],
    # 20 units from 500 to 240: -5200; equity 5000 - 5200 = -200
    "risk/equity-gone-halts": [(("check",), "drawdown_halt")],
    # bare record: stop_price 90 and size 3 stand in for the missing originals: +30, 10 %, 1 R
    "seed/close-bare-record": [(("result", "pnl_usd"), 30.0), (("result", "pnl_pct"), 10.0),
                               (("result", "r_multiple"), 1.0)],
    "risk/position-cap": [(("check",), "position_cap")],
    "risk/order-duplicate-before-cap": [(("check",), "duplicate_symbol")],
    "risk/order-cap-before-correlation": [(("check",), "position_cap")],
    "risk/loss-cap-breakeven-counts": [(("check",), "loss_cap")],
    "risk/loss-cap-cooldown-over": [(("outcome",), "ok")],
    "risk/drawdown-halt": [(("check",), "drawdown_halt")],
    "risk/drawdown-below-halt": [(("outcome",), "ok")],
    "risk/daily-loss-halt": [(("check",), "drawdown_halt")],
    "risk/correlation-budget-exactly-filled": [(("outcome",), "ok")],
    "risk/correlation-equity-includes-realized": [(("outcome",), "ok")],
    "risk/correlation-original-risk": [(("check",), "correlation_limit")],
    "risk/portfolio-heat-filled": [(("outcome",), "ok")],
    "invalid/batch-all-or-nothing": [(("field",), "stop_price")],
    # realized: 30 - 20 + 0 (closed) + 10 (XAU partial) = 20; equity 5020
    "mixed-long-short-partials": [
        (("portfolio.json", "realized_pnl"), 20.0), (("portfolio.json", "current_equity"), 5020.0),
        (("portfolio.json", "closed_pnl"), 10.0), (("portfolio.json", "open_partial_pnl"), 10.0),
        (("portfolio.json", "total_trades"), 3), (("portfolio.json", "winning_trades"), 1),
        (("portfolio.json", "losing_trades"), 2), (("portfolio.json", "breakeven_trades"), 1),
        # XAU stop 205 is past its entry 200: no open risk; SPY SHORT 510 - 500 = 10
        (("portfolio.json", "open_risk_usd"), 10.0), (("portfolio.json", "portfolio_heat"), 0.1992),
        (("equity.json", "win_rate"), 33.3333), (("equity.json", "profit_factor"), 1.5),
        # R: 30 / 20 = 1.5, -20 / 20 = -1, 0 / 10 = 0 -> avg 0.1667; expectancy 1/3 x 1.5 + 1/3 x -1
        (("equity.json", "avg_r"), 0.1667), (("equity.json", "expectancy"), 0.1667),
        (("equity.json", "last_5_results"), ["W", "L", "B"]), (("equity.json", "current_streak"), 0),
        (("setup_performance.json", "ranking"), ["RSI_Div", "UNKNOWN", "Breakout"]),
        (("setup_performance.json", "setups", "Breakout", "trades"), ["T002"]),
        # +20 (Jan 5), +10 then -20 (Jan 6), 0 and +10 (Jan 7): peak 5030 on Jan 6, then 5010
        (("equity.json", "peak_equity"), 5030.0), (("equity.json", "max_drawdown_pct"), -0.3976),
        (("equity.json", "equity_curve", 1, "pnl"), -10.0), (("equity.json", "current_drawdown_days"), 2),
        (("risk_state.json", "daily_start_value"), 5020.0), (("risk_state.json", "weekly_start_value"), 5000.0),
        (("equity.json", "expectancy_usd"), 3.33333333),
    ],
    "halt-daily": [(("risk_state.json", "halted"), True), (("risk_state.json", "daily_drawdown_pct"), -6.0),
                   (("risk_state.json", "daily_start_value"), 5000.0)],
    # 4400 on Wednesday against 5000 at Monday 00:00: -12 %
    "halt-weekly": [(("risk_state.json", "halted"), True), (("risk_state.json", "weekly_drawdown_pct"), -12.0)],
    "halt-total": [(("risk_state.json", "halted"), True), (("risk_state.json", "total_drawdown_pct"), -22.0)],
    "no-halt-by-default": [(("risk_state.json", "halted"), False), (("risk_state.json", "halt_reason"), None)],
    "equity-gone": [(("risk_state.json", "halted"), True), (("risk_state.json", "current_value"), -1000.0)],
    # three BTC losses of 5: equity 4985; SPY open risk 10 x 10 = 100 > 2 % of 4985 = 99.7
    "verdicts-blocked-and-heat": [(("risk_state.json", "blocked_symbols", "BTC"),
                                   "BTC: last 3/3 closed trades lost (net P&L <= 0); blocked"),
                                  (("risk_state.json", "heat_capped"), True),
                                  (("risk_state.json", "current_value"), 4985.0),
                                  (("risk_state.json", "halted"), False)],
    # nets: T001 +20 - 5 = 15, T002 +10 - 4 = 6, T003 -10; the OPEN T004's partial +5
    # realized 16; closed 11; wins 2 (T001, T002), losses 1; R 15/20, 6/20, -10/10 -> mean 0.0167
    # events +20 +(-5) +10 +(-4) +(-10) +5 from 5000: peak 5025
    "seed-partials": [(("portfolio.json", "realized_pnl"), 16.0), (("portfolio.json", "current_equity"), 5016.0),
                      (("portfolio.json", "closed_pnl"), 11.0), (("portfolio.json", "winning_trades"), 2),
                      (("portfolio.json", "losing_trades"), 1), (("equity.json", "avg_r"), 0.0167),
                      (("equity.json", "peak_equity"), 5025.0),
                      (("setup_performance.json", "setups", "A", "total_pnl"), 21.0),
                      (("setup_performance.json", "setups", "A", "wins"), 2),
                      (("setup_performance.json", "setups", "B", "total_pnl"), -10.0)],
    "schema-1-log": [(("portfolio.json", "realized_pnl"), 14.0), (("portfolio.json", "winning_trades"), 1),
                     (("equity.json", "avg_r"), 1.4)],
    "caution": [(("equity.json", "drawdown_status"), "CAUTION"), (("risk_state.json", "halted"), False)],
    # +100 on Jan 5, -50 on Jan 7, +30 on Jan 9: peak 5100 on Jan 5, below it since; clock Jan 11
    "drawdown-days": [(("equity.json", "peak_equity"), 5100.0), (("equity.json", "current_drawdown_days"), 6),
                      (("equity.json", "max_drawdown_pct"), -0.9804)],
    "seed-format": [(("portfolio.json", "realized_pnl"), 45.0),
                    (("setup_performance.json", "setups", "Scalp", "avg_r"), None)],
}


def _dig(value: Any, path: tuple) -> Any:
    for key in path:
        value = value[key]
    return value


def check_by_hand(vector: dict) -> None:
    """Fail if a hand-computed number disagrees with the vector's expectation."""
    for path, wanted in HAND_CHECKS.get(vector["name"], ()):
        got = _dig(vector["expect"], path)
        ok = got == wanted if not isinstance(wanted, float) else math.isclose(got, wanted, rel_tol=0, abs_tol=1e-9)
        if not ok:
            raise AssertionError(f"{vector['name']}: expect{list(path)} is {got!r}; by hand it is {wanted!r}")


# --------------------------------------------------------------------------- coverage

REQUIRED_COVERS = [
    *(f"rule:{name}" for name in ("duplicate_symbol", "position_cap", "loss_cap", "correlation_limit",
                                  "portfolio_heat", "loss_cap:cooldown", "drawdown_halt:total",
                                  "drawdown_halt:daily")),
    *(f"error:{kind}" for kind in ERROR_KINDS.values() if kind not in ("invalid_trade", "risk_rejected")),
    *(f"error:invalid_trade:{f}" for f in (
        "symbol", "direction", "entry_price", "stop_price", "target_price", "size", "setup_type", "grade",
        "notes", "trade_id", "exit_price", "exit_reason", "lessons", "close_pct", "reason", "updates",
        "batch", "batch[0]")),
    "breakeven", "partial:net-pnl", "direction:SHORT", "seed:load", "seed:upgrade", "seed:missing-fields",
    "seed:derive", "seed:partials", "seed:next_id", "schema:1", "order:checks", "rule:drawdown_halt:weekly",
    "rule:drawdown_halt:equity", "derived:blocked_symbols", "derived:heat_capped", "derived:halt:none",
]


def all_vectors() -> dict[str, dict]:
    """Every vector by its relative path, with the hand checks and the coverage enforced."""
    vectors: dict[str, dict] = {}
    for kind, cases in (("operations", operation_cases()), ("derivations", derivation_cases())):
        for case in cases:
            vector = case.vector()
            check_by_hand(vector)
            rel = f"{kind}/{case.name.replace('/', '--')}.json"
            assert rel not in vectors, f"two cases named {case.name}"
            vectors[rel] = vector
    missing = [name for name in HAND_CHECKS if not any(v["name"] == name for v in vectors.values())]
    assert not missing, f"hand checks for cases that do not exist: {missing}"
    covered = {c for v in vectors.values() for c in v["covers"]}
    uncovered = [c for c in REQUIRED_COVERS if c not in covered]
    assert not uncovered, f"no vector covers {uncovered}"
    checks = {v["expect"].get("check") for v in vectors.values()}
    assert {"duplicate_symbol", "position_cap", "loss_cap", "drawdown_halt", "correlation_limit",
            "portfolio_heat"} <= checks, f"a built-in check never refuses in the vectors: {checks}"
    for rel, vector in journal_cases.all_vectors().items():
        assert rel not in vectors, f"two vectors at {rel}"
        vectors[rel] = vector
    return vectors


def encode(vector: dict) -> str:
    """The file text of a vector: stable key order as built, indent 1, strict JSON, UTF-8."""
    return json.dumps(vector, indent=1, ensure_ascii=False, allow_nan=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Write (or --check) the conformance vectors.")
    parser.add_argument("--check", action="store_true", help="compare with the files instead of writing them")
    parser.add_argument("--out", type=pathlib.Path, default=VECTORS, help=f"vector directory (default {VECTORS})")
    args = parser.parse_args(argv)
    vectors = all_vectors()
    existing = {str(p.relative_to(args.out)) for p in args.out.rglob("*.json")} if args.out.exists() else set()
    if args.check:
        stale = [rel for rel, v in vectors.items()
                 if not (args.out / rel).exists() or (args.out / rel).read_text(encoding="utf-8") != encode(v)]
        extra = sorted(existing - set(vectors))
        for rel in stale:
            print(f"stale or missing: {rel}")
        for rel in extra:
            print(f"not produced by the generator: {rel}")
        print(f"{len(vectors)} vectors: {'ok' if not stale and not extra else 'OUT OF DATE'}")
        return 1 if stale or extra else 0
    for rel in sorted(existing - set(vectors)):
        (args.out / rel).unlink()
    for rel, vector in vectors.items():
        path = args.out / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(encode(vector), encoding="utf-8")
    ops = sum(1 for v in vectors.values() if v["kind"] == "operation")
    derived = sum(1 for v in vectors.values() if v["kind"] == "derivation")
    print(f"wrote {ops} operation, {derived} derivation and {len(vectors) - ops - derived} journal vectors "
          f"to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
