"""Small analyses the notebooks use to check the papers' claims (E1-E9).

Each function takes arrays, HyperSpy signals, tables or a :class:`stemseg.Segmentation`
and returns numbers or tidy :mod:`pandas` tables; none of them draws (see
:mod:`stemseg.plots`) and none of them fits a model
(except :func:`hdbscan_relabel`, :func:`leaf_sweep` and the sweeps of the explorers,
which refit on cached results).

* Element maps: :func:`element_maps` (HyperSpy/exspy ``get_lines_intensity``, titles
  shortened to the line), :func:`counts_per_pixel`, :func:`display_limits`,
  :func:`displayed`.
* Map-to-map correlation as the eye sees it (claim E1): :func:`apparent_overlap`,
  :func:`pair_correlations`, :func:`truth_concentration_maps`, :func:`scaling_rankings`.
* Radial profiles of particles (E2): :func:`radial_profile`, :func:`core_excess`.
* Signal-to-noise of cluster-mean spectra (E4): :func:`effective_pixels`, :func:`snr_gain`.
* Compositions (E5-E7): :func:`other_fraction`, :func:`s_to_metal`, :func:`entropy_table`,
  :func:`compare_with_paper`, :func:`composition_difference`.
* Support/background pixels in clusters (E9): :func:`support_absorption`.
* Labels: :func:`bin_labels` (mode of every ``bin x bin`` block), :func:`phase_names`.
* Notebook helpers (one call each where a notebook would otherwise carry code):
  :func:`notebook_setup` (warnings, loggers, pandas precision), :func:`wurtzite_check`,
  :func:`gmm_sweep` (moves a GMM explorer's sliders), :func:`hdbscan_relabel` (refits
  HDBSCAN only, on a result's cached embedding), :func:`hdbscan_sweep`,
  :func:`leaf_sweep`, :func:`phase_homes`, :func:`region_iou`, :func:`ensemble_gain`;
  for notebook 4 :func:`phantom_clusters`, :func:`phase_composition`, :func:`dose_verdicts`,
  :func:`compare_methods`, :func:`other_elements` and :func:`core_shell_check`; for
  notebook 5 :func:`film_segmentation` and :func:`percent_difference_table`.

Units: counts, counts per pixel, nm, at. %, R (gas constant) for entropies.
"""

from __future__ import annotations

import itertools
import math
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from .errors import StemsegValueError

__all__ = [
    "EXPECTED_FROM_MAPS",
    "element_maps",
    "line_name",
    "counts_per_pixel",
    "display_limits",
    "displayed",
    "apparent_overlap",
    "pair_correlations",
    "truth_concentration_maps",
    "scaling_rankings",
    "radial_profile",
    "core_excess",
    "particle_regions",
    "effective_pixels",
    "snr_gain",
    "other_fraction",
    "s_to_metal",
    "entropy_table",
    "compare_with_paper",
    "composition_wide",
    "composition_difference",
    "support_absorption",
    "bin_labels",
    "bin_fraction",
    "phase_names",
    "phase_recovery",
    "align_labels",
    "check_answer",
    "check_length_nm",
    "cluster_statistics",
    "rank_separation",
    "budget_at_dose",
    "BUDGET_TERM_ALIASES",
    "NOTEBOOK_QUIET_LOGGERS",
    "notebook_setup",
    "wurtzite_check",
    "gmm_sweep",
    "hdbscan_relabel",
    "ensemble_gain",
    "hdbscan_sweep",
    "leaf_sweep",
    "phase_homes",
    "region_iou",
    "phase_composition",
    "phantom_clusters",
    "dose_verdicts",
    "compare_methods",
    "other_elements",
    "core_shell_check",
    "film_segmentation",
    "percent_difference_table",
]

#: Elements a reader would assign to each sulfide phase *from the element maps* of
#: Eggeman et al. (2025), Fig. 2: chalcopyrite is bright in Cu and Fe; jalpaite in Ag and
#: Cd (the Cd La window overlaps Ag Lb1, so the Cd map copies the Ag map); S everywhere.
#: With these sets the paper's Table 1 gives 4.9 (chalcopyrite) and 6.7 at. % (jalpaite)
#: "other" elements for workflow 1 -- the quoted 5-7 % -- and 10.0 and 13.6 at. % for
#: workflow 2 (quoted: 10-12 %).
EXPECTED_FROM_MAPS: dict[str, tuple[str, ...]] = {
    "chalcopyrite": ("Cu", "Fe", "S"),
    "jalpaite": ("Ag", "Cd", "S"),
}


# --------------------------------------------------------------------------------------
# element maps
# --------------------------------------------------------------------------------------


def line_name(image: Any) -> str:
    """The X-ray line of an element map (``"Fe_Ka"``), from its title or metadata."""
    line = image.metadata.get_item("Sample.xray_lines")
    if line:
        return str(line[0])
    title = str(image.metadata.General.title)
    # HyperSpy: "X-ray line intensity of <title>: Fe_Ka at 6.40 keV"
    if ": " in title and " at " in title:
        return title.rsplit(": ", 1)[1].split(" at ")[0]
    return title


def element_maps(data: Any, lines: Sequence[str] | None = None, *,
                 background: bool = False, integration_windows: float = 2.0) -> list[Any]:
    """Element maps (counts per pixel) by window integration, with HyperSpy/exspy.

    Parameters
    ----------
    data : Acquisition, Phantom or EDS spectrum image (y, x | energy)
        Not modified.
    lines : sequence of str, optional
        X-ray lines, e.g. ``["Co_Ka", "Ag_La"]``; default: the spectrum's
        ``Sample.xray_lines`` (from its elements).
    background : bool
        Subtract the background estimated in windows either side of each line
        (``estimate_background_windows``); default False: gross window counts, what most
        acquisition software shows as a "map".
    integration_windows : float
        Width of the integration window in FWHM of the line (exspy's default 2).

    Returns
    -------
    list of hyperspy.signals.Signal2D
        One map per line, (y, x) in the spectrum's navigation units, counts per pixel;
        ``metadata.General.title`` is the line (``"Co_Ka"``).

    Raises
    ------
    StemsegValueError
        No lines given and the spectrum has no elements.
    """
    from .preprocess import as_signal

    eds = as_signal(data)
    if lines is None and not eds.metadata.get_item("Sample.xray_lines") \
            and not eds.metadata.get_item("Sample.elements"):
        raise StemsegValueError(
            "The spectrum image has no elements; give lines=[...] or add them with "
            "acq.eds.add_elements(['Fe', 'S', ...])."
        )
    kwargs: dict[str, Any] = dict(integration_windows=integration_windows)
    if lines is not None:
        kwargs["xray_lines"] = list(lines)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if background:
            kwargs["background_windows"] = eds.estimate_background_windows(
                xray_lines=kwargs.get("xray_lines", "from_elements"))
        maps = eds.get_lines_intensity(**kwargs)
    for image in maps:
        line = line_name(image)
        image.metadata.General.title = line
        image.metadata.set_item("Sample.xray_lines", [line])
    return maps


def _array(image: Any) -> np.ndarray:
    return np.asarray(getattr(image, "data", image), dtype=float)


def _mask(mask: Any, shape: tuple[int, ...]) -> np.ndarray:
    if mask is None:
        return np.ones(shape, dtype=bool)
    m = np.asarray(getattr(mask, "data", mask), dtype=bool)
    if m.shape != tuple(shape):
        raise StemsegValueError(f"mask has shape {m.shape}; the map has {tuple(shape)}.")
    return m


def counts_per_pixel(image: Any, mask: Any = None) -> float:
    """Mean counts per pixel of a map, over ``mask`` (True = include) or the whole map."""
    a = _array(image)
    m = _mask(mask, a.shape)
    if not m.any():
        raise StemsegValueError("mask selects no pixel.")
    return float(a[m].mean())


def display_limits(images: Sequence[Any], scaling: str = "per-map",
                   percentile: float = 99.0) -> list[tuple[float, float]]:
    """Colour limits (vmin, vmax) with which each map would be displayed.

    Parameters
    ----------
    images : sequence of maps (signals or arrays)
    scaling : {"per-map", "common"}
        ``"per-map"``: each map from 0 to its own ``percentile`` (what most software does,
        "autoscale"); ``"common"``: every map from 0 to the ``percentile`` of all maps
        pooled (one colour bar for all).
    percentile : float
        Upper percentile that maps to full brightness (robust to single hot pixels).

    Returns
    -------
    list of (float, float)
    """
    arrays = [_array(im) for im in images]
    if scaling == "per-map":
        tops = [float(np.percentile(a, percentile)) for a in arrays]
    elif scaling == "common":
        top = float(np.percentile(np.concatenate([a.ravel() for a in arrays]), percentile))
        tops = [top] * len(arrays)
    else:
        raise StemsegValueError(f"scaling must be 'per-map' or 'common'; got {scaling!r}.")
    return [(0.0, t if t > 0 else 1.0) for t in tops]


def displayed(images: Sequence[Any], scaling: str = "per-map",
              percentile: float = 99.0) -> np.ndarray:
    """Brightness of every pixel as displayed, in [0, 1], shape (n_maps, y, x)."""
    limits = display_limits(images, scaling, percentile)
    return np.array([np.clip((_array(im) - lo) / (hi - lo), 0.0, 1.0)
                     for im, (lo, hi) in zip(images, limits)])


def _names(images: Sequence[Any], names: Sequence[str] | None) -> list[str]:
    if names is not None:
        return list(names)
    return [line_name(im) if hasattr(im, "metadata") else f"map {i}"
            for i, im in enumerate(images)]


def apparent_overlap(images: Sequence[Any], scaling: str = "per-map", mask: Any = None,
                     names: Sequence[str] | None = None, percentile: float = 99.0
                     ) -> pd.DataFrame:
    """How much two displayed maps appear to coincide: fuzzy overlap of their brightness.

    For displayed brightness ``a`` and ``b`` (:func:`displayed`) the overlap is
    ``sum(min(a, b)) / sum(max(a, b))`` over ``mask`` (1 = identical images, 0 = disjoint
    bright regions): a proxy for what a reader judges when comparing two maps by eye.
    Unlike the Pearson correlation of the counts, it depends on the display scaling.

    Returns
    -------
    pandas.DataFrame
        Columns ``a``, ``b``, ``overlap``, one row per pair.
    """
    d = displayed(images, scaling, percentile)
    m = _mask(mask, d.shape[1:])
    labels = _names(images, names)
    rows = []
    for i, j in itertools.combinations(range(len(d)), 2):
        lo = np.minimum(d[i], d[j])[m].sum()
        hi = np.maximum(d[i], d[j])[m].sum()
        rows.append((labels[i], labels[j], float(lo / hi) if hi > 0 else 0.0))
    return pd.DataFrame(rows, columns=["a", "b", "overlap"])


