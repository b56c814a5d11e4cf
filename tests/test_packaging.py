"""The pinned environment is the same everywhere it is written down, and installed as pinned."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from importlib import metadata
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _pins(lines) -> dict[str, str]:
    out = {}
    for line in lines:
        line = line.strip()
        if not line or line.startswith("#") or line.startswith("-"):
            continue
        name, _, version = line.partition("==")
        assert version, f"not an exact pin: {line!r}"
        out[_canonical(name)] = version
    return out


def _lock() -> dict[str, str]:
    return _pins((ROOT / "requirements-lock.txt").read_text().splitlines())


def test_lock_pins_every_dependency_exactly():
    lock = _lock()
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = list(project["dependencies"]) + list(project["optional-dependencies"]["test"])
    for requirement in wanted:
        name = _canonical(re.split(r"[<>=!\[; ]", requirement, maxsplit=1)[0])
        assert name in lock, f"{name} (pyproject.toml) is not pinned in requirements-lock.txt"


def test_environment_yml_pip_section_equals_lock():
    text = (ROOT / "environment.yml").read_text()
    pip_lines = [ln.strip()[2:] for ln in text.splitlines() if ln.startswith("      - ")]
    assert "-e ." in pip_lines
    assert _pins(pip_lines) == _lock()
    assert re.search(r"^  - python=3\.11$", text, re.M)


def test_binder_uses_the_same_lock():
    assert (ROOT / "binder" / "requirements.txt").read_text() == (
        ROOT / "requirements-lock.txt"
    ).read_text()
    assert (ROOT / "binder" / "runtime.txt").read_text().strip() == "python-3.11"
    post_build = (ROOT / "binder" / "postBuild").read_text()
    assert "pip install --no-deps -e ." in post_build


def test_generated_files_are_up_to_date():
    result = subprocess.run(
        [sys.executable, str(ROOT / "tools" / "sync_environment.py"), "--check"],
        capture_output=True, text=True,
    )
    assert result.returncode == 0, result.stdout


def test_installed_versions_match_the_lock():
    """The environment running the tests is the pinned one (make rebuilds it when stale)."""
    mismatched = []
    for name, version in _lock().items():
        try:
            installed = metadata.version(name)
        except metadata.PackageNotFoundError:
            mismatched.append(f"{name}: not installed")
            continue
        if installed != version:
            mismatched.append(f"{name}: {installed} installed, {version} pinned")
    assert not mismatched, mismatched


def test_readme_quick_start_and_ci():
    readme = (ROOT / "README.md").read_text()
    assert "make run" in readme and "make test" in readme
    makefile = (ROOT / "Makefile").read_text()
    assert re.search(r"^run:", makefile, re.M) and re.search(r"^test:", makefile, re.M)
    assert "python3 -m venv" in makefile.replace("$(PYTHON)", "python3")
    assert re.search(r"^make test$", (ROOT / ".ci" / "run").read_text(), re.M)


def test_console_script_is_installed():
    from stemseg import cli

    assert metadata.entry_points(group="console_scripts", name="stemseg")
    with pytest.raises(SystemExit):
        cli.main(["--help"])
