"""Old or foreign records with wrongly typed fields: readable logs the store did not write.

The reader checks only a log's shape (docs/FORMAT.md); every other field of a record may hold
any JSON value, or be missing. Such a record must not crash a read, equity() or a risk check,
must not block a write that does not touch it, and a write that does touch it fails with a
documented error or succeeds. The reconciler reports on the log and never raises.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from datetime import datetime, timezone

from hypothesis import example, given
from hypothesis import strategies as st

from tradestore import RiskRejected, StateReconciler, TradeStore, TradeStoreError

T0 = datetime(2026, 3, 2, 12, tzinfo=timezone.utc)
LIMITS = dict(correlation_groups={"g": ["BTC", "ETH", "SOL"]}, max_corr_group_risk_pct=90.0,
              max_portfolio_heat_pct=90.0, max_drawdown_pct=90.0, max_daily_loss_pct=90.0,
              loss_cap_cooldown_hours=1.0, asset_consecutive_loss_cap=1)
CLOSED = {"id": "T001", "symbol": "BTC", "direction": "LONG", "entry_price": 100.0, "stop_price": 90.0,
          "original_stop": 90.0, "target_price": 120.0, "size": 1.0, "original_size": 1.0,
          "entry_time": "2026-03-01T00:00:00+00:00", "exit_price": 95.0, "exit_time": "2026-03-02T11:00:00+00:00",
          "exit_reason": "", "pnl_usd": -5.0, "pnl_pct": -5.0, "r_multiple": -0.5, "status": "CLOSED",
          "setup_type": "", "grade": "", "notes": "", "partial_exits": [], "lessons": ""}
OPEN = {"id": "T002", "symbol": "ETH", "direction": "SHORT", "entry_price": 50.0, "stop_price": 55.0,
        "original_stop": 55.0, "target_price": 40.0, "size": 1.0, "original_size": 2.0,
        "entry_time": "2026-03-01T00:00:00+00:00", "exit_price": None, "exit_time": None, "exit_reason": None,
        "pnl_usd": None, "pnl_pct": None, "r_multiple": None, "status": "OPEN", "setup_type": "", "grade": "",
        "notes": "", "lessons": "",
        "partial_exits": [{"exit_price": 45.0, "size_closed": 1.0, "pnl_usd": 5.0, "reason": "Partial TP",
                           "timestamp": "2026-03-02T10:00:00+00:00"}]}
FIELDS = sorted((set(CLOSED) | {"timestamp", "size_closed", "reason"}) - {"id", "status", "symbol"})

json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-(2**64), 2**64), st.floats(allow_nan=False, allow_infinity=False),
              st.text(max_size=8), st.sampled_from(["100", "", "LONG", "SHORT", "2026-03-02", "9999-12-31T23:59:59+00:00",
                                                    "0001-01-01T00:00:00+05:00", "nan", 1e308, -1e308, 0, -0.0])),
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=5), inner, max_size=3)),
    max_leaves=6,
)
MISSING = object()
damage = st.lists(
    st.tuples(st.sampled_from(["closed", "open", "partial"]), st.sampled_from(FIELDS), st.one_of(json_values, st.just(MISSING))),
    min_size=1, max_size=3,
)


def damaged_log(edits) -> bytes:
    closed, opened = json.loads(json.dumps(CLOSED)), json.loads(json.dumps(OPEN))
    for record, field, value in edits:
        if record == "partial":
            parts = opened.get("partial_exits")
            if not (isinstance(parts, list) and parts and isinstance(parts[0], dict)):
                continue
            target = parts[0]
        else:
            target = closed if record == "closed" else opened
        if value is MISSING:
            target.pop(field, None)
        else:
            target[field] = value
    return json.dumps({"schema": 1, "next_id": 3, "trades": [closed, opened]}).encode()


def _documented(action):
    try:
        return action()
    except TradeStoreError as exc:
        str(exc)
        return exc


@given(edits=damage)
@example(edits=[("open", "partial_exits", False)])  # a partial close of it recorded no exit
def test_a_wrongly_typed_record_never_breaks_reads_checks_or_unrelated_writes(edits):
    with tempfile.TemporaryDirectory() as directory:
        log = os.path.join(directory, "trades.json")
        with open(log, "wb") as f:
            f.write(damaged_log(edits))
        store = TradeStore(log, fsync=False, clock=lambda: T0, **LIMITS)
        assert len(store.get_all_trades()) == 2
        assert isinstance(store.equity(), float) and math.isfinite(store.equity())
        assert isinstance(store.verify_integrity(), list)
        ok, reason = store.can_open_position("SOL", "LONG", 10, 9, 1)
        assert isinstance(ok, bool) and isinstance(reason, str)
        # an unrelated write: refused only by a risk check, never by the old record
        opened = _documented(lambda: store.open_trade("ADA", "LONG", 10, 9, 12, 1))
        assert isinstance(opened, (dict, RiskRejected)), opened
        # writes that touch the damaged records: a documented error or a success
        _documented(lambda: store.update_trade("T002", {"notes": "x"}))
        _documented(lambda: store.partial_close("T002", 0.5, 45))
        _documented(lambda: store.close_trade("T002", 45))
        assert math.isfinite(store.equity())
        result = StateReconciler(log, os.path.join(directory, "state"), fsync=False, clock=lambda: T0).reconcile()
        assert result.ok, result.reason
