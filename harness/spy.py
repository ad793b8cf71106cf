"""Watch a target from inside a worker process, without the target's cooperation.

:func:`install` puts a :class:`Spy` on the harness's one file-system interposition layer
(:class:`tradestore_harness.fsfaults.FsShim`) as an observer of ``fcntl.flock``/``fcntl.lockf``,
the record-lock commands of ``fcntl.fcntl`` and ``os.replace``/``os.rename`` in the calling
process (a worker), so that for *any* store that locks a file and replaces the trade log we learn:

- when the process acquired and released the lock (``lock``/``unlock`` events), and when it
  found the lock taken (``contended``). The lock is an exclusive lock on any file, the lock
  file the harness named or one of the store's own choosing;
- every version of the trade log it committed: the bytes of the file about to be renamed over
  the log are stored under ``versions_dir/<sha256>.json`` and a ``commit`` event is recorded.
  A journal-format log (``<log>.journal`` beside it) commits by appending a frame to its
  journal (``os.pwrite``/``os.write``) or by renaming a file over the checkpoint or the
  journal; each of those is a commit too, and its version is the state the files hold right
  after it, as the independent reader (:mod:`tradestore_harness.journal_reader`) finds it,
  exported as one document. A commit after which the files hold no valid state is recorded
  with the reason (``unreadable``), for the ``log-parses`` check.

Hooks let scenarios act at these moments: pause a commit until another process contends
(the TOCTOU wait-point), or create an ``O_EXCL`` sentinel inside the critical section (mutex).
Only worker processes call :func:`install`; the library itself carries no hooks.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import os
import struct
from typing import Callable

from tradestore_harness import journal_reader
from tradestore_harness.fsfaults import FsShim, Observer, resolve
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

    functions = ("flock", "lockf", "fcntl", "replace", "rename", "close", "open", "pwrite", "write")

    def around(self, name: str, proceed: Callable, args: tuple, kwargs: dict):
        if name in ("flock", "lockf"):
            return self._locking(proceed, *args, **kwargs)
        if name == "fcntl":
            return self._record_locking(proceed, *args, **kwargs)
        if name == "close":
            return self._closing(proceed, *args, **kwargs)
        if name == "open":
            return self._opening(proceed, *args, **kwargs)
        if name in ("pwrite", "write"):
            return self._appending(name, proceed, *args, **kwargs)
        return self._renaming(proceed, *args, **kwargs)

    def _opening(self, real: Callable, path, flags, *args, **kwargs):
        # A read of the trade log: the moment a store looks at the state it will decide on.
        # Hooks run once the file is open, so the descriptor holds that version even if
        # another process replaces the log meanwhile.
        try:
            fd = real(path, flags, *args, **kwargs)
        except FileNotFoundError:
            # No log yet is a state too (an empty account): a store that decides on it has read
            # it, and must meet the same hooks as one that found a file.
            if not self._reading and self._reads_the_log(path, flags, kwargs):
                for hook in self.on_read:
                    hook()
            raise
        if self._reading:
            return fd  # the spy's own read of a version, not the store's
        if self._reads_the_log(path, flags, kwargs):
            for hook in self.on_read:
                hook()
        if (flags & os.O_ACCMODE) != os.O_RDONLY and _entry(resolve(path, kwargs.get("dir_fd"))) == self.journal:
            self._journal_fds.add(fd)
        return fd

    def _reads_the_log(self, path, flags: int, kwargs: dict) -> bool:
        return ((flags & os.O_ACCMODE) == os.O_RDONLY and bool(self.on_read)
                and _entry(resolve(path, kwargs.get("dir_fd"))) == self.trade_log)

    def _closing(self, real: Callable, fd, *args, **kwargs):
        self._journal_fds.discard(fd)
        # Closing the descriptor that holds a lock releases it (flock: the last descriptor of
        # the open file description; lockf/fcntl: any descriptor of the file): a store that lets
        # a `with open(lock)` block or os.close() unlock must be seen unlocking here.
        if fd in self._lock_fds:
            self._release(self._lock_fds.pop(fd), by="close")
        return real(fd, *args, **kwargs)

    def __init__(self, history: HistoryWriter, trade_log: str, lock_file: str, versions_dir: str | None):
        self.history = history
        self.trade_log = _entry(trade_log)
        self.journal = journal_reader.journal_path(self.trade_log)
        self._journal_fds: set[int] = set()  # descriptors open for writing on the journal
        self._reading = False
        self.lock_file = os.path.abspath(lock_file)  # the one the harness passed; a store may lock another
        self.versions_dir = versions_dir
        self.holding = False  # an exclusive lock on some file is held: the critical section
        self.on_lock: list[Callable[[], None]] = []  # called right after the lock is acquired
        self.on_unlock: list[Callable[[], None]] = []  # called right before it is released
        self.on_contended: list[Callable[[], None]] = []
        self.on_commit: list[Callable[[str], None]] = []  # called with the sha, before the rename
        self._lock_fds: dict[int, tuple[int, int]] = {}  # descriptor -> (dev, ino) it holds locked
        self.on_read: list[Callable[[], None]] = []  # called when the trade log was opened for reading

    @property
    def locked_files(self) -> set[tuple[int, int]]:
        """(device, inode) of every file this process holds an exclusive lock on."""
        return set(self._lock_fds.values())

    def _locking(self, real: Callable, fd, operation, *rest, **kwargs):
        if kwargs:  # lockf's len/start/whence by keyword
            rest = rest + tuple(kwargs.values())
        return self._observed(lambda: real(fd, operation, *rest), fd, operation)

    def _record_locking(self, real: Callable, fd, cmd, arg=0, *rest):
        """``fcntl.fcntl`` with F_SETLK(W) or F_OFD_SETLK(W) is a lock call like ``lockf``:
        its ``struct flock`` says write lock (exclusive), read lock (shared) or unlock."""
        operation = _record_lock_operation(cmd, arg)
        if operation is None:
            return real(fd, cmd, arg, *rest)
        return self._observed(lambda: real(fd, cmd, arg, *rest), fd, operation)

    def _observed(self, call: Callable, fd, operation: int):
        """Run one lock call (``operation`` in flock terms) and record what it did.

        Whatever file it locks is the lock: a store need not use the lock file the harness
        named (it may pick its own, or lock the log itself). The process is in its critical
        section while it holds an exclusive lock on any file."""
        key = _file_key(fd)
        if key is None:
            return call()
        number = fd if isinstance(fd, int) else fd.fileno()
        if (operation & ~fcntl.LOCK_NB) == fcntl.LOCK_UN:
            self._release(key)
            return call()
        try:
            result = call()
        except OSError as exc:
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                self.history.record("contended")
                for hook in self.on_contended:
                    hook()
            raise
        if operation & fcntl.LOCK_EX:
            was_holding = self.holding
            self._lock_fds[number] = key
            if not was_holding:
                self.holding = True
                self.history.record("lock")
                for hook in self.on_lock:
                    hook()
        elif key in self.locked_files:
            self._release(key)  # an exclusive lock turned shared: the critical section is over
        return result

    def _release(self, key: tuple[int, int], by: str | None = None) -> None:
        """The lock on file ``key`` is gone (unlocked, downgraded or its descriptor closed)."""
        for fd in [fd for fd, held in self._lock_fds.items() if held == key]:
            del self._lock_fds[fd]
        if self.holding and not self._lock_fds:
            for hook in self.on_unlock:
                hook()
            self.holding = False
            self.history.record("unlock", **({"by": by} if by else {}))

    def _renaming(self, real: Callable, src, dst, *args, **kwargs):
        entry = _entry(resolve(dst, kwargs.get("dst_dir_fd")))
        if entry not in (self.trade_log, self.journal):
            return real(src, dst, *args, **kwargs)
        source = resolve(src, kwargs.get("src_dir_fd"))
        if entry == self.trade_log and not os.path.lexists(self.journal):
            sha = self.capture(source)  # a document: the file renamed over the log
            why = None
        else:
            with self._own_read():
                new = journal_reader.read_bytes(source)
                checkpoint = new if entry == self.trade_log else journal_reader.read_bytes(self.trade_log)
                journal = new if entry == self.journal else journal_reader.read_bytes(self.journal)
            sha, why = self._keep_state(checkpoint, journal)
        return self._commit(sha, why, lambda: real(src, dst, *args, **kwargs))

    def _appending(self, name: str, real: Callable, fd, data, *rest, **kwargs):
        if fd not in self._journal_fds:
            return real(fd, data, *rest, **kwargs)
        # where the bytes land: pwrite's offset, else the descriptor's position (its end with O_APPEND)
        if name == "pwrite":
            offset = rest[0] if rest else kwargs["offset"]
        elif fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_APPEND:
            offset = os.fstat(fd).st_size
        else:
            offset = os.lseek(fd, 0, os.SEEK_CUR)
        with self._own_read():
            journal = journal_reader.read_bytes(self.journal) or b""
            checkpoint = journal_reader.read_bytes(self.trade_log)
        chunk = bytes(data)
        journal = journal[:offset].ljust(offset, b"\0") + chunk + journal[offset + len(chunk):]
        sha, why = self._keep_state(checkpoint, journal)
        return self._commit(sha, why, lambda: real(fd, data, *rest, **kwargs))

    def _commit(self, sha: str, why: str | None, proceed: Callable):
        """Run the hooks, then the call that makes version ``sha`` visible; record the commit."""
        for hook in self.on_commit:
            hook(sha)
        result = proceed()
        extra = {"unreadable": why} if why else {}
        self.history.record("commit", sha=sha, locked=self.holding, **extra)
        return result

    def _keep_state(self, checkpoint: bytes | None, journal: bytes | None) -> tuple[str, str | None]:
        """Store the state the files will hold as a version: (its sha, None), or (the sha of
        nothing, why) when they hold no valid state."""
        try:
            state = journal_reader.state_of(checkpoint, journal)
        except journal_reader.Unreadable as exc:
            return hashlib.sha256(b"").hexdigest(), str(exc)
        data = state.data if state is not None else b""
        if self.versions_dir:
            return store_version(self.versions_dir, data), None
        return hashlib.sha256(data).hexdigest(), None

    @contextlib.contextmanager
    def _own_read(self):
        self._reading = True
        try:
            yield
        finally:
            self._reading = False

    def capture(self, path: str) -> str:
        """Store the bytes of ``path`` as a version; return their sha256."""
        with self._own_read():
            data = journal_reader.read_bytes(path) or b""
        sha = hashlib.sha256(data).hexdigest()
        if self.versions_dir:
            store_version(self.versions_dir, data)
        return sha


_RECORD_LOCK_COMMANDS = {fcntl.F_SETLK: fcntl.LOCK_NB, fcntl.F_SETLKW: 0,
                         getattr(fcntl, "F_OFD_SETLK", 37): fcntl.LOCK_NB, getattr(fcntl, "F_OFD_SETLKW", 38): 0}
_RECORD_LOCK_TYPES = {fcntl.F_WRLCK: fcntl.LOCK_EX, fcntl.F_RDLCK: fcntl.LOCK_SH, fcntl.F_UNLCK: fcntl.LOCK_UN}


def _record_lock_operation(cmd, arg) -> int | None:
    """The flock operation an ``fcntl.fcntl(fd, cmd, arg)`` call amounts to, or None if it is
    no lock call (any other command, or a ``struct flock`` that cannot be read)."""
    if cmd not in _RECORD_LOCK_COMMANDS or not isinstance(arg, (bytes, bytearray, memoryview)) or len(arg) < 2:
        return None
    kind = _RECORD_LOCK_TYPES.get(struct.unpack_from("h", arg)[0])  # l_type: the first field
    return None if kind is None else kind | _RECORD_LOCK_COMMANDS[cmd]


def _file_key(fd) -> tuple[int, int] | None:
    try:
        st = os.fstat(fd if isinstance(fd, int) else fd.fileno())
    except (OSError, ValueError, AttributeError):
        return None
    return st.st_dev, st.st_ino


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