def pair_correlations(images: Sequence[Any], mask: Any = None,
                      names: Sequence[str] | None = None) -> pd.DataFrame:
    """Pearson correlation of every pair of maps over ``mask`` (scale-invariant).

    Returns
    -------
    pandas.DataFrame
        Columns ``a``, ``b``, ``r``.
    """
    arrays = [_array(im) for im in images]
    m = _mask(mask, arrays[0].shape)
    labels = _names(images, names)
    rows = []
    for i, j in itertools.combinations(range(len(arrays)), 2):
        x, y = arrays[i][m], arrays[j][m]
        r = float(np.corrcoef(x, y)[0, 1]) if x.std() > 0 and y.std() > 0 else 0.0
        rows.append((labels[i], labels[j], r))
    return pd.DataFrame(rows, columns=["a", "b", "r"])


def truth_concentration_maps(phantom: Any, elements: Sequence[str]) -> np.ndarray:
    """True concentration (at. %) of each element in every pixel of a phantom.

    Parameters
    ----------
    phantom : stemseg.Phantom
        With ``labels`` and ``phases``.
    elements : sequence of str

    Returns
    -------
    numpy.ndarray, shape (n_elements, y, x)
    """
    labels = np.asarray(phantom.labels)
    table = np.array([[p.composition.get(el, 0.0) for p in phantom.phases]
                      for el in elements])
    return table[:, labels]


def scaling_rankings(images: Sequence[Any], truth: np.ndarray | None = None,
                     mask: Any = None, names: Sequence[str] | None = None,
                     percentile: float = 99.0) -> pd.DataFrame:
    """Pairs of maps ranked by apparent overlap under per-map and common scaling (E1).

    Parameters
    ----------
    images : sequence of maps
    truth : numpy.ndarray, shape (n_maps, y, x), optional
        True concentration maps (:func:`truth_concentration_maps`); adds ``r_truth`` and
        ``rank_truth`` (Pearson correlation of the truth, the answer the eye should give).
    mask : array of bool, optional
        Pixels to compare (e.g. the sample without the support).

    Returns
    -------
    pandas.DataFrame
        ``pair``, ``overlap_per_map``, ``overlap_common``, ``r_counts`` (Pearson of the
        counts, the same under any scaling), ``rank_per_map``, ``rank_common``,
        ``rank_counts`` (1 = most similar pair) and, with truth, ``r_truth``,
        ``rank_truth``; sorted by ``rank_per_map``. ``attrs`` holds the Spearman rank
        correlations between the rankings (``spearman``: dict).
    """
    from scipy.stats import spearmanr

    labels = _names(images, names)
    per = apparent_overlap(images, "per-map", mask, labels, percentile)
    com = apparent_overlap(images, "common", mask, labels, percentile)
    cor = pair_correlations(images, mask, labels)
    df = pd.DataFrame({
        "pair": per["a"] + " / " + per["b"],
        "overlap_per_map": per["overlap"], "overlap_common": com["overlap"],
        "r_counts": cor["r"],
    })
    for col, name in (("overlap_per_map", "per_map"), ("overlap_common", "common"),
                      ("r_counts", "counts")):
        df[f"rank_{name}"] = df[col].rank(ascending=False, method="min").astype(int)
    rankings = ["per_map", "common", "counts"]
    if truth is not None:
        tr = pair_correlations(list(truth), mask, labels)
        df["r_truth"] = tr["r"].to_numpy()
        df["rank_truth"] = df["r_truth"].rank(ascending=False, method="min").astype(int)
        rankings.append("truth")
    rho = {}
    for a, b in itertools.combinations(rankings, 2):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            rho[f"{a} vs {b}"] = float(spearmanr(df[f"rank_{a}"], df[f"rank_{b}"])[0])
    df = df.sort_values("rank_per_map", kind="stable").reset_index(drop=True)
    df.attrs["spearman"] = rho
    return df


# --------------------------------------------------------------------------------------
# radial profiles (E2)
# --------------------------------------------------------------------------------------


def _particles(particles: Any) -> np.ndarray:
    p = np.asarray(particles, dtype=float)
    if p.ndim != 2 or p.shape[1] != 3 or not len(p):
        raise StemsegValueError(
            "particles must be a list of (centre_y, centre_x, radius) in pixels, e.g. "
            "phantom.truth['particles_px']."
        )
    return p


def _relative_radius(shape: tuple[int, int], particles: np.ndarray) -> np.ndarray:
    """r / R of every pixel to the particle it lies in (inf outside every particle)."""
    yy, xx = np.mgrid[: shape[0], : shape[1]] + 0.5
    rel = np.full(shape, np.inf)
    for cy, cx, r in particles:
        d = np.hypot(yy - cy, xx - cx) / r
        rel = np.minimum(rel, np.where(d < 1.0, d, np.inf))
    return rel


def radial_profile(image: Any, particles: Any, *, reference: Any = None, bins: int = 10,
                   r_max: float = 1.0) -> pd.DataFrame:
    """Mean counts per pixel against the relative radius r/R, over all particles.

    Parameters
    ----------
    image : map (signal or array (y, x))
        Counts per pixel, e.g. an element map.
    particles : array_like, shape (n, 3)
        (centre_y, centre_x, radius) of every particle in pixels (phantom:
        ``truth["particles_px"]``; real data: from a segmentation of the HAADF image).
    reference : map or array (y, x), optional
        Something proportional to the signal expected from a *uniform* particle: the
        thickness (nm), the HAADF image or a major element's map. Adds ``ratio`` =
        sum(image) / sum(reference) per bin, normalised to the whole particle (1 =
        uniform), and its counting error ``ratio_sigma`` (Poisson counts in ``image`` and,
        when the reference is a map of counts, in it too).
    bins : int
        Number of equal-width radius bins from 0 to ``r_max``.
    r_max : float
        Outer limit in units of the particle radius.

    Returns
    -------
    pandas.DataFrame
        ``r`` (bin centre, r/R), ``n_pixels``, ``mean`` (counts per pixel), ``sem``
        (Poisson, sqrt(sum) / n), and ``ratio``, ``ratio_sigma`` with a reference.
    """
    a = _array(image)
    rel = _relative_radius(a.shape, _particles(particles))
    edges = np.linspace(0.0, float(r_max), int(bins) + 1)
    ref = None if reference is None else _array(reference)
    ref_is_counts = reference is not None and _looks_like_counts(ref)
    inside = rel < r_max
    total_ratio = None
    if ref is not None:
        total_ratio = a[inside].sum() / max(ref[inside].sum(), 1e-300)
    rows = []
    for lo, hi in zip(edges[:-1], edges[1:]):
        sel = (rel >= lo) & (rel < hi)
        n = int(sel.sum())
        s = float(a[sel].sum())
        row = dict(r=(lo + hi) / 2, n_pixels=n, mean=s / n if n else np.nan,
                   sem=math.sqrt(max(s, 0.0)) / n if n else np.nan)
        if ref is not None:
            rs = float(ref[sel].sum())
            ratio = s / rs / total_ratio if n and rs > 0 and total_ratio > 0 else np.nan
            rel_var = (1.0 / s if s > 0 else np.inf) + (1.0 / rs if ref_is_counts and rs > 0
                                                       else 0.0)
            row.update(ratio=ratio, ratio_sigma=abs(ratio) * math.sqrt(rel_var))
        rows.append(row)
    return pd.DataFrame(rows)


def _looks_like_counts(a: np.ndarray) -> bool:
    return bool(np.all(a >= 0) and np.allclose(a, np.round(a)))


def particle_regions(shape: tuple[int, int], particles: Any, *, core_fraction: float = 0.5,
                     outer: float = 0.9) -> tuple[np.ndarray, np.ndarray]:
    """Masks of the particle cores and shells, e.g. as quantification weights.

    Parameters
    ----------
    shape : (int, int)
        Map shape (rows, columns).
    particles : array_like, shape (n, 3)
        (centre_y, centre_x, radius) in pixels.
    core_fraction, outer : float
        Core: r < ``core_fraction`` R; shell: ``core_fraction`` R <= r < ``outer`` R (the
        outermost rim, where the particle is thinnest, is left out).

    Returns
    -------
    core, shell : numpy.ndarray of bool, shape ``shape``
    """
    rel = _relative_radius(tuple(shape), _particles(particles))
    return rel < core_fraction, (rel >= core_fraction) & (rel < outer)


def core_excess(image: Any, particles: Any, reference: Any, *, core_fraction: float = 0.5,
                outer: float = 0.9) -> dict[str, float]:
    """Excess of a signal in the particle cores over their shells, normalised by a reference.

    ``excess = (I_core / R_core) / (I_shell / R_shell)`` with ``I`` the summed counts of
    ``image`` and ``R`` those of ``reference`` in the core (r < ``core_fraction`` R) and the
    shell (``core_fraction`` R <= r < ``outer`` R) of all particles. For a uniform particle
    and a reference proportional to the expected signal (thickness, HAADF, a uniform
    element's map) the excess is 1 within ``sigma`` (Poisson counts).

    Returns
    -------
    dict
        ``excess``, ``sigma``, ``z`` ((excess - 1) / sigma), ``core_counts``,
        ``shell_counts``, ``core_pixels``, ``shell_pixels``.
    """
    a, ref = _array(image), _array(reference)
    if not 0 < core_fraction < outer <= 1.0:
        raise StemsegValueError(
            f"need 0 < core_fraction < outer <= 1; got {core_fraction}, {outer}.")
    rel = _relative_radius(a.shape, _particles(particles))
    core = rel < core_fraction
    shell = (rel >= core_fraction) & (rel < outer)
    ic, ish = float(a[core].sum()), float(a[shell].sum())
    rc, rsh = float(ref[core].sum()), float(ref[shell].sum())
    if min(ic, ish) <= 0 or min(rc, rsh) <= 0:
        raise StemsegValueError("no counts in the core or the shell; check the particles.")
    excess = (ic / rc) / (ish / rsh)
    rel_var = 1.0 / ic + 1.0 / ish
    if _looks_like_counts(ref):
        rel_var += 1.0 / rc + 1.0 / rsh
    sigma = excess * math.sqrt(rel_var)
    return dict(excess=excess, sigma=sigma, z=(excess - 1.0) / sigma, core_counts=ic,
                shell_counts=ish, core_pixels=int(core.sum()), shell_pixels=int(shell.sum()))


