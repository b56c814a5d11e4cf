"""Student release of the teaching notebooks: the exercises without their solutions.

The instructor's notebooks (``notebooks/*.ipynb``) follow each exercise's answer cell
(``answer_1 = None``) with a worked solution in a code cell tagged ``solution``, collapsed
in JupyterLab. :func:`write_student_notebooks` writes copies without those cells and
without outputs, through nbconvert's ``TagRemovePreprocessor`` and
``ClearOutputPreprocessor`` -- the same as::

    jupyter nbconvert --to notebook --TagRemovePreprocessor.enabled=True \\
        --TagRemovePreprocessor.remove_cell_tags='["solution"]' \\
        --ClearOutputPreprocessor.enabled=True --output-dir build/student notebooks/*.ipynb

The self-check cells stay, so a student's answers are still checked. ``make student``
calls this module (``python -m stemseg.release``); so does ``tests/test_release.py``, which
also puts the solutions back with :func:`fill_solutions` and checks that the result is the
instructor's notebook again.

Examples
--------
>>> from stemseg import release
>>> paths = release.write_student_notebooks("notebooks", "build/student")  # doctest: +SKIP
"""

from __future__ import annotations

import argparse
import copy
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from .errors import StemsegFileNotFoundError, StemsegValueError

__all__ = [
    "SOLUTION_TAG",
    "student_notebook",
    "write_student_notebooks",
    "solution_cells",
    "fill_solutions",
    "main",
]

#: the cell tag that marks a solution (removed from the student release)
SOLUTION_TAG = "solution"

#: notebook metadata kept in a student copy; the rest (e.g. jupytext's pairing with a
#: ``.py`` file, which only the instructor's sources have) is dropped
_KEPT_NOTEBOOK_METADATA = ("kernelspec", "language_info")


def _exporter(remove_tags: Sequence[str]) -> Any:
    """nbconvert's notebook-to-notebook exporter configured for the student release."""
    from nbconvert.exporters import NotebookExporter
    from traitlets.config import Config

    config = Config()
    config.TagRemovePreprocessor.enabled = True
    config.TagRemovePreprocessor.remove_cell_tags = set(remove_tags)
    config.ClearOutputPreprocessor.enabled = True
    config.ClearMetadataPreprocessor.enabled = True
    config.ClearMetadataPreprocessor.clear_cell_metadata = False   # keep tags ("parameters")
    config.ClearMetadataPreprocessor.preserve_nb_metadata_mask = set(_KEPT_NOTEBOOK_METADATA)
    return NotebookExporter(config=config)


def _has_tag(cell: Any, tag: str) -> bool:
    return tag in cell.get("metadata", {}).get("tags", [])


def student_notebook(source: str | Path | Any, *, tag: str = SOLUTION_TAG) -> Any:
    """The student version of one notebook: no cell tagged ``tag``, no outputs.

    Parameters
    ----------
    source : str, pathlib.Path or nbformat.NotebookNode
        The instructor's notebook (a ``.ipynb`` file or a notebook read with nbformat).
        Not modified.
    tag : str
        Cells carrying this tag are removed (default ``"solution"``).

    Returns
    -------
    nbformat.NotebookNode
        A new notebook (nbformat 4): the other cells in order, with their ids, sources and
        tags, outputs and execution counts cleared; notebook metadata reduced to the kernel
        and the language.
    """
    import nbformat

    nb = nbformat.read(str(source), as_version=4) if isinstance(source, (str, Path)) \
        else copy.deepcopy(source)
    body, _ = _exporter([tag]).from_notebook_node(nb)
    return nbformat.reads(body, as_version=4)


