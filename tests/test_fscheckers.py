"""The file-system scenarios' checkers, one hand-made observation at a time.

Pure functions over frozen observations: each verdict is pinned here, so a checking branch that
stopped firing (or fired on a good state) is noticed even when no control happens to reach it.
"""

from __future__ import annotations

from tradestore_harness import fscheckers as fc

ETH = {"id": "T001", "symbol": "ETH", "status": "CLOSED"}
LINK = {"id": "T002", "symbol": "LINK", "status": "OPEN"}
XRP = {"id": "T003", "symbol": "XRP", "status": "OPEN"}
BEFORE = [ETH, LINK]
AFTER_OPEN = [ETH, LINK, XRP]


def _step(kind="open", outcome="fail", record=None, failed=(), faulted=False, before=BEFORE, after=BEFORE,
          recorded=(BEFORE, AFTER_OPEN), target=None) -> dict[str, list[str]]:
    found = fc.check_faulted_step(fc.FaultedStep("step", kind, outcome, record, frozenset(failed), faulted,
                                                 list(before), list(after), recorded, target))
    out: dict[str, list[str]] = {}
    for prop, detail in found:
        out.setdefault(prop, []).append(detail)
    return out


# -- one operation under an injected fault ----------------------------------------------------


def test_an_ok_answer_that_is_in_the_log_as_returned_is_accepted():
    assert _step(outcome="ok", record=XRP, after=AFTER_OPEN) == {}


def test_an_ok_answer_although_an_fsync_failed_is_fault_surfaced():
    found = _step(outcome="ok", record=XRP, failed={"fsync", "dirfsync"}, faulted=True, after=AFTER_OPEN)
    assert found == {"fault-surfaced": ["step: returned ok although ['dirfsync', 'fsync'] failed"]}


def test_only_failed_syncs_must_reach_the_caller():
    # a failed write, rename or open leaves its trace in the files, which the state checks see
    assert fc.MUST_SURFACE == {"fsync", "fdatasync", "dirfsync"}


def test_an_acknowledged_trade_missing_from_the_log_is_ack_durable():
    assert _step(outcome="ok", record=XRP) == {"ack-durable": ["step: acknowledged T003 XRP is missing"]}


def test_an_acknowledged_trade_stored_differently_is_ack_durable():
    found = _step(outcome="ok", record=XRP, after=[ETH, LINK, dict(XRP, status="CLOSED")])
    assert found == {"ack-durable": ["step: acknowledged T003 XRP is stored differently"]}


def test_an_ok_operation_that_lost_another_trade_is_ack_durable():
    found = _step(outcome="ok", record=XRP, after=[ETH, XRP])
    assert found == {"ack-durable": ["step: other trades changed or lost: T002 LINK OPEN (missing)"]}


def test_an_ok_update_may_change_only_its_own_trade():
    updated = dict(LINK, notes="trailed")
    assert _step("update", "ok", updated, after=[ETH, updated]) == {}
    found = _step("update", "ok", updated, after=[dict(ETH, status="OPEN"), updated])
    assert found == {"ack-durable": ["step: other trades changed or lost: T001 ETH CLOSED (older version)"]}


def test_a_plain_rejection_must_leave_the_log_alone():
    assert _step("close") == {}
    found = _step("close", after=[ETH])
    assert found == {"state-before-or-after": ["step: a rejected operation changed the log"]}


def test_a_failed_operation_on_the_recorded_path_must_give_before_or_after():
    for after in (BEFORE, AFTER_OPEN):
        assert _step(failed={"fsync"}, faulted=True, after=after) == {}
    lost = _step(failed={"fsync"}, faulted=True, after=[ETH])
    assert lost == {"ack-durable": ["step: neither before nor after; lost T002 LINK OPEN (missing)"]}
    mixed = _step(failed={"fsync"}, faulted=True, after=[ETH, LINK, XRP, dict(XRP, id="T004")])
    assert mixed == {"state-before-or-after": ["step: neither before nor after"]}


def test_off_the_recorded_path_a_failed_open_may_add_one_trade_and_change_nothing_else():
    current = [ETH, dict(LINK, notes="trailed")]  # an earlier op failed: only the shape can be judged
    judge = dict(faulted=True, before=current, recorded=None)
    assert _step(after=current, **judge) == {}
    assert _step(after=current + [XRP], **judge) == {}
    two = _step(after=current + [XRP, dict(XRP, id="T004")], **judge)
    assert two == {"state-before-or-after": ["step: the failed operation changed other trades: []"]}
    other = _step(after=[ETH, LINK, XRP], **judge)
    assert other == {"state-before-or-after": [
        "step: the failed operation changed other trades: ['T002 LINK OPEN (older version)']"]}


