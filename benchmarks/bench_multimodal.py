"""Time stemseg.multimodal: each method x modality on the four lfo-sto phantoms.

Not a test. Run from the repository root::

    .venv/bin/python benchmarks/bench_multimodal.py [--size PX] [--repeat N] [--variants ...]

Prints one table (seconds: median of ``--repeat`` runs, features included, chipping
excluded) with the machine it ran on, and the AMI of each labelling against the
phantom's truth.
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import numpy as np
import pandas as pd

from stemseg import multimodal as mm
from stemseg import simulate

VARIANTS = {
    "pristine 0 dpa": {"defective": False, "irradiated": False},
    "pristine 0.1 dpa": {"defective": False, "irradiated": True},
    "defective 0 dpa": {"defective": True, "irradiated": False},
    "defective 0.1 dpa": {"defective": True, "irradiated": True},
}


def _machine() -> str:
    import sklearn

    return (
        f"{platform.node()} | {platform.processor() or platform.machine()} | "
        f"{os.cpu_count()} CPUs | Python {platform.python_version()} | "
        f"numpy {np.__version__} | scikit-learn {sklearn.__version__}"
    )


def _support(truth: np.ndarray, seed: int = 0) -> dict[int, list[int]]:
    """4 chips of each truth class, chosen at random among the chips of that class."""
    rng = np.random.default_rng(seed)
    flat = truth.ravel()
    return {
        int(k): sorted(rng.choice(np.flatnonzero(flat == k), 4, replace=False).tolist())
        for k in np.unique(flat)
        if (flat == k).sum() >= 4
    }


def _time(fn, repeat: int) -> tuple[float, object]:
    times, out = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times)), out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=None, help="chip size in px (default: phantom's)")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--variants", nargs="*", default=list(VARIANTS))
    args = parser.parse_args()

    print(_machine())
    rows = []
    for name in args.variants:
        ph = simulate.phantom("lfo-sto", random_state=0, **VARIANTS[name])
        size = args.size or int(ph.truth.get("chip_px", 8))
        t0 = time.perf_counter()
        chips = mm.chip(ph, size=size)
        t_chip = time.perf_counter() - t0
        truth = mm.truth_labels(ph, chips)
        n_classes = int(np.unique(truth).size)
        kw = {
            "community": {},
            "agglomerative": {"n_clusters": n_classes},
            "fewshot": {"support": _support(truth)},
        }
        for method in mm.METHODS:
            for modality in mm.MODALITIES:
                sec, res = _time(
                    lambda: mm.segment(chips, method, modality, random_state=0, **kw[method]),
                    args.repeat,
                )
                rows.append({
                    "phantom": name, "grid": f"{chips.grid[0]}x{chips.grid[1]}",
                    "chip_s": round(t_chip, 3), "method": method, "modality": modality,
                    "seconds": round(sec, 3), "n_classes": res.n_classes,
                    "AMI_truth": round(mm.ami_table({modality: res.labels}, truth=truth)
                                       .loc[f"{'Ensemble' if modality == 'ensemble' else modality.upper()}-Truth", "AMI"], 3),
                })
    table = pd.DataFrame(rows)
    with pd.option_context("display.width", 160, "display.max_rows", 200):
        print(table.to_string(index=False))
        print()
        print(table.pivot_table(index=["phantom", "grid"], columns=["method", "modality"],
                                values="seconds").round(3).to_string())


if __name__ == "__main__":
    main()
