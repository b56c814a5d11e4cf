"""Time, peak memory and ARI of the lazy (streamed) GMM and HDBSCAN workflows on big maps.

For every size the sulfide phantom is written as ``.zspy`` in a temporary folder (by a
child process, ``stemseg simulate``); then a *fresh* child process loads it lazily
(``stemseg.io.load(path, lazy=True)``), runs ``stemseg.workflows.gmm`` or
``stemseg.workflows.hdbscan`` (defaults: UMAP on a sample of 4096 binned pixels; both
stream over the dask array, see :mod:`stemseg.streaming`) and reports

* seconds of the workflow,
* peak RSS (``ru_maxrss``) of the child, absolute and minus its RSS after the imports and
  the lazy load (the cube itself is never in memory on this path),
* ARI of ``labels_full`` against the phantom's truth, and (``vs mem``) against the
  in-memory workflow's ``labels_full`` when that row ran too.

``--cluster`` adds a run through a ``dask.distributed`` ``LocalCluster`` (one in-process
worker with 2 threads, ``processes=False`` so that its memory is the child's RSS);
``--memory`` adds the in-memory workflow on the same file (loaded without ``lazy``) for the
sizes up to ``--memory-max`` (default 256) for comparison.

    python benchmarks/bench_lazy.py [--sizes 128 256 512] [--workflows gmm hdbscan]
                                    [--cluster] [--memory] [--memory-max 256] [--seed 0]
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

path, mode, seed, workflow, labels_out = sys.argv[1:6]
seed = int(seed)
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
if workflow == "gmm":
    seg = workflows.gmm(acq, n_clusters=k, random_state=seed, client=client)
else:
    seg = workflows.hdbscan(acq, random_state=seed, client=client)
elapsed = time.perf_counter() - start
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
n = acq.eds.data.shape
np.save(labels_out, seg.labels_full)
print(json.dumps(dict(workflow=workflow, mode=mode, size=int(n[0]), seconds=elapsed,
                      peak_mb=peak - base,
                      peak_abs_mb=peak, base_mb=base,
                      cube_uint16_mb=float(np.prod(n)) * 2 / 2**20,
                      ari=metrics.ari(seg.labels_full, truth),
                      n_components=seg.params["n_components"],
                      n_clusters=int(seg.sizes.size),
                      noise_fraction=float(seg.noise_fraction),
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


def measure(path: Path, mode: str, seed: int, workflow: str = "gmm",
            labels_out: Path | None = None) -> dict:
    labels_out = labels_out or path.with_name(f"{path.stem}_{workflow}_{mode}.npy")
    out = subprocess.run([sys.executable, "-c", CHILD, str(path), mode, str(seed), workflow,
                          str(labels_out)], capture_output=True, text=True)
    if out.returncode:
        raise RuntimeError(f"{workflow} {mode} on {path.name} failed:\n{out.stderr[-3000:]}")
    row = json.loads(out.stdout.strip().splitlines()[-1])
    row["labels_path"] = str(labels_out)
    return row


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[128, 256, 512])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workflows", nargs="+", choices=("gmm", "hdbscan"),
                        default=["gmm", "hdbscan"])
    parser.add_argument("--cluster", action="store_true", help="also via a LocalCluster")
    parser.add_argument("--memory", action="store_true", help="also the in-memory workflow")
    parser.add_argument("--memory-max", type=int, default=256)
    parser.add_argument("--json", type=Path, help="write the rows to this file")
    args = parser.parse_args(argv)
    print(f"machine: {platform.machine()}, {platform.processor() or '?'}, "
          f"{os.cpu_count()} CPUs, python {platform.python_version()}")
    header = (f"{'size':>9} {'workflow':>8} {'mode':>8} {'time s':>8} {'peak MB':>8} "
              f"{'abs MB':>8} {'cube MB':>8} {'ARI':>6} {'vs mem':>6}")
    print(header)
    print("-" * len(header))
    rows = []
    with tempfile.TemporaryDirectory(prefix="stemseg-bench-lazy-") as tmp:
        for size in args.sizes:
            path = write_phantom(Path(tmp), size, args.seed)
            modes = ["lazy"] + (["cluster"] if args.cluster else []) + \
                (["memory"] if args.memory and size <= args.memory_max else [])
            for workflow in args.workflows:
                done = [measure(path, mode, args.seed, workflow) for mode in modes]
                mem = [m for m in done if m["mode"] == "memory"]
                for r in done:
                    r["ari_vs_memory"] = None
                    if mem and r["mode"] != "memory":   # agreement with the in-memory labels
                        import numpy as np
                        from stemseg import metrics

                        r["ari_vs_memory"] = metrics.ari(np.load(r["labels_path"]),
                                                         np.load(mem[0]["labels_path"]))
                    rows.append(r)
                    vs = "" if r["ari_vs_memory"] is None else f"{r['ari_vs_memory']:6.3f}"
                    print(f"{size:>4}x{size:<4} {workflow:>8} {r['mode']:>8} "
                          f"{r['seconds']:8.1f} {r['peak_mb']:8.0f} {r['peak_abs_mb']:8.0f} "
                          f"{r['cube_uint16_mb']:8.0f} {r['ari']:6.3f} {vs:>6}", flush=True)
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
