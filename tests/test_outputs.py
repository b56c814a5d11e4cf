"""Atomic, non-clobbering output writing."""

from __future__ import annotations

import pytest

from stemseg.errors import StemsegFileExistsError, StemsegFileNotFoundError
from stemseg.outputs import atomic_dir, atomic_path


def test_file_appears_only_on_success(tmp_path):
    dest = tmp_path / "out.txt"
    with atomic_path(dest) as tmp:
        tmp.write_text("done")
        assert not dest.exists()
    assert dest.read_text() == "done"
    assert [p.name for p in tmp_path.iterdir()] == ["out.txt"]


def test_failure_leaves_nothing(tmp_path):
    dest = tmp_path / "result"
    with pytest.raises(RuntimeError):
        with atomic_dir(dest) as tmp:
            (tmp / "labels.npy").write_bytes(b"half")
            raise RuntimeError("interrupted")
    assert list(tmp_path.iterdir()) == []


def test_keyboard_interrupt_leaves_nothing(tmp_path):
    dest = tmp_path / "result"
    with pytest.raises(KeyboardInterrupt):
        with atomic_dir(dest) as tmp:
            (tmp / "a").write_text("x")
            raise KeyboardInterrupt
    assert list(tmp_path.iterdir()) == []


def test_refuses_to_overwrite_and_keeps_the_old_content(tmp_path):
    dest = tmp_path / "mine.txt"
    dest.write_text("precious")
    with pytest.raises(StemsegFileExistsError, match="--overwrite"):
        with atomic_path(dest, flag="--overwrite"):
            pass
    assert dest.read_text() == "precious"


def test_overwrite_replaces_a_folder_only_after_success(tmp_path):
    dest = tmp_path / "run"
    dest.mkdir()
    (dest / "old.txt").write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_dir(dest, overwrite=True) as tmp:
            (tmp / "new.txt").write_text("new")
            raise RuntimeError
    assert (dest / "old.txt").read_text() == "old"
    with atomic_dir(dest, overwrite=True) as tmp:
        (tmp / "new.txt").write_text("new")
    assert sorted(p.name for p in dest.iterdir()) == ["new.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]


def test_missing_parent_folder(tmp_path):
    with pytest.raises(StemsegFileNotFoundError, match="does not exist"):
        with atomic_path(tmp_path / "no" / "x.txt"):
            pass
