"""Edges of the race machinery and of the derived-file helpers the checkers rely on."""

from __future__ import annotations

import json
import random
from datetime import datetime, timezone

import pytest

from tradestore_chaos.scenarios import _race, corrupt_derived
from tradestore_harness import derived
from tradestore_harness.context import ScenarioContext
from tradestore_harness.generator import open_args
from tradestore_harness.result import ScenarioResult, ScenarioStopped
from tradestore import TradeStore

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=timezone.utc)


def _ctx(tmp_path) -> ScenarioContext:
    return ScenarioContext(target="tradestore", seed=20261128, quick=True, duration=None, writers=2,
                           workdir=tmp_path)


def test_a_setup_the_target_refuses_stops_the_round(tmp_path):
    # The scenarios' setups are valid under the rules, so a refusal is a liveness finding.
    with pytest.raises(ScenarioStopped) as info:
        _race.prepare(_ctx(tmp_path), tmp_path / "round", {"max_positions": 7},
                      [("close", ["T009", 100.0, "nope"])])
    assert info.value.prop == "valid-ops-succeed"
    assert str(info.value).startswith("setup close('T009', 100.0, 'nope') is valid under the rules but was refused")


def test_a_race_where_fewer_win_than_the_rules_allow_is_allowed_count(tmp_path):
    # Two racers open one symbol; the rules admit one. Claiming two may win must be reported.
    ctx = _ctx(tmp_path)
    r = random.Random(7)
    contenders = [[["open", open_args(r, "ADA", f"racer{i}-0")]] for i in range(2)]
    result = ScenarioResult("race-test", ctx.target, ctx.seed)
    _race.run_race(ctx, result, limits={"max_positions": 7}, setup_ops=[], contenders=contenders,
                   allowed=2, prop="duplicate-open-symbol", label="round1")
    assert [v.property for v in result.violations] == ["allowed-count"]
    detail = result.violations[0].detail
    assert detail.startswith("round1: only 1 of 2 racing opens succeeded, 2 should have (")
    assert "ADA" in detail  # the loser's rejection names the symbol it could not open


def test_parses_tells_a_readable_json_file_from_a_damaged_or_missing_one(tmp_path):
    (tmp_path / "ok.json").write_text('{"a": 1}')
    (tmp_path / "torn.json").write_text('{"a": ')
    assert corrupt_derived._parses(str(tmp_path / "ok.json"))
    assert not corrupt_derived._parses(str(tmp_path / "torn.json"))
    assert not corrupt_derived._parses(str(tmp_path / "missing.json"))


def test_read_derived_gives_none_for_missing_and_unreadable_files(tmp_path):
    store = TradeStore(str(tmp_path / "trades.json"))
    store.open_trade("ETH", "LONG", 3000.0, 2900.0, 3300.0, 0.1)
    from tradestore import StateReconciler

    state = tmp_path / "state"
    StateReconciler(str(tmp_path / "trades.json"), str(state), clock=lambda: NOW).reconcile()
    first, second, *_ = derived.FILES
    (state / first).write_bytes(b"\x00garbage")
    (state / second).unlink()
    files = derived.read_derived(str(state))
    assert set(files) == set(derived.FILES)
    assert files[first] is None and files[second] is None
    assert all(isinstance(files[name], dict) for name in derived.FILES[2:])


def test_named_versions_collects_only_well_formed_source_hashes():
    snapshots = [
        {"a.json": {"_meta": {"source": {"sha256": "aaa"}}}, "b.json": None},
        {"a.json": {"_meta": {"source": {"sha256": 12}}}, "b.json": ["not", "a", "dict"]},
        {"a.json": {"_meta": None}, "b.json": {"_meta": {"source": None}}, "c.json": {"_meta": {"source": {"sha256": "bbb"}}}},
    ]
    assert derived.named_versions(snapshots) == {"aaa", "bbb"}


def test_rebuild_skips_versions_it_does_not_hold(tmp_path):
    log = tmp_path / "trades.json"
    TradeStore(str(log)).open_trade("ETH", "LONG", 3000.0, 2900.0, 3300.0, 0.1)
    rebuilt = derived.rebuild({"known": log.read_bytes()}, ["known", "unknown"], NOW, str(tmp_path / "scratch"))
    assert list(rebuilt) == ["known"]
    assert set(rebuilt["known"]) >= set(derived.FILES)
    assert json.loads(json.dumps(rebuilt["known"])) == rebuilt["known"]
