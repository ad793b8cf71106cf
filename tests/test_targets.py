"""Targets resolve by name or module:factory, and every negative control is a working store
with only its one flaw (so what catches it is the flaw, not a broken basic operation)."""

from __future__ import annotations

import pytest

from tradestore_harness import targets, waitpoints
from tradestore_harness.targets import TargetError, call, resolve_target

CONTROLS = ["unsafe-no-lock", "unsafe-check-outside-lock", "unsafe-in-place-write",
            "unsafe-reset-on-corrupt", "unsafe-stale-derived"]


def test_registry_has_ours_and_every_control():
    names = targets.registry()
    assert targets.DEFAULT == "tradestore" and "tradestore" in names
    assert set(CONTROLS) <= set(targets.controls())


def test_module_factory_resolves_and_bad_names_are_usage_errors():
    from tradestore_harness.unsafe import NoLockStore

    assert resolve_target("tradestore_harness.unsafe:NoLockStore") is NoLockStore
    for bad in ("no-such-store", "no_such_module_xyz:make", "tradestore_harness.unsafe:Nope", "tradestore_harness.unsafe:STATE_DIR"):
        with pytest.raises(TargetError):
            resolve_target(bad)


def test_call_maps_exceptions_and_error_dicts_to_fail():
    class SeedStyle:
        def open_trade(self, *args):
            return {"error": "Max positions reached"}

        def close_trade(self, *args):
            raise KeyError("T404")

    assert call(SeedStyle(), "open", ["BTC"]) == ("fail", "Rejected: Max positions reached")
    assert call(SeedStyle(), "close", ["T404"])[0] == "fail"
    assert call(SeedStyle(), "partial", ["T001", 0.5, 1.0])[0] == "fail"  # not supported


@pytest.mark.parametrize("name", ["tradestore", *CONTROLS])
def test_each_target_behaves_like_a_store_when_used_alone(tmp_path, name):
    store = resolve_target(name)(str(tmp_path / "trades.json"), str(tmp_path / "trades.json.lock"), max_positions=2)
    outcome, first = call(store, "open", ["BTC", "LONG", 100, 90, 120, 1])
    assert outcome == "ok" and first["id"] == "T001"
    assert call(store, "open", ["ETH", "SHORT", 100, 110, 80, 1])[0] == "ok"
    assert call(store, "partial", [first["id"], 0.5, 105, "tp"])[0] == "ok"
    assert call(store, "update", [first["id"], {"stop_price": 95}])[0] == "ok"
    outcome, closed = call(store, "close", [first["id"], 110, "tp"])
    assert outcome == "ok" and closed["status"] == "CLOSED"
    outcome, trades = call(store, "read", [])
    assert [t["id"] for t in trades] == ["T001", "T002"]
    if name != "unsafe-stale-derived":  # its flaw is exactly that it ignores the log's state
        assert call(store, "open", ["ETH", "LONG", 100, 90, 120, 1])[0] == "fail"


def test_controls_announce_their_window_at_a_wait_point(tmp_path):
    from tradestore_harness.unsafe import InPlaceWriteStore, NoLockStore

    seen = []
    waitpoints.reset()
    waitpoints.arm("decided", seen.append)
    waitpoints.arm("mid-write", lambda n: seen.append(("mid", n)))
    try:
        NoLockStore(str(tmp_path / "a.json")).open_trade("BTC", "LONG", 100, 90, 120, 1)
        InPlaceWriteStore(str(tmp_path / "b.json")).open_trade("BTC", "LONG", 100, 90, 120, 1)
    finally:
        waitpoints.reset()
    assert 1 in seen and ("mid", 1) in seen
