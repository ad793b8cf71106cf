"""tradestore: atomic, file-locked state for autonomous trading bots.

One trade log is the single source of truth. Every write goes through :class:`TradeStore`
(exclusive flock, every risk check under the lock, atomic durable replace); every derived
report is rebuilt from the log by :class:`StateReconciler`. Standard library only.

The library logs through the ``tradestore`` logger (refusals at INFO, slow lock waits at
WARNING, integrity problems at ERROR) and adds only a NullHandler: it prints nothing unless the
application configures logging.
"""

import logging as _logging

from .errors import (
    ConversionRefused,
    CorruptTradeLog,
    ForkedTransaction,
    IntegrityError,
    InvalidTrade,
    LockLost,
    LockTimeout,
    NestedTransactionError,
    RecoveryRefused,
    RiskRejected,
    StoreStopped,
    TradeNotFound,
    TradeNotOpen,
    TradeStoreError,
    UnsafePath,
)
from .ledger import Ledger
from .locking import FileLock
from .risk import DEFAULT_CORRELATION_GROUPS, Proposal, RiskLimits
from .store import TradeStore

__all__ = [
    "ConversionRefused",
    "CorruptTradeLog",
    "DEFAULT_CORRELATION_GROUPS",
    "FileLock",
    "ForkedTransaction",
    "IntegrityError",
    "InvalidTrade",
    "Ledger",
    "LockLost",
    "LockTimeout",
    "NestedTransactionError",
    "PgTradeStore",
    "Proposal",
    "RecoveryRefused",
    "RiskLimits",
    "RiskRejected",
    "StateReconciler",
    "StoreStopped",
    "TradeNotFound",
    "TradeNotOpen",
    "TradeStore",
    "TradeStoreError",
    "UnsafePath",
]

__version__ = "0.1.0"

_logging.getLogger("tradestore").addHandler(_logging.NullHandler())


def __getattr__(name: str):
    # The reconciler is imported on first use so that writers do not pay for it.
    if name == "StateReconciler":
        from .reconciler import StateReconciler

        return StateReconciler
    if name == "PgTradeStore":  # the PostgreSQL store; psycopg is imported on its first use
        from .pgstore import PgTradeStore

        return PgTradeStore
    raise AttributeError(f"module 'tradestore' has no attribute {name!r}")
