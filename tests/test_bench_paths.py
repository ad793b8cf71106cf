"""The benchmark's failure paths and options: a failed cell must stop the run with the reason,
a lost write must not be timed as a fast one, and every option must reach the configuration.

test_bench.py runs the smoke size end to end; these tests call the pieces directly (with tiny
sizes) so each error path is taken on purpose.
"""

from __future__ import annotations

import io
import json
import logging
import os
import platform
import resource

import pytest

from bench import report as bench_report
from bench import suite as bench
from bench.history import WORKER_SYMBOLS
from bench.stores import FLOOR, JOURNAL, SIDE_BY_SIDE, SQLITE

TINY = dict(bench.QUICK, sizes=(100,), writers=(1,), duration=0.01, cycle_cap=2, reconcile_sizes=(200,),
            handoff_rounds=2, rss_size=100)


@pytest.fixture(autouse=True)
def _keep_library_log_level():
    """run_reconcile quiets the library's logger for the whole process; put it back."""
    logger = logging.getLogger("tradestore")
    level = logger.level
    yield
    logger.setLevel(level)


def test_an_unknown_implementation_is_refused_with_the_choices(tmp_path):
    with pytest.raises(ValueError) as info:
        bench.make_store("mongo", str(tmp_path / "x"))
    assert str(info.value) == ("unknown implementation 'mongo'; choose from tradestore, tradestore-journal, "
                               "sqlite-wal-full, append-fsync-floor, tradestore-nofsync, seed-pattern, "
                               "tradestore-pg")


def test_peak_memory_falls_back_to_getrusage_without_proc(monkeypatch):
    assert bench._rss_kib() > 1024  # VmHWM of this interpreter: well over a MiB

    def no_proc(*args, **kwargs):
        raise OSError("no /proc here")

    monkeypatch.setattr(bench, "open", no_proc, raising=False)
    assert bench._rss_kib() == resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    monkeypatch.setattr(bench, "open", lambda *a, **k: io.StringIO("VmHWM:\tlots kB\n"), raising=False)
    assert bench._rss_kib() == resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def test_spread_is_median_then_range():
    assert bench_report.fmt_spread([3.0]) == "3.0"
    assert bench_report.fmt_spread([5.0, 1.0, 2.0], "{:.2f}") == "2.00 [1.00-5.00]"


def test_a_writer_that_fails_stops_the_cell_with_its_traceback(tmp_path, monkeypatch):
    broken = tmp_path / "broken.json"
    broken.write_bytes(b'{"trades": [')  # a torn log: every writer refuses it before the start

    monkeypatch.setattr(bench.Bench, "fresh_copy", lambda self, *args: str(broken))
    runner = bench.Bench(str(tmp_path / "work"), dict(TINY), log=lambda _m: None)
    with pytest.raises(RuntimeError) as info:
        runner.run_writes_once("tradestore-nofsync", 100, 2, "t")
    message = str(info.value)
    assert message.startswith("tradestore-nofsync n=100 writers=2: worker failed:\nTraceback")
    assert f"CorruptTradeLog: {broken} is not valid JSON" in message


def test_a_cell_whose_writes_are_not_all_in_the_file_is_an_error(tmp_path, monkeypatch):
    # a long deadline, so the cycle cap (two open + close cycles) is what ends each cell
    runner = bench.Bench(str(tmp_path), dict(TINY, duration=60.0), log=lambda _m: None)
    row = runner.run_writes_once("tradestore-nofsync", 100, 1, "ok")
    assert row["writes"] == 2 * TINY["cycle_cap"] and row["writes_per_s"] > 0
    assert not os.path.exists(tmp_path / "runs" / "ok")  # the copy is removed after the cell
    monkeypatch.setattr(bench, "count_trades", lambda impl, path: 100)  # as if the opens were lost
    with pytest.raises(RuntimeError, match=r"tradestore-nofsync n=100 writers=1: expected 102 trades, found 100"):
        runner.run_writes_once("tradestore-nofsync", 100, 1, "lost")


def test_a_failed_hand_off_player_stops_the_run_with_its_traceback(tmp_path):
    # No runs/ directory: the first player cannot open the lock file. With no rounds to play the
    # other player ends at once instead of waiting for a hand-off that will never come.
    runner = bench.Bench(str(tmp_path / "nowhere"), dict(TINY, handoff_rounds=0), log=lambda _m: None)
    with pytest.raises(RuntimeError) as info:
        runner.run_handoff()
    assert str(info.value).startswith("hand-off FileLock failed:\nTraceback")
    assert "FileNotFoundError" in str(info.value)


