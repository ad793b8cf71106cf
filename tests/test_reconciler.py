"""StateReconciler: heals every kind of damage in one cycle, guards a shrinking or unreadable
log without writing anything, and never touches the log."""

from __future__ import annotations

import json
import logging
import os
import random
import shutil
from datetime import datetime, timedelta, timezone

import pytest
from .test_derive_logs import make_log

from tradestore import StateReconciler
from tradestore.derive import FILES
from tradestore.reconciler import GUARD_FILE, _comparable

UTC = timezone.utc
NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
ALL = (*FILES, GUARD_FILE)
SEED = 20261128


def write_log(path, doc) -> None:
    with open(path, "w") as f:
        json.dump(doc, f, separators=(",", ":"))


def files_of(directory) -> dict[str, bytes]:
    out = {}
    for name in sorted(os.listdir(directory)):
        with open(os.path.join(directory, name), "rb") as f:
            out[name] = f.read()
    return out


@pytest.fixture
def env(tmp_path):
    """A 60-trade log, an output dir after one good cycle, and a fresh-rebuild function."""
    log = tmp_path / "trades.json"
    write_log(log, make_log(60, seed=SEED))
    out = tmp_path / "state"
    calls = []

    def rec(directory=out, **kw):
        kw.setdefault("clock", lambda: NOW)
        kw.setdefault("on_corruption", calls.append)
        return StateReconciler(log, directory, fsync=False, **kw)

    def fresh():
        scratch = tmp_path / f"fresh{len(os.listdir(tmp_path))}"
        assert rec(scratch).reconcile().ok
        return files_of(scratch)

    assert rec().reconcile().ok
    return {"log": log, "out": out, "rec": rec, "fresh": fresh, "alerts": calls}


