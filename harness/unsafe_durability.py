"""Negative controls for durability: our real store plus one fault, atomic but not durable.

Both pass every kill test (a killed process leaves the page cache, so a rename without fsync
still looks complete), and both lose acknowledged trades when the power goes. The power-loss
scenario must catch each of them, every time, naming the lost trade:

- ``unsafe-no-fsync``: :class:`tradestore.TradeStore` whose log writes run under a fault of the
  file-system layer that skips every ``fsync`` of a file: after a power cut the new name can
  point to an empty or torn file;
- ``unsafe-no-dir-fsync``: the same, skipping every ``fsync`` of a directory: after a power cut
  the rename can be undone and the log is the previous version.

Nothing of the write path is copied: the library's own ``atomic.write_atomic`` runs, and the
fault (:func:`tradestore_harness.fsfaults.skipping`) makes the one call return without reaching the
disk, so a shim that records the run (power-loss's) sees that call never made.
"""

from __future__ import annotations

import os

from tradestore import TradeStore
from tradestore_harness.fsfaults import skipping


class _SkippingStore(TradeStore):
    """TradeStore whose log writes skip every call of kind :attr:`SKIP` (one step removed)."""

    SKIP = ""

    def _write_log(self, data: bytes) -> os.stat_result:
        with skipping(os.path.dirname(self.trade_log), self.SKIP):
            return super()._write_log(data)


class NoFsyncStore(_SkippingStore):
    """Renames a temp file whose data was never fsynced (the directory is fsynced)."""

    SKIP = "fsync"


class NoDirFsyncStore(_SkippingStore):
    """Fsyncs the data but never the directory after the rename."""

    SKIP = "dirfsync"


def no_fsync(trade_log, lock_file=None, **limits):
    """Flaw: renames the temp file without fsyncing its data (a power cut leaves an empty or torn log)."""
    return NoFsyncStore(trade_log, lock_file, **limits)


def no_dir_fsync(trade_log, lock_file=None, **limits):
    """Flaw: never fsyncs the directory after the rename (a power cut undoes acknowledged writes)."""
    return NoDirFsyncStore(trade_log, lock_file, **limits)


TARGETS = {"unsafe-no-fsync": no_fsync, "unsafe-no-dir-fsync": no_dir_fsync}
