"""FileLock: an exclusive ``fcntl.flock`` lock that is safe across processes, threads and fork.

Why the machinery: flock locks belong to an *open file description*, not to a process. Opening
the lock file twice in one process and locking both descriptors blocks forever. So each process
keeps exactly one descriptor per lock file (a registry keyed by device and inode); threads of
the process share it and are serialised by a ``threading.RLock``; the thread holding the lock
may re-enter it. A forked child closes the inherited descriptors without ``LOCK_UN`` (an unlock
through a shared description would release the parent's lock) and starts with no lock.

The lock file is permanent: it is never truncated, deleted or "broken" because it looks old;
only the kernel releases the lock of a dead holder.

Who holds the lock: on Linux ``/proc/locks`` names the process that took each flock and the
processes blocked waiting for it, whatever program they are; that is what :class:`LockTimeout`
reports. Elsewhere only the *pid hint* is known: the pid the last tradestore holder wrote at the
start of the lock file, which is stale once that process has exited, so it is reported as a hint.

Logging (logger ``tradestore.locking``): a wait longer than ``slow_wait_s`` is logged at WARNING
once while it lasts (naming the holder) and once when the lock is finally acquired.
"""

from __future__ import annotations

import decimal
import errno
import fcntl
import logging
import numbers
import os
import stat
import threading
import time

from .atomic import creation_error
from .errors import LockLost, LockTimeout, UnsafePath, describe
from .values import NumberRefused, to_float

log = logging.getLogger("tradestore.locking")

_PID_FIELD = 16  # bytes at the start of the lock file that record the holder's pid
_HINT_BYTES = frozenset(b"0123456789 \n")  # what a lock file holding only a pid hint contains
PROC_LOCKS = "/proc/locks"
SLOW_WAIT_S = 1.0  # default: lock waits longer than this are logged at WARNING


def check_timeout(value: object, name: str = "timeout") -> float | None:
    """Seconds to wait for a lock: ``None`` or infinity wait forever (returned as None).

    A number >= 0 of any numeric kind (see :func:`tradestore.values.to_float`) is returned as
    a float, one beyond the double range as None (longer than any wait); NaN, negatives and
    anything that is not a number raise ValueError naming ``name``.
    """
    if value is None:
        return None
    expected = "expected seconds >= 0, or None or math.inf to wait forever"
    try:
        seconds = to_float(value)
    except NumberRefused as refused:
        if _beyond_any_wait(value):
            return None
        raise ValueError(f"{name}={describe(value)}: {refused.reason}; {expected}") from None
    if seconds < 0:
        raise ValueError(f"{name}={describe(value)}: is negative; {expected}")
    return seconds


def _beyond_any_wait(value: object) -> bool:
    """True for +infinity, or a positive number too large for a double, of any real kind."""
    if isinstance(value, bool) or not isinstance(value, (numbers.Real, decimal.Decimal)):
        return False
    try:
        return bool(value > 0)
    except Exception:  # e.g. a signalling Decimal NaN, which refuses to be compared
        return False


