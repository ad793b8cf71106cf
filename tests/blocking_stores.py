"""Stores that take the lock with a blocking ``flock(fd, LOCK_EX)`` (no LOCK_NB, no timeout):
one correct, one that checks before locking. The harness sees their rivals wait only in
``/proc/locks``."""

from __future__ import annotations

import contextlib
import fcntl
import os

from tradestore_harness.unsafe import CheckOutsideLockStore, _ControlStore


@contextlib.contextmanager
def _blocking_flock(path: str):
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # blocks in the kernel until the holder lets go
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


class BlockingFlockStore(_ControlStore):
    """Correct: every check and the write under one blocking flock."""

    def _locked(self):
        return _blocking_flock(self.lock_file)


class BlockingFlockRacyStore(CheckOutsideLockStore):
    """Broken: decides on a read made before the blocking flock, then writes under it."""

    def _locked(self):
        return _blocking_flock(self.lock_file)
