"""Positive and negative control stores in every common idiom, for proving the chaos harness.

Each module is one way bots keep their trade log: builtin ``open()`` under a blocking
``flock`` (:mod:`.open_flock`), the ``os`` module alone (:mod:`.os_write`), ``os`` calls relative
to a directory descriptor (:mod:`.dir_fd`), ``LOCK_NB`` polling
(:mod:`.flock_poll`), ``fcntl.lockf`` (:mod:`.lockf_store`), ``fcntl.fcntl`` record locks on a
lock file of the store's own naming (:mod:`.record_lock`), the ``filelock`` package
(:mod:`.filelock_store`) and stdlib ``sqlite3`` (:mod:`.sqlite_store`). Each has a correct store
(``make_store``, a positive control: the harness must never fail it) and negative controls
that differ from it in one flaw (the harness must catch each with the property it breaks).
They share only the bot's trading rules (:mod:`.rules`, written from docs/FORMAT.md) and
import nothing from tradestore, so what they prove about the harness is not borrowed from the
library. :data:`STORES` lists them; ``python -m tests.idioms.matrix`` runs the campaign's
scenarios over them.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Idiom:
    """One store of the corpus.

    ``breaks``: for a negative control, the properties its flaw violates; a scenario that
    catches it must report at least one of them. ``caught_by``: the scenarios that must catch
    it on every seed.
    """

    name: str
    target: str  # module:factory, importable in the worker processes
    idiom: str
    flaw: str | None = None  # None: a positive control
    breaks: tuple[str, ...] = ()
    caught_by: tuple[str, ...] = ()

    @property
    def correct(self) -> bool:
        return self.flaw is None


_RACE = ("duplicate-open-symbol", "position-cap", "correlation-limit", "loss-cap", "ack-durable",
         "ids-unique-increasing", "no-duplicate-trade", "mutual-exclusion")
_TORN = ("log-parses", "ack-durable", "state-before-or-after")
_READERS_SEE_TORN = _TORN + ("derived-consistent", "derived-heals")  # the reconciler reads a half-written log

STORES = (
    Idiom("open-flock", "tests.idioms.open_flock:make_store", "builtin open() + os.fdopen, blocking flock"),
    Idiom("open-flock/check-outside-lock", "tests.idioms.open_flock:CheckOutsideLock",
          "builtin open() + os.fdopen, blocking flock", "risk checks on a read made before the lock",
          _RACE, ("toctou-waitpoint",)),
    Idiom("open-flock/no-lock", "tests.idioms.open_flock:NoLock", "builtin open() + os.fdopen",
          "never locks", _RACE, ("mutex",)),
    Idiom("open-flock/in-place", "tests.idioms.open_flock:InPlace", "builtin open(), blocking flock",
          "rewrites the log in place", _READERS_SEE_TORN, ("crash-points",)),
    Idiom("open-flock/no-fsync", "tests.idioms.open_flock:NoFsync", "builtin open(), blocking flock",
          "renames without any fsync", _TORN, ("power-loss",)),
    Idiom("open-flock/shared-reads", "tests.idioms.open_flock:SharedReads",
          "builtin open(), LOCK_SH for reads, LOCK_EX for each write"),
    Idiom("open-flock/upgrades-shared", "tests.idioms.open_flock:UpgradesShared", "builtin open(), flock",
          "decides under LOCK_SH, then upgrades to LOCK_EX to write", _RACE, ("race-duplicate", "race-cap")),
    Idiom("os-write", "tests.idioms.os_write:make_store", "os.open/os.write loop, blocking flock on a raw fd"),
    Idiom("os-write/no-dir-fsync", "tests.idioms.os_write:NoDirFsync", "os.open/os.write, blocking flock",
          "never fsyncs the directory after the rename", ("ack-durable",), ("power-loss",)),
    Idiom("os-write/single-write", "tests.idioms.os_write:SingleWrite", "os.open/os.write, blocking flock",
          "one os.write call, short writes ignored", _TORN, ("io-errors",)),
    Idiom("dir-fd", "tests.idioms.dir_fd:make_store", "os calls relative to a directory descriptor (dir_fd)"),
    Idiom("dir-fd/no-file-fsync", "tests.idioms.dir_fd:NoFileFsync", "os calls relative to dir_fd",
          "renames the temp file without fsyncing its data", _TORN, ("power-loss",)),
    Idiom("flock-poll", "tests.idioms.flock_poll:make_store", "flock LOCK_NB polled to a deadline, pathlib"),
    Idiom("flock-poll/gives-up", "tests.idioms.flock_poll:GivesUp", "flock LOCK_NB polled, pathlib",
          "writes without the lock after three busy polls", _RACE, ()),
    Idiom("lockf", "tests.idioms.lockf_store:make_store", "fcntl.lockf, tempfile.NamedTemporaryFile"),
    Idiom("lockf/reopen-releases", "tests.idioms.lockf_store:ReopenReleases", "fcntl.lockf, NamedTemporaryFile",
          "reopens and closes the lock file while locked (POSIX drops the lock)", _RACE, ("toctou-waitpoint",)),
    Idiom("record-lock", "tests.idioms.record_lock:make_store",
          "fcntl.fcntl F_OFD_SETLKW on a lock file of its own naming"),
    Idiom("record-lock/posix", "tests.idioms.record_lock:PosixStore", "fcntl.fcntl F_SETLKW on the lock file"),
    Idiom("record-lock/check-outside-lock", "tests.idioms.record_lock:CheckOutsideLock",
          "fcntl.fcntl F_OFD_SETLKW, own lock file", "risk checks on a read made before the lock",
          _RACE, ("toctou-waitpoint",)),
    Idiom("record-lock/locks-the-log", "tests.idioms.record_lock:LocksTheLog", "fcntl.fcntl F_OFD_SETLKW",
          "locks the trade log itself, which each write replaces", _RACE, ("mutex",)),
    Idiom("filelock", "tests.idioms.filelock_store:make_store", "filelock.FileLock, io.open"),
    Idiom("filelock/write-only-locked", "tests.idioms.filelock_store:WriteOnlyLocked", "filelock.FileLock, io.open",
          "reads and decides outside the lock, locks only the write", _RACE, ("toctou-waitpoint",)),
    Idiom("sqlite", "tests.idioms.sqlite_store:make_store", "sqlite3, BEGIN IMMEDIATE"),
    Idiom("sqlite/autocommit-check", "tests.idioms.sqlite_store:AutocommitCheck", "sqlite3, implicit transactions",
          "checks in autocommit, inserts in a later deferred transaction", _RACE, ("toctou-waitpoint",)),
)


def by_name(name: str) -> Idiom:
    """The store called ``name``; raises KeyError naming the known ones."""
    for store in STORES:
        if store.name == name:
            return store
    raise KeyError(f"unknown idiom store {name!r}; known: {', '.join(s.name for s in STORES)}")
