"""What a package index shows and what an installed wheel holds: the version, the licence, the
project URLs, the typing marker, and a README whose links work away from the repository."""

from __future__ import annotations

import email
import pathlib
import re
import shutil
import subprocess
import sys
import tomllib
import zipfile

import pytest

import tradestore

ROOT = pathlib.Path(__file__).resolve().parent.parent
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
SOURCE_URL = PYPROJECT["project"]["urls"]["Source"]
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> zipfile.ZipFile:
    """The wheel built from a copy of the sources (a build leaves build/ and egg-info behind)."""
    pytest.importorskip("wheel", reason="building a wheel offline needs the wheel package (test extra)")
    tmp = tmp_path_factory.mktemp("wheel")
    source = tmp / "src"
    source.mkdir()
    for name in ("pyproject.toml", "README.md", "LICENSE", "tradestore", "harness", "chaos"):
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, source / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(ROOT / name, source / name)
    proc = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                           "-w", str(tmp / "out"), str(source)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (path,) = (tmp / "out").glob("tradestore-*.whl")
    return zipfile.ZipFile(path)


def metadata(wheel: zipfile.ZipFile) -> email.message.Message:
    (name,) = [n for n in wheel.namelist() if n.endswith(".dist-info/METADATA")]
    return email.message_from_bytes(wheel.read(name))


def test_the_wheel_marks_every_package_as_typed(wheel):
    names = set(wheel.namelist())
    for package in ("tradestore", "tradestore_harness", "tradestore_chaos"):
        assert f"{package}/py.typed" in names, f"{package}/py.typed missing from the wheel"


def test_the_wheel_carries_the_licence_and_the_package_version(wheel):
    meta = metadata(wheel)
    assert meta["Version"] == tradestore.__version__
    assert meta["License"] == "MIT" and "License :: OSI Approved :: MIT License" in meta.get_all("Classifier")
    (licence,) = [n for n in wheel.namelist() if n.endswith(".dist-info/LICENSE")]
    text = wheel.read(licence).decode()
    assert text.startswith("MIT License") and "tradestore contributors" in text


def test_the_wheel_names_the_project_urls(wheel):
    urls = dict(entry.split(", ", 1) for entry in metadata(wheel).get_all("Project-URL"))
    assert urls == PYPROJECT["project"]["urls"]
    assert all(url.startswith("https://") for url in urls.values())


def test_readme_links_are_absolute_and_name_files_that_exist():
    # A package index shows README.md away from the repository: a relative link there is dead.
    links = LINK.findall((ROOT / "README.md").read_text())
    assert links
    for link in links:
        assert link.startswith("https://"), f"README link {link!r} is relative: it breaks on a package index page"
        if link.startswith(SOURCE_URL + "/blob/main/") or link.startswith(SOURCE_URL + "/tree/main/"):
            path = link.split("/main/", 1)[1].split("#")[0]
            assert (ROOT / path).exists(), f"README link {link!r}: {path} does not exist"
        elif link.startswith(SOURCE_URL + "#"):
            anchor = link.split("#", 1)[1]
            headings = {re.sub(r"[^\w -]", "", h.strip().lower()).replace(" ", "-")
                        for h in re.findall(r"^#+ (.*)$", (ROOT / "README.md").read_text(), re.M)}
            assert anchor in headings, f"README link {link!r}: no heading #{anchor}"
