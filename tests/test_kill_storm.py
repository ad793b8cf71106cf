"""kill-storm: writers stay productive under the store's rules, kills that cut a write are
counted from the lock-hold records (too few: NOT PROVEN), valid operations must succeed, and
the storm shares no multiprocessing lock a SIGKILL could leave taken."""

from __future__ import annotations

import os

import pytest

from tradestore_harness import generator, processes
from tradestore_harness.history import writes_cut_by_kills
from tradestore_harness.result import NOT_PROVEN, PASS

from .test_chaos import SEED, campaign, describe


def ev(kind, t, pid=1, **data):
    return {"ev": kind, "t": t, "pid": pid, "w": "w0", **data}


def test_a_kill_cuts_a_write_only_between_its_lock_and_its_result():
    cut_in_lock = [ev("invoke", 1, f="open", op="a"), ev("lock", 2), ev("kill", 3, pid=0, target_pid=1)]
    cut_after_commit = [ev("invoke", 1, f="close", op="a"), ev("lock", 2), ev("unlock", 3),
                        ev("kill", 4, pid=0, target_pid=1)]
    before_lock = [ev("invoke", 1, f="open", op="a"), ev("kill", 2, pid=0, target_pid=1)]
    stale_lock = [ev("lock", 1), ev("unlock", 2), ev("invoke", 3, f="open", op="b"), ev("kill", 4, pid=0, target_pid=1)]
    after_result = [ev("invoke", 1, f="open", op="a"), ev("lock", 2), ev("ok", 3, op="a"), ev("kill", 4, pid=0, target_pid=1)]
    a_read = [ev("invoke", 1, f="read", op="a"), ev("lock", 2), ev("kill", 3, pid=0, target_pid=1)]
    assert writes_cut_by_kills(cut_in_lock) == (1, 1)
    assert writes_cut_by_kills(cut_after_commit) == (1, 1)
    for events in (before_lock, stale_lock, after_result, a_read):
        assert writes_cut_by_kills(events) == (1, 0), events


def test_the_lifecycle_stream_is_seeded_and_every_trade_is_opened_then_closed():
    def first(seed, worker="w0", life=0, n=60):
        stream = generator.lifecycle_ops(seed, worker, life)
        return [next(stream) for _ in range(n)]

    assert first(7) == first(7) != first(8) and first(7, life=1) != first(7)
    fs = [i["f"] for i in first(7)]
    assert fs[0] == "open" and {"partial", "update", "close"} <= set(fs)
    opens = [n for n, f in enumerate(fs) if f == "open"]
    for a, b in zip(opens, opens[1:]):  # exactly one close between two opens: a trade at a time
        assert fs[a + 1:b].count("close") == 1 and fs[b - 1] == "close"
    assert set(generator.own_symbols(0, 4)).isdisjoint(generator.own_symbols(1, 4))
    assert generator.own_symbols(11, 12) == generator.SYMBOLS  # more writers than symbols: share


def test_our_store_keeps_writing_through_the_storm_and_kills_cut_writes():
    run = campaign("tradestore", "kill-storm", duration=2.0)
    result = run.results[0]
    assert result.verdict == PASS, describe(run) + str(result.unproven)
    assert result.rejected == 0 and result.ok > 20  # every operation valid, and accepted
    assert result.writes_cut >= 1 and "kills cut a write in progress" in result.notes[0]


@pytest.mark.parametrize("target", ["tests.liveness_stores:RefusesPartialCloseStore",
                                    "tests.liveness_stores:RefusesShortStopMoveStore"])
def test_a_store_refusing_valid_operations_is_caught(target):
    run = campaign(target, "kill-storm", duration=1.5)
    assert "valid-ops-succeed" in run.violated(), describe(run)


def test_a_storm_whose_kills_cut_no_write_is_not_proven(monkeypatch):
    from tradestore_chaos.scenarios import kill_storm

    monkeypatch.setattr(kill_storm, "writes_cut_by_kills", lambda events: (12, 0))
    run = campaign("tradestore", "kill-storm", duration=0.5)
    result = run.results[0]
    assert result.verdict == NOT_PROVEN and "only 0 of 12 kills cut a write" in result.unproven[0]
    assert kill_storm.cut_floor(12) == 1 and kill_storm.cut_floor(10_000) == 1000


def test_the_storm_shares_no_multiprocessing_lock_with_its_workers(monkeypatch):
    # A worker killed inside Event.is_set() leaves the event's lock taken and hangs the parent
    # and every restarted worker. The storm must run with no such object at all.
    real = processes.context

    class NoSharedLocks:
        def __init__(self, ctx):
            self._ctx = ctx

        def Process(self, *args, **kwargs):
            return self._ctx.Process(*args, **kwargs)

        def __getattr__(self, name):
            raise AssertionError(f"kill-storm created a multiprocessing {name}")

    monkeypatch.setattr("tradestore_harness.workers.context", lambda *a, **k: NoSharedLocks(real(*a, **k)))
    run = campaign("tradestore", "kill-storm", duration=0.5)
    assert not any(v.property == "harness-error" for r in run.results for v in r.violations), describe(run)


def test_forkserver_is_offered_and_unknown_methods_are_refused():
    assert processes.context("forkserver").get_start_method() == "forkserver"
    with pytest.raises(ValueError, match="start method 'fork'"):
        processes.context("fork")


@pytest.mark.skipif(os.environ.get("CHAOS_LONG_STORM") != "1", reason="set CHAOS_LONG_STORM=1: about 50 minutes")
@pytest.mark.slow
def test_long_kill_storm_loses_nothing():
    from tradestore_chaos import scenarios
    from tradestore_chaos.campaign import Campaign

    run = Campaign({"kill-storm": scenarios.available()["kill-storm"]}, "tradestore", SEED, writers=4,
                   duration=float(os.environ.get("CHAOS_LONG_STORM_S", "3000")), start_method="forkserver")
    run.run()
    result = run.results[0]
    assert result.kills >= 10_000 and result.verdict == PASS, describe(run)

