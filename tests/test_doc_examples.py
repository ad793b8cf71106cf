"""Every fenced code block in README.md, docs/*.md and conformance/README.md runs as shown.

A block's info string says what it is and so how it is tested; anything else fails:

- ```` ```python ````: a script, run in an empty directory; it must exit 0.
- ```` ```sh ````: shell commands, run one after the other (``set -e``) in an empty directory with
  the installed commands on PATH; each must exit 0. Only quick programs (``tradestore`` and a
  few shell tools, :data:`RUNNABLE_PROGRAMS`) may appear in such a block.
- ```` ```sh check ````: commands too long to run in the suite (campaigns, the suite itself, the
  benchmark). Each is parsed by its own program, from the repository root, without running it:
  argparse programs stop right after accepting their arguments, pytest (``ci/test``) right
  after accepting its options, with every test path given existing.
- ```` ```python pytest ```` / ```` ```toml pytest ````: the files of a small project (each block
  starts with a ``# path`` comment naming its file); all such blocks of one document are written
  together and ``python -m pytest`` must pass in that project.
- ```` ```json ````: must parse as JSON.
- ```` ```text ````: output or a file layout, not code; and ```` ```LANG no-run ````: code that is
  deliberately not runnable (a signature, a fragment).
"""

from __future__ import annotations

import json
import os
import pathlib
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from importlib.metadata import entry_points

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
DOCUMENTS = ["README.md", *sorted(p.relative_to(ROOT).as_posix() for p in (ROOT / "docs").glob("*.md")),
             "conformance/README.md"]
NOT_RUN = {"text"} | {f"{lang} no-run" for lang in ("python", "sh", "json", "toml")}
KINDS = {"python", "sh", "sh check", "python pytest", "toml pytest", "json"} | NOT_RUN
FENCE = re.compile(r"^(?P<indent> *)```(?P<info>[^`]*)$")
FILE_HEADER = re.compile(r"# (?P<path>[\w.-]+(?:/[\w.-]+)*\.\w+)(?::.*)?$")
TIMEOUT_S = 300


@dataclass(frozen=True)
class Block:
    document: str
    line: int  # of the opening fence, 1-based
    info: str
    text: str

    @property
    def name(self) -> str:
        return f"{self.document}:{self.line}"


def blocks(document: str) -> list[Block]:
    """The fenced blocks of ``document``, their content dedented to the fence's indentation."""
    found, current = [], None
    for number, line in enumerate((ROOT / document).read_text().splitlines(), 1):
        match = FENCE.match(line)
        if current is None:
            if match:
                current = (number, match["indent"], " ".join(match["info"].split()), [])
        elif match and match["indent"] == current[1] and not match["info"].strip():
            start, indent, info, lines = current
            found.append(Block(document, start, info, "\n".join(l[len(indent):] for l in lines) + "\n"))
            current = None
        else:
            current[3].append(line)
    assert current is None, f"{document}:{current[0]}: code block never closed"
    return found


ALL_BLOCKS = [block for document in DOCUMENTS for block in blocks(document)]


