"""Atomic, durable file replacement. Knows nothing about trades.

The protocol (every step through the ``os`` module, in this order):

1. create a temp file with a unique name in the target's directory
   (``.<name>.<random>.tmp``, ``O_CREAT | O_EXCL``), with the target's file mode;
2. write all bytes, ``fsync`` the temp file, close it;
3. optionally keep the current target as ``<name>.bak`` (hard link to a second temp name, then
   ``os.replace`` onto the backup name), so the previous version survives beside it;
4. ``os.replace(temp, target)``: readers see the old file or the new one, never a mix;
5. ``fsync`` the directory, which makes the renames durable.

On any failure the temp files are removed and the error propagates. A failed fsync is never
retried: after a failed fsync the kernel may have dropped the dirty pages, so a retry that
"succeeds" would report data as durable that is gone.
"""

from __future__ import annotations

import errno
import getpass
import os
import secrets
import time
from collections.abc import Sequence
from typing import Union

Buffer = Union[bytes, bytearray, memoryview]

TEMP_SUFFIX = ".tmp"
_TOKEN_BYTES = 6  # random part of a temp name: 12 hex digits
try:  # the most buffers one writev takes (POSIX guarantees at least 16)
    _IOV_MAX = max(16, os.sysconf("SC_IOV_MAX"))
except (AttributeError, ValueError, OSError):  # pragma: no cover - no sysconf name
    _IOV_MAX = 16


def temp_prefix(path: str) -> str:
    """The prefix of every temp file this module creates for ``path`` (used to sweep strays)."""
    return "." + os.path.basename(path) + "."


def temp_name(path: str) -> str:
    """A fresh temp file name for ``path``: ``.<name>.<12 random hex digits>.tmp`` beside it."""
    directory = os.path.dirname(path) or "."
    return os.path.join(directory, temp_prefix(path) + secrets.token_hex(_TOKEN_BYTES) + TEMP_SUFFIX)


def backup_path(path: str) -> str:
    """Where :func:`write_atomic` keeps the previous version of ``path``."""
    return path + ".bak"


def is_temp_of(path: str, name: str) -> bool:
    """True if the directory entry ``name`` is exactly a temp file of ``path`` (see temp_name).

    ``.trades.json.<12 hex>.tmp`` is; ``.trades.json.paper.<12 hex>.tmp``, the temp of the log
    ``trades.json.paper`` (which its own writer may be writing right now), is not.
    """
    prefix = temp_prefix(path)
    token = name[len(prefix):-len(TEMP_SUFFIX)]
    return (name.startswith(prefix) and name.endswith(TEMP_SUFFIX)
            and len(token) == 2 * _TOKEN_BYTES and all(c in "0123456789abcdef" for c in token))


def creation_error(exc: OSError, path: str, purpose: str) -> OSError:
    """The error to raise when ``path`` (or a temp file beside it) cannot be created.

    It names the directory and the fix instead of an internal file name: a missing directory,
    one this user may not write, a read-only file system. Other errors are returned unchanged.
    """
    directory = os.path.dirname(os.path.abspath(path))
    if isinstance(exc, FileNotFoundError) and not os.path.isdir(directory):
        message = f"directory {directory} does not exist (it must hold {purpose}); create it first"
    elif isinstance(exc, PermissionError):
        message = (f"this user ({_user()}) may not create files in directory {directory} (it must "
                   f"hold {purpose}); make the directory writable by every process that uses it")
    elif exc.errno == errno.EROFS:
        message = f"directory {directory} is on a read-only file system (it must hold {purpose})"
    else:
        return exc
    return type(exc)(exc.errno, message, directory)


def _user() -> str:
    try:
        return getpass.getuser()
    except Exception:  # pragma: no cover - no passwd entry and no $USER
        return f"uid {os.getuid()}"


def _create_temp(path: str, mode: int) -> tuple[str, int]:
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    while True:
        name = temp_name(path)
        try:
            fd = os.open(name, flags, mode)
        except FileExistsError:  # pragma: no cover - 48 random bits collided
            continue
        except OSError as exc:
            raise creation_error(exc, path, f"the temp file of each new version of {os.path.basename(path)}") from None
        return name, fd


