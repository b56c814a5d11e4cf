"""Quantification of EDS spectra: line intensities, Cliff-Lorimer with uncertainties, entropy.

The stage after segmentation (see DESIGN.md): every cluster's mean spectrum (or any EDS
spectrum, or a stack of them) is turned into a tidy table of compositions in atomic percent
with a counting-statistics uncertainty, and compositions into a configurational entropy.

* :func:`line_intensities` -- net X-ray line intensities (counts) and their covariance, either
  by fitting a model of Gaussian line families on a local polynomial background
  (``method="model"``, separates overlapping lines) or by HyperSpy/exspy window integration
  (``method="windows"``).
* :func:`quantify` -- Cliff-Lorimer through exspy's ``quantification(method="CL")`` with
  theoretical k-factors from :mod:`stemseg.xray` (or the user's), with the Poisson error
  propagated analytically and an optional bootstrap over pixels.
* :func:`configurational_entropy`, :func:`maximum_entropy` -- ideal mixing entropy of the
  cation sub-lattice in units of R per mole of atoms (the convention of Eggeman et al. 2025).
* :func:`paper_table` -- the published compositions as a DataFrame, for side-by-side tables.

Energies are in keV, intensities in counts, compositions in atomic percent.
"""

from __future__ import annotations

import contextlib
import logging
import math
import warnings
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy.optimize import minimize_scalar, nnls
from scipy.special import ndtr

from ._hs import with_data
from .errors import StemsegValueError

__all__ = [
    "core_labels",
    "MIN_ENERGY_KEV",
    "LINE_MODELS",
    "LineIntensities",
    "line_intensities",
    "model_components",
    "quantify",
    "configurational_entropy",
    "maximum_entropy",
    "paper_table",
]

#: Lowest energy (keV) used for fits and background windows. Below it the detector
#: efficiency and the noise peak make the spectrum unusable for quantification.
MIN_ENERGY_KEV = 0.2

_MODEL_MARGIN_FWHM = 3.0  # fit region: every line +- this many FWHM
_MODEL_MIN_WEIGHT = 0.01  # sub-lines weaker than this do not widen the fit regions
_BACKGROUND_KEV_PER_DEGREE = 1.0  # wide fit regions get one more background degree per keV
_FAMILY_CACHE: dict[tuple, list] = {}  # see _line_families
_CL_SCALE = 1.0e6  # intensities are rescaled to this sum before exspy's CL (threshold 0.1)

_CITATIONS = {
    "eggeman2025": (
        "A. S. Eggeman et al., 'On the use of advanced scanning transmission electron "
        "microscopy and machine learning for studying multi-component materials', "
        "Faraday Discussions (2025), doi:10.1039/d5fd00101c"
    ),
    "terpetrosyan2024": (
        "A. Ter-Petrosyan et al., 'Revealing the Evolution of Order in Materials "
        "Microstructures Using Multi-Modal Computer Vision' (2024)"
    ),
}


# --------------------------------------------------------------------------------------
# result type
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LineIntensities:
    """Net X-ray line intensities of one spectrum or a stack of spectra.

    Attributes
    ----------
    lines : tuple of str
        X-ray lines, e.g. ``("Fe_Ka", "Pt_La")``; the last axis of ``intensity``.
    intensity : numpy.ndarray, shape nav_shape + (n_lines,)
        Net counts of each line (whole line family for ``method="model"``: the area of the
        main line, as in exspy; background-subtracted window sum for ``"windows"``).
    covariance : numpy.ndarray, shape nav_shape + (n_lines, n_lines)
        Covariance of ``intensity`` in counts^2 from counting statistics. Off-diagonal
        terms are the fit correlations of overlapping lines (``"model"``); zero for
        ``"windows"``.
    method : str
        ``"model"`` or ``"windows"``.
    nav_shape : tuple of int
        Navigation shape of the spectrum (NumPy order), ``()`` for a single spectrum.
    details : dict
        Diagnostics: ``"reduced_chi2"`` and ``"energy_shift_keV"`` (model, shape nav_shape),
        ``"fit_regions_keV"`` and ``"modelled_families"`` (model); ``"windows"`` and
        ``"background_windows"`` (keV, windows method).
    """

    lines: tuple[str, ...]
    intensity: np.ndarray
    covariance: np.ndarray
    method: str
    nav_shape: tuple[int, ...] = ()
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def variance(self) -> np.ndarray:
        """Variance of each intensity, counts^2, shape nav_shape + (n_lines,)."""
        return np.diagonal(self.covariance, axis1=-2, axis2=-1).copy()

    @property
    def sigma(self) -> np.ndarray:
        """Standard error of each intensity, counts, shape nav_shape + (n_lines,)."""
        return np.sqrt(self.variance)

    def as_dict(self) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """Line -> (intensity, sigma), each of shape nav_shape (counts)."""
        return {
            line: (self.intensity[..., i], self.sigma[..., i])
            for i, line in enumerate(self.lines)
        }

    def to_signals(self) -> list[Any]:
        """The intensities as exspy returns them from ``get_lines_intensity``.

        Returns
        -------
        list of hyperspy.signal.BaseSignal
            One signal per line, data of shape nav_shape (``(1,)`` for a single spectrum),
            with ``metadata.Sample.elements`` and ``metadata.Sample.xray_lines`` set, ready
            for ``EDSTEMSpectrum.quantification``.
        """
        from hyperspy.signals import BaseSignal

        out = []
        for i, line in enumerate(self.lines):
            data = np.atleast_1d(np.asarray(self.intensity[..., i], dtype=float))
            sig = BaseSignal(data.copy()).transpose(signal_axes=[])
            sig.metadata.General.title = f"{line} intensity ({self.method})"
            sig.metadata.set_item("Sample.elements", [line.split("_")[0]])
            sig.metadata.set_item("Sample.xray_lines", [line])
            out.append(sig)
        return out


# --------------------------------------------------------------------------------------
# input checks
# --------------------------------------------------------------------------------------


def _check_spectrum(spectrum: Any) -> Any:
    """Return ``spectrum`` if it is a non-empty exspy EDS spectrum on a uniform keV axis."""
    from exspy.signals import EDSSpectrum

    if not isinstance(spectrum, EDSSpectrum):
        raise StemsegValueError(
            f"spectrum must be an exspy EDS signal (EDSTEMSpectrum), got "
            f"{type(spectrum).__name__}. Load the file with stemseg.io.load or set "
            "signal.set_signal_type('EDS_TEM')."
        )
    if spectrum.axes_manager.signal_dimension != 1:
        raise StemsegValueError(
            "spectrum must have exactly one signal axis (energy); got "
            f"{spectrum.axes_manager.signal_dimension}."
        )
    ax = spectrum.axes_manager.signal_axes[0]
    if not ax.is_uniform:
        raise StemsegValueError(
            "The energy axis of spectrum is not uniform; convert it with "
            "spectrum.axes_manager[-1].convert_to_uniform_axis() first."
        )
    if ax.units != "keV":
        raise StemsegValueError(
            f"The energy axis of spectrum is in {ax.units!r}; stemseg needs keV. "
            "Convert it, e.g. spectrum.axes_manager[-1].convert_to_units('keV')."
        )
    return spectrum


def _signal_type(spectrum: Any) -> str:
    return str(spectrum.metadata.get_item("Signal.signal_type", ""))


def _energy_axis(spectrum: Any) -> tuple[np.ndarray, float]:
    """Channel centres (keV, shape (n_channels,)) and channel width (keV)."""
    ax = spectrum.axes_manager.signal_axes[0]
    return np.asarray(ax.axis, dtype=float), float(ax.scale)


def _beam_energy(spectrum: Any) -> float | None:
    for mic in ("TEM", "SEM"):
        value = spectrum.metadata.get_item(f"Acquisition_instrument.{mic}.beam_energy")
        if value is not None:
            return float(value)
    return None


def _data_2d(spectrum: Any) -> np.ndarray:
    """Spectra as float array (n_spectra, n_channels) (a copy; the input is not touched)."""
    data = np.asarray(spectrum.data, dtype=float)
    return data.reshape(-1, data.shape[-1])


def _nav_shape(spectrum: Any) -> tuple[int, ...]:
    return tuple(np.shape(spectrum.data)[:-1])


def _split_line(line: str) -> tuple[str, str]:
    if not isinstance(line, str) or line.count("_") != 1:
        raise StemsegValueError(
            f"X-ray line {line!r} is not of the form 'Element_Line', e.g. 'Fe_Ka' or 'Ag_La'."
        )
    element, family = line.split("_")
    return element, family


def _line_energy(line: str) -> float:
    """Energy (keV) of ``line`` from exspy's database; StemsegValueError if unknown."""
    from exspy.material import elements as db

    element, family = _split_line(line)
    if element not in db:
        raise StemsegValueError(
            f"Unknown element {element!r} in X-ray line {line!r}. Use a chemical symbol "
            "with its capital letter, e.g. 'Fe', 'Ag', 'Cd'."
        )
    xl = db[element].Atomic_properties.get_item("Xray_lines")
    if xl is None or family not in xl:
        known = [] if xl is None else sorted(xl.keys())
        raise StemsegValueError(
            f"X-ray line {line!r} is not in exspy's database; {element} has {known}."
        )
    return float(xl[family]["energy (keV)"])


def _check_lines_in_range(lines: Sequence[str], spectrum: Any, e_min: float) -> None:
    """Every line must lie inside [max(e_min, axis start), min(axis end, beam energy)]."""
    x, _ = _energy_axis(spectrum)
    low, high = max(e_min, x[0]), x[-1]
    beam = _beam_energy(spectrum)
    if beam is not None:
        high = min(high, beam)
    bad = [f"{ln} ({_line_energy(ln):.3f} keV)" for ln in lines
           if not low <= _line_energy(ln) <= high]
    if bad:
        raise StemsegValueError(
            f"X-ray line(s) {', '.join(bad)} lie outside the usable energy range "
            f"{low:.3f}-{high:.3f} keV of the spectrum (axis limits, {e_min} keV lower "
            "cut, beam energy). Choose another line of the element (e.g. 'Zn_La' instead "
            "of 'Zn_Ka'), or pass lines= explicitly."
        )


def _resolve_lines(spectrum: Any, lines: Sequence[str] | None,
                   one_per_element: bool = False) -> list[str]:
    """The X-ray lines to quantify: given, from metadata, or one principal line per element."""
    if lines is not None:
        if isinstance(lines, str):
            lines = [lines]
        lines = list(dict.fromkeys(lines))
    elif spectrum.metadata.get_item("Sample.xray_lines"):
        lines = list(spectrum.metadata.Sample.xray_lines)
    elif spectrum.metadata.get_item("Sample.elements"):
        lines = _principal_lines(spectrum, list(spectrum.metadata.Sample.elements))
    else:
        raise StemsegValueError(
            "No X-ray lines to quantify: the spectrum has no Sample.elements or "
            "Sample.xray_lines. Pass lines=['Fe_Ka', ...] or call "
            "spectrum.add_elements(['Fe', ...]) on a copy first."
        )
    if not lines:
        raise StemsegValueError("lines is empty; give at least one X-ray line, e.g. ['Fe_Ka'].")
    elements = [_split_line(ln)[0] for ln in lines]
    for ln in lines:
        _line_energy(ln)
    dup = sorted({e for e in elements if elements.count(e) > 1})
    if dup and one_per_element:
        raise StemsegValueError(
            f"More than one line given for element(s) {dup}: {lines}. Quantify one line "
            "family per element (the model fits the whole family anyway)."
        )
    _check_lines_in_range(lines, spectrum, MIN_ENERGY_KEV)
    return list(lines)


