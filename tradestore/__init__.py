"""tradestore: atomic, file-locked state for autonomous trading bots.

One trade log is the single source of truth. Every write goes through :class:`TradeStore`
(exclusive flock, every risk check under the lock, atomic durable replace); every derived
report is rebuilt from the log by :class:`StateReconciler`. Standard library only.
"""

from .errors import (
    CorruptTradeLog,
    IntegrityError,
    InvalidTrade,
    LockTimeout,
    NestedTransactionError,
    RiskRejected,
    TradeNotFound,
    TradeNotOpen,
    TradeStoreError,
)
from .ledger import Ledger
from .locking import FileLock
from .risk import DEFAULT_CORRELATION_GROUPS, Proposal, RiskLimits
from .store import TradeStore

__all__ = [
    "CorruptTradeLog",
    "DEFAULT_CORRELATION_GROUPS",
    "FileLock",
    "IntegrityError",
    "InvalidTrade",
    "Ledger",
    "LockTimeout",
    "NestedTransactionError",
    "PgTradeStore",
    "Proposal",
    "RiskLimits",
    "RiskRejected",
    "StateReconciler",
    "TradeNotFound",
    "TradeNotOpen",
    "TradeStore",
    "TradeStoreError",
]

__version__ = "0.1.0"


def __getattr__(name: str):
    # The reconciler is imported on first use so that writers do not pay for it.
    if name == "StateReconciler":
        from .reconciler import StateReconciler

        return StateReconciler
    if name == "PgTradeStore":  # the PostgreSQL store; psycopg is imported on its first use
        from .pgstore import PgTradeStore

        return PgTradeStore
    raise AttributeError(f"module 'tradestore' has no attribute {name!r}")
