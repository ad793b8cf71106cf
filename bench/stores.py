"""The stores the benchmark measures: their names, files, how to open one and how to count its trades.

Every store runs with the same rule configuration (:data:`RULES`) except the floor, which
checks none on purpose (see :class:`bench.baselines.AppendFloorStore`).
"""

from __future__ import annotations

import json
import sqlite3

from bench import journal as journal_bench
from bench.baselines import AppendFloorStore, RuleConfig, SeedPatternStore, SqliteStore
from bench.history import CORRELATION_GROUPS

__all__ = ["RULES", "IMPLS", "REFERENCE", "JOURNAL", "SQLITE", "FLOOR", "SIDE_BY_SIDE", "DEFAULT_REACH",
           "FILENAMES", "make_store", "count_trades"]

RULES = RuleConfig(
    max_positions=7, starting_capital=5000.0, correlation_groups=CORRELATION_GROUPS,
    max_corr_group_risk_pct=4.0, asset_consecutive_loss_cap=3,
)

REFERENCE = "tradestore"  # the reference of the "x tradestore" ratio
JOURNAL = "tradestore-journal"
SQLITE = "sqlite-wal-full"
FLOOR = "append-fsync-floor"  # the reference of the "x floor" ratio
# The comparison printed side by side, in this order.
SIDE_BY_SIDE = (REFERENCE, JOURNAL, SQLITE, FLOOR)

# name -> on-disk format of its history (a template per format and size is built once per run).
IMPLS = {
    REFERENCE: "ts",
    JOURNAL: "journal",  # TradeStore(log_format="journal") on the converted history
    SQLITE: "sqlite",
    FLOOR: "floor",
    "tradestore-nofsync": "ts",
    "seed-pattern": "seed",
    "tradestore-pg": "pg",  # PgTradeStore on a local server (bench/pg.py); left out without one
}
FILENAMES = {"ts": "trades.json", "journal": "trades.json", "seed": "trades.json", "sqlite": "trades.db",
             "floor": "trades.log", "pg": "account"}

# Stores outside the side-by-side comparison are measured by default only up to this
# (history, writers): the seed pattern takes seconds per write at 100,000 trades and minutes
# with competing writers, and the others say what they have to say at 10,000. A store named
# in --stores is measured in every cell.
DEFAULT_REACH = {
    "tradestore-nofsync": (10000, 1),
    "seed-pattern": (10000, 1),
    "tradestore-pg": (10000, 4),
}


def make_store(impl: str, path: str):
    """A store of kind ``impl`` over ``path`` with the benchmark's shared rule configuration."""
    limits = dict(max_positions=RULES.max_positions, starting_capital=RULES.starting_capital,
                  correlation_groups=RULES.correlation_groups,
                  max_corr_group_risk_pct=RULES.max_corr_group_risk_pct,
                  asset_consecutive_loss_cap=RULES.asset_consecutive_loss_cap, lock_timeout=300.0)
    if impl in (REFERENCE, "tradestore-nofsync"):
        from tradestore import TradeStore

        return TradeStore(path, fsync=(impl == REFERENCE), **limits)
    if impl == JOURNAL:
        from tradestore import TradeStore

        return TradeStore(path, fsync=True, log_format="journal", **limits)
    if impl == "seed-pattern":
        return SeedPatternStore(path, rules=RULES)
    if impl == SQLITE:
        return SqliteStore(path, rules=RULES)
    if impl == FLOOR:
        return AppendFloorStore(path)
    if impl == "tradestore-pg":  # ``path`` is the account name
        from bench import pg as pg_bench

        return pg_bench.make_store(path, **limits)
    raise ValueError(f"unknown implementation {impl!r}; choose from {', '.join(IMPLS)}")


def count_trades(impl: str, path: str) -> int:
    """Number of trades in the store's files, read afresh (not through the writers' stores)."""
    fmt = IMPLS[impl]
    if fmt == "pg":
        from bench import pg as pg_bench

        return pg_bench.count_trades(path)
    if fmt == "sqlite":
        db = sqlite3.connect(path)
        try:
            return db.execute("SELECT count(*) FROM trades").fetchone()[0]
        finally:
            db.close()
    if fmt == "floor":
        return AppendFloorStore.count(path)
    if fmt == "journal":
        return journal_bench.count_trades(path)
    with open(path, encoding="utf-8") as f:
        return len(json.load(f)["trades"])
