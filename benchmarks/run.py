"""`make bench`: the workflow benchmark (time, peak memory, ARI vs HyperSpy) at 128, 256 and 512.

    python benchmarks/run.py [--sizes 128 256 512]

Other scripts (multimodal methods, phantoms, notebooks) are listed in benchmarks/README.md.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import bench_workflows  # noqa: E402

if __name__ == "__main__":
    sys.exit(bench_workflows.main(sys.argv[1:]))
