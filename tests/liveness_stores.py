"""Stores that refuse operations the rules allow (each otherwise correct): the liveness
checks (``valid-ops-succeed``, ``allowed-count``) must catch them."""

from __future__ import annotations

from tradestore import InvalidTrade, RiskRejected
from tradestore_harness.unsafe import _ControlStore


class RefusesPartialCloseStore(_ControlStore):
    """Refuses every partial close."""

    def partial_close(self, trade_id, close_pct, exit_price, reason="Partial TP"):
        raise InvalidTrade("close_pct", close_pct, "partial closes are not supported")


class RefusesShortStopMoveStore(_ControlStore):
    """Refuses every stop move of a SHORT trade."""

    def update_trade(self, trade_id, updates):
        trade = next((t for t in self.get_all_trades() if t["id"] == trade_id), None)
        if trade is not None and trade["direction"] == "SHORT" and "stop_price" in updates:
            raise InvalidTrade("stop_price", updates["stop_price"], "cannot move a SHORT stop")
        return super().update_trade(trade_id, updates)


class LossCapTooEagerStore(_ControlStore):
    """Blocks a symbol after any one loss, whatever the cap."""

    def open_trade(self, symbol, direction, entry_price, stop_price, target_price, size,
                   setup_type="", grade="", notes=""):
        closed = [t for t in self.get_all_trades() if t["symbol"] == symbol and t["status"] == "CLOSED"]
        if closed and (closed[-1].get("pnl_usd") or 0) <= 0:
            raise RiskRejected("loss_cap", f"{symbol} lost last time")
        return super().open_trade(symbol, direction, entry_price, stop_price, target_price, size,
                                  setup_type, grade, notes)


class NoLossCapStore(_ControlStore):
    """Never applies the consecutive-loss cap."""

    def __init__(self, trade_log, lock_file=None, **limits):
        limits.pop("asset_consecutive_loss_cap", None)
        super().__init__(trade_log, lock_file, asset_consecutive_loss_cap=10_000, **limits)


def dead_reconciler(*_args) -> None:
    """A reconciler process that dies at once (a crashed supervisor job)."""
    import os

    os._exit(3)
