"""Shared fixtures: a fixed clock and a store in a temporary directory."""

from __future__ import annotations

import os
from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import HealthCheck, settings

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


# Hypothesis profiles, chosen with HYPOTHESIS_PROFILE: "ci" (default) is bounded so the whole
# suite stays within minutes; "long" runs thousands of examples for a deep run
# (`HYPOTHESIS_PROFILE=long ci/test tests/test_model.py tests/test_properties.py`).
settings.register_profile(
    "ci", max_examples=100, stateful_step_count=50, deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.register_profile(
    "long", max_examples=3000, stateful_step_count=100, deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


# PostgreSQL: one real server per session (or CI's), fixtures in tests/pg_fixture.py.
from tests.pg_fixture import pg_account, pg_dsn  # noqa: E402,F401
