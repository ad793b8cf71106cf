"""Builtin ``open()`` and ``io`` writes under a blocking ``fcntl.flock``: the most common bot store.

:class:`Store` (the positive control) is the textbook version: ``flock(LOCK_EX)`` on a lock file,
the log read under the lock, a ``tempfile.mkstemp`` file written through ``os.fdopen`` and
``json.dump``, flushed and fsynced, ``os.replace``d over the log, and the directory fsynced.
The negative controls each change one thing, the way such stores go wrong:

- :class:`CheckOutsideLock`: the risk checks judge a read made before the lock is taken;
- :class:`NoLock`: never locks;
- :class:`InPlace`: rewrites the log in place (``open(log, "w")``);
- :class:`NoFsync`: temp file and rename, but never fsyncs;
- :class:`UpgradesShared`: reads and decides under a shared lock, then upgrades it to write
  (``flock`` drops the shared lock before it waits for the exclusive one, so two bots decide
  on the same state).

:class:`SharedReads` is a positive control too: plain reads under ``LOCK_SH``, every write's
read, decision and write under ``LOCK_EX``.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import tempfile

from tests.idioms import rules
from tests.idioms.base import BotStore, sync_directory


class Store(BotStore):
    @contextlib.contextmanager
    def locked(self):
        with open(self.lock_file, "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # blocks until the other process is done
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def load(self) -> dict:
        try:
            with open(self.trade_log, "rb") as f:
                return rules.parse(f.read(), self.trade_log)
        except FileNotFoundError:
            return rules.empty()

    def save(self, doc: dict) -> None:
        folder = os.path.dirname(self.trade_log)
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=".trades-", suffix=".tmp")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump(doc, f, indent=2, allow_nan=False)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.trade_log)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        sync_directory(folder)


make_store = Store


class CheckOutsideLock(Store):
    """Flaw: decides on a read made before locking, then appends under the lock (TOCTOU)."""

    def open_trade(self, symbol, direction, entry_price, stop_price, target_price, size,
                   setup_type="", grade="", notes=""):
        fields = rules.check_open(self.load(), self.limits, symbol, direction, entry_price, stop_price,
                                  target_price, size)
        return self.change(lambda doc: rules.add_open(doc, fields, setup_type, grade, notes))


class NoLock(Store):
    """Flaw: no lock at all; two writers overwrite each other's trades."""

    def locked(self):
        return contextlib.nullcontext()


class InPlace(Store):
    """Flaw: truncates the log and writes into it; a crash or a reader mid-write sees half a file."""

    def save(self, doc: dict) -> None:
        with open(self.trade_log, "w", encoding="utf-8") as f:
            json.dump(doc, f, indent=2, allow_nan=False)


class NoFsync(Store):
    """Flaw: temp file and rename without any fsync; a power cut can leave an empty log."""

    def save(self, doc: dict) -> None:
        fd, tmp = tempfile.mkstemp(dir=os.path.dirname(self.trade_log), prefix=".trades-", suffix=".tmp")
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(doc, f, indent=2, allow_nan=False)
        os.replace(tmp, self.trade_log)


class SharedReads(Store):
    """Readers share the lock (``LOCK_SH``); each write holds it exclusively throughout."""

    def get_all_trades(self):
        with open(self.lock_file, "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_SH)
            return self.load()["trades"]


class UpgradesShared(Store):
    """Flaw: decides under ``LOCK_SH``, then takes ``LOCK_EX`` for the write (not atomic)."""

    def change(self, edit):
        with open(self.lock_file, "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_SH)
            doc = self.load()
            result = edit(doc)
            fcntl.flock(lock, fcntl.LOCK_EX)
            self.save(doc)
            return result
