"""Figures for every stage: maps with scale bars, spectra with line markers, curves, tables.

Every function draws what it is given (arrays, HyperSpy signals, tables, a
:class:`stemseg.Segmentation`) and computes nothing heavy; the numbers come from
:mod:`stemseg.analysis`, :mod:`stemseg.metrics` and :mod:`stemseg.quant`. Each takes an
optional ``ax`` (or ``axes``/``fig``) to draw into and returns what it drew on, so that the
widgets (:mod:`stemseg.widgets`) can redraw in place.

Conventions: cluster ``c`` is drawn in colour ``cluster_colours(n)[c]`` in every figure (maps,
embeddings, spectra: tab10 for clusters 0-6, then distinct non-grey colours), noise (-1) in
grey; a *named phase* (a truth region, or a cluster matched to one) is drawn in
``phase_colour(name)``, the same colour in every figure whatever its label number; maps carry a scale bar in nm
(matplotlib-scalebar) and a colour bar with units; energies in keV; counts per pixel in
the titles of element maps.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

__all__ = [
    "NOISE_COLOUR",
    "cluster_colours",
    "label_colours",
    "PHASE_COLOURS",
    "phase_colour",
    "phase_colours",
    "phase_map",
    "phase_legend",
    "pixel_size_nm",
    "add_scalebar",
    "label_map",
    "value_map",
    "element_maps",
    "update_element_maps",
    "radial_profiles",
    "spectra",
    "line_label_slots",
    "line_components",
    "scree",
    "bic",
    "embedding",
    "confusion",
    "composition_bars",
    "entropy_bars",
    "power_spectrum",
    "percent_differences",
    "chip_grid",
    "region_compositions",
]

NOISE_COLOUR = (0.6, 0.6, 0.6, 1.0)
_LENGTH_FACTORS = {"nm": 1.0, "µm": 1e3, "um": 1e3, "μm": 1e3, "mm": 1e6, "m": 1e9,
                   "å": 0.1, "a": 0.1, "angstrom": 0.1, "pm": 1e-3}


def _new_axes(ax: Any = None, figsize: tuple[float, float] = (4.5, 4.0)) -> Any:
    if ax is not None:
        return ax
    import matplotlib.pyplot as plt

    _, ax = plt.subplots(figsize=figsize, layout="constrained")
    return ax


@functools.lru_cache(maxsize=1)
def _palette() -> tuple[tuple[float, ...], ...]:
    """Distinct cluster colours, none of them grey (grey is noise).

    tab10 without its grey, then tab20's light tones, tab20b and tab20c without their greys:
    54 colours. Clusters 0-6 keep their tab10 colours; cluster 7 onwards skip tab10's grey.
    """
    import matplotlib.pyplot as plt

    def rgba(name: str, skip: tuple[int, ...]) -> list[tuple[float, ...]]:
        cmap = plt.get_cmap(name)
        return [tuple(cmap(i)) for i in range(cmap.N) if i not in skip]

    light = plt.get_cmap("tab20")
    return tuple(rgba("tab10", (7,)) + [tuple(light(i)) for i in range(1, 20, 2) if i != 15]
                 + rgba("tab20b", ()) + rgba("tab20c", (16, 17, 18, 19)))


def cluster_colours(n: int, cmap: str = "tab10") -> list[tuple[float, ...]]:
    """Colour of clusters 0..n-1 (the same in every figure of the suite).

    With ``cmap="tab10"`` (the default) the colours come from a palette of 54 distinct,
    non-grey colours (clusters 0-6 as tab10; grey is kept for noise), so clusters 7 and
    above are neither grey nor a repeat of a lower cluster; beyond 54 clusters they cycle.
    Any other colormap name is sampled as given, cycling over its colours.
    """
    import matplotlib.pyplot as plt

    if cmap == "tab10":
        palette = _palette()
        return [palette[i % len(palette)] for i in range(n)]
    base = plt.get_cmap(cmap)
    return [tuple(base(i % base.N)) for i in range(n)]


#: Fixed colours of the phantoms' named phases (the LFO/STO film of notebook 5); other
#: names get a stable colour from :func:`phase_colour`.
PHASE_COLOURS: dict[str, tuple[float, ...]] = {
    "cap": (0.549, 0.337, 0.294, 1.0),             # tab:brown
    "ordered LFO": (0.122, 0.467, 0.706, 1.0),     # tab:blue
    "disordered LFO": (0.090, 0.745, 0.812, 1.0),  # tab:cyan
    "amorphous LFO": (1.000, 0.498, 0.055, 1.0),   # tab:orange
    "interface": (0.580, 0.404, 0.741, 1.0),       # tab:purple
    "STO": (0.839, 0.153, 0.157, 1.0),             # tab:red
}
_PALE = ((0.682, 0.780, 0.910, 1.0), (1.0, 0.733, 0.471, 1.0), (0.596, 0.875, 0.541, 1.0),
         (1.0, 0.596, 0.588, 1.0), (0.773, 0.690, 0.835, 1.0), (0.769, 0.612, 0.580, 1.0),
         (0.969, 0.714, 0.824, 1.0), (0.859, 0.859, 0.553, 1.0), (0.620, 0.855, 0.898, 1.0))


def phase_colour(name: str) -> tuple[float, ...]:
    """RGBA colour of a named phase, the same in every figure and every run.

    Parameters
    ----------
    name : str
        Phase (region) name, e.g. ``"STO"``.

    Returns
    -------
    tuple of float, length 4
        :data:`PHASE_COLOURS` for the phantoms' phases; any other name picks a colour of
        the cluster palette by a checksum of the name (stable across sessions, unlike
        ``hash``), never grey (grey is noise).
    """
    import zlib

    if name in PHASE_COLOURS:
        return PHASE_COLOURS[name]
    palette = _palette()
    return palette[zlib.crc32(str(name).encode()) % len(palette)]


def phase_colours(n: int, names: Mapping[int, str]) -> list[tuple[float, ...]]:
    """Colours of labels 0..n-1: a named label in its phase colour, the others pale.

    Parameters
    ----------
    n : int
        Number of labels.
    names : dict of int to str
        Label -> phase name (e.g. the truth regions, or clusters matched to them by
        :func:`stemseg.analysis.align_labels`).

    Returns
    -------
    list of RGBA tuples, length n
        Unnamed labels (clusters matched to no phase) cycle through pale tones, so that
        they stand apart from every named phase.
    """
    out, k = [], 0
    for label in range(n):
        if label in names:
            out.append(phase_colour(names[label]))
        else:
            out.append(_PALE[k % len(_PALE)])
            k += 1
    return out


def phase_legend(target: Any, names: Sequence[str], *, extra: bool = False,
                 **kwargs: Any) -> Any:
    """Legend of phase colours on an Axes or a Figure.

    Parameters
    ----------
    target : matplotlib Axes or Figure
    names : sequence of str
        Phase names, in the order shown (duplicates dropped).
    extra : bool
        Add a pale patch for "clusters matched to no region".
    **kwargs
        Passed to ``legend`` (e.g. ``loc``, ``ncol``).

    Returns
    -------
    matplotlib.legend.Legend
    """
    from matplotlib.patches import Patch

    handles = [Patch(color=phase_colour(n), label=n) for n in dict.fromkeys(names)]
    if extra:
        handles.append(Patch(color=_PALE[0], label="cluster matched to no region (pale)"))
    kwargs.setdefault("fontsize", 8)
    return target.legend(handles=handles, **kwargs)


def phase_map(labels: np.ndarray, names: Mapping[int, str], *, ax: Any = None,
              pixel_size: float | None = None, title: str | None = None,
              legend: bool = True) -> Any:
    """Label map with each named phase in its own colour (:func:`phase_colour`).

    Parameters
    ----------
    labels : numpy.ndarray of int, shape (y, x)
        Truth labels, or cluster labels aligned to the truth
        (:func:`stemseg.analysis.align_labels`); -1 = noise (grey).
    names : dict of int to str
        Label -> phase name; labels without a name are drawn in pale tones.
    ax : matplotlib Axes, optional
    pixel_size : float, optional
        nm per pixel of this map (a scale bar; None: "uncalibrated").
    title : str, optional
    legend : bool
        A legend of the phases present.

    Returns
    -------
    matplotlib.axes.Axes
    """
    from matplotlib.colors import ListedColormap

    ax = _new_axes(ax)
    labels = np.asarray(labels)
    k = max(int(labels.max()) + 1, 1)
    colours = [NOISE_COLOUR] + phase_colours(k, names)
    ax.imshow(labels + 1, cmap=ListedColormap(colours), vmin=-0.5, vmax=k + 0.5,
              interpolation="nearest")
    if legend:
        present = [int(v) for v in np.unique(labels) if v >= 0]
        phase_legend(ax, [names[v] for v in present if v in names],
                     extra=any(v not in names for v in present), fontsize=7,
                     loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0)
    if title:
        ax.set_title(title, fontsize=10)
    add_scalebar(ax, pixel_size)
    return ax


def key_colours(key: Mapping[str, Any] | None) -> list[tuple[float, ...]] | None:
    """Colour of each cluster under :func:`stemseg.analysis.cluster_key` (its matched
    phase's colour), in cluster order; None without a key (the default colours apply)."""
    if not key:
        return None
    palette = cluster_colours(key["n_colours"])
    return [palette[n] for n in key["number"]]


def pixel_size_nm(image: Any) -> float | None:
    """Pixel width (x) in nm of a HyperSpy signal's navigation or signal axes, or None."""
    am = getattr(image, "axes_manager", None)
    if am is None:
        return None
    axes = am.signal_axes if am.signal_dimension == 2 else am.navigation_axes
    if not axes:
        return None
    unit = str(axes[0].units or "").strip().lower()
    if unit not in _LENGTH_FACTORS:
        return None
    return abs(float(axes[0].scale)) * _LENGTH_FACTORS[unit]


def add_scalebar(ax: Any, pixel_size: float | None, units: str = "nm",
                 location: str = "lower right") -> None:
    """Add a scale bar (matplotlib-scalebar) for ``pixel_size`` (nm per pixel); hide ticks.

    Without a calibration (None) the pixel size is written under the axes instead.
    """
    ax.set_xticks([])
    ax.set_yticks([])
    if pixel_size is None:
        ax.set_xlabel("uncalibrated (pixels)", fontsize=8)
        return
    from matplotlib_scalebar.scalebar import ScaleBar

    ax.add_artist(ScaleBar(float(pixel_size), units, location=location, frameon=True,
                           box_alpha=0.6, font_properties={"size": 8}))


# --------------------------------------------------------------------------------------
# maps
# --------------------------------------------------------------------------------------


def label_map(labels: np.ndarray, *, ax: Any = None, pixel_size: float | None = None,
              names: Mapping[int, str] | Sequence[str] | None = None,
              title: str | None = None, n_clusters: int | None = None,
              colorbar: bool = True, cmap: str = "tab10", colorbar_label: str = "cluster"
              ) -> Any:
    """Label map with a colour per cluster (``tab10``), noise (-1) in grey, scale bar.

    Parameters
    ----------
    labels : numpy.ndarray of int, shape (y, x)
        -1 = noise or masked.
    ax : matplotlib Axes, optional
    pixel_size : float, optional
        nm per pixel (of *this* map; binned maps have bigger pixels).
    names : dict or sequence, optional
        Label -> text for the colour bar (e.g. phase names).
    title : str, optional
    n_clusters : int, optional
        Number of colours (default ``labels.max() + 1``), so that several maps share them.
    colorbar : bool
    cmap : str
    colorbar_label : str

    Returns
    -------
    matplotlib.axes.Axes
    """
    from matplotlib.colors import ListedColormap

    ax = _new_axes(ax)
    labels = np.asarray(labels)
    k = max(int(n_clusters if n_clusters is not None else labels.max() + 1), 1)
    colours = [NOISE_COLOUR] + cluster_colours(k, cmap)
    image = ax.imshow(labels + 1, cmap=ListedColormap(colours), vmin=-0.5, vmax=k + 0.5,
                      interpolation="nearest")
    if colorbar:
        cbar = ax.figure.colorbar(image, ax=ax, ticks=range(k + 1), fraction=0.046, pad=0.02)
        text = []
        for i in range(-1, k):
            if names is not None and not isinstance(names, Mapping):
                name = names[i] if 0 <= i < len(names) else None
            else:
                name = (names or {}).get(i)
            text.append("noise" if i < 0 else (f"{i}: {name}" if name else str(i)))
        cbar.ax.set_yticklabels(text, fontsize=8)
        cbar.set_label(colorbar_label, fontsize=9)
    if title:
        ax.set_title(title, fontsize=10)
    add_scalebar(ax, pixel_size)
    return ax


def value_map(image: np.ndarray, *, ax: Any = None, pixel_size: float | None = None,
              label: str = "value", title: str | None = None, cmap: str = "viridis") -> Any:
    """A map of one per-pixel quantity (e.g. thickness) with a colour bar and a scale bar.

    Parameters
    ----------
    image : numpy.ndarray, shape (y, x)
    ax : matplotlib Axes, optional
    pixel_size : float, optional
        nm per pixel.
    label : str
        Colour-bar label, with units (e.g. ``"thickness (nm)"``).
    title : str, optional
    cmap : str

    Returns
    -------
    matplotlib.axes.Axes
    """
    ax = _new_axes(ax)
    shown = ax.imshow(np.asarray(image, dtype=float), cmap=cmap, interpolation="nearest")
    cbar = ax.figure.colorbar(shown, ax=ax, fraction=0.046, pad=0.02)
    cbar.set_label(label, fontsize=9)
    if title:
        ax.set_title(title, fontsize=10)
    add_scalebar(ax, pixel_size)
    return ax


def element_maps(maps: Sequence[Any], *, scaling: str = "per-map", mask: Any = None,
                 percentile: float = 99.0, ncols: int = 4, fig: Any = None,
                 cmap: str = "viridis", panel_size: float = 2.6,
                 names: Sequence[str] | None = None) -> Any:
    """Element maps side by side, with counts per pixel in every title.

    Parameters
    ----------
    maps : sequence of Signal2D (e.g. :func:`stemseg.analysis.element_maps`) or arrays
    scaling : {"per-map", "common"}
        Colour limits from each map's own ``percentile`` or one limit for all
        (:func:`stemseg.analysis.display_limits`).
    mask : array of bool, optional
        Pixels over which the counts per pixel in the titles are averaged (e.g. the
        particles); default the whole map.
    percentile : float
    ncols : int
    fig : matplotlib Figure, optional
        Draw into this (empty) figure; default a new pyplot figure.
    cmap : str
    panel_size : float
        Inches per map.
    names : sequence of str, optional
        Titles (default the X-ray line of each map).

    Returns
    -------
    matplotlib.figure.Figure
        ``fig.stemseg_images`` holds the AxesImage of every map (for
        :func:`update_element_maps`).
    """
    from . import analysis

    n = len(maps)
    ncols = max(1, min(ncols, n))
    nrows = math.ceil(n / ncols)
    if fig is None:
        import matplotlib.pyplot as plt

        fig = plt.figure(figsize=(panel_size * ncols + 0.6, panel_size * nrows + 0.3),
                         layout="constrained")
    axes = np.atleast_1d(fig.subplots(nrows, ncols, squeeze=False).ravel())
    limits = analysis.display_limits(maps, scaling, percentile)
    labels = names or [analysis.line_name(m) if hasattr(m, "metadata") else f"map {i}"
                       for i, m in enumerate(maps)]
    images, cbars = [], []
    for ax, m, (lo, hi), name in zip(axes, maps, limits, labels):
        data = np.asarray(getattr(m, "data", m), dtype=float)
        im = ax.imshow(data, cmap=cmap, vmin=lo, vmax=hi, interpolation="nearest")
        cpp = analysis.counts_per_pixel(data, mask)
        ax.set_title(f"{name}: {cpp:.2f} counts/px", fontsize=9)
        cb = fig.colorbar(im, ax=ax, fraction=0.046, pad=0.02)
        cb.ax.tick_params(labelsize=7)
        cb.set_label("counts", fontsize=8)
        add_scalebar(ax, pixel_size_nm(m))
        images.append(im)
        cbars.append(cb)
    for ax in axes[n:]:
        ax.set_axis_off()
    fig.suptitle(f"{'per-map autoscale' if scaling == 'per-map' else 'one common scale'}"
                 f" (0 to {percentile:g}th percentile)", fontsize=10)
    fig.stemseg_images = images
    fig.stemseg_colorbars = cbars
    return fig


def update_element_maps(fig: Any, maps: Sequence[Any], scaling: str,
                        percentile: float = 99.0) -> None:
    """Change the colour limits of a figure made by :func:`element_maps` in place."""
    from . import analysis

    limits = analysis.display_limits(maps, scaling, percentile)
    for im, (lo, hi) in zip(fig.stemseg_images, limits):
        im.set_clim(lo, hi)
    fig.suptitle(f"{'per-map autoscale' if scaling == 'per-map' else 'one common scale'}"
                 f" (0 to {percentile:g}th percentile)", fontsize=10)


def radial_profiles(profiles: Mapping[str, pd.DataFrame], *, column: str = "mean",
                    ax: Any = None, title: str | None = None) -> Any:
    """Radial profiles (:func:`stemseg.analysis.radial_profile`) with error bars.

    Parameters
    ----------
    profiles : dict of str to DataFrame
        Label -> profile table.
    column : {"mean", "ratio"}
        Counts per pixel (with ``sem``) or the reference-normalised ratio (with
        ``ratio_sigma``; 1 = uniform).
    """
    ax = _new_axes(ax, (4.8, 3.4))
    err = "sem" if column == "mean" else "ratio_sigma"
    for i, (label, df) in enumerate(profiles.items()):
        ax.errorbar(df["r"], df[column], yerr=df[err], marker="o", ms=4, capsize=2,
                    label=label, color=cluster_colours(10)[i % 10])
    ax.set_xlabel("distance from particle centre, r / R")
    ax.set_ylabel("counts per pixel" if column == "mean"
                  else "signal / expected for a uniform particle")
    if column == "ratio":
        ax.axhline(1.0, color="k", lw=0.8, ls="--")
    ax.set_xlim(0, 1)
    ax.legend(fontsize=8)
    if title:
        ax.set_title(title, fontsize=10)
    return ax


# --------------------------------------------------------------------------------------
# spectra
# --------------------------------------------------------------------------------------


def _energy(signal: Any) -> np.ndarray:
    axis = signal.axes_manager.signal_axes[0]
    e = np.asarray(axis.axis, dtype=float)
    return e / 1000.0 if str(axis.units).strip().lower() == "ev" else e


def line_label_slots(positions: Sequence[float], width: float, n_levels: int = 3
                     ) -> list[tuple[str, int]]:
    """Where to put the rotated labels of vertical line markers so that none overlap.

    Labels are placed from left to right; each goes left of its marker (``"right"``
    alignment) if that space is free at the top level, else right of it (``"left"``), else
    the same two places one level lower, and so on.

    Parameters
    ----------
    positions : sequence of float
        Marker positions, in axes fraction (0-1), any order.
    width : float
        Thickness of one rotated label (its font height plus a gap), in axes fraction.
    n_levels : int
        Number of vertical levels to try; labels that fit nowhere go to the last one.

    Returns
    -------
    list of (str, int)
        Per position, in the input order: the horizontal alignment (``"right"`` or
        ``"left"``) and the level (0 = top).
    """
    order = np.argsort(np.asarray(positions, dtype=float), kind="stable")
    taken: list[list[tuple[float, float]]] = [[] for _ in range(max(n_levels, 1))]
    slots: list[tuple[str, int]] = [("right", 0)] * len(order)
    for i in order:
        x = float(positions[i])
        choice = ("right", len(taken) - 1)
        for level in range(len(taken)):
            free = [(side, lo, hi) for side, lo, hi in (("right", x - width, x),
                                                         ("left", x, x + width))
                    if all(hi <= a or lo >= b for a, b in taken[level])]
            if free:
                choice = (free[0][0], level)
                break
        side, level = choice
        taken[level].append((x - width, x) if side == "right" else (x, x + width))
        slots[i] = choice
    return slots


def _mark_lines(ax: Any, lines: Sequence[str], energy_range: tuple[float, float],
                fontsize: float = 7.0) -> None:
    """Dotted markers at the X-ray lines in range, labels staggered so that none overlap."""
    from .xray import line_energy

    marks = []
    for line in lines:
        try:
            en = line_energy(line)
        except Exception:  # an unknown line is not worth failing a figure for
            continue
        if energy_range[0] <= en <= energy_range[1]:
            marks.append((en, line.replace("_", " ")))
    if not marks:
        return
    fig_w_pt = ax.figure.get_size_inches()[0] * 72.0
    axes_w_pt = max(fig_w_pt * ax.get_position().width * 0.85, 1.0)  # margins, legend
    span = energy_range[1] - energy_range[0]
    slots = line_label_slots([(en - energy_range[0]) / span for en, _ in marks],
                             1.4 * fontsize / axes_w_pt)
    step = 0.62 * fontsize * max(len(text) for _, text in marks) + 4.0  # one level, pt
    for (en, text), (side, level) in zip(marks, slots):
        ax.axvline(en, color="k", lw=0.5, ls=":")
        ax.annotate(text, xy=(en, 1.0), xycoords=("data", "axes fraction"),
                    xytext=(-1.0 if side == "right" else 1.0, -2.0 - level * step),
                    textcoords="offset points", rotation=90, va="top", ha=side,
                    fontsize=fontsize)


def spectra(signal: Any, *, labels: Sequence[str] | None = None, ax: Any = None,
            lines: Sequence[str] | None = None, energy_range: tuple[float, float] = (0.2, 10.0),
            log: bool = False, highlight: int | None = None, colours: Any = None,
            normalise: bool = False, title: str | None = None) -> Any:
    """EDS spectra (one or a stack, e.g. cluster mean spectra) with X-ray line markers.

    Parameters
    ----------
    signal : EDS signal or list of EDS spectra
        One spectrum, a stack (navigation shape (n,)), or a list of spectra with the same
        energy axis.
    labels : sequence of str, optional
        Legend entries (default "cluster i").
    lines : sequence of str, optional
        X-ray lines to mark (default the signal's ``Sample.xray_lines``).
    energy_range : (float, float)
        keV.
    log : bool
        Logarithmic counts axis.
    highlight : int, optional
        Draw this spectrum thick and the others faint.
    colours : sequence, optional
        Default the cluster colours.
    normalise : bool
        Divide each spectrum by its total counts in ``energy_range``.

    Line labels that would overlap (e.g. Ag Lb1 and Cd La, 17 eV apart) are placed on
    either side of their markers or one level lower (:func:`line_label_slots`).
    """
    ax = _new_axes(ax, (6.4, 3.4))
    if isinstance(signal, (list, tuple)):
        e = _energy(signal[0])
        data = np.vstack([np.asarray(s.data, dtype=float).reshape(-1, e.size)
                          for s in signal])
        signal = signal[0]
    else:
        e = _energy(signal)
        data = np.atleast_2d(np.asarray(signal.data, dtype=float))
    sel = (e >= energy_range[0]) & (e <= energy_range[1])
    colours = colours or cluster_colours(len(data))
    for i, y in enumerate(data):
        if normalise:
            y = y / max(y[sel].sum(), 1e-300)
        faint = highlight is not None and i != highlight
        ax.plot(e[sel], y[sel], lw=0.6 if faint else 1.2, alpha=0.35 if faint else 1.0,
                color=colours[i % len(colours)],
                label=(labels[i] if labels is not None else f"cluster {i}"))
    if log:
        ax.set_yscale("log")
        shown = data[:, sel]
        top_value = float(shown.max()) if shown.size else 1.0
        positive = shown[shown > 0]
        bottom = max(float(positive.min()) if positive.size else 1e-3, top_value * 1e-4)
        if normalise:
            bottom = 1e-5
        ax.set_ylim(bottom, top_value * 2.0 if not normalise else None)
    lines = lines if lines is not None else (signal.metadata.get_item("Sample.xray_lines")
                                            or [])
    _mark_lines(ax, lines, energy_range)
    ax.set_xlabel("energy (keV)")
    ax.set_ylabel("fraction of counts per channel" if normalise else "counts per channel")
    ax.set_xlim(*energy_range)
    if len(data) > 1 or labels is not None:  # outside, so that it hides no line marker
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)
    if title:
        ax.set_title(title, fontsize=10)
    return ax


