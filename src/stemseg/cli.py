"""The ``stemseg`` command line: the same pipeline without a notebook.

Sub-commands
------------
``stemseg demo``
    The main job of ``make run``: load every bundled real file and print a
    table describing it.
``stemseg simulate NAME --out FILE``
    Write a ground-truth phantom (``.hspy`` or ``.zspy``) for tests, teaching
    and benchmarks; refuses to overwrite unless ``--overwrite``.
``stemseg run FILE|DIR --workflow gmm|hdbscan --out DIR``
    Segment one map, or every map in a folder, and write labels (.npy and a
    PNG with a scale bar), mean spectra (.hspy), the quantification (CSV),
    entropies and all parameters (JSON). The output folder appears only when
    complete (an interrupted run leaves nothing behind). A folder goes on past
    a failing map: each map gets its complete sub-folder or a row with the
    reason in ``batch_summary.csv``, and the exit status is 1 when any failed
    (``--stop-on-error`` stops at the first).
"""

from __future__ import annotations

import argparse
import signal
import sys
import warnings
from collections.abc import Sequence

from .errors import StemsegError, StemsegValueError

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
    if args.phantom:
        print()
        _demo_phantom(args.seed)
    return 0


def _cmd_warm_up(args: argparse.Namespace) -> int:
    import time

    from . import _cache, reduce

    start = time.perf_counter()
    cached = reduce.warm_umap_cache()
    where = (_cache.configure_numba_cache_dir() if cached
             else "this process only (STEMSEG_NUMBA_CACHE=0)")
    print(f"umap-learn's kernels compiled in {time.perf_counter() - start:.1f} s; "
          f"cached in {where}")
    return 0


def _demo_phantom(seed: int) -> None:
    """Both workflows on the 6-cation phantom, quantified next to the paper's Table 1."""
    import time

    from . import data, metrics, quant, simulate, workflows

    phantom = simulate.phantom("sulfide-6cation", random_state=seed)
    print(f"Phantom sulfide-6cation (seed {seed}): EDS "
          f"{'x'.join(map(str, phantom.eds.data.shape))}, phases "
          f"{', '.join(p.name for p in phantom.phases)}")
    paper = data.paper_values()["eggeman2025_table1_6cation"]
    roman = {name: key for key, name in paper["cluster_names"].items()}
    columns: dict[str, dict] = {}
    # GMM with the Poisson weighting before the RobustScaler: with the scaler alone, 5
    # clusters on the automatic 4 PCA components merge minority into majority wurtzite on
    # this phantom (ARI 0.87), which notebook 02 teaches; the demo shows the working setup.
    print("  (gmm: 5 clusters, poisson=True; without it minority and majority wurtzite "
          "merge -- see notebook 02)")
    for name, run in (("gmm", lambda: workflows.gmm(phantom, n_clusters=5, poisson=True,
                                                    random_state=seed)),
                      ("hdbscan", lambda: workflows.hdbscan(phantom, random_state=seed))):
        start = time.perf_counter()
        seg = run()
        table = quant.quantify(seg, extra_elements=phantom.truth.get("stray_elements", []))
        elapsed = time.perf_counter() - start
        ari = metrics.ari(seg.labels_full, phantom.labels)
        print(f"  {name:8s} {seg.n_clusters} clusters, ARI vs truth {ari:.3f}, "
              f"noise {seg.noise_fraction:.1%}, {elapsed:.1f} s")
        mapping = metrics.match_clusters(seg.labels_full, phantom.labels)
        columns[name] = {phantom.phases[t].name: table[table.cluster == c]
                         for c, t in mapping.items()}
    rows = []
    for phase in phantom.phases:
        key = roman.get(phase.name)
        if key is None:
            continue  # the resin support is not in the paper's table
        for element in sorted(phase.composition):
            row = {"phase": f"{key} {phase.name}", "el": element,
                   "truth": f"{phase.composition[element]:.1f}"}
            for name, workflow in (("gmm", "workflow1_pca_gmm"),
                                   ("hdbscan", "workflow2_umap_hdbscan")):
                part = columns[name].get(phase.name)
                hit = None if part is None else part[part.element == element]
                row[name] = ("-" if hit is None or hit.empty else
                             f"{hit.at_pct.iloc[0]:.1f}±{hit.sigma_total.iloc[0]:.2f}"
                             + ("!" if "mixing_flag" in hit and bool(hit["mixing_flag"].iloc[0])
                                else ""))
                value = paper[workflow][key].get(element)
                row[f"paper {name}"] = "-" if value is None else f"{value[0]:.1f}±{value[1]:.1f}"
            rows.append(row)
    print("Matched clusters, at. % +- 1 s.d. of the whole budget (counting, k-factor, "
          "mixing); ! = the cluster's core pixels disagree with all its pixels (mixed "
          "pixels). Phantom truth = the paper's workflow-1 compositions:")
    _print_table(rows)


