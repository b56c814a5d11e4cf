"""Nothing a user owns is modified: inputs are byte-identical after every command.

Each test snapshots every file it could touch (SHA-256 and modification time) before and
after: ``stemseg run`` (one file and a folder), ``stemseg simulate`` (next to existing files
and onto an existing name) and ``stemseg demo`` (the bundled files). A notebook run with its
data cell switched to a user's copy of a real instrument file is checked the same way in
``tests/test_notebooks_real.py`` (which runs that notebook on that file anyway).
"""

from __future__ import annotations

import hashlib
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

from _synth import synthetic_cube
from stemseg import cli, data

DATA_DIR = Path(data.example("bruker_tem_CuOPdTi_64x64")).parent


def snapshot(*roots: Path) -> dict[str, tuple[str, int]]:
    """path -> (sha256, mtime_ns) of every file under ``roots`` (or the files themselves)."""
    out = {}
    for root in roots:
        files = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file())
        for p in files:
            out[str(p)] = (hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_mtime_ns)
    return out


@pytest.fixture
def user_folder(tmp_path):
    """A user's folder: a small map, a notes file and an unrelated file."""
    import warnings

    folder = tmp_path / "maps"
    folder.mkdir()
    s, _ = synthetic_cube(shape=(16, 16), n_channels=256)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        s.save(folder / "map.hspy")
    (folder / "notes.txt").write_text("do not touch\n")
    np.save(folder / "mine.npy", np.arange(5))
    return folder


def test_run_leaves_the_input_file_and_folder_untouched(user_folder, tmp_path):
    before = snapshot(user_folder, DATA_DIR)
    assert cli.main(["run", str(user_folder / "map.hspy"), "--n-clusters", "2",
                     "--out", str(tmp_path / "one")]) == 0
    assert cli.main(["run", str(user_folder), "--n-clusters", "2",
                     "--out", str(tmp_path / "all")]) == 0
    assert (tmp_path / "all" / "map" / "labels.npy").is_file()  # it did read the folder
    assert snapshot(user_folder, DATA_DIR) == before
    assert sorted(p.name for p in user_folder.iterdir()) == ["map.hspy", "mine.npy",
                                                            "notes.txt"]


def test_simulate_touches_only_its_new_file(user_folder):
    before = snapshot(user_folder, DATA_DIR)
    out = user_folder / "phantom.hspy"
    assert cli.main(["simulate", "lfo-sto", "--out", str(out)]) == 0
    assert out.is_file()
    after = snapshot(user_folder, DATA_DIR)
    del after[str(out)]
    assert after == before
    # onto an existing file without --overwrite: refused, the file is unchanged
    existing = snapshot(user_folder)
    assert cli.main(["simulate", "lfo-sto", "--seed", "1", "--out",
                     str(user_folder / "map.hspy")]) == 2
    assert snapshot(user_folder) == existing


def test_demo_leaves_the_bundled_files_untouched(capsys):
    before = snapshot(DATA_DIR)
    assert cli.main(["demo", "--no-phantom", "--no-isolate"]) == 0
    assert "bruker_tem_CuOPdTi_64x64.bcf" in capsys.readouterr().out
    assert snapshot(DATA_DIR) == before