# --------------------------------------------------------------------------------------
# curves
# --------------------------------------------------------------------------------------


def line_components(components: pd.DataFrame, *, families: Sequence[str],
                    windows: Mapping[str, Sequence[float]] | None = None,
                    energy_range: tuple[float, float] | None = None, ax: Any = None,
                    title: str | None = None) -> Any:
    """A fitted spectrum split into line families, with integration windows on top.

    Parameters
    ----------
    components : pandas.DataFrame
        :func:`stemseg.quant.model_components` output (index energy in keV; columns
        ``counts``, ``background``, ``model`` and one per family, counts per channel).
    families : sequence of str
        Families to draw, by main line (e.g. ``["Ag_La", "Cd_La"]``), each filled above the
        background.
    windows : dict of str to (float, float), optional
        Line -> integration window (keV), e.g. from
        ``line_intensities(..., method="windows").details["windows"]``; drawn as shaded
        bands.
    energy_range : (float, float), optional
        keV; default the components' energies.
    """
    ax = _new_axes(ax, (7.0, 3.4))
    comp = components if energy_range is None else components.loc[
        energy_range[0]:energy_range[1]]
    e = comp.index.to_numpy(dtype=float)
    bg = comp["background"].to_numpy(dtype=float)
    ax.step(e, comp["counts"], where="mid", color="0.45", lw=0.8, label="spectrum")
    ax.plot(e, bg, color="0.3", ls="--", lw=0.8, label="background (fit)")
    colours = ("tab:blue", "tab:orange", "tab:green", "tab:purple")
    for i, fam in enumerate(families):
        top = bg + comp[fam].to_numpy(dtype=float)
        ax.fill_between(e, bg, top, color=colours[i % len(colours)], alpha=0.35, lw=0)
        ax.plot(e, top, color=colours[i % len(colours)], lw=1.2,
                label=f"{fam.replace('_', ' ')} family (fit)")
    ax.plot(e, comp["model"], color="k", lw=0.8, label="whole model")
    for i, (line, (lo, hi)) in enumerate((windows or {}).items()):
        colour = colours[families.index(line) % len(colours)] if line in families else "0.5"
        ax.axvspan(lo, hi, ymin=0.0, ymax=1.0, color=colour, alpha=0.12, lw=0)
        for edge in (lo, hi):
            ax.axvline(edge, color=colour, lw=1.0, ls="-.")
        ax.annotate(f"{line.replace('_', ' ')} window", xy=(0.5 * (lo + hi), 1.0),
                    xycoords=("data", "axes fraction"), xytext=(0, -4 - 11 * i),
                    textcoords="offset points", ha="center", va="top", fontsize=7,
                    color=colour, bbox=dict(fc="white", ec="none", alpha=0.8, pad=0.5))
    ax.set_xlabel("energy (keV)")
    ax.set_ylabel("counts per channel")
    ax.set_xlim(e[0], e[-1])
    ax.set_ylim(0, None)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)
    if title:
        ax.set_title(title, fontsize=10)
    return ax


