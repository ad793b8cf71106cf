"""crash-points: every crash point is reached, our store recovers from each, a torn writer fails."""

from __future__ import annotations

import os

from tradestore_chaos.scenarios import crash_points
from tradestore_harness import fsworkload as fw
from tradestore_harness.context import ScenarioContext
from tradestore_harness.fsfaults import FsCall
from tradestore import TradeStore


class InPlaceStore(TradeStore):
    """Negative control: truncates the log and rewrites it in place (through ``os``, so the
    shim sees it). A crash between the truncate and the write leaves an empty or torn log."""

    def _write_log(self, data: bytes) -> os.stat_result:
        fd = os.open(self.trade_log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            os.write(fd, data)
            os.fsync(fd)
            return os.fstat(fd)
        finally:
            os.close(fd)


def in_place(trade_log, lock_file=None, **limits):
    return InPlaceStore(trade_log, lock_file, **limits)


def test_crash_plan_covers_every_call_torn_writes_and_every_return():
    calls = [FsCall(0, "open", "/d/t"), FsCall(1, "write", "/d/t", data=b"abcd", offset=0),
             FsCall(2, "fsync", "/d/t"), FsCall(3, "write", "/d/u", data=b"x", offset=0)]
    rec = {"calls": calls, "spans": [(0, 3), (3, 4)], "states": ["s0", "s1", "s2"]}
    plan = crash_points.crash_plan(rec)
    assert plan == [(0, "crash"), (1, "crash"), (1, "torn"), (2, "crash"), (3, "crash"),
                    (0, "return"), (1, "return")]
    # with the files each prefix leaves: a crash that leaves the same files in the same
    # operation as the point before it is not run again (here the fsync changed nothing)
    views = ["empty", "t", "t+abcd", "t+abcd", "t+abcd+u"]
    assert crash_points.crash_plan(rec, views) == [(0, "crash"), (1, "crash"), (1, "torn"), (2, "crash"),
                                                   (3, "crash"), (0, "return"), (1, "return")]
    views = ["empty", "t", "t", "t", "t"]  # open(0) makes t; write and fsync change nothing visible
    assert crash_points.crash_plan(rec, views) == [(0, "crash"), (1, "crash"), (1, "torn"),
                                                   (3, "crash"), (0, "return"), (1, "return")]


def test_allowed_states_before_during_and_after_an_operation():
    states = ["s0", "s1", "s2"]
    spans = [(0, 3), (3, 5)]
    assert fw.allowed_after_calls(spans, states, 0) == (0, ["s0"])  # nothing ran yet
    assert fw.allowed_after_calls(spans, states, 2) == (0, ["s0", "s1"])  # op 0 in flight
    assert fw.allowed_after_calls(spans, states, 3) == (1, ["s1"])  # op 0 done: acknowledged
    assert fw.allowed_after_calls(spans, states, 5) == (2, ["s2"])


def _ctx(tmp_path, target, seed=3):
    return ScenarioContext(target=target, seed=seed, quick=True, duration=None, writers=1, workdir=tmp_path)


def test_crash_points_pass_on_our_store_at_every_point(tmp_path):
    result = crash_points.run(_ctx(tmp_path, "tradestore"))
    assert result.violations == [], f"seed {result.seed}: {result.violations}"
    assert result.crash_points >= 40 and result.kills == result.crash_points


def test_crash_points_catch_a_store_that_rewrites_the_log_in_place(tmp_path):
    workloads = [[("open", "XRP")], [("update", "base"), ("close", "base")]]
    report = fw.in_worker(crash_points.crash_worker, ("tests.test_crash_points:in_place", str(tmp_path), workloads),
                          lambda _msg: None)
    props = dict(report["violations"])
    assert "log-parses" in props, report["violations"]
    assert "acknowledged trades unreadable: T001" in props["log-parses"]


def test_kills_cannot_see_a_missing_fsync(tmp_path):
    # Why power-loss exists: a store that never fsyncs is atomic, so every crash point passes.
    workloads = [[("open", "XRP"), ("close", "base")]]
    for target in ("unsafe-no-fsync", "unsafe-no-dir-fsync"):
        report = fw.in_worker(crash_points.crash_worker, (target, str(tmp_path / target), workloads),
                              lambda _msg: None)
        assert report["violations"] == [] and report["crash_points"] > 12, (target, report["violations"])
