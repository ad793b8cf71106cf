"""The ``filelock`` package's ``FileLock`` (``flock`` polled with ``LOCK_NB`` inside), and ``io.open`` writes.

:class:`Store` keeps one ``FileLock`` per store and holds it across read, decide and write.
Negative control:

- :class:`WriteOnlyLocked`: reads the log and decides without the lock, then takes the lock
  only to write its copy (the most common way a lock is "added" to an existing bot): a write
  made meanwhile by another process is overwritten, and two processes can both accept.
"""

from __future__ import annotations

import io
import os
import uuid

import filelock

from tests.idioms import rules
from tests.idioms.base import BotStore, sync_directory


class Store(BotStore):
    def __init__(self, trade_log, lock_file=None, **options) -> None:
        super().__init__(trade_log, lock_file, **options)
        self.lock = filelock.FileLock(self.lock_file, timeout=30)

    def locked(self):
        return self.lock

    def load(self) -> dict:
        try:
            with io.open(self.trade_log, "rb") as f:
                return rules.parse(f.read(), self.trade_log)
        except FileNotFoundError:
            return rules.empty()

    def save(self, doc: dict) -> None:
        tmp = f"{self.trade_log}.{uuid.uuid4().hex}.tmp"
        try:
            with io.open(tmp, "wb") as f:
                f.write(rules.dumps(doc))
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.trade_log)
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise
        sync_directory(os.path.dirname(self.trade_log))


make_store = Store


class WriteOnlyLocked(Store):
    """Flaw: read and decide outside the lock; only the write is locked."""

    def change(self, edit):
        doc = self.load()
        result = edit(doc)
        with self.lock:
            self.save(doc)
        return result