def test_machine_info_without_proc_or_sysconf(tmp_path, monkeypatch):
    def no_proc(*args, **kwargs):
        raise OSError("no /proc here")

    def no_sysconf(name):
        raise ValueError(f"unrecognized configuration name {name}")

    monkeypatch.setattr(bench, "open", no_proc, raising=False)
    monkeypatch.setattr(os, "sysconf", no_sysconf)
    info = bench.machine_info(str(tmp_path))
    assert info["filesystem"] == "unknown"
    assert info["memory_gib"] is None
    assert info["cpu"] == (platform.processor() or platform.machine())


def test_the_file_system_is_the_longest_matching_mount(tmp_path, monkeypatch):
    mounts = "rootfs / ext4 rw 0 0\nbench /data xfs rw 0 0\nother /datax tmpfs rw 0 0\n"
    monkeypatch.setattr(bench, "open", lambda *a, **k: io.StringIO(mounts), raising=False)
    assert bench._fs_type("/data/runs") == "xfs"
    assert bench._fs_type("/datax") == "tmpfs"
    assert bench._fs_type("/home") == "ext4"


def _row(impl, n, w, per_s, runs=2):
    return {"impl": impl, "history": n, "writers": w, "writes_per_s": per_s, "ratio_to_reference": 1.0,
            "ms_per_write": 1.5, "max_ms": 9.0,
            "runs": [{"ms_per_write": 1.0 + r, "writes_per_s": per_s + r, "p95_ms": 2.0, "max_ms": 9.0 - r}
                     for r in range(runs)]}


def _journal_row(n, w, per_s, amortised_ms=0.0):
    return dict(_row(JOURNAL, n, w, per_s), checkpoint={
        "worst_ms": 40.0, "writes_between": 800.0, "amortised_ms": amortised_ms})


def test_targets_are_judged_only_on_the_cells_measured():
    report = {"writes": [_row("tradestore", 1000, 1, 600.0), _row("seed-pattern", 1000, 1, 100.0),
                         _row("tradestore", 10000, 1, 100.0)],  # no seed cell at 10,000
              "reconcile": [{"history": 1000, "median_s": 0.1}, {"history": 10000, "median_s": 1.5}]}
    assert bench.check_targets(report) == [
        {"name": ">= 5x seed-pattern writes/s at 1,000 trades, one writer, fsync on", "ok": True, "detail": "6.0x"},
        {"name": "tradestore (document format) >= 108 writes/s at 10,000 trades, one writer "
                 "(3x the 36 before the incremental ledger)", "ok": False, "detail": "100 writes/s"},
        {"name": "reconcile() of 10,000 trades < 1 s", "ok": False, "detail": "1.500 s"},
    ]
    assert bench.check_targets({}) == []


def test_journal_targets_count_the_checkpoint_and_judge_one_writer():
    report = {"writes": [_journal_row(1000, 1, 1000.0), _journal_row(100000, 1, 800.0, amortised_ms=0.3),
                         _journal_row(10000, 1, 900.0), _row(SQLITE, 10000, 1, 300.0),
                         _journal_row(10000, 4, 200.0), _row(SQLITE, 10000, 4, 250.0)],
              "reconcile": [{"history": 100000, "median_s": 0.9}]}
    assert bench.check_targets(report) == [
        # 1.25 ms of appends plus 0.3 of amortised checkpoint against 1.00: over 1.5x
        {"name": "tradestore-journal write cost at 100,000 trades <= 1.5x its cost at 1,000, one writer "
                 "(checkpoints amortised)", "ok": False, "detail": "1.55x (1.55 ms vs 1.00 ms per write)"},
        {"name": "tradestore-journal writes/s >= sqlite-wal-full's at 10,000 trades, one writer", "ok": True,
         "detail": "900 vs 300 (3.00x)"},
        {"name": "tradestore-journal writes/s >= sqlite-wal-full's at 10,000 trades, 4 writers", "ok": False,
         "detail": "200 vs 250 (0.80x)", "judged": False},
        {"name": "reconcile() of 100,000 trades < 1 s", "ok": True, "detail": "0.900 s"},
    ]
    report["writes"][1]["checkpoint"]["amortised_ms"] = 0.2
    assert bench.check_targets(report)[0]["ok"]
    # The journal left out: its targets are said not to be measured, and never fail the run.
    assert bench.check_targets({"writes": [_row("tradestore", 1000, 1, 600.0)],
                                "left_out": {JOURNAL: "no journal here"}}) == [
        {"name": "tradestore-journal targets", "ok": False, "judged": False, "detail": "not measured: no journal here"}]