def scree(explained_variance_ratio: np.ndarray, *, knee: int | None = None,
          chosen: int | None = None, ax: Any = None, max_points: int = 20) -> Any:
    """Scree plot (log explained variance ratio) with the automatic knee and the choice.

    Parameters
    ----------
    explained_variance_ratio : array (n,)
    knee : int, optional
        Components at the automatic change point (:func:`stemseg.reduce.scree_knee`).
    chosen : int, optional
        Components in use (e.g. a slider's override).
    """
    ax = _new_axes(ax, (4.5, 3.2))
    evr = np.asarray(explained_variance_ratio)[:max_points]
    n = np.arange(1, evr.size + 1)
    ax.semilogy(n, evr, "o-", ms=4, color="0.3", label="explained variance")
    if knee is not None:
        ax.axvline(knee, color="tab:red", ls="--", lw=1, label=f"scree knee: {knee}")
    if chosen is not None and chosen != knee:
        ax.axvline(chosen, color="tab:blue", lw=1.5, label=f"used: {chosen}")
    ax.set_xlabel("principal component")
    ax.set_ylabel("explained variance ratio")
    ax.legend(fontsize=8)
    ax.set_title("PCA scree", fontsize=10)
    return ax


def bic(table: pd.DataFrame, *, chosen: int | None = None, ax: Any = None) -> Any:
    """BIC (and AIC) against the number of clusters (:func:`stemseg.cluster.bic_curve`)."""
    ax = _new_axes(ax, (4.5, 3.2))
    ax.plot(table["n_clusters"], table["bic"], "o-", ms=4, label="BIC")
    if "aic" in table:
        ax.plot(table["n_clusters"], table["aic"], "s--", ms=3, alpha=0.6, label="AIC")
    best = table.attrs.get("best")
    if best is not None:
        ax.axvline(best, color="tab:red", ls="--", lw=1, label=f"lowest BIC: {best}")
    if chosen is not None:
        ax.axvline(chosen, color="tab:blue", lw=1.5, label=f"chosen: {chosen}")
    ax.set_xlabel("number of clusters")
    ax.set_ylabel("information criterion (lower is better)")
    ax.legend(fontsize=8)
    ax.set_title("Gaussian mixture: BIC", fontsize=10)
    return ax


