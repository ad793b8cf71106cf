"""The ``tradestore-journal`` target: our store in the journal format, checkpointing often.

The library checkpoints once the journal outgrows both the checkpoint and 256 KiB
(``tradestore.journal.CHECKPOINT_MIN_BYTES``), so a workload of a few operations would never
fold its journal into a checkpoint, and the campaign would prove the appends alone. Here that
floor is :func:`checkpoint_floor` bytes (default 0: a checkpoint every time the journal outgrows
the checkpoint, which in the file-system scenarios' workloads is every second or third write),
so crashes, I/O errors and power cuts also land between every two steps of a checkpoint. The
rule that decides, the checkpoint itself and everything else are the library's own; the floor
is lowered only inside this store's writes (nothing else in the process sees it).

``TRADESTORE_CHAOS_CHECKPOINT_BYTES=N`` sets the floor (``262144``: the library's default).
"""

from __future__ import annotations

import os

from tradestore import TradeStore, journal
from tradestore_harness.patching import patched

CHECKPOINT_BYTES_ENV = "TRADESTORE_CHAOS_CHECKPOINT_BYTES"


def checkpoint_floor() -> int:
    """The journal bytes below which no checkpoint is written, for this campaign."""
    value = os.environ.get(CHECKPOINT_BYTES_ENV, "0")
    try:
        floor = int(value)
    except ValueError:
        raise ValueError(f"{CHECKPOINT_BYTES_ENV}={value!r}: expected a number of bytes") from None
    if floor < 0:
        raise ValueError(f"{CHECKPOINT_BYTES_ENV}={value!r}: expected a number of bytes >= 0")
    return floor


class JournalStore(TradeStore):
    """:class:`tradestore.TradeStore` with ``log_format="journal"`` and the campaign's floor."""

    def __init__(self, trade_log, lock_file=None, **options) -> None:
        self._floor = checkpoint_floor()
        super().__init__(trade_log, lock_file, log_format="journal", **options)

    def _persist_journal(self, ledger, cache) -> None:
        with patched(journal, "CHECKPOINT_MIN_BYTES", self._floor):
            super()._persist_journal(ledger, cache)


def tradestore_journal(trade_log, lock_file=None, **limits):
    """Ours in the journal format: TradeStore(..., log_format="journal"), checkpointing often."""
    return JournalStore(trade_log, lock_file, **limits)
