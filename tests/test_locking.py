"""FileLock: timeouts, dead holders, reentrancy, threads and fork."""

from __future__ import annotations

import os
import signal
import threading

import pytest

from tradestore import FileLock, LockLost, LockTimeout, TradeStore
from tradestore import locking

from .workers import (
    SPAWN,
    block_on_flock,
    hold_lock,
    hold_raw_flock,
    hold_through_a_forked_child,
    in_forked_child,
    open_once,
    try_lock,
)

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


@pytest.mark.parametrize("how", ["removed", "replaced"])
def test_a_lock_file_gone_between_open_and_flock_is_let_go_and_the_new_one_locked(tmp_path, monkeypatch, how):
    # flock locks the file opened, not the name: a file no longer at the name excludes no one.
    path = tmp_path / "trades.lock"
    flock = FileLock._flock
    calls = []

    def flock_then_lose_the_file(self, fd, deadline, timeout):
        flock(self, fd, deadline, timeout)
        calls.append(os.fstat(fd).st_ino)
        if len(calls) == 1:
            if how == "removed":
                path.unlink()
            else:
                (tmp_path / "new").write_text("")
                os.replace(tmp_path / "new", path)

    monkeypatch.setattr(FileLock, "_flock", flock_then_lose_the_file)
    lock = FileLock(path, timeout=5)
    with lock:
        assert len(calls) == 2 and calls[1] == os.stat(path).st_ino  # (a removed file's number may be reused)
        lock.check_held()
        assert probe(path, 0.2)[0] == "timeout"  # the file at the name is the one locked
    assert probe(path, 5)[0] == "locked"


@pytest.mark.parametrize("how", ["removed", "replaced"])
def test_check_held_refuses_once_the_lock_file_is_not_at_its_name(tmp_path, how):
    path = tmp_path / "trades.lock"
    lock = FileLock(path, timeout=1)
    with pytest.raises(RuntimeError, match="does not hold"):
        lock.check_held()
    with lock:
        lock.check_held()
        if how == "removed":
            path.unlink()
        else:
            (tmp_path / "new").write_text("")
            os.replace(tmp_path / "new", path)
        with pytest.raises(LockLost, match="removed or replaced"):
            lock.check_held()


@pytest.mark.parametrize("checked", [True, False], ids=["checked", "negative control: unchecked"])
def test_a_writer_whose_lock_file_was_removed_writes_nothing_over_the_next_holder(tmp_path, monkeypatch, checked):
    # A holds the lock inside a transaction; the lock file is removed; B (another process)
    # locks the new file and opens ETH, acknowledged. A's commit must not drop it.
    log = str(tmp_path / "trades.json")
    a = TradeStore(log, lock_timeout=5)
    a.open_trade("SOL", "LONG", 100, 95, 120, 1)
    if not checked:
        monkeypatch.setattr(locking.FileLock, "check_held", lambda self: None)
    results = SPAWN.Queue()
    outcome = None
    try:
        with a.transaction() as tx:
            tx.open_trade("BTC", "LONG", 100, 95, 120, 1)
            os.unlink(log + ".lock")
            b = SPAWN.Process(target=open_once, args=(log, "ETH", results))
            b.start()
            b_id = results.get(timeout=60)
            b.join(60)
    except LockLost as exc:
        outcome = exc
    assert b_id == "T002"
    symbols = [t["symbol"] for t in TradeStore(log).get_all_trades()]
    if checked:
        assert isinstance(outcome, LockLost) and symbols == ["SOL", "ETH"]
        a.open_trade("ADA", "LONG", 100, 95, 120, 1)  # A locks the new file from now on
        assert [t["id"] for t in TradeStore(log).get_all_trades()] == ["T001", "T002", "T003"]
    else:
        assert outcome is None and "ETH" not in symbols  # the acknowledged ETH is lost


# --------------------------------------------------------------------------- who holds the lock


def _foreign_holder(path, hint=None):
    acquired, release = SPAWN.Event(), SPAWN.Event()
    holder = SPAWN.Process(target=hold_raw_flock, args=(str(path), acquired, release, hint))
    holder.start()
    assert acquired.wait(60)
    return holder, release


def _timeout_message(path):
    with pytest.raises(LockTimeout) as caught:
        FileLock(path, timeout=0.05).acquire()
    return str(caught.value)


def test_timeout_names_the_real_holder_not_a_stale_hint(tmp_path):
    path = tmp_path / "trades.lock"
    dead = SPAWN.Process(target=os.getpid)
    dead.start()
    dead.join(60)  # a pid that has certainly exited
    holder, release = _foreign_holder(path, hint=f"{dead.pid:<15}\n".encode())
    try:
        message = _timeout_message(path)
    finally:
        release.set()
        holder.join(60)
    assert f"pid {holder.pid} (" in message  # a foreign program, found through /proc/locks
    assert f"pid {dead.pid}" not in message  # the hint is stale: never stated as the holder


def test_timeout_lists_processes_blocked_waiting(tmp_path):
    from tradestore.locking import lock_holders

    path = tmp_path / "trades.lock"
    holder, release = _foreign_holder(path)
    waiter_release = SPAWN.Event()
    waiter = SPAWN.Process(target=block_on_flock, args=(str(path), waiter_release))
    waiter.start()
    fd = os.open(path, os.O_RDONLY)
    try:
        for _ in range(6000):  # until the waiter is inside flock(2): a state, not a sleep
            if lock_holders(fd)[1]:
                break
            threading.Event().wait(0.01)
        message = _timeout_message(path)
    finally:
        os.close(fd)
        release.set()
        waiter_release.set()
        holder.join(60)
        waiter.join(60)
    assert f"pid {holder.pid} (" in message
    assert f"1 other process(es) blocked waiting for it: pid {waiter.pid}" in message


