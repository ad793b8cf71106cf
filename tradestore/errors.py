"""Exception hierarchy. Every failure the library raises is a :class:`TradeStoreError`.

A call that raises any of these has written nothing.
"""

from __future__ import annotations


def describe(value: object, limit: int = 80) -> str:
    """``repr(value)`` for an error message, shortened to ``limit`` characters; never raises.

    A value's own ``__repr__`` may fail (or an int may be too long to print): the message
    then names the type instead, so a refusal is never replaced by a crash.
    """
    try:
        text = repr(value)
    except Exception:
        if isinstance(value, int):
            return f"<int of {value.bit_length()} bits>"
        return f"<{type(value).__name__} object>"
    return text if len(text) <= limit else text[: limit - 3] + "..."


class TradeStoreError(Exception):
    """Base class of every error raised by tradestore."""


class InvalidTrade(TradeStoreError, ValueError):
    """Bad input: the message names the field, the value and what is allowed."""

    def __init__(self, field: str, value: object, expected: str) -> None:
        self.field = field
        self.value = value
        name = field if isinstance(field, str) else describe(field)
        super().__init__(f"{name}={describe(value)}: {expected}")


class RiskRejected(TradeStoreError):
    """A risk check refused the trade. ``check`` names the check, ``reason`` says the numbers."""

    def __init__(self, check: str, reason: str) -> None:
        self.check = check
        self.reason = reason
        super().__init__(f"{check}: {reason}")


class TradeNotFound(TradeStoreError, LookupError):
    """No trade with that id exists in the log."""

    def __init__(self, trade_id: object) -> None:
        self.trade_id = trade_id
        super().__init__(f"trade {describe(trade_id)} not found")

    def __str__(self) -> str:  # LookupError would otherwise quote the message
        return self.args[0]


class TradeNotOpen(TradeStoreError):
    """The trade exists but is already CLOSED, so it cannot be closed or changed again."""

    def __init__(self, trade_id: str) -> None:
        self.trade_id = trade_id
        super().__init__(f"trade {trade_id} is CLOSED; only OPEN trades can be changed")


class LockTimeout(TradeStoreError, TimeoutError):
    """The lock could not be acquired before the deadline."""


class LockLost(TradeStoreError):
    """The lock file was removed or replaced while this process held its lock; nothing was written.

    ``flock`` locks a file, not a name: a process that opens the name after that locks another
    file and holds "the lock" too. The holder checks before every write that the name is still
    its file, and refuses to write otherwise, so the other process's writes are not overwritten.
    The lock file is permanent: never remove it while writers may run.
    """


class UnsafePath(TradeStoreError, ValueError):
    """A file the library would use is unsafe to use: it is not a regular file, or it is also
    another of the log's files (the log, its backup or its lock file) by some route (same path,
    symlink, hard link), or it names another lock file than the one that guards the log.

    Raised before anything is written; the message names both files and the fix.
    """


class ForkedTransaction(TradeStoreError, RuntimeError):
    """A transaction begun in one process was left in a process forked from it.

    The child does not hold the parent's lock, and its copy of the log may already be stale
    (the parent may have committed since), so its changes are dropped instead of written.
    Open a new transaction in the child.
    """


class RecoveryRefused(TradeStoreError):
    """``recover()`` would lose data or reuse an id; nothing was changed. The message says why
    and what to do."""


class ConversionRefused(TradeStoreError):
    """``convert()`` would drop something the log holds (a top-level key the other format
    uses for itself); nothing was changed. The message says what and what to do."""


class CorruptTradeLog(TradeStoreError):
    """The trade log cannot be read or has the wrong shape. It is left untouched for recovery."""


class IntegrityError(TradeStoreError):
    """The operation would have left the log with a new integrity violation; nothing was written."""

    def __init__(self, violations: list[str]) -> None:
        self.violations = list(violations)
        super().__init__("integrity violation: " + "; ".join(self.violations))


class NestedTransactionError(TradeStoreError, RuntimeError):
    """A second store opened a transaction on a log this thread is already changing.

    Joining would let the outer transaction's commit overwrite the inner one's write (a lost
    update), so it is refused at once instead of deadlocking or losing data.
    Also raised by a Transaction used outside its own block or thread (it holds no lock), and
    by the commit of an outer block after a joined block raised (its changes cannot be undone
    alone, so nothing is written).
    """


class StoreStopped(TradeStoreError, OSError):
    """A journal write failed and its unacknowledged record could not be cut off again.

    The store refuses every later call and keeps the writers' lock for the rest of the
    process's life, so no other process reads that record as committed; the message says
    where it is and what to do.
    """