def _principal_lines(spectrum: Any, elements: list[str]) -> list[str]:
    from exspy.material import elements as db

    unknown = [e for e in elements if e not in db]
    if unknown:
        raise StemsegValueError(
            f"Unknown element(s) {unknown} in the spectrum's Sample.elements. Use chemical "
            "symbols, e.g. 'Fe', 'Ag'."
        )
    beam = _beam_energy(spectrum)
    if beam is None:
        raise StemsegValueError(
            "Cannot choose X-ray lines without the beam energy: set "
            "spectrum.metadata.Acquisition_instrument.TEM.beam_energy (kV) or pass lines=."
        )
    from . import xray

    x, _ = _energy_axis(spectrum)
    return list(xray.principal_lines(elements, beam, energy_range_keV=(MIN_ENERGY_KEV, x[-1])))


def _variance_2d(spectrum: Any, variance: Any) -> np.ndarray | None:
    """Per-channel variance as (n_spectra, n_channels), or None for Poisson (= counts)."""
    if variance is None:
        variance = spectrum.metadata.get_item("Signal.Noise_properties.variance")
        if variance is None:
            return None
    if hasattr(variance, "data"):
        variance = variance.data
    var = np.asarray(variance, dtype=float)
    shape = np.shape(spectrum.data)
    try:
        var = np.broadcast_to(var, shape)
    except ValueError:
        raise StemsegValueError(
            f"variance has shape {np.shape(variance)}, which does not broadcast to the "
            f"spectrum's shape {shape}. Give one variance per channel (counts^2)."
        ) from None
    if not np.all(np.isfinite(var)) or np.any(var < 0):
        raise StemsegValueError("variance must be finite and >= 0 in every channel.")
    return var.reshape(-1, shape[-1]).astype(float)


def _check_counts(data: np.ndarray) -> None:
    if not np.all(np.isfinite(data)):
        raise StemsegValueError(
            "The spectrum contains NaN or infinite values; replace them (e.g. with 0) first."
        )
    negative = np.flatnonzero(np.any(data < 0, axis=-1))
    if negative.size:
        raise StemsegValueError(
            f"Spectrum index(es) {negative.tolist()[:10]} hold negative counts (minimum "
            f"{float(np.min(data)):.4g}); quantification fits its own background and "
            "propagates Poisson errors, so it needs raw counts. Undo any background "
            "subtraction, or clip with np.clip(spectrum.data, 0, None)."
        )
    empty = np.flatnonzero(np.sum(np.abs(data), axis=-1) == 0)
    if empty.size:
        raise StemsegValueError(
            f"Spectrum index(es) {empty.tolist()[:10]} have zero counts in every channel; "
            "there is nothing to quantify. Remove empty clusters or pixels first."
        )


@contextlib.contextmanager
def _quiet_hyperspy() -> Iterator[None]:
    """Silence HyperSpy's per-component 'numexpr is not installed' log messages."""
    logger = logging.getLogger("hyperspy._components.expression")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


@contextlib.contextmanager
def _no_progressbar() -> Iterator[None]:
    """Hide HyperSpy progress bars (exspy's weight_to_atomic ignores show_progressbar)."""
    from hyperspy.defaults_parser import preferences

    old = preferences.General.show_progressbar
    preferences.General.show_progressbar = False
    try:
        yield
    finally:
        preferences.General.show_progressbar = old


# --------------------------------------------------------------------------------------
# model fitting
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Family:
    """One X-ray line family as exspy's EDS model defines it (main line + twinned sub-lines)."""

    name: str
    centres: np.ndarray  # keV
    sigmas: np.ndarray  # keV (Gaussian sigma)
    weights: np.ndarray  # relative to the main line (main line = 1)


def _nuisance_lines(spectrum: Any, lines: Sequence[str], extra_elements: Sequence[str],
                    e_min: float) -> list[str]:
    """Main lines (Ka, La, Ma) of every element in range, other than the quantified ones."""
    from exspy.material import elements as db

    x, _ = _energy_axis(spectrum)
    beam = _beam_energy(spectrum) or np.inf
    high = min(x[-1], beam)
    elements = list(dict.fromkeys([_split_line(ln)[0] for ln in lines] + list(extra_elements)))
    out = []
    for el in elements:
        if el not in db:
            raise StemsegValueError(
                f"Unknown element {el!r} in extra_elements; use chemical symbols, e.g. 'Cu'."
            )
        xl = db[el].Atomic_properties.Xray_lines
        for fam in ("Ka", "La", "Ma"):
            name = f"{el}_{fam}"
            if fam in xl and name not in lines and e_min <= xl[fam]["energy (keV)"] <= high:
                out.append(name)
    return out


#: Line models of the model fit (``line_intensities(..., line_model=)``).
LINE_MODELS = ("xraylib", "exspy")


def _line_families(spectrum: Any, all_lines: Sequence[str],
                   line_model: str = "xraylib") -> list[_Family]:
    """Line families (energies, widths, weights relative to the main line).

    ``"exspy"``: exspy's ``create_model`` / ``add_family_lines`` decides which sub-lines
    belong to each family, their energies and weights (exspy's database; Ka1 and Ka2 as one
    line at the Ka1 energy) and their widths (from ``energy_resolution_MnKa``); the Gaussians
    are read back from it (~0.5 s: HyperSpy compiles every component).
    ``"xraylib"``: every transition of the family at its own energy with its own rate
    (:func:`_physics_families`). Cached per line set, model, energy axis, beam energy and
    resolution.
    """
    ax = spectrum.axes_manager.signal_axes[0]
    key = (tuple(all_lines), line_model, ax.offset, ax.scale, ax.size, _beam_energy(spectrum),
           _resolution_eV(spectrum))
    if key not in _FAMILY_CACHE:
        if len(_FAMILY_CACHE) >= 64:
            _FAMILY_CACHE.pop(next(iter(_FAMILY_CACHE)))
        exspy_families = _build_families(spectrum, all_lines)
        if line_model == "xraylib":
            _FAMILY_CACHE[key] = _physics_families(spectrum, exspy_families)
        else:
            _FAMILY_CACHE[key] = exspy_families
    return _FAMILY_CACHE[key]


def _resolution_eV(spectrum: Any) -> float | None:
    return spectrum.metadata.get_item(
        f"Acquisition_instrument.{_microscope(spectrum)}.Detector.EDS.energy_resolution_MnKa")


_FWHM_PER_SIGMA = 2.0 * math.sqrt(2.0 * math.log(2.0))

#: Radiative rates below this share of the sub-shell's decays are left out of the families.
_MIN_TRANSITION_RATE = 1e-3

#: Smallest atomic number whose K, L or M family the xraylib line model describes. L lines of
#: the 3d metals (and M lines of the lanthanides) end in the valence shell, so their
#: free-atom rates miss the solid's band structure: fitting Cr's L family with xraylib's
#: rates pushed a pure Cr spectrum's L-line counts into O Ka (45 at. % O in a Cr cap).
#: Below these Z, exspy's empirical families are kept.
_XRAYLIB_FAMILY_MIN_Z = {"K": 1, "L": 37, "M": 72}


def _physics_families(spectrum: Any, exspy_families: Sequence[_Family]) -> list[_Family]:
    """Families with every xraylib transition (:func:`stemseg.xray.transition_lines`).

    The main line keeps the k-factors' definition (Ka = K-L2 + K-L3, La = L3-M4 + L3-M5,
    Ma = M5-N6 + M5-N7), now as its separate transitions; the other lines of the family
    (all K, all L1-L3 or all M1-M5 transitions) follow with weights = photons x detection
    efficiency (Super-X-like preset) relative to the main line's. Widths: the Mn Ka FWHM of
    the metadata and the Fano law of :meth:`stemseg.xray.Detector.fwhm` (exspy's). Families
    xraylib lacks data for, and L / M families below :data:`_XRAYLIB_FAMILY_MIN_Z`, keep
    exspy's.
    """
    from . import xray

    beam = _beam_energy(spectrum)
    res = _resolution_eV(spectrum)
    if beam is None:
        return list(exspy_families)
    det = xray.Detector(name="metadata", fwhm_mn_ka_eV=float(res) if res else 130.0)
    shells = {"K": ("K",), "L": ("L1", "L2", "L3"), "M": ("M1", "M2", "M3", "M4", "M5")}
    out = []
    for fam in exspy_families:
        element, name = _split_line(fam.name)
        z = xray._element_record(element)[0]
        if z < _XRAYLIB_FAMILY_MIN_Z.get(name[0], 200):
            out.append(fam)
            continue
        main = xray._PHYSICS_LINES.get(name)
        trans = xray.transition_lines(element, beam, min_rate=_MIN_TRANSITION_RATE)
        members = [(t, e, g) for t, e, g in trans if t.startswith(shells.get(name[0], ()))]
        main_set = set(main[1]) if main else set()
        detected = {t: g * float(det.efficiency(e)) for t, e, g in members}
        main_area = sum(v for t, v in detected.items() if t in main_set)
        if not members or main_area <= 0:
            out.append(fam)
            continue
        centres = np.array([e for _, e, _ in members])
        out.append(_Family(
            name=fam.name, centres=centres,
            sigmas=np.asarray(det.fwhm(centres), dtype=float) / _FWHM_PER_SIGMA,
            weights=np.array([detected[t] / main_area for t, _, _ in members]),
        ))
    return out


def _microscope(spectrum: Any) -> str:
    return "SEM" if _signal_type(spectrum) == "EDS_SEM" else "TEM"


def _build_families(spectrum: Any, all_lines: Sequence[str]) -> list[_Family]:
    nav = _nav_shape(spectrum)
    single = spectrum.inav[(0,) * len(nav)] if nav else spectrum
    single = with_data(single, np.asarray(single.data, dtype=float))
    with _quiet_hyperspy(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = single.create_model(auto_background=False, auto_add_lines=False)
        model.add_family_lines(list(all_lines))
    families = []
    for main in model.xray_lines:
        main.A.value = 1.0
        members = [main] + [c for c in model.family_lines if c.A.twin is main.A]
        families.append(
            _Family(
                name=main.name,
                centres=np.array([c.centre.value for c in members], dtype=float),
                sigmas=np.array([c.sigma.value for c in members], dtype=float),
                weights=np.array([c.A.value for c in members], dtype=float),
            )
        )
    return families


def _fit_regions(families: Sequence[_Family], e_low: float,
                 e_high: float) -> list[tuple[float, float]]:
    """Merged energy intervals (keV) of every line +- _MODEL_MARGIN_FWHM FWHM."""
    fwhm_per_sigma = 2.0 * math.sqrt(2.0 * math.log(2.0))
    intervals = []
    for fam in families:
        for c, s, w in zip(fam.centres, fam.sigmas, fam.weights):
            if w < _MODEL_MIN_WEIGHT or not e_low <= c <= e_high:
                continue
            half = _MODEL_MARGIN_FWHM * fwhm_per_sigma * s
            intervals.append((max(e_low, c - half), min(e_high, c + half)))
    intervals.sort()
    merged: list[list[float]] = []
    for lo, hi in intervals:
        if merged and lo <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], hi)
        else:
            merged.append([lo, hi])
    return [(lo, hi) for lo, hi in merged]


