"""The student release of the exercises (``make student``, :mod:`stemseg.release`).

* the student versions, built by the same function as ``make student``, are valid
  notebooks without any cell tagged ``solution`` and without outputs, and keep every other
  cell -- each ``answer_N = None`` cell and each self-check cell among them;
* putting the solutions back (:func:`stemseg.release.fill_solutions`) gives the instructor's
  code cells again, cell for cell;
* (slow) the fastest notebook, 01, run by papermill as a student gets it: every self-check
  says "not attempted yet" and no cell fails.

The filled-back student versions of all five notebooks are what ``tests/test_browser.py``
runs in JupyterLab, where every self-check must say "correct" (running them here as well
would execute the notebooks a second time).
"""

from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pytest

from stemseg import release
from stemseg.errors import StemsegValueError

NB_DIR = Path(__file__).resolve().parents[1] / "notebooks"
INSTRUCTOR = sorted(NB_DIR.glob("[0-9][0-9]-*.ipynb"))
STEMS = [p.stem for p in INSTRUCTOR]
#: the notebook run in the slow test (the fastest, ~30 s on 2 cores)
RUN_STEM = "01-element-maps-vs-clustering"

ANSWER_CELL = re.compile(r"^answer_\w+ = None", re.M)
SELF_CHECK = re.compile(r"analysis\.check_\w+\(answer_")
VERDICT = re.compile(r"^(Exercise \w+): (.*)$", re.M)


@pytest.fixture(scope="module")
def student_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("student")
    written = release.write_student_notebooks(NB_DIR, out)
    assert [p.name for p in written] == [p.name for p in INSTRUCTOR]
    return out


def _read(path: Path):
    return nbformat.read(str(path), as_version=4)


def _tags(cell) -> list[str]:
    return cell.get("metadata", {}).get("tags", [])


def test_every_notebook_has_solutions():
    """Each exercise's answer cell is followed by a solution (the instructor's copy)."""
    for path in INSTRUCTOR:
        cells = _read(path).cells
        for i, cell in enumerate(cells):
            if cell.cell_type == "code" and ANSWER_CELL.search(cell.source):
                nxt = cells[i + 1]
                assert release.SOLUTION_TAG in _tags(nxt), \
                    f"{path.stem}: no solution cell after\n{cell.source}"
                assert nxt.metadata.get("jupyter", {}).get("source_hidden") is True, \
                    f"{path.stem}: solution cell {i + 1} not collapsed"


@pytest.mark.parametrize("stem", STEMS)
def test_student_version(stem, student_dir):
    instructor = _read(NB_DIR / f"{stem}.ipynb")
    student = _read(student_dir / f"{stem}.ipynb")
    nbformat.validate(student)
    assert not any(release.SOLUTION_TAG in _tags(c) for c in student.cells)
    kept = [c for c in instructor.cells if release.SOLUTION_TAG not in _tags(c)]
    assert len(kept) < len(instructor.cells), f"{stem}: the instructor's copy has no solutions"
    assert [(c.cell_type, c.source) for c in student.cells] == \
        [(c.cell_type, c.source) for c in kept], f"{stem}: a cell other than a solution changed"
    code = [c.source for c in student.cells if c.cell_type == "code"]
    n_answers = sum(bool(ANSWER_CELL.search(s)) for s in code)
    n_checks = sum(bool(SELF_CHECK.search(s)) for s in code)
    assert n_answers >= 2 and n_checks == n_answers, \
        f"{stem}: {n_answers} answer cells and {n_checks} self-check cells kept"
    assert all(not c.get("outputs") and c.get("execution_count") is None
               for c in student.cells if c.cell_type == "code"), f"{stem}: outputs kept"
    assert sum("parameters" in _tags(c) for c in student.cells) == 1, \
        f"{stem}: papermill's parameters cell lost its tag"
    assert "jupytext" not in student.metadata, f"{stem}: still paired with a .py file"


@pytest.mark.parametrize("stem", STEMS)
def test_fill_solutions_gives_the_instructor_notebook_back(stem, student_dir):
    instructor = _read(NB_DIR / f"{stem}.ipynb")
    student = _read(student_dir / f"{stem}.ipynb")
    filled = release.fill_solutions(student, instructor)
    nbformat.validate(filled)
    assert len(filled.cells) == len(instructor.cells)
    for i, (a, b) in enumerate(zip(filled.cells, instructor.cells)):
        assert (a.cell_type, a.get("id"), a.source, _tags(a)) == \
            (b.cell_type, b.get("id"), b.source, _tags(b)), f"{stem}: cell {i} differs"
    assert len(student.cells) == len(_read(student_dir / f"{stem}.ipynb").cells)  # untouched


def test_fill_solutions_refuses_a_foreign_notebook(student_dir):
    first, second = STEMS[0], STEMS[1]
    with pytest.raises(StemsegValueError, match="not in the student notebook"):
        release.fill_solutions(_read(student_dir / f"{first}.ipynb"),
                               _read(NB_DIR / f"{second}.ipynb"))


def _verdicts(nb) -> dict[str, str]:
    text = "\n".join(o.get("text", "") for c in nb.cells if c.cell_type == "code"
                     for o in c.get("outputs", []) if o.get("output_type") == "stream")
    return dict(VERDICT.findall(text))


def _run(nb, out: Path):
    papermill = pytest.importorskip("papermill")
    papermill.execute_notebook(nb, str(out), kernel_name="python3", cwd=str(out.parent),
                               progress_bar=False, log_output=False)
    ran = _read(out)
    errors = [o for c in ran.cells if c.cell_type == "code" for o in c.get("outputs", [])
              if o.get("output_type") == "error"]
    assert not errors, f"{out.name}: {errors[0].get('ename')}: {errors[0].get('evalue')}"
    return ran


@pytest.mark.slow
def test_student_notebook_runs_unfilled(student_dir, tmp_path):
    """The phantom (papermill's defaults), as released: every exercise "not attempted yet",
    no cell fails. (With the solutions filled back: tests/test_browser.py.)"""
    student = _read(student_dir / f"{RUN_STEM}.ipynb")
    exercises = {f"Exercise {m}" for c in student.cells if c.cell_type == "code"
                 for m in re.findall(r"^answer_(\w+) = None", c.source, re.M)}
    verdicts = _verdicts(_run(student, tmp_path / "unfilled.ipynb"))
    assert set(verdicts) == exercises, f"verdicts printed: {verdicts}"
    wrong = {k: v for k, v in verdicts.items() if not v.startswith("not attempted yet")}
    assert not wrong, f"{RUN_STEM} as released: {wrong}"


def test_a_folder_without_notebooks_is_refused(tmp_path):
    """make student pointed at the wrong folder says so (a StemsegError), writing nothing."""
    from stemseg.errors import StemsegFileNotFoundError

    with pytest.raises(StemsegFileNotFoundError, match="no notebook matching"):
        release.write_student_notebooks(tmp_path, tmp_path / "out")
    assert not (tmp_path / "out").exists()
