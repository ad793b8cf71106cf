"""Harness parts in isolation: the spy sees locks and commits of a real store, the nemesis
damages files as named, contexts and generators are pure functions of the seed."""

from __future__ import annotations

import json
import os
import random

import pytest

from tradestore_harness import nemesis, spy
from tradestore_harness.checkers import parse_log
from tradestore_harness.context import ScenarioContext
from tradestore_harness.history import HistoryWriter, lock_intervals, read_events
from tradestore import TradeStore


def test_spy_records_lock_intervals_contention_hooks_and_committed_versions(tmp_path):
    log, lock = tmp_path / "trades.json", tmp_path / "trades.json.lock"
    history = HistoryWriter(tmp_path / "history", "w0")
    installed = spy.install(history, str(log), str(lock), str(tmp_path / "versions"))
    seen = []
    installed.on_commit.append(seen.append)
    try:
        store = TradeStore(log, lock)
        store.open_trade("BTC", "LONG", 100, 90, 120, 1)
        store.open_trade("ETH", "LONG", 100, 90, 120, 1)
    finally:
        spy.uninstall()
    events = read_events(tmp_path / "history")
    intervals = lock_intervals(events)
    commits = [e for e in events if e["ev"] == "commit"]
    assert len(intervals) == 2 and all(i.end is not None for i in intervals)
    assert len(commits) == 2 and all(c["locked"] for c in commits)
    assert [c["sha"] for c in commits] == seen
    versions = sorted((tmp_path / "versions").glob("*.json"))
    assert len(versions) == 2 and all(parse_log(v.read_bytes())[0] for v in versions)
    assert log.read_bytes() in {v.read_bytes() for v in versions}


@pytest.mark.parametrize("how", nemesis.DERIVED_DAMAGE + nemesis.LOG_DAMAGE)
def test_damage_does_what_it_says(tmp_path, how):
    path = tmp_path / "f.json"
    original = json.dumps({"balance": 1.0, "trades": [{"id": "T001"}] * 20}).encode()
    path.write_bytes(original)
    nemesis.damage_file(str(path), how, random.Random(1))
    if how == "delete":
        assert not path.exists()
        return
    data = path.read_bytes()
    assert data != original
    if how == "forged":
        assert json.loads(data)["balance"] != 1.0  # valid JSON, wrong content
    else:
        assert parse_log(data)[0] is None  # unreadable as a log


def test_context_random_streams_depend_only_on_seed_and_salt(tmp_path):
    a = ScenarioContext("tradestore", 5, True, None, 3, tmp_path)
    b = ScenarioContext("tradestore", 5, True, None, 3, tmp_path)
    assert [a.rng("x").random() for _ in range(3)] == [b.rng("x").random() for _ in range(3)]
    assert a.rng("x").random() != a.rng("y").random()
    assert a.subdir("r1").is_dir()
    with pytest.raises(FileExistsError):
        a.subdir("r1")  # a scenario's directories are always fresh


def test_damage_edge_cases(tmp_path):
    r = random.Random(2)
    missing = tmp_path / "missing.json"
    nemesis.damage_file(str(missing), "delete", r)  # deleting what is gone is fine
    nemesis.damage_file(str(missing), "truncate", r)
    assert missing.read_bytes() == b"{"
    text = tmp_path / "t.json"
    text.write_bytes(b"not json")
    nemesis.damage_file(str(text), "forged", r)
    assert json.loads(text.read_bytes())["balance"] == 1e9
    with pytest.raises(ValueError):
        nemesis.damage_file(str(text), "melt", r)


def test_kill_of_a_process_that_already_exited_is_recorded(tmp_path):
    from tradestore_harness import workers

    proc = workers.spawn(print, "bye")
    proc.join()
    history = HistoryWriter(tmp_path, "nemesis")
    nemesis.kill(proc, history)
    history.close()
    [event] = [e for e in read_events(tmp_path) if e["ev"] == "kill"]
    assert event["target_pid"] == proc.pid


def test_a_lock_on_any_file_is_the_lock_and_other_renames_are_ignored(tmp_path):
    # A store may lock a file of its own choosing, not the one the harness named: whatever
    # file it holds an exclusive lock on, it is in its critical section.
    import fcntl
    import os

    history = HistoryWriter(tmp_path / "history", "w0")
    installed = spy.install(history, str(tmp_path / "trades.json"), str(tmp_path / "trades.lock"))
    try:
        other = os.open(tmp_path / "its-own.lock", os.O_CREAT | os.O_RDWR)
        fcntl.flock(other, fcntl.LOCK_EX)
        assert installed.holding and installed.locked_files == {(os.fstat(other).st_dev, os.fstat(other).st_ino)}
        fcntl.flock(other, fcntl.LOCK_UN)
        os.close(other)
        with pytest.raises((TypeError, ValueError)):
            fcntl.flock(object(), fcntl.LOCK_EX)  # not a descriptor: the real call's error, no event
        (tmp_path / "a").write_text("x")
        os.replace(tmp_path / "a", tmp_path / "b")
    finally:
        spy.uninstall()
    assert [e["ev"] for e in read_events(tmp_path / "history")] == ["lock", "unlock"]


