"""One-way signals between the harness and its workers that a SIGKILL cannot break.

A ``multiprocessing.Event`` is a lock, a condition and a semaphore shared by every process
that uses it: a worker killed while inside ``is_set()`` or ``set()`` leaves the lock taken, and
the parent and every restarted worker then block on it forever. A :class:`FileFlag` is a file
that exists once the flag is set: setting it is one ``open(O_CREAT)``, testing it one
``stat``; a process killed at any moment leaves it either set or not, never stuck.
"""

from __future__ import annotations

import os
import time
from typing import Iterable


class FileFlag:
    """A flag that is set when the file ``path`` exists (picklable: it is only the path)."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = os.fspath(path)

    def set(self) -> None:
        os.close(os.open(self.path, os.O_CREAT | os.O_WRONLY, 0o644))

    def is_set(self) -> bool:
        return os.path.exists(self.path)

    def wait(self, timeout: float, alive: Iterable = (), poll: float = 0.002) -> bool:
        """Wait until set, at most ``timeout`` seconds; stop early if one of ``alive`` (processes)
        died. Returns whether the flag is set."""
        deadline = time.monotonic() + timeout
        while not self.is_set():
            remaining = deadline - time.monotonic()
            if remaining <= 0 or any(not p.is_alive() for p in alive):
                return self.is_set()
            time.sleep(min(poll, remaining))  # polling a file: the one wait a kill cannot break
        return True

    def __repr__(self) -> str:
        return f"FileFlag({self.path!r})"