# --------------------------------------------------------------------------------------
# signal-to-noise (E4)
# --------------------------------------------------------------------------------------


def effective_pixels(weights: np.ndarray) -> np.ndarray:
    """Effective number of pixels behind each weighted mean: (sum w)^2 / sum w^2.

    Parameters
    ----------
    weights : numpy.ndarray, shape (n_pixels, n_clusters)

    Returns
    -------
    numpy.ndarray, shape (n_clusters,)
    """
    w = np.asarray(weights, dtype=float)
    s2 = (w**2).sum(axis=0)
    return np.where(s2 > 0, w.sum(axis=0) ** 2 / np.where(s2 > 0, s2, 1.0), 0.0)


def snr_gain(seg: Any, line: str, cluster: int | None = None) -> dict[str, float]:
    """Signal-to-noise of one line: a cluster's mean spectrum vs its single pixels (E4).

    SNR = net line intensity / its counting error, by window integration with background
    windows (:func:`stemseg.quant.line_intensities`, ``method="windows"``), on the
    pixels behind the mean spectra (``seg.spectrum_pixels``: the original pixels by
    ``labels_full`` by default, the binned pixels with ``spectra_from="binned"``). The
    single-pixel SNR is
    ``mean(I_p) / sqrt(mean(var_p))`` over the pixels labelled ``cluster`` (a typical
    pixel); the mean spectrum's uses its propagated variance
    ``sum w^2 counts / (sum w)^2``. Poisson statistics predict a gain of
    ``sqrt(N_eff)`` (:func:`effective_pixels`).

    Parameters
    ----------
    seg : stemseg.Segmentation
    line : str
        E.g. ``"S_Ka"``.
    cluster : int, optional
        Default: the largest cluster whose mean spectrum has the most counts in ``line``.

    Returns
    -------
    dict
        ``cluster``, ``n_pixels``, ``n_effective``, ``snr_pixel``, ``snr_mean``, ``gain``,
        ``sqrt_n_effective``.
    """
    from .quant import line_intensities

    counts, weights = seg.spectrum_pixels   # the pixels behind the mean spectra
    flat = counts.data.reshape(-1, counts.data.shape[-1])
    full = seg.spectrum_counts is not None and seg.spectrum_weights is not None
    labels = np.asarray(seg.labels_full if full else seg.labels).ravel()
    if cluster is None:
        li = line_intensities(seg.mean_spectra, [line], method="windows",
                              variance=seg.mean_variance)
        cluster = int(np.argmax(li.intensity[:, 0]))
    members = np.flatnonzero(labels == cluster)
    if members.size < 2:
        raise StemsegValueError(f"cluster {cluster} has fewer than two pixels.")
    pixel_stack = _stack_like(seg.mean_spectra, np.asarray(flat[members], dtype=float))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        lp = line_intensities(pixel_stack, [line], method="windows",
                              variance=np.asarray(flat[members], dtype=float))
        one = seg.mean_spectra.inav[cluster]
        lm = line_intensities(one, [line], method="windows",
                              variance=seg.mean_variance.inav[cluster].data)
    snr_pixel = float(lp.intensity[:, 0].mean() / math.sqrt(lp.variance[:, 0].mean()))
    snr_mean = float(lm.intensity[0] / lm.sigma[0])
    n_eff = float(effective_pixels(weights)[cluster])
    return dict(cluster=int(cluster), n_pixels=int(members.size), n_effective=n_eff,
                snr_pixel=snr_pixel, snr_mean=snr_mean, gain=snr_mean / snr_pixel,
                sqrt_n_effective=math.sqrt(n_eff))


def _stack_like(template: Any, data: np.ndarray) -> Any:
    """A navigation-1D EDS signal of ``template``'s class, energy axis and metadata."""
    nav = dict(name="pixel", units="", size=data.shape[0], scale=1.0, offset=0.0,
               navigate=True)
    sig_axis = template.axes_manager.signal_axes[0].get_axis_dictionary()
    metadata = template.metadata.as_dictionary()
    metadata.get("Signal", {}).pop("Noise_properties", None)
    return type(template)(data, axes=[nav, sig_axis], metadata=metadata)


# --------------------------------------------------------------------------------------
# compositions (E5-E8)
# --------------------------------------------------------------------------------------


def _composition(table: Any, cluster: Any = None) -> dict[str, tuple[float, float]]:
    """Element -> (at. %, sigma) from a quantify/paper_table DataFrame or a dict."""
    if isinstance(table, pd.DataFrame):
        df = table if cluster is None else table[table["cluster"] == cluster]
        if df.empty:
            raise StemsegValueError(f"no rows for cluster {cluster!r}.")
        sig = df["sigma"] if "sigma" in df else 0.0 * df["at_pct"]
        return {str(e): (float(v), float(s)) for e, v, s in zip(df["element"], df["at_pct"], sig)}
    out = {}
    for el, v in dict(table).items():
        out[str(el)] = (float(v[0]), float(v[1])) if isinstance(v, (tuple, list)) \
            else (float(v), 0.0)
    return out


def other_fraction(composition: Any, expected: Sequence[str], cluster: Any = None
                   ) -> tuple[float, float]:
    """At. % of the elements *not* in ``expected`` (E5), with its counting error.

    Parameters
    ----------
    composition : DataFrame (quantify or paper_table) or dict element -> at. % or
        (at. %, sigma)
    expected : sequence of str
        Elements the phase is thought to contain, e.g. ``EXPECTED_FROM_MAPS["jalpaite"]``.
    cluster : optional
        Row selector when ``composition`` holds several clusters.

    Returns
    -------
    (float, float)
        Value and sigma in at. % of all atoms (the composition renormalised to 100 %).
        The sigma adds the element sigmas in quadrature (an upper bound: Cliff-Lorimer
        errors are anti-correlated through the normalisation).
    """
    comp = _composition(composition, cluster)
    total = sum(v for v, _ in comp.values())
    if total <= 0:
        raise StemsegValueError("composition sums to zero.")
    others = [(v, s) for el, (v, s) in comp.items() if el not in set(expected)]
    value = 100.0 * sum(v for v, _ in others) / total
    sigma = 100.0 * math.sqrt(sum(s * s for _, s in others)) / total
    return value, sigma


def s_to_metal(composition: Any, cluster: Any = None, anions: Sequence[str] = ("S",)
               ) -> tuple[float, float]:
    """Anion : cation ratio (e.g. S : metal) with its error (E6)."""
    comp = _composition(composition, cluster)
    a = [(v, s) for el, (v, s) in comp.items() if el in set(anions)]
    m = [(v, s) for el, (v, s) in comp.items() if el not in set(anions)]
    av, mv = sum(v for v, _ in a), sum(v for v, _ in m)
    if av <= 0 or mv <= 0:
        raise StemsegValueError("need both anions and cations in the composition.")
    asg = math.sqrt(sum(s * s for _, s in a))
    msg = math.sqrt(sum(s * s for _, s in m))
    ratio = av / mv
    return ratio, ratio * math.sqrt((asg / av) ** 2 + (msg / mv) ** 2)


def entropy_table(table: pd.DataFrame, clusters: Sequence[Any] | None = None,
                  anions: Sequence[str] = ("S",), names: Mapping[Any, str] | None = None
                  ) -> pd.DataFrame:
    """Configurational entropy of every cluster against the maximum for its cations (E7).

    Parameters
    ----------
    table : pandas.DataFrame
        :func:`stemseg.quant.quantify` or :func:`stemseg.quant.paper_table` output.
    clusters : sequence, optional
        Clusters to include (default all).
    anions : sequence of str
    names : dict, optional
        Cluster -> phase name for the ``phase`` column.

    Returns
    -------
    pandas.DataFrame
        ``cluster``, ``phase``, ``entropy_R``, ``sigma_R``, ``max_entropy_R`` (cation
        fraction x ln(number of cations) of this composition), ``max_equimolar_R``
        (0.5 ln(n cations): the maximum of an equimolar monosulfide, the paper's 0.9 R
        for six cations), ``cation_fraction``.
    """
    from .quant import configurational_entropy, maximum_entropy

    clusters = list(dict.fromkeys(table["cluster"])) if clusters is None else list(clusters)
    names = {} if names is None else dict(names)
    rows = []
    for c in clusters:
        sub = table[table["cluster"] == c][["element", "at_pct"] +
                                           (["sigma"] if "sigma" in table else [])]
        value, sigma = configurational_entropy(sub, anions=anions)
        cations = sub[~sub["element"].isin(anions)]
        n = int((cations["at_pct"] > 0).sum())
        xm = float(cations["at_pct"].sum() / sub["at_pct"].sum())
        rows.append(dict(cluster=c, phase=names.get(c, ""), entropy_R=value,
                         sigma_R=sigma, max_entropy_R=maximum_entropy(max(n, 1), xm),
                         max_equimolar_R=maximum_entropy(max(n, 1), 0.5),
                         cation_fraction=xm))
    return pd.DataFrame(rows)


