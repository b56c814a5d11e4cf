"""Time, peak memory and ARI of the lazy (streamed) GMM workflow on big maps.

For every size the sulfide phantom is written as ``.zspy`` in a temporary folder (by a
child process, ``stemseg simulate``); then a *fresh* child process loads it lazily
(``stemseg.io.load(path, lazy=True)``), runs ``stemseg.workflows.gmm`` (which streams over
the dask array, see :mod:`stemseg.streaming`) and reports

* seconds of the workflow,
* peak RSS (``ru_maxrss``) of the child, absolute and minus its RSS after the imports and
  the lazy load (the cube itself is never in memory on this path),
* ARI of ``labels_full`` against the phantom's truth.

``--cluster`` adds a run through a ``dask.distributed`` ``LocalCluster`` (one in-process
worker with 2 threads, ``processes=False`` so that its memory is the child's RSS);
``--memory`` adds the in-memory workflow on the same file (loaded without ``lazy``) for the
sizes up to ``--memory-max`` (default 256) for comparison.

    python benchmarks/bench_lazy.py [--sizes 128 256 512] [--cluster] [--memory] [--seed 0]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

CHILD = r"""
import json, resource, sys, time, warnings
warnings.simplefilter("ignore")
import numpy as np
import stemseg
from stemseg import metrics, workflows

def rss_mb():
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")

path, mode, seed = sys.argv[1], sys.argv[2], int(sys.argv[3])
acq = stemseg.io.load(path, lazy=mode != "memory")
truth = np.asarray(acq.labels)
k = len(acq.phases)
client = cluster = None
if mode == "cluster":
    from dask.distributed import Client, LocalCluster
    cluster = LocalCluster(n_workers=1, threads_per_worker=2, processes=False,
                           dashboard_address=None)
    client = Client(cluster)
base = rss_mb()
start = time.perf_counter()
seg = workflows.gmm(acq, n_clusters=k, random_state=seed, client=client)
elapsed = time.perf_counter() - start
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
n = acq.eds.data.shape
print(json.dumps(dict(mode=mode, size=int(n[0]), seconds=elapsed, peak_mb=peak - base,
                      peak_abs_mb=peak, base_mb=base,
                      cube_uint16_mb=float(np.prod(n)) * 2 / 2**20,
                      ari=metrics.ari(seg.labels_full, truth),
                      n_components=seg.params["n_components"],
                      timings={k: round(v, 2) for k, v in seg.timings.items()})))
if client is not None:
    client.close(); cluster.close()
"""


def write_phantom(folder: Path, size: int, seed: int) -> Path:
    path = folder / f"sulfide_{size}.zspy"
    exe = Path(sys.executable).with_name("stemseg")
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "stemseg.cli"]
    subprocess.run(cmd + ["simulate", "sulfide-6cation", "--shape", str(size), str(size),
                          "--seed", str(seed), "--out", str(path)],
                   check=True, capture_output=True, text=True)
    return path


def measure(path: Path, mode: str, seed: int) -> dict:
    out = subprocess.run([sys.executable, "-c", CHILD, str(path), mode, str(seed)],
                         capture_output=True, text=True)
    if out.returncode:
        raise RuntimeError(f"{mode} on {path.name} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[128, 256, 512])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--cluster", action="store_true", help="also via a LocalCluster")
    parser.add_argument("--memory", action="store_true", help="also the in-memory workflow")
    parser.add_argument("--memory-max", type=int, default=256)
    parser.add_argument("--json", type=Path, help="write the rows to this file")
    args = parser.parse_args(argv)
    print(f"machine: {platform.machine()}, {platform.processor() or '?'}, "
          f"{os.cpu_count()} CPUs, python {platform.python_version()}")
    header = (f"{'size':>9} {'mode':>8} {'time s':>8} {'peak MB':>8} {'abs MB':>8} "
              f"{'cube MB':>8} {'ARI':>6}")
    print(header)
    print("-" * len(header))
    rows = []
    with tempfile.TemporaryDirectory(prefix="stemseg-bench-lazy-") as tmp:
        for size in args.sizes:
            path = write_phantom(Path(tmp), size, args.seed)
            modes = ["lazy"] + (["cluster"] if args.cluster else []) + \
                (["memory"] if args.memory and size <= args.memory_max else [])
            for mode in modes:
                r = measure(path, mode, args.seed)
                rows.append(r)
                print(f"{size:>4}x{size:<4} {mode:>8} {r['seconds']:8.1f} "
                      f"{r['peak_mb']:8.0f} {r['peak_abs_mb']:8.0f} "
                      f"{r['cube_uint16_mb']:8.0f} {r['ari']:6.3f}", flush=True)
            path_size = sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
            print(f"{'':>9} file {path_size / 2**20:.0f} MB on disk", flush=True)
            import shutil

            shutil.rmtree(path)
    print("peak MB = peak RSS of the child minus its RSS after imports and the (lazy) load; "
          "abs MB = the peak RSS itself")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
