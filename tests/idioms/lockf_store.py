"""POSIX record locks through ``fcntl.lockf``, and ``tempfile.NamedTemporaryFile`` writes.

``lockf`` locks belong to the *process* and the file, not to a descriptor: the kernel drops the
lock as soon as the process closes *any* descriptor of the lock file. :class:`Store` opens the
lock file once per transaction and closes it only after unlocking. Negative control:

- :class:`ReopenReleases`: after locking it records its pid by opening the lock file a second
  time and closing it, which silently releases the lock it still believes it holds.
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
        with open(self.lock_file, "a") as f:
            fcntl.lockf(f, fcntl.LOCK_EX)
            try:
                self.after_lock()
                yield
            finally:
                fcntl.lockf(f, fcntl.LOCK_UN)

    def after_lock(self) -> None:
        """Hook run right after the lock is taken (nothing here)."""

    def load(self) -> dict:
        if not os.path.exists(self.trade_log):
            return rules.empty()
        with open(self.trade_log, "rb") as f:
            return rules.parse(f.read(), self.trade_log)

    def save(self, doc: dict) -> None:
        folder = os.path.dirname(self.trade_log)
        with tempfile.NamedTemporaryFile("w", dir=folder, suffix=".tmp", delete=False, encoding="utf-8") as f:
            try:
                json.dump(doc, f, indent=2, allow_nan=False)
                f.flush()
                os.fsync(f.fileno())
            except BaseException:
                os.unlink(f.name)
                raise
        try:
            os.replace(f.name, self.trade_log)
        except BaseException:
            os.unlink(f.name)
            raise
        sync_directory(folder)


make_store = Store


class ReopenReleases(Store):
    """Flaw: a second open/close of the lock file ends the lock (POSIX lock semantics)."""

    def after_lock(self) -> None:
        with open(self.lock_file, "r+") as f:
            f.write(f"{os.getpid():<15}\n")
