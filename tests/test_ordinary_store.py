"""A stranger's store, written the ordinary way (tests/ordinary_store.py), under the durability
scenarios: the correct one passes all three, each store missing one fsync is caught.

The store writes through ``tempfile.mkstemp`` + ``os.fdopen(fd, "w")`` and reads with the
builtin ``open()``: every write and read reaches the harness's file-system layer through the
file objects, not through ``os`` calls of its own.
"""

from __future__ import annotations

import os

import pytest

from tradestore_chaos.scenarios import crash_points, io_errors, power_loss
from tradestore_harness.context import ScenarioContext

SEED = int(os.environ.get("CHAOS_TEST_SEED", "20261128"))
STORE = "tests.ordinary_store:"


def _run(tmp_path, module, factory: str, seed: int = SEED):
    ctx = ScenarioContext(target=STORE + factory, seed=seed, quick=True, duration=None, writers=1,
                          workdir=tmp_path)
    return module.run(ctx)


@pytest.mark.parametrize("module", [crash_points, io_errors, power_loss], ids=lambda m: m.NAME)
def test_the_correct_ordinary_store_passes(tmp_path, module):
    result = _run(tmp_path, module, "make_store")
    assert result.violations == [], f"seed {SEED}: {result.violations}"
    assert result.not_applicable is None, result.not_applicable
    assert result.crash_points > 30, result  # crash points, I/O fault points or power cuts
    if module is power_loss:
        assert result.states_checked > 100


def test_the_ordinary_store_without_fsync_is_caught_by_power_loss(tmp_path):
    result = _run(tmp_path, power_loss, "no_fsync")
    props = {v.property: v.detail for v in result.violations}
    assert "log-parses" in props, f"seed {SEED}: not caught: {result.violations}"
    assert "acknowledged trades unreadable: T00" in props["log-parses"]


def test_the_ordinary_store_without_directory_fsync_is_caught_by_power_loss(tmp_path):
    result = _run(tmp_path, power_loss, "no_dir_fsync")
    props = {v.property: v.detail for v in result.violations}
    assert "ack-durable" in props, f"seed {SEED}: not caught: {result.violations}"
    assert "lost T00" in props["ack-durable"]


@pytest.mark.parametrize("factory", ["no_fsync", "no_dir_fsync"])
def test_kills_alone_cannot_see_the_missing_fsync(tmp_path, factory):
    result = _run(tmp_path, crash_points, factory)
    assert result.violations == [] and result.crash_points > 20, result.violations