def embedding(points: np.ndarray, labels: np.ndarray, *, ax: Any = None,
              dims: tuple[int, int] = (0, 1), title: str | None = None,
              names: Mapping[int, str] | None = None, n_colours: int | None = None,
              max_points: int = 20000, size: float = 3.0, legend: bool = True) -> Any:
    """Scatter of an embedding (UMAP or PCA scores) coloured by label, noise grey.

    Returns
    -------
    matplotlib.axes.Axes
        ``ax.stemseg_scatter`` is the PathCollection (recolour it with
        ``set_facecolors``).
    """
    ax = _new_axes(ax, (4.5, 4.0))
    points = np.asarray(points)
    labels = np.asarray(labels).ravel()
    n = points.shape[0]
    idx = np.arange(n)
    if n > max_points:
        idx = np.random.default_rng(0).choice(n, max_points, replace=False)
    colours = label_colours(labels[idx], n_colours)
    sc = ax.scatter(points[idx, dims[0]], points[idx, dims[1]], c=colours, s=size,
                    linewidths=0, rasterized=True)
    ax.stemseg_scatter = sc
    ax.stemseg_index = idx
    ax.stemseg_dims = tuple(dims)
    ax.set_xlabel(f"dimension {dims[0] + 1}")
    ax.set_ylabel(f"dimension {dims[1] + 1}")
    if legend:
        _label_legend(ax, labels, names, n_colours)
    if title:
        ax.set_title(title, fontsize=10)
    return ax