def _n_clusters(text: str) -> int | str:
    """``--n-clusters``: a whole number or ``auto``."""
    if text.strip().lower() == "auto":
        return "auto"
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a whole number or 'auto', got {text!r}") from None


def _parse_option(text: str) -> tuple[str, object]:
    """``key=value`` -> (key, value) with value parsed as JSON when possible."""
    import json

    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    try:
        return key.replace("-", "_"), json.loads(value)
    except json.JSONDecodeError:
        return key.replace("-", "_"), value


def _cmd_simulate(args: argparse.Namespace) -> int:
    from pathlib import Path

    from . import simulate
    from .errors import StemsegFileExistsError

    if Path(args.out).exists() and not args.overwrite:  # before the work, in CLI words
        raise StemsegFileExistsError(
            f"'{args.out}' exists and was left untouched. Choose another name, or pass "
            "--overwrite to replace it."
        )

    options = dict(args.option or [])
    if args.shape is not None:
        options["shape"] = tuple(args.shape)
    if args.counts_per_pixel is not None:
        options["counts_per_pixel"] = args.counts_per_pixel
    phantom = simulate.phantom(args.name, random_state=args.seed, **options)
    simulate.save(phantom, args.out, overwrite=args.overwrite)
    print(f"wrote {args.out}: {args.name}, EDS {'x'.join(map(str, phantom.eds.data.shape))}, "
          f"{len(phantom.phases)} phases, seed {args.seed}")
    return 0


DEFAULT_ANIONS = ("S", "O", "Se", "Te")


def _read_kfactors(path: str) -> dict[str, float]:
    """k-factors of ``--kfactors`` in the main-line convention (:func:`xray.read_kfactors`:
    JSON, CSV ``line,k`` or a Velox export, family values converted)."""
    from pathlib import Path

    from . import xray
    from .errors import StemsegValueError

    file = Path(path)
    if not file.is_file():
        raise StemsegValueError(f"--kfactors: no such file '{file}'.")
    try:
        return xray.read_kfactors(file)
    except StemsegValueError as exc:
        raise StemsegValueError(f"--kfactors: {exc}") from None


def _is_folder_of_maps(path) -> bool:
    """A folder to run every map of; a ``.zspy`` map is a folder (a Zarr store) too."""
    return path.is_dir() and path.suffix.lower() != ".zspy"


def _map_files(target) -> list:
    from pathlib import Path

    from . import io

    target = Path(target)
    if not _is_folder_of_maps(target):
        return [target]
    exts = {"emd", "bcf", "pts", "hspy", "zspy"}
    files = sorted(p for p in target.iterdir() if p.suffix.lower().lstrip(".") in exts)
    if not files:
        raise io.StemsegFileNotFoundError(
            f"'{target}' holds no spectrum-image files ({', '.join(sorted(exts))})."
        )
    return files


def _segment(acq, args):
    from . import workflows

    if args.workflow == "gmm":
        n_clusters = args.n_clusters
        if n_clusters == "auto":
            from . import validate

            if getattr(args, "streamed", None) and args.streamed != "--lazy":
                raise StemsegValueError(
                    "--n-clusters auto (count splitting) holds the whole cube in memory, and "
                    f"this map is too big for that ({args.streamed}). Give a number of "
                    "clusters, or read a smaller map with --downsample N or --cutoff-kv KV.")
            choice = validate.choose_n_clusters(acq, random_state=args.seed, bin=args.bin,
                                                energy_range=args.energy_range_keV)
            n_clusters = choice.n_clusters
            args.n_clusters_choice = {
                "method": "count splitting (Poisson thinning), stemseg.validate",
                "chosen": n_clusters,
                "distinct_unmixed_clusters_by_k": {str(k): v for k, v in
                                                   choice.survivors.items()}}
        return workflows.gmm(acq, n_clusters=n_clusters, n_components=args.n_components,
                             bin=args.bin, random_state=args.seed, progress=True,
                             energy_range=args.energy_range_keV)
    return workflows.hdbscan(acq, min_cluster_size=args.min_cluster_size, bin=args.bin,
                             random_state=args.seed, min_samples=args.min_samples,
                             min_cluster_size_units=args.min_cluster_size_units,
                             progress=True, energy_range=args.energy_range_keV)


