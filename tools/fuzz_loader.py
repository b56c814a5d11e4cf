"""Fuzz stemseg.io.load with mutated copies of the bundled real files.

Each mutated copy is loaded with ``isolate=True`` (the reader runs in a child
process). Outcomes are counted: ``loaded``, ``StemsegError`` (a clear error),
``crash contained`` (the reader died; the caller got StemsegReaderCrash).
Anything else escaping to the caller is a bug and is listed.

    python tools/fuzz_loader.py --n 100 --seed 0      # the longer run
"""

from __future__ import annotations

import argparse
import collections
import sys
import tempfile
import warnings
from pathlib import Path

import numpy as np

from stemseg import data, io
from stemseg.errors import StemsegError, StemsegReaderCrash

#: files small enough to fuzz quickly (the 6.7 MB FeCoO file is left out of the bounded run)
TARGETS = ("bruker_tem_CuOPdTi_64x64", "bruker_sem_mineral_30x30", "velox_si_16x16_CCaOCu")


def mutate(raw: bytes, rng: np.random.Generator) -> bytes:
    """One of: flip 16 random bytes, overwrite a random block, or truncate."""
    buf = bytearray(raw)
    kind = rng.integers(3)
    if kind == 0:
        for pos in rng.integers(0, len(buf), 16):
            buf[pos] = rng.integers(0, 256)
    elif kind == 1:
        start = int(rng.integers(0, len(buf) - 64))
        buf[start:start + 64] = rng.integers(0, 256, 64, dtype=np.uint8).tobytes()
    else:
        buf = buf[: int(rng.integers(1, len(buf)))]
    return bytes(buf)


def run(n_per_file: int, seed: int, targets=TARGETS) -> tuple[collections.Counter, list[str]]:
    """Fuzz ``n_per_file`` mutations of each target; return outcome counts and escapes."""
    rng = np.random.default_rng(seed)
    outcomes: collections.Counter = collections.Counter()
    escaped: list[str] = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in targets:
            src = data.example(name)
            raw = src.read_bytes()
            for i in range(n_per_file):
                path = Path(tmp) / f"{i}{src.suffix}"
                path.write_bytes(mutate(raw, rng))
                try:
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore")
                        io.load(path, isolate=True)
                    outcomes["loaded"] += 1
                except StemsegReaderCrash:
                    outcomes["crash contained"] += 1
                except StemsegError:
                    outcomes["StemsegError"] += 1
                except BaseException as exc:  # noqa: BLE001 - this is what we hunt
                    outcomes["escaped"] += 1
                    escaped.append(f"{name} #{i}: {type(exc).__name__}: {exc}")
    return outcomes, escaped


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=50, help="mutations per file")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    outcomes, escaped = run(args.n, args.seed)
    print(dict(outcomes))
    for line in escaped:
        print("ESCAPED", line)
    return 1 if escaped else 0


if __name__ == "__main__":
    sys.exit(main())