def damage(path, how: str, rng: random.Random) -> str:
    """Apply one kind of damage; return how reconcile() should report it."""
    if how == "deleted":
        os.remove(path)
        return "missing"
    data = path.read_bytes()
    if how == "truncated":
        path.write_bytes(data[: len(data) // 2])
    elif how == "random bytes":
        path.write_bytes(bytes(rng.randrange(256) for _ in range(len(data))))
    elif how == "empty":
        path.write_bytes(b"")
    elif how == "wrong values":
        doc = json.loads(data)
        for key, value in list(doc.items()):
            if isinstance(value, bool):
                doc[key] = not value
            elif isinstance(value, (int, float)):
                doc[key] = value * 3 + 7
            elif isinstance(value, list):
                doc[key] = value[:1]
        path.write_text(json.dumps(doc))
        return "different"
    return "unreadable"


@pytest.mark.parametrize("how", ["deleted", "truncated", "random bytes", "empty", "wrong values"])
@pytest.mark.parametrize("name", ALL)
def test_any_damage_heals_in_one_cycle(env, name, how):
    rng = random.Random(SEED)
    expected_report = damage(env["out"] / name, how, rng)
    result = env["rec"]().reconcile()
    assert result.ok, result.reason
    assert result.healed == {name: expected_report}
    assert files_of(env["out"]) == env["fresh"](), f"seed {SEED}"


def test_whole_output_directory_deleted(env):
    shutil.rmtree(env["out"])
    result = env["rec"]().reconcile()
    assert set(result.healed) == set(ALL) and set(result.healed.values()) == {"missing"}
    assert files_of(env["out"]) == env["fresh"]()


def test_heal_with_a_moving_clock_differs_only_in_generation_time(env):
    ticks = iter(NOW + timedelta(seconds=s) for s in range(1, 100))
    os.remove(env["out"] / "equity.json")
    env["rec"](clock=lambda: next(ticks)).reconcile()
    fresh = env["fresh"]()
    for name in ALL:
        mine, theirs = json.loads((env["out"] / name).read_bytes()), json.loads(fresh[name])
        assert mine != theirs  # generated at another second...
        assert _comparable(mine) == _comparable(theirs)  # ...and nothing else differs


def test_every_derived_file_names_its_log_version(env):
    import hashlib

    digest = hashlib.sha256(env["log"].read_bytes()).hexdigest()
    for name in FILES:
        meta = json.loads((env["out"] / name).read_bytes())["_meta"]
        assert meta["source"] == {"sha256": digest, "trade_count": 60, "next_id": 61}
        assert meta["generated_at"] == NOW.isoformat() and meta["file"] == name


def test_a_changed_log_is_an_update_not_a_heal(env):
    doc = make_log(61, seed=SEED)
    write_log(env["log"], doc)
    result = env["rec"]().reconcile()
    assert result.ok and result.healed == {} and set(result.updated) == set(ALL)
    assert result.source.trade_count == 61


def test_verify_names_the_files_that_differ(env):
    rec = env["rec"]()
    assert rec.verify() == {}
    damage(env["out"] / "equity.json", "wrong values", random.Random(SEED))
    os.remove(env["out"] / "risk_state.json")
    assert rec.verify() == {"equity.json": "different", "risk_state.json": "missing"}


# --------------------------------------------------------------------------- the guard


def cut_to_quarter(log) -> None:
    doc = json.loads(log.read_bytes())
    doc["trades"] = doc["trades"][: len(doc["trades"]) // 4]  # next_id kept: only the count guard fires
    write_log(log, doc)


def assert_aborted_and_untouched(env, before, reason_part, caplog):
    with caplog.at_level(logging.CRITICAL, logger="tradestore.reconciler"):
        result = env["rec"]().reconcile()
    assert result.aborted and not result.written and reason_part in result.reason
    assert files_of(env["out"]) == before, "an aborted cycle wrote something"
    assert env["alerts"] and reason_part in env["alerts"][-1]["reason"]
    assert any(r.levelno == logging.CRITICAL and reason_part in r.getMessage() for r in caplog.records)
    return result


def test_log_cut_to_a_quarter_aborts(env, caplog):
    before = files_of(env["out"])
    cut_to_quarter(env["log"])
    result = assert_aborted_and_untouched(env, before, "trade count fell from 60 to 15", caplog)
    assert env["alerts"][-1]["observed"]["trade_count"] == 15
    assert env["alerts"][-1]["remembered"]["trade_count"] == 60
    assert result.source.trade_count == 15


@pytest.mark.parametrize("how", ["deleted", "random bytes", "wrong values"])
@pytest.mark.parametrize("name", ALL)
def test_guard_survives_losing_any_one_file(env, caplog, name, how):
    damage(env["out"] / name, how, random.Random(SEED))
    before = files_of(env["out"])
    cut_to_quarter(env["log"])
    assert_aborted_and_untouched(env, before, "trade count fell", caplog)


def test_one_forged_huge_count_cannot_block_every_later_run(env):
    path = env["out"] / "portfolio.json"
    doc = json.loads(path.read_bytes())
    doc["_meta"]["source"].update(trade_count=10**9, next_id=10**9)
    path.write_text(json.dumps(doc))
    result = env["rec"]().reconcile()
    assert result.ok and result.healed == {"portfolio.json": "different"}


def test_next_id_going_backwards_aborts(env, caplog):
    before = files_of(env["out"])
    doc = json.loads(env["log"].read_bytes())
    doc["trades"] = doc["trades"][:-1]  # one trade gone and its id with it: 60 -> 59 is no big drop
    doc["next_id"] = 60
    write_log(env["log"], doc)
    assert_aborted_and_untouched(env, before, "next_id went backwards from 61 to 60", caplog)


@pytest.mark.parametrize("content", [b"", b"{\"schema\":1,\"next_id\":61,\"trades\":[{\"id\":\"T0", b"\x00\xff garbage",
                                     b"[]", b'{"schema":1,"next_id":NaN,"trades":[]}'])
def test_unreadable_log_aborts(env, caplog, content):
    before = files_of(env["out"])
    env["log"].write_bytes(content)
    assert_aborted_and_untouched(env, before, "trade log unreadable", caplog)


def test_missing_log_aborts_once_there_is_history(env, caplog):
    before = files_of(env["out"])
    os.remove(env["log"])
    assert_aborted_and_untouched(env, before, "trade log not found", caplog)


def test_missing_log_of_a_new_account_gives_empty_state(tmp_path):
    rec = StateReconciler(tmp_path / "none.json", tmp_path / "state", clock=lambda: NOW, fsync=False)
    result = rec.reconcile()
    assert result.ok and result.source.trade_count == 0
    assert json.loads((tmp_path / "state" / "portfolio.json").read_bytes())["balance"] == 5000.0
    assert not (tmp_path / "none.json").exists()


@pytest.mark.parametrize("kept, aborts", [(30, False), (29, True)])
def test_threshold_is_more_than_half(env, kept, aborts):
    doc = json.loads(env["log"].read_bytes())
    doc["trades"] = doc["trades"][:kept]
    write_log(env["log"], doc)
    assert env["rec"]().reconcile().aborted is aborts


def test_threshold_is_configurable_and_checked(env):
    cut_to_quarter(env["log"])
    assert env["rec"](corruption_threshold=0.8).reconcile().ok
    with pytest.raises(ValueError, match="corruption_threshold"):
        env["rec"](corruption_threshold=1.5)


def test_a_failing_alert_hook_still_reports_the_abort(env):
    def broken(info):
        raise RuntimeError("pager down")

    cut_to_quarter(env["log"])
    result = env["rec"](on_corruption=broken).reconcile()
    assert result.aborted


# --------------------------------------------------------------------------- the log is read-only


def test_log_bytes_and_mtime_never_change(env):
    log = env["log"]
    os.utime(log, ns=(1_000_000_000_000_000_000, 1_000_000_000_000_000_000))
    before = (log.read_bytes(), os.stat(log).st_mtime_ns, os.stat(log).st_ino)
    rec = env["rec"]()
    rec.reconcile()                                  # a normal cycle
    os.remove(env["out"] / "equity.json")
    rec.reconcile()                                  # a healing cycle
    rec.verify()
    shutil.rmtree(env["out"])
    rec.reconcile()                                  # a rebuild
    doc = json.loads(log.read_bytes())
    doc["trades"] = doc["trades"][:5]
    smaller = env["log"].with_name("small.json")
    write_log(smaller, doc)
    small_before = (smaller.read_bytes(), os.stat(smaller).st_mtime_ns)
    assert StateReconciler(smaller, env["out"], clock=lambda: NOW, fsync=False).reconcile().aborted
    assert (smaller.read_bytes(), os.stat(smaller).st_mtime_ns) == small_before
    assert (log.read_bytes(), os.stat(log).st_mtime_ns, os.stat(log).st_ino) == before


# --------------------------------------------------------------------------- invariants and strays


def test_log_invariant_violations_are_reported(env):
    doc = json.loads(env["log"].read_bytes())
    opened = [t for t in doc["trades"] if t["status"] == "OPEN"]
    opened[1]["symbol"] = opened[0]["symbol"]  # two OPEN trades of one symbol
    write_log(env["log"], doc)
    seen = []
    result = env["rec"](on_invariant_violation=seen.append).reconcile()
    assert result.ok and result.violations and seen == [result.violations]
    assert any(opened[0]["symbol"] in v for v in result.violations)


def test_stray_temps_of_dead_reconcilers_are_swept_but_live_ones_kept(env):
    old = env["out"] / ".equity.json.deadbeef0001.tmp"
    live = env["out"] / ".equity.json.deadbeef0002.tmp"
    old.write_bytes(b"{")
    live.write_bytes(b"{")
    os.utime(old, (0, 0))
    env["rec"]().reconcile()
    assert not old.exists() and live.exists()


def test_an_old_stray_another_sweeper_removes_first_is_skipped(tmp_path, monkeypatch):
    from tradestore import atomic

    target = str(tmp_path / "equity.json")
    old = tmp_path / ".equity.json.deadbeef0003.tmp"
    old.write_bytes(b"{")
    os.utime(old, (0, 0))
    real_lstat = os.lstat

    def vanished(path, *args, **kwargs):  # the rival sweeper unlinked it between scan and stat
        if str(path) == str(old):
            raise FileNotFoundError(path)
        return real_lstat(path, *args, **kwargs)

    monkeypatch.setattr(os, "lstat", vanished)
    assert atomic.sweep_stray_temps(target, older_than=60) == []
    monkeypatch.undo()
    assert atomic.sweep_stray_temps(target, older_than=60) == [old.name] and not old.exists()


def test_derived_files_that_disagree_are_reported(env):
    from tradestore.reconciler import derived_violations

    rec = env["rec"]()
    _, docs = rec.build()
    assert derived_violations(docs, rec.limits) == []
    docs["equity.json"]["current_equity"] += 1
    docs["portfolio.json"]["losing_trades"] += 1
    docs["setup_performance.json"]["total_closed"] += 1
    docs["equity.json"]["drawdown_percent"] = 0.5
    found = "\n".join(derived_violations(docs, rec.limits))
    for part in ("disagrees across files", "winning_trades + losing_trades", "setup_performance totals",
                 "drawdown_percent = 0.5 is positive"):
        assert part in found


def test_verify_without_a_log_raises(env):
    from tradestore import CorruptTradeLog

    os.remove(env["log"])
    with pytest.raises(CorruptTradeLog, match="not found"):
        env["rec"]().verify()


def test_overflowing_numbers_become_null_not_infinity(tmp_path):
    # A log that passes verify (every field finite) but whose R multiple overflows a double.
    trade = {"id": "T001", "symbol": "BTC", "direction": "LONG", "entry_price": 1.0,
             "stop_price": 0.9999999999999999, "original_stop": 0.9999999999999999, "target_price": 2.0,
             "size": 1e-300, "original_size": 1e-300, "status": "CLOSED", "exit_price": 2.0,
             "exit_time": "2025-01-01T00:00:00+00:00", "pnl_usd": 1e29,  # R = 1e29 / 1.1e-316
             "entry_time": "2025-01-01T00:00:00+00:00", "partial_exits": []}
    log = tmp_path / "t.json"
    log.write_text(json.dumps({"schema": 2, "next_id": 2, "trades": [trade]}))
    result = StateReconciler(str(log), str(tmp_path / "state")).reconcile()
    assert not result.aborted
    equity = json.loads((tmp_path / "state" / "equity.json").read_text(),
                        parse_constant=lambda c: pytest.fail(f"{c} written"))
    assert equity["avg_r"] is None
