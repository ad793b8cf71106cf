"""Shared fixtures: a fixed clock and a store in a temporary directory."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from tradestore import TradeStore


class FakeClock:
    """A clock that only moves when told to: deterministic timestamps in tests."""

    def __init__(self, start: datetime = datetime(2026, 1, 5, 12, 0, tzinfo=timezone.utc)) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> datetime:
        self.now += timedelta(**delta)
        return self.now


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def store(tmp_path, clock) -> TradeStore:
    return TradeStore(tmp_path / "trades.json", clock=clock)
