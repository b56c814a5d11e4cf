"""Static checks of the notebook suite (issue 7); nbval runs the notebooks themselves.

* every ``notebooks/*.py`` (jupytext py:percent, the reviewed text) has its ``.ipynb`` and
  vice versa, with the same cells (types and sources);
* the ``.ipynb`` files carry no outputs and the ``python3`` kernel;
* every notebook has the skeleton (title, learning goals, prerequisites, one imports cell,
  a marked data cell with a phantom default and the one-line switches, summary, what's
  next), assert cells, exercises with self-check cells, filtered HyperSpy warnings;
* thin notebooks (issue 18): no function defined in a cell, no code cell longer than
  ``MAX_CELL_LINES`` lines that are neither blank nor comments;
* no network access, no ``../shared`` paths, imports only from stemseg and the standard
  scientific stack;
* (slow) the first two notebooks run top to bottom on the bundled real Bruker file, i.e.
  the one-line data switch works and the truth checks skip themselves.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import nbformat
import pytest

jupytext = pytest.importorskip("jupytext")

ROOT = Path(__file__).resolve().parents[1]
NB_DIR = ROOT / "notebooks"
# the notebooks of issue 7 (later notebooks are checked by the same rules once they exist)
REQUIRED = ["01-element-maps-vs-clustering", "02-gmm-workflow", "03-hdbscan-workflow",
            "04-quantification-and-entropy", "05-multimodal-ensemble"]
ALLOWED_IMPORTS = {"stemseg", "numpy", "pandas", "matplotlib", "scipy", "sklearn",
                   "IPython", "ipywidgets", "hyperspy", "exspy", "warnings", "logging", "gc",
                   "math", "time", "pathlib"}


def _stems() -> list[str]:
    return sorted({p.stem for p in NB_DIR.glob("*.py")} | {p.stem for p in NB_DIR.glob("*.ipynb")})


def _cells(stem: str) -> list:
    return jupytext.read(NB_DIR / f"{stem}.py").cells


def _code(stem: str) -> list[str]:
    return [c.source for c in _cells(stem) if c.cell_type == "code"]


#: issue 18: a cell calls the package and carries no copy of its logic; a longer cell is a
#: table or a loop that belongs in stemseg.analysis (or a cell to split)
MAX_CELL_LINES = 15
#: (notebook, first line of the cell) -> reason, for the cells allowed to be longer
LONG_CELLS: dict[tuple[str, str], str] = {}


def _code_lines(src: str) -> int:
    return sum(1 for line in src.splitlines() if line.strip() and not line.strip().startswith("#"))


def _markdown(stem: str) -> str:
    return "\n".join(c.source for c in _cells(stem) if c.cell_type == "markdown")


STEMS = _stems()


def test_required_notebooks_exist():
    for stem in REQUIRED:
        assert (NB_DIR / f"{stem}.py").exists(), stem
        assert (NB_DIR / f"{stem}.ipynb").exists(), stem


@pytest.mark.parametrize("stem", STEMS)
def test_pair_in_sync(stem):
    py, ipynb = NB_DIR / f"{stem}.py", NB_DIR / f"{stem}.ipynb"
    assert py.exists() and ipynb.exists(), f"{stem}: both .py and .ipynb are needed"
    text = jupytext.read(py)
    nb = nbformat.read(ipynb, as_version=4)
    a = [(c.cell_type, c.source.strip()) for c in text.cells]
    b = [(c.cell_type, c.source.strip()) for c in nb.cells]
    assert len(a) == len(b), f"{stem}: {len(a)} cells in .py, {len(b)} in .ipynb -- run " \
                             "`jupytext --sync`"
    for i, (x, y) in enumerate(zip(a, b)):
        assert x == y, f"{stem}: cell {i} differs -- run `jupytext --sync notebooks/*.py`"


@pytest.mark.parametrize("stem", STEMS)
def test_ipynb_has_no_outputs_and_python3_kernel(stem):
    nb = nbformat.read(NB_DIR / f"{stem}.ipynb", as_version=4)
    for i, cell in enumerate(nb.cells):
        if cell.cell_type == "code":
            assert not cell.get("outputs"), f"{stem}: cell {i} has outputs"
            assert cell.get("execution_count") is None, f"{stem}: cell {i} execution count"
    assert nb.metadata.get("kernelspec", {}).get("name") == "python3"
    assert "widgets" not in nb.metadata  # no saved widget state


@pytest.mark.parametrize("stem", STEMS)
def test_skeleton(stem):
    cells = _cells(stem)
    md = _markdown(stem)
    assert cells[0].cell_type == "markdown" and cells[0].source.startswith("# "), "title"
    for heading in ("Learning goals", "Prerequisites", "## Summary", "## What's next",
                    "## Data (change one line here)", "## Exercises"):
        assert heading in md, f"{stem}: missing {heading!r}"
    code = _code(stem)
    importing = [c for c in code if re.search(r"^(import|from) \w", c, re.M)]
    assert len(importing) == 1, f"{stem}: imports must be in one cell ({len(importing)} found)"
    assert re.search(r"^analysis\.notebook_setup\(", importing[0], re.M), \
        f"{stem}: HyperSpy warnings not filtered (call analysis.notebook_setup())"


def _parameters_cells(cells: list) -> list:
    return [c for c in cells if c.cell_type == "code" and "parameters" in c.metadata.get("tags", [])]


@pytest.mark.parametrize("stem", STEMS)
def test_parameters_cell(stem):
    """papermill's convention: one cell tagged `parameters` with plain values, DATA and SEED
    among them; the data source is that one value (io.load_source), and every random step
    takes SEED."""
    cells = _cells(stem)
    tagged = _parameters_cells(cells)
    assert len(tagged) == 1, f"{stem}: one cell tagged 'parameters' ({len(tagged)} found)"
    ipynb = nbformat.read(NB_DIR / f"{stem}.ipynb", as_version=4)
    assert len(_parameters_cells(ipynb.cells)) == 1, f"{stem}.ipynb: the tag is missing"
    src = tagged[0].source
    assert "DATA" in src, "the data cell is marked"
    assert re.search(r'^DATA = "phantom"', src, re.M), "default: the phantom"
    assert re.search(r"^SEED = 0\b", src, re.M), "default seed 0"
    for node in ast.parse(src).body:  # only plain values, so that papermill can inject them
        assert isinstance(node, ast.Assign), f"{stem}: not a plain assignment: {ast.unparse(node)}"
        ast.literal_eval(node.value)
    assert "bruker_tem_CuOPdTi_64x64" in src, "names the bundled real file"
    import stemseg.data

    for name in re.findall(r'"(\w+_\w+)"', src):
        if name in stemseg.data.EXAMPLES:
            assert stemseg.data.example(name).exists()
    code = _code(stem)
    loads = [c for c in code if re.search(r"^data = io\.load_source\(DATA, ", c, re.M)]
    assert len(loads) == 1, f"{stem}: the data come from io.load_source(DATA, ...)"
    assert "random_state=SEED" in loads[0]
    fixed = [m.group(0) for c in code for m in re.finditer(r"random_state=\d+", c)]
    assert not fixed, f"{stem}: random steps with a fixed seed instead of SEED: {fixed}"


@pytest.mark.parametrize("stem", STEMS)
def test_asserts_and_exercises(stem):
    code = _code(stem)
    asserts = [c for c in code if re.search(r"^\s*assert ", c, re.M)]
    assert len(asserts) >= 3, f"{stem}: a notebook that only runs is not done"
    bare = [ast.unparse(node) for c in code for node in ast.walk(ast.parse(c))
            if isinstance(node, ast.Assert) and node.msg is None]
    assert not bare, f"{stem}: asserts without a message saying what was expected: {bare}"
    # 2-5 exercises (issue 19: the last tests understanding), each with a self-check cell
    answers = [c for c in code if re.search(r"^answer_\w+ = None", c, re.M)]
    checks = [c for c in code if re.search(r"analysis\.check_\w+\(answer_", c)]
    assert 2 <= len(answers) <= 5 and len(checks) == len(answers), (
        f"{stem}: {len(answers)} exercise cells, {len(checks)} self-check cells")
    # the truth is only used where it exists
    for c in code:
        uses_truth = re.search(r"(?<![\w.])data\.labels", c)
        if uses_truth and "has_truth" not in c and "hasattr(data" not in c:
            pytest.fail(f"{stem}: a cell uses data.labels without checking has_truth:\n{c}")


@pytest.mark.parametrize("stem", STEMS)
def test_no_network_no_shared_paths(stem):
    text = (NB_DIR / f"{stem}.py").read_text(encoding="utf-8")
    assert "../shared" not in text and "shared/" not in text
    code = "\n".join(_code(stem))
    for bad in ("http://", "https://", "urllib", "requests", "pip install", "wget", "curl"):
        assert bad not in code, f"{stem}: {bad!r} in a code cell"
    assert not re.search(r"^\s*[!%]", code, re.M), f"{stem}: shell or magic in a code cell"


@pytest.mark.parametrize("stem", STEMS)
def test_imports_only_stemseg_and_scientific_stack(stem):
    for src in _code(stem):
        for node in ast.walk(ast.parse(src)):
            if isinstance(node, ast.Import):
                mods = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                mods = [node.module or ""]
            else:
                continue
            for mod in mods:
                assert mod.split(".")[0] in ALLOWED_IMPORTS, f"{stem}: imports {mod}"


def test_paper_values_from_the_package():
    for stem in STEMS:
        text = (NB_DIR / f"{stem}.py").read_text(encoding="utf-8")
        assert "paper_values.json" not in text  # use stemseg.data / quant.paper_table


@pytest.mark.parametrize("stem", STEMS)
def test_thin_cells(stem):
    """Issue 18: no ``def``, ``lambda`` or ``class`` in a notebook, and no code cell over
    MAX_CELL_LINES non-blank, non-comment lines (LONG_CELLS lists the exceptions)."""
    defined, long = [], []
    for src in _code(stem):
        for node in ast.walk(ast.parse(src)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda,
                                 ast.ClassDef)):
                defined.append(getattr(node, "name", "lambda"))
        n = _code_lines(src)
        first = next(line for line in src.splitlines() if line.strip())
        if n > MAX_CELL_LINES and (stem, first) not in LONG_CELLS:
            long.append(f"{n} lines: {first}")
    assert not defined, f"{stem}: functions defined in the notebook (move them to stemseg): " \
                        f"{defined}"
    assert not long, f"{stem}: code cells over {MAX_CELL_LINES} lines (move tables and loops " \
                     f"to stemseg.analysis, or split): {long}"
