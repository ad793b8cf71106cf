"""The pytest plugin, proved in fresh test sessions as a bot's own suite would use it.

Each test writes a small user project (a store factory module and a test file) into a pytester
directory and runs pytest on it. The chaos fixture must pass against a correct store and must
fail, naming the violated property, against a broken one (a negative control of
``tradestore_harness.unsafe`` behind a user's ``module:factory``).
"""

from __future__ import annotations

import importlib.metadata
import pathlib
import tomllib

import pytest

from tradestore_harness import pytest_plugin

pytest_plugins = ["pytester"]

ROOT = pathlib.Path(__file__).resolve().parent.parent


def _plugin_args() -> list[str]:
    """Load the plugin explicitly unless the installed entry point already loads it (loading a
    module under two plugin names is an error in pytest)."""
    installed = [ep for ep in importlib.metadata.entry_points(group="pytest11")
                 if ep.value == "tradestore_harness.pytest_plugin"]
    return [] if installed else ["-p", "tradestore_harness.pytest_plugin"]


def _run_fresh(pytester, monkeypatch):
    """A separate pytest process: chaos workers are spawned processes, and an in-process session
    would reload the multiprocessing modules they pickle against."""
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    return pytester.runpytest_subprocess(*_plugin_args())


def test_pyproject_declares_the_pytest11_entry_point():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert project["project"]["entry-points"]["pytest11"] == {"tradestore": "tradestore_harness.pytest_plugin"}


def test_store_fixtures_give_fresh_isolated_stores(pytester):
    pytester.makepyfile(test_bot="""
        import pytest
        from tradestore import RiskRejected, TradeStore

        def test_store_is_empty_and_writable(tradestore_store):
            assert isinstance(tradestore_store, TradeStore)
            assert tradestore_store.get_all_trades() == []
            trade = tradestore_store.open_trade("BTC", "LONG", 100, 95, 110, 1.0)
            assert trade["id"] == "T001"

        def test_each_factory_call_has_its_own_log(tradestore_factory):
            a, b = tradestore_factory(), tradestore_factory(max_positions=1)
            a.open_trade("BTC", "LONG", 100, 95, 110, 1.0)
            assert b.get_all_trades() == []
            assert a.trade_log != b.trade_log
            b.open_trade("SPY", "LONG", 100, 99, 110, 1.0)
            with pytest.raises(RiskRejected) as exc:
                b.open_trade("GLD", "LONG", 100, 99, 110, 1.0)
            assert exc.value.check == "position_cap"

        def test_second_store_on_the_same_log_sees_the_first(tradestore_factory):
            scanner = tradestore_factory()
            monitor = tradestore_factory(scanner.trade_log)
            scanner.open_trade("ETH", "SHORT", 3000, 3050, 2800, 0.1)
            assert [t["symbol"] for t in monitor.get_open_trades()] == ["ETH"]
            with pytest.raises(RiskRejected) as exc:
                monitor.open_trade("eth ", "LONG", 3000, 2950, 3100, 0.1)
            assert exc.value.check == "duplicate_symbol"

        def test_tmp_path_is_where_the_store_lives(tradestore_store, tmp_path):
            assert str(tradestore_store.trade_log).startswith(str(tmp_path))
    """)
    result = pytester.runpytest(*_plugin_args())
    result.assert_outcomes(passed=4)


def test_chaos_runner_passes_against_a_correct_user_store(pytester, monkeypatch):
    pytester.makepyfile(
        userstore="""
            from tradestore import TradeStore

            def make_store(trade_log, lock_file=None, **limits):
                return TradeStore(trade_log, lock_file, **limits)
        """,
        test_chaos="""
            def test_my_store_survives_races(chaos_runner):
                outcome = chaos_runner("userstore:make_store", scenarios=["race-duplicate"], quick=True)
                assert outcome.passed and outcome.violated == []
                assert [r.scenario for r in outcome.results] == ["race-duplicate"]
                assert outcome.results[0].ok >= 1
                assert outcome.report.is_file()
        """,
    )
    result = _run_fresh(pytester, monkeypatch)
    result.assert_outcomes(passed=1)


def test_chaos_runner_fails_the_test_for_a_broken_store(pytester, monkeypatch):
    pytester.makepyfile(
        brokenstore="""
            from tradestore_harness.unsafe import NoLockStore

            def make_store(trade_log, lock_file=None, **limits):
                return NoLockStore(trade_log, lock_file, **limits)
        """,
        test_chaos="""
            def test_raises_with_the_violated_properties(chaos_runner):
                chaos_runner("brokenstore:make_store", scenarios=["race-duplicate"], seed=3)

            def test_check_false_returns_the_findings(chaos_runner):
                outcome = chaos_runner("brokenstore:make_store", scenarios=["race-duplicate"],
                                       seed=3, check=False)
                assert not outcome.passed
                assert "duplicate-open-symbol" in outcome.violated
        """,
    )
    result = _run_fresh(pytester, monkeypatch)
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines([
        "*ChaosFailure*duplicate-open-symbol*violated by brokenstore:make_store (seed 3)*",
        "*reproduce with: PYTHONPATH=. python -m chaos --target brokenstore:make_store --seed 3 "
        "--scenario race-duplicate --quick*",
    ])


def test_chaos_runner_refuses_unknown_scenarios_and_targets(pytester):
    pytester.makepyfile(test_usage="""
        import pytest
        from tradestore_harness.targets import TargetError

        def test_unknown_scenario(chaos_runner):
            with pytest.raises(ValueError, match="no-such-scenario.*available: race-duplicate"):
                chaos_runner("tradestore", scenarios=["no-such-scenario"])

        def test_unknown_target(chaos_runner):
            with pytest.raises(TargetError, match="cannot import"):
                chaos_runner("no_such_module_xyz:make", scenarios=["race-duplicate"])
    """)
    result = pytester.runpytest(*_plugin_args())
    result.assert_outcomes(passed=2)


def test_target_name_accepts_module_level_factories_only():
    from tradestore_harness.unsafe import NoLockStore

    assert pytest_plugin.target_name("pkg.mod:make") == "pkg.mod:make"
    assert pytest_plugin.target_name(NoLockStore) == "tradestore_harness.unsafe:NoLockStore"
    with pytest.raises(ValueError, match="module level"):
        pytest_plugin.target_name(lambda log, lock=None, **kw: None)


def test_reproduce_command_names_every_choice():
    outcome = pytest_plugin.ChaosOutcome("pkg:make", 9, False, ["race-cap", "race-duplicate"])
    assert outcome.reproduce() == ("python -m chaos --target pkg:make --seed 9 "
                                   "--scenario race-cap --scenario race-duplicate")
    assert outcome.passed and "every property held" in outcome.describe()
