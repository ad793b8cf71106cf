"""The library vendored by copying one folder: it imports and runs with nothing else beside it."""

from __future__ import annotations

import json
import pathlib
import shutil
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent


def _run(cwd: pathlib.Path, *args: str) -> subprocess.CompletedProcess:
    # -E: no PYTHONPATH (the repository), -s: no user site; -m puts the working directory
    # first on the path, so the copy is found before any installed tradestore.
    return subprocess.run([sys.executable, "-E", "-s", "-m", "tradestore", *args],
                          cwd=cwd, capture_output=True, text=True, timeout=120)


def test_a_copied_folder_runs_as_python_dash_m_tradestore(tmp_path):
    shutil.copytree(ROOT / "tradestore", tmp_path / "tradestore", ignore=shutil.ignore_patterns("__pycache__"))
    opened = _run(tmp_path, "open", "BTC", "LONG", "100", "95", "110", "1", "--json")
    assert opened.returncode == 0, opened.stderr
    record = json.loads(opened.stdout)
    assert record["id"] == "T001" and record["symbol"] == "BTC"
    status = _run(tmp_path, "status", "--json")
    assert status.returncode == 0, status.stderr
    assert json.loads(status.stdout)["positions"]["open"] == 1
    # the module really is the copy, not an installed tradestore
    where = subprocess.run([sys.executable, "-E", "-s", "-c", "import tradestore; print(tradestore.__file__)"],
                           cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert pathlib.Path(where.stdout.strip()).parent == tmp_path / "tradestore"
