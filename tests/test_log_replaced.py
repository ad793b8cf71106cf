"""log-replaced and the three mutants the new faults exist for: each mutant is our real store
(or reconciler) with one plausible bug that no kill, crash point or I/O error exposes; each is
caught here or by io-errors' short writes; our store and a stranger's pass."""

from __future__ import annotations

import os

import pytest

from tradestore_chaos.scenarios import io_errors, log_replaced
from tradestore_harness import fsworkload as fw
from tradestore_harness.context import ScenarioContext
from tradestore_harness.targets import resolve_target

SEED = int(os.environ.get("CHAOS_TEST_SEED", "20261128"))


def _run(tmp_path, target):
    ctx = ScenarioContext(target=target, seed=SEED, quick=True, duration=None, writers=1, workdir=tmp_path)
    return log_replaced.run(ctx)


@pytest.mark.parametrize("target", ["tradestore", "tests.ordinary_store:make_store"])
def test_a_correct_store_keeps_the_other_writer_s_change_and_derives_what_it_names(tmp_path, target):
    result = _run(tmp_path, target)
    assert result.verdict == "PASS", f"seed {SEED}: {result.violations}"
    assert result.crash_points >= len(log_replaced.SECOND_OPS)  # replacements made
    if target == "tradestore":
        assert result.crash_points > 10  # and one per open of the reconcile


def test_a_cache_that_ignores_the_inode_loses_the_same_size_change(tmp_path):
    result = _run(tmp_path, "unsafe-cache-ignores-inode")
    props = {v.property: v.detail for v in result.violations}
    assert list(props) == ["ack-durable"], result.violations
    assert f"{len(log_replaced.SECOND_OPS)} case(s)" in props["ack-durable"]
    assert "set T002 stop to 18.5" in props["ack-durable"] and "final log has 19.0" in props["ack-durable"]


def test_a_reconciler_that_hashes_one_read_and_derives_from_another_is_caught(tmp_path):
    result = _run(tmp_path, "unsafe-reconcile-two-reads")
    props = {v.property: v.detail for v in result.violations}
    assert list(props) == ["derived-consistent"], result.violations
    assert "differs from a fresh rebuild of log version" in props["derived-consistent"]


def test_the_other_writer_s_file_has_the_same_size_and_mtime_but_a_new_inode(tmp_path):
    fw.setup_baseline(resolve_target("tradestore"), str(tmp_path), with_reconcile=False)
    log, lock, _ = fw.paths(str(tmp_path))
    before = os.stat(log)
    data = open(log, "rb").read()
    moved = log_replaced._STOP.sub(rb"\g<1>18.5", data, count=1)
    assert moved != data and len(moved) == len(data)
    log_replaced.replace_with(log, lock, moved, keep_mtime=True)
    after = os.stat(log)
    assert (after.st_size, after.st_mtime_ns) == (before.st_size, before.st_mtime_ns)
    assert after.st_ino != before.st_ino and open(log, "rb").read() == moved


def test_a_store_whose_log_has_no_stop_to_move_is_a_harness_error(tmp_path):
    class Odd:
        def __init__(self, log, lock=None, **limits):
            self.inner = resolve_target("tradestore")(log, lock, **limits)

        def __getattr__(self, name):
            return getattr(self.inner, name)

        def open_trade(self, symbol, direction, entry, stop, *rest):
            return self.inner.open_trade(symbol, direction, entry, stop - 0.25, *rest)

    out = {"invoked": 0, "ok": 0, "rejected": 0, "crash_points": 0, "states_checked": 0}
    found = log_replaced.same_size_round(Odd, str(tmp_path / "d"), ("open", "XRP"), out)
    assert [p for p, _ in found] == ["harness-error"] and out["crash_points"] == 0


def test_a_write_loop_that_ignores_short_writes_is_caught_by_io_errors(tmp_path):
    workloads = [[("open", "XRP")]]
    report = fw.in_worker(io_errors.io_worker, ("unsafe-ignores-short-writes", str(tmp_path), workloads),
                          lambda _m: None)
    props = dict(report["violations"])
    assert "log-parses" in props, report["violations"]
    assert "a short write at call" in props["log-parses"]


def test_the_mutants_work_as_stores_when_nothing_goes_wrong(tmp_path):
    for name in ("unsafe-ignores-short-writes", "unsafe-cache-ignores-inode", "unsafe-reconcile-two-reads"):
        store = resolve_target(name)(str(tmp_path / f"{name}.json"))
        trade = store.open_trade("ETH", "LONG", 100.0, 95.0, 110.0, 1.0)
        store.close_trade(trade["id"], 105.0, "TP")
        assert [t["status"] for t in store.get_all_trades()] == ["CLOSED"]