def compare_with_paper(table: pd.DataFrame, paper: pd.DataFrame,
                       mapping: Mapping[Any, Any]) -> pd.DataFrame:
    """Measured compositions next to the paper's, element by element.

    Parameters
    ----------
    table : pandas.DataFrame
        :func:`stemseg.quant.quantify` output (``cluster``, ``element``, ``at_pct``,
        ``sigma``).
    paper : pandas.DataFrame
        :func:`stemseg.quant.paper_table` output.
    mapping : dict
        Our cluster -> the paper's cluster key (e.g. ``{2: "i", 3: "ii"}``).

    Returns
    -------
    pandas.DataFrame
        Index (paper cluster, element); columns ``ours``, ``ours_sigma``, ``paper``,
        ``paper_sigma``, ``difference`` and ``z`` (difference / combined sigma), and when
        ``table`` has the uncertainty budget ``ours_sigma_total`` and ``mixing_flag``.
    """
    extra = {}
    for column in ("sigma_total", "mixing_flag"):
        if column in table:
            extra[column] = {(c, str(e)): v for c, e, v in
                             zip(table["cluster"], table["element"], table[column])}
    rows = []
    for ours, theirs in sorted(mapping.items(), key=lambda kv: str(kv[1])):
        mine = _composition(table, ours)
        ref = _composition(paper, theirs)
        for el in ref:
            v, s = mine.get(el, (np.nan, np.nan))
            pv, ps = ref[el]
            comb = math.hypot(s, ps)
            row = dict(paper_cluster=theirs, element=el, cluster=ours, ours=v,
                       ours_sigma=s, paper=pv, paper_sigma=ps, difference=v - pv,
                       z=(v - pv) / comb if comb > 0 else np.nan)
            if "sigma_total" in extra:
                row["ours_sigma_total"] = extra["sigma_total"].get((ours, el), np.nan)
            if "mixing_flag" in extra:
                row["mixing_flag"] = bool(extra["mixing_flag"].get((ours, el), False))
            rows.append(row)
    return pd.DataFrame(rows).set_index(["paper_cluster", "element"])


def composition_wide(table: pd.DataFrame, mapping: Mapping[Any, Any] | None = None,
                     digits: int = 2) -> pd.DataFrame:
    """A tidy composition table as text "at. % ± sigma", elements x clusters, for display.

    Entries whose cluster failed the mixing check (``mixing_flag``, see
    :func:`stemseg.quant.quantify`) end in " !": pixels of other phases shift them.

    Parameters
    ----------
    table : pandas.DataFrame
        :func:`stemseg.quant.quantify` or :func:`stemseg.quant.paper_table` output.
    mapping : dict, optional
        Cluster -> column name (and the clusters to keep); default every cluster.
    digits : int

    Returns
    -------
    pandas.DataFrame of str
    """
    sub = table if mapping is None else table[table["cluster"].isin(list(mapping))]
    sub = sub.copy()
    sub["column"] = sub["cluster"] if mapping is None else sub["cluster"].map(mapping)
    sig = sub["sigma"] if "sigma" in sub else 0.0 * sub["at_pct"]
    flag = sub["mixing_flag"] if "mixing_flag" in sub else [False] * len(sub)
    sub["text"] = [f"{v:.{digits}f} ± {s:.{digits}f}" + (" !" if f else "")
                   for v, s, f in zip(sub["at_pct"], sig, flag)]
    wide = sub.pivot(index="element", columns="column", values="text")
    if mapping is not None:
        wide = wide[[c for c in dict.fromkeys(mapping.values()) if c in wide.columns]]
    return wide


def composition_difference(table: pd.DataFrame, a: Any, b: Any,
                           elements: Sequence[str] | None = None) -> pd.DataFrame:
    """Difference between two clusters' compositions in units of its error (E8).

    Returns
    -------
    pandas.DataFrame
        Index element; columns ``a``, ``a_sigma``, ``b``, ``b_sigma``, ``difference``
        (a - b, at. %), ``sigma`` (combined) and ``z``.
    """
    ca, cb = _composition(table, a), _composition(table, b)
    rows = []
    for el in (elements or list(ca)):
        (va, sa), (vb, sb) = ca[el], cb[el]
        comb = math.hypot(sa, sb)
        rows.append(dict(element=el, a=va, a_sigma=sa, b=vb, b_sigma=sb,
                         difference=va - vb, sigma=comb,
                         z=(va - vb) / comb if comb > 0 else np.nan))
    return pd.DataFrame(rows).set_index("element")


# --------------------------------------------------------------------------------------
# support pixels in clusters (E9)
# --------------------------------------------------------------------------------------


def support_absorption(seg: Any, truth_labels: np.ndarray, support: int = 0,
                       mapping: Mapping[int, int] | None = None) -> pd.DataFrame:
    """Where the support (resin, carbon film) pixels end up, per cluster (E9).

    Parameters
    ----------
    seg : stemseg.Segmentation
    truth_labels : numpy.ndarray, shape of ``seg.labels_full``
        Truth phase of every original pixel.
    support : int
        Truth label of the support.
    mapping : dict, optional
        Cluster -> truth label (default :func:`stemseg.metrics.match_clusters`); the
        cluster matched to the support is marked ``is_support_cluster``.

    Returns
    -------
    pandas.DataFrame
        One row per label (-1 = noise): ``cluster``, ``matched_phase``, ``pixels``,
        ``support_pixels``, ``support_share_of_cluster`` (fraction of the cluster's
        pixels that are support), ``share_of_support`` (fraction of all support pixels),
        ``support_weight_share`` (fraction of the cluster's mean-spectrum weight carried
        by binned pixels made only of support) and ``is_support_cluster``.
        ``attrs["absorbed"]``: share of all support pixels inside non-support, non-noise
        clusters; ``attrs["noise"]``: share labelled noise.
    """
    from . import metrics

    labels = np.asarray(seg.labels_full)
    truth = np.asarray(truth_labels)
    if labels.shape != truth.shape:
        raise StemsegValueError(
            f"truth {truth.shape} must match seg.labels_full {labels.shape}.")
    mapping = dict(metrics.match_clusters(labels, truth) if mapping is None else mapping)
    sup = truth == support
    n_sup = int(sup.sum())
    bin_ = int(seg.params.get("bin", 1))
    ny, nx = seg.labels.shape
    blocks = sup[: ny * bin_, : nx * bin_].reshape(ny, bin_, nx, bin_)
    w_sup = blocks.all(axis=(1, 3)).ravel()  # binned pixels made only of support
    w = np.asarray(seg.weights)
    rows = []
    for c in sorted(set(np.unique(labels)) | set(range(seg.n_clusters))):
        in_c = labels == c
        px = int(in_c.sum())
        sp = int((in_c & sup).sum())
        wshare = np.nan
        if c >= 0 and c < w.shape[1] and w[:, c].sum() > 0:
            wshare = float(w[w_sup, c].sum() / w[:, c].sum())
        rows.append(dict(cluster=int(c), matched_phase=mapping.get(int(c), -1), pixels=px,
                         support_pixels=sp, support_share_of_cluster=sp / px if px else 0.0,
                         share_of_support=sp / n_sup if n_sup else 0.0,
                         support_weight_share=wshare,
                         is_support_cluster=mapping.get(int(c), -1) == support))
    df = pd.DataFrame(rows)
    phase_rows = (df["cluster"] >= 0) & ~df["is_support_cluster"]
    df.attrs["absorbed"] = float(df.loc[phase_rows, "share_of_support"].sum())
    df.attrs["noise"] = float(df.loc[df["cluster"] < 0, "share_of_support"].sum())
    return df


# --------------------------------------------------------------------------------------
# labels
# --------------------------------------------------------------------------------------


