"""The campaign end to end: our store passes, every negative control is caught by the property
it breaks, the command's options and exit codes, and --seed reproducing the schedule."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tradestore_chaos import scenarios
from tradestore_chaos.campaign import Campaign
from tradestore_harness import generator

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SEED = int(os.environ.get("CHAOS_TEST_SEED", "20261128"))


def campaign(target, *names, duration=None, seed=SEED, keep=None):
    available = scenarios.available()
    run = Campaign({n: available[n] for n in names}, target, seed, quick=True, duration=duration,
                   writers=3, progress=lambda line: None, keep=keep)
    run.run()
    return run


def describe(run):
    return f"seed {run.seed}: " + "; ".join(f"{v.property}: {v.detail}" for r in run.results for v in r.violations[:3])


# Each control with the scenario that must catch it and the property it breaks.
CAUGHT_BY = [
    ("unsafe-no-lock", "race-duplicate", "duplicate-open-symbol"),
    ("unsafe-check-outside-lock", "race-cap", "position-cap"),
    ("unsafe-check-outside-lock", "toctou-waitpoint", "duplicate-open-symbol"),
    ("unsafe-in-place-write", "kill-storm", "log-parses"),
    ("unsafe-reset-on-corrupt", "corrupt-log", "log-untouched"),
    ("unsafe-stale-derived", "race-duplicate", "duplicate-open-symbol"),
]


@pytest.mark.parametrize("target,scenario,prop", CAUGHT_BY)
def test_negative_control_is_caught_with_the_property_it_breaks(target, scenario, prop):
    run = campaign(target, scenario, duration=1.5)
    assert prop in run.violated(), describe(run)


def test_our_store_passes_the_scenarios_that_catch_the_controls():
    names = sorted({scenario for _, scenario, _ in CAUGHT_BY})
    run = campaign("tradestore", *names, duration=1.5)
    assert run.passed, describe(run)
    by_name = {r.scenario: r for r in run.results}
    assert by_name["kill-storm"].kills >= 1 and by_name["kill-storm"].ok > 0
    assert by_name["race-cap"].ok > 0 and by_name["race-cap"].rejected > 0


def test_our_store_passes_the_rule_races_and_the_derived_file_scenarios():
    run = campaign("tradestore", "race-correlation", "race-loss-cap", "corrupt-derived",
                   "reconcile-under-writes", duration=1.0)
    assert run.passed, describe(run)
    by_name = {r.scenario: r for r in run.results}
    assert by_name["corrupt-derived"].corruptions_injected == by_name["corrupt-derived"].corruptions_healed == 10
    assert by_name["reconcile-under-writes"].states_checked > 0


def test_stale_derived_control_is_caught_by_writers_under_reconcile():
    run = campaign("unsafe-stale-derived", "corrupt-derived", duration=1.0)
    assert {"position-cap", "duplicate-open-symbol"} & set(run.violated()), describe(run)


def test_writer_schedule_is_a_function_of_the_seed():
    def first(seed, worker="w0", life=0, n=30):
        stream = generator.writer_ops(seed, worker, life)
        return [next(stream) for _ in range(n)]

    assert first(7) == first(7)
    assert first(7) != first(8)
    assert first(7, "w1") != first(7, "w0") and first(7, life=1) != first(7, life=0)
    assert generator.digest(first(7)) == generator.digest(first(7))


def test_seed_reproduces_the_kill_storm_schedule(tmp_path):
    from tradestore_chaos.scenarios import kill_storm
    from tradestore_harness.context import ScenarioContext

    def plan(seed):
        return kill_storm.kill_plan(ScenarioContext("tradestore", seed, True, 3.0, 3, tmp_path), 3.0)

    assert plan(41) == plan(41) != plan(42)
    run = campaign("tradestore", "kill-storm", duration=0.6, seed=41)
    [note] = [n for n in run.results[0].notes if n.startswith("schedule ")]
    expected = kill_storm.kill_plan(ScenarioContext("tradestore", 41, True, 0.6, 3, tmp_path), 0.6)
    assert note.startswith(f"schedule {generator.digest(expected)}:"), note


def chaos(*args, timeout=240):
    return subprocess.run([sys.executable, "-m", "chaos", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout)


def test_help_list_and_usage_errors_exit_two():
    assert chaos("--help").returncode == 0
    listed = chaos("--list")
    assert listed.returncode == 0
    for name in ("race-duplicate", "kill-storm", "corrupt-log", "unsafe-no-lock", "module:factory"):
        assert name in listed.stdout
    assert chaos("--scenario", "no-such-scenario").returncode == 2
    assert chaos("--target", "no-such-target").returncode == 2
    assert chaos("--writers", "1").returncode == 2


def test_command_fails_naming_property_and_seed_on_a_broken_store():
    out = chaos("--target", "unsafe-no-lock", "--scenario", "race-duplicate", "--quick", "--seed", "5")
    assert out.returncode == 1, out.stdout + out.stderr
    last = out.stdout.strip().splitlines()[-1]
    assert last.startswith("FAIL:") and "duplicate-open-symbol" in last and "seed 5" in last


def test_command_passes_on_our_store_and_writes_reports(tmp_path):
    out = chaos("--scenario", "race-cap", "--scenario", "mutex", "--quick", "--seed", "9", "--report", str(tmp_path))
    assert out.returncode == 0, out.stdout + out.stderr
    assert "PASS" in out.stdout and "race-cap" in out.stdout and "invoked" in out.stdout
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["passed"] and report["seed"] == 9 and len(report["scenarios"]) == 2
    mutex = next(s for s in report["scenarios"] if s["scenario"] == "mutex")
    assert any(lane["locks"] for group in mutex["timeline"]["rounds"] for lane in group["lanes"])
    page = (tmp_path / "report.html").read_text()
    assert "<svg" in page and "lock held" in page


def test_controls_mode_reports_each_control_and_fails_when_one_escapes(tmp_path):
    # race-duplicate alone cannot catch a store whose only flaw is durability or corrupt-log
    # handling, so some controls must escape and the command must say so and exit 1.
    out = chaos("--controls", "--scenario", "race-duplicate", "--quick", "--seed", "3", "--report", str(tmp_path))
    assert out.returncode == 1, out.stdout + out.stderr
    assert "ESCAPED" in out.stdout and "caught" in out.stdout and out.stdout.strip().splitlines()[-1].startswith("FAIL")
    summary = json.loads((tmp_path / "controls.json").read_text())
    caught = {c["target"]: c["caught"] for c in summary["controls"]}
    assert caught["unsafe-no-lock"] and caught["unsafe-stale-derived"] and not caught["unsafe-reset-on-corrupt"]


@pytest.mark.slow
def test_quick_campaign_passes_on_our_store():
    out = chaos("--quick", "--seed", str(SEED), timeout=600)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-2000:]


@pytest.mark.slow
def test_default_campaign_catches_every_negative_control():
    out = chaos("--controls", "--quick", "--seed", str(SEED), timeout=1800)
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-2000:]


def test_usage_errors_in_process(tmp_path, capsys):
    from tradestore_chaos.cli import main

    with pytest.raises(SystemExit) as exc:
        main(["--duration", "0"])
    assert exc.value.code == 2
    (tmp_path / "old").write_text("x")
    assert main(["--keep", str(tmp_path), "--scenario", "mutex"]) == 2
    assert "not empty" in capsys.readouterr().err


def test_keep_leaves_histories_and_versions_for_inspection(tmp_path):
    from tradestore_chaos.cli import main

    assert main(["--scenario", "race-duplicate", "--quick", "--seed", "2", "--keep", str(tmp_path / "k")]) == 0
    kept = tmp_path / "k" / "tradestore"
    assert list(kept.rglob("*.history.jsonl")) and list(kept.rglob("versions/*.json"))


def test_a_campaign_leaves_the_library_logging_as_it_found_it():
    import logging

    logger = logging.getLogger("tradestore")
    before = (list(logger.handlers), logger.propagate)
    campaign("tradestore", "race-duplicate")
    assert (list(logger.handlers), logger.propagate) == before
