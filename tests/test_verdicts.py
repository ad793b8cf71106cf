"""Three verdicts per scenario (PASS, FAIL, NOT PROVEN) plus not applicable: precedence, the
campaign's status and exit code, --skip, the findings a user acts on, the reproduce command."""

from __future__ import annotations

import types

import pytest

from tradestore_chaos import cli, report, scenarios
from tradestore_chaos.campaign import Campaign, reproduce_command
from tradestore_harness.hooks import TRADE_LOG_FILE
from tradestore_harness.result import FAIL, NOT_APPLICABLE, NOT_PROVEN, PASS, ScenarioResult


def fake(name, outcome, requires=()):
    """A scenario module whose run() returns ``outcome`` ("pass", "fail", "unproven")."""
    def run(ctx):
        result = ScenarioResult(name, ctx.target, ctx.seed, invoked=1, ok=1)
        if outcome == "fail":
            result.violate("ack-durable", "open w0-1 acknowledged as T007 BTC but missing")
        elif outcome == "unproven":
            result.not_proven("no rival was seen waiting in 2 of 2 rounds")
        return result
    return types.SimpleNamespace(NAME=name, DESCRIPTION=name, REQUIRES=requires, run=run)


def test_verdict_precedence():
    r = ScenarioResult("s", "t", 1)
    assert r.verdict == PASS and r.passed
    r.not_proven("nothing happened")
    assert r.verdict == NOT_PROVEN and not r.passed
    r.not_applicable = "no file"
    assert r.verdict == NOT_APPLICABLE and r.passed
    r.violate("p", "d")
    assert r.verdict == FAIL and not r.passed
    assert r.to_dict()["verdict"] == FAIL


@pytest.mark.parametrize("outcomes,status", [
    (["pass", "pass"], PASS),
    (["pass", "unproven"], NOT_PROVEN),
    (["unproven", "fail"], FAIL),
])
def test_campaign_status(outcomes, status, tmp_path):
    modules = {f"s{n}": fake(f"s{n}", o) for n, o in enumerate(outcomes)}
    run = Campaign(modules, "tradestore", 1, progress=lambda line: None, keep=tmp_path / "k")
    run.run()
    assert run.status == status and run.passed == (status == PASS)


def test_a_campaign_where_nothing_applied_proves_nothing(tmp_path):
    modules = {"s0": fake("s0", "pass", requires=(TRADE_LOG_FILE,))}
    run = Campaign(modules, "tests.sqlite_store:make_store", 1, progress=lambda line: None, keep=tmp_path / "k")
    run.run()
    assert run.results[0].verdict == NOT_APPLICABLE and run.status == NOT_PROVEN


@pytest.fixture
def fakes(monkeypatch):
    modules = {"good": fake("good", "pass"), "idle": fake("idle", "unproven"), "bad": fake("bad", "fail")}
    monkeypatch.setattr(scenarios, "available", lambda: dict(modules))
    monkeypatch.setattr(scenarios, "missing", lambda: {})
    return modules


def test_not_proven_exits_3_and_says_so_on_the_last_line(fakes, capsys):
    code = cli.main(["--scenario", "good", "--scenario", "idle", "--seed", "4"])
    lines = capsys.readouterr().out.strip().splitlines()
    assert code == cli.EXIT_NOT_PROVEN == 3
    assert lines[-1].startswith("NOT PROVEN: no property violated, but idle did not exercise its fault")
    assert "1 passed, 1 not proven" in lines[-1] and "--scenario idle" in lines[-1]
    assert any("idle: NOT PROVEN: no rival was seen waiting" in line for line in lines)


def test_skip_leaves_scenarios_out_and_a_fail_beats_not_proven(fakes, capsys):
    assert cli.main(["--skip", "bad", "--seed", "4"]) == 3
    capsys.readouterr()
    assert cli.main(["--skip", "idle", "--seed", "4"]) == 1
    out = capsys.readouterr().out
    assert "violated properties:\n  ack-durable: 1 in bad (1)" in out  # the per-property summary
    assert cli.main(["--skip", "idle", "--skip", "bad", "--seed", "4"]) == 0
    assert cli.main(["--skip", "nosuch"]) == 2
    assert cli.main(["--skip", "good", "--skip", "idle", "--skip", "bad"]) == 2
    assert "--skip left no scenario" in capsys.readouterr().err


def test_help_explains_the_verdicts_and_exit_status(capsys):
    with pytest.raises(SystemExit):
        cli.main(["--help"])
    out = capsys.readouterr().out
    assert "NOT PROVEN is not a pass" in out and "3 no violation, but a scenario is NOT PROVEN" in out
    assert "--skip NAME" in out


def test_the_table_has_a_verdict_column_and_a_legend():
    results = [ScenarioResult("race-cap", "t", 1, not_applicable="no file"), ScenarioResult("mutex", "t", 1)]
    lines = report.table(results).splitlines()
    assert lines[0].split()[:2] == ["scenario", "verdict"]
    assert lines[2].split()[1] == "n/a" and lines[3].split()[1] == PASS
    assert report.LEGEND.startswith("columns:") and "unknown" in report.LEGEND


def test_reproduce_names_everything_the_run_needs(tmp_path, monkeypatch):
    (tmp_path / "mybot_store_mod.py").write_text("def make(trade_log, lock_file=None, **k):\n    return None\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    __import__("mybot_store_mod")
    command = reproduce_command("mybot_store_mod:make", 5, ["kill-storm"], writers=4, duration=40)
    assert command == ("PYTHONPATH=. python -m chaos --target mybot_store_mod:make --seed 5 "
                       "--scenario kill-storm --writers 4 --duration 40")
    # An installed module (or a named target) needs no PYTHONPATH.
    assert reproduce_command("tradestore", 5, []).startswith("python -m chaos --seed 5")
    assert reproduce_command("pytest:main", 5, []).startswith("python -m chaos --target")


def test_the_report_page_summarises_failures_draws_rounds_and_marks_cut_operations(tmp_path):
    failed = ScenarioResult("kill-storm", "t", 1, invoked=2, ok=1, unknown=1)
    failed.violate("ack-durable", "open w0-1 acknowledged as T007 BTC at +1.000s but missing")
    idle = ScenarioResult("toctou-waitpoint", "t", 1)
    idle.not_proven("round1 (duplicate): 1 of 1 rivals were never seen waiting")
    crashes = ScenarioResult("crash-points", "t", 1, invoked=30, crash_points=12, states_checked=24)
    lane = {"pid": 7, "worker": "w0", "locks": [[0.1, 0.2]], "kills": [0.5], "first": 0.0,
            "ops": [[0.0, 0.3, "open", "ok"], [0.4, None, "close", "unknown"]]}
    timelines = {"kill-storm": {"rounds": [{"label": "round1", "lanes": [lane], "t1": 1.0},
                                           {"label": "round2", "lanes": [lane], "t1": 1.0}]}}
    summary = {"verdict": "FAIL: ack-durable", "target": "t", "seed": 1, "elapsed_s": 1.0}
    report.write_html(tmp_path / "r.html", summary, [failed, idle, crashes], timelines)
    page = (tmp_path / "r.html").read_text()
    top = page[:page.index("<table>")]
    assert "<b>ack-durable</b> violated 1 times: kill-storm (1)" in top and "toctou-waitpoint</b> NOT PROVEN" in top
    assert page.count("<svg") == 2 and "<h3>round1</h3>" in page and "<h3>round2</h3>" in page
    assert "close unknown (cut off), invoked at 0.4000s" in page  # a mark, not a bar to the end
    assert "No competing processes to draw: 30 operations" in page and "12 file-system calls crashed" in page
