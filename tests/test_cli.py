"""The `tradestore` command: limits from the shared config, one-line errors, exit codes."""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tradestore import RiskLimits, TradeStore
from tradestore.cli import (EXIT_BROKEN_PIPE, EXIT_CODES, EXIT_FAILED, EXIT_INTERRUPTED, EXIT_USAGE, LIMIT_OPTIONS,
                            build_parser, main, positive_seconds, subcommands)

ROOT = pathlib.Path(__file__).resolve().parent.parent
COMMANDS = subcommands(build_parser())


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_open_partial_update_close_and_status(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert run(capsys, "open", "BTC", "LONG", "65000", "63500", "68000", "0.02", "--setup", "RSI_Div")[0] == 0
    code, out, _ = run(capsys, "partial", "T001", "0.5", "66500")
    assert code == 0 and "size 0.01" in out
    assert run(capsys, "update", "T001", "--set", "stop_price=65000", "--set", "notes=trail")[0] == 0
    code, out, _ = run(capsys, "close", "T001", "67000", "--reason", "TP hit", "--json")
    assert code == 0 and json.loads(out)["pnl_usd"] == 20.0 and json.loads(out)["net_pnl_usd"] == 35.0
    run(capsys, "open", "ETH", "LONG", "3000", "2950", "3300", "1")
    code, out, _ = run(capsys, "status")
    assert code == 0
    assert "positions    1/7" in out
    assert "equity       5035.00 USD" in out
    assert "group risk   crypto_majors 50.00/201.40 USD" in out
    code, out, _ = run(capsys, "status", "--json")
    report = json.loads(out)
    assert report["positions"] == {"open": 1, "max": 7} and report["equity"] == pytest.approx(5035.0)


def test_limits_come_from_the_shared_config_and_flags_override(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "tradestore.toml").write_text(
        'trade_log = "data/trades.json"\n[limits]\nmax_positions = 1\n[correlation_groups]\npair = ["A", "B"]\n'
    )
    (tmp_path / "data").mkdir()
    assert run(capsys, "open", "A", "LONG", "10", "9", "12", "1")[0] == 0
    code, _, err = run(capsys, "open", "C", "LONG", "10", "9", "12", "1")
    assert code == 1 and err.count("\n") == 1 and "position_cap: 1/1 positions open" in err
    assert run(capsys, "open", "C", "LONG", "10", "9", "12", "1", "--max-positions", "2")[0] == 0
    assert [t["symbol"] for t in TradeStore(tmp_path / "data" / "trades.json").get_all_trades()] == ["A", "C"]
    _, out, _ = run(capsys, "status")
    assert "group risk   pair 1.00/200.00 USD" in out


@pytest.mark.parametrize(
    "config,message",
    [("[limits]\nmax_position = 3\n", "unknown [limits] keys"), ("not toml = = 1", "invalid TOML")],
)
def test_bad_config_is_a_usage_error(tmp_path, capsys, monkeypatch, config, message):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "tradestore.toml").write_text(config)
    code, _, err = run(capsys, "status")
    assert code == 2 and message in err


def test_missing_explicit_config_is_a_usage_error(tmp_path, capsys):
    code, _, err = run(capsys, "status", "--config", str(tmp_path / "nope.toml"))
    assert code == 2 and "does not exist" in err


