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


def _cnn() -> dict[str, str]:
    """The pins of the optional extra stemseg[cnn]: what `make cnn` adds to the lock."""
    return _pins((ROOT / "requirements-cnn.txt").read_text().splitlines())


# what python3 -m venv itself puts in a venv (besides the project, installed editable)
_BOOTSTRAP = {"pip", "setuptools", "stemseg"}


def test_lock_pins_every_dependency_exactly():
    lock = _lock()
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    wanted = list(project["dependencies"]) + list(extras["test"])
    # the test extra includes others of the project (stemseg[docs]): their packages count too
    for requirement in list(wanted):
        included = re.fullmatch(r"stemseg\[([\w,-]+)\]", requirement)
        if included:
            wanted.remove(requirement)
            for extra in included.group(1).split(","):
                wanted += extras[extra]
    assert "sphinx" in {_canonical(re.split(r"[<>=!\[; ]", r, maxsplit=1)[0]) for r in wanted}
    for requirement in wanted:
        name = _canonical(re.split(r"[<>=!\[; ]", requirement, maxsplit=1)[0])
        assert name in lock, f"{name} (pyproject.toml) is not pinned in requirements-lock.txt"


def test_cnn_requirements_pin_the_extra_on_top_of_the_lock():
    """requirements-cnn.txt pins the cnn extra of pyproject.toml exactly (same versions) and
    only adds to the lock: the packages they share stay at the lock's versions (-c)."""
    cnn, lock = _cnn(), _lock()
    extra = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
        "optional-dependencies"]["cnn"]
    for requirement in extra:
        name, sep, version = requirement.partition("==")
        assert sep, f"cnn extra not pinned exactly in pyproject.toml: {requirement!r}"
        assert cnn.get(_canonical(name)) == version, f"{requirement} vs requirements-cnn.txt"
    assert not set(cnn) & set(lock), "requirements-cnn.txt repeats pins of the lock"
    lines = [ln.strip() for ln in (ROOT / "requirements-cnn.txt").read_text().splitlines()]
    assert "-c requirements-lock.txt" in lines
    assert "torch" not in (ROOT / "binder" / "requirements.txt").read_text()  # Binder: no torch


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


def test_nothing_installed_beyond_the_lock_and_the_cnn_extra():
    """Beyond the lock the venv holds only what python3 -m venv puts there, or in addition
    the whole extra stemseg[cnn] (`make cnn`) at the versions of requirements-cnn.txt."""
    from packaging.specifiers import SpecifierSet

    lock, cnn = _lock(), _cnn()
    installed = {}
    for dist in metadata.distributions():
        if dist.metadata["Name"]:
            installed.setdefault(_canonical(dist.metadata["Name"]), dist.version)
    unexpected = sorted(set(installed) - set(lock) - set(cnn) - _BOOTSTRAP)
    assert not unexpected, f"in neither the lock nor requirements-cnn.txt: {unexpected}"
    if set(installed) & (set(cnn) - _BOOTSTRAP):             # the extra is there: all of it, pinned
        wrong = [f"{name}: {installed.get(name, 'not installed')}, {version} pinned"
                 for name, version in cnn.items()
                 if name not in installed or installed[name] not in SpecifierSet(f"=={version}")]
        assert not wrong, wrong                              # (torch 2.13.0+cpu is ==2.13.0)


def test_readme_quick_start_and_ci():
    readme = (ROOT / "README.md").read_text()
    assert "make run" in readme and "make test" in readme
    makefile = (ROOT / "Makefile").read_text()
    assert re.search(r"^run:", makefile, re.M) and re.search(r"^test:", makefile, re.M)
    assert "python3 -m venv" in makefile.replace("$(PYTHON)", "python3")
    assert re.search(r"^make test$", (ROOT / ".ci" / "run").read_text(), re.M)


def test_ci_installs_the_cnn_extra_before_the_tests():
    ci = (ROOT / ".ci" / "run").read_text()
    assert re.search(r"^make cnn$", ci, re.M) and re.search(r"^export CI=true", ci, re.M)
    assert ci.index("\nmake cnn\n") < ci.index("\nmake test\n")
    makefile = (ROOT / "Makefile").read_text()
    assert re.search(r"^cnn: ", makefile, re.M)
    assert "pip install --quiet -r $(CNN)" in makefile and "CNN := requirements-cnn.txt" in makefile
    assert not re.search(r"^test:.*(cnn|CNN)", makefile, re.M)   # make test stays torch-free


def test_console_script_is_installed():
    from stemseg import cli

    assert metadata.entry_points(group="console_scripts", name="stemseg")
    with pytest.raises(SystemExit):
        cli.main(["--help"])
