"""A user's own store as a ``module:factory`` target, in the seed's style (rejections are
``{"error": ...}`` dicts, not exceptions): the campaign passes a correct one and catches a
broken one. The factories below are the targets, imported by name in the worker processes."""

from __future__ import annotations

import os
import subprocess
import sys

from tradestore import TradeStore, TradeStoreError

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class SeedStyleStore:
    """Wraps a store; returns the seed's error dicts instead of raising."""

    def __init__(self, inner) -> None:
        self.inner = inner

    def _call(self, method, *args):
        try:
            return getattr(self.inner, method)(*args)
        except (TradeStoreError, ValueError, LookupError) as exc:
            return {"error": str(exc)}

    def open_trade(self, *args):
        return self._call("open_trade", *args)

    def close_trade(self, *args):
        return self._call("close_trade", *args)

    def get_all_trades(self):
        return self.inner.get_all_trades()


def make_store(trade_log, lock_file, **limits):
    return SeedStyleStore(TradeStore(trade_log, lock_file, **limits))


def make_unlocked_store(trade_log, lock_file, **limits):
    from tradestore_harness.unsafe import NoLockStore

    return SeedStyleStore(NoLockStore(trade_log, lock_file, **limits))


def chaos(*args):
    return subprocess.run([sys.executable, "-m", "chaos", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=240)


def test_a_correct_user_store_passes_and_a_broken_one_is_caught():
    args = ["--scenario", "race-duplicate", "--scenario", "race-cap", "--quick", "--seed", "3"]
    good = chaos("--target", "tests.test_targets_user:make_store", *args)
    assert good.returncode == 0, good.stdout + good.stderr
    bad = chaos("--target", "tests.test_targets_user:make_unlocked_store", *args)
    assert bad.returncode == 1, bad.stdout + bad.stderr
    assert "duplicate-open-symbol" in bad.stdout.splitlines()[-1]


def make_broken_factory(trade_log, lock_file, **limits):
    raise RuntimeError("cannot connect")


def test_a_target_that_cannot_be_built_is_a_setup_error():
    out = chaos("--target", "tests.test_targets_user:make_broken_factory", "--scenario", "mutex", "--quick")
    assert out.returncode == 2 and "cannot connect" in out.stderr
