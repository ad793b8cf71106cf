"""`tradestore reconcile` and `tradestore verify --out`: exit codes, one line per cycle, and a
loop that stops cleanly on SIGTERM and Ctrl-C (waiting on its output, never on a timer)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import pytest

from tradestore.cli import main

from .test_derive_logs import make_log

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def logdir(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with open("trades.json", "w") as f:
        json.dump(make_log(40, seed=5), f)
    return tmp_path


def test_reconcile_once_then_verify(logdir, capsys):
    code, out, _ = run(capsys, "reconcile", "--out", "st", "--no-fsync")
    assert code == 0 and "ok: 40 trades" in out and "healed" in out
    assert sorted(os.listdir("st")) == ["equity.json", "portfolio.json", "reconcile_guard.json",
                                        "risk_state.json", "setup_performance.json"]
    code, out, _ = run(capsys, "verify", "--out", "st")
    assert code == 0 and "derived files ok" in out


def test_verify_names_the_differing_files_and_exits_1(logdir, capsys):
    run(capsys, "reconcile", "--out", "st", "--no-fsync")
    with open("st/equity.json", "w") as f:
        f.write("{}")
    os.remove("st/portfolio.json")
    code, out, _ = run(capsys, "verify", "--out", "st")
    assert code == 1
    assert "st/equity.json different" in out and "st/portfolio.json missing" in out


def test_reconcile_exits_1_when_the_guard_aborts(logdir, capsys):
    run(capsys, "reconcile", "--out", "st", "--no-fsync")
    before = {n: open(os.path.join("st", n), "rb").read() for n in os.listdir("st")}
    doc = json.load(open("trades.json"))
    doc["trades"] = doc["trades"][:10]
    json.dump(doc, open("trades.json", "w"))
    code, out, _ = run(capsys, "reconcile", "--out", "st", "--json")
    report = json.loads(out)
    assert code == 1 and report["aborted"] and "fell from 40 to 10" in report["reason"]
    assert {n: open(os.path.join("st", n), "rb").read() for n in os.listdir("st")} == before


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_every_loop_logs_a_line_per_cycle_and_stops_cleanly(logdir, sig):
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.Popen(
        [sys.executable, "-m", "tradestore.cli", "reconcile", "--out", "st", "--every", "0.05", "--no-fsync"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=logdir,
    )
    try:
        lines = [proc.stdout.readline() for _ in range(3)]  # blocks until three cycles are done
        assert "healed portfolio.json (missing)" in lines[0]
        assert all("reconcile st: ok: 40 trades" in line for line in lines), lines
        assert "healed nothing" in lines[2]
        proc.send_signal(sig)
        rest, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert rest.strip().splitlines()[-1].endswith("cycles") and "reconcile stopped after" in rest


@pytest.mark.parametrize("command", ["reconcile", "verify"])
def test_help_mentions_out(command):
    proc = subprocess.run([sys.executable, "-m", "tradestore.cli", command, "--help"], capture_output=True,
                          text=True, cwd=ROOT)
    assert proc.returncode == 0 and "--out DIR" in proc.stdout


def test_a_stop_signal_landing_anywhere_inside_the_wait_never_deadlocks():
    # A signal handler runs between two bytecodes of the main thread, possibly inside the stop
    # flag's wait() while it holds a lock (threading.Event does), and a handler that takes the
    # same lock waits for itself forever. The trace below runs the installed SIGTERM handler at
    # every line the wait executes, in turn: each wait must end.
    code = """
import signal, sys
from tradestore import cli
for n in range(1, 40):
    stop = cli.stop_on_signals()
    handler = signal.getsignal(signal.SIGTERM)
    lines = [0]
    def trace(frame, event, arg, n=n, handler=handler):
        if event == "line":
            lines[0] += 1
            if lines[0] == n:
                handler(signal.SIGTERM, frame)
        return trace
    sys.settrace(trace)
    stopped = stop.wait(3)
    sys.settrace(None)
    if lines[0] < n:
        break  # the wait has fewer lines than n: every line was tried
    if not stopped:
        sys.exit(f"the handler ran at line {n} of the wait but the wait did not end")
print("ok")
"""
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr


def test_loop_reports_a_failing_cycle_and_goes_on(tmp_path):
    import threading

    from tradestore import StateReconciler
    from tradestore.cli import run_every

    blocked = tmp_path / "a-file"
    blocked.write_text("")  # the output "directory" is a file: every cycle fails with an OSError
    with open(tmp_path / "trades.json", "w") as f:
        json.dump(make_log(5, seed=1), f)
    stop, lines = threading.Event(), []

    def emit(line):
        lines.append(line)
        if len(lines) == 2:
            stop.set()  # after the second cycle's line, without any timer

    rec = StateReconciler(tmp_path / "trades.json", blocked, fsync=False)
    assert run_every(rec, 0.0, stop, emit=emit) == 0
    assert all("FAILED" in line for line in lines[:2]) and lines[-1].endswith("stopped after 2 cycles")
