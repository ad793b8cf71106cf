"""Every call relative to a directory descriptor (``dir_fd``), as a store hardened against a
renamed or symlinked folder does.

:class:`Store` (the positive control) opens the log's folder once per call and then works by
name inside it: ``os.open(name, flags, dir_fd=folder)`` for the lock file, the log and the temp
file, ``os.replace(tmp, name, src_dir_fd=folder, dst_dir_fd=folder)``, ``os.unlink(tmp,
dir_fd=folder)``, and ``os.fsync(folder)``; a blocking ``flock`` on the lock file. The negative
control changes one thing:

- :class:`NoFileFsync`: renames the temp file without fsyncing its data.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os

from tests.idioms import rules
from tests.idioms.base import BotStore


class Store(BotStore):
    @contextlib.contextmanager
    def folder(self):
        fd = os.open(os.path.dirname(self.trade_log), os.O_RDONLY | os.O_DIRECTORY)
        try:
            yield fd
        finally:
            os.close(fd)

    @contextlib.contextmanager
    def locked(self):
        with self.folder() as folder:
            fd = os.open(os.path.basename(self.lock_file), os.O_RDWR | os.O_CREAT, 0o644, dir_fd=folder)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # releases the lock

    def load(self) -> dict:
        with self.folder() as folder:
            try:
                fd = os.open(os.path.basename(self.trade_log), os.O_RDONLY, dir_fd=folder)
            except FileNotFoundError:
                return rules.empty()
        with os.fdopen(fd, "rb") as f:
            return rules.parse(f.read(), self.trade_log)

    def sync_data(self, fd: int) -> None:
        os.fsync(fd)

    def save(self, doc: dict) -> None:
        name = os.path.basename(self.trade_log)
        tmp = f".{name}.{os.getpid()}.tmp"
        data = memoryview(json.dumps(doc, indent=2, allow_nan=False).encode())
        with self.folder() as folder:
            try:
                fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644, dir_fd=folder)
                try:
                    while data:
                        data = data[os.write(fd, data):]
                    self.sync_data(fd)
                finally:
                    os.close(fd)
                os.replace(tmp, name, src_dir_fd=folder, dst_dir_fd=folder)
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(tmp, dir_fd=folder)
                raise
            os.fsync(folder)


make_store = Store


class NoFileFsync(Store):
    """Flaw: the temp file's data is never fsynced before the rename."""

    def sync_data(self, fd: int) -> None:
        pass