def bin_labels(labels: np.ndarray, bin: int, shape: tuple[int, int] | None = None
               ) -> np.ndarray:
    """Most frequent label of every ``bin x bin`` block (remainder rows/columns cropped).

    Parameters
    ----------
    labels : numpy.ndarray of int, shape (y, x)
    bin : int
    shape : (int, int), optional
        Binned shape (default ``(y // bin, x // bin)``).

    Returns
    -------
    numpy.ndarray of int
    """
    labels = np.asarray(labels)
    ny, nx = shape or (labels.shape[0] // bin, labels.shape[1] // bin)
    if bin == 1:
        return labels[:ny, :nx].copy()
    blocks = labels[: ny * bin, : nx * bin].reshape(ny, bin, nx, bin)
    blocks = blocks.transpose(0, 2, 1, 3).reshape(ny, nx, bin * bin)
    lo = int(blocks.min())
    shifted = blocks - lo
    k = int(shifted.max()) + 1
    onehot = (shifted[..., None] == np.arange(k)).sum(axis=2)
    return np.argmax(onehot, axis=-1) + lo


def phase_recovery(labels: np.ndarray, truth: np.ndarray,
                   names: Mapping[int, str] | Sequence[Any] | None = None) -> pd.DataFrame:
    """How well each truth phase is recovered by its matched cluster (E3).

    Parameters
    ----------
    labels, truth : numpy.ndarray of int, same shape
        Clusters (-1 = noise) and truth phases.
    names : dict or sequence, optional
        Phase names (``Phase`` objects or strings) by truth label.

    Returns
    -------
    pandas.DataFrame
        One row per truth phase: ``phase``, ``name``, ``cluster`` (matched by
        :func:`stemseg.metrics.match_clusters`, -1 if none), ``pixels``, ``recall`` (share
        of the phase's pixels in that cluster), ``precision`` (share of the cluster's
        pixels that belong to the phase), ``f1``, and ``coverage``: the share of the phase's
        pixels in all the clusters it dominates (their majority phase), so a phase split
        between two clusters still reads ~1 there while its ``recall`` halves.
    """
    from . import metrics

    labels, truth = np.asarray(labels), np.asarray(truth)
    table = metrics.confusion_matrix(labels, truth)
    mapping = {p: c for c, p in metrics.match_clusters(labels, truth).items()}
    clusters = table.loc[table.index >= 0]
    majority = clusters.idxmax(axis=1) if len(clusters) else pd.Series(dtype=int)
    rows = []
    for p in table.columns:
        c = mapping.get(int(p), -1)
        n_p = int(table[p].sum())
        hit = int(table.loc[c, p]) if c in table.index and c >= 0 else 0
        n_c = int(table.loc[c].sum()) if c in table.index and c >= 0 else 0
        recall = hit / n_p if n_p else 0.0
        precision = hit / n_c if n_c else 0.0
        if names is None:
            name = str(p)
        elif isinstance(names, Mapping):
            name = str(names.get(int(p), p))
        else:
            name = str(getattr(names[int(p)], "name", names[int(p)]))
        dominated = majority.index[majority == p]
        covered = int(table.loc[dominated, p].sum()) if len(dominated) else 0
        rows.append(dict(phase=int(p), name=name, cluster=int(c), pixels=n_p, recall=recall,
                         precision=precision,
                         f1=2 * recall * precision / (recall + precision)
                         if recall + precision > 0 else 0.0,
                         coverage=covered / n_p if n_p else 0.0))
    return pd.DataFrame(rows)


def align_labels(labels: np.ndarray, truth: np.ndarray) -> tuple[np.ndarray, dict[int, int]]:
    """Renumber clusters so that each matched cluster carries its truth phase's number.

    For figures only: with the Hungarian matching (:func:`stemseg.metrics.match_clusters`)
    a cluster matched to phase ``p`` becomes ``p``; unmatched clusters get numbers after the
    largest truth label; noise stays -1. Then the same colour means the same phase in the
    cluster map and the truth map.

    Returns
    -------
    aligned : numpy.ndarray of int, shape of ``labels``
    renumbering : dict of int to int
        Old cluster -> new number.
    """
    from . import metrics

    labels = np.asarray(labels)
    mapping = metrics.match_clusters(labels, truth)
    nxt = int(np.max(truth)) + 1
    renumber = {}
    for c in sorted(int(v) for v in np.unique(labels) if v >= 0):
        if c in mapping:
            renumber[c] = int(mapping[c])
        else:
            renumber[c] = nxt
            nxt += 1
    out = np.full(labels.shape, -1, dtype=int)
    for old, new in renumber.items():
        out[labels == old] = new
    return out, renumber


def bin_fraction(mask: np.ndarray, bin: int, shape: tuple[int, int] | None = None
                 ) -> np.ndarray:
    """Fraction of every ``bin x bin`` block that is True (remainder cropped).

    Use it to turn a mask at the original resolution into weights for the binned map, e.g.
    ``quant.quantify(seg.counts, weights=bin_fraction(mask, 2).reshape(-1, 1))``.

    Returns
    -------
    numpy.ndarray of float, shape (y // bin, x // bin) or ``shape``
    """
    m = np.asarray(mask, dtype=float)
    ny, nx = shape or (m.shape[0] // bin, m.shape[1] // bin)
    return m[: ny * bin, : nx * bin].reshape(ny, bin, nx, bin).mean(axis=(1, 3))


def phase_names(mapping: Mapping[int, int], phases: Sequence[Any]) -> dict[int, str]:
    """Cluster -> name of the matched truth phase (``Phase.name``)."""
    return {int(c): str(getattr(phases[p], "name", p)) for c, p in mapping.items()}


def cluster_key(labels: np.ndarray, truth: np.ndarray,
                names: Mapping[int, str]) -> dict[str, Any]:
    """One number, one colour and one name per cluster across a notebook's figures.

    Clusters are renumbered to their matched truth phase (:func:`align_labels`), so a label
    map, the truth map, a confusion matrix and a legend of mean spectra all use the phase's
    number (and so its colour, ``plots.cluster_colours(key["n_colours"])[number]``) and its
    name. Clusters matched to no phase are named "extra cluster c" (c their own number).

    Parameters
    ----------
    labels : numpy.ndarray of int
        Cluster labels (-1 = noise), any shape.
    truth : numpy.ndarray of int
        Truth phase of the same pixels.
    names : dict of int to str
        Truth phase number -> name.

    Returns
    -------
    dict
        ``labels`` (renumbered, shape of ``labels``), ``renumber`` (old cluster -> new
        number), ``names`` (new number -> name), ``legend`` (name per old cluster 0..k-1,
        k = ``labels.max() + 1``), ``number`` (new number per old cluster) and
        ``n_colours`` (colours the figures need).

    Examples
    --------
    >>> import numpy as np
    >>> key = cluster_key(np.array([0, 0, 1, 2]), np.array([1, 1, 0, 0]),
    ...                   {0: "resin", 1: "grain"})
    >>> key["legend"], key["number"]
    (['grain', 'resin', 'extra cluster 2'], [1, 0, 2])
    """
    aligned, renumber = align_labels(labels, truth)
    k = int(np.max(labels)) + 1 if np.size(labels) else 0
    number = [renumber.get(c, c) for c in range(k)]
    new_names = {new: (str(names[new]) if new in names else f"extra cluster {old}")
                 for old, new in renumber.items()}
    legend = [new_names.get(n, f"cluster {c}") for c, n in enumerate(number)]
    n_colours = max([int(np.max(truth)) + 1] + [n + 1 for n in number])
    return {"labels": aligned, "renumber": renumber, "names": new_names, "legend": legend,
            "number": number, "n_colours": n_colours}


# --------------------------------------------------------------------------------------
# coursework
# --------------------------------------------------------------------------------------


def _canonical_text(text: Any) -> tuple[str, ...]:
    """A text answer as sorted parts split at "/": lower case, letters and digits only,
    without a leading "the"."""
    parts = []
    for part in str(text).lower().split("/"):
        part = "".join(ch for ch in part if ch.isalnum())
        parts.append(part[3:] if part.startswith("the") and len(part) > 3 else part)
    return tuple(sorted(parts))


def check_answer(answer: Any, expected: Any, *, rtol: float = 0.05, atol: float = 0.0,
                 name: str = "answer", aliases: Sequence[Any] = (),
                 hint: str | None = None) -> str:
    """Self-check of a coursework exercise: a one-line verdict (never raises).

    Parameters
    ----------
    answer : number, str, tuple or None
        The student's answer; None = not attempted yet.
    expected : same kind
        The reference value computed from the data in the notebook. A string holding
        ``" / "`` is a pair (or group) of names: any order of its parts is accepted.
        Text is compared in lower case with letters and digits only and without a leading
        "the", so ``"k-factor"``, ``"K factor"`` and ``"kfactor"`` are one answer, and
        ``"cd la / Ag_La"`` answers ``"Ag_La / Cd_La"``.
    rtol, atol : float
        Tolerance for numbers: ``|answer - expected| <= atol + rtol * |expected|``.
    name : str
        Shown in the verdict.
    aliases : sequence, optional
        Other answers that count as correct: other names for the same thing (e.g.
        ``"counting"`` for ``"sigma"``), a tied choice, another number.
    hint : str, optional
        Added to a "not yet" verdict (a nudge towards the method, not the value).

    Returns
    -------
    str
        "not attempted yet", "correct" or "not yet" with a hint (the expected value is not
        revealed).

    Examples
    --------
    >>> check_answer("Cd_La / ag la", "Ag_La / Cd_La", name="Exercise 1")
    'Exercise 1: correct.'
    >>> check_answer(7, 5.0, name="Exercise 2", hint="sqrt(4) = 2")
    'Exercise 2: not yet -- too high. Hint: sqrt(4) = 2'
    """
    more = f" Hint: {hint}" if hint else ""
    if answer is None:
        return f"{name}: not attempted yet (replace None with your answer and re-run)."
    if isinstance(expected, (int, float, np.integer, np.floating)) and \
            not isinstance(expected, bool):
        try:
            value = float(answer)
        except (TypeError, ValueError):
            return f"{name}: not yet -- give a number.{more}"
        ok = any(abs(value - float(e)) <= atol + rtol * abs(float(e))
                 for e in (expected, *aliases))
        if ok:
            return f"{name}: correct."
        hint_dir = "too high" if value > float(expected) else "too low"
        return f"{name}: not yet -- {hint_dir}.{more}"
    if isinstance(expected, str):
        ok = _canonical_text(answer) in {_canonical_text(e) for e in (expected, *aliases)}
    elif isinstance(expected, (set, frozenset)):
        ok = set(answer) == set(expected)
    else:
        ok = answer == expected or any(answer == e for e in aliases)
    return f"{name}: correct." if ok else f"{name}: not yet.{more}"


_TO_NM = {"nm": 1.0, "a": 0.1, "å": 0.1, "angstrom": 0.1, "pm": 1e-3}


def check_length_nm(answer: Any, expected_nm: float, *, rtol: float = 0.02,
                    name: str = "answer", hint: str = "") -> str:
    """Self-check of a length answer in nm that also accepts "4.04 Å" or "404 pm".

    Parameters
    ----------
    answer : number, str or None
        A number (read as nm) or a text with a unit (nm, Å / A / angstrom, pm); None = not
        attempted yet.
    expected_nm : float
        The reference length in nm.
    rtol : float
        Relative tolerance.
    name, hint : str
        As for :func:`check_answer`.

    Returns
    -------
    str
        The verdict; a bare number ten times too large gets the hint that it looks like Å.
    """
    import re

    if isinstance(answer, str):
        match = re.fullmatch(r"\s*([-+0-9.eE]+)\s*([^\s0-9.+-]*)\s*", answer)
        unit = match.group(2).lower() if match else ""
        if not match or (unit and unit not in _TO_NM):
            return (f"{name}: not yet -- give a number in nm, or a text such as "
                    "'0.39 nm' or '3.9 Å'.")
        try:
            answer = float(match.group(1)) * _TO_NM.get(unit or "nm", 1.0)
        except ValueError:
            return f"{name}: not yet -- give a number in nm."
    verdict = check_answer(answer, float(expected_nm), rtol=rtol, name=name, hint=hint)
    if "not yet" in verdict and isinstance(answer, (int, float, np.number)) and \
            abs(float(answer) / 10 - expected_nm) <= rtol * expected_nm:
        return f"{name}: not yet -- this looks like a value in Å; give nm (1 nm = 10 Å)."
    return verdict


#: Names a student may give to each term of :func:`stemseg.quant.quantify`'s uncertainty
#: budget (for :func:`check_answer`'s ``aliases``).
BUDGET_TERM_ALIASES: dict[str, tuple[str, ...]] = {
    "sigma": ("counting", "counting noise", "counting statistics", "poisson", "shot noise",
              "counts"),
    "sigma_calibration": ("calibration", "energy calibration", "energy offset", "offset"),
    "sigma_kfactor": ("k-factor", "k-factors", "k", "kfactor uncertainty"),
    "sigma_mixing": ("mixing", "boundary pixels", "boundary", "purity"),
}


def budget_at_dose(table: pd.DataFrame, dose: float = 1.0) -> pd.Series:
    """Median of every uncertainty term of a quantification at another dose, at. %.

    Only the counting term scales with dose (as 1 / sqrt(dose), Poisson statistics); the
    calibration, k-factor and mixing terms are kept as they are, which is what
    :class:`stemseg.widgets.QuantExplorer`'s dose slider assumes too.

    Parameters
    ----------
    table : pandas.DataFrame
        :func:`stemseg.quant.quantify` output (columns ``sigma``, ``sigma_calibration``,
        ``sigma_kfactor``, ``sigma_mixing``; one row per cluster and element).
    dose : float
        Counts relative to the measured map (> 0; 0.01 = a hundredth).

    Returns
    -------
    pandas.Series
        Index the four terms and ``sigma_total`` (their sum in quadrature per row, then the
        median), values the medians over all rows in at. % (1 s.d.).
    """
    if not (isinstance(dose, (int, float, np.floating)) and dose > 0):
        raise StemsegValueError(f"dose must be a positive number, got {dose!r}.")
    terms = ["sigma", "sigma_calibration", "sigma_kfactor", "sigma_mixing"]
    missing = [t for t in terms if t not in table]
    if missing:
        raise StemsegValueError(
            f"table lacks the budget columns {missing}; pass quant.quantify's output.")
    scaled = table[terms].astype(float).copy()
    scaled["sigma"] = scaled["sigma"] / math.sqrt(float(dose))
    scaled["sigma_total"] = np.sqrt((scaled[terms] ** 2).sum(axis=1))
    return scaled.median().rename(f"median at. % at dose x {float(dose):g}")


def cluster_statistics(labels: np.ndarray, values: np.ndarray, *,
                       names: Mapping[Any, str] | None = None,
                       clusters: Sequence[Any] | None = None) -> pd.DataFrame:
    """Mean, s.d. and quartiles of a per-pixel quantity (e.g. thickness) in each cluster.

    Parameters
    ----------
    labels : numpy.ndarray of int, shape (ny, nx)
        Cluster of every pixel (-1 = noise, left out unless asked for in ``clusters``).
    values : numpy.ndarray of float, shape (ny, nx)
        The quantity, e.g. a thickness map in nm; same shape as ``labels``.
    names : dict, optional
        Cluster -> name for the ``name`` column.
    clusters : sequence, optional
        Clusters to include, in this order (default every label >= 0, sorted).

    Returns
    -------
    pandas.DataFrame
        Index ``cluster``; columns ``name``, ``n_pixels``, ``mean``, ``sd``, ``q25``,
        ``median``, ``q75`` in the units of ``values``.
    """
    labels, values = np.asarray(labels), np.asarray(values, dtype=float)
    if labels.shape != values.shape:
        raise StemsegValueError(
            f"labels {labels.shape} and values {values.shape} must have the same shape.")
    if clusters is None:
        clusters = sorted(int(c) for c in np.unique(labels) if c >= 0)
    rows = []
    for c in clusters:
        v = values[labels == c]
        q = np.percentile(v, [25, 50, 75]) if v.size else [np.nan] * 3
        rows.append(dict(cluster=c, name=(names or {}).get(c, ""), n_pixels=int(v.size),
                         mean=float(v.mean()) if v.size else np.nan,
                         sd=float(v.std()) if v.size else np.nan,
                         q25=float(q[0]), median=float(q[1]), q75=float(q[2])))
    return pd.DataFrame(rows).set_index("cluster")


def rank_separation(labels: np.ndarray, values: np.ndarray, a: Any, b: Any) -> float:
    """How well a per-pixel quantity separates two clusters: P(value in a > value in b).

    The area under the ROC curve (Mann-Whitney U / (n_a n_b), ties counted half): 0.5 when
    the quantity does not tell the clusters apart, 1 when every pixel of ``a`` has a larger
    value than every pixel of ``b``, 0 for the reverse.

    Parameters
    ----------
    labels : numpy.ndarray of int, shape (ny, nx)
    values : numpy.ndarray of float, shape (ny, nx)
        E.g. a thickness map (nm).
    a, b
        The two clusters.

    Returns
    -------
    float
        In [0, 1].
    """
    from scipy.stats import rankdata

    labels, values = np.asarray(labels), np.asarray(values, dtype=float)
    if labels.shape != values.shape:
        raise StemsegValueError(
            f"labels {labels.shape} and values {values.shape} must have the same shape.")
    va, vb = values[labels == a], values[labels == b]
    if va.size == 0 or vb.size == 0:
        raise StemsegValueError(f"cluster {a if va.size == 0 else b!r} has no pixels.")
    ranks = rankdata(np.r_[va, vb])
    u = ranks[:va.size].sum() - va.size * (va.size + 1) / 2.0
    return float(u / (va.size * vb.size))


# --------------------------------------------------------------------------------------
# notebook helpers: one call for what every notebook would otherwise repeat
# --------------------------------------------------------------------------------------

#: Loggers quietened by :func:`notebook_setup` (their INFO/WARNING lines fill a notebook).
NOTEBOOK_QUIET_LOGGERS: tuple[str, ...] = ("hyperspy", "exspy", "rsciio")


def notebook_setup(*, hide_user_warnings: bool = False, precision: int = 3) -> None:
    """Set up a teaching notebook: quiet library chatter, pandas precision, print the version.

    Filters HyperSpy's ``VisibleDeprecationWarning``, ``DeprecationWarning`` and
    ``FutureWarning`` (and, with ``hide_user_warnings``, ``UserWarning`` and its subclasses,
    stemseg's own data warnings included), sets the loggers of
    :data:`NOTEBOOK_QUIET_LOGGERS` to ``ERROR``, sets pandas' ``display.precision`` and
    prints ``stemseg <version>``. The filters are process-wide, as in a notebook cell.

    Parameters
    ----------
    hide_user_warnings : bool
        Also hide ``UserWarning`` (notebook 5: scikit-learn and UMAP on small chips).
    precision : int
        Digits pandas shows after the decimal point.

    Examples
    --------
    >>> from stemseg import analysis
    >>> analysis.notebook_setup()  # doctest: +ELLIPSIS
    stemseg ...
    """
    import logging

    from hyperspy.exceptions import VisibleDeprecationWarning

    from . import __version__

    for category in (VisibleDeprecationWarning, DeprecationWarning, FutureWarning):
        warnings.filterwarnings("ignore", category=category)
    if hide_user_warnings:
        warnings.filterwarnings("ignore", category=UserWarning)
    for name in NOTEBOOK_QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.ERROR)
    pd.set_option("display.precision", int(precision))
    print("stemseg", __version__)


def wurtzite_check(labels: np.ndarray, truth: np.ndarray, phases: Sequence[Any]
                   ) -> dict[str, float]:
    """How the sulfide phantom's two wurtzites are clustered (notebook 2, claim E3).

    Parameters
    ----------
    labels, truth : numpy.ndarray of int, same shape (ny, nx)
        Clusters (-1 = noise) and truth phases on the same (e.g. binned) grid.
    phases : sequence of Phase or str
        The phantom's phases by truth label; must name ``"majority wurtzite"``,
        ``"minority wurtzite"``, ``"resin"``, ``"chalcopyrite"`` and ``"jalpaite"``.

    Returns
    -------
    dict
        ``"minority wurtzite recall"`` (share of its pixels in its matched cluster),
        ``"wurtzite share of its cluster"`` (share of wurtzite of either kind in the cluster
        matched to the majority wurtzite) and ``"minority wurtzite elsewhere"`` (share of the
        minority wurtzite in the clusters matched to resin, chalcopyrite or jalpaite); all
        fractions in [0, 1].
    """
    from . import metrics

    rec = phase_recovery(labels, truth, phases).set_index("name")
    table = metrics.confusion_matrix(labels, truth)
    phase = {str(getattr(p, "name", p)): i for i, p in enumerate(phases)}
    wurtzites = [phase["majority wurtzite"], phase["minority wurtzite"]]
    c_major = rec.loc["majority wurtzite", "cluster"]
    others = [rec.loc[n, "cluster"] for n in ("resin", "chalcopyrite", "jalpaite")]
    minority = phase["minority wurtzite"]
    return {"minority wurtzite recall": float(rec.loc["minority wurtzite", "recall"]),
            "wurtzite share of its cluster": float(table.loc[c_major, wurtzites].sum()
                                                   / table.loc[c_major].sum()),
            "minority wurtzite elsewhere": float(table.loc[others, minority].sum()
                                                 / table[minority].sum())}


def gmm_sweep(explorer: Any, n_components: Sequence[int], n_clusters: Sequence[int], *,
              phases: Sequence[Any] | None = None) -> pd.DataFrame:
    """Move a :class:`stemseg.widgets.GMMExplorer`'s sliders through a grid and tabulate.

    Each setting is one refit on the explorer's cached PCA scores; the sliders are put
    back where they were afterwards.

    Parameters
    ----------
    explorer : stemseg.widgets.GMMExplorer
    n_components, n_clusters : sequence of int
        The PCA components and mixture sizes to visit (every pair).
    phases : sequence of Phase, optional
        The sulfide phantom's phases: adds the columns of :func:`wurtzite_check` (needs the
        explorer's truth).

    Returns
    -------
    pandas.DataFrame
        Index (``"PCA comps"``, ``"clusters"``); columns ``"ARI (binned)"`` (NaN without a
        truth), ``"refit (s)"`` and, with ``phases``, the three wurtzite columns.
    """
    start = (explorer.n_components.value, explorer.n_clusters.value)
    rows = []
    try:
        for nc in n_components:
            explorer.n_components.value = nc
            for k in n_clusters:
                explorer.n_clusters.value = k
                row = {"PCA comps": nc, "clusters": k, "ARI (binned)": explorer.ari,
                       "refit (s)": explorer.timings["refit"]}
                if phases is not None:
                    row.update(wurtzite_check(explorer.labels, explorer.truth, phases))
                rows.append(row)
    finally:
        explorer.n_components.value, explorer.n_clusters.value = start
    return pd.DataFrame(rows).set_index(["PCA comps", "clusters"])


def hdbscan_relabel(segmentation: Any, min_cluster_size_px: float, bin: int, *,
                    cluster_selection_method: str = "leaf") -> np.ndarray:
    """HDBSCAN refitted on a workflow-2 result's cached embedding (notebook 3).

    Uses the embedding and the UMAP fitting sample kept in ``segmentation.models``; only
    HDBSCAN is refitted (hard labels), so a new selection method or size takes seconds.

    Parameters
    ----------
    segmentation : stemseg.Segmentation
        From :func:`stemseg.workflows.hdbscan_umap` (``embedding``,
        ``models["umap_sample"]`` and ``models["prepared"].used``).
    min_cluster_size_px : float
        Smallest cluster, in original (unbinned) pixels.
    bin : int
        The binning of the result (pixels per side of a binned pixel).
    cluster_selection_method : {"leaf", "eom"}
        HDBSCAN's selection: ``"leaf"`` keeps the smallest clumps, ``"eom"`` (excess of
        mass) the most persistent ones.

    Returns
    -------
    numpy.ndarray of int, shape of ``segmentation.labels`` (binned grid)
        -1 for noise and for pixels the workflow left out.
    """
    from . import cluster

    _, fitted, _, _ = cluster.hdbscan_on_sample(
        segmentation.embedding, segmentation.models["umap_sample"],
        cluster.binned_min_cluster_size(min_cluster_size_px, "px", bin), weights="hard",
        cluster_selection_method=cluster_selection_method)
    labels = np.full(segmentation.labels.shape, -1)
    labels[segmentation.models["prepared"].used] = fitted
    return labels


def ensemble_gain(table: pd.DataFrame) -> pd.DataFrame:
    """Score of the ensemble minus the better single modality (notebook 5, claim T4).

    Parameters
    ----------
    table : pandas.DataFrame
        Index (film, modality) with modalities ``"haadf"``, ``"eds"`` and ``"ensemble"``;
        one column per method; values a score such as the IoU (dimensionless).

    Returns
    -------
    pandas.DataFrame
        Index film, columns the methods: ensemble - max(haadf, eds); positive when the
        ensemble does better than either modality alone.
    """
    level = "modality"
    return table.xs("ensemble", level=level) - np.maximum(
        table.xs("haadf", level=level), table.xs("eds", level=level))


def hdbscan_sweep(explorer: Any, parameter: str, values: Sequence[int]) -> pd.DataFrame:
    """Move one slider of a :class:`stemseg.widgets.HDBSCANExplorer` and tabulate (notebook 3).

    Each value is one HDBSCAN refit on the explorer's cached embedding; the slider is put
    back where it was afterwards.

    Parameters
    ----------
    explorer : stemseg.widgets.HDBSCANExplorer
    parameter : {"min_cluster_size", "min_samples"}
        The slider: ``min_cluster_size`` in original pixels, ``min_samples`` (0 = HDBSCAN's
        default, shown as ``"default"``).
    values : sequence of int
        The values to visit, in order.

    Returns
    -------
    pandas.DataFrame
        Index ``"min_cluster_size (px)"`` or ``"min_samples"``; columns ``"clusters"``,
        ``"noise %"`` (percent of the used binned pixels), ``"ARI (binned)"`` (NaN without a
        truth) and, for ``min_cluster_size``, ``"area (µm²)"`` (None without a pixel size),
        ``"major clusters"`` (at least 2 % of the labelled pixels) and ``"refit (s)"``.
    """
    from . import cluster

    if parameter not in ("min_cluster_size", "min_samples"):
        raise StemsegValueError(
            f"parameter must be 'min_cluster_size' or 'min_samples', not {parameter!r}.")
    slider = getattr(explorer, parameter)
    start, rows = slider.value, []
    try:
        for value in values:
            slider.value = value
            if parameter == "min_samples":
                rows.append({"min_samples": value or "default", "clusters": explorer.n_found,
                             "noise %": 100 * explorer.noise_fraction,
                             "ARI (binned)": explorer.ari})
                continue
            area = explorer.pixel_area_nm2
            rows.append({"min_cluster_size (px)": value,
                         "area (µm²)": None if area is None else value * area / 1e6,
                         "clusters": explorer.n_found,
                         "major clusters": cluster.n_major_clusters(explorer.labels, 0.02),
                         "noise %": 100 * explorer.noise_fraction,
                         "ARI (binned)": explorer.ari, "refit (s)": explorer.timings["refit"]})
    finally:
        slider.value = start
    index = "min_samples" if parameter == "min_samples" else "min_cluster_size (px)"
    return pd.DataFrame(rows).set_index(index)


def leaf_sweep(segmentation: Any, sizes_px: Sequence[float], bin: int) -> pd.DataFrame:
    """HDBSCAN with leaf selection over cluster sizes, on a cached embedding (notebook 3).

    Parameters
    ----------
    segmentation : stemseg.Segmentation
        From :func:`stemseg.workflows.hdbscan` (see :func:`hdbscan_relabel`).
    sizes_px : sequence of float
        ``min_cluster_size`` values in original pixels.
    bin : int
        The result's binning.

    Returns
    -------
    pandas.DataFrame
        Index ``"min_cluster_size (px)"``; columns ``"major clusters (leaf)"`` (clusters with
        at least 2 % of the labelled pixels) and ``"noise % (leaf)"`` (percent of the used
        binned pixels).
    """
    from . import cluster

    used = segmentation.models["prepared"].used
    rows = []
    for size in sizes_px:
        leaf = hdbscan_relabel(segmentation, size, bin)
        rows.append({"min_cluster_size (px)": size,
                     "major clusters (leaf)": cluster.n_major_clusters(leaf, 0.02),
                     "noise % (leaf)": 100 * cluster.noise_fraction(leaf, used)})
    return pd.DataFrame(rows).set_index("min_cluster_size (px)")


def phase_homes(labels: np.ndarray, truth: np.ndarray, names: Mapping[int, str]
                ) -> pd.DataFrame:
    """Each truth phase's main cluster and the share of the phase there (notebook 3, E3).

    Parameters
    ----------
    labels, truth : numpy.ndarray of int, same shape
        Clusters (-1 = noise, never a home) and truth phases.
    names : dict
        Phase name by truth label.

    Returns
    -------
    pandas.DataFrame
        One row per phase: ``"phase"`` (name), ``"main cluster"`` (the cluster holding most
        of its pixels) and ``"share there"`` (fraction of all its pixels, noise included);
        ``attrs["merged"]`` lists the groups of phases that share a main cluster.
    """
    from . import metrics

    counts = metrics.confusion_matrix(labels, truth)          # clusters x phases
    in_clusters = counts.loc[counts.index >= 0]
    homes = pd.DataFrame({"phase": [names[p] for p in counts.columns],
                          "main cluster": in_clusters.idxmax().to_numpy(),
                          "share there": (in_clusters.max() / counts.sum()).to_numpy()})
    merged = homes[homes.duplicated("main cluster", keep=False)]
    homes.attrs["merged"] = [list(g.phase) for _, g in merged.groupby("main cluster")]
    return homes


def region_iou(films: Mapping[str, Mapping[str, Any]], region: str,
               names: Sequence[str] | None = None) -> pd.DataFrame:
    """IoU of one truth region for every method and modality of the films (notebook 5).

    Parameters
    ----------
    films : dict
        Film name -> dict with ``"truth"`` (chip labels, shape (rows, cols)), ``"regions"``
        (region name -> truth label) and ``"results"`` (method -> modality -> result of
        :func:`stemseg.multimodal.segment_all`).
    region : str
        The region to locate, e.g. ``"amorphous LFO"``.
    names : sequence of str, optional
        The films to include, in this order (default: all).

    Returns
    -------
    pandas.DataFrame
        Index (``film``, ``modality``), one column per method (in the order of
        :data:`stemseg.multimodal.METHODS`): the intersection over union
        of the region and the best-matching class (:func:`stemseg.multimodal.region_recovery`),
        in [0, 1].
    """
    from . import multimodal

    tables = {}
    for film in (names if names is not None else list(films)):
        f = films[film]
        label = f["regions"][region]
        tables[film] = pd.DataFrame({
            method: {mod: multimodal.region_recovery(r, f["truth"], label)["iou"]
                     for mod, r in f["results"][method].items()}
            for method in multimodal.METHODS if method in f["results"]})
    return pd.concat(tables, names=["film", "modality"])


# --------------------------------------------------------------------------------------
# notebook 4: quantification of the phantom's clusters, and the nanoparticle study (E5-E8)
# --------------------------------------------------------------------------------------

def phase_composition(phases: Sequence[Any], name: str) -> dict[str, float]:
    """The truth composition (element -> at. %) of the phantom phase called ``name``.

    Parameters
    ----------
    phases : sequence of Phase
        A phantom's phases (objects with ``name`` and ``composition``).
    name : str
        E.g. ``"jalpaite"``.

    Returns
    -------
    dict
        Element -> at. %.
    """
    for phase in phases:
        if phase.name == name:
            return dict(phase.composition)
    raise StemsegValueError(f"no phase called {name!r} in {[p.name for p in phases]}.")


def phantom_clusters(seg: Any, data: Any
                     ) -> tuple[dict[Any, str], dict[Any, str], dict[Any, float]]:
    """Name a segmentation's clusters after the phantom's phases (notebook 4).

    Parameters
    ----------
    seg : Segmentation
        A workflow's result (``labels_full`` at the resolution of ``data.labels``).
    data : Phantom or a loaded file
        With ``labels``, ``phases`` and ``truth["paper_cluster"]`` (phase name -> the paper's
        cluster key, ``"i"`` ... ``"iv"``) when it has a truth; otherwise only its clusters'
        numbers are used.

    Returns
    -------
    names : dict
        Cluster -> the phase it matches (:func:`stemseg.metrics.match_clusters`); empty
        without a truth.
    keys : dict
        Cluster -> the paper's cluster key of its phase (clusters whose phase is in the
        paper's table); without a truth, every cluster -> its number as a string.
    purity : dict
        Cluster -> the share of its pixels that lie in the phase it matches, in [0, 1];
        empty without a truth.
    """
    from . import metrics

    if not hasattr(data, "labels"):
        return {}, {c: str(c) for c in seg.cluster_ids}, {}
    matched = metrics.match_clusters(seg.labels_full, data.labels)
    names = phase_names(matched, data.phases)
    key_of = data.truth["paper_cluster"]
    keys = {c: key_of[n] for c, n in names.items() if n in key_of}
    confusion = metrics.confusion_matrix(seg.labels_full, data.labels)
    purity = {c: float(confusion.loc[c, p] / confusion.loc[c].sum()) for c, p in matched.items()}
    return names, keys, purity


def dose_verdicts(explorer: Any, doses: Sequence[float]) -> dict[float, str]:
    """Move a :class:`stemseg.widgets.QuantExplorer`'s dose slider and read its status line.

    Parameters
    ----------
    explorer : QuantExplorer
    doses : sequence of float
        Doses as multiples of the map's own (the slider's value).

    Returns
    -------
    dict
        Dose -> the status line at that dose, without HTML tags. The slider is put back
        where it was.
    """
    import re

    before = explorer.dose.value
    out = {}
    try:
        for dose in doses:
            explorer.dose.value = dose
            out[dose] = re.sub(r"</?b>", "", explorer.status.value)
    finally:
        explorer.dose.value = before
    return out


def compare_methods(tables: Mapping[str, pd.DataFrame], clusters: Mapping[Any, str],
                    elements: Sequence[str],
                    truth: Mapping[Any, Mapping[str, float]] | None = None) -> pd.DataFrame:
    """The at. % of some elements in some clusters, by several quantifications side by side.

    Parameters
    ----------
    tables : dict
        Method name (e.g. ``"model"``, ``"windows"``) -> :func:`stemseg.quant.quantify`
        table of the same segmentation.
    clusters : dict
        Cluster -> its row label, in the order of the rows.
    elements : sequence of str
        The elements to compare, e.g. ``["Ag", "Cd"]``.
    truth : dict, optional
        Cluster -> truth composition (element -> at. %); adds a ``"truth"`` column (0 for an
        element the composition lacks).

    Returns
    -------
    pandas.DataFrame
        Index (``cluster``, ``element``) with the row labels; one column per method, then
        ``"truth"``; at. %.
    """
    rows = []
    for c, label in clusters.items():
        for el in elements:
            row: dict[str, Any] = {"cluster": label, "element": el}
            for method, t in tables.items():
                row[method] = float(t[(t.cluster == c) & (t.element == el)]["at_pct"].iloc[0])
            if truth is not None:
                row["truth"] = truth[c].get(el, 0.0)
            rows.append(row)
    return pd.DataFrame(rows).set_index(["cluster", "element"])


def other_elements(source: Any, names: Mapping[Any, str] | None = None, *,
                   expected: Mapping[str, Sequence[str]] = EXPECTED_FROM_MAPS) -> pd.Series:
    """At. % of the elements not expected from the maps, per phase (claim E5).

    Parameters
    ----------
    source : pandas.DataFrame or sequence of Phase
        A :func:`stemseg.quant.quantify` or :func:`stemseg.quant.paper_table` table, or a
        phantom's phases (the truth).
    names : dict, optional
        Cluster -> phase name for a table; default: the table's ``"phase"`` column (the
        paper's tables have one).
    expected : dict
        Phase name -> the elements expected from the maps (:data:`EXPECTED_FROM_MAPS`).

    Returns
    -------
    pandas.Series
        Index ``phase`` (the keys of ``expected``), :func:`other_fraction` in at. %; NaN for a
        phase no cluster is named after.
    """
    if isinstance(source, pd.DataFrame):
        if names is None:
            names = source.groupby("cluster", sort=False)["phase"].first().to_dict()
        cluster_of = {n: c for c, n in names.items()}
        values = {phase: (other_fraction(source, elements, cluster_of[phase])[0]
                          if phase in cluster_of else np.nan)
                  for phase, elements in expected.items()}
    else:
        truth = {p.name: p.composition for p in source}
        values = {phase: (other_fraction(truth[phase], elements)[0] if phase in truth
                          else np.nan)
                  for phase, elements in expected.items()}
    return pd.Series(values, dtype=float).rename_axis("phase")


def core_shell_check(phantom: Any, gmm: Any, hdbscan: Any) -> dict[str, Any]:
    """Workflow 1 and 2 on a nanoparticle phantom: core against shell (notebook 4, E8).

    A cluster of workflow 1 is on the particles when most of its pixels are; with two such
    clusters the one whose pixels are thicker on average is the "core". The truth regions
    (the inner half of every particle's radius, and the ring outside it) are quantified
    too, as weights on the binned counts: regions drawn without looking at the spectra.

    Parameters
    ----------
    phantom : Phantom
        ``stemseg.simulate.phantom("nanoparticles-7cation", ...)``.
    gmm : Segmentation
        Workflow 1 on the phantom (:func:`stemseg.workflows.gmm`, e.g. 3 clusters: film,
        core, shell), binned by 2.
    hdbscan : Segmentation
        Workflow 2 on the phantom (:func:`stemseg.workflows.hdbscan`), binned by 2.

    Returns
    -------
    dict
        ``core``, ``shell`` (GMM clusters, None without a two-cluster split of the
        particles), ``gmm_table`` (:func:`stemseg.quant.quantify`), ``gmm_diff``
        (:func:`composition_difference` core - shell, or None), ``gmm_particle_clusters``,
        ``region_diff`` (truth core region - shell region), ``hdbscan_particle_clusters``,
        ``hdbscan_clusters``, ``labels`` (GMM, original pixels), ``names`` (cluster ->
        ``"film"``, ``"core"``, ``"shell"`` or ``"particles"``) and ``thickness`` (nm).
    """
    from . import quant

    ph, g, h = phantom, gmm, hdbscan
    # particle clusters: most of their pixels on particles; the others are film
    on_particle = {c: float((ph.labels > 0)[g.labels_full == c].mean()) for c in g.cluster_ids}
    parts = [c for c in g.cluster_ids if on_particle[c] > 0.5]
    gmm_table = quant.quantify(g)
    if len(parts) == 2:
        # the "core" cluster is the one nearer the particle centres (thicker, more counts)
        thick = [float(ph.truth["particle_thickness"][g.labels_full == c].mean())
                 for c in parts]
        core_c, shell_c = (parts[0], parts[1]) if thick[0] > thick[1] else (parts[1], parts[0])
        gmm_diff = composition_difference(gmm_table, core_c, shell_c)
    else:   # no core-shell split: the mixture spent its components on the film
        core_c = shell_c = gmm_diff = None
    # truth regions: the inner half of every particle's radius vs the ring outside it,
    # as weights on the binned counts
    core_m, shell_m = particle_regions(ph.labels.shape, ph.truth["particles_px"])
    w = np.column_stack([bin_fraction(m, 2, g.labels.shape).ravel() for m in (core_m, shell_m)])
    region_table = quant.quantify(g.counts, weights=w)
    in_particle = bin_fraction(ph.labels > 0, 2, h.labels.shape) > 0.5
    particle_clusters = [c for c in range(h.n_clusters) if in_particle[h.labels == c].mean() > 0.5]
    names = {c: ("film" if c not in parts else "particles" if len(parts) != 2 else
                 "core" if c == core_c else "shell") for c in g.cluster_ids}
    return dict(core=core_c, shell=shell_c, gmm_table=gmm_table, gmm_diff=gmm_diff,
                gmm_particle_clusters=len(parts),
                region_diff=composition_difference(region_table, 0, 1),
                hdbscan_particle_clusters=len(particle_clusters), hdbscan_clusters=h.n_clusters,
                labels=g.labels_full, names=names, thickness=ph.thickness)


# --------------------------------------------------------------------------------------
# notebook 5: the four films
# --------------------------------------------------------------------------------------

def film_segmentation(phantom: Any, *, random_state: int = 0) -> dict[str, Any]:
    """Chip an LFO/STO phantom and segment it by every method and modality (notebook 5).

    The chips are the phantom's own (``truth["chip_px"]``); every method of
    :func:`stemseg.multimodal.segment_all` gets as many clusters as the chips have truth
    regions, and the few-shot method its support from the truth.

    Parameters
    ----------
    phantom : Phantom
        ``stemseg.simulate.phantom("lfo-sto", ...)``.
    random_state : int

    Returns
    -------
    dict
        ``chips``, ``truth`` (chip labels), ``names`` (label -> phase name), ``regions``
        (region name -> label), ``results`` (method -> modality -> result), ``ami``
        (:func:`stemseg.multimodal.ami_table`), ``sample`` (the paper's sample),
        ``phases`` and ``sto_thick`` (chip labels of the thick STO, 0 or 1).
    """
    from . import multimodal as mm

    ph = phantom
    c = mm.chip(ph, size=ph.truth["chip_px"])
    truth = mm.truth_labels(ph, c)
    results = mm.segment_all(c, n_clusters=int(np.unique(truth).size),
                             support=mm.support_from_truth(truth, random_state=random_state),
                             random_state=random_state)
    return dict(chips=c, truth=truth, names={k: p.name for k, p in enumerate(ph.phases)},
                regions=ph.truth["regions"], results=results,
                ami=mm.ami_table(results, truth=truth), sample=mm.paper_sample(ph),
                phases=ph.phases,
                sto_thick=mm.truth_labels(ph.truth["sto_thick_mask"].astype(int), c))


def percent_difference_table(films: Mapping[str, Mapping[str, Any]],
                             summaries: Mapping[tuple[str, str], pd.DataFrame], *,
                             regions: Sequence[str] = ("disordered LFO", "amorphous LFO"),
                             reference: str = "ordered LFO",
                             elements: Sequence[str] = ("La", "Fe", "O")) -> pd.DataFrame:
    """Percent differences of regions against a reference region, per film (notebook 5, T6).

    Parameters
    ----------
    films : dict
        Film name -> dict with ``"phases"`` (the phantom's phases: what it was built with)
        and ``"regions"`` (the region names present), as :func:`film_segmentation` returns.
    summaries : dict
        (film, labelling) -> region summary indexed by region name, with a column per
        element; the labellings are ``"truth"`` and the methods of
        :data:`stemseg.multimodal.METHODS`.
    regions : sequence of str
        The regions compared with ``reference`` (where a film has them).
    reference : str
    elements : sequence of str

    Returns
    -------
    pandas.DataFrame
        Index (``film``, ``region``, ``labels``), one column per element:
        ``100 (region - reference) / reference``
        (:func:`stemseg.multimodal.percent_difference`). ``labels`` is ``"phantom built"``
        (the phases' compositions), ``"truth"`` or a method; a labelling whose summary lacks
        either region is left out.
    """
    from . import multimodal as mm

    els = list(elements)
    rows = []
    for film, f in films.items():
        phases = {p.name: p.composition for p in f["phases"]}
        for region in regions:
            if region not in f["regions"]:
                continue
            built = {el: mm.percent_difference(phases[reference][el], phases[region][el])
                     for el in els}
            rows.append({"film": film, "region": region, "labels": "phantom built", **built})
            for who in ("truth", *mm.METHODS):
                s = summaries[(film, who)]
                if reference in s.index and region in s.index:
                    pdiff = mm.percent_difference(s.loc[reference, els], s.loc[region, els])
                    rows.append({"film": film, "region": region, "labels": who,
                                 **pdiff.to_dict()})
    return pd.DataFrame(rows).set_index(["film", "region", "labels"])
