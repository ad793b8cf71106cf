"""Watch a target from inside a worker process, without the target's cooperation.

:func:`install` puts a :class:`Spy` on the harness's one file-system interposition layer
(:class:`tradestore_harness.fsfaults.FsShim`) as an observer of ``fcntl.flock``/``fcntl.lockf``
and ``os.replace``/``os.rename`` in the calling process (a worker), so that for *any* store that
locks the lock file and replaces the trade log we learn:

- when the process acquired and released the lock (``lock``/``unlock`` events), and when it
  found the lock taken (``contended``);
- every version of the trade log it committed: the bytes of the file about to be renamed over
  the log are stored under ``versions_dir/<sha256>.json`` and a ``commit`` event is recorded.

Hooks let scenarios act at these moments: pause a commit until another process contends
(the TOCTOU wait-point), or create an ``O_EXCL`` sentinel inside the critical section (mutex).
Only worker processes call :func:`install`; the library itself carries no hooks.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import os
from typing import Callable

from tradestore_harness.fsfaults import FsShim, Observer
from tradestore_harness.history import HistoryWriter

_installed: list[FsShim] = []


def _entry(path) -> str:
    """The directory entry ``path`` names, as rename(2) resolves it: the directory with its
    symlinks resolved, the last name as it is (so a store that resolves the log's directory,
    as TradeStore does, and a worker given a path through a symlinked directory agree)."""
    path = os.path.abspath(os.fspath(path))
    return os.path.join(os.path.realpath(os.path.dirname(path)), os.path.basename(path))


class Spy(Observer):
    """The observer's state for one worker process."""

    functions = ("flock", "lockf", "replace", "rename", "close", "open")

    def around(self, name: str, proceed: Callable, args: tuple, kwargs: dict):
        if name in ("flock", "lockf"):
            return self._locking(proceed, *args, **kwargs)
        if name == "close":
            return self._closing(proceed, *args, **kwargs)
        if name == "open":
            return self._opening(proceed, *args, **kwargs)
        return self._renaming(proceed, *args, **kwargs)

    def _opening(self, real: Callable, path, flags, *args, **kwargs):
        # A read of the trade log: the moment a store looks at the state it will decide on.
        # Hooks run once the file is open, so the descriptor holds that version even if
        # another process replaces the log meanwhile.
        fd = real(path, flags, *args, **kwargs)
        if self.on_read and (flags & os.O_ACCMODE) == os.O_RDONLY and _entry(path) == self.trade_log:
            for hook in self.on_read:
                hook()
        return fd

    def _closing(self, real: Callable, fd, *args, **kwargs):
        # Closing the descriptor that holds the lock releases it (flock: the last descriptor of
        # the open file description; lockf: any descriptor of the file): a store that lets a
        # `with open(lock)` block or os.close() unlock must be seen unlocking here.
        if self.holding and fd in self._lock_fds:
            self._lock_fds.discard(fd)
            if not self._lock_fds:
                for hook in self.on_unlock:
                    hook()
                self.holding = False
                self.history.record("unlock", by="close")
        return real(fd, *args, **kwargs)

    def __init__(self, history: HistoryWriter, trade_log: str, lock_file: str, versions_dir: str | None):
        self.history = history
        self.trade_log = _entry(trade_log)
        self.lock_file = os.path.abspath(lock_file)
        self.versions_dir = versions_dir
        self.holding = False
        self.on_lock: list[Callable[[], None]] = []  # called right after the lock is acquired
        self.on_unlock: list[Callable[[], None]] = []  # called right before it is released
        self.on_contended: list[Callable[[], None]] = []
        self.on_commit: list[Callable[[str], None]] = []  # called with the sha, before the rename
        self._lock_fds: set[int] = set()  # descriptors that took the lock we hold
        self.on_read: list[Callable[[], None]] = []  # called when the trade log was opened for reading

    def _is_lock_fd(self, fd) -> bool:
        try:
            fd = fd if isinstance(fd, int) else fd.fileno()
            st, lk = os.fstat(fd), os.stat(self.lock_file)
        except (OSError, ValueError, AttributeError):
            return False
        return (st.st_dev, st.st_ino) == (lk.st_dev, lk.st_ino)

    def _locking(self, real: Callable, fd, operation, *rest, **kwargs):
        if kwargs:  # lockf's len/start/whence by keyword
            rest = rest + tuple(kwargs.values())
        if not self._is_lock_fd(fd):
            return real(fd, operation, *rest)
        unlocking = (operation & ~fcntl.LOCK_NB) == fcntl.LOCK_UN
        if unlocking and self.holding:
            for hook in self.on_unlock:
                hook()
            self.holding = False
            self._lock_fds.clear()
            self.history.record("unlock")
            return real(fd, operation, *rest)
        try:
            result = real(fd, operation, *rest)
        except OSError as exc:
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                self.history.record("contended")
                for hook in self.on_contended:
                    hook()
            raise
        if operation & fcntl.LOCK_EX:
            self._lock_fds.add(fd if isinstance(fd, int) else fd.fileno())
        if operation & fcntl.LOCK_EX and not self.holding:
            self.holding = True
            self.history.record("lock")
            for hook in self.on_lock:
                hook()
        return result

    def _renaming(self, real: Callable, src, dst, *args, **kwargs):
        if _entry(dst) != self.trade_log:
            return real(src, dst, *args, **kwargs)
        sha = self.capture(os.fspath(src))
        for hook in self.on_commit:
            hook(sha)
        result = real(src, dst, *args, **kwargs)
        self.history.record("commit", sha=sha, locked=self.holding)
        return result

    def capture(self, path: str) -> str:
        """Store the bytes of ``path`` as a version; return their sha256."""
        with open(path, "rb") as handle:
            data = handle.read()
        sha = hashlib.sha256(data).hexdigest()
        if self.versions_dir:
            store_version(self.versions_dir, data)
        return sha


def store_version(versions_dir: str, data: bytes) -> str:
    """Keep ``data`` as ``versions_dir/<sha256>.json`` (idempotent); return the sha."""
    sha = hashlib.sha256(data).hexdigest()
    final = os.path.join(versions_dir, sha + ".json")
    if not os.path.exists(final):
        os.makedirs(versions_dir, exist_ok=True)
        tmp = f"{final}.{os.getpid()}.tmp"
        with open(tmp, "wb") as handle:
            handle.write(data)
        os.replace(tmp, final)  # not onto the trade log: the spy lets it pass
    return sha


def install(history: HistoryWriter, trade_log: str, lock_file: str, versions_dir: str | None = None) -> Spy:
    """Observe the lock and rename calls of this process; return the :class:`Spy` to hook into."""
    spy = Spy(history, trade_log, lock_file, versions_dir)
    # No root: the spy's shim numbers no call and injects nothing; it only carries the observer.
    # File objects go through the os wrappers too (file_objects), so closing a locked file
    # object (leaving `with open(lock) as f:`) is seen as the unlock it is.
    _installed.append(FsShim(None, recording=False, file_objects=True, observers=[spy]).install())
    return spy


def uninstall() -> None:
    """Restore the real functions (for a process that installed the spy and lives on)."""
    while _installed:
        _installed.pop().uninstall()
