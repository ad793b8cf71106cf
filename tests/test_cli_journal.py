"""The journal format from the command line: convert, compact, export, and log_format in
tradestore.toml (a bad value is a configuration error that names the choices)."""

from __future__ import annotations

import hashlib
import json
import os
import pathlib
import subprocess
import sys

import pytest

from tradestore import TradeStore
from tradestore.cli import build_parser, main, subcommands

ROOT = pathlib.Path(__file__).resolve().parent.parent
OPEN = ["open", "BTC", "LONG", "100", "95", "110", "1"]


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def cli(*argv, cwd):
    """The command in a process of its own, its stdout as bytes."""
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.run([sys.executable, "-m", "tradestore.cli", *argv], cwd=cwd, env=env, capture_output=True)


def schema(path: pathlib.Path) -> int:
    return json.loads(path.read_bytes())["schema"]


def files(directory: pathlib.Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir())}


def test_convert_to_the_journal_and_back_keeps_every_trade(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    log = tmp_path / "trades.json"
    assert run(capsys, *OPEN)[0] == 0
    code, out, _ = run(capsys, "convert", "--to", "journal")
    assert code == 0 and out.strip() == f"converted {log} to the journal format (1 trades)"
    assert schema(log) == 3 and (tmp_path / "trades.json.journal").exists()
    assert run(capsys, "open", "ETH", "LONG", "100", "95", "110", "1")[0] == 0  # appended to the journal
    assert run(capsys, "convert", "--to", "journal")[1].strip() == f"{log} is already in the journal format (2 trades)"
    code, out, _ = run(capsys, "convert", "--to", "document")
    assert code == 0 and out.strip() == f"converted {log} to the document format (2 trades)"
    assert schema(log) == 2 and not (tmp_path / "trades.json.journal").exists()
    assert [t["symbol"] for t in TradeStore(log).get_all_trades()] == ["BTC", "ETH"]


def test_compact_is_convert_to_document(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "tradestore.toml").write_text('log_format = "journal"\n')
    assert run(capsys, *OPEN)[0] == 0
    assert run(capsys, "open", "ETH", "LONG", "100", "95", "110", "1")[0] == 0
    code, out, _ = run(capsys, "compact", "--json")
    report = json.loads(out)
    assert code == 0 and report["log_format"] == "document" and report["trades"] == 2
    assert "converted" in report["summary"]
    assert schema(tmp_path / "trades.json") == 2 and not (tmp_path / "trades.json.journal").exists()


def test_convert_of_a_log_that_does_not_exist_changes_nothing(tmp_path, capsys):
    code, out, _ = run(capsys, "convert", "--to", "journal", "--log", str(tmp_path / "t.json"))
    assert code == 0 and "does not exist yet; nothing to convert" in out
    assert os.listdir(tmp_path) == ["t.json.lock"]  # the lock taken, no log created


@pytest.mark.parametrize("argv", [["convert"], ["convert", "--to", "sqlite"]])
def test_convert_needs_one_of_the_two_formats(tmp_path, capsys, argv):
    with pytest.raises(SystemExit) as exc:
        main([*argv, "--log", str(tmp_path / "t.json")])
    assert exc.value.code == 2 and "--to" in capsys.readouterr().err


def test_export_prints_the_single_document_byte_for_byte(tmp_path):
    store = TradeStore(tmp_path / "trades.json", log_format="journal")
    for symbol in ("BTC", "ETH"):
        store.open_trade(symbol, "LONG", 100, 95, 110, 1)
    store.close_trade("T001", 110)
    before = files(tmp_path)
    proc = cli("export", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == store.export_document()  # the exact bytes, nothing added
    doc = json.loads(proc.stdout)
    assert doc["schema"] == 2 and "journal" not in doc and doc["trades"] == store.get_all_trades()
    assert files(tmp_path) == before  # a read: nothing written
    # the same bytes a document-format log with these records holds
    store.convert("document")
    plain = TradeStore(tmp_path / "trades.json")
    plain.update_trade("T002", {"notes": "x"})
    plain.update_trade("T002", {"notes": ""})
    assert (tmp_path / "trades.json").read_bytes() == proc.stdout


def test_export_output_writes_the_document_atomically(tmp_path, capsys):
    log = tmp_path / "trades.json"
    store = TradeStore(log, log_format="journal")
    store.open_trade("BTC", "LONG", 100, 95, 110, 1)
    out_dir = tmp_path / "snap"
    out_dir.mkdir()
    code, out, _ = run(capsys, "export", "--log", str(log), "--output", str(out_dir / "trades.json"))
    assert code == 0 and out.strip() == f"wrote {out_dir / 'trades.json'}: 1 trades of {log}"
    assert os.listdir(out_dir) == ["trades.json"]  # no temp left beside it
    assert (out_dir / "trades.json").read_bytes() == store.export_document()
    code, out, _ = run(capsys, "export", "--log", str(log), "--output", str(out_dir / "trades.json"), "--json")
    assert code == 0 and json.loads(out) == {"trade_log": str(log), "output": str(out_dir / "trades.json"),
                                             "trades": 1}


@pytest.mark.parametrize("target", ["trades.json", "trades.json.journal", "trades.json.lock", "trades.json.bak",
                                    "link-to-journal"])
def test_export_never_writes_over_the_logs_own_files(tmp_path, capsys, target):
    log = tmp_path / "trades.json"
    TradeStore(log, log_format="journal").open_trade("BTC", "LONG", 100, 95, 110, 1)
    os.symlink(tmp_path / "trades.json.journal", tmp_path / "link-to-journal")
    before = files(tmp_path)
    code, _, err = run(capsys, "export", "--log", str(log), "--output", str(tmp_path / target))
    assert code == 2 and "would destroy" in err and err.count("\n") == 1
    assert files(tmp_path) == before


def test_log_format_in_the_config_chooses_the_format_of_a_new_log_only(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "tradestore.toml").write_text('trade_log = "new.json"\nlog_format = "journal"\n')
    assert run(capsys, *OPEN)[0] == 0
    assert schema(tmp_path / "new.json") == 3 and (tmp_path / "new.json.journal").exists()
    TradeStore(tmp_path / "old.json").open_trade("BTC", "LONG", 100, 95, 110, 1)  # a document-format log
    assert run(capsys, "open", "ETH", "LONG", "100", "95", "110", "1", "--log", str(tmp_path / "old.json"))[0] == 0
    assert schema(tmp_path / "old.json") == 2 and not (tmp_path / "old.json.journal").exists()


@pytest.mark.parametrize("value", ['"jornal"', '"Journal"', "3", "true", '["journal"]'])
def test_a_bad_log_format_in_the_config_is_a_configuration_error(tmp_path, capsys, monkeypatch, value):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "tradestore.toml").write_text(f"log_format = {value}\n")
    code, _, err = run(capsys, *OPEN)
    assert code == 2 and err.count("\n") == 1
    assert "tradestore.toml: log_format=" in err and "expected 'document'" in err and "'journal'" in err
    assert sorted(os.listdir(tmp_path)) == ["tradestore.toml"]  # nothing attempted


def test_the_example_config_names_log_format():
    from tradestore.cli import config_example

    assert '# log_format = "journal"' in config_example()


@pytest.mark.parametrize("command,words", [("convert", ["--to", "journal", "document"]),
                                           ("compact", ["convert --to document"]),
                                           ("export", ["--output", "document"])])
def test_the_help_says_what_each_command_does(command, words):
    text = " ".join(subcommands(build_parser())[command].format_help().split())
    for word in words:
        assert word in text, (command, word)