def label_colours(labels: np.ndarray, n_colours: int | None = None) -> np.ndarray:
    """RGBA per label: ``cluster_colours(k)[label]``, grey for -1."""
    labels = np.asarray(labels).ravel()
    k = max(int(n_colours if n_colours is not None else labels.max() + 1), 1)
    table = np.array([NOISE_COLOUR] + cluster_colours(k))
    return table[np.clip(labels, -1, k - 1) + 1]


def _label_legend(ax: Any, labels: np.ndarray, names: Mapping[int, str] | None,
                  n_colours: int | None) -> None:
    from matplotlib.lines import Line2D

    present = sorted(set(np.unique(labels).tolist()))
    k = max(int(n_colours if n_colours is not None else max(present) + 1), 1)
    colours = [NOISE_COLOUR] + cluster_colours(k)
    handles = [Line2D([], [], marker="o", ls="", color=colours[min(c, k - 1) + 1],
                      label="noise" if c < 0 else (names or {}).get(c, str(c)))
               for c in present]
    ax.legend(handles=handles, fontsize=7, loc="best", markerscale=1.2)


def confusion(table: pd.DataFrame, *, ax: Any = None, normalise: str | None = None,
              xlabel: str = "truth", ylabel: str = "cluster",
              xnames: Mapping[Any, str] | None = None,
              ynames: Mapping[Any, str] | None = None, title: str | None = None) -> Any:
    """Heat map of a confusion matrix (:func:`stemseg.metrics.confusion_matrix`).

    Parameters
    ----------
    normalise : {None, "row", "column"}
        Show counts, or the share of each row / column (with the counts in the cells).
    """
    ax = _new_axes(ax, (5.0, 4.0))
    counts = table.to_numpy().astype(float)
    shown = counts
    if normalise == "row":
        shown = counts / np.maximum(counts.sum(1, keepdims=True), 1)
    elif normalise == "column":
        shown = counts / np.maximum(counts.sum(0, keepdims=True), 1)
    im = ax.imshow(shown, cmap="Blues", aspect="auto")
    for (i, j), v in np.ndenumerate(counts):
        frac = shown[i, j] / max(shown.max(), 1e-12)
        ax.text(j, i, f"{int(v)}", ha="center", va="center", fontsize=7,
                color="white" if frac > 0.6 else "black")
    ax.set_xticks(range(table.shape[1]))
    ax.set_xticklabels([(xnames or {}).get(c, str(c)) for c in table.columns],
                       rotation=35, ha="right", fontsize=8)
    ax.set_yticks(range(table.shape[0]))
    ax.set_yticklabels([(ynames or {}).get(c, "noise" if c == -1 else str(c))
                        for c in table.index], fontsize=8)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    cb = ax.figure.colorbar(im, ax=ax, fraction=0.046)
    cb.set_label({"row": "share of row", "column": "share of column"}.get(
        normalise or "", "pixels"), fontsize=8)
    if title:
        ax.set_title(title, fontsize=10)
    return ax


