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