def environment(**extra: str) -> dict[str, str]:
    """The test's environment with the installed commands first on PATH; no pytest or xdist
    variables, so an inner pytest is a fresh session."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "HYPOTHESIS_"))}
    env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", "")
    env.update(extra)
    return env


def run(argv: list[str], cwd: pathlib.Path, env: dict[str, str], what: str) -> subprocess.CompletedProcess:
    proc = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=TIMEOUT_S)
    assert proc.returncode == 0, (f"{what}: exit {proc.returncode}\n--- stdout\n{proc.stdout[-4000:]}"
                                  f"\n--- stderr\n{proc.stderr[-4000:]}")
    return proc


# --------------------------------------------------------------------------- sh check

def console_scripts() -> dict[str, str]:
    return {e.name: e.value for e in entry_points(group="console_scripts")}


def shell_commands(text: str) -> list[list[str]]:
    """Each command of a shell block as words: continuation lines joined, comments dropped."""
    return [words for line in text.replace("\\\n", " ").splitlines()
            if (words := shlex.split(line, comments=True))]


def check_command(words: list[str], where: str) -> None:
    env = {}
    while words and re.fullmatch(r"[A-Z_][A-Z0-9_]*=.*", words[0]):
        name, _, value = words.pop(0).partition("=")
        env[name] = value
    program, args = words[0], words[1:]
    if program in ("python", "python3") or program.endswith("/python"):
        if args[:1] == ["-m"]:
            kind, target, args = "module", args[1], args[2:]
        else:
            kind, target, args = "script", args[0], args[1:]
            assert (ROOT / target).is_file(), f"{where}: {target} does not exist"
    elif program == "ci/test":
        assert os.access(ROOT / program, os.X_OK), f"{where}: {program} is not an executable file"
        kind, target = "module", "pytest"
    elif program in console_scripts():
        module, _, function = console_scripts()[program].partition(":")
        kind, target = "call", f"{module}:{function}"
    else:
        pytest.fail(f"{where}: do not know how to check {program!r}; run the block (```sh) or mark it ```sh no-run")
    if target == "pytest":
        plugin_dir = pathlib.Path(tempfile.mkdtemp())
        (plugin_dir / "doc_parse_only.py").write_text(PYTEST_PARSE_ONLY_PLUGIN)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(plugin_dir), os.environ.get("PYTHONPATH")]))
        try:
            proc = run([sys.executable, "-m", "pytest", "-p", "doc_parse_only", "-p", "no:cacheprovider", *args],
                       ROOT, environment(**env), f"{where}: {shlex.join(words)}")
        finally:
            shutil.rmtree(plugin_dir)
        assert "arguments accepted" in proc.stdout, proc.stdout[-2000:]
        return
    proc = run([sys.executable, "-c", PARSE_ONLY_PROGRAM, kind, target, *args], ROOT, environment(**env),
               f"{where}: {shlex.join(words)}")
    assert "arguments accepted" in proc.stdout or proc.stdout.startswith("usage:"), (
        f"{where}: {shlex.join(words)} did not reach its argument parser:\n{proc.stdout[-2000:]}")


# A pytest plugin that stops the session once pytest has accepted its options and found the
# conftest files, before anything is collected: the test paths given must exist.
PYTEST_PARSE_ONLY_PLUGIN = """
import os
import pytest

@pytest.hookimpl(tryfirst=True)
def pytest_cmdline_main(config):
    missing = [arg for arg in config.args if not os.path.exists(arg.split("::")[0])]
    if missing:
        print("test paths not found:", missing)
        return 4
    print("arguments accepted")
    return 0
"""

# Runs a program up to the moment its argument parser accepts the arguments, then stops.
PARSE_ONLY_PROGRAM = """
import argparse, importlib, os, runpy, sys
kind, target, *args = sys.argv[1:]
original = argparse.ArgumentParser.parse_args

def parse_only(self, args=None, namespace=None):
    original(self, args, namespace)  # exits 2 naming a bad argument, or 0 after --help
    print("arguments accepted", flush=True)
    os._exit(0)

argparse.ArgumentParser.parse_args = parse_only
if kind == "module":
    sys.argv = [target, *args]
    runpy.run_module(target, run_name="__main__", alter_sys=True)
elif kind == "script":
    sys.argv = [target, *args]
    sys.path.insert(0, os.path.dirname(os.path.abspath(target)))
    runpy.run_path(target, run_name="__main__")
else:
    module, function = target.split(":")
    sys.argv = [target, *args]
    sys.exit(getattr(importlib.import_module(module), function)())