def parameter_sweep(table: pd.DataFrame, columns: Sequence[str], *, logx: bool = False,
                    markers: Mapping[str, float] | None = None, title: str | None = None,
                    fig: Any = None) -> Any:
    """One panel per column of a parameter sweep, against the swept value (the index).

    Parameters
    ----------
    table : pandas.DataFrame
        One row per parameter value (the index, numeric), e.g. clusters and noise % per
        ``min_cluster_size``.
    columns : sequence of str
        Columns to plot, one panel each.
    logx : bool
        Logarithmic parameter axis.
    markers : dict of str to float, optional
        Labelled vertical lines (e.g. the value in use, a phase's area).
    title : str, optional
    fig : matplotlib Figure, optional
        Draw into this empty figure; default a new pyplot figure.

    Returns
    -------
    numpy.ndarray of Axes, shape (len(columns),)
    """
    if fig is None:
        import matplotlib.pyplot as plt

        fig = plt.figure(figsize=(4.2 * len(columns), 3.0), layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, len(columns)))
    x = np.asarray(table.index, dtype=float)
    styles = ["--", ":", "-."]
    for ax, col in zip(axes, columns):
        ax.plot(x, table[col].astype(float), "o-", ms=4, color="0.25")
        for i, (text, value) in enumerate((markers or {}).items()):
            ax.axvline(value, color=f"C{i + 3}", ls=styles[i % 3], lw=1.2, label=text)
        if logx:
            ax.set_xscale("log")
        ax.set_xlabel(table.index.name or "parameter")
        ax.set_ylabel(col)
        if markers:
            ax.legend(fontsize=7)
    if title:
        fig.suptitle(title, fontsize=10)
    return axes