def _family_columns(x: np.ndarray, scale: float, families: Sequence[_Family],
                    shift: float) -> np.ndarray:
    """Counts per channel of each family for unit main-line area; shape (n_channels, n_fam)."""
    cols = np.zeros((x.size, len(families)))
    lo, hi = x - scale / 2.0, x + scale / 2.0
    for j, fam in enumerate(families):
        for c, s, w in zip(fam.centres + shift, fam.sigmas, fam.weights):
            cols[:, j] += w * (ndtr((hi - c) / s) - ndtr((lo - c) / s))
    return cols


def _background_columns(x: np.ndarray, regions: Sequence[tuple[float, float]],
                        order: int) -> np.ndarray:
    """Legendre polynomials on each region, zero outside it.

    The degree is ``order`` plus one per ``_BACKGROUND_KEV_PER_DEGREE`` keV of region width,
    so that wide merged regions (e.g. 0.2-3 keV) get a flexible enough background.
    """
    cols = []
    for lo, hi in regions:
        inside = (x >= lo) & (x <= hi)
        u = np.where(inside, 2.0 * (x - lo) / max(hi - lo, 1e-12) - 1.0, 0.0)
        degree = order + int((hi - lo) // _BACKGROUND_KEV_PER_DEGREE)
        for k in range(degree + 1):
            basis = np.zeros(degree + 1)
            basis[k] = 1.0
            cols.append(np.where(inside, np.polynomial.legendre.legval(u, basis), 0.0))
    return np.array(cols).T


@dataclass(frozen=True)
class _Design:
    """Everything of the model fit that does not depend on the counts."""

    x: np.ndarray
    scale: float
    families: tuple[_Family, ...]
    n_report: int  # the first n_report families are the quantified lines
    regions: tuple[tuple[float, float], ...]
    mask: np.ndarray  # channels inside the fit regions
    background: np.ndarray  # (n_fit, n_bg)

    def matrix(self, shift: float = 0.0) -> np.ndarray:
        lines = _family_columns(self.x[self.mask], self.scale, self.families, shift)
        return np.hstack([lines, self.background])


def _make_design(spectrum: Any, lines: Sequence[str], extra_elements: Sequence[str],
                 background_order: int, line_model: str = "xraylib") -> _Design:
    x, scale = _energy_axis(spectrum)
    beam = _beam_energy(spectrum) or np.inf
    e_low, e_high = max(MIN_ENERGY_KEV, x[0]), min(x[-1], beam)
    nuisance = _nuisance_lines(spectrum, lines, extra_elements, e_low)
    families = _line_families(spectrum, list(lines) + nuisance, line_model)
    by_name = {f.name: f for f in families}
    ordered = [by_name[ln] for ln in lines] + [by_name[n] for n in nuisance if n in by_name]
    regions = _fit_regions(ordered, e_low, e_high)
    mask = np.zeros(x.size, dtype=bool)
    for lo, hi in regions:
        mask |= (x >= lo) & (x <= hi)
    background = _background_columns(x[mask], regions, background_order)
    return _Design(x, scale, tuple(ordered), len(lines), tuple(regions), mask, background)


@dataclass(frozen=True)
class _Fit:
    params: np.ndarray
    covariance: np.ndarray
    reduced_chi2: float
    shift: float
    #: covariance with the energy offset as one more fitted parameter (None: not fitted)
    covariance_calibrated: np.ndarray | None = None


def _solve(matrix: np.ndarray, y: np.ndarray, var: np.ndarray | None, n_lines: int,
           iterations: int = 3) -> tuple[np.ndarray, np.ndarray, float]:
    """Weighted linear least squares with line areas >= 0 and a free background.

    Channel variances follow the fitted model (Poisson), f * max(model, f), refined by
    iterative re-weighting (``iterations`` passes, starting from the data). f is 1 for
    counts; with a given per-channel variance it is the effective-counts scale
    sum(var) / sum(y), so that a weighted mean spectrum is fitted exactly like the
    summed counts it comes from (channel-wise data variances would over-weight the
    empty channels). Returns parameters, their covariance (X^T W X)^-1 and the reduced chi^2.
    """
    f = _counts_scale(y, var)
    w_var = f * np.maximum(y, f)
    for _ in range(iterations):
        params = _bounded_lstsq(matrix / np.sqrt(w_var)[:, None], y / np.sqrt(w_var), n_lines)
        w_var = f * np.maximum(matrix @ params, f)
    fisher = (matrix / w_var[:, None]).T @ matrix
    cov = np.linalg.pinv(fisher)
    dof = max(y.size - matrix.shape[1], 1)
    chi2 = float(np.sum((y - matrix @ params) ** 2 / w_var) / dof)
    return params, cov, chi2


def _counts_scale(y: np.ndarray, var: np.ndarray | None) -> float:
    """Variance per unit signal: 1 for counts, sum(var)/sum(y) for a given variance."""
    if var is None:
        return 1.0
    total = float(np.sum(np.clip(y, 0, None)))
    return float(np.sum(var)) / total if total > 0 and np.sum(var) > 0 else 1.0


def _bounded_lstsq(a: np.ndarray, b: np.ndarray, n_lines: int) -> np.ndarray:
    """Least squares for ``a @ p ~ b`` with p[:n_lines] >= 0 and the rest free.

    The free (background) columns are projected out with a QR decomposition, the line
    areas solved exactly by NNLS on the projected problem, then the background by
    ordinary least squares on what the lines leave.
    """
    lines, bg = a[:, :n_lines], a[:, n_lines:]
    q, _ = np.linalg.qr(bg)
    lines_p = lines - q @ (q.T @ lines)
    b_p = b - q @ (q.T @ b)
    norm = np.linalg.norm(lines_p, axis=0)
    norm[norm == 0] = 1.0
    area = nnls(lines_p / norm, b_p, maxiter=50 * n_lines)[0] / norm
    coef = np.linalg.lstsq(bg, b - lines @ area, rcond=None)[0]
    return np.r_[area, coef]


def _fit_spectrum(design: _Design, y: np.ndarray, var: np.ndarray | None,
                  calibrate: bool, max_shift: float) -> _Fit:
    """Fit one spectrum (full channel arrays) with the design; optional energy-offset search.

    With ``calibrate`` the offset is a fitted parameter too: its uncertainty enters the
    line areas' covariance through the linearised model (the derivative of the fitted
    model with respect to the offset as one more column of the Fisher matrix), returned
    separately as ``covariance_calibrated``.
    """
    y_fit = y[design.mask]
    v_fit = None if var is None else var[design.mask]
    n = len(design.families)
    shift = 0.0
    if calibrate:
        def cost(delta: float) -> float:
            return _solve(design.matrix(delta), y_fit, v_fit, n, iterations=1)[2]

        shift = float(minimize_scalar(cost, bounds=(-max_shift, max_shift),
                                      method="bounded", options={"xatol": 5e-4}).x)
    matrix = design.matrix(shift)
    params, cov, chi2 = _solve(matrix, y_fit, v_fit, n)
    cov_cal = None
    if calibrate:
        h = max(design.scale * 0.05, 1e-4)
        d_model = (design.matrix(shift + h) - design.matrix(shift - h)) @ params / (2 * h)
        f = _counts_scale(y_fit, v_fit)
        w_var = f * np.maximum(matrix @ params, f)
        aug = np.hstack([matrix, d_model[:, None]])
        cov_cal = np.linalg.pinv((aug / w_var[:, None]).T @ aug)[:-1, :-1]
    return _Fit(params, cov, chi2, shift, cov_cal)


def _model_intensities(spectrum: Any, lines: list[str], variance: np.ndarray | None,
                       extra_elements: Sequence[str], background_order: int,
                       calibrate: bool, max_shift_keV: float,
                       line_model: str = "xraylib") -> LineIntensities:
    design = _make_design(spectrum, lines, extra_elements, background_order, line_model)
    data = _data_2d(spectrum)
    k = design.n_report
    intensity = np.zeros((data.shape[0], k))
    cov = np.zeros((data.shape[0], k, k))
    cov_cal = np.zeros((data.shape[0], k, k))
    chi2 = np.zeros(data.shape[0])
    shift = np.zeros(data.shape[0])
    for i, y in enumerate(data):
        fit = _fit_spectrum(design, y, None if variance is None else variance[i],
                            calibrate, max_shift_keV)
        intensity[i] = fit.params[:k]
        cov[i] = fit.covariance[:k, :k]
        cov_cal[i] = cov[i] if fit.covariance_calibrated is None else (
            fit.covariance_calibrated[:k, :k])
        chi2[i], shift[i] = fit.reduced_chi2, fit.shift
    nav = _nav_shape(spectrum)
    return LineIntensities(
        lines=tuple(lines),
        intensity=intensity.reshape(nav + (k,)),
        covariance=cov.reshape(nav + (k, k)),
        method="model",
        nav_shape=nav,
        details={
            "reduced_chi2": chi2.reshape(nav),
            "energy_shift_keV": shift.reshape(nav),
            "fit_regions_keV": design.regions,
            "modelled_families": tuple(f.name for f in design.families),
            "line_model": line_model,
            "covariance_calibrated": cov_cal.reshape(nav + (k, k)),
        },
    )


# --------------------------------------------------------------------------------------
# window integration
# --------------------------------------------------------------------------------------


def _clamp_background_windows(bw: np.ndarray, e_low: float, e_high: float,
                              scale: float) -> np.ndarray:
    """Keep background windows inside [e_low, e_high].

    A window that lies entirely outside is replaced by the window on the other side of the
    line (so the background is the mean of that one window); a window cut by a limit is
    shortened.
    """
    bw = np.array(bw, dtype=float)
    for row in bw:
        left_ok = row[1] >= e_low + scale
        right_ok = row[2] <= e_high - scale
        if not left_ok and not right_ok:
            raise StemsegValueError(
                f"No room for background windows around {row} keV inside "
                f"{e_low:.3f}-{e_high:.3f} keV; use method='model'."
            )
        row[0], row[3] = max(row[0], e_low), min(row[3], e_high)
        if not left_ok:
            row[0], row[1] = row[2], row[3]
        elif not right_ok:
            row[2], row[3] = row[0], row[1]
    return bw


def _window_sum(var_signal: Any, lo: float, hi: float, ax: Any) -> np.ndarray:
    """Sum of ``var_signal`` over [lo, hi) keV with exspy's slicing; shape (n_spectra,)."""
    if ax.value2index(lo) == ax.value2index(hi):
        part = var_signal.isig[lo]
        return np.asarray(part.data, dtype=float).reshape(-1)
    return np.asarray(var_signal.isig[lo:hi].data, dtype=float).reshape(
        -1, var_signal.isig[lo:hi].data.shape[-1]).sum(axis=-1)


def _window_variances(spectrum: Any, var2d: np.ndarray, iw: np.ndarray,
                      bw: np.ndarray) -> np.ndarray:
    """Variance of exspy's background-subtracted window sums; shape (n_spectra, n_lines).

    var(I) = var(N_window) + f^2 var(B_left + B_right), f = window width / background width,
    with var(B_left + B_right) = 4 var(B) when both windows are the same (clamped) window.
    """
    ax = spectrum.axes_manager.signal_axes[0]
    var_signal = with_data(spectrum, var2d.reshape(np.shape(spectrum.data)))
    out = np.zeros((var2d.shape[0], len(iw)))
    for i, (win, bg) in enumerate(zip(iw, bw)):
        v_win = _window_sum(var_signal, win[0], win[1], ax)
        v_left = _window_sum(var_signal, bg[0], bg[1], ax)
        v_right = _window_sum(var_signal, bg[2], bg[3], ax)
        idx = [float(ax.value2index(e)) for e in list(bg) + list(win)]
        f = (idx[5] - idx[4]) / ((idx[1] - idx[0]) + (idx[3] - idx[2]))
        same = np.allclose(bg[:2], bg[2:])
        v_bg = 4.0 * v_left if same else v_left + v_right
        out[:, i] = v_win + f**2 * v_bg
    return out


def _window_intensities(spectrum: Any, lines: list[str], variance: np.ndarray | None,
                        integration_width: float, background_offset: tuple[float, float],
                        background_width: float) -> LineIntensities:
    x, scale = _energy_axis(spectrum)
    beam = _beam_energy(spectrum) or np.inf
    e_low, e_high = max(MIN_ENERGY_KEV, x[0]), min(x[-1], beam)
    work = with_data(spectrum, np.asarray(spectrum.data, dtype=float))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        iw = np.array(work.estimate_integration_windows(integration_width, xray_lines=lines))
        iw[:, 0] = np.maximum(iw[:, 0], e_low)
        iw[:, 1] = np.minimum(iw[:, 1], e_high)
        bw = work.estimate_background_windows(
            line_width=list(background_offset), windows_width=background_width,
            xray_lines=lines)
        bw = _clamp_background_windows(bw, e_low, e_high, scale)
        signals = work.get_lines_intensity(
            xray_lines=lines, integration_windows=iw.tolist(), background_windows=bw)
    nav = _nav_shape(spectrum)
    n = int(np.prod(nav, dtype=int))
    intensity = np.stack([np.asarray(s.data, dtype=float).reshape(n) for s in signals], -1)
    var2d = _data_2d(spectrum).clip(min=0) if variance is None else variance
    var = _window_variances(work, var2d, iw, bw)
    cov = np.zeros((n, len(lines), len(lines)))
    cov[:, np.arange(len(lines)), np.arange(len(lines))] = var
    return LineIntensities(
        lines=tuple(lines),
        intensity=intensity.reshape(nav + (len(lines),)),
        covariance=cov.reshape(nav + (len(lines), len(lines))),
        method="windows",
        nav_shape=nav,
        details={"windows": iw, "background_windows": bw},
    )


# --------------------------------------------------------------------------------------
# public: line intensities
# --------------------------------------------------------------------------------------


def line_intensities(
    spectrum: Any,
    lines: Sequence[str] | None = None,
    method: str = "model",
    *,
    variance: Any = None,
    extra_elements: Sequence[str] = (),
    background_order: int = 2,
    calibrate: bool = True,
    max_shift_keV: float = 0.03,
    integration_width: float = 2.0,
    background_offset: tuple[float, float] = (2.0, 2.0),
    background_width: float = 1.0,
    line_model: str = "xraylib",
) -> LineIntensities:
    """Net X-ray line intensities (counts) with their counting-statistics covariance.

    Parameters
    ----------
    spectrum : exspy.signals.EDSTEMSpectrum
        One spectrum, or a stack of spectra (any navigation shape, e.g. one mean spectrum
        per cluster). Energy axis in keV. Not modified.
    lines : sequence of str, optional
        X-ray lines, one per element (``"Fe_Ka"``, ``"Ag_La"``). Default: the spectrum's
        ``Sample.xray_lines``, else :func:`stemseg.xray.principal_lines` of its
        ``Sample.elements`` at its beam energy.
    method : {"model", "windows"}
        ``"model"``: line families (exspy's EDS model: Gaussians at exspy's line energies,
        widths from ``energy_resolution_MnKa``, sub-line weights tied to the main line)
        plus a Legendre polynomial background of ``background_order`` on each fit region
        (every line +- 3 FWHM, above 0.2 keV, regions merged where they touch), fitted by
        weighted linear least squares with every line area bounded >= 0 (iteratively
        re-weighted with the Poisson variance of the model). The intensity is the area of
        the main line in counts, as in exspy's ``EDSModel.get_lines_intensity``.
        Overlapping lines (Ag Lb1 / Cd La, Cr Ka / La Lb2, Au M / S K) are separated.
        The other line families (Ka, La, Ma) of the same elements and of
        ``extra_elements`` are fitted too but not reported.
        ``"windows"``: exspy's ``get_lines_intensity`` with integration windows of
        ``integration_width`` FWHM and background windows from
        ``estimate_background_windows``, clamped to >= 0.2 keV (a window entirely below is
        replaced by the window on the other side of the line).
    variance : array_like or hyperspy signal, optional
        Per-channel variance of ``spectrum`` (counts^2, broadcastable to its shape), e.g.
        ``sum(w^2 * counts) / sum(w)^2`` for a weighted mean spectrum. Default:
        ``metadata.Signal.Noise_properties.variance`` if set, else Poisson (the counts for
        windows, the fitted model for the model).
    extra_elements : sequence of str
        Elements present in the spectrum but not quantified (e.g. ``"Cu"`` of the grid,
        ``"C"`` of the support); their lines are fitted so they do not bias the others.
    background_order : int
        Degree of the local background polynomials (model).
    calibrate : bool
        Model only: fit a common energy offset of all lines (within +-``max_shift_keV``)
        before the final fit, which corrects small calibration errors of real spectra.
    max_shift_keV : float
        Largest energy offset searched, keV.
    integration_width, background_offset, background_width : float
        Windows only: integration window width, distance of the background windows from
        the line and their width, all in units of the line's FWHM (exspy's parameters).
    line_model : {"xraylib", "exspy"}
        Model only: the shape of each line family. ``"xraylib"`` (default): every
        transition at its own energy with xraylib's radiative rates (Ka1 and Ka2, La1 and
        La2 apart; Pb Mb / Ma 0.52). ``"exspy"``: exspy's families, one Gaussian per exspy
        line (Ka1 + Ka2 at the Ka1 energy, which biases Mo Ka and Pb La areas by -4 to -7 %,
        and exspy's sub-line weights, e.g. Pb Mb / Ma 0.64). The intensity is the main
        line's either way (Ka = Ka1 + Ka2, La = La1 + La2, Ma = Ma1 + Ma2).

    Returns
    -------
    LineIntensities
        ``intensity`` (nav_shape + (n_lines,), counts), ``covariance``
        (nav_shape + (n_lines, n_lines)), ``variance``, ``sigma``, ``to_signals()``.

    Raises
    ------
    StemsegValueError
        Not an EDS spectrum, unknown element or line, line outside the energy axis or
        below 0.2 keV, spectrum with zero counts or NaN, unknown method.

    Notes
    -----
    Variance of a model intensity: the diagonal of the fit covariance (X^T W X)^-1 with
    W = 1 / variance per channel, which includes the background and the overlap with
    neighbouring lines (it is larger than the gross counts under an isolated line only by
    the background uncertainty). For a line bounded at zero it is the unconstrained value.
    The channel variance is the fitted model's (Poisson, 1 count at least); a given
    ``variance`` enters through its effective-counts scale sum(variance) / sum(counts)
    over the fitted channels, exact for a weighted mean of spectra of one phase.
    Variance of a window intensity: counts (or given variance) in the integration window
    plus (window width / background width)^2 times those in the background windows.
    """
    spectrum = _check_spectrum(spectrum)
    if method not in ("model", "windows"):
        raise StemsegValueError(f"method must be 'model' or 'windows', got {method!r}.")
    if line_model not in LINE_MODELS:
        raise StemsegValueError(
            f"line_model must be one of {LINE_MODELS}, got {line_model!r}.")
    if int(background_order) != background_order or background_order < 0:
        raise StemsegValueError(
            f"background_order must be an integer >= 0, got {background_order!r}.")
    lines = _resolve_lines(spectrum, lines)
    _check_counts(_data_2d(spectrum))
    var = _variance_2d(spectrum, variance)
    if method == "model":
        return _model_intensities(spectrum, lines, var, extra_elements,
                                  int(background_order), calibrate, float(max_shift_keV),
                                  line_model)
    return _window_intensities(spectrum, lines, var, float(integration_width),
                               tuple(background_offset), float(background_width))


def model_components(
    spectrum: Any,
    lines: Sequence[str] | None = None,
    *,
    variance: Any = None,
    extra_elements: Sequence[str] = (),
    background_order: int = 2,
    calibrate: bool = True,
    max_shift_keV: float = 0.03,
    line_model: str = "xraylib",
) -> pd.DataFrame:
    """The fitted model of one spectrum, split into its line families and background.

    The same fit as ``line_intensities(..., method="model")`` (same parameters), returned
    channel by channel so that overlapping families can be drawn: e.g. the Ag L family,
    whose Ag Lb1 line lies 17 eV from Cd La, next to the Cd L family.

    Parameters
    ----------
    spectrum : exspy.signals.EDSTEMSpectrum
        One spectrum (navigation size 1), energy axis in keV.
    lines, variance, extra_elements, background_order, calibrate, max_shift_keV, line_model
        As in :func:`line_intensities`.

    Returns
    -------
    pandas.DataFrame
        Index ``energy_keV`` (the channels inside the fit regions, keV; the fitted energy
        offset is already applied to the lines); columns ``counts`` (the spectrum),
        ``background``, ``model`` (background + every family) and one column per modelled
        family, named by its main line (``"Ag_La"``: Ag La, Ag Lb1, ... together), in
        counts per channel. ``attrs``: ``lines`` (the quantified lines, first columns after
        ``model``), ``energy_shift_keV``, ``fit_regions_keV``.

    Raises
    ------
    StemsegValueError
        More than one spectrum, or what :func:`line_intensities` refuses.
    """
    spectrum = _check_spectrum(spectrum)
    if int(np.prod(_nav_shape(spectrum), dtype=int)) != 1:
        raise StemsegValueError(
            f"model_components draws one spectrum; got navigation shape "
            f"{_nav_shape(spectrum)}. Pick one, e.g. seg.mean_spectra.inav[2].")
    if line_model not in LINE_MODELS:
        raise StemsegValueError(
            f"line_model must be one of {LINE_MODELS}, got {line_model!r}.")
    lines = _resolve_lines(spectrum, lines)
    y = _data_2d(spectrum)[0]
    _check_counts(y[None, :])
    var = _variance_2d(spectrum, variance)
    design = _make_design(spectrum, lines, extra_elements, int(background_order), line_model)
    fit = _fit_spectrum(design, y, None if var is None else var[0], calibrate,
                        float(max_shift_keV))
    n = len(design.families)
    columns = _family_columns(design.x[design.mask], design.scale, design.families,
                              fit.shift) * fit.params[:n]
    background = design.background @ fit.params[n:]
    out = pd.DataFrame(columns, columns=[f.name for f in design.families],
                       index=pd.Index(design.x[design.mask], name="energy_keV"))
    out.insert(0, "model", background + columns.sum(axis=1))
    out.insert(0, "background", background)
    out.insert(0, "counts", y[design.mask])
    out.attrs.update(lines=tuple(lines), energy_shift_keV=fit.shift,
                     fit_regions_keV=design.regions)
    return out


# --------------------------------------------------------------------------------------
# quantification
# --------------------------------------------------------------------------------------


@dataclass
class _Input:
    """What quantify works on: the spectra and, for bootstrap, the pixels behind them."""

    spectra: Any  # EDS signal, nav = clusters
    variance: np.ndarray | None  # (n_clusters, n_channels)
    pixels: np.ndarray | None = None  # (n_pixels, n_channels)
    weights: np.ndarray | None = None  # (n_pixels, n_clusters)
    clusters: list[Any] = field(default_factory=list)


def _as_weights(weights: Any, n_pixels: int) -> np.ndarray:
    w = np.asarray(weights, dtype=float)
    if w.ndim == 1:
        w = w[:, None]
    if w.ndim != 2 or w.shape[0] != n_pixels:
        raise StemsegValueError(
            f"weights must have shape (n_pixels, n_clusters) = ({n_pixels}, k); got "
            f"{np.shape(weights)}. Flatten the map's (y, x) in NumPy order."
        )
    if not np.all(np.isfinite(w)) or np.any(w < 0):
        raise StemsegValueError("weights must be finite and >= 0.")
    empty = np.flatnonzero(w.sum(axis=0) == 0)
    if empty.size:
        raise StemsegValueError(
            f"Cluster(s) {empty.tolist()} have zero total weight; drop those columns."
        )
    return w


def _weighted_means(pixels: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Weighted mean spectra and their variance sum(w^2 c)/sum(w)^2; (k, n_channels) each,
    from the package's one weighted-sum pass (:func:`stemseg._blocks.weighted_sums`)."""
    from ._blocks import weighted_sums

    total = w.sum(axis=0)[:, None]
    num, num2 = weighted_sums(pixels, w)
    if (pixels < 0).any():   # a negative pixel (e.g. background-subtracted) adds no variance
        num2 = weighted_sums(np.clip(pixels, 0, None), w)[1]
    return num / total, num2 / total**2


def _stack_like(template: Any, data: np.ndarray) -> Any:
    """An EDS signal with the template's energy axis and metadata and nav = rows of data."""
    import hyperspy.api as hs

    sig = hs.signals.Signal1D(np.asarray(data, dtype=float))
    sig.axes_manager.signal_axes[0].update_from(
        template.axes_manager.signal_axes[0], attributes=["scale", "offset", "units", "name"])
    sig.axes_manager.signal_axes[0].is_binned = True
    sig.metadata.add_dictionary(template.metadata.as_dictionary())
    if sig.metadata.has_item("Signal.Noise_properties"):
        del sig.metadata.Signal.Noise_properties  # belongs to the template's data
    sig.metadata.General.title = "cluster mean spectra"
    sig.set_signal_type(_signal_type(template) or "EDS_TEM")
    sig.axes_manager.navigation_axes[0].name = "cluster"
    return sig


def _pixel_array(obj: Any) -> np.ndarray:
    data = obj.data if hasattr(obj, "data") else obj
    data = np.asarray(data, dtype=np.float32)
    return data.reshape(-1, data.shape[-1])


def _segmentation_pixels(obj: Any, weights: Any, spectra: Any
                         ) -> tuple[np.ndarray | None, np.ndarray | None]:
    """Pixel spectra (n_pixels, n_channels) and weights (n_pixels, n_clusters) of a
    Segmentation-like object, or (None, None) when it has none that match its mean spectra."""
    if weights is None and hasattr(obj, "spectrum_pixels"):
        counts, w = obj.spectrum_pixels   # the pixels and weights behind its mean spectra
    else:
        w = weights if weights is not None else getattr(obj, "weights", None)
        counts = getattr(obj, "counts", None)
    if counts is None:
        counts = getattr(obj, "eds", None)
    if counts is None or w is None:
        return None, None
    pixels = _pixel_array(counts)
    n_clusters = int(np.prod(_nav_shape(spectra), dtype=int))
    w_shape = np.shape(w)
    if (len(w_shape) != 2 or w_shape[0] != pixels.shape[0] or w_shape[1] != n_clusters
            or pixels.shape[1] != spectra.axes_manager.signal_axes[0].size):
        warnings.warn(
            f"The segmentation's weights {w_shape} and pixel spectra {pixels.shape} do not "
            f"match its {n_clusters} mean spectra; sigma assumes Poisson counts and "
            "bootstrap is unavailable.", UserWarning, stacklevel=4)
        return None, None
    return pixels, _as_weights(w, pixels.shape[0])


def _unpack(obj: Any, weights: Any, need_pixels: bool = True) -> _Input:
    """Normalise the accepted inputs (spectrum, stack, spectrum image + weights, Segmentation).

    A Segmentation's pixels are read only when ``need_pixels`` (bootstrap) or when it has no
    ``mean_variance``: its stored variance is the same sum(w^2 counts) / sum(w)^2, and
    reading the pixels would load a lazy map's whole cube into memory.
    """
    if hasattr(obj, "mean_spectra"):
        spectra = _check_spectrum(obj.mean_spectra)
        n = int(np.prod(_nav_shape(spectra), dtype=int))
        clusters = list(getattr(obj, "cluster_ids", range(n)))
        if (weights is None and not need_pixels
                and getattr(obj, "mean_variance", None) is not None):
            return _Input(spectra, _variance_2d(spectra, obj.mean_variance), clusters=clusters)
        pixels, w = _segmentation_pixels(obj, weights, spectra)
        var = None if pixels is None else _weighted_means(pixels, w)[1]
        if var is None and getattr(obj, "mean_variance", None) is not None:
            var = _variance_2d(spectra, obj.mean_variance)
        return _Input(spectra, var, pixels, w, clusters)
    spectra = _check_spectrum(obj)
    if weights is None:
        n = int(np.prod(_nav_shape(spectra), dtype=int))
        return _Input(spectra, None, clusters=list(range(n)))
    pixels = _pixel_array(spectra)
    w = _as_weights(weights, pixels.shape[0])
    mean, var = _weighted_means(pixels, w)
    return _Input(_stack_like(spectra, mean), var, pixels, w, list(range(w.shape[1])))


def _check_has_clusters(obj: Any) -> None:
    """Refuse a Segmentation with no cluster (HDBSCAN can label every pixel noise)."""
    n = getattr(obj, "n_clusters", None)
    if hasattr(obj, "mean_spectra") and n == 0:
        noise = getattr(obj, "noise_fraction", None)
        share = "" if noise is None else f" ({100 * noise:.1f} % of the pixels are noise)"
        raise StemsegValueError(
            f"The segmentation has no cluster{share}, so there is no spectrum to quantify. "
            "Ask for smaller clusters (a lower min_cluster_size), bin more so that each "
            "pixel has more counts, or use workflows.gmm, which assigns every pixel.")


def _drop_empty_clusters(inp: _Input, obj: Any) -> tuple[_Input, np.ndarray | None]:
    """A Segmentation's clusters whose mean spectrum is empty are left out, with a warning.

    A cluster of the binned labels can end up with no original pixel in ``labels_full``
    (its binned pixels all predicted elsewhere), so it has no spectrum to quantify. Returns
    the input without them and the kept positions (None when nothing was dropped). Spectra
    given directly are not filtered: an empty one is an error of the input.
    """
    if not hasattr(obj, "mean_spectra"):
        return inp, None
    data = _data_2d(inp.spectra)
    empty = ~(np.abs(data).sum(axis=1) > 0)
    if not empty.any() or empty.all():
        return inp, None
    keep = np.flatnonzero(~empty)
    dropped = [inp.clusters[i] for i in np.flatnonzero(empty)]
    warnings.warn(
        f"Cluster(s) {dropped} have no pixel at full resolution (labels_full), so no "
        "spectrum: they are left out of the table. Their binned pixels went to other "
        "clusters; a smaller min_cluster_size or fewer clusters avoids such clusters.",
        UserWarning, stacklevel=3)
    out = _Input(
        _stack_like(inp.spectra, data[keep]),
        None if inp.variance is None else inp.variance[keep],
        inp.pixels,
        None if inp.weights is None else inp.weights[:, keep],
        [inp.clusters[i] for i in keep],
    )
    return out, keep


def _kfactor_vector(spectrum: Any, lines: list[str], kfactors: Any,
                    beam_energy_kV: float | None, detector: Any) -> np.ndarray:
    """k-factors in line order (exspy weight-fraction convention)."""
    if kfactors is None:
        beam = beam_energy_kV if beam_energy_kV is not None else _beam_energy(spectrum)
        if beam is None:
            raise StemsegValueError(
                "The beam energy is needed for theoretical k-factors but the spectrum has "
                "none. Pass beam_energy_kV=200 (your microscope's kV), set "
                "metadata.Acquisition_instrument.TEM.beam_energy, or give kfactors=."
            )
        from . import xray

        kw = {} if detector is None else {"detector": detector}
        k = xray.kfactors(lines, float(beam), **kw)
    else:
        if not isinstance(kfactors, Mapping):
            seq = list(kfactors)
            if len(seq) != len(lines):
                raise StemsegValueError(
                    f"kfactors has {len(seq)} values for {len(lines)} lines {lines}; give a "
                    "dict line -> k-factor covering every line."
                )
            kfactors = dict(zip(lines, seq))
        from . import xray

        k = xray.check_kfactors(dict(kfactors), lines)
    vec = np.array([float(k[ln]) for ln in lines])
    if not np.all(np.isfinite(vec)) or np.any(vec <= 0):
        raise StemsegValueError(f"k-factors must be finite and > 0; got {dict(zip(lines, vec))}.")
    return vec


def _cliff_lorimer(spectra: Any, intensity: np.ndarray, lines: list[str], kvec: np.ndarray,
                   absorption_correction: bool, thickness_nm: float | None) -> np.ndarray:
    """Cliff-Lorimer; intensity (n, n_lines) counts -> atomic fractions (n, n_lines).

    With the absorption correction, exspy's ``quantification(method="CL")`` (iterative).
    Without it, the closed form of :func:`_cliff_lorimer_plain`, which gives exspy's numbers
    (tested) at a fraction of the cost: exspy builds HyperSpy signals per line and per
    conversion, ~1.5 s of a 2 s ``quantify`` call.
    """
    if not absorption_correction:
        return _cliff_lorimer_plain(intensity, lines, kvec)
    n = intensity.shape[0]
    rows = intensity.sum(axis=1, keepdims=True)
    scaled = intensity * (_CL_SCALE / rows)  # CL is scale-free; exspy drops values < 0.1
    li = LineIntensities(tuple(lines), scaled, np.zeros((n, len(lines), len(lines))), "cl", (n,))
    template = _stack_like(spectra, np.zeros((n, 2)))
    kwargs: dict[str, Any] = {"navigation_mask": None, "composition_units": "atomic"}
    if absorption_correction:
        kwargs.update(absorption_correction=True, thickness=float(thickness_nm))
    with warnings.catch_warnings(), _no_progressbar():
        warnings.simplefilter("ignore")
        result = template.quantification(li.to_signals(), method="CL", factors=list(kvec),
                                         show_progressbar=False, **kwargs)
    comp = result[0] if absorption_correction else result
    return np.stack([np.asarray(c.data, dtype=float).reshape(n) for c in comp], -1) / 100.0


def _cliff_lorimer_plain(intensity: np.ndarray, lines: list[str], kvec: np.ndarray
                         ) -> np.ndarray:
    """Cliff-Lorimer without absorption in closed form: weight fractions ~ k_i I_i, atomic
    fractions ~ k_i I_i / A_i, normalised (Cliff & Lorimer 1975). The same numbers as exspy's
    ``method="CL"`` (tested), without building a signal per line."""
    kp = kvec / _atomic_weights(lines)
    num = np.clip(intensity, 0, None) * kp[None, :]
    total = num.sum(axis=1, keepdims=True)
    return np.divide(num, total, out=np.zeros_like(num), where=total > 0)


def _atomic_weights(lines: Sequence[str]) -> np.ndarray:
    from exspy.material import elements as db

    return np.array([db[_split_line(ln)[0]].General_properties.atomic_weight for ln in lines])


def _cl_sigma(x: np.ndarray, intensity: np.ndarray, cov: np.ndarray, kvec: np.ndarray,
              weights_amu: np.ndarray) -> np.ndarray:
    """Standard error of atomic fractions x = k''_i I_i / sum_j k''_j I_j.

    k''_i = x_i / I_i is read from exspy's result (so any absorption correction is kept as
    a fixed factor); for lines with zero intensity k'' = k_i / A_i times the median ratio.
    The Jacobian dx_i/dI_j = k''_j (delta_ij - x_i) / S is applied to the intensity
    covariance: cov_x = J cov_I J^T. Shapes (n, n_lines), cov (n, n_lines, n_lines).
    """
    out = np.zeros_like(x)
    k_plain = kvec / weights_amu
    for i in range(x.shape[0]):
        pos = intensity[i] > 0
        keff = k_plain.copy()
        ratio = x[i, pos] / intensity[i, pos] / k_plain[pos]
        keff *= np.median(ratio) if ratio.size else 1.0
        keff[pos] = x[i, pos] / intensity[i, pos]
        s = float(np.sum(keff * intensity[i]))
        jac = (keff[None, :] * (np.eye(x.shape[1]) - x[i][:, None])) / s
        out[i] = np.sqrt(np.clip(np.diag(jac @ cov[i] @ jac.T), 0, None))
    return out


def _composition(spectra: Any, li: LineIntensities, kvec: np.ndarray,
                 absorption_correction: bool, thickness_nm: float | None,
                 clusters: Sequence[Any]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Atomic fractions, their sigma and the (clipped) intensities; each (n, n_lines)."""
    k = len(li.lines)
    intensity = li.intensity.reshape(-1, k)
    negative = intensity < 0
    if negative.any():
        bad = sorted({li.lines[j] for j in np.nonzero(negative)[1]})
        warnings.warn(
            f"Negative net intensity for {bad} (window background above the line); set "
            "to zero for Cliff-Lorimer. method='model' bounds intensities at zero.",
            UserWarning, stacklevel=3)
        intensity = np.clip(intensity, 0, None)
    zero = np.flatnonzero(intensity.sum(axis=1) <= 0)
    if zero.size:
        names = [clusters[i] for i in zero]
        raise StemsegValueError(
            f"Cluster(s)/spectra {names[:10]} have zero intensity in every line {list(li.lines)}; "
            "they cannot be quantified. Check the elements and the energy axis, or drop them."
        )
    x = _cliff_lorimer(spectra, intensity, list(li.lines), kvec, absorption_correction,
                       thickness_nm)
    sigma = _cl_sigma(x, intensity, li.covariance.reshape(-1, k, k), kvec,
                      _atomic_weights(li.lines))
    return x, sigma, intensity


def _calibration_budget(x: np.ndarray, sigma: np.ndarray, intensity: np.ndarray,
                        li: LineIntensities, kvec: np.ndarray) -> np.ndarray:
    """sigma_calibration: what the fitted energy offset adds to the counting sigma.

    sqrt(sigma_cal^2 - sigma^2), sigma_cal from the line covariance with the offset as a
    fitted parameter (see :func:`_fit_spectrum`); 0 without calibration or for windows.
    """
    cov_cal = li.details.get("covariance_calibrated") if li.details else None
    if cov_cal is None:
        return np.zeros_like(x)
    k = len(li.lines)
    s_cal = _cl_sigma(x, intensity, np.asarray(cov_cal).reshape(-1, k, k), kvec,
                      _atomic_weights(li.lines))
    return np.sqrt(np.clip(s_cal**2 - sigma**2, 0, None))


def _bootstrap(inp: _Input, lines: list[str], kvec: np.ndarray, n_boot: int,
               random_state: Any, li_kwargs: dict[str, Any], absorption: bool,
               thickness: float | None) -> np.ndarray:
    """Standard deviation over bootstrap resamples of the pixels; shape (n_clusters, n_lines)."""
    rng = np.random.default_rng(random_state)
    n_pix = inp.pixels.shape[0]
    results = []
    for _ in range(n_boot):
        counts = rng.multinomial(n_pix, np.full(n_pix, 1.0 / n_pix)).astype(float)
        w = inp.weights * counts[:, None]
        keep = w.sum(axis=0) > 0
        mean = np.zeros((w.shape[1], inp.pixels.shape[1]))
        mean[keep], _ = _weighted_means(inp.pixels, w[:, keep])
        if not keep.all() or np.any(mean.sum(axis=1) == 0):
            continue
        stack = _stack_like(inp.spectra, mean)
        li = line_intensities(stack, lines, **li_kwargs)
        intensity = np.clip(li.intensity.reshape(-1, len(lines)), 0, None)
        if np.any(intensity.sum(axis=1) <= 0):
            continue
        results.append(_cliff_lorimer(stack, intensity, lines, kvec, absorption, thickness))
    if len(results) < 2:
        raise StemsegValueError(
            "Bootstrap failed: fewer than 2 resamples could be quantified; use more pixels "
            "or bootstrap=0."
        )
    return np.std(np.array(results), axis=0, ddof=1)


def _check_quantify_args(spectra: Any, method: str, absorption_correction: bool,
                         thickness_nm: float | None, bootstrap: int) -> None:
    if _signal_type(spectra) == "EDS_SEM":
        raise StemsegValueError(
            "SEM spectra (signal_type 'EDS_SEM') cannot be quantified with Cliff-Lorimer: "
            "its thin-film intensity ratios do not hold for bulk samples, where absorption "
            "and fluorescence need a ZAF or phi-rho-z correction. Use a TEM thin-film "
            "spectrum (EDS_TEM) or an SEM quantification program."
        )
    if method not in ("model", "windows"):
        raise StemsegValueError(f"method must be 'model' or 'windows', got {method!r}.")
    if absorption_correction and (thickness_nm is None or not thickness_nm > 0):
        raise StemsegValueError(
            "absorption_correction=True needs the specimen thickness: pass thickness_nm= "
            f"(> 0, in nm); got {thickness_nm!r}."
        )
    if int(bootstrap) != bootstrap or bootstrap < 0:
        raise StemsegValueError(f"bootstrap must be an integer >= 0, got {bootstrap!r}.")


def quantify(
    obj: Any,
    kfactors: Mapping[str, float] | Sequence[float] | None = None,
    *,
    lines: Sequence[str] | None = None,
    method: str = "model",
    beam_energy_kV: float | None = None,
    detector: Any = None,
    absorption_correction: bool = False,
    thickness_nm: float | None = None,
    weights: Any = None,
    variance: Any = None,
    bootstrap: int = 0,
    random_state: Any = None,
    kfactor_sigma: Mapping[str, float] | float | None = None,
    mixing_check: bool = True,
    **line_kwargs: Any,
) -> pd.DataFrame:
    """Cliff-Lorimer composition (at. %) with an uncertainty budget.

    Parameters
    ----------
    obj : EDSTEMSpectrum or Segmentation-like
        * one spectrum, or a stack of spectra (each navigation index is a "cluster");
        * a spectrum image together with ``weights`` (n_pixels, n_clusters): the clusters'
          weighted mean spectra are formed here;
        * an object with ``.mean_spectra`` (a :class:`stemseg.Segmentation`); its
          ``.weights`` (n_pixels, n_clusters) and ``.counts`` (pixel spectra, signal or
          array (..., n_channels)) give the variance and the bootstrap when present, else
          ``.mean_variance`` or the mean spectra's ``Noise_properties.variance``.
    kfactors : dict of str to float or sequence of float, optional
        Cliff-Lorimer k-factors in exspy's weight-fraction convention, one per line (a
        sequence is taken in line order). Checked by :func:`stemseg.xray.check_kfactors`
        and never mixed with theoretical values. Default: theoretical
        :func:`stemseg.xray.kfactors` at the beam energy.
    lines : sequence of str, optional
        One X-ray line per element; see :func:`line_intensities`.
    method : {"model", "windows"}
        Intensity extraction; see :func:`line_intensities`.
    beam_energy_kV : float, optional
        Overrides ``metadata.Acquisition_instrument.TEM.beam_energy`` for the k-factors.
    detector : str or stemseg.xray detector, optional
        Detector for theoretical k-factors (default: xray's Super-X-like preset).
    absorption_correction : bool
        Thin-film absorption correction of exspy (iterative), needs ``thickness_nm``.
    thickness_nm : float, optional
        Specimen thickness in nm, for the absorption correction.
    weights : array_like, shape (n_pixels, n_clusters), optional
        Soft memberships when ``obj`` is a spectrum image.
    variance : array_like, optional
        Per-channel variance of the spectra (counts^2); default Poisson or from weights.
    bootstrap : int
        Number of bootstrap resamples of the pixels (needs pixel spectra and weights);
        adds the column ``sigma_bootstrap``.
    random_state : int or numpy.random.Generator, optional
        Seed of the bootstrap.
    kfactor_sigma : dict of str to float or float, optional
        Relative uncertainty (1 s.d.) of each k-factor (one value for all lines, or a dict
        line -> value). Default: for theoretical k-factors the stated per-series values of
        :func:`stemseg.xray.kfactor_relative_sigma`; for k-factors you give, 0 (give yours).
    mixing_check : bool
        For a Segmentation whose mean spectra come from its original pixels
        (``spectra_from="full"``, the default), quantify each cluster's *core* pixels too
        (those whose 3 x 3 neighbourhood lies in the same cluster) and compare
        (see Notes). Default True.
    **line_kwargs
        Passed to :func:`line_intensities` (``extra_elements``, ``calibrate``, ...).

    Returns
    -------
    pandas.DataFrame
        Tidy, one row per cluster x element: ``cluster``, ``element``, ``line``,
        ``at_pct`` (atomic %, sums to 100 per cluster), ``sigma`` (at. %, 1 s.d. of the
        counting error propagated through the intensities and Cliff-Lorimer),
        ``intensity`` and ``intensity_sigma`` (counts), the budget ``sigma_calibration``,
        ``sigma_kfactor``, ``sigma_mixing`` and ``sigma_total`` (at. %, 1 s.d., see
        Notes), and with the
        mixing check ``at_pct_core``, ``sigma_core``, ``n_core`` (core pixels) and
        ``mixing_flag``; ``sigma_bootstrap`` when requested. ``attrs`` holds the method,
        lines, k-factors (``kfactors``, ``kfactor_source``), their relative sigmas and
        the beam energy (``beam_energy_kV``).

    Raises
    ------
    StemsegValueError
        SEM spectrum; no beam energy and no k-factors; incomplete k-factors; unknown element
        or line; line outside the energy axis; zero counts or zero intensity in every line;
        a Segmentation without any cluster (every pixel noise).

    Notes
    -----
    Sigma: for atomic fractions x_i = k'_i I_i / sum_j k'_j I_j (k'_i = k_i / A_i), the
    Jacobian dx_i/dI_j = k'_j (delta_ij - x_i) / sum_l k'_l I_l is applied to the
    intensity covariance of :func:`line_intensities`; k-factor errors are not included.
    For a weighted mean spectrum the channel variance is sum(w^2 counts) / sum(w)^2.
    If the spectra are not raw counts (e.g. means) and no variance is given, sigma is
    wrong: pass ``variance`` or the pixels and weights.

    Uncertainty budget (each in at. %, 1 s.d.; ``sigma_total`` adds them in quadrature):

    * ``sigma`` -- counting (Poisson) noise, as above, at the fitted energy offset;
    * ``sigma_calibration`` -- what fitting the energy offset (``calibrate=True``, the
      default of the model) adds: the offset is one more parameter of the linearised fit,
      so its uncertainty and its correlation with overlapping line areas enter the areas'
      covariance; sqrt(sigma_with_offset^2 - sigma^2). Under overlaps (S Ka / Pb Ma /
      Mo La) it is comparable to the counting sigma; 0 for windows or ``calibrate=False``;
    * ``sigma_kfactor`` -- the k-factors' relative uncertainties r_j propagated through
      x_i = k'_i I_i / sum_j k'_j I_j: var_i = sum_j (x_i (delta_ij - x_j) r_j)^2;
    * ``sigma_mixing`` -- pixels of other phases in the cluster's spectrum. The core pixels'
      composition x_core is compared with all pixels' x; under counting noise alone their
      difference has variance sigma_core^2 - sigma^2 (nested means), so
      ``sigma_mixing = sqrt(max(d^2 - (sigma_core^2 - sigma^2), 0))`` with d = x - x_core,
      and ``mixing_flag`` is True where ``|d|`` exceeds twice sqrt(sigma_core^2 - sigma^2).
      0 when the check does not apply (no original pixels, or no core pixel).

    Not in the budget: the detector width (fixed at the metadata's Mn Ka FWHM), and the line
    model's own error (xraylib's energies and rates against the specimen's).
    """
    _check_has_clusters(obj)
    inp = _unpack(obj, weights, need_pixels=bool(bootstrap))
    all_clusters = list(inp.clusters)
    inp, keep = _drop_empty_clusters(inp, obj)
    spectra = inp.spectra
    _check_quantify_args(spectra, method, absorption_correction, thickness_nm, bootstrap)
    lines = _resolve_lines(spectra, lines, one_per_element=True)
    if len(lines) < 2:
        raise StemsegValueError(
            f"Cliff-Lorimer needs at least two elements; got lines={lines}. Add the other "
            "elements of the specimen (e.g. lines=['Fe_Ka', 'S_Ka'])."
        )
    kvec = _kfactor_vector(spectra, lines, kfactors, beam_energy_kV, detector)
    var = variance if variance is not None else inp.variance
    if var is None and spectra.metadata.get_item("Signal.Noise_properties.variance") is None:
        data = _data_2d(spectra)
        if not np.allclose(data, np.round(data)):
            warnings.warn(
                "The spectra are not integer counts and no variance was given: sigma assumes "
                "they are Poisson counts. Pass variance= (or the pixels and weights).",
                UserWarning, stacklevel=2)
    li_kwargs = dict(method=method, **line_kwargs)
    li = line_intensities(spectra, lines, variance=var, **li_kwargs)
    x, sigma, intensity = _composition(spectra, li, kvec, absorption_correction,
                                       thickness_nm, inp.clusters)
    boot = None
    if bootstrap:
        if inp.pixels is None:
            raise StemsegValueError(
                "bootstrap needs the pixel spectra and weights: pass a spectrum image with "
                "weights=, or a Segmentation with .weights and .counts."
            )
        boot = _bootstrap(inp, lines, kvec, int(bootstrap), random_state, li_kwargs,
                          absorption_correction, thickness_nm)
    rel_k = _kfactor_sigmas(lines, kfactors, kfactor_sigma)
    budget = {"sigma_calibration": _calibration_budget(x, sigma, intensity, li, kvec),
              "sigma_kfactor": _kfactor_budget(x, rel_k)}
    core = None
    if mixing_check and weights is None:
        core = _core_composition(obj, spectra, lines, kvec, li_kwargs,
                                 absorption_correction, thickness_nm, all_clusters)
        if core is not None and keep is not None:
            core = tuple(a[keep] for a in core)
    budget.update(_mixing_budget(x, sigma, core))
    df = _table(inp.clusters, lines, x, sigma, intensity, li, boot, kvec, method, budget)
    df.attrs["kfactor_relative_sigma"] = dict(zip(lines, rel_k.tolist()))
    beam = beam_energy_kV if beam_energy_kV is not None else _beam_energy(spectra)
    df.attrs["beam_energy_kV"] = None if beam is None else float(beam)
    df.attrs["kfactor_source"] = (
        "given by the user" if kfactors is not None else
        f"theoretical (stemseg.xray.kfactors: Bote-Salvat cross-sections, "
        f"{'default' if detector is None else 'given'} detector, "
        f"{'?' if beam is None else f'{float(beam):g}'} kV)")
    return df


def _kfactor_sigmas(lines: list[str], kfactors: Any, kfactor_sigma: Any) -> np.ndarray:
    """Relative k-factor uncertainty per line (see :func:`quantify`)."""
    from . import xray

    if kfactor_sigma is None:
        if kfactors is not None:
            return np.zeros(len(lines))
        return np.array([xray.kfactor_relative_sigma(ln) for ln in lines])
    if isinstance(kfactor_sigma, Mapping):
        missing = [ln for ln in lines if ln not in kfactor_sigma]
        if missing:
            raise StemsegValueError(
                f"kfactor_sigma has no value for {missing}; give one per line {lines} or a "
                "single relative uncertainty for all.")
        rel = np.array([float(kfactor_sigma[ln]) for ln in lines])
    else:
        rel = np.full(len(lines), float(kfactor_sigma))
    if not np.all(np.isfinite(rel)) or np.any(rel < 0) or np.any(rel >= 1):
        raise StemsegValueError(
            f"kfactor_sigma must be relative uncertainties in [0, 1), e.g. 0.05; got {rel}.")
    return rel


def _kfactor_budget(x: np.ndarray, rel: np.ndarray) -> np.ndarray:
    """sigma of x (fractions, (n, n_lines)) from relative k-factor errors ``rel``."""
    eye = np.eye(x.shape[1])
    jac = x[:, :, None] * (eye[None] - x[:, None, :])        # d x_i / d ln k_j
    return np.sqrt(np.einsum("nij,j->ni", jac**2, rel**2))


def core_labels(labels: np.ndarray) -> np.ndarray:
    """Labels of the pixels whose 3 x 3 neighbourhood lies in their own cluster; else -1.

    Pixels at the map's edge count their missing neighbours as their own cluster.

    Parameters
    ----------
    labels : numpy.ndarray of int, shape (rows, columns)
        -1 = noise or masked (never core, and a pixel next to one is not core).

    Returns
    -------
    numpy.ndarray of int, same shape

    Examples
    --------
    >>> lab = np.zeros((5, 5), int); lab[:, 3:] = 1
    >>> core_labels(lab)[2].tolist()
    [0, 0, -1, -1, 1]
    """
    from scipy import ndimage

    lab = np.asarray(labels)
    if lab.ndim != 2:
        raise StemsegValueError(f"labels must be a 2-D map (rows, columns); got {lab.shape}.")
    out = np.full(lab.shape, -1, dtype=int)
    for c in np.unique(lab[lab >= 0]):
        inner = ndimage.binary_erosion(lab == c, structure=np.ones((3, 3), bool),
                                       border_value=1)
        out[inner] = c
    return out


def _core_composition(obj: Any, spectra: Any, lines: list[str], kvec: np.ndarray,
                      li_kwargs: dict[str, Any], absorption: bool,
                      thickness: float | None, clusters: Sequence[Any]
                      ) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """(x_core, sigma_core, n_core) of a Segmentation's core pixels, or None."""
    counts = getattr(obj, "spectrum_counts", None)
    labels_full = getattr(obj, "labels_full", None)
    if counts is None or labels_full is None:
        return None
    from ._blocks import label_sums

    n_cl = len(clusters)
    core = core_labels(labels_full)
    n_core = np.bincount(core[core >= 0].ravel(), minlength=n_cl)[:n_cl]
    sums = label_sums(counts, core, n_cl)
    x = np.full((n_cl, len(lines)), np.nan)
    sig = np.full((n_cl, len(lines)), np.nan)
    ok = np.flatnonzero(n_core > 0)
    if ok.size == 0:
        return x, sig, n_core
    mean = sums[ok] / n_core[ok, None]
    stack = _stack_like(spectra, mean)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")   # warnings were given for the full clusters
        li = line_intensities(stack, lines, variance=sums[ok] / n_core[ok, None] ** 2,
                              **li_kwargs)
        k = len(lines)
        intensity = np.clip(li.intensity.reshape(-1, k), 0, None)
        good = intensity.sum(axis=1) > 0
        if good.any():
            xs = (_cliff_lorimer(stack, intensity, lines, kvec, absorption, thickness)
                  if absorption else _cliff_lorimer_plain(intensity, lines, kvec))
            ss = _cl_sigma(xs, intensity, li.covariance.reshape(-1, k, k), kvec,
                           _atomic_weights(lines))
            x[ok[good]], sig[ok[good]] = xs[good], ss[good]
    return x, sig, n_core


def _mixing_budget(x: np.ndarray, sigma: np.ndarray,
                   core: tuple[np.ndarray, np.ndarray, np.ndarray] | None
                   ) -> dict[str, np.ndarray]:
    """sigma_mixing (and the core columns) from the core-vs-all comparison."""
    if core is None:
        return {"sigma_mixing": np.zeros_like(x)}
    x_core, s_core, n_core = core
    d = x - x_core
    s_diff2 = np.clip(s_core**2 - sigma**2, 0, None)
    flag = np.abs(d) > 2 * np.sqrt(s_diff2)
    mix = np.sqrt(np.clip(d**2 - s_diff2, 0, None))
    nan = ~np.isfinite(d)
    return {"sigma_mixing": np.where(nan, 0.0, mix), "at_pct_core": x_core,
            "sigma_core": s_core, "n_core": np.repeat(n_core[:, None], x.shape[1], axis=1),
            "mixing_flag": np.where(nan, False, flag)}


#: budget terms added in quadrature to the counting sigma for ``sigma_total``
_BUDGET_TERMS = ("sigma_calibration", "sigma_kfactor", "sigma_mixing")


def _table(clusters: Sequence[Any], lines: list[str], x: np.ndarray, sigma: np.ndarray,
           intensity: np.ndarray, li: LineIntensities, boot: np.ndarray | None,
           kvec: np.ndarray, method: str,
           budget: dict[str, np.ndarray] | None = None) -> pd.DataFrame:
    k = len(lines)
    isig = li.sigma.reshape(-1, k)
    budget = budget or {}
    pct = {"sigma_calibration", "sigma_kfactor", "sigma_mixing", "at_pct_core", "sigma_core"}
    total = np.sqrt(sigma**2 + sum(budget[n]**2 for n in _BUDGET_TERMS if n in budget))
    rows = []
    for i, cl in enumerate(clusters):
        for j, ln in enumerate(lines):
            row = {"cluster": cl, "element": _split_line(ln)[0], "line": ln,
                   "at_pct": 100.0 * x[i, j], "sigma": 100.0 * sigma[i, j],
                   "intensity": intensity[i, j], "intensity_sigma": isig[i, j]}
            for name, arr in budget.items():
                v = arr[i, j]
                row[name] = 100.0 * float(v) if name in pct else v.item()
            if budget:
                row["sigma_total"] = 100.0 * total[i, j]
            if boot is not None:
                row["sigma_bootstrap"] = 100.0 * boot[i, j]
            rows.append(row)
    df = pd.DataFrame(rows)
    df.attrs.update(method=method, lines=list(lines), kfactors=dict(zip(lines, kvec.tolist())))
    return df


# --------------------------------------------------------------------------------------
# entropy
# --------------------------------------------------------------------------------------


def _composition_arrays(composition: Any) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Elements, at. % and sigma (0 when absent) from a dict or a quantify DataFrame slice."""
    if isinstance(composition, pd.DataFrame):
        if "cluster" in composition and composition["cluster"].nunique() > 1:
            raise StemsegValueError(
                "composition holds several clusters; select one, e.g. "
                "table[table.cluster == 0]."
            )
        if not {"element", "at_pct"} <= set(composition.columns):
            raise StemsegValueError(
                "A composition DataFrame needs the columns 'element' and 'at_pct' "
                "(and optionally 'sigma_total' or 'sigma'), as returned by quantify."
            )
        # the whole uncertainty budget when quantify gave one, else the counting sigma
        col = next((c for c in ("sigma_total", "sigma") if c in composition), None)
        sig = composition[col] if col else 0.0 * composition["at_pct"]
        items = {e: (v, s) for e, v, s in zip(composition["element"], composition["at_pct"], sig)}
    elif isinstance(composition, Mapping):
        items = dict(composition)
    else:
        raise StemsegValueError(
            "composition must be a dict element -> at. % (or -> (at. %, sigma)) or a "
            f"DataFrame slice of quantify's output; got {type(composition).__name__}."
        )
    from . import xray

    elements, values, sigmas = [], [], []
    for el, val in items.items():
        if isinstance(val, (tuple, list, np.ndarray)):
            if len(val) != 2:
                raise StemsegValueError(
                    f"composition[{el!r}] = {val!r}: give a number or (value, sigma).")
            v, s = val
        else:
            v, s = val, 0.0
        try:
            xray._element_record(str(el))
        except StemsegValueError as exc:
            raise StemsegValueError(
                f"composition: {el!r} is not a chemical element symbol; use symbols with "
                "their capital letter, e.g. {'Fe': 25, 'S': 50}.") from exc
        elements.append(str(el))
        values.append(float(v))
        sigmas.append(float(s))
    c, s = np.array(values), np.array(sigmas)
    if not elements or not np.all(np.isfinite(c)) or np.any(c < 0) or c.sum() <= 0:
        raise StemsegValueError(
            f"composition must have finite, non-negative at. % with a positive sum; got {items}.")
    if not np.all(np.isfinite(s)) or np.any(s < 0):
        raise StemsegValueError("composition sigmas must be finite and >= 0.")
    return elements, c, s


def configurational_entropy(composition: Any,
                            anions: Sequence[str] = ("S",)) -> tuple[float, float]:
    """Ideal configurational entropy of the cation sub-lattice, in R per mole of atoms.

    S/R = -sum over cations of x_i ln(x_i / x_M), with x_i the atomic fractions of all
    atoms (the input is normalised to sum 1) and x_M the total cation fraction. This is the
    convention of Eggeman et al. (2025): it gives 0.5 ln 6 = 0.90 R for six equimolar
    cations in a 50 % sulfide.

    Parameters
    ----------
    composition : dict or pandas.DataFrame
        Element -> at. %, or element -> (at. %, sigma), or a one-cluster slice of
        :func:`quantify`'s table (columns ``element``, ``at_pct``, and ``sigma_total``
        -- the whole budget -- or else ``sigma``).
    anions : sequence of str
        Elements on the anion sub-lattice; every other element counts as a cation.

    Returns
    -------
    value : float
        S/R per mole of atoms.
    sigma : float
        Its standard error by linear propagation of independent at. % errors (0 without
        sigmas). Cations at 0 % add nothing to either.

    Raises
    ------
    StemsegValueError
        A key that is not a chemical element symbol (e.g. "Xx" or "fe"); at. % that are
        negative, not finite or sum to 0; a table of several clusters; no cations.

    Examples
    --------
    >>> value, sigma = configurational_entropy({"Fe": 25, "Cu": 25, "S": 50})
    >>> round(value, 3)  # 0.5 ln 2
    0.347
    """
    elements, c, s = _composition_arrays(composition)
    anion_set = set(anions)
    cation = np.array([e not in anion_set for e in elements])
    total, c_m = c.sum(), c[cation].sum()
    if c_m <= 0:
        raise StemsegValueError(
            f"No cations in composition {dict(zip(elements, c))} with anions={tuple(anions)}.")
    pos = cation & (c > 0)
    value = float(-np.sum(c[pos] / total * np.log(c[pos] / c_m)))
    grad = np.full(c.size, -value / total)
    grad[pos] = (np.log(c_m / c[pos]) - value) / total
    grad[cation & (c == 0)] = 0.0
    return value, float(np.sqrt(np.sum((grad * s) ** 2)))


def maximum_entropy(n_cations: int, cation_fraction: float) -> float:
    """Largest configurational entropy (R per mole of atoms): cation_fraction * ln(n_cations).

    Parameters
    ----------
    n_cations : int
        Number of cation species (>= 1).
    cation_fraction : float
        Fraction of all atoms that are cations, in (0, 1] (0.5 for a monosulfide).
    """
    if int(n_cations) != n_cations or n_cations < 1:
        raise StemsegValueError(f"n_cations must be an integer >= 1, got {n_cations!r}.")
    if not 0 < cation_fraction <= 1:
        raise StemsegValueError(
            f"cation_fraction must be in (0, 1] (a fraction, not a percentage); got "
            f"{cation_fraction!r}.")
    return float(cation_fraction * math.log(n_cations))


# --------------------------------------------------------------------------------------
# paper values
# --------------------------------------------------------------------------------------


def _paper_values() -> dict[str, Any]:
    try:
        from .data import paper_values
        return paper_values()
    except ImportError:  # pragma: no cover - data/__init__.py not yet written
        import json
        from importlib.resources import files
        text = (files("stemseg") / "data" / "paper_values.json").read_text(encoding="utf-8")
        return json.loads(text)


def paper_table(name: str = "eggeman2025_table1_6cation",
                workflow: str = "workflow1_pca_gmm") -> pd.DataFrame:
    """A composition table of a paper as a tidy DataFrame (package data).

    Parameters
    ----------
    name : str
        Table key in ``paper_values.json``, e.g. ``"eggeman2025_table1_6cation"`` or
        ``"eggeman2025_table2_7cation_nanoparticles"``.
    workflow : str
        Sub-key, e.g. ``"workflow1_pca_gmm"``, ``"workflow2_umap_hdbscan"``, or for
        table 2 ``"workflow1_core_i"``.

    Returns
    -------
    pandas.DataFrame
        Columns ``cluster``, ``phase`` (name, where the paper gives one), ``element``,
        ``at_pct``, ``sigma`` (the paper's quoted uncertainty); ``attrs["citation"]``.
    """
    values = _paper_values()
    if name not in values or not isinstance(values[name], dict):
        tables = [k for k, v in values.items() if isinstance(v, dict)]
        raise StemsegValueError(f"Unknown paper table {name!r}; available: {tables}.")
    table = values[name]
    if workflow not in table:
        raise StemsegValueError(
            f"Unknown workflow {workflow!r} for {name!r}; available: {sorted(table)}.")
    block = table[workflow]
    first = next(iter(block.values()))
    clusters = block if isinstance(first, dict) else {workflow.rsplit("_", 1)[-1]: block}
    names = table.get("cluster_names", {})
    rows = [
        {"cluster": cl, "phase": names.get(cl, ""), "element": el,
         "at_pct": float(v[0]), "sigma": float(v[1])}
        for cl, comp in clusters.items() for el, v in comp.items()
    ]
    df = pd.DataFrame(rows)
    key = name.split("_", 1)[0]
    df.attrs["citation"] = _CITATIONS.get(key, values.get("_source", ""))
    df.attrs["table"], df.attrs["workflow"] = name, workflow
    return df