def test_errors_are_one_line_and_exit_one(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, _, err = run(capsys, "close", "T404", "1")
    assert code == 1 and err.strip() == "tradestore close: TradeNotFound: trade 'T404' not found"
    code, _, err = run(capsys, "open", "X", "LONG", "1", "2", "3", "1")
    assert code == 1 and "stop_price=2.0" in err
    code, _, err = run(capsys, "update", "T001", "--set", "stop_price")
    assert code == 2 and "FIELD=VALUE" in err
    code, _, err = run(capsys, "update", "T001", "--set", "stop_price=abc")
    assert code == 2 and "must be a number" in err
    code, _, err = run(capsys, "update", "T001")
    assert code == 2
    (tmp_path / "trades.json").write_text("{torn")
    code, _, err = run(capsys, "status")
    assert code == 1 and "CorruptTradeLog" in err


def test_verify_and_recover(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    run(capsys, "open", "A", "LONG", "10", "9", "12", "1")
    run(capsys, "open", "B", "LONG", "10", "9", "12", "1")
    code, out, _ = run(capsys, "verify")
    assert code == 0 and "ok (2 trades)" in out
    doc = json.loads((tmp_path / "trades.json").read_text())
    doc["trades"][0]["size"] = -1
    (tmp_path / "trades.json").write_text(json.dumps(doc))
    code, out, _ = run(capsys, "verify")
    assert code == 1 and "T001: size -1" in out
    (tmp_path / "trades.json").write_text("")
    code, _, err = run(capsys, "recover")  # an empty log shows no next_id: the ids given out are unknown
    assert code == 1 and "RecoveryRefused" in err and "--next-id" in err
    code, out, _ = run(capsys, "recover", "--next-id", "3")
    assert code == 0 and "1 trades, next id T003" in out
    code, out, _ = run(capsys, "recover")
    assert code == 0 and "nothing to recover" in out
    code, _, err = run(capsys, "recover", "--force")
    assert code == 1 and "never replaces a readable log" in err


def test_init_writes_a_config_that_loads(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert run(capsys, "init")[0] == 0
    assert run(capsys, "init")[0] == 2
    assert run(capsys, "init", "--force")[0] == 0
    code, out, _ = run(capsys, "status")
    assert code == 0 and "positions    0/7" in out


def test_the_config_init_writes_gives_exactly_the_librarys_default_limits(tmp_path, capsys, monkeypatch):
    # Its [correlation_groups] table replaces the built-in groups: a table of one group
    # dropped the other four caps for everyone who started from the example.
    from tradestore.cli import load_config, store_from_args, build_parser

    monkeypatch.chdir(tmp_path)
    assert run(capsys, "init")[0] == 0
    config, _ = load_config(None)
    assert set(config["correlation_groups"]) == set(RiskLimits().correlation_groups)
    store = store_from_args(build_parser().parse_args(["status"]))
    assert store.limits == RiskLimits()


@pytest.mark.parametrize("broken", ["a broken config", "a directory for the log"])
def test_init_force_replaces_what_keeps_every_other_command_from_starting(tmp_path, capsys, monkeypatch, broken):
    monkeypatch.chdir(tmp_path)
    if broken == "a broken config":
        (tmp_path / "tradestore.toml").write_text("[limits\n")
    else:
        (tmp_path / "trades.json").mkdir()
        (tmp_path / "tradestore.toml").write_text("")
    assert run(capsys, "status")[0] == 2 if broken == "a broken config" else run(capsys, "status")[0] != 0
    code, _, err = run(capsys, "init", "--force")
    assert code == 0, err
    assert "[correlation_groups]" in (tmp_path / "tradestore.toml").read_text()


def test_loss_capped_symbols_are_listed(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for _ in range(3):
        run(capsys, "open", "XRP", "LONG", "10", "9", "12", "1")
        run(capsys, "close", TradeStore(tmp_path / "trades.json").get_open_trades()[0]["id"], "9.5")
    _, out, _ = run(capsys, "status")
    assert "loss-capped  XRP: last 3/3 closed trades lost" in out


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_every_command_has_help(command):
    proc = subprocess.run([sys.executable, "-m", "tradestore.cli", command, "--help"], capture_output=True, text=True)
    assert proc.returncode == 0 and "usage: tradestore" in proc.stdout


# --------------------------------------------------------------------------- --json, typed

NUMBER, OPTIONAL_NUMBER, TEXT, OPTIONAL_TEXT = "number", "number or null", "text", "text or null"


def check_shape(value, shape, where="$"):
    """Assert ``value`` has exactly ``shape``: dict keys, list items, and JSON scalar kinds
    (a number is an int or float, never a bool or a string)."""
    if isinstance(shape, dict):
        assert isinstance(value, dict), f"{where}: {value!r} is not an object"
        assert set(value) == set(shape), f"{where}: keys {sorted(value)} != {sorted(shape)}"
        for key, sub in shape.items():
            check_shape(value[key], sub, f"{where}.{key}")
    elif isinstance(shape, list):
        assert isinstance(value, list) and value, f"{where}: {value!r} is not a non-empty list"
        for i, item in enumerate(value):
            check_shape(item, shape[0], f"{where}[{i}]")
    elif shape in (NUMBER, OPTIONAL_NUMBER):
        if value is None and shape == OPTIONAL_NUMBER:
            return
        assert type(value) in (int, float), f"{where}: {value!r} is not a number"
    elif shape in (TEXT, OPTIONAL_TEXT):
        if value is None and shape == OPTIONAL_TEXT:
            return
        assert isinstance(value, str), f"{where}: {value!r} is not text"
    else:
        assert type(value) is shape or (shape is type(None) and value is None), f"{where}: {value!r} is not {shape}"


TRADE = {
    "id": TEXT, "symbol": TEXT, "direction": TEXT, "entry_price": NUMBER, "stop_price": NUMBER,
    "original_stop": NUMBER, "target_price": NUMBER, "size": NUMBER, "original_size": NUMBER,
    "entry_time": TEXT, "exit_price": OPTIONAL_NUMBER, "exit_time": OPTIONAL_TEXT, "exit_reason": OPTIONAL_TEXT,
    "pnl_usd": OPTIONAL_NUMBER, "pnl_pct": OPTIONAL_NUMBER, "r_multiple": OPTIONAL_NUMBER,
    "net_pnl_usd": OPTIONAL_NUMBER, "net_r_multiple": OPTIONAL_NUMBER,
    "status": TEXT, "setup_type": TEXT, "grade": TEXT, "notes": TEXT, "partial_exits": list,
    "lessons": TEXT,
}
STATUS = {
    "trade_log": TEXT, "trades": int, "next_id": TEXT, "starting_capital": NUMBER, "realized_pnl": NUMBER,
    "equity": NUMBER, "positions": {"open": int, "max": int},
    "open_trades": [{"id": TEXT, "symbol": TEXT, "direction": TEXT, "size": NUMBER, "entry_price": NUMBER,
                     "risk_usd": NUMBER}],
    "open_risk_usd": NUMBER, "open_risk_budget_usd": OPTIONAL_NUMBER,
    "group_risk": {"pair": {"used_usd": NUMBER, "budget_usd": NUMBER}},
    "loss_capped": [{"symbol": TEXT, "reason": TEXT}], "integrity_violations": list,
}
VERIFY = {"trade_log": TEXT, "trades": int, "violations": list, "ok": bool,
          "derived": {"output_dir": TEXT, "differing": dict, "ok": bool}}
RECONCILE = {"written": list, "healed": dict, "updated": list, "aborted": bool, "reason": type(None),
             "source": {"sha256": TEXT, "trade_count": int, "next_id": int}, "violations": list,
             "elapsed_s": NUMBER}
RECOVER = {"trade_log": TEXT, "restored": bool, "trades": int, "next_id": TEXT, "summary": TEXT}
INIT = {"config": TEXT, "written": bool}
CONVERT = {"trade_log": TEXT, "log_format": TEXT, "trades": int, "summary": TEXT}
EXPORT = {"trade_log": TEXT, "output": TEXT, "trades": int}

# Every command, in an order that works on one log, with the shape of its --json document.
JSON_COMMANDS = [
    (["init", "--force"], INIT),
    (["open", "XRP", "LONG", "10", "9", "12", "1"], TRADE),
    (["close", "T001", "9.5"], TRADE),
    (["open", "A", "LONG", "10", "9", "12", "1", "--max-drawdown-pct", "50"], TRADE),
    (["partial", "T002", "0.5", "11"], TRADE),
    (["update", "T002", "--set", "stop_price=9.5"], TRADE),
    (["status", "--max-portfolio-heat-pct", "6"], STATUS),
    (["reconcile", "--out", "st"], RECONCILE),
    (["verify", "--out", "st"], VERIFY),
    (["convert", "--to", "journal"], CONVERT),
    (["export", "--output", "export.json"], EXPORT),
    (["compact"], CONVERT),
    (["recover"], RECOVER),
]


def test_every_command_prints_typed_json(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "tradestore.toml").write_text('[limits]\nasset_consecutive_loss_cap = 1\n'
                                              '[correlation_groups]\npair = ["A", "B"]\n')
    covered = {argv[0] for argv, _ in JSON_COMMANDS} | {argv[0] for argv, _ in PG_JSON_COMMANDS}
    assert covered == set(COMMANDS), "a command has no --json case"
    for argv, shape in JSON_COMMANDS:
        if argv[0] == "init":  # keep the test's config: init writes tradestore.toml in the cwd
            monkeypatch.chdir(tmp_path / "st" if (tmp_path / "st").exists() else tmp_path.parent)
            code, out, err = run(capsys, *argv, "--json", "--log", str(tmp_path / "trades.json"))
            monkeypatch.chdir(tmp_path)
        else:
            code, out, err = run(capsys, *argv, "--json", "--no-fsync")
        assert code == 0, (argv, err)
        check_shape(json.loads(out), shape, argv[0])


PG_JSON_COMMANDS = [
    (["pg-init", "--dsn", "host=db"], {"ready": bool, "summary": TEXT}),
    (["pg-export", "--dsn", "host=db", "--account", "bot", "--out", "export.json"],
     {"account": TEXT, "out": TEXT, "trades": int}),
]


@pytest.mark.parametrize("argv", [["open", "BTC", "--json"], ["reconcile", "--every=0", "--json"], ["--json"]])
def test_usage_errors_with_json_are_one_json_object(capsys, argv):
    with pytest.raises(SystemExit) as exc:
        main(argv)
    out, err = capsys.readouterr()
    error = json.loads(err)
    assert exc.value.code == 2 and out == "" and error["error"] == "UsageError" and error["exit"] == 2
    assert error["message"]


def test_postgres_commands_print_typed_json(tmp_path, capsys, monkeypatch):
    # The database is stood in for: this checks what the command prints, tests/test_pg_store.py
    # runs the same commands against a real server.
    from tradestore import pgstore

    class Account:
        def __init__(self, account, dsn):
            assert (account, dsn) == ("bot", "host=db")

        def export(self, path):
            return 3

    monkeypatch.setattr(pgstore, "init_schema", lambda dsn: "tradestore schema ready (0 accounts)")
    monkeypatch.setattr(pgstore, "PgTradeStore", Account)
    monkeypatch.chdir(tmp_path)
    for argv, shape in PG_JSON_COMMANDS:
        code, out, err = run(capsys, *argv, "--json")
        assert code == 0, err
        check_shape(json.loads(out), shape, argv[0])
    assert json.loads(run(capsys, *PG_JSON_COMMANDS[1][0], "--json")[1])["trades"] == 3


def test_json_status_counts_are_integers_and_amounts_numbers(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    run(capsys, "open", "ETH", "LONG", "3000", "2950", "3300", "1")
    code, out, _ = run(capsys, "status", "--json")
    report = json.loads(out)
    assert report["positions"] == {"open": 1, "max": 7}
    assert report["group_risk"]["crypto_majors"]["used_usd"] == pytest.approx(50.0)
    assert report["open_trades"][0]["risk_usd"] == pytest.approx(50.0)


def test_errors_with_json_are_one_json_object_on_stderr(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, out, err = run(capsys, "close", "T404", "1", "--json")
    assert code == 1 and out == ""
    assert json.loads(err) == {"error": "TradeNotFound", "message": "trade 'T404' not found", "exit": 1}
    run(capsys, "open", "A", "LONG", "10", "9", "12", "1", "--max-positions", "1")
    code, _, err = run(capsys, "open", "B", "LONG", "10", "9", "12", "1", "--max-positions", "1", "--json")
    error = json.loads(err)
    assert code == 1 and error["error"] == "RiskRejected" and error["check"] == "position_cap"
    assert "1/1" in error["reason"]
    code, _, err = run(capsys, "status", "--json", "--config", "missing.toml")
    assert code == 2 and json.loads(err)["exit"] == 2 and "does not exist" in json.loads(err)["message"]


def test_verify_json_reports_violations_and_differing_files_with_exit_1(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    run(capsys, "open", "A", "LONG", "10", "9", "12", "1")
    run(capsys, "reconcile", "--out", "st", "--no-fsync")
    (tmp_path / "st" / "equity.json").write_text("{}")
    code, out, _ = run(capsys, "verify", "--out", "st", "--json")
    report = json.loads(out)
    assert code == 1 and report["ok"] is False and report["derived"]["differing"] == {"equity.json": "different"}
    doc = json.loads((tmp_path / "trades.json").read_text())
    doc["trades"][0]["size"] = -1
    (tmp_path / "trades.json").write_text(json.dumps(doc))
    code, out, _ = run(capsys, "verify", "--out", "st", "--json")
    report = json.loads(out)
    assert code == 1 and report["ok"] is False and report["derived"] is None
    assert any("size -1" in v for v in report["violations"])


def test_recover_json_says_whether_it_restored(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    run(capsys, "open", "A", "LONG", "10", "9", "12", "1")
    run(capsys, "open", "B", "LONG", "10", "9", "12", "1")
    (tmp_path / "trades.json").write_text("{torn")
    # "{torn" shows no next_id: T002 may have been given out, so ids continue where told.
    code, out, _ = run(capsys, "recover", "--json", "--next-id", "3")
    report = json.loads(out)
    assert code == 0 and report["restored"] is True and report["trades"] == 1 and report["next_id"] == "T003"
    code, out, _ = run(capsys, "recover", "--json")
    assert code == 0 and json.loads(out)["restored"] is False


# --------------------------------------------------------------------------- exit codes, --every

@pytest.mark.parametrize("every", ["0", "-5", "nan", "inf", "-inf", "soon", "0.0"])
def test_reconcile_every_refuses_what_is_not_a_positive_number_of_seconds(tmp_path, capsys, monkeypatch, every):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exc:
        main(["reconcile", f"--every={every}"])
    _, err = capsys.readouterr()
    assert exc.value.code == 2 and "--every" in err and repr(every) in err
    assert not (tmp_path / "state").exists()


def test_positive_seconds_accepts_small_positive_numbers():
    assert positive_seconds("0.05") == 0.05 and positive_seconds("900") == 900.0


def test_usage_errors_exit_2_and_refusals_exit_1(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for argv in (["open", "BTC"], ["partial", "T001", "half", "1"], ["frobnicate"], []):
        with pytest.raises(SystemExit) as exc:
            main(argv)
        assert exc.value.code == EXIT_USAGE, argv
    assert run(capsys, "status", "--max-positions", "0")[0] == EXIT_USAGE  # a bad limit: configuration
    run(capsys, "open", "A", "LONG", "10", "9", "12", "1")
    code, _, err = run(capsys, "partial", "T001", "1.5", "11")
    assert code == EXIT_FAILED and "close_pct" in err  # the argument's name in the usage line too
    assert "close_pct" in COMMANDS["partial"].format_usage()


def test_interrupt_exits_130(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)

    def interrupted(store, args):
        raise KeyboardInterrupt

    monkeypatch.setattr("tradestore.cli.cmd_status", interrupted)
    assert run(capsys, "status")[0] == EXIT_INTERRUPTED


def test_exit_codes_are_documented_in_the_readme_and_in_help():
    readme = (ROOT / "README.md").read_text()
    parser_help = build_parser().format_help()
    for code, meaning in EXIT_CODES.items():
        assert f"`{code}`" in readme, f"exit status {code} is not documented in README.md"
        assert f"  {code} " in parser_help


@pytest.mark.parametrize("command", [c for c in COMMANDS if not c.startswith("pg-")])
def test_every_subcommand_on_a_trade_log_lists_the_limit_flags_in_its_help(command):
    text = COMMANDS[command].format_help()
    for name in LIMIT_OPTIONS:
        assert "--" + name.replace("_", "-") in text, (command, name)
    assert "exit status:" in text


def test_limit_help_shows_the_library_defaults():
    text = " ".join(COMMANDS["status"].format_help().split())
    assert "(default 7)" in text and "(default 30)" in text and "(default off)" in text


# --------------------------------------------------------------------------- a good Unix tool

def cli(*argv, **kwargs):
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.run([sys.executable, "-m", "tradestore.cli", *argv], env=env, **kwargs)


def test_version_prints_the_package_version():
    import tradestore

    proc = cli("--version", capture_output=True, text=True)
    assert proc.returncode == 0 and proc.stdout.strip() == f"tradestore {tradestore.__version__}"


@pytest.mark.parametrize("argv", [["status"], ["status", "--json"], ["open", "A", "LONG", "10", "9", "12", "1"]])
def test_a_closed_pipe_exits_quietly(tmp_path, argv):
    # The reading end is closed before the command starts, so its first write meets EPIPE
    # for certain (`tradestore status | head` when head has already exited).
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        proc = cli(*argv, "--no-fsync", stdout=write_end, stderr=subprocess.PIPE, text=True, cwd=tmp_path)
    finally:
        os.close(write_end)
    assert proc.returncode == EXIT_BROKEN_PIPE and proc.stderr == ""
    if argv[0] == "open":  # the write was done before the output failed
        assert [t["symbol"] for t in TradeStore(tmp_path / "trades.json").get_all_trades()] == ["A"]


def test_reconcile_every_with_json_prints_one_json_object_per_line(tmp_path):
    import threading

    from tradestore.cli import run_every
    from tradestore.reconciler import StateReconciler

    TradeStore(tmp_path / "trades.json", fsync=False).open_trade("A", "LONG", 10, 9, 12, 1)
    stop, lines = threading.Event(), []

    def emit(line):
        lines.append(line)
        if len(lines) == 2:
            stop.set()

    assert run_every(StateReconciler(tmp_path / "trades.json", tmp_path / "st", fsync=False), 0.01, stop,
                     as_json=True, emit=emit) == 0
    documents = [json.loads(line) for line in lines]
    assert documents[0]["aborted"] is False and documents[0]["source"]["trade_count"] == 1
    assert documents[-1] == {"stopped": True, "cycles": 2}


def test_a_failed_cycle_with_json_is_a_json_line_and_the_loop_goes_on():
    import threading

    from tradestore.cli import run_every

    class FullDisk:
        output_dir = "st"

        def reconcile(self):
            raise OSError(28, "No space left on device")

    stop, lines = threading.Event(), []

    def emit(line):
        lines.append(line)
        if len(lines) == 2:
            stop.set()

    assert run_every(FullDisk(), 0.01, stop, as_json=True, emit=emit) == 0
    failed = json.loads(lines[0])
    assert failed["failed"] is True and failed["error"] == "OSError" and "No space" in failed["message"]
    assert json.loads(lines[-1]) == {"stopped": True, "cycles": 2}


def test_a_refused_path_is_a_configuration_error_in_its_own_words(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, _, err = run(capsys, "status", "--lock", "other.lock")
    assert code == EXIT_USAGE and "trades.json.lock" in err and "bad limit" not in err
    (tmp_path / "d").mkdir()
    code, _, err = run(capsys, "status", "--log", "d")
    assert code == EXIT_USAGE and "not a regular file" in err
    code, _, err = run(capsys, "status", "--max-positions", "0")
    assert code == EXIT_USAGE and "bad limit in configuration: max_positions" in err


SPELLINGS = {"BTC": ["BTC", "btc", " Btc"], "ETH": ["ETH", "eth\t"]}


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.tuples(st.sampled_from(sorted(SPELLINGS)), st.integers(0, 2), st.booleans()), min_size=1, max_size=9))
def test_status_lists_the_loss_capped_symbols_of_the_reports(tmp_path_factory, trades):
    # One entry per symbol, as risk_state.json's blocked_symbols and open_trade decide it,
    # however the log (written by other tools) spells the symbol.
    from tradestore import StateReconciler
    from tradestore.cli import status_report

    tmp = tmp_path_factory.mktemp("spellings")
    path = tmp / "trades.json"
    writer = TradeStore(path, fsync=False, max_positions=50, max_corr_group_risk_pct=100.0,
                        asset_consecutive_loss_cap=None)
    for symbol, _, won in trades:
        t = writer.open_trade(symbol, "LONG", 100, 95, 110, 1)
        writer.close_trade(t["id"], 101 if won else 99)
    doc = json.loads(path.read_bytes())
    for record, (symbol, spelling, _) in zip(doc["trades"], trades):
        record["symbol"] = SPELLINGS[symbol][spelling % len(SPELLINGS[symbol])]
    path.write_text(json.dumps(doc))
    store = TradeStore(path, fsync=False, max_positions=50, max_corr_group_risk_pct=100.0)
    StateReconciler(path, output_dir=tmp / "state", clock=store.now, fsync=False, limits=store.limits).reconcile()
    blocked = json.loads((tmp / "state" / "risk_state.json").read_text())["blocked_symbols"]
    assert {c["symbol"]: c["reason"] for c in status_report(store)["loss_capped"]} == blocked
    for symbol in SPELLINGS:
        ok, reason = store.can_open_position(symbol)
        assert (symbol in blocked) == (not ok and reason.startswith("loss_cap")), reason
