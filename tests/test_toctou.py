"""toctou-waitpoint sees a rival blocked in a blocking flock (in /proc/locks, no LOCK_NB
needed), so the race really happens for such stores: the correct one passes with the race
exercised in every round, the racy one is caught in every round; a round whose rival was never
seen waiting is NOT PROVEN."""

from __future__ import annotations

import fcntl
import os
import subprocess
import sys

import pytest

from tradestore_chaos.scenarios import toctou_waitpoint
from tradestore_harness import proclocks
from tradestore_harness.result import PASS

from .test_chaos import SEED, describe
from .test_hooks import campaign

pytestmark = pytest.mark.skipif(not os.path.exists("/proc/locks"), reason="needs Linux /proc/locks")


def test_a_process_blocked_in_a_blocking_flock_is_listed_as_waiting(tmp_path):
    path = str(tmp_path / "trades.lock")
    fd = os.open(path, os.O_RDWR | os.O_CREAT)
    fcntl.flock(fd, fcntl.LOCK_EX)
    code = f"import fcntl, os, sys; fd = os.open({path!r}, os.O_RDWR); print('go', flush=True); fcntl.flock(fd, fcntl.LOCK_EX)"
    rival = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert rival.stdout.readline().strip() == "go"
        while rival.pid not in (proclocks.waiting(path) or set()):  # it blocks a moment after printing
            assert rival.poll() is None
        held = [e for e in proclocks.entries(path) if not e.blocked]
        assert [(e.pid, e.kind) for e in held] == [(os.getpid(), "FLOCK")]
        assert proclocks.waiting(str(tmp_path / "other")) == set()  # another file: nobody
    finally:
        rival.kill()
        rival.wait()
        os.close(fd)


def test_parse_reads_blocked_lines_of_the_one_file():
    text = ("1: FLOCK  ADVISORY  WRITE 10 fe:00:77 0 EOF\n"
            "1: -> FLOCK  ADVISORY  WRITE 11 fe:00:77 0 EOF\n"
            "1:  -> FLOCK  ADVISORY  WRITE 12 fe:00:77 0 EOF\n"
            "2: POSIX  ADVISORY  WRITE 13 fe:00:78 0 EOF\n"
            "garbage\n")
    assert [(e.pid, e.blocked) for e in proclocks.parse(text, "fe:00:77")] == [(10, False), (11, True), (12, True)]
    assert proclocks.entries("/nonexistent", "/nonexistent/locks") is None


def test_a_round_whose_rival_was_never_seen_waiting_is_not_proven():
    holder_stop = {"ev": "waitpoint", "pid": 1}
    assert toctou_waitpoint._exercised([holder_stop, {"ev": "rivals", "seen": {"2": "blocked"}}], [2]) is None
    assert toctou_waitpoint._exercised([holder_stop, {"ev": "contended", "pid": 2}], [2]) is None
    missing = toctou_waitpoint._exercised([holder_stop, {"ev": "rivals", "seen": {"2": "signalled"}}], [2])
    assert "1 of 1 rivals were never seen waiting" in missing  # it returned, but never waited
    assert "never reached its commit" in toctou_waitpoint._exercised([], [2])


def test_a_correct_blocking_flock_store_gets_its_race_exercised_every_round():
    run = campaign("tests.blocking_stores:BlockingFlockStore", "toctou-waitpoint")
    result = run.results[0]
    assert result.verdict == PASS, describe(run) + str(result.unproven)
    assert "in 3/3 rounds" in result.notes[-1], result.notes


def test_a_racy_blocking_flock_store_is_caught_in_every_round():
    run = campaign("tests.blocking_stores:BlockingFlockRacyStore", "toctou-waitpoint", seed=SEED)
    rounds = {v.detail.split(" ")[0].rstrip(":") for v in run.results[0].violations
              if v.property in ("duplicate-open-symbol", "position-cap")}
    assert rounds == {"round1", "round2", "round3"}, describe(run)


def test_the_barrier_races_catch_a_store_that_checks_before_it_locks_without_a_wait_point():
    # The idiom store has no wait-point of the harness: the read barrier (every racer holds the
    # version it opened outside the lock) makes every racer decide on the same stale state.
    run = campaign("tests.idioms.open_flock:CheckOutsideLock", "race-duplicate")
    found = [v.detail for v in run.results[0].violations if v.property == "duplicate-open-symbol"]
    assert any("racing opens succeeded, at most 1 allowed" in d for d in found), describe(run)


def test_waiters_of_open_file_description_locks_are_counted_without_a_pid(tmp_path):
    # The kernel lists an F_OFD_SETLKW waiter with pid -1: it can be counted, not named.
    lock = tmp_path / "own.lock"
    lock.write_text("")
    st = os.stat(lock)
    key = proclocks.key_of(st.st_dev, st.st_ino)
    locks = tmp_path / "locks"
    locks.write_text(f"1: OFDLCK ADVISORY  WRITE -1 {key} 0 EOF\n"
                     f"1: -> OFDLCK ADVISORY  WRITE -1 {key} 0 EOF\n"
                     f"1: -> FLOCK  ADVISORY  WRITE 42 {key} 0 EOF\n"
                     "2: -> POSIX  ADVISORY  WRITE 43 fe:00:1 0 EOF\n")
    assert proclocks.waiting_for({(st.st_dev, st.st_ino)}, str(locks)) == ({42}, 1)
    assert proclocks.waiting_for(set(), str(locks)) == (set(), 0)
    assert proclocks.waiting_for({(st.st_dev, st.st_ino)}, str(tmp_path / "none")) is None
