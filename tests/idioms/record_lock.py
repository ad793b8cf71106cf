"""``fcntl.fcntl`` record locks on a lock file the store names itself.

:class:`Store` (the positive control) ignores the lock file it is given and takes an open file
description lock (``F_OFD_SETLKW`` with a ``struct flock`` write lock over the whole file) on
``<log>.lck``; the log is read under it and written by temp file, fsync, ``os.replace`` and a
directory fsync. :class:`PosixStore` takes a classic POSIX record lock (``F_SETLKW``) on the
given lock file instead. The negative controls each change one thing:

- :class:`CheckOutsideLock`: the risk checks judge a read made before the lock is taken;
- :class:`LocksTheLog`: locks the trade log itself, which the next write replaces, so the
  next writer locks a different file and both are inside at once.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import struct

from tests.idioms import rules
from tests.idioms import open_flock
from tests.idioms.open_flock import Store as _Writes

F_OFD_SETLKW = getattr(fcntl, "F_OFD_SETLKW", 38)  # Linux; the module names it from Python 3.9 on


def _whole_file(kind: int) -> bytes:
    """A ``struct flock`` (l_type, l_whence, l_start, l_len, l_pid) over the whole file."""
    return struct.pack("hhqqi", kind, os.SEEK_SET, 0, 0, 0)


class Store(_Writes):
    command = F_OFD_SETLKW

    def lock_path(self) -> str:
        return self.trade_log + ".lck"

    @contextlib.contextmanager
    def locked(self):
        fd = os.open(self.lock_path(), os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.fcntl(fd, self.command, _whole_file(fcntl.F_WRLCK))  # waits for the other writer
            try:
                yield
            finally:
                fcntl.fcntl(fd, self.command, _whole_file(fcntl.F_UNLCK))
        finally:
            os.close(fd)


make_store = Store


class PosixStore(Store):
    command = fcntl.F_SETLKW

    def lock_path(self) -> str:
        return self.lock_file


class CheckOutsideLock(Store):
    """Flaw: decides on a read made before locking, then appends under the lock (TOCTOU)."""

    open_trade = open_flock.CheckOutsideLock.open_trade  # the same flaw, on this store's lock


class LocksTheLog(Store):
    """Flaw: locks the trade log, which ``save`` replaces: the lock stays on the old file."""

    def lock_path(self) -> str:
        return self.trade_log

    @contextlib.contextmanager
    def locked(self):
        if not os.path.exists(self.trade_log):
            self.save(rules.empty())  # something to lock: the first write makes the log
        with super().locked():
            yield
