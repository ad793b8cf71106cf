"""Stores that are not one JSON file: the export and observe hooks beside the factory.

A SQLite store (tests/sqlite_store.py, the worked example of docs/CHAOS.md) passes the process
scenarios through its hooks, is reported not applicable where a scenario needs the trade log
file, and its racy twin is caught through the same hooks."""

from __future__ import annotations

import json

from tradestore_chaos import scenarios
from tradestore_chaos.campaign import Campaign
from tradestore_harness import hooks
from tradestore_harness.history import HistoryWriter, read_events
from tradestore_harness.result import NOT_APPLICABLE, PASS

from .sqlite_store import make_store
from .test_chaos import SEED, describe

GOOD, RACY = "tests.sqlite_store:make_store", "tests.sqlite_store:make_racy_store"


def campaign(target, *names, seed=SEED):
    available = scenarios.available()
    run = Campaign({n: available[n] for n in names}, target, seed, quick=True, duration=1.0,
                   writers=3, progress=lambda line: None)
    run.run()
    return run


def test_a_file_store_declares_no_hooks_and_is_read_from_its_file(tmp_path):
    assert hooks.hooks_of("tradestore").file_backed
    log = tmp_path / "trades.json"
    assert hooks.read_state("tradestore", str(log), str(tmp_path / "l")) is None
    log.write_bytes(b'{"trades": []}')
    assert hooks.read_state("tradestore", str(log), str(tmp_path / "l")) == b'{"trades": []}'


def test_export_gives_the_committed_state_as_the_format_document(tmp_path):
    log = str(tmp_path / "trades.json")
    assert hooks.read_state(GOOD, log, log + ".lock") is None  # nothing written yet
    store = make_store(log)
    store.open_trade("BTC", "LONG", 100.0, 95.0, 110.0, 1.0, "s", "A", "n")
    doc = json.loads(hooks.read_state(GOOD, log, log + ".lock"))
    assert doc["next_id"] == 2 and [t["id"] for t in doc["trades"]] == ["T001"]
    assert not (tmp_path / "trades.json").exists()  # its state really is elsewhere


def test_the_observer_records_lock_commit_and_unlock_like_the_file_wrappers(tmp_path):
    from tradestore_harness import spy as spy_mod

    history = HistoryWriter(tmp_path / "history", "w")
    log = str(tmp_path / "trades.json")
    try:
        spy = spy_mod.install(history, log, log + ".lock", str(tmp_path / "versions"))
        store = make_store(log)
        hooks.observe(GOOD, store, spy)
        seen = []
        spy.on_commit.append(seen.append)
        store.open_trade("BTC", "LONG", 100.0, 95.0, 110.0, 1.0, "s", "A", "n")
    finally:
        spy_mod.uninstall()
    kinds = [e["ev"] for e in read_events(tmp_path / "history")]
    assert kinds == ["lock", "commit", "unlock"]
    commit = next(e for e in read_events(tmp_path / "history") if e["ev"] == "commit")
    assert commit["locked"] and commit["sha"] == seen[0]
    kept = json.loads((tmp_path / "versions" / f"{seen[0]}.json").read_bytes())
    assert [t["symbol"] for t in kept["trades"]] == ["BTC"]


def test_the_sqlite_store_passes_through_its_hooks_and_file_scenarios_do_not_apply():
    run = campaign(GOOD, "toctou-waitpoint", "kill-storm", "corrupt-log", "power-loss")
    by = {r.scenario: r for r in run.results}
    assert by["toctou-waitpoint"].verdict == PASS and by["kill-storm"].verdict == PASS, describe(run)
    assert by["kill-storm"].ok > 0 and by["kill-storm"].kills > 0
    for name in ("corrupt-log", "power-loss"):
        assert by[name].verdict == NOT_APPLICABLE and "chaos_export" in by[name].not_applicable
        assert by[name].passed and by[name].invoked == 0  # not run, and no failure
    assert run.passed


def test_the_racy_sqlite_store_is_caught_through_the_same_hooks():
    # The wait-point holds the first writer at its commit until the rival is seen waiting
    # (its contended() call), so the rival's stale decision is made every time, not by luck.
    run = campaign(RACY, "toctou-waitpoint")
    assert {"duplicate-open-symbol", "position-cap"} <= set(run.violated()), describe(run)
