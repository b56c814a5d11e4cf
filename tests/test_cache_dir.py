"""numba's compiled kernels are cached per user, never in site-packages or the repository.

Each check runs in a fresh interpreter: numba reads its cache directory when a function's
cache is created (at import for ``cache=True`` functions), so only a new process shows
where the files go.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from stemseg import _cache

REPO = Path(__file__).resolve().parents[1]


def _child_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("NUMBA_CACHE_DIR", "STEMSEG_CACHE_DIR", "STEMSEG_NUMBA_CACHE")}
    env.update(extra)
    return env


def _run(code: str, env: dict[str, str], cwd: Path, timeout: float = 120) -> dict:
    out = subprocess.run([sys.executable, "-c", code], env=env, cwd=cwd, capture_output=True,
                         text=True, timeout=timeout)
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def _numba_files(root: Path, skip: tuple[str, ...] = ()) -> set[str]:
    found = set()
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if d not in skip]
        found.update(os.path.join(dirpath, f) for f in filenames
                     if f.endswith((".nbi", ".nbc")))
    return found


def _package_pycache(name: str) -> Path:
    spec = importlib.util.find_spec(name)  # does not import the package
    assert spec is not None and spec.submodule_search_locations
    return Path(list(spec.submodule_search_locations)[0]) / "__pycache__"


def test_cache_dir_follows_stemseg_cache_dir_else_platformdirs(tmp_path):
    import platformdirs

    assert _cache.cache_dir({"STEMSEG_CACHE_DIR": str(tmp_path)}) == str(tmp_path)
    assert _cache.cache_dir({}) == platformdirs.user_cache_dir("stemseg", appauthor=False)
    assert _cache.numba_cache_enabled({})
    for off in ("0", "false", "No", " off "):
        assert not _cache.numba_cache_enabled({"STEMSEG_NUMBA_CACHE": off})


_PROBE = """
import json, os, sys
if {numba_first}:
    import numba
import stemseg
import numba
print(json.dumps(dict(config=numba.config.CACHE_DIR, env=os.environ.get("NUMBA_CACHE_DIR"))))
"""


@pytest.mark.parametrize("case", ["default", "numba_first", "user_dir", "off"])
def test_import_points_numba_at_the_user_cache(tmp_path, case):
    extra = dict(STEMSEG_CACHE_DIR=str(tmp_path / "cache"))
    if case == "user_dir":
        extra["NUMBA_CACHE_DIR"] = str(tmp_path / "mine")
    if case == "off":
        extra["STEMSEG_NUMBA_CACHE"] = "0"
    got = _run(_PROBE.format(numba_first=case == "numba_first"), _child_env(**extra), tmp_path)
    expected = {"default": str(tmp_path / "cache" / "numba"),
                "numba_first": str(tmp_path / "cache" / "numba"),
                "user_dir": str(tmp_path / "mine"), "off": ""}[case]
    assert got["config"] == expected
    if case != "off":
        assert got["env"] == expected  # numba's config reloads and workers agree
        assert Path(expected).is_dir() or case == "user_dir"


_FIT = """
import json
import numpy as np
from stemseg.reduce import UMAPReducer
X = np.random.default_rng(0).random((300, 5)).astype(np.float32)
emb = UMAPReducer(n_components=2, n_neighbors=10, random_state=0,
                  umap_kwargs=dict(n_epochs=10)).fit_transform(X)
print(json.dumps(dict(shape=list(emb.shape))))
"""


@pytest.mark.slow
def test_umap_fit_caches_in_the_user_cache_dir_only(tmp_path):
    """A UMAP fit through stemseg in a fresh process (compiles umap-learn's kernels and
    pynndescent's cache=True functions): the .nbi/.nbc files land under
    $STEMSEG_CACHE_DIR/numba, none in umap's or pynndescent's __pycache__ nor the repo."""
    cache = tmp_path / "cache"
    watched = [_package_pycache("umap"), _package_pycache("pynndescent")]
    skip = (".venv", ".git", "node_modules")
    before = [_numba_files(d) for d in watched], _numba_files(REPO, skip)
    got = _run(_FIT, _child_env(STEMSEG_CACHE_DIR=str(cache)), tmp_path, timeout=900)
    assert got["shape"] == [300, 2]
    after = [_numba_files(d) for d in watched], _numba_files(REPO, skip)
    assert after == before
    written = {Path(f).relative_to(cache / "numba").parts[0].split("_")[0]
               for f in _numba_files(cache)}
    assert {"umap", "pynndescent"} <= written
    assert any(f.endswith(".nbc") for f in _numba_files(cache / "numba"))


_HDBSCAN = """
import json, warnings
warnings.simplefilter("ignore")
from stemseg import simulate, workflows
ph = simulate.phantom("sulfide-6cation", shape=(96, 96), random_state=0)
seg = workflows.hdbscan(ph, random_state=0, umap_sample=600)
print(json.dumps(dict(k=int(seg.n_clusters))))
"""


@pytest.mark.slow
def test_warm_up_compiles_everything_the_hdbscan_workflow_needs(tmp_path):
    """``stemseg warm-up`` (run by make venv and Binder's postBuild) in an empty cache,
    then the HDBSCAN workflow in a fresh process compiles nothing more: the cache holds
    the same files after the workflow as before it. (A 600-pixel UMAP sample takes
    umap-learn's path for fewer than 4096 points; the 4096-pixel sample of a 256 x 256 map
    was checked the same way by hand, see benchmarks/README.md.)"""
    cache = tmp_path / "cache"
    env = _child_env(STEMSEG_CACHE_DIR=str(cache))
    out = subprocess.run([sys.executable, "-m", "stemseg.cli", "warm-up"], env=env,
                         cwd=tmp_path, capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, out.stderr[-3000:]
    assert str(cache / "numba") in out.stdout
    after_warm_up = {f: os.path.getmtime(f) for f in _numba_files(cache)}
    assert any(f.endswith(".nbc") for f in after_warm_up)
    got = _run(_HDBSCAN, env, tmp_path, timeout=300)
    assert got["k"] >= 2
    assert {f: os.path.getmtime(f) for f in _numba_files(cache)} == after_warm_up
