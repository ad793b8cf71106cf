"""Prove the prover: every checker fails on a hand-made bad history, and passes a good one."""

from __future__ import annotations

import json

from tradestore_harness import checkers
from tradestore_harness.history import HistoryWriter, Interval, Op, lock_intervals, operations, read_events


def op(id, f, args, outcome="ok", value=None, t0=0.0, t1=1.0, worker="w0", pid=1, error=None):
    return Op(id, worker, pid, f, args, t0, outcome, t1 if outcome != "unknown" else None, value, error)


def trade(id, symbol="BTC", status="OPEN", **extra):
    return {"id": id, "symbol": symbol, "status": status, "partial_exits": [], "stop_price": 90.0, **extra}


def props(findings):
    return {p for p, _ in findings}


GOOD = json.dumps({"schema": 1, "next_id": 2, "trades": [trade("T001")]}).encode()


def test_log_parses_flags_torn_empty_nan_and_wrong_shape():
    assert checkers.check_log_parses({"ok": GOOD}) == []
    for bad in (GOOD[: len(GOOD) // 2], b"", b'{"trades": [], "x": NaN}', b"[]", b'{"trades": [1]}'):
        assert props(checkers.check_log_parses({"v": bad})) == {"log-parses"}, bad


def test_acknowledged_open_missing_from_final_log_is_caught():
    opened = op("w0-0", "open", ["BTC"], value={"id": "T001", "symbol": "BTC"})
    assert checkers.check_acknowledged([opened], [trade("T001")]) == []
    assert props(checkers.check_acknowledged([opened], [])) == {"ack-durable"}
    # an open that was cut off by a kill may be absent
    cut = op("w0-1", "open", ["ETH"], outcome="unknown")
    assert checkers.check_acknowledged([cut], []) == []


def test_acknowledged_close_partial_and_update_must_show():
    close = op("c", "close", ["T001", 100.0], value={"id": "T001"})
    partial = op("p", "partial", ["T001", 0.5, 100.0], value={"id": "T001"})
    update = op("u", "update", ["T001", {"stop_price": 95.0}], value={"id": "T001"})
    still_open = [trade("T001")]
    found = checkers.check_acknowledged([partial, update, close], still_open)
    assert len(found) == 3 and props(found) == {"ack-durable"}
    done = [trade("T001", status="CLOSED", stop_price=95.0, partial_exits=[{}])]
    assert checkers.check_acknowledged([partial, update, close], done) == []


def test_duplicates_and_rejected_writes_are_caught():
    opened = op("w0-0", "open", ["BTC"], value={"id": "T001"})
    assert checkers.check_no_duplicates([opened], [trade("T001", notes="w0-0")]) == []
    twice = [trade("T001", notes="w0-0"), trade("T001", notes="x")]
    assert "no-duplicate-trade" in props(checkers.check_no_duplicates([opened], twice))
    token_twice = [trade("T001", notes="w0-0"), trade("T002", notes="w0-0")]
    assert props(checkers.check_no_duplicates([opened], token_twice)) == {"no-duplicate-trade"}
    failed = op("w0-0", "open", ["BTC"], outcome="fail", error="RiskRejected")
    assert props(checkers.check_no_duplicates([failed], [trade("T001", notes="w0-0")])) == {"rejected-writes-nothing"}


def test_ids_must_be_unique_increasing_and_in_real_time_order():
    good = {"next_id": 3, "trades": [trade("T001"), trade("T002", "ETH")]}
    assert checkers.check_ids([], good) == []
    assert props(checkers.check_ids([], {"next_id": 3, "trades": [trade("T002"), trade("T001", "ETH")]})) == {"ids-unique-increasing"}
    assert props(checkers.check_ids([], {"next_id": 2, "trades": [trade("T001"), trade("T002", "ETH")]})) == {"ids-unique-increasing"}
    first = op("a", "open", [], value={"id": "T002"}, t0=0.0, t1=1.0)
    later = op("b", "open", [], value={"id": "T001"}, t0=2.0, t1=3.0)
    assert props(checkers.check_ids([first, later], good)) == {"ids-unique-increasing"}


def test_state_over_cap_or_with_duplicate_open_symbol_is_caught():
    doc = {"trades": [trade("T001", "BTC"), trade("T002", "btc "), trade("T003", "ETH", status="CLOSED")]}
    assert props(checkers.check_state("v", doc, 2)) == {"duplicate-open-symbol"}
    assert props(checkers.check_state("v", doc, 1)) == {"duplicate-open-symbol", "position-cap"}
    assert checkers.check_state("v", {"trades": [trade("T001")]}, 1) == []


def test_overlapping_critical_sections_are_caught():
    apart = [Interval(1, "a", 0.0, 1.0), Interval(2, "b", 1.5, 2.0)]
    assert checkers.check_mutual_exclusion(apart, []) == []
    nested = [Interval(1, "a", 0.0, 10.0), Interval(2, "b", 1.0, 2.0), Interval(3, "c", 3.0, 4.0)]
    assert len(checkers.check_mutual_exclusion(nested, [])) == 2
    died_holding = [Interval(1, "a", 0.0, None), Interval(2, "b", 5.0, 6.0)]
    assert props(checkers.check_mutual_exclusion(died_holding, [{"t": 7.0}])) == {"mutual-exclusion"}


def test_sentinel_collision_and_unlocked_commit_are_caught():
    collision = [{"ev": "sentinel-collision", "w": "b", "pid": 2, "t": 1.0}]
    assert props(checkers.check_mutual_exclusion([], collision)) == {"mutual-exclusion"}
    unlocked = [{"ev": "commit", "w": "b", "pid": 2, "t": 1.0, "locked": False}]
    assert props(checkers.check_mutual_exclusion([], unlocked)) == {"mutual-exclusion"}
    locked = [{"ev": "commit", "w": "b", "pid": 2, "t": 1.0, "locked": True}]
    assert checkers.check_mutual_exclusion([], locked) == []


def test_derived_files_must_equal_the_rebuild_of_the_version_they_name():
    def doc(sha, value, stamp="x"):
        return {"v": value, "last_updated": stamp, "_meta": {"source": {"sha256": sha}, "generated_at": stamp}}

    rebuilds = {"aa": {"p.json": doc("aa", 1), "e.json": doc("aa", 2)}}
    good = {"p.json": doc("aa", 1, "later"), "e.json": doc("aa", 2, "later")}
    assert checkers.check_derived("s", good, rebuilds) == []
    drifted = {"p.json": doc("aa", 1), "e.json": doc("aa", 3)}
    assert props(checkers.check_derived("s", drifted, rebuilds)) == {"derived-consistent"}
    mixed = {"p.json": doc("aa", 1), "e.json": doc("bb", 2)}
    assert props(checkers.check_derived("s", mixed, rebuilds, "derived-heals")) == {"derived-heals"}
    never = {"p.json": doc("cc", 1), "e.json": doc("cc", 2)}
    assert props(checkers.check_derived("s", never, rebuilds)) == {"derived-consistent"}
    missing = {"p.json": None, "e.json": doc("aa", 2)}
    assert props(checkers.check_derived("s", missing, rebuilds)) == {"derived-consistent"}


def test_history_pairs_outcomes_marks_cut_calls_unknown_and_skips_a_torn_line(tmp_path):
    history = HistoryWriter(tmp_path, "w0")
    history.record("invoke", op="a", f="open", args=[])
    history.record("lock")
    history.record("ok", op="a", value={"id": "T001"})
    history.record("unlock")
    history.record("invoke", op="b", f="close", args=["T001"])
    history.close()
    with open(history.path, "a") as handle:
        handle.write('{"ev": "ok", "op": "b", "t"')  # torn by a kill
    events = read_events(tmp_path)
    ops = {o.id: o for o in operations(events)}
    assert ops["a"].outcome == "ok" and ops["b"].outcome == "unknown"
    [interval] = lock_intervals(events)
    assert interval.end is not None and interval.end >= interval.start


def test_a_killed_holder_holds_the_lock_only_until_its_kill_was_recorded():
    events = [
        {"ev": "lock", "w": "a", "pid": 1, "t": 1.0},
        {"ev": "kill", "w": "nemesis", "pid": 9, "t": 2.0, "target_pid": 1},
        {"ev": "lock", "w": "a", "pid": 1, "t": 2.1},  # slipped in before the signal landed
        {"ev": "lock", "w": "b", "pid": 2, "t": 2.5},
        {"ev": "unlock", "w": "b", "pid": 2, "t": 3.0},
    ]
    intervals = lock_intervals(events)
    assert [(i.pid, i.start, i.end) for i in intervals] == [(1, 1.0, 2.0), (1, 2.1, 2.1), (2, 2.5, 3.0)]
    assert checkers.check_mutual_exclusion(intervals, events) == []
    late = events[:2] + [{"ev": "lock", "w": "b", "pid": 2, "t": 1.5}]
    assert props(checkers.check_mutual_exclusion(lock_intervals(late), late)) == {"mutual-exclusion"}


def test_ids_not_of_the_t_number_form_are_caught():
    assert props(checkers.check_ids([], {"trades": [trade("X1")]})) == {"ids-unique-increasing"}
    assert checkers.id_number("T007") == 7 and checkers.id_number(7) is None
