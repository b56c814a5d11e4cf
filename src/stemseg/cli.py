"""The ``stemseg`` command line: the same pipeline without a notebook.

Sub-commands
------------
``stemseg demo``
    The main job of ``make run``: load every bundled real file and print a
    table describing it.
"""

from __future__ import annotations

import argparse
import sys
import warnings
from collections.abc import Sequence

from .errors import StemsegError

__all__ = ["main", "describe_acquisition"]


def describe_acquisition(acq) -> dict[str, object]:
    """One row of the demo table for an Acquisition.

    Parameters
    ----------
    acq : Acquisition

    Returns
    -------
    dict
        file, format, EDS shape (rows, columns, channels), dtype, mean counts
        per pixel, elements, beam energy (kV), pixel size (nm), registered
        images (the HAADF one marked with ``*``).
    """
    eds = acq.eds
    md = eds.metadata
    beam = md.get_item("Acquisition_instrument.TEM.beam_energy")
    if beam is None:
        beam = md.get_item("Acquisition_instrument.SEM.beam_energy")
    images = [
        f"{title}*" if image is acq.haadf else title for title, image in acq.images.items()
    ]
    counts = eds.data.sum(axis=-1)
    mean_counts = float(counts.mean().compute() if hasattr(counts, "compute") else counts.mean())
    scale = eds.axes_manager.navigation_axes[0].scale
    return {
        "file": acq.source.name if acq.source else "(simulated)",
        "format": acq.source.suffix.lstrip(".").lower() if acq.source else "-",
        "kind": "SEM" if acq.is_sem else "TEM",
        "EDS shape": "x".join(str(n) for n in eds.data.shape),
        "dtype": str(eds.data.dtype),
        "counts/px": f"{mean_counts:.3g}",
        "elements": " ".join(md.get_item("Sample.elements", default=[])) or "(none)",
        "beam kV": "?" if beam is None else f"{beam:g}",
        "px nm": f"{scale:.3g}",
        "images (*=HAADF)": ", ".join(images) or "(none)",
    }


def _print_table(rows: list[dict[str, object]], file=None) -> None:
    if not rows:
        return
    columns = list(rows[0])
    widths = {c: max(len(c), *(len(str(r[c])) for r in rows)) for c in columns}
    line = "  ".join(c.ljust(widths[c]) for c in columns)
    print(line, file=file)
    print("  ".join("-" * widths[c] for c in columns), file=file)
    for r in rows:
        print("  ".join(str(r[c]).ljust(widths[c]) for c in columns), file=file)


def _cmd_demo(args: argparse.Namespace) -> int:
    from . import data, io

    rows = []
    for name in data.EXAMPLES:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            acq = io.load(data.example(name), isolate=args.isolate)
        rows.append(describe_acquisition(acq))
        for w in caught:
            if isinstance(w.message, io.StemsegLoadWarning):
                print(f"note: {w.message}", file=sys.stderr)
    print("Bundled real spectrum images (stemseg.data.examples()):")
    _print_table(rows)
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``stemseg`` command."""
    parser = argparse.ArgumentParser(
        prog="stemseg",
        description="Unsupervised segmentation of STEM spectrum images.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    demo = sub.add_parser("demo", help="load the bundled real files and describe them")
    demo.add_argument(
        "--no-isolate",
        dest="isolate",
        action="store_false",
        help="parse files in this process (default: in a child process, so a reader "
        "crash cannot take the command down)",
    )
    demo.set_defaults(func=_cmd_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``stemseg`` console script.

    Returns
    -------
    int
        Exit status: 0 on success, 2 for a usage or input error (the message
        says what to fix).
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    try:
        return int(args.func(args) or 0)
    except StemsegError as exc:
        print(f"stemseg: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