def test_the_default_cells_measure_the_other_stores_only_where_cheap(tmp_path):
    cfg = dict(TINY, sizes=(1000, 10000, 100000), writers=(1, 4))
    cells = bench.Bench(str(tmp_path), cfg, log=lambda _m: None).cells()
    assert {(n, w) for i, n, w in cells if i == "seed-pattern"} == {(1000, 1), (10000, 1)}
    for impl in SIDE_BY_SIDE:
        assert {(n, w) for i, n, w in cells if i == impl} == {(n, w) for n in cfg["sizes"] for w in cfg["writers"]}
    assert cells[:4] == [(impl, 1000, 1) for impl in SIDE_BY_SIDE]  # side by side first, in its order
    named = bench.Bench(str(tmp_path), dict(cfg, impls=("tradestore", "seed-pattern"), reach={}),
                        log=lambda _m: None).cells()
    assert [c for c in named if c[0] == "seed-pattern"] == [("seed-pattern", n, w) for n in cfg["sizes"]
                                                             for w in cfg["writers"]]


MACHINE = {"cpu": "cpu", "cores": 2, "memory_gib": 4.0, "os": "Linux", "python": "3.11", "sqlite": "3",
           "filesystem": "ext4", "loadavg_at_start": (0.5, 0.25, 0.0)}


def test_render_shows_only_the_parts_that_ran():
    bare = bench.render({"machine": MACHINE, "config": {"repeat": 1}})
    assert bare.startswith("machine: cpu, 2 cores, 4.0 GiB") and "load average at start 0.50, 0.25, 0.00" in bare
    assert "|" not in bare and "targets" not in bare
    full = bench.render({
        "machine": MACHINE, "config": {"repeat": 2},
        "writes": [_row("tradestore", 1000, 1, 500.0)],
        "reconcile": [{"history": 1000, "seconds": [0.1, 0.3, 0.2]}],
        "handoff": [{"lock": "flock", "rounds": 4, "median_us": 50.0, "p90_us": 80.0, "max_us": 99.0}],
        "rss": [{"impl": "tradestore", "history": 1000, "rss_peak_kib": 20480, "rss_start_kib": 10240}],
        "targets": [{"name": "t1", "ok": False, "detail": "3.0x"}, {"name": "t2", "ok": True, "detail": "1"},
                    {"name": "t3", "ok": False, "detail": "2", "judged": False}],
    })
    assert "| tradestore | 1,000 | 1 | 1.50 [1.00-2.00] | 2.0 | 9.0 | 500 [500-501] | 1.00 |" in full
    assert "| cold | 1,000 | 0.200 [0.100-0.300] |" in full
    assert "| flock (4 hand-offs) | 50 us | 80 us | 99 us |" in full
    assert "| tradestore | 20.0 MiB | 10.0 MiB |" in full
    assert "  [FAIL] t1: 3.0x\n  [PASS] t2: 1\n  [info: not met] t3: 2\n" in full
    assert "journal checkpoint" not in full and "not available" not in full


def test_the_side_by_side_tables_give_the_ratios_and_the_worst_writes():
    out = bench.render({
        "machine": MACHINE, "config": {"repeat": 2}, "left_out": {"tradestore-pg": "no server"},
        "writes": [_row("tradestore", 1000, 1, 500.0), _journal_row(1000, 1, 1000.0), _row(SQLITE, 1000, 1, 800.0),
                   _row(FLOOR, 1000, 1, 2000.0), _row("seed-pattern", 1000, 1, 20.0),
                   _row("tradestore", 1000, 4, 500.0), dict(_row(FLOOR, 1000, 4, 2000.0), max_ms=123.4,
                                                           ratio_to_reference=None)],
    })
    assert "tradestore-pg: not available here: no server" in out
    assert ("| history | writers | tradestore | tradestore-journal | sqlite-wal-full | append-fsync-floor "
            "| journal / SQLite |") in out
    assert "| 1,000 | 1 | 500 (0.25x) | 1,000 (0.50x) | 800 (0.40x) | 2,000 (1.00x) | 1.25x |" in out
    assert "| 1,000 | 4 | 500 (0.25x) | - | - | 2,000 (1.00x) | - |" in out
    assert "| 1,000 | 1 | 9.0 / 1.50 | 9.0 / 1.50 | 9.0 / 1.50 | 9.0 / 1.50 |" in out
    assert "| 1,000 | 4 | 9.0 / 1.50 | - | - | 123.4 / 1.50 |" in out
    assert "| tradestore-journal | 1,000 | 1 | 40.0 | 800 | 0.0000 |" in out
    assert "| append-fsync-floor | 1,000 | 4 | 1.50 [1.00-2.00] | 2.0 | 123.4 | 2000 [2000-2001] | - |" in out
    assert "| seed-pattern | 1,000 | 1 |" in out  # in the full table, not side by side
    assert "seed-pattern |" not in out.split("| store |")[0]