@pytest.mark.parametrize("command", ["F_SETLKW", "F_OFD_SETLKW"])
def test_fcntl_record_locks_are_seen_like_flock(tmp_path, command):
    # struct flock: l_type, l_whence, l_start, l_len, l_pid. A write lock is exclusive, a read
    # lock shared (no critical section), an unlock or a close of the file ends it.
    import fcntl
    import struct

    cmd = getattr(fcntl, command, {"F_OFD_SETLKW": 38}.get(command))

    def flock(kind):
        return struct.pack("hhqqi", kind, 0, 0, 0, 0)

    history = HistoryWriter(tmp_path / "history", "w0")
    installed = spy.install(history, str(tmp_path / "trades.json"), str(tmp_path / "trades.lock"))
    try:
        fd = os.open(tmp_path / "trades.lock", os.O_CREAT | os.O_RDWR)
        fcntl.fcntl(fd, cmd, flock(fcntl.F_RDLCK))
        assert not installed.holding
        fcntl.fcntl(fd, cmd, flock(fcntl.F_WRLCK))
        assert installed.holding
        assert fcntl.fcntl(fd, fcntl.F_GETFD) >= 0  # any other command passes through
        fcntl.fcntl(fd, cmd, flock(fcntl.F_UNLCK))
        assert not installed.holding
        fcntl.fcntl(fd, cmd, flock(fcntl.F_WRLCK))
        os.close(fd)
        assert not installed.holding
    finally:
        spy.uninstall()
    assert [e["ev"] for e in read_events(tmp_path / "history")] == ["lock", "unlock", "lock", "unlock"]


def test_registry_reports_a_scenario_module_that_does_not_import(monkeypatch):
    from tradestore_chaos import scenarios

    monkeypatch.setattr(scenarios, "MODULES", scenarios.MODULES + ("no_such_scenario_module",))
    assert "no_such_scenario_module" in scenarios.missing()
    assert "race-duplicate" in scenarios.available()


def test_a_changed_registry_leaves_no_trace_once_restored(monkeypatch):
    from tradestore_chaos import scenarios

    with monkeypatch.context() as patch:
        patch.setattr(scenarios, "MODULES", scenarios.MODULES + ("no_such_scenario_module",))
        assert scenarios.missing()
    assert scenarios.missing() == {}  # a later campaign is not refused for a module it never had


@pytest.mark.parametrize("how", ["os.close", "with open"])
def test_closing_the_locked_descriptor_is_seen_as_the_unlock(tmp_path, how):
    # Closing a descriptor releases its flock; a store that unlocks that way (leaving a
    # `with open(lock)` block, os.close) must not look as if it held the lock forever.
    import fcntl



    lock = tmp_path / "trades.json.lock"
    lock.write_text("")
    history = HistoryWriter(tmp_path / "history", "w")
    installed = spy.install(history, str(tmp_path / "trades.json"), str(lock))
    try:
        if how == "os.close":
            fd = os.open(lock, os.O_RDWR)
            fcntl.flock(fd, fcntl.LOCK_EX)
            os.close(fd)
        else:
            with open(lock, "a") as handle:
                fcntl.flock(handle, fcntl.LOCK_EX)
        assert not installed.holding
    finally:
        spy.uninstall()
    assert [e["ev"] for e in read_events(tmp_path / "history")] == ["lock", "unlock"]


def test_a_read_of_a_log_that_does_not_exist_yet_is_a_read(tmp_path):
    # A store that finds no log decides on an empty account: the read hooks (the race
    # scenarios' barrier at a read outside the lock) must hold it as they hold any reader.
    history = HistoryWriter(tmp_path / "history", "w0")
    installed = spy.install(history, str(tmp_path / "trades.json"), str(tmp_path / "trades.lock"))
    reads = []
    installed.on_read.append(lambda: reads.append(True))
    try:
        with pytest.raises(FileNotFoundError):
            open(tmp_path / "trades.json", "rb")
        with pytest.raises(FileNotFoundError):
            open(tmp_path / "other.json", "rb")  # another file: no read of the log
        assert len(reads) == 1
        (tmp_path / "trades.json").write_text("{}")
        with open(tmp_path / "trades.json", "rb"):
            pass
        assert len(reads) == 2
    finally:
        spy.uninstall()
