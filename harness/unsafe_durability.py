"""Negative controls for durability: stores that are atomic but not durable.

Both pass every kill test (a killed process leaves the page cache, so a rename without fsync
still looks complete), and both lose acknowledged trades when the power goes. The power-loss
scenario must catch each of them, every time, naming the lost trade:

- ``unsafe-no-fsync``: temp file + rename + directory fsync, but the temp file's data is never
  fsynced: after a power cut the new name can point to an empty or torn file;
- ``unsafe-no-dir-fsync``: the data is fsynced, but the directory is not after the rename: after
  a power cut the rename can be undone and the log is the previous version.

Each is :class:`tradestore.TradeStore` with one step of the atomic write protocol removed; the
rest (lock, checks, integrity, temp naming, backup) is the library's own.
"""

from __future__ import annotations

import os

from tradestore import TradeStore, atomic


def write_skipping(path: str, data: bytes, *, file_fsync: bool, dir_fsync: bool, keep_backup: bool) -> os.stat_result:
    """The protocol of :func:`tradestore.atomic.write_atomic` with fsync steps optionally skipped.

    A copy on purpose: the library offers no switch to skip one fsync, and should not.
    """
    directory = os.path.dirname(path) or "."
    try:
        mode = os.stat(path).st_mode & 0o7777
        exists = True
    except FileNotFoundError:
        mode, exists = 0o644, False
    temp = atomic.temp_name(path)
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, mode)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        if file_fsync:
            os.fsync(fd)
        written = os.fstat(fd)
    finally:
        os.close(fd)
    if keep_backup and exists:
        backup_temp = atomic.temp_name(path)
        os.link(path, backup_temp)
        os.replace(backup_temp, atomic.backup_path(path))
        if os.path.lexists(backup_temp):  # the rename was a no-op: both names were one file
            os.unlink(backup_temp)
    os.replace(temp, path)
    if dir_fsync:
        atomic.fsync_directory(directory)
    return written


class _SkippingStore(TradeStore):
    """TradeStore whose log writes go through :func:`write_skipping` (one fsync step removed)."""

    FILE_FSYNC = True
    DIR_FSYNC = True

    def _write_log(self, data: bytes) -> os.stat_result:
        return write_skipping(self.trade_log, data, file_fsync=self.FILE_FSYNC,
                              dir_fsync=self.DIR_FSYNC, keep_backup=self.keep_backup)


class NoFsyncStore(_SkippingStore):
    """Renames a temp file whose data was never fsynced (the directory is fsynced)."""

    FILE_FSYNC = False


class NoDirFsyncStore(_SkippingStore):
    """Fsyncs the data but never the directory after the rename."""

    DIR_FSYNC = False


def no_fsync(trade_log, lock_file=None, **limits):
    """Flaw: renames the temp file without fsyncing its data (a power cut leaves an empty or torn log)."""
    return NoFsyncStore(trade_log, lock_file, **limits)


def no_dir_fsync(trade_log, lock_file=None, **limits):
    """Flaw: never fsyncs the directory after the rename (a power cut undoes acknowledged writes)."""
    return NoDirFsyncStore(trade_log, lock_file, **limits)


TARGETS = {"unsafe-no-fsync": no_fsync, "unsafe-no-dir-fsync": no_dir_fsync}
