"""FileLock: an exclusive ``fcntl.flock`` lock that is safe across processes, threads and fork.

Why the machinery: flock locks belong to an *open file description*, not to a process. Opening
the lock file twice in one process and locking both descriptors blocks forever. So each process
keeps exactly one descriptor per lock file (a registry keyed by device and inode); threads of
the process share it and are serialised by a ``threading.RLock``; the thread holding the lock
may re-enter it. A forked child closes the inherited descriptors without ``LOCK_UN`` (an unlock
through a shared description would release the parent's lock) and starts with no lock.

The lock file is permanent: it is never truncated, deleted or "broken" because it looks old;
only the kernel releases the lock of a dead holder.
"""

from __future__ import annotations

import errno
import fcntl
import os
import threading
import time

from .errors import LockTimeout

_PID_FIELD = 16  # bytes at the start of the lock file that record the holder's pid


class _Descriptor:
    """The one open descriptor of a lock file in this process, and who holds it."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.thread_lock = threading.RLock()
        self.depth = 0  # re-entries of the owning thread; flock is held while > 0


_registry: dict[tuple[int, int], _Descriptor] = {}
_registry_lock = threading.Lock()


def _forget_after_fork() -> None:
    """In a forked child: drop every inherited descriptor without unlocking it."""
    global _registry_lock
    for entry in _registry.values():
        try:
            os.close(entry.fd)
        except OSError:  # pragma: no cover - closing an inherited fd cannot fail in practice
            pass
    _registry.clear()
    _registry_lock = threading.Lock()


os.register_at_fork(after_in_child=_forget_after_fork)


def _open_lock_file(path: str) -> int:
    flags = os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC  # never O_TRUNC
    return os.open(path, flags, 0o644)


def _forget_deleted_files() -> None:
    """Close idle descriptors of lock files that no longer exist.

    The registry is keyed by inode number, which the file system reuses once a file is gone:
    an entry left for a deleted lock file would otherwise be handed out for a new, unrelated
    file with the same number, and lock nothing. (Deleted lock files are never ours: only
    temporary directories, e.g. of tests, remove them.)
    """
    for key, entry in list(_registry.items()):
        if entry.depth == 0 and os.fstat(entry.fd).st_nlink == 0:
            os.close(entry.fd)
            del _registry[key]


def _descriptor_for(path: str) -> _Descriptor:
    """Return this process's single descriptor for ``path``, opening it on first use."""
    with _registry_lock:
        try:
            st = os.stat(path, follow_symlinks=False)
            entry = _registry.get((st.st_dev, st.st_ino))
            if entry is not None and os.fstat(entry.fd).st_nlink:
                return entry
        except FileNotFoundError:
            pass
        _forget_deleted_files()
        fd = _open_lock_file(path)
        st = os.fstat(fd)
        key = (st.st_dev, st.st_ino)
        entry = _registry.get(key)
        if entry is not None:  # pragma: no cover - created between our stat and open
            os.close(fd)
            return entry
        entry = _registry[key] = _Descriptor(fd)
        return entry


class FileLock:
    """An exclusive, reentrant, inter-process lock on ``path``.

    Guarantees:

    - at most one process holds the lock; inside a process at most one thread;
    - the holding thread may acquire again (reentrant); the lock is released when every
      acquire has been matched by a release;
    - ``acquire`` gives up with :class:`LockTimeout` after ``timeout`` seconds (monotonic clock;
      ``None`` waits forever), naming the lock file and the holder's pid where known;
    - a process that dies holding the lock releases it (the kernel closes its descriptor).
    """

    def __init__(self, path: str | os.PathLike[str], timeout: float | None = 30.0) -> None:
        self.path = os.fspath(path)
        self.timeout = timeout
        # The descriptors this thread acquired through this object, innermost last: release
        # uses them rather than the path, which may have been removed or replaced meanwhile.
        self._acquired = threading.local()

    def _stack(self) -> list[_Descriptor]:
        stack = getattr(self._acquired, "stack", None)
        if stack is None:
            stack = self._acquired.stack = []
        return stack

    def acquire(self, timeout: float | None = ...) -> None:  # type: ignore[assignment]
        timeout = self.timeout if timeout is ... else timeout
        deadline = None if timeout is None else time.monotonic() + timeout
        entry = _descriptor_for(self.path)
        wait = -1 if deadline is None else max(0.0, deadline - time.monotonic())
        if not entry.thread_lock.acquire(timeout=wait):
            raise LockTimeout(
                f"could not lock {self.path} within {timeout}s: another thread of this process "
                "holds it"
            )
        if entry.depth:
            entry.depth += 1
            self._stack().append(entry)
            return
        try:
            self._flock(entry.fd, deadline, timeout)
        except BaseException:
            entry.thread_lock.release()
            raise
        entry.depth = 1
        self._stack().append(entry)
        try:
            os.pwrite(entry.fd, f"{os.getpid():<{_PID_FIELD - 1}}\n".encode(), 0)
        except OSError:
            # The pid is only a hint for LockTimeout messages. Raising here would leave this
            # process holding the flock and the thread lock with no one to release them.
            pass

    def _flock(self, fd: int, deadline: float | None, timeout: float | None) -> None:
        delay = 0.0005
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return
            except OSError as exc:
                if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                    raise  # pragma: no cover - e.g. ENOLCK on a file system without flock
            if deadline is not None and time.monotonic() >= deadline:
                raise LockTimeout(
                    f"could not lock {self.path} within {timeout}s: held by "
                    f"{self._holder_description(fd)}; it is released when that process "
                    "finishes its write or exits"
                )
            # Poll with a growing pause: short waits stay fast, long ones do not spin.
            pause = delay if deadline is None else min(delay, max(0.0, deadline - time.monotonic()))
            time.sleep(pause)
            delay = min(delay * 2, 0.02)

    @staticmethod
    def _holder_description(fd: int) -> str:
        text = os.pread(fd, _PID_FIELD, 0).decode("ascii", "replace").strip()
        return f"pid {text}" if text.isdigit() else "another process (pid unknown)"

    def release(self) -> None:
        """Release one acquire of the calling thread. Raises RuntimeError if it holds none."""
        stack = self._stack()
        if not stack:
            raise RuntimeError(f"release of {self.path} by a thread that does not hold it")
        entry = stack.pop()
        entry.depth -= 1
        if entry.depth == 0:
            fcntl.flock(entry.fd, fcntl.LOCK_UN)
        entry.thread_lock.release()

    def held_by_current_thread(self) -> bool:
        """True if the calling thread holds this lock (so an acquire would re-enter)."""
        entry = _descriptor_for(self.path)
        return bool(entry.depth) and entry.thread_lock._is_owned()  # type: ignore[attr-defined]

    def __enter__(self) -> FileLock:
        self.acquire()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.release()

    def __repr__(self) -> str:
        return f"FileLock({self.path!r}, timeout={self.timeout})"