class _Descriptor:
    """The one open descriptor of a lock file in this process, and who holds it."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.pid = os.getpid()  # the process whose descriptor this is: a forked child's is not
        self.thread_lock = threading.RLock()
        self.depth = 0  # re-entries of the owning thread; flock is held while > 0
        self.poisoned: BaseException | None = None  # see poison()


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
    """Open (creating if needed) the lock file: a regular file at ``path`` itself, no symlink.

    O_NONBLOCK, so that a FIFO or device planted at the path cannot block the open; anything
    but a regular file is refused (UnsafePath). A missing or unwritable directory is reported
    by its own name and the fix, not by the lock file's.
    """
    flags = os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK  # never O_TRUNC
    try:
        fd = os.open(path, flags, 0o644)
    except IsADirectoryError:
        raise UnsafePath(f"lock file {path} is a directory, not a regular file; remove it or "
                         "choose another path") from None
    except OSError as exc:
        raise creation_error(exc, path, f"the lock file {os.path.basename(path)}") from None
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        raise UnsafePath(f"lock file {path} is not a regular file ({file_kind(mode)}); remove it "
                         "or choose another path")
    return fd


def file_kind(mode: int) -> str:
    """A file type in words, for error messages."""
    for test, name in ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO"),
                       (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
                       (stat.S_ISSOCK, "a socket"), (stat.S_ISLNK, "a symlink")):
        if test(mode):
            return name
    return "a regular file"  # pragma: no cover - only asked about files that are not


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


def poison(path: str, error: BaseException) -> None:
    """Hold the lock on ``path`` for the rest of this process's life and refuse it to everyone.

    The calling thread must hold it. Every later acquire of it in this process (any thread, any
    FileLock object, a re-entry too) raises ``error``; other processes wait, as for any holder,
    until this process ends. For a writer that left the files in a state no one may read.
    """
    entry = _descriptor_for(path)
    entry.depth += 1  # never released
    entry.poisoned = error


class FileLock:
    """An exclusive, reentrant, inter-process lock on ``path``.

    Guarantees:

    - at most one process holds the lock; inside a process at most one thread;
    - the holding thread may acquire again (reentrant); the lock is released when every
      acquire has been matched by a release;
    - ``acquire`` gives up with :class:`LockTimeout` after ``timeout`` seconds (monotonic clock;
      ``None`` or infinity waits forever; NaN and negatives are refused with ValueError),
      naming the lock file and the holder (from ``/proc/locks`` where available);
    - a process that dies holding the lock releases it (the kernel closes its descriptor);
    - a forked child neither holds nor releases its parent's lock, even through an object
      acquired before the fork;
    - the pid hint is written only into a lock file that holds nothing but a pid hint (one
      name, at most 16 bytes of digits and spaces): never into a file that could be a log.
    """

    def __init__(self, path: str | os.PathLike[str], timeout: float | None = 30.0, *,
                 slow_wait_s: float = SLOW_WAIT_S) -> None:
        self.path = os.fspath(path)
        self.timeout = check_timeout(timeout)
        self.slow_wait_s = slow_wait_s
        # The descriptors this thread acquired through this object, innermost last: release
        # uses them rather than the path, which may have been removed or replaced meanwhile.
        self._acquired = threading.local()

    def _stack(self) -> list[_Descriptor]:
        stack = getattr(self._acquired, "stack", None)
        if stack is None:
            stack = self._acquired.stack = []
        return stack

    def acquire(self, timeout: float | None = ...) -> None:  # type: ignore[assignment]
        timeout = self.timeout if timeout is ... else check_timeout(timeout)
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            entry = _descriptor_for(self.path)
            if entry.poisoned is not None:
                raise entry.poisoned
            wait = -1 if deadline is None else min(max(0.0, deadline - time.monotonic()), threading.TIMEOUT_MAX)
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
            if _names(self.path, entry.fd):
                break
            # The file was removed or replaced between our open and our flock: locking it
            # excludes no one who opens the name now. Let it go and lock the file there.
            fcntl.flock(entry.fd, fcntl.LOCK_UN)
            entry.thread_lock.release()
        entry.depth = 1
        self._stack().append(entry)
        try:
            _write_pid_hint(entry.fd)
        except OSError:
            # The pid is only a hint for LockTimeout messages. Raising here would leave this
            # process holding the flock and the thread lock with no one to release them.
            pass

    def _flock(self, fd: int, deadline: float | None, timeout: float | None) -> None:
        delay = 0.0005
        started = time.monotonic()
        warned = False
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError as exc:
                if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                    raise  # pragma: no cover - e.g. ENOLCK on a file system without flock
            now = time.monotonic()
            if deadline is not None and now >= deadline:
                raise LockTimeout(
                    f"could not lock {self.path} within {timeout}s: held by "
                    f"{holder_description(fd)}; it is released when that process "
                    "finishes its write or exits"
                )
            if not warned and now - started > self.slow_wait_s:
                warned = True
                log.warning("waiting %.1f s so far for the lock %s: held by %s", now - started,
                            self.path, holder_description(fd))
            # Poll with a growing pause: short waits stay fast, long ones do not spin.
            pause = delay if deadline is None else min(delay, max(0.0, deadline - now))
            time.sleep(pause)
            delay = min(delay * 2, 0.02)
        if warned:
            log.warning("acquired the lock %s after waiting %.1f s", self.path, time.monotonic() - started)

    def release(self) -> None:
        """Release one acquire of the calling thread. Raises RuntimeError if it holds none."""
        stack = self._stack()
        if not stack:
            raise RuntimeError(f"release of {self.path} by a thread that does not hold it")
        entry = stack.pop()
        entry.depth -= 1
        # In a forked child the descriptor was closed at the fork (its number may name another
        # file by now) and the flock is the parent's: only the bookkeeping is undone.
        if entry.depth == 0 and entry.pid == os.getpid():
            fcntl.flock(entry.fd, fcntl.LOCK_UN)
        entry.thread_lock.release()

    def check_held(self) -> None:
        """Raise :class:`LockLost` unless ``path`` still names the file this thread holds locked.

        A writer calls it right before it writes: once the lock file has been removed or
        replaced, another process may hold a lock on the new file at that name, so writing
        would overwrite what that process writes. RuntimeError if the thread holds nothing.
        """
        stack = self._stack()
        if not stack:
            raise RuntimeError(f"check_held of {self.path} by a thread that does not hold it")
        if not _names(self.path, stack[-1].fd):
            raise LockLost(
                f"the lock file {self.path} was removed or replaced while this process held its "
                "lock: another process may hold the lock of the file now at that name; nothing "
                "was written (the lock file must never be removed while writers run)")

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


def _names(path: str, fd: int) -> bool:
    """True if ``path`` (not followed if a symlink) is the file open at ``fd``."""
    try:
        st = os.stat(path, follow_symlinks=False)
    except FileNotFoundError:
        return False
    held = os.fstat(fd)
    return (st.st_dev, st.st_ino) == (held.st_dev, held.st_ino)


def _write_pid_hint(fd: int) -> None:
    """Write this process's pid at the start of the lock file, if it holds nothing but a hint.

    A lock file with a second name (a hard link: it may be the log or its backup), or with
    content other than a previous hint, is left untouched: the hint is never worth a byte of
    someone else's file.
    """
    st = os.fstat(fd)
    if st.st_nlink != 1 or st.st_size > _PID_FIELD:
        return
    if not set(os.pread(fd, _PID_FIELD, 0)) <= _HINT_BYTES:
        return
    os.pwrite(fd, f"{os.getpid():<{_PID_FIELD - 1}}\n".encode(), 0)


def lock_holders(fd: int) -> tuple[list[int], list[int]] | None:
    """``(holders, waiters)``: pids holding, and blocked waiting for, a flock on ``fd``'s file.

    Read from ``/proc/locks`` (Linux), which lists every flock by device and inode, whoever
    took it. A pid of 0 or less means a process outside this pid namespace. Returns None where
    ``/proc/locks`` cannot be read (other systems).
    """
    st = os.fstat(fd)
    key = f"{os.major(st.st_dev):02x}:{os.minor(st.st_dev):02x}:{st.st_ino}"
    try:
        with open(PROC_LOCKS, encoding="ascii", errors="replace") as f:
            lines = f.read().splitlines()
    except OSError:
        return None
    holders: list[int] = []
    waiters: list[int] = []
    for line in lines:
        # "1: FLOCK  ADVISORY  WRITE 4242 fe:00:2146390 0 EOF"; a blocked waiter has "->"
        # after the number: "1: -> FLOCK  ADVISORY  WRITE 4343 fe:00:2146390 0 EOF".
        fields = line.split()
        blocked = len(fields) > 1 and fields[1] == "->"
        if blocked:
            del fields[1]
        if len(fields) < 6 or fields[1] != "FLOCK" or fields[5] != key:
            continue
        try:
            pid = int(fields[4])
        except ValueError:
            continue
        (waiters if blocked else holders).append(pid)
    return holders, waiters


def _process(pid: int) -> str:
    if pid <= 0:
        return "a process in another pid namespace"
    try:
        with open(f"/proc/{pid}/stat", encoding="utf-8", errors="replace") as f:
            # "pid (comm) state ...": comm may hold spaces and parentheses, so split at the last ")"
            name, _, rest = f.read().partition(" (")[2].rpartition(")")
    except FileNotFoundError:
        name, rest = "", " X"
    except OSError:  # pragma: no cover - e.g. hidepid=2 on /proc
        return f"pid {pid}"
    if rest.split()[:1] in (["Z"], ["X"]):
        # flock belongs to the open file: the pid that took it has exited (or is a zombie),
        # and a process it forked (or passed the descriptor to) still holds it.
        return f"a process that inherited it from pid {pid} (which has exited)"
    return f"pid {pid} ({name})"


def holder_description(fd: int) -> str:
    """Who holds the lock on ``fd``'s file, in words: facts from /proc/locks, else the hint."""
    found = lock_holders(fd)
    if found is None:
        text = os.pread(fd, _PID_FIELD, 0).decode("ascii", "replace").strip()
        if text.isdigit():
            return (f"another process (the lock file's hint names pid {text}, the last tradestore "
                    "holder; the hint is stale if that process has exited)")
        return "another process (pid unknown)"
    holders, waiters = found
    who = ", ".join(_process(pid) for pid in holders) if holders else \
        "another process (none listed in /proc/locks: the lock was probably just released)"
    if waiters:
        who += f"; {len(waiters)} other process(es) blocked waiting for it: " + \
            ", ".join(_process(pid) for pid in waiters)
    return who