MISSED = [{"name": "reconcile() of 10,000 trades < 1 s", "ok": False, "detail": "9.000 s"}]


def test_options_reach_the_configuration(tmp_path, capsys):
    out = tmp_path / "r.json"
    code = bench.main(["--quick", "--only", "reconcile", "--repeat", "2", "--duration", "0.05", "--sizes", "100,200",
                       "--writers", "1,2", "--json", str(out), "--dir", str(tmp_path / "work")])
    assert code == 0
    report = json.loads(out.read_text())
    cfg = report["config"]
    assert (cfg["repeat"], cfg["duration"], cfg["sizes"], cfg["writers"]) == (2, 0.05, [100, 200], [1, 2])
    assert cfg["rss_size"] == 200  # the quick default (1,000) is not among the sizes: the largest is
    assert set(report) == {"config", "machine", "reconcile", "targets", "elapsed_s"}
    assert [len(r["seconds"]) for r in report["reconcile"]] == [2, 2, 2]  # cold, following each format
    assert os.path.isdir(tmp_path / "work")  # --dir is kept
    captured = capsys.readouterr()
    assert "| reconcile() | history | seconds |" in captured.out and "| store |" not in captured.out
    assert f"raw figures written to {out}" in captured.err


@pytest.mark.parametrize("value", ["0", str(len(WORKER_SYMBOLS) + 1)])
def test_too_many_or_too_few_writers_is_a_usage_error(value, capsys):
    with pytest.raises(SystemExit) as info:
        bench.main(["--quick", "--writers", value])
    assert info.value.code == 2
    assert f"--writers must be between 1 and {len(WORKER_SYMBOLS)}" in capsys.readouterr().err


def test_missed_targets_fail_a_full_run_unless_told_not_to(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(bench, "FULL", dict(TINY, repeat=1))
    monkeypatch.setattr(bench, "check_targets", lambda report: MISSED)
    auto = tmp_path / "auto"
    monkeypatch.setattr(bench.tempfile, "mkdtemp", lambda prefix: str(auto))
    assert bench.main(["--only", "reconcile"]) == 1
    assert not auto.exists()  # a temporary directory of its own is removed after the run
    assert "[FAIL] reconcile() of 10,000 trades < 1 s: 9.000 s" in capsys.readouterr().out
    monkeypatch.setattr(bench, "check_targets", lambda report: [dict(MISSED[0], judged=False)])
    assert bench.main(["--only", "reconcile", "--dir", str(tmp_path / "d")]) == 0  # reported, not judged
    monkeypatch.setattr(bench, "check_targets", lambda report: MISSED)
    assert bench.main(["--only", "reconcile", "--no-targets", "--dir", str(tmp_path / "d")]) == 0
    assert bench.main(["--only", "reconcile", "--quick", "--dir", str(tmp_path / "d")]) == 0
    assert "targets are reported but not judged in --quick" in capsys.readouterr().err


def test_the_stores_of_a_cell_take_turns_run_by_run(tmp_path, monkeypatch):
    calls = []

    def fake_run(self, impl, n, w, tag, fmt=None):
        calls.append(tag)
        return {"writes": 4, "writes_per_s": 10.0, "ms_per_write": 1.0, "max_ms": 2.0, "p95_ms": 1.5}

    monkeypatch.setattr(bench.Bench, "run_writes_once", fake_run)
    cfg = dict(TINY, sizes=(100,), writers=(1, 4), repeat=2, impls=("tradestore", "sqlite-wal-full"))
    rows = bench.Bench(str(tmp_path), cfg, log=lambda _m: None).run_writes()
    assert calls == [f"{impl}-100-{w}-{r}" for w in (1, 4) for r in (0, 1) for impl in ("tradestore", "sqlite-wal-full")]
    assert [(r["impl"], r["writers"], len(r["runs"])) for r in rows] == [
        ("tradestore", 1, 2), ("sqlite-wal-full", 1, 2), ("tradestore", 4, 2), ("sqlite-wal-full", 4, 2)]
