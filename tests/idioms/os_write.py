"""The ``os`` module only: ``os.open``/``os.write``/``os.fsync`` and a blocking ``flock`` on a raw descriptor.

:class:`Store` writes every byte (``os.write`` may write fewer than asked, so it loops), fsyncs
the temp file, renames it over the log and fsyncs the directory. Negative controls:

- :class:`NoDirFsync`: fsyncs the file but not the directory, so the rename is not durable;
- :class:`SingleWrite`: one ``os.write`` call, its count ignored (a short write loses the tail).
"""

from __future__ import annotations

import contextlib
import fcntl
import os

from tests.idioms import rules
from tests.idioms.base import BotStore, sync_directory


class Store(BotStore):
    @contextlib.contextmanager
    def locked(self):
        fd = os.open(self.lock_file, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # closing the only descriptor releases the flock

    def load(self) -> dict:
        try:
            fd = os.open(self.trade_log, os.O_RDONLY)
        except FileNotFoundError:
            return rules.empty()
        try:
            chunks = []
            while chunk := os.read(fd, 1 << 16):
                chunks.append(chunk)
        finally:
            os.close(fd)
        return rules.parse(b"".join(chunks), self.trade_log)

    def write_all(self, fd: int, data: bytes) -> None:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]

    def sync_dir(self, folder: str) -> None:
        sync_directory(folder)

    def save(self, doc: dict) -> None:
        tmp = f"{self.trade_log}.{os.getpid()}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            try:
                self.write_all(fd, rules.dumps(doc))
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(tmp, self.trade_log)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        self.sync_dir(os.path.dirname(self.trade_log))


make_store = Store


class NoDirFsync(Store):
    """Flaw: the renamed log's directory entry is never fsynced."""

    def sync_dir(self, folder: str) -> None:
        pass


class SingleWrite(Store):
    """Flaw: trusts one ``os.write`` to write everything."""

    def write_all(self, fd: int, data: bytes) -> None:
        os.write(fd, data)