def composition_bars(compare: pd.DataFrame, *, ax: Any = None,
                     names: Mapping[Any, str] | None = None, title: str | None = None,
                     labels: tuple[str, str] = ("this analysis", "paper"),
                     truth_column: str = "phantom truth") -> Any:
    """Grouped bars: our at. % next to the paper's, per cluster and element, with sigmas.

    Our error bars are ``sigma_total`` (the whole budget) when the table has it, else the
    counting sigma; bars whose cluster failed the mixing check (``mixing_flag``) are hatched.
    Where ``compare`` has a ``truth_column`` (a phantom's true at. %), each element gets a
    black tick at its truth across both bars.

    Parameters
    ----------
    compare : pandas.DataFrame
        :func:`stemseg.analysis.compare_with_paper` output, optionally with a column of true
        compositions (at. %).
    truth_column : str
        Name of that column.
    """
    import matplotlib.pyplot as plt

    clusters = list(dict.fromkeys(compare.index.get_level_values(0)))
    if ax is None:
        _, axes = plt.subplots(1, len(clusters), figsize=(3.2 * len(clusters), 3.2),
                               sharey=True, layout="constrained")
        axes = np.atleast_1d(axes)
    else:
        axes = np.atleast_1d(ax)
    for a, cl in zip(axes, clusters):
        sub = compare.loc[cl]
        x = np.arange(len(sub))
        err = sub["ours_sigma_total"] if "ours_sigma_total" in sub else sub["ours_sigma"]
        bars = a.bar(x - 0.2, sub["ours"], 0.4, yerr=err, capsize=2, label=labels[0],
                     color="tab:blue")
        if "mixing_flag" in sub:
            for bar, flagged in zip(bars, sub["mixing_flag"]):
                if flagged:
                    bar.set_hatch("///")
                    bar.set_edgecolor("white")
            if sub["mixing_flag"].any():
                a.bar([np.nan], [np.nan], color="tab:blue", hatch="///", edgecolor="white",
                      label="mixing flag")
        a.bar(x + 0.2, sub["paper"], 0.4, yerr=sub["paper_sigma"], capsize=2,
              label=labels[1], color="tab:orange")
        if truth_column in sub:
            a.hlines(sub[truth_column], x - 0.4, x + 0.4, colors="k", lw=1.5, zorder=3,
                     label=truth_column)
        a.set_xticks(x)
        a.set_xticklabels(sub.index, fontsize=8)
        a.set_title((names or {}).get(cl, str(cl)), fontsize=9)
    axes[0].set_ylabel("at. %")
    axes[0].legend(fontsize=7)
    if title:
        axes[0].figure.suptitle(title, fontsize=10)
    return axes


def entropy_bars(table: pd.DataFrame, *, ax: Any = None, label_column: str = "phase",
                 reference: float | None = None, title: str | None = None,
                 others: tuple[float, float] | None = (0.5, 0.6)) -> Any:
    """Configurational entropy per cluster (:func:`stemseg.analysis.entropy_table`).

    Bars with their sigma (1 s.d.), the per-composition maximum as a marker, an optional
    reference line (the equimolar maximum, e.g. 0.9 R) and the band quoted for the other
    phases. The marker is x_M ln(n): the largest entropy of n cations at this
    composition's cation fraction x_M; the reference assumes x_M = 0.5 (a monosulfide), so
    a metal-rich phase (x_M > 0.5, e.g. jalpaite Ag3CuS2) has a marker above it.
    """
    ax = _new_axes(ax, (4.8, 3.2))
    x = np.arange(len(table))
    ax.bar(x, table["entropy_R"], yerr=table["sigma_R"], capsize=3, color="tab:green",
           label="configurational entropy ± 1 s.d.")
    if "max_entropy_R" in table:
        ax.plot(x, table["max_entropy_R"], "k_", ms=18, mew=2,
                label="maximum at this cation fraction, x_M ln n")
    if reference is not None:
        ax.axhline(reference, color="tab:red", ls="--", lw=1,
                   label=f"equimolar monosulfide maximum {reference:.2f} R")
    if others is not None:
        ax.axhspan(*others, color="0.85", zorder=0, label=f"{others[0]}-{others[1]} R")
    names = table[label_column] if label_column in table else table["cluster"]
    ax.set_xticks(x)
    ax.set_xticklabels([str(n) or str(c) for n, c in zip(names, table["cluster"])],
                       rotation=20, ha="right", fontsize=8)
    ax.set_ylabel("S_conf / R (per mole of atoms)")
    ax.legend(fontsize=7, loc="lower right")
    if title:
        ax.set_title(title, fontsize=10)
    return ax


def power_spectrum(spectrum: Mapping[str, Any], *, ax: Any = None, title: str | None = None,
                   zoom: float = 2.0) -> Any:
    """Log power spectrum of a region with its measured reflection ring and d-spacing.

    Parameters
    ----------
    spectrum : dict
        From :func:`stemseg.measure.power_spectrum`.
    ax : matplotlib Axes, optional
    title : str, optional
    zoom : float
        Show frequencies up to ``zoom`` times the reflection's (or a quarter of the
        Nyquist frequency when there is none).

    Returns
    -------
    matplotlib.axes.Axes
        Axes in spatial frequency (1/nm); a dashed circle at f = 1/d through the measured
        spots and the spacing d (nm) in the legend, or "no reflection" when d is None.
    """
    from matplotlib.patches import Circle

    ax = _new_axes(ax)
    f = np.asarray(spectrum["frequency_per_nm"], dtype=float)
    power = np.asarray(spectrum["power"], dtype=float)
    d = spectrum.get("d_spacing_nm")
    step = f[1] - f[0] if len(f) > 1 else 1.0
    extent = (f[0] - step / 2, f[-1] + step / 2, f[-1] + step / 2, f[0] - step / 2)
    logp = np.log10(np.maximum(power, max(power.max(), 1e-300) * 1e-9))
    ax.imshow(logp, cmap="magma", extent=extent, interpolation="nearest")
    limit = zoom / d if d else 0.25 * abs(f[0])
    ax.set_xlim(-limit, limit)
    ax.set_ylim(limit, -limit)
    if d:
        ax.add_patch(Circle((0, 0), 1.0 / d, fill=False, ls="--", lw=1.2, color="cyan",
                            label=f"d = {d:.3f} nm (f = {1 / d:.2f} nm$^{{-1}}$)"))
        ax.legend(fontsize=8, loc="upper right")
    else:
        ax.text(0.5, 0.05, "no lattice reflection (d: none)", transform=ax.transAxes,
                ha="center", color="white", fontsize=8)
    ax.set_xlabel("spatial frequency $f_x$ (nm$^{-1}$)")
    ax.set_ylabel("spatial frequency $f_y$ (nm$^{-1}$)")
    if title:
        ax.set_title(title, fontsize=10)
    return ax


