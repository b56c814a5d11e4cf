"""Write results atomically: all or nothing, never over a user's file by accident.

A result (one file, or a folder of files) is written under a temporary name in
the destination's folder and renamed into place only when complete, so an
interrupted run (Ctrl-C, SIGTERM, an error) leaves no half-written result.
An existing destination is refused unless ``overwrite=True``.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from .errors import StemsegFileExistsError, StemsegFileNotFoundError

__all__ = ["atomic_path", "atomic_dir"]


def _check_destination(path: Path, overwrite: bool, flag: str) -> None:
    if path.exists() and not overwrite:
        raise StemsegFileExistsError(
            f"'{path}' exists and was left untouched. Choose another name, or pass "
            f"{flag} to replace it."
        )
    if not path.parent.is_dir():
        raise StemsegFileNotFoundError(
            f"The folder '{path.parent}' does not exist: create it first, or choose an "
            "output path in an existing folder."
        )


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    elif path.exists() or path.is_symlink():
        path.unlink()


def _replace(tmp: Path, dest: Path) -> None:
    """Move ``tmp`` to ``dest``; an existing ``dest`` is replaced only after success."""
    if dest.is_dir() and not dest.is_symlink():
        old = dest.with_name(f".{dest.name}.old-{os.getpid()}")
        os.replace(dest, old)
        try:
            os.replace(tmp, dest)
        except BaseException:
            os.replace(old, dest)
            raise
        _remove(old)
    else:
        os.replace(tmp, dest)


@contextlib.contextmanager
def atomic_path(path: str | Path, *, overwrite: bool = False, flag: str = "overwrite=True"
                ) -> Iterator[Path]:
    """Yield a temporary path to write ``path`` to; rename it into place on success.

    Parameters
    ----------
    path : str or pathlib.Path
        Final destination (a file, or a folder-like store such as ``.zspy``).
    overwrite : bool, default False
        Replace an existing destination.
    flag : str
        How the caller spells "overwrite" in the error message (e.g.
        ``--overwrite`` on the command line).

    Yields
    ------
    pathlib.Path
        A not-yet-existing path in the same folder, with the same suffix.

    Raises
    ------
    StemsegFileExistsError
        ``path`` exists and ``overwrite`` is False.
    StemsegFileNotFoundError
        The destination folder does not exist.
    """
    dest = Path(path)
    _check_destination(dest, overwrite, flag)
    handle, name = tempfile.mkstemp(prefix=f".{dest.stem}.", suffix=f".tmp{dest.suffix}",
                                    dir=dest.parent)
    os.close(handle)
    tmp = Path(name)
    tmp.unlink()  # writers create it themselves (some write folders)
    try:
        yield tmp
        if not tmp.exists():
            raise StemsegFileNotFoundError(f"nothing was written for '{dest}'")
        _replace(tmp, dest)
    finally:
        _remove(tmp)


@contextlib.contextmanager
def atomic_dir(path: str | Path, *, overwrite: bool = False, flag: str = "overwrite=True"
               ) -> Iterator[Path]:
    """Yield an empty temporary folder; it becomes ``path`` when the block succeeds.

    Parameters and errors as :func:`atomic_path`.
    """
    with atomic_path(path, overwrite=overwrite, flag=flag) as tmp:
        tmp.mkdir()
        yield tmp
