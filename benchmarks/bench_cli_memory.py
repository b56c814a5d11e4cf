"""Peak memory of ``stemseg run`` on a big map, against the size of its cube.

Not a test. Run from the repository root::

    .venv/bin/python benchmarks/bench_cli_memory.py [--size 512] [--channels 4096]
                                                    [--workflow gmm] [--n-clusters 5]

For each size the sulfide phantom (``n_channels`` channels of 20.48 keV / channels each,
uint16 counts, as a detector writes them) is simulated and saved as ``.zspy`` by a child
process (``stemseg simulate``). A second child runs ``stemseg run`` on it exactly as a user
would (no ``--lazy``: maps above ``stemseg.cli.STREAM_ABOVE_BYTES`` are streamed by
default). Reported per run, with the machine:

* the cube's size in the file's dtype (GiB),
* the CLI's peak resident memory (``ru_maxrss`` of the largest child process: the CLI, or
  the child that parses the file first) and its ratio to the cube -- issue 17's target is
  <= 2.5x the cube, and <= 2.5 GB where the reader streams,
* wall time, what ``result.json`` says about streaming, and the ARI of ``labels_full``
  against the phantom's truth.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def _machine() -> str:
    return (f"{platform.node()} | {platform.processor() or platform.machine()} | "
            f"{os.cpu_count()} CPUs | Python {platform.python_version()}")


def _child(argv: list[str]) -> tuple[float, float]:
    """Run ``python -m stemseg.cli ...``; wall seconds and the peak RSS (GiB) of the largest
    process it started (this process's own children are waited for one at a time)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    start = time.perf_counter()
    out = subprocess.run([sys.executable, "-m", "stemseg.cli", *argv], capture_output=True,
                         text=True)
    wall = time.perf_counter() - start
    if out.returncode != 0:
        raise SystemExit(f"stemseg {argv[0]} failed:\n{out.stderr[-2000:]}")
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss  # KiB on Linux
    if peak <= before:
        print(f"note: the peak of `stemseg {argv[0]}` did not exceed an earlier child's "
              f"({before / 2**20:.2f} GiB); run one size per invocation for a clean figure")
    return wall, peak / 2**20


def run(size: int, channels: int, workflow: str, n_clusters: int, seed: int) -> dict:
    from stemseg import metrics, simulate

    width = 20.48 / channels
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"sulfide_{size}x{size}x{channels}.zspy"
        sim_s, _ = _child(["simulate", "sulfide-6cation", "--shape", str(size), str(size),
                           "--seed", str(seed), "--option", f"n_channels={channels}",
                           "--option", f"channel_width_keV={width}", "--out", str(path)])
        out = Path(tmp) / "result"
        argv = ["run", str(path), "--workflow", workflow, "--out", str(out), "--seed", str(seed)]
        if workflow == "gmm":
            argv += ["--n-clusters", str(n_clusters)]
        wall, peak_gib = _child(argv)
        summary = json.loads((out / "result.json").read_text())
        truth = simulate.load(path, lazy=True).labels
        ari = metrics.ari(np.load(out / "labels_full.npy"), np.asarray(truth))
    cube_gib = size * size * channels * 2 / 2**30  # uint16
    return {"map": f"{size}x{size}x{channels} uint16", "workflow": workflow,
            "cube (GiB)": round(cube_gib, 2), "peak RSS (GiB)": round(peak_gib, 2),
            "peak / cube": round(peak_gib / cube_gib, 2), "run (s)": round(wall, 1),
            "simulate (s)": round(sim_s, 1), "streamed": summary.get("streamed"),
            "ARI": round(float(ari), 3)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--channels", type=int, default=4096)
    parser.add_argument("--workflow", choices=("gmm", "hdbscan"), default="gmm")
    parser.add_argument("--n-clusters", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    print(_machine())
    row = run(args.size, args.channels, args.workflow, args.n_clusters, args.seed)
    width = max(len(k) for k in row)
    for key, value in row.items():
        print(f"{key:>{width}} : {value}")


if __name__ == "__main__":
    main()
