"""Binder builds the pinned environment from binder/ and installs stemseg.

repo2docker's ``--no-build --debug`` prints the Dockerfile it would build, without Docker.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def dockerfile(tmp_path_factory):
    # a copy of the tracked tree, as Binder sees a clone (no .venv, no build outputs)
    tracked = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True,
                             check=True).stdout.decode().split("\0")
    repo = tmp_path_factory.mktemp("binder") / "repo"
    for name in filter(None, tracked):
        src = ROOT / name
        if src.is_file():
            (repo / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, repo / name)
    exe = Path(sys.executable).with_name("jupyter-repo2docker")
    result = subprocess.run([str(exe), "--no-build", "--debug", str(repo)],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout + result.stderr


def test_binder_installs_our_lock(dockerfile):
    assert re.search(r'pip install --no-cache-dir -r "binder/requirements.txt"', dockerfile)
    assert "python=3.11" in dockerfile


def test_binder_installs_the_package(dockerfile):
    assert "./binder/postBuild" in dockerfile


def test_binder_ignores_top_level_environment(dockerfile):
    # binder/ exists, so environment.yml at the top level must not drive the build
    assert "environment.yml" not in dockerfile