def write_student_notebooks(source_dir: str | Path, out_dir: str | Path, *,
                            pattern: str = "[0-9][0-9]-*.ipynb",
                            tag: str = SOLUTION_TAG) -> list[Path]:
    """Write the student version of every notebook of ``source_dir`` into ``out_dir``.

    Parameters
    ----------
    source_dir : str or pathlib.Path
        Folder of the instructor's notebooks (``notebooks/``); not modified.
    out_dir : str or pathlib.Path
        Created if missing; files of the same name are overwritten.
    pattern : str
        Glob of the notebooks to release (default: the numbered teaching notebooks).
    tag : str
        Tag of the cells to leave out (default ``"solution"``).

    Returns
    -------
    list of pathlib.Path
        The files written, in name order.

    Raises
    ------
    StemsegFileNotFoundError
        If ``source_dir`` holds no notebook matching ``pattern``.
    """
    import nbformat

    sources = sorted(Path(source_dir).glob(pattern))
    if not sources:
        raise StemsegFileNotFoundError(
            f"no notebook matching {pattern!r} in {source_dir}: give the folder of the "
            "instructor's notebooks (e.g. notebooks/).")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for path in sources:
        nb = student_notebook(path, tag=tag)
        nbformat.validate(nb)
        target = out / path.name
        nbformat.write(nb, str(target))
        written.append(target)
    return written


def solution_cells(nb: Any, *, tag: str = SOLUTION_TAG) -> list[Any]:
    """The cells of ``nb`` tagged ``tag``, in order."""
    return [c for c in nb.cells if _has_tag(c, tag)]


def fill_solutions(student: Any, instructor: Any, *, tag: str = SOLUTION_TAG) -> Any:
    """Put the instructor's solution cells back into a student notebook.

    Each solution cell goes back right after the cell it followed in the instructor's
    notebook (its answer cell), found by cell id; several solutions after one cell keep
    their order.

    Parameters
    ----------
    student : nbformat.NotebookNode
        A student version (:func:`student_notebook`); not modified.
    instructor : nbformat.NotebookNode
        The notebook it was made from; not modified.
    tag : str
        Tag of the solution cells (default ``"solution"``).

    Returns
    -------
    nbformat.NotebookNode
        A copy of ``student`` with the solution cells inserted (copies of the instructor's).

    Raises
    ------
    StemsegValueError
        If a cell lacks an id (nbformat < 4.5), or a solution's preceding cell is not in
        ``student`` (it was not made from ``instructor``).
    """
    after: dict[str | None, list[Any]] = {}
    anchor: str | None = None            # None: before the first cell
    for cell in instructor.cells:
        if _has_tag(cell, tag):
            after.setdefault(anchor, []).append(copy.deepcopy(cell))
        else:
            anchor = _cell_id(cell)
    filled = copy.deepcopy(student)
    ids = {_cell_id(c) for c in filled.cells}
    missing = [a for a in after if a is not None and a not in ids]
    if missing:
        raise StemsegValueError(f"the cells {missing} that solutions follow are not in the student "
                         "notebook: was it made from this instructor's notebook?")
    cells = list(after.get(None, []))
    for cell in filled.cells:
        cells.append(cell)
        cells.extend(after.get(_cell_id(cell), []))
    filled.cells = cells
    return filled


def _cell_id(cell: Any) -> str:
    cid = cell.get("id")
    if not cid:
        raise StemsegValueError("a cell has no id: upgrade the notebook to nbformat 4.5 "
                                 "(nbformat.validator.normalize) first")
    return str(cid)


def main(argv: Iterable[str] | None = None) -> int:
    """Command line: ``python -m stemseg.release [SOURCE_DIR] [OUT_DIR]``.

    Parameters
    ----------
    argv : iterable of str, optional
        Arguments (default: ``sys.argv[1:]``).

    Returns
    -------
    int
        0 on success (the exit status).
    """
    parser = argparse.ArgumentParser(
        prog="python -m stemseg.release",
        description="Write the student versions of the notebooks: the cells tagged "
                    f"'{SOLUTION_TAG}' removed, outputs cleared.")
    parser.add_argument("source_dir", nargs="?", default="notebooks",
                        help="the instructor's notebooks (default: notebooks)")
    parser.add_argument("out_dir", nargs="?", default="build/student",
                        help="where the student versions go (default: build/student)")
    args = parser.parse_args(None if argv is None else list(argv))
    for path in write_student_notebooks(args.source_dir, args.out_dir):
        print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