def fsync_directory(directory: str) -> None:
    """Make the directory's entries (creations, renames, removals) durable."""
    fd = os.open(directory or ".", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _remove_quietly(name: str) -> None:
    try:
        os.unlink(name)
    except OSError:
        pass


def _write_all(fd: int, data: Buffer | Sequence[Buffer]) -> None:
    """Write every byte of ``data`` (one buffer, or buffers in order), retrying short writes."""
    if isinstance(data, (bytes, bytearray, memoryview)):
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        return
    # Several buffers go out in writev calls of at most IOV_MAX buffers each, with no joined
    # copy; a short write leaves the rest of a buffer, sliced, at the front.
    pending = [view for view in (memoryview(b).cast("B") for b in data) if view.nbytes]
    pending.reverse()  # consumed from the end: popping the written ones is cheap
    while pending:
        written = os.writev(fd, pending[:-_IOV_MAX - 1:-1])
        while written:
            view = pending[-1]
            if written < view.nbytes:
                pending[-1] = view[written:]
                break
            written -= view.nbytes
            pending.pop()


def write_atomic(path: str, data: Buffer | Sequence[Buffer], *, fsync: bool = True,
                 keep_backup: bool = False) -> os.stat_result:
    """Replace ``path`` with ``data`` atomically and, with ``fsync``, durably.

    ``data`` is the new content, or buffers whose concatenation is (such as
    :meth:`tradestore.ledger.Ledger.to_json_parts`), written with ``os.writev`` without
    joining them.

    Guarantees: a reader (or a process started after a crash at any point) finds either the
    old complete file or the new complete file at ``path``; with ``fsync`` the new file is on
    stable storage when this returns; the file mode of an existing ``path`` is kept; no temp
    file is left behind by a failure this process survives. Returns the ``os.stat`` of the new
    file (taken from the descriptor, so it is the file just written even if it is replaced
    again immediately).
    """
    path = os.fspath(path)
    directory = os.path.dirname(path) or "."
    try:
        mode = os.stat(path).st_mode & 0o7777
        exists = True
    except FileNotFoundError:
        mode, exists = 0o644, False
    temp, fd = _create_temp(path, mode)
    backup_temp = None
    try:
        try:
            if exists:
                os.fchmod(fd, mode)  # the umask may have narrowed the mode given to open
            _write_all(fd, data)
            if fsync:
                os.fsync(fd)
            stat = os.fstat(fd)
        finally:
            os.close(fd)
        if keep_backup and exists:
            backup_temp = temp_name(path)
            os.link(path, backup_temp)
            os.replace(backup_temp, backup_path(path))
            # rename(2) does nothing when both names are already one file (a writer died
            # between its two renames, leaving the backup linked to the log): drop the temp.
            if os.path.lexists(backup_temp):
                os.unlink(backup_temp)
            backup_temp = None
        os.replace(temp, path)
    except BaseException:
        _remove_quietly(temp)
        if backup_temp is not None:
            _remove_quietly(backup_temp)
        raise
    if fsync:
        fsync_directory(directory)
    return stat


def sweep_stray_temps(path: str, *, older_than: float | None = None) -> list[str]:
    """Remove temp files of ``path`` left by writers that died mid-write.

    Without ``older_than``, call only while holding the lock that every writer of ``path``
    holds while it writes: then no live writer owns a temp file and every one found is a stray.
    Writers that share no lock (reconcilers) pass ``older_than`` seconds: only temps last
    modified longer ago than that are removed, which no live writer is still writing.
    Returns the names removed.
    """
    directory = os.path.dirname(path) or "."
    horizon = None if older_than is None else time.time() - older_than
    removed = []
    with os.scandir(directory) as entries:
        for entry in entries:
            if not is_temp_of(path, entry.name):
                continue
            if horizon is not None and not _older(entry, horizon):
                continue
            _remove_quietly(entry.path)
            removed.append(entry.name)
    return removed


def _older(entry: os.DirEntry, horizon: float) -> bool:
    try:
        return os.lstat(entry.path).st_mtime < horizon
    except OSError:  # another sweeper removed it first
        return False
