"""Installing tradestore's wheel leaves a user's own ``harness`` and ``chaos`` packages alone.

The wheel is built from the repository, installed (``--no-deps``) into a fresh virtual
environment, and a throw-away project with its own top-level ``harness`` and ``chaos`` packages
runs its pytest suite there: its imports must resolve to its own packages, and tradestore's
pytest plugin must still load (its fixtures work). pytest reaches the new environment from the
one running this test (a ``.pth`` file naming links to pytest and its requirements), so nothing
is downloaded.
"""

from __future__ import annotations

import importlib.metadata as metadata
import os
import pathlib
import shutil
import subprocess
import sys
import textwrap
import zipfile

import pytest
from packaging.requirements import Requirement

ROOT = pathlib.Path(__file__).resolve().parent.parent
SOURCES = ("pyproject.toml", "README.md", "LICENSE", "tradestore", "harness", "chaos")


def _run(*cmd, cwd=None, env=None) -> subprocess.CompletedProcess:
    done = subprocess.run([str(c) for c in cmd], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"{' '.join(map(str, cmd))} exited {done.returncode}:\n{done.stdout}\n{done.stderr}"
    return done


def _requirements(name: str, seen: set[str]) -> None:
    """``name`` and every distribution it needs (markers evaluated, extras left out)."""
    key = name.lower().replace("_", "-")
    if key in seen:
        return
    seen.add(key)
    for text in metadata.distribution(name).requires or []:
        req = Requirement(text)
        if req.marker is None or req.marker.evaluate({"extra": ""}):
            _requirements(req.name, seen)


def _link_pytest(into: pathlib.Path) -> None:
    """Symlink pytest and its requirements, as installed here, into ``into``."""
    into.mkdir()
    names: set[str] = set()
    _requirements("pytest", names)
    for name in sorted(names):
        dist = metadata.distribution(name)
        tops = {pathlib.PurePath(f).parts[0] for f in dist.files or []}
        for top in tops:
            source = pathlib.Path(dist.locate_file(top))
            if source.exists() and not (into / top).exists() and top not in ("..", "__pycache__"):
                (into / top).symlink_to(source)


def _user_project(path: pathlib.Path) -> None:
    for package in ("harness", "chaos"):
        (path / package).mkdir(parents=True)
        (path / package / "__init__.py").write_text(f'OWNER = "the user\'s own {package}"\n')
    (path / "tests").mkdir()
    (path / "tests" / "test_user.py").write_text(textwrap.dedent("""
        import os

        import chaos
        import harness


        def test_own_packages_win():
            assert harness.OWNER == "the user's own harness"
            assert chaos.OWNER == "the user's own chaos"
            here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
            assert harness.__file__.startswith(here) and chaos.__file__.startswith(here)


        def test_tradestore_plugin_loaded(tradestore_store, chaos_runner, pytestconfig):
            assert pytestconfig.pluginmanager.has_plugin("tradestore")
            trade = tradestore_store.open_trade("BTC", "LONG", 65000, 63500, 68000, 0.02)
            assert trade["id"] == "T001" and callable(chaos_runner)


        def test_installed_names_are_prefixed():
            import tradestore_chaos.campaign
            import tradestore_harness.targets

            for module in (tradestore_harness.targets, tradestore_chaos.campaign):
                assert "site-packages" in module.__file__, module.__file__
    """))


def test_wheel_installs_beside_a_users_harness_and_chaos(tmp_path):
    source = tmp_path / "src"
    source.mkdir()
    for name in SOURCES:  # build from a copy: the build leaves build/ and egg-info behind
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, source / name, ignore=shutil.ignore_patterns("__pycache__"))
        elif (ROOT / name).exists():
            shutil.copy2(ROOT / name, source / name)
    wheels = tmp_path / "wheels"
    _run(sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", wheels, source)
    (wheel,) = wheels.glob("tradestore-*.whl")
    tops = {name.split("/")[0] for name in zipfile.ZipFile(wheel).namelist()}
    assert not tops & {"harness", "chaos"}, f"the wheel installs generic top-level names: {sorted(tops)}"

    venv = tmp_path / "venv"
    _run(sys.executable, "-m", "venv", "--without-pip", venv)
    python = venv / "bin" / "python"
    _run(sys.executable, "-m", "pip", "--python", python, "install", "--no-deps", "--no-index", "-q", wheel)
    shim = tmp_path / "pytest-only"
    _link_pytest(shim)
    site = _run(python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])").stdout.strip()
    pathlib.Path(site, "zz_pytest_from_test_env.pth").write_text(f"{shim}\n")

    project = tmp_path / "project"
    _user_project(project)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "COV_", "COVERAGE"))}
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    run = _run(python, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests", cwd=project, env=env)
    assert "3 passed" in run.stdout, run.stdout
    imports = _run(python, "-c", "import harness, chaos, tradestore_harness, tradestore_chaos, tradestore; "
                                 "print(harness.OWNER, '|', chaos.OWNER, '|', tradestore_harness.__file__)",
                   cwd=project, env=env).stdout
    assert imports.startswith("the user's own harness | the user's own chaos | "), imports
    assert str(venv) in imports, imports
    help_text = _run(venv / "bin" / "tradestore-chaos", "--help", cwd=project, env=env).stdout
    assert "--target" in help_text