"""


# --------------------------------------------------------------------------- the tests

def test_every_block_says_what_it_is():
    unknown = [f"{b.name}: ```{b.info}" for b in ALL_BLOCKS if b.info not in KINDS]
    assert not unknown, ("code blocks with an unknown info string (use one of "
                         f"{sorted(KINDS)}):\n" + "\n".join(unknown))


def runnable(kind: str) -> list:
    return [pytest.param(b, id=b.name) for b in ALL_BLOCKS if b.info == kind]


@pytest.mark.parametrize("block", runnable("python"))
def test_python_block_runs(block, tmp_path):
    script = tmp_path / "example.py"
    script.write_text(block.text)
    run([sys.executable, str(script)], tmp_path, environment(), block.name)


# What an ```sh block may run in the suite: the library's quick command and a few shell tools.
# Anything else (a campaign, the suite, a benchmark) belongs in an ```sh check block.
RUNNABLE_PROGRAMS = {"tradestore", "cat", "cd", "echo", "grep", "head", "ls", "mkdir", "printf"}


@pytest.mark.parametrize("block", runnable("sh"))
def test_shell_block_runs(block, tmp_path):
    slow = sorted({words[0] for words in shell_commands(block.text)} - RUNNABLE_PROGRAMS)
    assert not slow, (f"{block.name}: an ```sh block runs in the test suite, and may only run "
                      f"{sorted(RUNNABLE_PROGRAMS)}; mark a block running {slow} ```sh check")
    script = tmp_path / "example.sh"
    script.write_text("set -euo pipefail\nset -x\n" + block.text)
    run(["bash", str(script)], tmp_path, environment(), block.name)


@pytest.mark.parametrize("block", runnable("sh check"))
def test_shell_block_commands_are_accepted(block):
    commands = shell_commands(block.text)
    assert commands, f"{block.name}: no commands"
    for words in commands:
        check_command(words, block.name)


@pytest.mark.parametrize("block", runnable("json"))
def test_json_block_parses(block):
    json.loads(block.text)


PROJECTS = sorted({b.document for b in ALL_BLOCKS if b.info.endswith(" pytest")})


@pytest.mark.parametrize("document", PROJECTS)
def test_pytest_project_passes(document, tmp_path):
    for block in (b for b in ALL_BLOCKS if b.document == document and b.info.endswith(" pytest")):
        files, current = {}, None
        for line in block.text.splitlines(keepends=True):
            header = FILE_HEADER.match(line.rstrip("\n"))
            if header:
                current = header["path"]
                files[current] = ""
            assert current is not None, f"{block.name}: a project block starts with '# path/of/the/file'"
            files[current] += line
        for path, text in files.items():
            (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
            (tmp_path / path).write_text(text)
    run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"], tmp_path, environment(), document)


# --------------------------------------------------------------------------- the checker itself

def test_a_shell_block_may_not_run_a_long_command(tmp_path):
    with pytest.raises(AssertionError, match="mark a block running"):
        test_shell_block_runs(Block("x.md", 1, "sh", "tradestore status\npython -m chaos\n"), tmp_path)


def test_a_block_that_fails_fails(tmp_path):
    with pytest.raises(AssertionError, match="exit 1"):
        test_python_block_runs(Block("x.md", 1, "python", "raise SystemExit(1)\n"), tmp_path)
    with pytest.raises(AssertionError, match="exit 1"):
        test_shell_block_runs(Block("x.md", 1, "sh", "tradestore close T404 1\n"), tmp_path)


@pytest.mark.parametrize("command", [
    "tradestore reconcile --every 0",         # refused by the program's own parser
    "python -m tradestore.cli frobnicate",
    "tradestore-chaos --no-such-flag",
    "ci/test --no-such-pytest-flag",
])
def test_a_command_its_program_refuses_fails_the_check(command):
    with pytest.raises(AssertionError, match="exit [24]"):
        check_command(shlex.split(command), "x.md:1")


def test_an_unknown_program_fails_the_check():
    with pytest.raises(pytest.fail.Exception, match="do not know how to check"):
        check_command(["make", "all"], "x.md:1")


def test_blocks_are_found_with_their_info_and_indentation(tmp_path, monkeypatch):
    (tmp_path / "doc.md").write_text("intro\n```python\nx = 1\n```\n- item\n\n  ```sh check\n  ci/test\n  ```\n")
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    assert blocks("doc.md") == [Block("doc.md", 2, "python", "x = 1\n"), Block("doc.md", 7, "sh check", "ci/test\n")]


def test_the_readme_names_only_attributes_a_chaos_outcome_has():
    from tradestore_harness.pytest_plugin import ChaosOutcome
    from tradestore_harness.result import ScenarioResult, Violation

    readme = (ROOT / "README.md").read_text()
    paragraph = readme[readme.index("With `check=False`"):].split("\n\n")[0]
    names = re.findall(r"`\.(\w+)(?:\(\))?`", paragraph)
    assert len(names) > 10, paragraph
    objects = (ChaosOutcome("t", 1, True, ["s"]), ScenarioResult("s", "t", 1), Violation("p", "d", 1))
    for name in names:
        assert any(hasattr(o, name) for o in objects), f"README: ChaosOutcome has no .{name}"
    counts = re.findall(r"counts ((?:`\w+`,\s+)+)and", paragraph)[0]
    for name in re.findall(r"`(\w+)`", counts):
        assert hasattr(objects[1], name), f"README: ScenarioResult has no {name}"


def test_a_test_path_that_does_not_exist_fails_the_check():
    with pytest.raises(AssertionError, match="test paths not found"):
        check_command(["ci/test", "tests/test_no_such_file.py"], "x.md:1")
