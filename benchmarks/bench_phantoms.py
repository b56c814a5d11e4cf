"""Time the generation of phantoms (a script, not a test).

Run: ``python benchmarks/bench_phantoms.py [--repeat N]``

The first call of a session includes importing HyperSpy/exspy and computing each phase's
unit spectrum (cached afterwards); later calls time the geometry, the HAADF image and the
Poisson draws. Prints seconds per phantom and the cube size.
"""

from __future__ import annotations

import argparse
import time
import warnings


def _time(label: str, repeat: int, **kwargs) -> None:
    from stemseg import simulate

    times = []
    for seed in range(repeat):
        start = time.perf_counter()
        ph = simulate.phantom(random_state=seed, **kwargs)
        times.append(time.perf_counter() - start)
    data = ph.eds.data
    print(f"{label:48s} {'x'.join(map(str, data.shape)):>14s} {data.dtype!s:6s} "
          f"{data.nbytes / 2**20:7.0f} MiB  first {times[0]:6.2f} s  "
          f"best {min(times):6.2f} s  counts/px {data.sum(axis=-1).mean():8.1f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3, help="runs per phantom (default 3)")
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    start = time.perf_counter()
    import stemseg.simulate  # noqa: F401  (import time reported separately)
    import exspy  # noqa: F401

    print(f"import stemseg.simulate + exspy: {time.perf_counter() - start:.2f} s")
    _time("sulfide-6cation 128x128x2048 (default)", args.repeat, name="sulfide-6cation",
          shape=(128, 128), n_channels=2048)
    _time("sulfide-6cation 128x128x2048, 5000 counts/px", args.repeat,
          name="sulfide-6cation", shape=(128, 128), counts_per_pixel=5000)
    _time("nanoparticles-7cation 128x128x2048", args.repeat, name="nanoparticles-7cation")
    _time("lfo-sto pristine 0 dpa 500x500x1024", args.repeat, name="lfo-sto")
    _time("lfo-sto defective 0.1 dpa 510x510x1024", args.repeat, name="lfo-sto",
          defective=True, irradiated=True)


if __name__ == "__main__":
    main()
