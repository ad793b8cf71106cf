"""The `tradestore` command: limits from the shared config, one-line errors, exit codes."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tradestore import TradeStore
from tradestore.cli import main


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
    assert code == 0 and json.loads(out)["pnl_usd"] == pytest.approx(35.0)
    run(capsys, "open", "ETH", "LONG", "3000", "2950", "3300", "1")
    code, out, _ = run(capsys, "status")
    assert code == 0
    assert "positions    1/7" in out
    assert "equity       5035.00 USD" in out
    assert "group risk   crypto_majors 50.00/201.40 USD" in out
    code, out, _ = run(capsys, "status", "--json")
    report = json.loads(out)
    assert report["positions"] == "1/7" and report["equity"] == pytest.approx(5035.0)


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
    code, out, _ = run(capsys, "recover")
    assert code == 0 and "1 trades" in out
    code, out, _ = run(capsys, "recover")
    assert code == 0 and "nothing to recover" in out


def test_init_writes_a_config_that_loads(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert run(capsys, "init")[0] == 0
    assert run(capsys, "init")[0] == 2
    assert run(capsys, "init", "--force")[0] == 0
    code, out, _ = run(capsys, "status")
    assert code == 0 and "positions    0/7" in out


def test_loss_capped_symbols_are_listed(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for _ in range(3):
        run(capsys, "open", "XRP", "LONG", "10", "9", "12", "1")
        run(capsys, "close", TradeStore(tmp_path / "trades.json").get_open_trades()[0]["id"], "9.5")
    _, out, _ = run(capsys, "status")
    assert "loss-capped  XRP: last 3/3 closed trades lost" in out


@pytest.mark.parametrize("command", ["status", "open", "close", "partial", "update", "verify", "recover", "init"])
def test_every_command_has_help(command):
    proc = subprocess.run([sys.executable, "-m", "tradestore.cli", command, "--help"], capture_output=True, text=True)
    assert proc.returncode == 0 and "usage: tradestore" in proc.stdout
