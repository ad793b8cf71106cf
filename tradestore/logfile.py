"""The trade log as a file: which files belong to it, how it is opened, what a missing log means.

One place decides, for the store, the reconciler and the command line alike:

- **which lock file guards a log**: always the log's real path (symlinks resolved) plus
  ``.lock`` (:func:`lock_path`). It is derived from the log and nothing else, so two processes
  that name one log, by whatever route, lock the same file; a store given another lock file
  refuses (:func:`check_lock_file`), because a second lock file excludes nothing;
- **which files must never be written as anything else**: the log, its backup and its lock
  file (:func:`log_files`), compared by resolved path and, for files that exist, by device and
  inode, so no symlink or hard link can make a lock file, a derived file or a kept copy
  overwrite the log (:func:`aliases`);
- **how a log is opened**: :func:`open_regular` opens without blocking and refuses anything but a
  regular file (a FIFO, a directory, a device, a symlink to one), so a planted FIFO can never
  hang a writer that holds the lock;
- **what a missing log means** (:func:`open_log`): a new, empty log, unless its backup exists:
  then the log was lost, and reading it as empty would publish (or write over) an empty account.

Knows nothing about trades beyond file names; imports only the standard library and the
library's error types.
"""

from __future__ import annotations

import errno
import os
import stat
from typing import BinaryIO

from .atomic import backup_path
from .errors import CorruptTradeLog, UnsafePath
from .locking import file_kind

LOCK_SUFFIX = ".lock"
JOURNAL_SUFFIX = ".journal"


def file_identity(st: os.stat_result) -> tuple[int, int, int, int]:
    """Device, inode, size and mtime of a file: equal identities are one unchanged version."""
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


def resolve(path: str | os.PathLike[str]) -> str:
    """The absolute path with every symlink resolved: the one name a file is compared by."""
    return os.path.realpath(os.fspath(path))


def lock_path(trade_log: str | os.PathLike[str]) -> str:
    """The lock file that guards ``trade_log``: its resolved path plus ``.lock``."""
    return resolve(trade_log) + LOCK_SUFFIX


def journal_path(trade_log: str | os.PathLike[str]) -> str:
    """The journal of ``trade_log`` in the journal format: its resolved path plus ``.journal``."""
    return resolve(trade_log) + JOURNAL_SUFFIX


def log_files(trade_log: str | os.PathLike[str]) -> dict[str, str]:
    """The files of a log that nothing else may be: role -> resolved path."""
    log = resolve(trade_log)
    return {"the trade log": log, "its backup": backup_path(log), "its lock file": lock_path(log),
            "its journal": journal_path(log)}


def _identity(path: str) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino


def aliases(a: str, b: str) -> bool:
    """True if ``a`` and ``b`` are one file by any route: the same resolved path, or (both
    existing) the same device and inode, i.e. a symlink or a hard link."""
    if resolve(a) == resolve(b):
        return True
    ia = _identity(a)
    return ia is not None and ia == _identity(b)


def check_not_log_file(path: str, trade_log: str, what: str) -> None:
    """Raise UnsafePath if ``path`` (described as ``what``) is one of ``trade_log``'s files."""
    for role, other in log_files(trade_log).items():
        if aliases(path, other):
            raise UnsafePath(
                f"{what} {path} is {role} {other} (same file by path, symlink or hard link); "
                f"writing it would destroy {role}: choose a path in another directory or rename it")


def check_lock_file(trade_log: str, lock_file: str | os.PathLike[str] | None) -> str:
    """The lock file for ``trade_log``; ``lock_file`` may only name that same file.

    Raises UnsafePath when ``lock_file`` names another file (two lock files for one log exclude
    nothing: each writer would overwrite the other's trades), or when the lock file that exists
    is a symlink, or the log or its backup under another name.
    """
    lock = lock_path(trade_log)
    if lock_file is not None and not aliases(os.fspath(lock_file), lock):
        raise UnsafePath(
            f"lock_file={os.fspath(lock_file)!r}: the lock file of {resolve(trade_log)} is always "
            f"{lock}, so that every process that writes the log uses the same one; omit lock_file "
            "(and --lock, and lock_file in tradestore.toml)")
    try:
        st = os.lstat(lock)
    except FileNotFoundError:
        return lock
    if stat.S_ISLNK(st.st_mode):
        raise UnsafePath(f"lock file {lock} is a symlink; remove it (the lock file is created "
                         "as a plain file on first use)")
    for role, other in log_files(trade_log).items():
        if other != lock and aliases(lock, other):
            raise UnsafePath(f"lock file {lock} is {role} {other} under another name (a hard "
                             "link); remove the lock file (it is recreated on first use)")
    return lock


def open_regular(path: str, *, follow_symlinks: bool = True) -> BinaryIO:
    """Open ``path`` for reading: a regular file, never blocking.

    Raises FileNotFoundError if it does not exist and UnsafePath if it is anything but a
    regular file, or (without ``follow_symlinks``) a symlink. O_NONBLOCK makes the open of a
    FIFO return at once instead of waiting for a writer; the type check then refuses it
    before any read.
    """
    return os.fdopen(regular_fd(path, os.O_RDONLY, follow_symlinks=follow_symlinks), "rb")


def regular_fd(path: str, flags: int, *, follow_symlinks: bool = True) -> int:
    """A descriptor of ``path`` opened with ``flags``, if it is a regular file (as open_regular)."""
    nofollow = 0 if follow_symlinks else os.O_NOFOLLOW
    try:
        fd = os.open(path, flags | nofollow | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        if exc.errno == errno.ELOOP and not follow_symlinks:
            raise UnsafePath(f"{path} is a symlink; it must be a regular file: move the file it "
                             "points to into its place") from None
        raise
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        raise _not_regular(path, mode)
    return fd


def read_from(fd: int, offset: int = 0) -> bytes:
    """The bytes of the open file ``fd`` from ``offset`` to its end, as they are now (pread:
    the descriptor's position is neither used nor moved)."""
    size = os.fstat(fd).st_size
    chunks, pos = [], offset
    while pos < size and (chunk := os.pread(fd, size - pos, pos)):  # b"": it shrank meanwhile
        chunks.append(chunk)
        pos += len(chunk)
    return b"".join(chunks)


def check_regular_if_present(path: str) -> None:
    """Raise UnsafePath at once if ``path`` exists and is not a regular file (no open, no wait)."""
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return
    if not stat.S_ISREG(mode):
        raise _not_regular(path, mode)


def _not_regular(path: str, mode: int) -> UnsafePath:
    return UnsafePath(f"{path} is {file_kind(mode)}, not a regular file; a trade log and its "
                      "backup must be regular files: move it away or choose another path")


def recover_hint(trade_log: str) -> str:
    """What to run to restore ``trade_log`` from its backup."""
    return f"run `tradestore recover --log {trade_log}` to restore it from its backup"


def lost_log_error(trade_log: str) -> CorruptTradeLog:
    return CorruptTradeLog(f"{trade_log} is missing but its backup exists: the log was lost; "
                           f"{recover_hint(trade_log)}")


def open_log(trade_log: str) -> BinaryIO | None:
    """The open log file, or None for a log that does not exist yet (a new, empty log).

    Raises CorruptTradeLog when the log is missing but its backup exists (a lost log, never an
    empty one) and UnsafePath when it is not a regular file. The store and the reconciler both
    read through this, so they refuse the same logs.
    """
    try:
        return open_regular(trade_log)
    except FileNotFoundError:
        if os.path.lexists(backup_path(trade_log)):
            raise lost_log_error(trade_log) from None
        return None
