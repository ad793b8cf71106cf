"""Functions run in spawned worker processes by the multi-process tests.

They live in their own module so a spawned child can import them by name. Each reports its
outcome on a queue as ``(worker, outcome, detail)``.
"""

from __future__ import annotations

import os
import time

import multiprocess

from tradestore import FileLock, LockTimeout, RiskRejected, TradeStore
from tradestore import atomic
from tradestore.ledger import Ledger

SPAWN = multiprocess.get_context("spawn")


def open_after_barrier(log, barrier, results, worker, symbol, limits, entry=100.0, stop=95.0, size=1.0):
    """Wait on the barrier with every other worker, then try to open one trade."""
    store = TradeStore(log, **limits)
    barrier.wait()
    try:
        trade = store.open_trade(symbol, "LONG", entry, stop, entry * 1.2, size)
        results.put((worker, "ok", trade["id"]))
    except RiskRejected as exc:
        results.put((worker, "rejected", exc.check))
    except Exception as exc:  # reported, so the test fails with the reason
        results.put((worker, "error", repr(exc)))


def check_outside_lock_then_write(log, check_barrier, results, worker, symbol):
    """Negative control: check risk without the lock, then write under it without re-checking.

    The barrier between check and write makes the race certain: every worker checks an
    empty log before any of them writes.
    """
    store = TradeStore(log)
    ok, _ = store.can_open_position(symbol)
    check_barrier.wait()
    if not ok:
        results.put((worker, "rejected", "advisory"))
        return
    with FileLock(store.lock_file):
        try:
            with open(log, "rb") as f:
                ledger = Ledger.from_json(f.read())
        except FileNotFoundError:
            ledger = Ledger()
        # Trust the advisory answer: build the record against an empty ledger, so no check
        # sees the trades written since, and append it.
        scratch = Ledger(next_id=ledger.next_id)
        trade = scratch.open_trade(symbol, "LONG", 100.0, 95.0, 120.0, 1.0, now=store.now())
        ledger.trades.append(trade)
        ledger.next_id = scratch.next_id
        atomic.write_atomic(log, ledger.to_json())
    results.put((worker, "ok", trade["id"]))


def hold_in_transaction(log, checked, release, done, symbol):
    """Wait-point A: open inside a transaction (checks passed), hold the lock until told."""
    store = TradeStore(log)
    with store.transaction() as tx:
        tx.open_trade(symbol, "LONG", 100.0, 95.0, 120.0, 1.0)
        checked.set()
        release.wait()
    done.set()


def attempt_while_held(log, blocked, results, symbol):
    """Wait-point B: first prove the lock is held (a short timeout expires), then block on it."""
    store = TradeStore(log, lock_timeout=0.2)
    try:
        store.open_trade(symbol, "LONG", 100.0, 95.0, 120.0, 1.0)
        results.put(("B", "ok-while-held", ""))
        return
    except LockTimeout:
        blocked.set()
    patient = TradeStore(log, lock_timeout=30)
    try:
        trade = patient.open_trade(symbol, "LONG", 100.0, 95.0, 120.0, 1.0)
        results.put(("B", "ok", trade["id"]))
    except RiskRejected as exc:
        results.put(("B", "rejected", exc.check))


def hold_lock(path, acquired, release):
    """Hold the lock on ``path`` until ``release`` is set (or forever, if never set)."""
    with FileLock(path):
        acquired.set()
        release.wait()


def try_lock(path, timeout, results):
    """Report whether the lock could be taken within ``timeout`` seconds, and the error text."""
    started = time.monotonic()
    try:
        with FileLock(path, timeout=timeout):
            results.put(("locked", time.monotonic() - started))
    except LockTimeout as exc:
        results.put(("timeout", str(exc)))


def pid() -> int:
    return os.getpid()


def in_forked_child(attempt) -> str:
    """Fork; in the child run ``attempt()`` and report how it ended; return that report.

    "returned" if it returned, else the name of the exception it raised. The child ends with
    ``os._exit`` (no parent cleanup runs twice) after writing the report to a pipe.
    """
    read_end, write_end = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no branch - the child reports through the pipe and exits
        os.close(read_end)
        try:
            attempt()
            outcome = "returned"
        except BaseException as exc:
            outcome = type(exc).__name__
        os.write(write_end, outcome.encode())
        os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as reports:
        outcome = reports.read().decode()
    os.waitpid(child, 0)
    return outcome


def recover_until_crash(log, k):
    """Run ``TradeStore(log).recover()``, dying with ``os._exit(9)`` at the k-th file-system call
    (open, write, fsync, link, rename/replace, unlink); exit 0 if it finishes first."""
    calls = [0]

    def counted(real):
        def call(*args, **kwargs):
            calls[0] += 1
            if calls[0] == k:
                os._exit(9)
            return real(*args, **kwargs)
        return call

    store = TradeStore(log)
    for name in ("open", "write", "fsync", "link", "replace", "rename", "unlink"):
        setattr(os, name, counted(getattr(os, name)))
    store.recover()
    os._exit(0)


def hold_raw_flock(path, acquired, release, hint=None):
    """Hold a flock on ``path`` as a foreign program would: no tradestore, no pid hint (or a
    given, misleading one written first)."""
    import fcntl

    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    if hint is not None:
        os.pwrite(fd, hint, 0)
    fcntl.flock(fd, fcntl.LOCK_EX)
    acquired.set()
    release.wait()


def block_on_flock(path, release):
    """Wait for the flock on ``path`` in a blocking call (listed as a waiter in /proc/locks)."""
    import fcntl

    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    fcntl.flock(fd, fcntl.LOCK_EX)
    release.wait()


def hold_through_a_forked_child(path, acquired, release):
    """Take the lock, fork a child that keeps the inherited descriptor, and exit: the lock
    stays held (flock belongs to the open file) by a process that never took it."""
    import fcntl

    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    fcntl.flock(fd, fcntl.LOCK_EX)
    taker = os.getpid()
    if os.fork() == 0:  # pragma: no cover - the child waits, then exits with os._exit
        try:
            while os.getppid() == taker:  # until the taker has exited (this child is reparented)
                time.sleep(0.001)
            acquired.set()
            release.wait()
        finally:
            os._exit(0)
    os._exit(0)


def open_once(log, symbol, results):
    """Open one trade (lock timeout 30 s) and report its id, or the error's type."""
    try:
        results.put(TradeStore(log, lock_timeout=30).open_trade(symbol, "LONG", 100.0, 95.0, 120.0, 1.0)["id"])
    except Exception as exc:  # reported, so the test sees what happened
        results.put(type(exc).__name__)
