"""Notebooks 01-04 run top to bottom on the bundled real files (issue 15).

DATA is injected into each notebook's parameters cell by papermill; a run passes when no cell
raises, the notebook says that no truth is available, and the workflows warn about maps with
too few counts per pixel. One run (``USER_COPY_RUN``) is given the path of a user's copy of
the file instead of the bundled name, and checks that the copy, the committed notebooks and
the bundled files are byte-identical afterwards (nothing a user owns is modified).
Code cells tagged ``own-phantom`` (sections that always simulate their own map) are left
out of these runs; the browser test runs them.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import nbformat
import pytest
from test_data_safety import DATA_DIR, snapshot

NB_DIR = Path(__file__).resolve().parents[1] / "notebooks"

#: (notebook, bundled file) pairs that must run top to bottom with DATA injected by papermill:
#: every notebook of the Eggeman workflow chain on the Bruker TEM map (6 counts/px: the sparse
#: case), and the other bundled files where the notebook applies.
REAL_RUNS = [
    ("01-element-maps-vs-clustering", "bruker_tem_CuOPdTi_64x64"),
    ("02-gmm-workflow", "bruker_tem_CuOPdTi_64x64"),
    ("02-gmm-workflow", "velox_si_16x16_CCaOCu"),      # 16 x 16 px, 0.6 X-rays per pixel
    ("03-hdbscan-workflow", "bruker_tem_CuOPdTi_64x64"),
    ("04-quantification-and-entropy", "bruker_tem_CuOPdTi_64x64"),
    ("04-quantification-and-entropy", "bruker_sem_mineral_30x30"),  # SEM: no Cliff-Lorimer
]
#: the run that reads a user's copy of the file, by its path, and checks it is left untouched
USER_COPY_RUN = ("01-element-maps-vs-clustering", "bruker_tem_CuOPdTi_64x64")
#: notebooks whose workflows must warn about the Bruker TEM map's few counts per pixel
SPARSE_WARNED = {"02-gmm-workflow", "03-hdbscan-workflow", "04-quantification-and-entropy"}


def _stream_text(nb) -> str:
    return "\n".join(o.get("text", "") for c in nb.cells if c.cell_type == "code"
                     for o in c.get("outputs", []) if o.get("output_type") == "stream")


def _without_own_phantom_cells(path: Path):
    """The notebook without its code cells tagged ``own-phantom``.

    Those cells simulate a phantom of their own whatever ``DATA`` is (notebook 03's low-dose
    map, notebook 04's nanoparticles), so a real file changes nothing in them; they run with
    everything else in the browser test. Dropping them here saves ~60 s of the suite. They
    must not read the notebook's data (checked), or the real file would go untested there.
    """
    nb = nbformat.read(path, as_version=4)
    own = [c for c in nb.cells if "own-phantom" in c.get("metadata", {}).get("tags", [])]
    for cell in own:
        assert cell.cell_type == "code" and not re.search(r"\b(data|seg|DATA)\b", cell.source), \
            f"{path.name}: a cell tagged own-phantom uses the notebook's data:\n{cell.source}"
    nb.cells = [c for c in nb.cells if not any(c is o for o in own)]
    return nb


@pytest.mark.slow
@pytest.mark.parametrize("stem,source", REAL_RUNS, ids=[f"{a[:2]}-{b}" for a, b in REAL_RUNS])
def test_notebook_runs_on_bundled_file(stem, source, tmp_path):
    """DATA injected into the parameters cell (papermill): the notebook runs top to bottom,
    says that no truth is available, and says when the counts are too few."""
    papermill = pytest.importorskip("papermill")

    data_value, watched = source, None
    if (stem, source) == USER_COPY_RUN:
        from stemseg import data

        user_file = tmp_path / "my_map.bcf"
        shutil.copy(data.example(source), user_file)
        data_value, watched = str(user_file), (user_file, NB_DIR, DATA_DIR)
        before = snapshot(*watched)
    out = tmp_path / f"{stem}.ipynb"
    papermill.execute_notebook(_without_own_phantom_cells(NB_DIR / f"{stem}.ipynb"), str(out),
                               parameters={"DATA": data_value}, kernel_name="python3",
                               cwd=str(tmp_path), progress_bar=False, log_output=False)
    if watched is not None:
        assert snapshot(*watched) == before, \
            f"{stem} changed the user's file, a committed notebook or a bundled file"
    nb = nbformat.read(out, as_version=4)
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
              if o.get("output_type") == "error"]
    assert not errors, f"{stem} on {source}: {errors[0].get('ename')}: {errors[0].get('evalue')}"
    text = _stream_text(nb)
    assert "truth available: False" in text, f"{stem} on {source}: no note that truth is absent"
    if stem in SPARSE_WARNED and source == "bruker_tem_CuOPdTi_64x64":
        assert "StemsegSparseDataWarning" in text and "counts per binned pixel" in text, \
            f"{stem} on {source}: the workflows did not warn about the few counts per pixel"
