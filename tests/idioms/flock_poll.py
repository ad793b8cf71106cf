"""``flock(LOCK_EX | LOCK_NB)`` polled until a deadline, and ``pathlib`` reads.

:class:`Store` retries a busy lock every few milliseconds for up to 30 s, then gives up with
``TimeoutError`` (a stuck holder must not hang the bot, and a timed-out call writes nothing).
It writes a temp file with ``open(tmp, "wb")``, fsyncs it, renames it and fsyncs the directory.
Negative control:

- :class:`GivesUp`: after a few busy polls it writes anyway, without the lock ("the lock is
  probably stale"), which is no lock at all exactly when it matters.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import pathlib
import time

from tests.idioms import rules
from tests.idioms.base import BotStore, sync_directory

POLL = 0.002


class Store(BotStore):
    timeout = 30.0

    def acquire(self, f) -> bool:
        """Poll the lock until it is ours (True) or the deadline passes."""
        deadline = time.monotonic() + self.timeout
        while True:
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return True
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    return False
                time.sleep(POLL)

    @contextlib.contextmanager
    def locked(self):
        with open(self.lock_file, "a") as f:
            if not self.acquire(f):
                raise TimeoutError(f"{self.lock_file} stayed locked for {self.timeout} s")
            try:
                yield
            finally:
                fcntl.flock(f, fcntl.LOCK_UN)

    def load(self) -> dict:
        path = pathlib.Path(self.trade_log)
        try:
            return rules.parse(path.read_bytes(), self.trade_log)
        except FileNotFoundError:
            return rules.empty()

    def save(self, doc: dict) -> None:
        path = pathlib.Path(self.trade_log)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        try:
            with open(tmp, "wb") as f:
                f.write(rules.dumps(doc))
                f.flush()
                os.fsync(f.fileno())
            tmp.replace(path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        sync_directory(str(path.parent))


make_store = Store


class GivesUp(Store):
    """Flaw: three busy polls and it writes without the lock."""

    @contextlib.contextmanager
    def locked(self):
        with open(self.lock_file, "a") as f:
            got = False
            for _ in range(3):
                try:
                    fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    got = True
                    break
                except BlockingIOError:
                    time.sleep(POLL)
            try:
                yield
            finally:
                if got:
                    fcntl.flock(f, fcntl.LOCK_UN)
