"""Liveness: operations the rules allow must succeed, and the loss-cap race really exercises
the loss-cap rule (not only the duplicate rule that guards an open symbol)."""

from __future__ import annotations

from .test_chaos import campaign, describe


def test_a_store_without_the_loss_cap_is_caught_where_only_the_cap_can_refuse():
    run = campaign("tests.liveness_stores:NoLossCapStore", "race-loss-cap")
    found = [v.detail for v in run.results[0].violations if v.property == "loss-cap"]
    assert any(d.startswith("round2-at-cap:") for d in found), describe(run)


def test_a_store_whose_loss_cap_bites_too_early_is_caught():
    run = campaign("tests.liveness_stores:LossCapTooEagerStore", "race-loss-cap")
    assert "valid-ops-succeed" in run.violated(), describe(run)


def test_our_store_passes_every_loss_cap_round():
    run = campaign("tradestore", "race-loss-cap")
    assert run.passed, describe(run)
    assert run.results[0].ok >= 1  # the below-cap round admitted its one open


def test_the_guard_is_reached_by_damage_that_parses(monkeypatch):
    from tradestore import StateReconciler

    run = campaign("tradestore", "corrupt-log")
    assert run.passed, describe(run)
    notes = " ".join(run.results[0].notes)
    assert "fell from 4 to 1" in notes and "next_id went backwards from 5 to 4" in notes
    # A reconciler without its guard is caught on both: the threshold and the memory.
    monkeypatch.setattr(StateReconciler, "_guard", lambda self, version, memory: None)
    run = campaign("tradestore", "corrupt-log")
    found = [v.detail for v in run.results[0].violations if v.property == "guard-aborts"]
    assert any(d.startswith("shrunk log: 4 trades") for d in found), describe(run)
    assert any(d.startswith("next-id-back log: 4 trades and next_id 5 became 3 trades and next_id 4") for d in found)


def test_the_reference_matches_numbers_worked_out_by_hand():
    from tradestore_harness import reference

    # BTC: partial +50, then the rest closed at +25 (FORMAT.md, the seed's meaning: pnl_usd is
    # the final exit on the remaining size), net 75. ETH: closed at -20. SOL: open, one partial
    # of +5. Equity 1000 + 75 - 20 + 5 = 1060.
    log = {"trades": [
        {"id": "T001", "symbol": "BTC", "status": "CLOSED", "pnl_usd": 25.0, "partial_exits": [{"pnl_usd": 50.0}]},
        {"id": "T002", "symbol": "ETH", "status": "CLOSED", "pnl_usd": -20.0, "partial_exits": []},
        {"id": "T003", "symbol": "SOL", "status": "OPEN", "pnl_usd": None, "partial_exits": [{"pnl_usd": 5.0}]},
    ]}
    want = reference.expected(log, 1000.0)
    portfolio = want["portfolio.json"]
    assert (portfolio["closed_pnl"], portfolio["open_partial_pnl"], portfolio["balance"]) == (55.0, 5.0, 1060.0)
    assert (portfolio["winning_trades"], portfolio["losing_trades"], portfolio["positions"]) == (1, 1, ["T003"])
    assert want["equity.json"]["win_rate"] == 50.0 and want["risk_state.json"]["open_symbols"] == ["SOL"]
    # A schema 1 log stored the net itself in pnl_usd: the same account written the old way.
    old_style = {"schema": 1, "trades": [dict(log["trades"][0], pnl_usd=75.0), *log["trades"][1:]]}
    assert reference.expected(old_style, 1000.0)["portfolio.json"]["balance"] == 1060.0
    files = {"portfolio.json": dict(portfolio, balance=1061.0), "equity.json": None}
    [(prop, detail)] = reference.check("cycle 1", files, log, 1000.0)
    assert prop == "derived-correct" and "balance is 1061.0, the log says 1060.0" in detail


def test_a_derivation_wrong_in_the_library_itself_is_caught_by_the_reference(monkeypatch):
    # The rebuild the scenarios compare with is the same library: a consistently wrong formula
    # agrees with itself, and only the independent reference sees it.
    from tradestore import accounting

    real = accounting.net_pnl  # the one definition every derived number uses
    monkeypatch.setattr(accounting, "net_pnl", lambda trade: real(trade) + 1.0)
    run = campaign("tradestore", "corrupt-derived", duration=1.0)
    assert set(run.violated()) == {"derived-correct"}, describe(run)


def test_a_reconciler_process_that_dies_is_noticed(monkeypatch):
    from tradestore_harness import workers

    from .liveness_stores import dead_reconciler

    monkeypatch.setattr(workers, "reconciler_loop", dead_reconciler)
    run = campaign("tradestore", "reconcile-under-writes", duration=0.5)
    found = [v.detail for v in run.results[0].violations if v.property == "liveness"]
    assert any("did not complete a first cycle (exit code 3)" in d for d in found), describe(run)
