"""How io-errors and crash-points turn one run into observations: whole fault points and crashes.

The checkers themselves are pinned on hand-made observations in test_fscheckers.py; these tests
run one fault point or one crashed child end to end against misbehaving stores, so the
scenario's glue (what it records, what it hands the checkers, what it counts) is checked too.
"""

from __future__ import annotations

import errno
import os

import pytest

from tradestore_chaos.scenarios import crash_points, io_errors, power_loss
from tradestore_harness import fsworkload as fw
from tradestore_harness.context import ScenarioContext
from tradestore_harness.fsfaults import CRASH_EXIT, Fault, FsCall
from tradestore_harness.powerloss import sync_dir
from tradestore import TradeStore


def test_only_failed_syncs_of_the_store_s_own_files_must_surface():
    lock = "/d/trades.json.lock"
    assert io_errors._must_surface(FsCall(0, "fsync", "/d/trades.json", injected="error"), lock)
    assert io_errors._must_surface(FsCall(0, "dirfsync", "/d", injected="error"), lock)
    assert not io_errors._must_surface(FsCall(0, "fsync", lock, injected="error"), lock)
    assert not io_errors._must_surface(FsCall(0, "fsync", "/d/trades.json", injected="short"), lock)
    for kind in ("write", "replace", "close", "unlink", "mkdir", "open"):
        assert not io_errors._must_surface(FsCall(0, kind, "/d/trades.json", injected="error"), lock)


def test_fault_points_cover_every_index_in_both_modes_each_errno_in_both_and_every_write_short_and_eintr():
    calls = [FsCall(0, "open", "/d/t"), FsCall(1, "write", "/d/t", data=b"ab"), FsCall(2, "fsync", "/d/t"),
             FsCall(3, "pwrite", "/d/l", data=b"1"), FsCall(4, "close", "/d/t")]
    points = io_errors.fault_points(calls)
    errors = [f for f in points if f.action == "error"]
    assert {(f.at, f.persistent) for f in errors} == {(i, p) for i in range(5) for p in (False, True)}
    assert {(f.errno, f.persistent) for f in errors} == {(c, p) for c in io_errors.ERRNOS for p in (False, True)}
    assert sorted((f.at, f.action) for f in points if f.action != "error") == [
        (1, "eintr"), (1, "short"), (3, "eintr"), (3, "short")]
    assert len(errors) == 5 * 2


# -- io-errors: one whole fault point, in this process, against misbehaving stores ---------------


class GarblingStore(TradeStore):
    """Control: on a failed commit, "repairs" the log by writing what it has, which is garbage."""

    def _commit(self, ledger, open_symbols_before) -> None:
        try:
            super()._commit(ledger, open_symbols_before)
        except OSError:
            with open(self.trade_log, "wb") as f:  # builtin open: the shim does not see it
                f.write(b'{"trades": [')
            raise


class StuckStore(TradeStore):
    """Control: after one I/O error it refuses every later write (a "read-only" fallback)."""

    broken = False
    raises = False

    def _commit(self, ledger, open_symbols_before) -> None:
        try:
            super()._commit(ledger, open_symbols_before)
        except OSError:
            type(self).broken = True
            raise

    def open_trade(self, *args, **kwargs):
        if type(self).broken:
            if type(self).raises:
                raise PermissionError("store is read-only after an I/O error")
            return {"error": "store is read-only after an I/O error"}
        return super().open_trade(*args, **kwargs)


class MeddlingStore(TradeStore):
    """Control: its first open after an I/O error also closes the open LINK trade."""

    broken = False

    def _commit(self, ledger, open_symbols_before) -> None:
        try:
            super()._commit(ledger, open_symbols_before)
        except OSError:
            type(self).broken = True
            raise

    def open_trade(self, *args, **kwargs):
        record = super().open_trade(*args, **kwargs)
        if type(self).broken and args[0] == fw.PROBE[0]:
            type(self).broken = False
            self.close_trade("T002", 21.0, "meddled")
        return record


def _fault_point(tmp_path, factory, ops, kind="fsync"):
    """Run io-errors' judgement of one fault point: the first ``kind`` call fails once."""
    ours = fw.resolve("tradestore")
    wdir = str(tmp_path / "w")
    ops, snapshot = fw.prepare(ours, wdir, ops)
    rec = fw.record(ours, os.path.join(wdir, "rec"), snapshot, ops)
    index = next(c.index for c in rec["calls"] if c.kind == kind)
    findings = fw.Findings()
    out = {"invoked": 0, "ok": 0, "rejected": 0, "crash_points": 0, "synced_before": 0, "stops": 0}
    run_dir = os.path.join(wdir, "run")
    io_errors._one_run(factory, run_dir, snapshot, ops, rec, Fault(index, "error", errno.EIO),
                       "here", findings, out, io_errors.PowerCuts(run_dir, snapshot))
    return findings.by_prop, out


