"""Time, peak memory and ARI of the two workflows next to HyperSpy's baseline.

Each measurement runs in a fresh child process (so numba compilation and memory are counted
as a user meets them). Peak memory = the child's peak RSS minus its RSS after the imports
and after the phantom was generated (the cube itself is not counted).

Methods: ``gmm`` (the paper's workflow 1: RobustScaler only), ``gmm-poisson`` (the same
with the Poisson weighting the baseline also applies), ``hdbscan`` (workflow 2, UMAP fitted
on a sample of 4096 binned pixels, numba's disk cache warm -- the script runs it once
first to fill the cache), ``hdbscan-cold`` (the same with an empty numba cache: a new
temporary ``STEMSEG_CACHE_DIR``, so umap-learn's and pynndescent's kernels are compiled as
on a first run on a new machine), ``hdbscan-all`` (UMAP on every binned
pixel, ``umap_sample=None``: the ARI the sample costs; sizes up to 256 only, it is
minutes at 512), ``hyperspy-full`` (the baseline on the unbinned cube: higher ARI at low
dose, issue 18) and ``bad-params`` (seconds until three bad parameters are refused: the
estimators check them before touching the map; its ARI column is 1 when all three were
refused with a StemsegValueError).

Baseline (issue 6/9): HyperSpy ``decomposition(normalize_poissonian_noise=True,
output_dimension=20, svd_solver="randomized")`` + ``cluster_analysis("decomposition",
number_of_components=k, n_clusters=k, preprocessing="norm", algorithm="kmeans")`` on the same
x2-binned cube; its labels are repeated onto the original pixels for the ARI. The
randomized SVD is seeded (``random_state``, passed on to scikit-learn's ``randomized_svd``):
unseeded, the baseline's ARI at 256 x 256 varied between runs (0.65 and 0.93 measured).

    python benchmarks/bench_workflows.py [--sizes 128 256] [--seed 0]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile

CHILD = r"""
import json, resource, sys, time, warnings
warnings.simplefilter("ignore")
import numpy as np
from stemseg import metrics, simulate, workflows

def rss_mb():
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")

which, size, seed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
ph = simulate.phantom("sulfide-6cation", shape=(size, size), random_state=seed)
k = len(ph.phases)
base = rss_mb()
start = time.perf_counter()
if which == "gmm":
    labels = workflows.gmm(ph, n_clusters=k, random_state=seed).labels_full
elif which == "gmm-poisson":
    labels = workflows.gmm(ph, n_clusters=k, poisson=True, random_state=seed).labels_full
elif which in ("hdbscan", "hdbscan-cold"):
    labels = workflows.hdbscan(ph, random_state=seed).labels_full
elif which == "hdbscan-all":
    labels = workflows.hdbscan(ph, random_state=seed, umap_sample=None).labels_full
elif which == "bad-params":
    # seconds until a bad parameter is refused (issue 18: before any heavy step); the ARI
    # column is meaningless here (1.0 = the refusal came as a StemsegValueError)
    from stemseg.errors import StemsegValueError
    labels = ph.labels
    for kwargs in (dict(covariance_type="bogus"), dict(n_init=0)):
        try:
            workflows.gmm(ph, n_clusters=k, **kwargs)
            labels = np.zeros_like(ph.labels)
        except StemsegValueError:
            pass
    try:
        workflows.hdbscan(ph, umap_sample=10)
        labels = np.zeros_like(ph.labels)
    except StemsegValueError:
        pass
elif which == "hyperspy-full":
    s = ph.eds.deepcopy()
    s.change_dtype("float32")
    s.decomposition(normalize_poissonian_noise=True, output_dimension=20,
                    svd_solver="randomized", print_info=False, random_state=seed)
    s.cluster_analysis("decomposition", number_of_components=k, n_clusters=k,
                       preprocessing="norm", algorithm="kmeans", random_state=seed)
    labels = s.learning_results.cluster_labels.argmax(axis=0).reshape(size, size)
else:
    s = ph.eds.rebin(scale=(2, 2, 1))
    s.change_dtype("float32")
    s.decomposition(normalize_poissonian_noise=True, output_dimension=20,
                    svd_solver="randomized", print_info=False, random_state=seed)
    s.cluster_analysis("decomposition", number_of_components=k, n_clusters=k,
                       preprocessing="norm", algorithm="kmeans", random_state=seed)
    binned = s.learning_results.cluster_labels.argmax(axis=0).reshape(size // 2, size // 2)
    labels = np.repeat(np.repeat(binned, 2, 0), 2, 1)
elapsed = time.perf_counter() - start
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
cube_mb = ph.eds.data.size * 4 / 2**20
print(json.dumps(dict(method=which, size=size, seconds=elapsed, peak_mb=peak - base,
                      cube_float32_mb=cube_mb, ari=metrics.ari(labels, ph.labels))))
"""


METHODS = ("hyperspy", "gmm", "gmm-poisson", "hdbscan", "hdbscan-cold", "hdbscan-all",
           "hyperspy-full", "bad-params")


def measure(which: str, size: int, seed: int) -> dict:
    env = dict(os.environ)
    with tempfile.TemporaryDirectory(prefix="stemseg-cold-") as empty:
        if which == "hdbscan-cold":
            # an empty cache folder; no NUMBA_CACHE_DIR of the caller's
            env["STEMSEG_CACHE_DIR"] = empty
            env.pop("NUMBA_CACHE_DIR", None)
            env.pop("STEMSEG_NUMBA_CACHE", None)
        out = subprocess.run([sys.executable, "-c", CHILD, which, str(size), str(seed)],
                             capture_output=True, text=True, check=True, env=env)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[128, 256, 512])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    args = parser.parse_args(argv)
    if "hdbscan" in args.methods:
        measure("hdbscan", 64, args.seed)  # fills numba's disk cache (see the docstring)
    print(f"machine: {platform.machine()}, {platform.processor() or '?'}, "
          f"python {platform.python_version()}")
    header = f"{'size':>9} {'method':>12} {'time s':>8} {'peak MB':>8} {'x cube':>7} {'ARI':>6} {'t/base':>7}"
    print(header, flush=True)
    for size in args.sizes:
        methods = ["hyperspy"] + [m for m in args.methods if m != "hyperspy"
                                  and not (m == "hdbscan-all" and size > 256)]
        rows = {m: measure(m, size, args.seed) for m in methods}
        for m, r in rows.items():
            ratio = r["seconds"] / rows["hyperspy"]["seconds"]
            print(f"{size:>4}x{size:<4} {m:>12} {r['seconds']:8.1f} {r['peak_mb']:8.0f} "
                  f"{r['peak_mb'] / r['cube_float32_mb']:7.2f} {r['ari']:6.3f} {ratio:7.2f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
