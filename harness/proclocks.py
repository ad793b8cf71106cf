"""Who holds, and who is blocked waiting for, a lock on a file: Linux's ``/proc/locks``.

A process blocked in a *blocking* ``flock(fd, LOCK_EX)`` or ``lockf``/``fcntl`` lock call makes
no system call the harness could wrap while it waits: it sits in the kernel. Linux lists it in
``/proc/locks`` as a ``->`` line under the lock it waits for::

    3: FLOCK  ADVISORY  WRITE 29946 fe:00:2149655 0 EOF
    3: -> FLOCK  ADVISORY  WRITE 29989 fe:00:2149655 0 EOF

(lock type, mode, access, pid, ``major:minor:inode`` in hex:hex:decimal, range). This module
reads those lines for one file, so a scenario can see a rival waiting without the rival's
store using ``LOCK_NB``. On a system without ``/proc/locks`` it reports ``None`` (unknown).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

PROC_LOCKS = "/proc/locks"


@dataclass(frozen=True)
class LockEntry:
    """One line of ``/proc/locks`` for the file asked about."""

    pid: int  # -1 when the kernel does not say (open file description locks: OFDLCK)
    kind: str  # FLOCK, POSIX, OFDLCK, ...
    blocked: bool  # a ``->`` line: waiting for the lock, not holding it


def key_of(dev: int, ino: int) -> str:
    """How ``/proc/locks`` names the file with this device and inode."""
    return f"{os.major(dev):02x}:{os.minor(dev):02x}:{ino}"


def _file_key(path: str) -> str | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return key_of(st.st_dev, st.st_ino)


def parse(text: str, key: str) -> list[LockEntry]:
    """The entries of ``text`` (the contents of ``/proc/locks``) whose file is ``key``."""
    entries = []
    for line in text.splitlines():
        _, _, rest = line.partition(":")
        fields = rest.split()
        blocked = bool(fields) and fields[0] == "->"
        if blocked:
            fields = fields[1:]
        if len(fields) < 5 or fields[4] != key or not fields[3].lstrip("-").isdigit():
            continue
        entries.append(LockEntry(int(fields[3]), fields[0], blocked))
    return entries


def entries(path: str, proc_locks: str = PROC_LOCKS) -> list[LockEntry] | None:
    """Every lock held on, or waited for on, the file at ``path``; None if unknowable here."""
    key = _file_key(path)
    try:
        with open(proc_locks, encoding="ascii", errors="replace") as handle:
            text = handle.read()
    except OSError:
        return None
    return [] if key is None else parse(text, key)


def waiting(path: str, proc_locks: str = PROC_LOCKS) -> set[int] | None:
    """Pids blocked in a lock call on the file at ``path`` right now (None if unknowable)."""
    found = entries(path, proc_locks)
    return None if found is None else {e.pid for e in found if e.blocked}


def waiting_for(files, proc_locks: str = PROC_LOCKS) -> tuple[set[int], int] | None:
    """Who is blocked in a lock call on any of ``files`` ((device, inode) pairs) right now:
    (their pids, how many more waiters the kernel shows without a pid); None if unknowable.
    An open file description lock (``F_OFD_SETLKW``) belongs to no process, so its waiters
    are listed with pid -1 and can only be counted."""
    try:
        with open(proc_locks, encoding="ascii", errors="replace") as handle:
            text = handle.read()
    except OSError:
        return None
    blocked = [e for dev, ino in files for e in parse(text, key_of(dev, ino)) if e.blocked]
    return {e.pid for e in blocked if e.pid > 0}, sum(e.pid <= 0 for e in blocked)