@pytest.fixture
def reset_controls():
    for cls in (StuckStore, MeddlingStore):
        cls.broken = False
    StuckStore.raises = False
    yield
    for cls in (StuckStore, MeddlingStore):
        cls.broken = False
    StuckStore.raises = False


def test_our_store_passes_a_fault_point_and_it_is_counted(tmp_path):
    found, out = _fault_point(tmp_path, fw.resolve("tradestore"), [("open", "XRP")])
    assert found == {}
    assert out == {"invoked": 1, "ok": 0, "rejected": 1, "crash_points": 1, "synced_before": 0, "stops": 0}


def test_a_log_left_unparseable_after_a_fault_is_log_parses(tmp_path):
    found, _ = _fault_point(tmp_path, GarblingStore, [("open", "XRP")])
    assert list(found) == ["log-parses"]
    assert found["log-parses"][0].startswith("here, after op 0 ('open', 'XRP'): trades.json (12 bytes) does not parse")


def test_a_store_that_stays_broken_after_the_fault_cleared_is_caught(tmp_path, reset_controls):
    found, _ = _fault_point(tmp_path, StuckStore, [("open", "XRP")])
    assert found == {"next-call-succeeds": [
        "here: the open after the fault cleared failed: store is read-only after an I/O error"]}


def test_a_store_that_raises_after_the_fault_cleared_is_caught(tmp_path, reset_controls):
    StuckStore.raises = True
    found, _ = _fault_point(tmp_path, StuckStore, [("open", "XRP")])
    assert found == {"next-call-succeeds": [
        "here: the open after the fault cleared failed: PermissionError: store is read-only after an I/O error"]}


def test_a_next_call_that_changes_other_trades_is_caught(tmp_path, reset_controls):
    found, _ = _fault_point(tmp_path, MeddlingStore, [("open", "XRP")])
    assert found == {"next-call-succeeds": [
        "here: the open after the fault cleared also changed ['T002 LINK OPEN (older version)']"]}


def test_after_a_failed_reconcile_one_more_reconcile_must_heal(tmp_path, monkeypatch):
    ops = [("update", "base"), ("reconcile",)]
    found, _ = _fault_point(tmp_path, fw.resolve("tradestore"), ops, kind="dirfsync")
    assert found == {}
    # the same fault point, with derived files that one reconcile does not bring back
    monkeypatch.setattr(fw, "derived_problems", lambda d: {"portfolio.json": "differs from a rebuild"})
    found, _ = _fault_point(tmp_path / "again", fw.resolve("tradestore"), ops, kind="dirfsync")
    assert found == {"derived-heals": [
        "here: after the fault cleared one reconcile left {'portfolio.json': 'differs from a rebuild'}"]}


@pytest.mark.parametrize("module", [io_errors, crash_points])
def test_the_worker_report_becomes_the_scenario_result(tmp_path, monkeypatch, module):
    report = {"violations": [("ack-durable", "lost T003"), ("log-parses", "torn")], "notes": ["n1"],
              "invoked": 7, "ok": 3, "rejected": 4, "unknown": 2, "kills": 5, "crash_points": 6}
    seen = {}

    def fake_in_worker(func, args, progress):
        seen["func"], seen["args"] = func, args
        return report

    monkeypatch.setattr(fw, "in_worker", fake_in_worker)
    ctx = ScenarioContext(target="tradestore", seed=11, quick=True, duration=None, writers=1, workdir=tmp_path)
    result = module.run(ctx)
    assert [(v.property, v.detail) for v in result.violations] == report["violations"]
    assert (result.invoked, result.ok, result.rejected, result.crash_points) == (7, 3, 4, 6)
    assert result.notes == ["n1"]
    assert seen["args"][0] == "tradestore" and seen["args"][1] == str(tmp_path)
    assert seen["func"] in (io_errors.io_worker, crash_points.crash_worker)


# -- crash-points: the verdict on one crashed child ------------------------------------------------


class RefusingProbeStore(TradeStore):
    """Control: after recovery it refuses new trades."""

    def open_trade(self, symbol, *args, **kwargs):
        if symbol == fw.PROBE[0]:
            return {"error": "recovery mode"}
        return super().open_trade(symbol, *args, **kwargs)


class MeddlingProbeStore(TradeStore):
    """Control: its first open after recovery also closes the open LINK trade."""

    def open_trade(self, symbol, *args, **kwargs):
        record = super().open_trade(symbol, *args, **kwargs)
        if symbol == fw.PROBE[0]:
            self.close_trade("T002", 21.0, "meddled")
        return record