def _quantify(seg, acq, args):
    """Quantification table and entropies, or (None, reason) when it cannot apply."""
    from . import quant
    from .errors import StemsegError

    if acq.is_sem:
        return None, None, "SEM map: Cliff-Lorimer thin-film quantification does not apply"
    kfactors = _read_kfactors(args.kfactors) if args.kfactors else None
    try:
        table = quant.quantify(seg, kfactors=kfactors, beam_energy_kV=args.beam_energy)
    except StemsegError as exc:
        if kfactors is not None:
            raise  # the user's k-factors do not fit: stop, never fall back silently
        return None, None, str(exc)
    entropies = {}
    for cluster, part in table.groupby("cluster"):
        value, sigma = quant.configurational_entropy(part, anions=args.anions)
        entropies[str(cluster)] = {"entropy_R": value, "sigma_R": sigma}
    return table, entropies, None


def _sha256(path) -> str | None:
    """SHA-256 of the input file; of a directory store (.zspy), over every file's path
    relative to the store and its bytes, in sorted order; None when there is no input."""
    import hashlib
    from pathlib import Path

    path = Path(path)
    if path.is_file():
        files = [(path.name, path)]
    elif path.is_dir():
        files = sorted((f.relative_to(path).as_posix(), f) for f in path.rglob("*")
                       if f.is_file())
    else:
        return None
    digest = hashlib.sha256()
    for name, file in files:
        if path.is_dir():
            digest.update(name.encode() + b"\0")
        with file.open("rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for name in ("stemseg", "hyperspy", "exspy", "rosettasciio", "numpy", "scikit-learn",
                 "umap-learn", "hdbscan", "xraylib"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            continue
    return out


def _spectra_figure(seg, lines):
    """Each cluster's mean spectrum with the quantified lines marked: linear and log."""
    import matplotlib.pyplot as plt

    from . import plots

    fig, axes = plt.subplots(2, 1, figsize=(8, 6.5), layout="constrained")
    names = [f"cluster {c}" for c in range(seg.n_clusters)]
    for ax, log in zip(axes, (False, True)):
        plots.spectra(seg.mean_spectra, labels=names, ax=ax, lines=lines, log=log,
                      energy_range=_shown_range(seg),
                      title="mean spectra per original pixel" + (", log scale" if log else ""))
    return fig


def _shown_range(seg) -> tuple[float, float]:
    """0.2 keV to the end of the spectra's energy axis, at most 20 keV."""
    axis = seg.mean_spectra.axes_manager.signal_axes[0]
    hi = float(axis.high_value) / (1000.0 if str(axis.units) == "eV" else 1.0)
    return 0.2, min(hi, 20.0)


def _report(out, acq, seg, table, note, warnings) -> None:
    """One page per map: label map, mean spectra, composition table and parameters."""
    import matplotlib.pyplot as plt

    from . import plots

    fig = plt.figure(figsize=(8.27, 11.69), layout="constrained")  # A4
    grid = fig.add_gridspec(3, 2, height_ratios=[1.1, 0.9, 1.0])
    seg.plot(full=True, ax=fig.add_subplot(grid[0, 0]))
    text = fig.add_subplot(grid[0, 1])
    text.axis("off")
    params = {k: v for k, v in seg.params.items() if v is not None}
    lines = [f"file: {acq.source.name if hasattr(acq.source, 'name') else acq.source}",
             f"{seg.n_clusters} clusters, noise {100 * seg.noise_fraction:.1f} % (binned)",
             f"random_state: {seg.random_state}"]
    lines += [f"{k}: {v}" for k, v in params.items()][:22]
    lines += [f"note: {note}"] if note else []
    lines += [f"warning: {w.split('. ')[0]}" for w in warnings]
    text.text(0, 1, "\n".join(_wrap(line, 58) for line in lines), va="top", fontsize=7,
              family="monospace")
    xray_lines = list(table.attrs.get("lines", [])) if table is not None else None
    plots.spectra(seg.mean_spectra, ax=fig.add_subplot(grid[1, :]), lines=xray_lines,
                  log=True, labels=[f"cluster {c}" for c in range(seg.n_clusters)],
                  title="mean spectra (log scale)", energy_range=_shown_range(seg))
    ax = fig.add_subplot(grid[2, :])
    ax.axis("off")
    if table is None:
        ax.text(0, 1, f"not quantified: {note}", va="top", fontsize=8, wrap=True)
    else:
        wide = table.assign(v=[f"{a:.2f} ± {b:.2f}" for a, b in
                               zip(table.at_pct, table.sigma_total)]
                            ).pivot(index="cluster", columns="element", values="v")
        ax.set_title("at. % ± sigma_total (1 s.d.; quantification.csv has the budget)",
                     fontsize=9)
        cells = ax.table(cellText=wide.fillna("").values, rowLabels=[str(c) for c in wide.index],
                         colLabels=list(wide.columns), loc="upper center")
        cells.auto_set_font_size(False)
        cells.set_fontsize(7)
    fig.savefig(out / "report.pdf")
    plt.close(fig)


def _wrap(line: str, width: int) -> str:
    import textwrap

    return "\n".join(textwrap.wrap(line, width)) or line


def _write_result(out, acq, seg, table, entropies, note, args, warnings=()) -> None:
    import json

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np
    from PIL import Image

    np.save(out / "labels.npy", seg.labels)
    np.save(out / "labels_full.npy", seg.labels_full)
    seg.label_signal(full=True).save(out / "labels.hspy", overwrite=True)
    seg.save(out / "segmentation.hspy", overwrite=True)   # stemseg.io.load_segmentation
    # 16-bit TIFF for image software: cluster + 1, 0 = noise
    Image.fromarray((seg.labels_full + 1).astype(np.uint16)).save(out / "labels.tif")
    ax = seg.plot(full=True)
    ax.figure.savefig(out / "labels.png", dpi=150, bbox_inches="tight")
    plt.close(ax.figure)
    seg.mean_spectra.save(out / "mean_spectra.hspy", overwrite=True)
    lines = (list(table.attrs.get("lines", [])) if table is not None
             else list(acq.eds.metadata.get_item("Sample.xray_lines") or []))
    fig = _spectra_figure(seg, lines)
    fig.savefig(out / "spectra.png", dpi=120)
    plt.close(fig)
    if table is not None:
        table.to_csv(out / "quantification.csv", index=False)
    _report(out, acq, seg, table, note, warnings)
    nav = acq.eds.axes_manager.navigation_axes
    summary = {
        "source": str(acq.source),
        "source_sha256": _sha256(acq.source),
        "workflow": seg.workflow,
        "streamed": getattr(args, "streamed", None),
        "params": seg.params,
        "random_state": seg.random_state,
        "n_clusters": int(seg.n_clusters),
        "noise_fraction": float(seg.noise_fraction),
        "sizes": [int(n) for n in seg.sizes] if seg.sizes is not None else None,
        "timings_s": seg.timings,
        "elements": list(acq.eds.metadata.get_item("Sample.elements") or []),
        "xray_lines": lines,
        "beam_energy_kV": (table.attrs.get("beam_energy_kV") if table is not None else
                           acq.eds.metadata.get_item(
                               "Acquisition_instrument.TEM.beam_energy",
                               acq.eds.metadata.get_item(
                                   "Acquisition_instrument.SEM.beam_energy"))),
        "kfactors": table.attrs.get("kfactors") if table is not None else None,
        "kfactor_source": (f"{table.attrs.get('kfactor_source')}"
                           + (f": {args.kfactors}" if args.kfactors else "")
                           if table is not None else None),
        "kfactor_relative_sigma": (table.attrs.get("kfactor_relative_sigma")
                                   if table is not None else None),
        "pixel_size": [{"axis": a.name, "scale": a.scale, "units": str(a.units)} for a in nav],
        "entropy": entropies,
        "anions": list(args.anions),
        "quantification_note": note,
        "n_clusters_choice": getattr(args, "n_clusters_choice", None),
        "warnings": list(warnings),
        "stemseg_version": __import__("stemseg").__version__,
        "software": _versions(),
    }
    (out / "result.json").write_text(json.dumps(summary, indent=2, default=str))


def _check_run_args(args: argparse.Namespace) -> None:
    """Reject bad --elements, --beam-energy and --kfactors before loading or segmenting."""
    import math

    from . import xray
    from .errors import StemsegValueError

    if args.beam_energy is not None and not (math.isfinite(args.beam_energy)
                                             and args.beam_energy > 0):
        raise StemsegValueError(
            f"--beam-energy must be a positive number in kV, got {args.beam_energy:g}. "
            "Give your microscope's high tension, e.g. --beam-energy 200."
        )
    for element in args.elements or []:
        try:
            xray._element_record(element)
        except StemsegValueError as exc:
            raise StemsegValueError(
                f"--elements: {element!r} is not a chemical element symbol. Use symbols "
                "with their capital letter, e.g. --elements Fe Cu S."
            ) from exc
    if args.kfactors:
        _read_kfactors(args.kfactors)
    from .preprocess import check_bin

    check_bin(args.bin, "--bin")
    args.energy_range_keV = _parse_energy_range(args.energy_range)
    for flag in ("downsample", "rebin_energy"):
        value = getattr(args, flag)
        if value is not None and value < 1:
            raise StemsegValueError(f"--{flag.replace('_', '-')} must be a whole number >= 1, "
                                    f"got {value}.")
    if args.cutoff_kv is not None and not (math.isfinite(args.cutoff_kv) and args.cutoff_kv > 0):
        raise StemsegValueError(f"--cutoff-kv must be a positive energy in keV, got "
                                f"{args.cutoff_kv:g}.")


def _parse_energy_range(values: list[str] | None):
    """``--energy-range`` as the workflows' ``energy_range``: the default when not given,
    None for ``all``, else (lo, hi) in keV with ``none`` for an open end."""
    from .errors import StemsegValueError
    from .preprocess import DEFAULT_ENERGY_RANGE

    if values is None:
        return DEFAULT_ENERGY_RANGE
    if [v.lower() for v in values] == ["all"]:
        return None
    usage = ("--energy-range takes two energies in keV (LO HI; 'none' for an open end, e.g. "
             "--energy-range 0.25 none) or the word all")
    if len(values) != 2:
        raise StemsegValueError(f"{usage}; got {' '.join(values)!r}.")
    try:
        lo, hi = (None if v.lower() == "none" else float(v) for v in values)
    except ValueError:
        raise StemsegValueError(f"{usage}; got {' '.join(values)!r}.") from None
    if lo is not None and hi is not None and not lo < hi:
        raise StemsegValueError(f"--energy-range: LO ({lo:g}) must be below HI ({hi:g}).")
    return lo, hi


#: reader options of ``stemseg run`` and the file types whose reader takes them
#: (rosettasciio: Bruker .bcf, JEOL .pts, Velox .emd)
_READER_OPTIONS = {
    "downsample": ("downsample", {".bcf", ".pts"}),
    "cutoff_kv": ("cutoff_at_kV", {".bcf", ".pts"}),
    "rebin_energy": ("rebin_energy", {".pts", ".emd"}),
}


def _reader_options(path, args) -> tuple[dict[str, object], list[str]]:
    """The reader options of the command line that ``path``'s reader takes, and a note for
    each one it does not (so that the summary says which were ignored)."""
    options, ignored = {}, []
    suffix = path.suffix.lower()
    for dest, (name, suffixes) in _READER_OPTIONS.items():
        value = getattr(args, dest, None)
        if value is None:
            continue
        if suffix in suffixes:
            options[name] = value
        else:
            flag = "--" + dest.replace("_", "-")
            ignored.append(f"{flag} ignored: the {suffix or 'this'} reader has no such option "
                           f"(it applies to {', '.join(sorted(suffixes))})")
    return options, ignored


#: `stemseg run` streams a map (reads it lazily, bounded memory) when its EDS cube holds more
#: than this many bytes in the file's own dtype, or when --lazy is given. In memory the
#: workflows peak at ~1.5x the float32 cube (benchmarks/README.md), i.e. ~3x a uint16 cube:
#: 256 MiB keeps that under ~1 GB above the interpreter.
STREAM_ABOVE_BYTES = 256 * 2**20
#: Files this small on disk are read straight into memory, without first parsing them lazily
#: to learn the cube's size (a lazy parse costs seconds for some readers, e.g. Velox).
#: Compressed or sparse files hold more than their size on disk, but a 32 MiB file would
#: have to be compressed ~8x to hold a cube above STREAM_ABOVE_BYTES.
PROBE_ABOVE_FILE_BYTES = 32 * 2**20


def _disk_size(path) -> int:
    """Bytes on disk of a file, or of every file in a directory store (.zspy); 0 for a
    path that does not exist (stemseg.io.load then says so)."""
    import os

    if not path.exists():
        return 0
    if path.is_dir():
        return sum(os.path.getsize(os.path.join(root, f))
                   for root, _, files in os.walk(path) for f in files)
    return path.stat().st_size


def _load_for_run(path, args, options) -> tuple[object, str | None]:
    """Load one map for `stemseg run`: streamed when big (or --lazy), else in memory.

    Every parse runs first in a child process (a reader crash ends the child only). A file
    bigger than :data:`PROBE_ABOVE_FILE_BYTES` on disk is parsed lazily, which reads its
    headers but not its cube; the cube's size then decides between streaming and memory.

    Returns
    -------
    acquisition : stemseg.io.Acquisition
    streamed : str or None
        Why the map is streamed, or None when it was loaded into memory.
    """
    from . import io

    if not args.lazy and _disk_size(path) <= PROBE_ABOVE_FILE_BYTES:
        return io.load(path, isolate=True, lazy=False, **options), None
    try:
        acq = io.load(path, isolate=True, lazy=True, **options)
    except StemsegError:
        raise
    except Exception:  # noqa: BLE001 - a reader without lazy support: read it eagerly
        if args.lazy:
            raise
        return io.load(path, isolate=True, lazy=False, **options), None
    nbytes = int(acq.eds.data.nbytes)
    if args.lazy:
        return acq, "--lazy"
    if nbytes > STREAM_ABOVE_BYTES:
        return acq, (f"streamed: its cube holds {nbytes / 2**30:.2f} GiB "
                     f"(more than {STREAM_ABOVE_BYTES / 2**20:.0f} MiB)")
    return io.load(path, isolate=True, lazy=False, **options), None


def _run_one(path, target, args) -> dict[str, object]:
    """Load, segment, quantify and write one map into ``target``; a row of the summary."""
    import warnings as _w

    from . import io
    from .errors import StemsegSparseDataWarning

    options, notes = _reader_options(path, args)
    args.n_clusters_choice = None   # per map (--n-clusters auto)
    with _w.catch_warnings():
        _w.simplefilter("ignore")
        acq, streamed = _load_for_run(path, args, options)
    args.streamed = streamed
    if streamed and streamed != "--lazy":
        notes.append(streamed)
        _say(f"{path.name}: {streamed}")
    if args.elements:
        if acq.is_sem:
            notes.append("--elements kept for the mean spectra only: SEM maps are not "
                         "quantified")
        acq.eds.set_elements(args.elements)
    target.mkdir(exist_ok=True)
    with _w.catch_warnings(record=True) as caught:
        _w.simplefilter("always", StemsegSparseDataWarning)
        seg = _segment(acq, args)
        table, entropies, note = _quantify(seg, acq, args)
    sparse = list(dict.fromkeys(str(c.message) for c in caught
                                if issubclass(c.category, StemsegSparseDataWarning)))
    for c in caught:  # the others as they would have been shown
        if not issubclass(c.category, StemsegSparseDataWarning):
            _w.showwarning(c.message, c.category, c.filename, c.lineno)
    for message in sparse:
        _say(f"{path.name}: warning: {message}")
    _write_result(target, acq, seg, table, entropies, note, args, warnings=sparse)
    notes += [f"not quantified: {note}"] if note else []
    if acq.is_sem:
        notes.append(_write_sem_intensities(target, seg))
    notes += [f"few counts: {m.split('. ')[0].split(': ', 1)[-1]}" for m in sparse]
    return {"status": "ok", "clusters": int(seg.n_clusters),
            "noise_pct": round(100 * float(seg.noise_fraction), 2),
            "notes": "; ".join(n.rstrip(".") for n in notes),
            "error": ""}


def _write_sem_intensities(out, seg) -> str:
    """SEM maps: each cluster's net X-ray line intensities (model fit), since Cliff-Lorimer
    does not apply to bulk samples. Returns the note for the batch summary."""
    import numpy as np
    import pandas as pd

    from . import quant

    try:
        li = quant.line_intensities(seg.mean_spectra)
    except StemsegError as exc:
        return f"no line intensities: {exc}"
    intensity = np.atleast_2d(li.intensity)
    sigma = np.atleast_2d(li.sigma)
    rows = [{"cluster": c, "line": line, "intensity_per_pixel": intensity[c, j],
             "sigma": sigma[c, j]}
            for c in range(intensity.shape[0]) for j, line in enumerate(li.lines)]
    pd.DataFrame(rows).to_csv(out / "line_intensities.csv", index=False)
    return "net line intensities per cluster (counts per pixel) in line_intensities.csv"


def _say(message: str) -> None:
    """One message on its own line, never onto a progress bar's line."""
    from tqdm.auto import tqdm

    tqdm.write(message, file=sys.stderr)


def _cmd_run(args: argparse.Namespace) -> int:
    import shutil
    from pathlib import Path

    from .outputs import atomic_dir

    files = _map_files(args.input)
    _check_run_args(args)  # the user's options, before any work is done
    folder = _is_folder_of_maps(Path(args.input))
    rows = []
    with atomic_dir(args.out, overwrite=args.overwrite, flag="--overwrite") as out:
        for path in files:
            target = out / path.stem if folder else out
            try:
                row = _run_one(path, target, args)
            except Exception as exc:  # noqa: BLE001 - one bad file must not end a batch
                if not folder or args.stop_on_error:
                    if isinstance(exc, StemsegError):  # name the file in the message
                        exc.args = (f"{path.name}: {exc}", *exc.args[1:])
                    raise
                if target.exists():  # a failed map leaves no half-written folder
                    shutil.rmtree(target)
                kind = type(exc).__name__
                reason = str(exc) if isinstance(exc, StemsegError) else (
                    f"unexpected {kind}: {exc} (please report this with the file)")
                row = {"status": "failed", "clusters": None, "noise_pct": None, "notes": "",
                       "error": f"{kind}: {reason}" if isinstance(exc, StemsegError)
                       else reason}
                _say(f"{path.name}: FAILED: {row['error']}")
            else:
                print(f"{path.name}: {row['clusters']} clusters, noise {row['noise_pct']:.1f} %"
                      + (f"; {row['notes']}" if row["notes"] else ""))
            rows.append({"file": path.name, **row})
        if folder:
            import pandas as pd

            pd.DataFrame(rows).to_csv(out / "batch_summary.csv", index=False)
    failed = [r["file"] for r in rows if r["status"] == "failed"]
    print(f"wrote {args.out}" + (f" ({len(rows) - len(failed)} of {len(rows)} maps; failed: "
                                 f"{', '.join(failed)}; see batch_summary.csv)" if failed else ""))
    return 1 if failed else 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``stemseg`` command."""
    parser = argparse.ArgumentParser(
        prog="stemseg",
        description="Unsupervised segmentation of STEM spectrum images.",
    )
    parser.add_argument("--version", action="version",
                        version=f"%(prog)s {__import__('stemseg').__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    demo = sub.add_parser("demo", help="load the bundled real files and describe them")
    demo.add_argument(
        "--no-isolate",
        dest="isolate",
        action="store_false",
        help="parse files in this process (default: in a child process, so a reader "
        "crash cannot take the command down)",
    )
    demo.add_argument("--no-phantom", dest="phantom", action="store_false",
                      help="only describe the real files (skip both workflows on a phantom)")
    demo.add_argument("--seed", type=int, default=0, help="phantom and workflow seed")
    demo.set_defaults(func=_cmd_demo)

    warm = sub.add_parser(
        "warm-up", help="compile umap-learn's kernels for this machine once, into the "
        "disk cache, so that the first HDBSCAN workflow does not wait for the compiler "
        "(run after installing)")
    warm.set_defaults(func=_cmd_warm_up)

    sim = sub.add_parser("simulate", help="write a ground-truth phantom to a file")
    sim.add_argument("name", help="phantom name (see stemseg.simulate.PHANTOMS)")
    sim.add_argument("--out", required=True, help="output file, .hspy or .zspy")
    sim.add_argument("--shape", type=int, nargs=2, metavar=("ROWS", "COLS"))
    sim.add_argument("--counts-per-pixel", type=float, help="mean X-ray counts per pixel")
    sim.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    sim.add_argument(
        "--option", type=_parse_option, action="append", metavar="KEY=VALUE",
        help="phantom option, e.g. --option core_shell=true (repeatable)",
    )
    sim.add_argument("--overwrite", action="store_true", help="replace an existing file")
    sim.set_defaults(func=_cmd_simulate)

    run = sub.add_parser("run", help="segment and quantify a map, or every map in a folder")
    run.add_argument("input", help="a spectrum-image file or a folder of them")
    run.add_argument("--workflow", choices=("gmm", "hdbscan"), default="gmm")
    run.add_argument("--out", required=True, help="output folder (must not exist)")
    run.add_argument("--elements", nargs="+", help="elements to quantify, e.g. Fe Cu S")
    run.add_argument("--beam-energy", type=float, help="beam energy in kV (else from file)")
    run.add_argument("--kfactors", help="k-factors file: JSON {line: k}, CSV line,k, or a "
                     "Velox k-factor export (family values converted to main lines)")
    run.add_argument("--anions", nargs="+", default=list(DEFAULT_ANIONS),
                     help="anion elements for the configurational entropy (default S O Se Te)")
    run.add_argument("--seed", type=int, default=0)
    run.add_argument("--bin", type=int, default=2, help="spatial binning (default 2)")
    run.add_argument("--n-clusters", type=_n_clusters, default=5,
                     help="GMM clusters (default 5), or 'auto': the clusters that stay "
                     "distinct, and are not mixed boundary pixels, on counts held out by "
                     "count splitting")
    run.add_argument("--n-components", type=int, help="PCA components (default: scree knee)")
    run.add_argument("--min-cluster-size", type=float, default=200,
                     help="HDBSCAN minimum cluster size (default 200 original pixels)")
    run.add_argument("--min-cluster-size-units", choices=("px", "nm2"), default="px")
    run.add_argument("--min-samples", type=int)
    run.add_argument("--energy-range", nargs="+", metavar="KEV",
                     help="feature energy range in keV: LO HI, either may be 'none' (default 0.25 "
                     "none, the workflows' default), or 'all' for every channel (needed for "
                     "spectra without an energy calibration)")
    run.add_argument("--lazy", action="store_true",
                     help="read the map lazily and run the streamed, bounded-memory workflow "
                     "(the default for maps whose cube holds more than 256 MiB)")
    run.add_argument("--downsample", type=int, metavar="N",
                     help="sum N x N pixels while reading (Bruker .bcf, JEOL .pts)")
    run.add_argument("--cutoff-kv", type=float, metavar="KV",
                     help="drop channels above KV keV while reading (Bruker .bcf, JEOL .pts)")
    run.add_argument("--rebin-energy", type=int, metavar="N",
                     help="sum N energy channels while reading (JEOL .pts, Velox .emd)")
    run.add_argument("--stop-on-error", action="store_true",
                     help="stop a folder at its first failing map (default: go on, list the "
                     "failure in batch_summary.csv and exit with status 1)")
    run.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    run.set_defaults(func=_cmd_run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``stemseg`` console script.

    Returns
    -------
    int
        Exit status: 0 on success; 1 when some maps of a folder failed (each
        listed with its reason in ``batch_summary.csv``, the others written);
        2 for a usage or input error (the message says what to fix).
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    try:
        previous = signal.signal(signal.SIGTERM, _terminate)
    except ValueError:  # not the main thread: leave signal handling alone
        previous = None
    try:
        return int(args.func(args) or 0)
    except StemsegError as exc:
        print(f"stemseg: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("stemseg: interrupted; no partial result was left behind", file=sys.stderr)
        return 130
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _terminate(signum, frame):  # pragma: no cover - exercised in a subprocess test
    """SIGTERM ends the command like Ctrl-C, so that partial outputs are removed."""
    raise KeyboardInterrupt


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
