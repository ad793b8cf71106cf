"""Optional hooks of a target whose state is not one JSON file (a database, a journal, ...).

By default the harness observes a store from outside: it reads the trade log file it passed
to the factory, times the lock with wrappers of ``fcntl.flock``/``fcntl.lockf`` and keeps
every version the store renames over the log. A store that keeps its state elsewhere declares
two small hooks *beside its factory*, as attributes of the factory object (a function
attribute, or a static method of a store class used as the factory):

``factory.chaos_export(trade_log, lock_file) -> dict | None``
    The store's current committed state as the ``docs/FORMAT.md`` document
    (``{"schema": 1, "next_id": N, "trades": [...]}``). Called in the harness's own process,
    between and after the workers' runs, and after every kill of a kill storm. ``trade_log``
    is the store's identity: a store that keeps its state elsewhere derives its location
    from it (a SQLite file beside it, a PostgreSQL schema named after it), so every scenario
    round gets its own, fresh, empty store. None means "no state yet". Declaring it says "my state is not the file
    ``trade_log``": scenarios that damage, crash or power-cut that file are *not applicable*.

``factory.chaos_observe(store, observer) -> None``
    Called in each worker process right after the store is built. The store keeps the
    :class:`Observer` and calls it at its lock and commit points (see there). Without it, a
    store that locks a file through ``flock``, ``lockf`` or an ``fcntl`` record lock is still
    observed by the wrappers; otherwise the lock scenarios see no lock and say NOT PROVEN.

A store that *is* one FORMAT.md file at ``trade_log`` needs neither hook; nor does a
journal-format log (``trade_log`` and ``trade_log.journal``): the harness reads its state
with its own reader of the format (:mod:`tradestore_harness.journal_reader`).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any, Callable

EXPORT = "chaos_export"
OBSERVE = "chaos_observe"
TRADE_LOG_FILE = "trade-log-file"  # what a scenario REQUIRES when it works on the file itself
DATABASE = "chaos_database"  # a scenario that stops the target's database server or ends its sessions


@dataclass(frozen=True)
class TargetHooks:
    """The hooks one target declares (None where it declares none)."""

    export: Callable[..., Any] | None = None
    observe: Callable[[Any, "Observer"], None] | None = None

    @property
    def file_backed(self) -> bool:
        """True when the state is the trade log file itself (no export hook)."""
        return self.export is None


def hooks_of(target: str) -> TargetHooks:
    """The hooks declared beside the factory of ``target`` (a name or ``module:factory``)."""
    from tradestore_harness.targets import resolve_target

    factory = resolve_target(target)
    return TargetHooks(getattr(factory, EXPORT, None), getattr(factory, OBSERVE, None))


def not_applicable(module: Any, target: str) -> str | None:
    """Why scenario ``module`` cannot observe ``target``, or None when it can.

    A scenario declares what it needs in ``REQUIRES`` (a tuple of capability names); today the
    one capability a target may lack is :data:`TRADE_LOG_FILE`.
    """
    needs = getattr(module, "REQUIRES", ())
    if TRADE_LOG_FILE in needs and not hooks_of(target).file_backed:
        return ("the target keeps its state outside the trade log file (it declares chaos_export), "
                "and this scenario damages, crashes or cuts power under that file, or reconciles from it")
    if DATABASE in needs:
        from tradestore_harness.targets import resolve_target

        if getattr(resolve_target(target), DATABASE, None) is None:
            return ("the target has no database server to fault (it declares no chaos_database: "
                    "chaos_database(trade_log) -> an object with terminate_writers() and restart())")
    return None


def encode(document: Any) -> bytes:
    """The bytes the checkers read for an exported document: compact JSON.

    NaN or Infinity is written as such (``allow_nan``), so that ``log-parses`` reports it
    instead of the harness failing to encode it.
    """
    return json.dumps(document, separators=(",", ":"), allow_nan=True, default=repr).encode()


class StateUnreadable(Exception):
    """The files of a journal-format log hold no state the format allows (see
    :mod:`tradestore_harness.journal_reader`): a ``log-parses`` finding, with the reason."""


def read_state(target: str, trade_log: str, lock_file: str) -> bytes | None:
    """The committed state of ``target``'s store as FORMAT.md bytes, or None if it has none.

    A file-backed target: the bytes of ``trade_log`` (None if the file does not exist); for a
    journal-format log (a journal beside it, or a schema-3 checkpoint), the state its
    checkpoint and journal hold as found by the independent reader, read holding the writers'
    lock (never through the library, whose reader is under test), exported as one document;
    StateUnreadable if they hold none. A target with ``chaos_export``: its exported document,
    encoded (None if it returns None).
    """
    from tradestore_harness import journal_reader

    hooks = hooks_of(target)
    if hooks.file_backed:
        try:
            state = journal_reader.read(trade_log, lock_file)
        except journal_reader.Unreadable as exc:
            raise StateUnreadable(str(exc)) from None
        return None if state is None else state.data
    document = hooks.export(trade_log, lock_file)
    return None if document is None else encode(document)


class Observer:
    """What a store with ``chaos_observe`` calls; the harness records each call.

    - ``locked()``: this process now holds the store's exclusive write lock (right after the
      lock call returned; e.g. after ``BEGIN IMMEDIATE``).
    - ``contended()``: this process found the lock taken and is about to wait for it. Call it
      before blocking: the TOCTOU race is proven by seeing the rival wait.
    - ``commit(document)``: the store's checks passed, the lock is held, and it is about to make
      ``document`` (the new state as the FORMAT.md document) visible, e.g. right before
      ``COMMIT``. The harness keeps the version and may hold the process here (the TOCTOU
      wait-point), so call it outside any timeout of your own.
    - ``unlocked()``: this process is about to release the lock: call it right before the
      statement that releases it (``COMMIT`` or ``ROLLBACK`` when the transaction is the lock),
      or the next holder may be recorded taking the lock before this one let it go.

    Calls out of order are tolerated (``unlocked`` without ``locked`` does nothing).
    """

    def locked(self) -> None:  # pragma: no cover - the interface; see SpyObserver
        """The lock is held."""

    def contended(self) -> None:  # pragma: no cover
        """The lock is taken; about to wait."""

    def commit(self, document: dict) -> None:  # pragma: no cover
        """About to make ``document`` visible."""

    def unlocked(self) -> None:  # pragma: no cover
        """About to release the lock."""


class SpyObserver(Observer):
    """Feeds a store's own lock and commit calls into the worker's spy: the same history
    events (``lock``, ``unlock``, ``contended``, ``commit``), kept versions and scenario
    hooks as the ``flock`` and ``os.replace`` wrappers produce."""

    def __init__(self, spy: Any) -> None:
        self.spy = spy

    def locked(self) -> None:
        if not self.spy.holding:
            self.spy.holding = True
            self.spy.history.record("lock")
            for hook in self.spy.on_lock:
                hook()

    def contended(self) -> None:
        self.spy.history.record("contended")
        for hook in self.spy.on_contended:
            hook()

    def commit(self, document: dict) -> None:
        from tradestore_harness.spy import store_version

        data = encode(document)
        sha = store_version(self.spy.versions_dir, data) if self.spy.versions_dir else hashlib.sha256(data).hexdigest()
        for hook in self.spy.on_commit:
            hook(sha)
        self.spy.history.record("commit", sha=sha, locked=self.spy.holding)

    def unlocked(self) -> None:
        if self.spy.holding:
            for hook in self.spy.on_unlock:
                hook()
            self.spy.holding = False
            self.spy.history.record("unlock")


def observe(target: str, store: Any, spy: Any) -> None:
    """Hand the worker's spy to a store that declares ``chaos_observe`` (else do nothing)."""
    hook = hooks_of(target).observe
    if hook is not None:
        hook(store, SpyObserver(spy))