def test_a_lock_held_through_an_inherited_descriptor_is_explained(tmp_path):
    path = tmp_path / "trades.lock"
    acquired, release = SPAWN.Event(), SPAWN.Event()
    parent = SPAWN.Process(target=hold_through_a_forked_child, args=(str(path), acquired, release))
    parent.start()
    assert acquired.wait(60)  # the process that took the lock has exited; its forked child holds it
    try:
        message = _timeout_message(path)
    finally:
        release.set()
        parent.join(60)
    assert f"inherited it from pid {parent.pid} (which has exited)" in message
    with FileLock(path, timeout=30):  # the child exits once released
        pass


def test_without_proc_locks_the_pid_is_called_a_hint(tmp_path, monkeypatch):
    from tradestore import locking

    monkeypatch.setattr(locking, "PROC_LOCKS", str(tmp_path / "no-such-file"))
    path = tmp_path / "trades.lock"
    holder, release = start_holder(path)
    try:
        message = _timeout_message(path)
    finally:
        release.set()
        holder.join(60)
    assert f"hint names pid {holder.pid}" in message and "stale" in message
    foreign, release = _foreign_holder(tmp_path / "other.lock")
    try:
        assert "pid unknown" in _timeout_message(tmp_path / "other.lock")
    finally:
        release.set()
        foreign.join(60)


def test_proc_locks_parsing_ignores_other_lines(tmp_path, monkeypatch):
    from tradestore import locking

    path = tmp_path / "x.lock"
    fd = os.open(path, os.O_RDWR | os.O_CREAT)
    st = os.fstat(fd)
    key = f"{os.major(st.st_dev):02x}:{os.minor(st.st_dev):02x}:{st.st_ino}"
    reaped = SPAWN.Process(target=os.getpid)
    reaped.start()
    reaped.join(60)  # exited and reaped: no /proc entry at all
    fake = tmp_path / "locks"
    fake.write_text(
        f"1: POSIX  ADVISORY  WRITE 11 {key} 0 EOF\n"  # a record lock, not a flock
        "2: FLOCK  ADVISORY  WRITE 12 00:00:1 0 EOF\n"  # another file
        f"3: FLOCK  ADVISORY  WRITE x {key} 0 EOF\n"  # unparsable pid
        "garbage\n"
        f"4: FLOCK  ADVISORY  WRITE 0 {key} 0 EOF\n"  # outside our pid namespace
        f"4: -> FLOCK  ADVISORY  WRITE 13 {key} 0 EOF\n"
        f"5: -> FLOCK  ADVISORY  WRITE {reaped.pid} {key} 0 EOF\n"
    )
    monkeypatch.setattr(locking, "PROC_LOCKS", str(fake))
    try:
        assert locking.lock_holders(fd) == ([0], [13, reaped.pid])
        described = locking.holder_description(fd)
        assert described.startswith("a process in another pid namespace")
        assert f"inherited it from pid {reaped.pid} (which has exited)" in described
        fake.write_text("")
        assert "none listed" in locking.holder_description(fd)
    finally:
        os.close(fd)


# --------------------------------------------------------------------------- pid hint, waits, fork


@pytest.mark.parametrize("content,links,written", [
    (b"", 1, True), (b"12345          \n", 1, True), (b"7\n", 1, True),
    (b'{"trades":[]}', 1, False), (b"x" * 100, 1, False), (b"", 2, False), (b"123", 2, False),
])
def test_the_pid_hint_is_written_only_into_a_file_that_holds_nothing_but_a_hint(tmp_path, content, links, written):
    path = tmp_path / "trades.lock"
    path.write_bytes(content)
    if links == 2:
        os.link(path, tmp_path / "another-name")
    with FileLock(path, timeout=1):
        pass
    after = path.read_bytes()
    if written:
        assert after[:16] == f"{os.getpid():<15}\n".encode()
    else:
        assert after == content


def test_slow_waits_are_logged_at_warning(tmp_path, caplog):
    import logging

    path = tmp_path / "trades.lock"
    holder, release = start_holder(path)
    lock = FileLock(path, timeout=30, slow_wait_s=0.0)
    caplog.set_level(logging.WARNING, logger="tradestore.locking")
    seen = threading.Event()

    class Release(logging.Handler):
        def emit(self, record):
            if "waiting" in record.getMessage():
                release.set()  # let the holder go once the wait has been reported
                seen.set()

    handler = Release()
    logging.getLogger("tradestore.locking").addHandler(handler)
    try:
        with lock:
            pass
    finally:
        logging.getLogger("tradestore.locking").removeHandler(handler)
        release.set()
        holder.join(60)
    messages = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert seen.is_set() and f"pid {holder.pid}" in messages[0] and "acquired" in messages[-1]


def test_a_forked_child_leaving_an_inherited_lock_block_neither_fails_nor_unlocks(tmp_path):
    path = tmp_path / "trades.lock"
    lock = FileLock(path, timeout=5)

    def leave_inherited_block():
        # Another file gets the descriptor number the fork closed: unlocking by number would
        # act on it. The child leaves the block the parent entered.
        other = os.open(tmp_path / "other", os.O_RDWR | os.O_CREAT)
        lock.release()
        os.close(other)

    with lock:
        assert in_forked_child(leave_inherited_block) == "returned"
        assert probe(path, 0.1)[0] == "timeout"  # the parent still holds it
    assert probe(path, 5)[0] == "locked"


def test_infinite_and_huge_timeouts_do_not_overflow(tmp_path):
    import math

    for timeout in (math.inf, 1e300, None):
        with FileLock(tmp_path / "trades.lock", timeout=timeout) as lock:
            assert lock.held_by_current_thread()