@pytest.fixture
def recorded(tmp_path):
    """A recorded one-open workload, and a directory to put a crashed state in."""
    ours = fw.resolve("tradestore")
    wdir = str(tmp_path / "w")
    ops, snapshot = fw.prepare(ours, wdir, [("open", "XRP")])
    rec = fw.record(ours, os.path.join(wdir, "rec"), snapshot, ops)
    return ops, snapshot, rec, os.path.join(wdir, "run")


def _events(*items) -> list[dict]:
    """A crashed child's history from short items: ("invoke", k), ("ok", k), ("crash", kind)."""
    out = []
    for t, (ev, value) in enumerate(items):
        if ev == "crash":
            out.append({"ev": "crash", "w": "crash", "pid": 1, "t": t, "kind": value})
        else:
            out.append({"ev": ev, "w": "crash", "pid": 1, "t": t, "op": f"op{value}", "f": "open"})
    return out


def _verdict(factory, run_dir, ops, rec, index, action, status=CRASH_EXIT, events=None):
    out = {"violations": fw.Findings(), "notes": [], "invoked": 0, "ok": 0, "rejected": 0, "unknown": 0,
           "kills": 0, "crash_points": 0, "by_point": {}}
    if events is None:
        kind = "return" if action == "return" else rec["calls"][index].kind
        events = _events(("invoke", 0), ("crash", kind))
    crash_points._judge(factory, run_dir, ops, rec, index, action, status, events, out, 0)
    return out


def test_a_child_that_never_reached_its_crash_point_is_a_failure_not_a_note(recorded):
    ops, snapshot, rec, run_dir = recorded
    sync_dir(*snapshot, run_dir)
    out = _verdict(TradeStore, run_dir, ops, rec, 0, "crash", status=0, events=_events(("invoke", 0), ("ok", 0)))
    assert out["crash_points"] == 0 and list(out["violations"].by_prop) == ["calls-repeatable"]
    assert out["violations"].by_prop["calls-repeatable"][0].startswith(
        f"workload 0 {ops}, crash at call 0 ({rec['calls'][0].describe()}): the run never reached")


def test_a_crash_at_another_kind_of_call_is_a_failure_and_not_judged_further(recorded):
    ops, snapshot, rec, run_dir = recorded
    sync_dir(*snapshot, run_dir)
    other = "write" if rec["calls"][0].kind != "write" else "open"
    out = _verdict(TradeStore, run_dir, ops, rec, 0, "crash", events=_events(("invoke", 0), ("crash", other)))
    assert list(out["violations"].by_prop) == ["calls-repeatable"]
    assert f"the run met {other}" in out["violations"].by_prop["calls-repeatable"][0]
    assert out["crash_points"] == 1 and out["unknown"] == 1
    assert out["by_point"] == {f"crash {rec['calls'][0].kind}": 1}


def test_a_trade_lost_after_its_operation_returned_is_ack_durable(recorded):
    ops, snapshot, rec, run_dir = recorded
    sync_dir(*snapshot, run_dir)  # the baseline: the open that returned is not there
    out = _verdict(TradeStore, run_dir, ops, rec, 0, "return",
                   events=_events(("invoke", 0), ("ok", 0), ("crash", "return")))
    assert out["violations"].by_prop == {
        "ack-durable": [f"workload 0 {ops}, crash after operation 0 returned: lost T003 XRP OPEN (missing)"]}
    assert (out["invoked"], out["ok"], out["unknown"]) == (1, 1, 0)


def test_a_recovered_state_with_an_extra_trade_is_state_before_or_after(recorded):
    ops, snapshot, rec, run_dir = recorded
    sync_dir(*snapshot, run_dir)
    store = TradeStore(*fw.paths(run_dir)[:2])
    store.open_trade("XRP", "LONG", 100.0, 95.0, 110.0, 1.0, "Test", "B")
    store.open_trade("LTC", "LONG", 100.0, 95.0, 110.0, 1.0, "Test", "B")
    out = _verdict(TradeStore, run_dir, ops, rec, 0, "return")
    assert out["violations"].by_prop == {"state-before-or-after": [
        f"workload 0 {ops}, crash after operation 0 returned: recovered 4 trades, "
        "neither the state before nor after the interrupted operation"]}


def test_a_store_that_refuses_writes_after_recovery_is_recovers_writable(recorded):
    ops, snapshot, rec, run_dir = recorded
    sync_dir(*snapshot, run_dir)
    out = _verdict(RefusingProbeStore, run_dir, ops, rec, 0, "crash")
    assert out["violations"].by_prop == {"recovers-writable": [
        f"workload 0 {ops}, crash at call 0 ({rec['calls'][0].describe()}): "
        "the next open after recovery failed: Rejected: recovery mode"]}