def test_off_the_recorded_path_a_failed_update_may_change_only_its_target():
    current = [dict(ETH, notes="x"), LINK]
    judge = dict(kind="update", faulted=True, before=current, recorded=None, target="T002")
    assert _step(after=[current[0], dict(LINK, notes="trailed")], **judge) == {}
    found = _step(after=[ETH, LINK], **judge)
    assert found == {"state-before-or-after": [
        "step: the failed operation changed other trades: ['T001 ETH CLOSED (older version)']"]}
    assert list(_step(after=current + [XRP], **judge)) == ["state-before-or-after"]  # no new trade


def test_a_reconcile_must_not_touch_the_log_nor_hide_a_failure():
    assert _step("reconcile", "ok") == {}
    assert _step("reconcile", failed={"dirfsync"}, faulted=True) == {}
    found = _step("reconcile", "ok", failed={"dirfsync"}, faulted=True, after=[ETH])
    assert found == {"state-before-or-after": ["step: a reconcile changed the trade log"],
                     "fault-surfaced": ["step: reported ok although ['dirfsync'] failed"]}


# -- after the fault cleared --------------------------------------------------------------------


def test_the_next_call_must_work_and_change_nothing_else():
    probe = {"id": "T003", "symbol": "PROBE"}
    assert fc.check_after_fault(fc.AfterFault("here", None, BEFORE, BEFORE + [probe])) == []
    assert fc.check_after_fault(fc.AfterFault("here", "read-only", BEFORE)) == [
        ("next-call-succeeds", "here: the open after the fault cleared failed: read-only")]
    changed = fc.check_after_fault(fc.AfterFault("here", None, BEFORE, [ETH, dict(LINK, status="CLOSED"), probe]))
    assert changed == [("next-call-succeeds", "here: the open after the fault cleared also changed "
                                              "['T002 LINK OPEN (older version)']")]
    lingering = fc.check_after_fault(fc.AfterFault("here", None, BEFORE, BEFORE + [XRP, probe]))
    assert [p for p, _ in lingering] == ["next-call-succeeds"]  # a failed op's trade came back
    healed = fc.check_after_fault(fc.AfterFault("here", None, BEFORE, BEFORE + [probe], derived="stats differs"))
    assert healed == [("derived-heals", "here: after the fault cleared one reconcile left stats differs")]


# -- recovery after a crash or a power cut -------------------------------------------------------


def test_a_recovery_must_find_a_readable_allowed_state():
    ok = fc.Recovery("cut", AFTER_OPEN, [AFTER_OPEN], AFTER_OPEN)
    assert fc.check_recovery(ok) == []
    torn = fc.Recovery("cut", AFTER_OPEN, [AFTER_OPEN], None, unreadable="trades.json does not parse")
    assert fc.check_recovery(torn) == [("log-parses", "cut: trades.json does not parse; acknowledged trades "
                                                      "unreadable: T001 ETH CLOSED (missing), T002 LINK OPEN "
                                                      "(missing), T003 XRP OPEN (missing)")]
    lost = fc.Recovery("cut", AFTER_OPEN, [AFTER_OPEN], BEFORE)
    assert fc.check_recovery(lost) == [("ack-durable", "cut: lost T003 XRP OPEN (missing)")]
    extra = fc.Recovery("cut", BEFORE, [BEFORE, AFTER_OPEN], AFTER_OPEN + [dict(XRP, id="T004")])
    assert [p for p, _ in fc.check_recovery(extra)] == ["state-before-or-after"]


def test_a_recovery_must_heal_the_derived_files_and_accept_the_next_write():
    base = dict(where="crash", acked=BEFORE, allowed=[BEFORE], found=BEFORE)
    assert fc.check_recovery(fc.Recovery(**base, derived="one reconcile left x")) == [
        ("derived-heals", "crash: one reconcile left x")]
    assert fc.check_recovery(fc.Recovery(**base, probe="Rejected: recovery mode")) == [
        ("recovers-writable", "crash: the next open after recovery failed: Rejected: recovery mode")]
    assert fc.check_recovery(fc.Recovery(**base, probe_changed=True)) == [
        ("recovers-writable", "crash: the open after recovery changed other trades")]


# -- the fault point itself ---------------------------------------------------------------------


def test_a_fault_point_the_run_did_not_meet_as_recorded_is_a_failure_not_a_note():
    assert fc.check_point_reached(fc.PointReached("p", "fsync", "fsync")) == []
    never = fc.check_point_reached(fc.PointReached("p", "fsync", None))
    other = fc.check_point_reached(fc.PointReached("p", "fsync", "write"))
    assert [p for p, _ in never + other] == ["calls-repeatable", "calls-repeatable"]
    assert "never reached the fault point" in never[0][1]
    assert "the recording had fsync at this index, the run met write" in other[0][1]


def test_a_store_whose_writes_are_not_seen_is_not_applicable_not_failed():
    assert fc.not_observable(fc.Observability(())) is None
    reason = fc.not_observable(fc.Observability(("trades.json",)))
    assert reason.startswith("the store changed trades.json through something")
