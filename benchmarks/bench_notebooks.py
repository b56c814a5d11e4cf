"""Time the notebooks top to bottom and the widgets' slider updates.

Not a test. Run from the repository root::

    .venv/bin/python benchmarks/bench_notebooks.py [--notebooks 01 02 ...] [--repeat N]
                                                   [--skip-notebooks] [--skip-widgets]

Prints two tables with the machine they ran on:

* every notebook executed in a fresh kernel (nbclient, as nbval does): wall time and the
  kernel's peak resident memory (sampled every 0.2 s, children included) -- the budget is
  2 minutes and Binder's 2 GB each, 1.5 GB for notebook 05 (issue 19), 10 minutes for the
  five together (issue 9);
* every explorer of :mod:`stemseg.widgets` on the notebooks' default phantom: the time of a
  plot-only update (target <= 0.3 s, issue 9) and of a refit (the cheap step a slider
  redoes), median of ``--repeat`` changes.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import threading
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
NB_DIR = ROOT / "notebooks"
#: per-notebook budgets (issue 19): run time on 2 cores and the kernel's peak memory
BUDGET_SECONDS = 120
BUDGET_BYTES = {"05-multimodal-ensemble": 1.5e9}   # others: Binder's 2 GB
BUDGET_BYTES_DEFAULT = 2e9


def _machine() -> str:
    import sklearn

    return (
        f"{platform.node()} | {platform.processor() or platform.machine()} | "
        f"{os.cpu_count()} CPUs | Python {platform.python_version()} | "
        f"numpy {np.__version__} | scikit-learn {sklearn.__version__}"
    )


# ------------------------------------------------------------------------ notebooks

def run_notebook(path: Path) -> dict:
    """Execute a notebook in a fresh python3 kernel; wall time and peak kernel memory."""
    import nbformat
    import psutil
    from nbclient import NotebookClient

    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(nb, timeout=900, kernel_name="python3",
                            resources={"metadata": {"path": str(path.parent)}})
    peak = [0]
    done = threading.Event()

    def watch() -> None:
        while not done.is_set():
            try:
                km = client.km
                if km is not None and km.has_kernel:
                    proc = psutil.Process(km.provisioner.process.pid)
                    rss = proc.memory_info().rss + sum(
                        c.memory_info().rss for c in proc.children(recursive=True))
                    peak[0] = max(peak[0], rss)
            except Exception:  # the kernel is starting or gone
                pass
            time.sleep(0.2)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    start = time.perf_counter()
    error = ""
    try:
        client.execute()
    except Exception as exc:  # report, do not stop the benchmark
        error = f"{type(exc).__name__}: {str(exc).strip().splitlines()[-1][:80]}"
    wall = time.perf_counter() - start
    done.set()
    watcher.join(1)
    return {"notebook": path.stem, "seconds": round(wall, 1),
            "peak memory (GB)": round(peak[0] / 1e9, 2),
            "memory budget (GB)": BUDGET_BYTES.get(path.stem, BUDGET_BYTES_DEFAULT) / 1e9,
            "within budget": (wall <= BUDGET_SECONDS and not error
                              and peak[0] <= BUDGET_BYTES.get(path.stem, BUDGET_BYTES_DEFAULT)),
            "error": error}


# ------------------------------------------------------------------------ widgets

def _median(explorer, kind: str, actions) -> float:
    times = []
    for act in actions:
        act()
        times.append(explorer.timings[kind])
    return statistics.median(times)


def bench_widgets(repeat: int) -> list[dict]:
    from stemseg import analysis, simulate, widgets, workflows

    warnings.filterwarnings("ignore")
    data = simulate.phantom("sulfide-6cation", shape=(128, 128), random_state=0)
    rows = []

    def row(widget, control, kind, seconds):
        rows.append({"widget": widget, "control": control, "kind": kind,
                     "seconds (median)": round(seconds, 3),
                     "<= 0.3 s": seconds <= 0.3 if kind == "plot only" else None})

    maps = analysis.element_maps(data)
    ex = widgets.ElementMapExplorer(maps, mask=data.labels > 0)
    values = ["common", "per-map"] * repeat
    row("ElementMapExplorer", "scaling", "plot only",
        _median(ex, "plot", [lambda v=v: setattr(ex.scaling, "value", v) for v in values]))

    seg = workflows.gmm(data, n_clusters=6, random_state=0)
    gx = widgets.GMMExplorer(data, segmentation=seg, n_clusters=6, truth=data.labels)
    picks = [i % 6 for i in range(1, repeat + 1)]
    row("GMMExplorer", "highlight", "plot only",
        _median(gx, "plot", [lambda c=c: setattr(gx.highlight, "value", c) for c in picks]))
    ks = [5, 6] * repeat
    row("GMMExplorer", "n_clusters", "refit (GMM on cached PCA)",
        _median(gx, "refit", [lambda k=k: setattr(gx.n_clusters, "value", k) for k in ks]))

    hseg = workflows.hdbscan(data, min_cluster_size=200, random_state=0, labels_full="repeat")
    hx = widgets.HDBSCANExplorer(data, segmentation=hseg, min_cluster_size=200,
                                 truth=data.labels)
    colours = ["truth", "cluster"] * repeat
    row("HDBSCANExplorer", "colour_by", "plot only",
        _median(hx, "plot", [lambda v=v: setattr(hx.colour_by, "value", v) for v in colours]))
    sizes = [100 + 4 * i for i in range(repeat)]  # new sizes: no cached fit
    row("HDBSCANExplorer", "min_cluster_size", "refit (HDBSCAN on cached UMAP)",
        _median(hx, "refit", [lambda s=s: setattr(hx.min_cluster_size, "value", s)
                              for s in sizes]))

    qx = widgets.QuantExplorer(seg, clusters=[1, 2, 3, 4])
    doses = [qx.dose.value * f for f in (2.0, 1.0)] * repeat
    row("QuantExplorer", "dose", "plot only",
        _median(qx, "plot", [lambda d=d: setattr(qx.dose, "value", d) for d in doses]))
    factors = [1.0 + 0.05 * i for i in range(1, repeat + 1)]
    base = qx.theoretical["Fe_Ka"]
    row("QuantExplorer", "k-factor", "requantify (cached mean spectra)",
        _median(qx, "quantify", [lambda f=f: setattr(qx.kfactor_inputs["Fe_Ka"], "value",
                                                     f * base) for f in factors]))
    lfo = simulate.phantom("lfo-sto", irradiated=True, random_state=0)
    mx = widgets.MultimodalExplorer(lfo, size=int(lfo.truth["chip_px"]),
                                    method="community", modality="ensemble")
    alphas = [0.7, 0.3] * repeat
    row("MultimodalExplorer", "opacity", "plot only",
        _median(mx, "plot", [lambda a=a: setattr(mx.opacity, "value", a) for a in alphas]))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--notebooks", nargs="*", default=None,
                        help="prefixes, e.g. 01 02 (default: all)")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--skip-notebooks", action="store_true")
    parser.add_argument("--skip-widgets", action="store_true")
    args = parser.parse_args()

    print(_machine())
    if not args.skip_notebooks:
        paths = sorted(NB_DIR.glob("*.ipynb"))
        if args.notebooks:
            paths = [p for p in paths if any(p.name.startswith(n) for n in args.notebooks)]
        table = pd.DataFrame([run_notebook(p) for p in paths])
        print("\nNotebooks, top to bottom in a fresh kernel:")
        print(table.to_string(index=False))
        total = table["seconds"].sum()
        print(f"together: {total:.0f} s = {total / 60:.1f} min (target <= 10 min: "
              f"{'met' if total <= 600 else 'not met'})")
    if not args.skip_widgets:
        print("\nWidget updates (default phantom, 128 x 128 px):")
        print(pd.DataFrame(bench_widgets(args.repeat)).to_string(index=False))


if __name__ == "__main__":
    main()
