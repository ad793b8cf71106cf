"""FileLock: timeouts, dead holders, reentrancy, threads and fork."""

from __future__ import annotations

import os
import signal
import threading

import pytest

from tradestore import FileLock, LockTimeout, TradeStore

from .workers import SPAWN, hold_lock, in_forked_child, try_lock

pytestmark = pytest.mark.xdist_group("processes")


def start_holder(path):
    acquired, release = SPAWN.Event(), SPAWN.Event()
    holder = SPAWN.Process(target=hold_lock, args=(str(path), acquired, release))
    holder.start()
    assert acquired.wait(60)
    return holder, release


def probe(path, timeout):
    results = SPAWN.Queue()
    p = SPAWN.Process(target=try_lock, args=(str(path), timeout, results))
    p.start()
    outcome = results.get(timeout=60)
    p.join(60)
    return outcome


def test_timeout_names_the_lock_file_and_the_holder(tmp_path):
    path = tmp_path / "trades.lock"
    holder, release = start_holder(path)
    try:
        with pytest.raises(LockTimeout) as caught:
            FileLock(path, timeout=0.1).acquire()
        assert str(path) in str(caught.value) and f"pid {holder.pid}" in str(caught.value)
    finally:
        release.set()
        holder.join(60)
    with FileLock(path, timeout=5):
        pass


def test_sigkilled_holder_frees_the_lock(tmp_path):
    path = tmp_path / "trades.lock"
    holder, _ = start_holder(path)
    os.kill(holder.pid, signal.SIGKILL)
    holder.join(60)
    assert holder.exitcode == -signal.SIGKILL
    with FileLock(path, timeout=10):
        assert path.exists()


def test_store_write_times_out_while_another_process_holds_the_lock(tmp_path):
    store = TradeStore(tmp_path / "t.json", lock_timeout=0.1)
    holder, release = start_holder(store.lock_file)
    try:
        with pytest.raises(LockTimeout):
            store.open_trade("BTC", "LONG", 100, 95, 120, 1)
    finally:
        release.set()
        holder.join(60)
    assert not os.path.exists(store.trade_log)
    store.open_trade("BTC", "LONG", 100, 95, 120, 1)


def test_nested_use_in_one_thread_is_reentrant_even_by_another_path(tmp_path):
    path = tmp_path / "trades.lock"
    alias = tmp_path / "sub" / ".." / "trades.lock"
    (tmp_path / "sub").mkdir()
    outer, inner = FileLock(path, timeout=1), FileLock(alias, timeout=1)
    with outer:
        with inner:  # the same descriptor: would self-deadlock if opened twice
            assert inner.held_by_current_thread()
        assert outer.held_by_current_thread()
        assert probe(path, 0.1)[0] == "timeout"  # still held after the inner release
    assert not outer.held_by_current_thread()
    assert probe(path, 5)[0] == "locked"


def test_threads_are_serialised(tmp_path):
    path = tmp_path / "trades.lock"
    lock = FileLock(path, timeout=5)
    inside, leave = threading.Event(), threading.Event()
    timeouts = []

    def holder():
        with lock:
            inside.set()
            leave.wait()

    t = threading.Thread(target=holder)
    t.start()
    assert inside.wait(10)
    try:
        FileLock(path, timeout=0.05).acquire()
    except LockTimeout as exc:
        timeouts.append(str(exc))
    leave.set()
    t.join()
    assert timeouts and "another thread" in timeouts[0]
    with lock:
        pass


def test_release_without_holding_is_an_error(tmp_path):
    with pytest.raises(RuntimeError):
        FileLock(tmp_path / "x.lock").release()


def test_lock_file_is_permanent_and_never_truncated(tmp_path):
    path = tmp_path / "trades.lock"
    path.write_bytes(b"x" * 100)
    inode = path.stat().st_ino
    for _ in range(3):
        with FileLock(path):
            pass
    assert path.stat().st_ino == inode and path.stat().st_size == 100


def test_symlinked_lock_file_is_refused(tmp_path):
    target = tmp_path / "elsewhere"
    target.write_text("")
    link = tmp_path / "trades.lock"
    link.symlink_to(target)
    with pytest.raises(OSError):
        FileLock(link).acquire()


def test_forked_child_neither_holds_nor_releases_the_parents_lock(tmp_path):
    path = tmp_path / "trades.lock"
    lock = FileLock(path, timeout=5)
    with lock:
        # Acquiring in the child must time out: it does not hold (or share) the parent's lock.
        assert in_forked_child(lambda: FileLock(path, timeout=0.1).acquire()) == "LockTimeout"
        # The child's exit closed its inherited descriptor: the parent must still hold the lock.
        assert probe(path, 0.1)[0] == "timeout"
    assert probe(path, 5)[0] == "locked"


def test_a_failed_pid_hint_still_leaves_a_working_lock(tmp_path, monkeypatch):
    def no_space(*args):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "pwrite", no_space)
    lock = FileLock(tmp_path / "trades.lock", timeout=1)
    with lock:
        assert lock.held_by_current_thread()
    assert not lock.held_by_current_thread()
    with lock:  # released properly: the next acquire does not time out
        pass


def test_descriptors_of_deleted_lock_files_are_forgotten(tmp_path):
    from tradestore import locking

    gone = tmp_path / "gone.lock"
    with FileLock(gone):
        pass
    stat_before = gone.stat()
    assert (stat_before.st_dev, stat_before.st_ino) in locking._registry
    gone.unlink()
    with FileLock(tmp_path / "new.lock"):
        pass
    # The deleted file's inode number may be reused by any new file: its entry must be gone.
    stale = locking._registry.get((stat_before.st_dev, stat_before.st_ino))
    assert stale is None or os.fstat(stale.fd).st_nlink > 0


def test_repr_names_the_file_and_timeout(tmp_path):
    assert repr(FileLock(tmp_path / "t.lock", timeout=2.5)) == f"FileLock({str(tmp_path / 't.lock')!r}, timeout=2.5)"


def test_release_works_after_the_lock_file_was_removed(tmp_path):
    path = tmp_path / "trades.lock"
    lock = FileLock(path, timeout=1)
    with lock:
        path.unlink()  # e.g. an operator's "stale lock" cleanup; the lock file is meant to stay
    assert not lock.held_by_current_thread()
    with FileLock(path, timeout=1):  # a new file: lockable, and by other processes too
        pass
    assert probe(path, 5)[0] == "locked"