def percent_differences(table: pd.DataFrame, *, tolerance: float | pd.Series | None = None,
                        reference: pd.Series | None = None, ax: Any = None,
                        title: str | None = None, band_label: str = "tolerance band",
                        reference_label: str = "reference") -> Any:
    """Bars of per-item percent differences, a tolerance band around 0 and a reference.

    Parameters
    ----------
    table : pandas.DataFrame
        One row per labelling (bar group), one column per item (e.g. element), values in
        percent.
    tolerance : float or pandas.Series, optional
        Half-width of a grey band around 0 (percentage points; one value, or one per item):
        a bar inside it cannot be told from no difference.
    reference : pandas.Series, optional
        Per-item reference percent difference (e.g. what a phantom was built with), drawn
        as a black line over each item's bars.
    ax : matplotlib Axes, optional
    title : str, optional
    band_label, reference_label : str
        Legend entries of the band and the reference lines.

    Returns
    -------
    matplotlib.axes.Axes
    """
    ax = _new_axes(ax, (6.0, 3.5))
    items = list(table.columns)
    x = np.arange(len(items))
    width = 0.8 / max(len(table), 1)
    colours = cluster_colours(len(table))
    for i, (name, row) in enumerate(table.iterrows()):
        ax.bar(x - 0.4 + width * (i + 0.5), row.to_numpy(dtype=float), width, label=str(name),
               color=colours[i])
    if tolerance is not None:
        half = (np.full(len(items), float(tolerance)) if np.isscalar(tolerance)
                else np.asarray(pd.Series(tolerance).reindex(items), dtype=float))
        for xi, h in zip(x, half):
            ax.fill_between([xi - 0.45, xi + 0.45], -h, h, color="0.85", zorder=0,
                            label=band_label if xi == 0 else None)
    if reference is not None:
        ax.hlines(np.asarray(reference.reindex(items), dtype=float), x - 0.45, x + 0.45,
                  color="k", lw=1.5, label=reference_label)
    ax.axhline(0, color="0.4", lw=0.8)
    ax.set_xticks(x)
    ax.set_xticklabels(items)
    ax.set_ylabel("percent difference (%)")
    ax.legend(fontsize=7, ncol=2)
    if title:
        ax.set_title(title, fontsize=10)
    return ax


def chip_grid(image: Any, grid: tuple[int, int], size_px: int, *, ax: Any = None,
              pixel_size: float | None = None, title: str | None = None) -> Any:
    """An image (e.g. the HAADF) with the grid of chips drawn over it (notebook 5).

    Parameters
    ----------
    image : numpy.ndarray, shape (y, x), or a 2-D HyperSpy signal
    grid : (int, int)
        Chips per column and per row (``Chips.grid``).
    size_px : int
        Chip side in pixels.
    ax : matplotlib Axes, optional
    pixel_size : float, optional
        nm per pixel (a scale bar; None: "uncalibrated").
    title : str, optional
        Default: "HAADF with the R x C chip grid".

    Returns
    -------
    matplotlib.axes.Axes
    """
    ax = _new_axes(ax)
    ax.imshow(np.asarray(getattr(image, "data", image)), cmap="gray", interpolation="nearest")
    rows = np.arange(0, grid[0] * size_px + 1, size_px)
    ax.hlines(rows, 0, rows[-1], color="y", lw=0.3)
    ax.vlines(np.arange(0, grid[1] * size_px + 1, size_px), 0, rows[-1], color="y", lw=0.3)
    ax.set_title(title or f"HAADF with the {grid[0]} x {grid[1]} chip grid", fontsize=10)
    ax.set_xticks([])
    ax.set_yticks([])
    add_scalebar(ax, pixel_size)
    return ax


def region_compositions(summary: pd.DataFrame, elements: Sequence[str], *, ax: Any = None,
                        title: str | None = None) -> Any:
    """Grouped bars of the regions' compositions with 1 s.d. error bars (notebook 5).

    Parameters
    ----------
    summary : pandas.DataFrame
        One row per region (the index names it; each bar takes the region's
        :func:`phase_colour`), columns ``el`` and ``sigma_el`` (at. %) for every element,
        e.g. :func:`stemseg.multimodal.region_summary` indexed by name.
    elements : sequence of str
        The columns to draw, one group of bars each (e.g. ``("La", "Fe", "O",
        "extraneous")``).
    ax : matplotlib Axes, optional
    title : str, optional

    Returns
    -------
    matplotlib.axes.Axes
    """
    ax = _new_axes(ax)
    x = np.arange(len(elements))
    for i, (name, row) in enumerate(summary.iterrows()):
        ax.bar(x + 0.27 * (i - 1), [row[e] for e in elements], 0.27,
               yerr=[row[f"sigma_{e}"] for e in elements], capsize=2, label=name,
               color=phase_colour(name))
    ax.set_xticks(x)
    ax.set_xticklabels(list(elements), fontsize=8)
    if title:
        ax.set_title(title, fontsize=10)
    return ax