def test_a_probe_that_changes_other_trades_is_recovers_writable(recorded):
    ops, snapshot, rec, run_dir = recorded
    sync_dir(*snapshot, run_dir)
    out = _verdict(MeddlingProbeStore, run_dir, ops, rec, 0, "crash")
    assert list(out["violations"].by_prop) == ["recovers-writable"]
    assert out["violations"].by_prop["recovers-writable"][0].endswith(
        "the open after recovery changed other trades")


def test_derived_files_one_reconcile_cannot_heal_are_derived_heals(tmp_path, monkeypatch):
    ours = fw.resolve("tradestore")
    wdir = str(tmp_path / "w")
    ops, snapshot = fw.prepare(ours, wdir, [("update", "base"), ("reconcile",)])
    rec = fw.record(ours, os.path.join(wdir, "rec"), snapshot, ops)
    run_dir = os.path.join(wdir, "run")

    def updated_but_not_reconciled():  # the update returned; the crash hit the reconcile
        sync_dir(*snapshot, run_dir)
        assert fw.run_op(ours(*fw.paths(run_dir)[:2]), run_dir, ops[0], fw.base_ids())[0] == "ok"

    last = len(rec["calls"]) - 1  # a crash inside the reconcile: derived files may be half written
    updated_but_not_reconciled()
    assert _verdict(ours, run_dir, ops, rec, last, "crash")["violations"].by_prop == {}
    monkeypatch.setattr(fw, "derived_problems", lambda d: {"stats.json": "differs"})
    updated_but_not_reconciled()
    out = _verdict(ours, run_dir, ops, rec, last, "crash")
    assert list(out["violations"].by_prop) == ["derived-heals"]
    assert out["violations"].by_prop["derived-heals"][0].endswith("one reconcile left {'stats.json': 'differs'}")
    # a crash before the reconcile began leaves the derived files alone: they are not judged
    sync_dir(*snapshot, run_dir)
    assert _verdict(ours, run_dir, ops, rec, 0, "crash")["violations"].by_prop == {}


def _unreachable_point_worker(root: str, report) -> dict:
    """In a spawned worker: a crash point past the workload's last call is never reached."""
    ours = fw.resolve("tradestore")
    ops, snapshot = fw.prepare(ours, os.path.join(root, "w"), [("open", "XRP")])
    rec = fw.record(ours, os.path.join(root, "w", "rec"), snapshot, ops)
    out = {"violations": fw.Findings(), "notes": [], "invoked": 0, "ok": 0, "rejected": 0, "unknown": 0,
           "kills": 0, "crash_points": 0, "by_point": {}}
    rec["calls"].append(rec["calls"][-1])  # describe() of the unreachable index
    beyond = len(rec["calls"]) - 1
    crash_points._run_plan(ours, ops, rec, [(beyond, "crash"), (0, "crash")], snapshot,
                           os.path.join(root, "w"), out, 0)
    out["violations"] = out["violations"].as_list()
    return out


def test_a_forked_child_that_completes_its_workload_fails_calls_repeatable(tmp_path):
    out = fw.in_worker(_unreachable_point_worker, (str(tmp_path),), lambda _m: None, timeout=60)
    assert [prop for prop, _ in out["violations"]] == ["calls-repeatable"]
    assert out["crash_points"] == 1  # only call 0 was crashed at
    assert sorted(os.listdir(tmp_path / "w")) == ["base", "rec"]  # run directories removed


@pytest.mark.parametrize("module,proof", [(io_errors, "crash_points"), (crash_points, "crash_points"),
                                          (power_loss, "states_checked")])
def test_a_run_that_hit_no_fault_is_not_proven_and_an_unseen_store_not_applicable(tmp_path, monkeypatch,
                                                                                 module, proof):
    report = {"violations": [], "notes": [], "invoked": 1, "ok": 1, "rejected": 0, "unknown": 0, "kills": 0,
              "crash_points": 0, "states_checked": 0, "cuts": 0}
    monkeypatch.setattr(fw, "in_worker", lambda func, args, progress: dict(report))
    ctx = ScenarioContext(target="tradestore", seed=11, quick=True, duration=None, writers=1, workdir=tmp_path)
    result = module.run(ctx)
    assert result.verdict == "NOT PROVEN" and not result.passed and result.unproven
    report["not_applicable"] = "unseen writes"
    result = module.run(ctx)
    assert result.verdict == "NOT APPLICABLE" and result.not_applicable == "unseen writes"
