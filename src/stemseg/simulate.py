"""Ground-truth phantoms: simulated STEM-EDX spectrum images of the papers' materials.

The papers' data cannot be downloaded, so the suite teaches and tests on simulated maps whose
truth is known. :func:`phantom` builds one of :data:`PHANTOMS` and returns a
:class:`stemseg.Phantom`: an :class:`~stemseg.Acquisition` (``.eds`` a real exspy
``EDSTEMSpectrum`` with a keV energy axis, nm navigation axes (y, x), beam energy, elements,
principal X-ray lines and detector metadata; ``.haadf`` a registered ``Signal2D``) plus its
truth (``.labels`` indexing ``.phases``, the support being a phase too; ``.thickness`` in nm;
``.truth`` with everything a test needs).

How the counts are made
-----------------------
Each phase's expected spectrum per electron and nm (characteristic lines through the
detector response, plus bremsstrahlung continuum) comes from :mod:`stemseg.xray` and is
computed once. A pixel's expected spectrum is ``dose x sum over phases (path length of the
phase at the pixel x unit spectrum)`` plus a thin carbon contamination layer, stray lines
(a constant share of the counts, from the grid or the FIB lamella: Au for the sulfides, Cu
and Ga for the oxide lamella; never an element of the sample) and the detector's zero-strobe
peak. Counts are Poisson: at low counts every expected count is drawn as an event (a
Poisson number per pixel and component, then its channel from the component's spectrum;
exact and proportional to the number of counts), at high counts each channel is drawn
directly with :meth:`numpy.random.Generator.poisson`. Geometry, HAADF noise and counts come
from independent streams spawned from ``random_state``: the same seed gives the same cube,
and changing ``counts_per_pixel`` keeps the geometry.

``counts_per_pixel`` is the mean expected number of X-ray counts per pixel (all channels,
the zero peak excluded) over the *sample* pixels (grains, particles, or the whole
cross-section). Self-absorption is not modelled (thin-film limit, as Cliff-Lorimer assumes).

Units: nm (lengths, thickness), keV (energies), counts; at. % for compositions.
"""

from __future__ import annotations

import functools
import json
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ._hs import with_data
from ._types import Phantom, Phase
from .errors import (
    StemsegDependencyError,
    StemsegFileFormatError,
    StemsegFileNotFoundError,
    StemsegValueError,
)

__all__ = ["PHANTOMS", "phantom", "same_phantom", "save", "load", "LFO_STO_VARIANTS", "LINE_MODELS"]

#: Phantom names -> one-line description.
PHANTOMS: dict[str, str] = {
    "sulfide-6cation": (
        "(MnFeCuAgZnCd)S powder section in resin, 200 kV: chalcopyrite, jalpaite and "
        "majority-wurtzite grains, minority-wurtzite rims (Eggeman et al. 2025, Table 1)"
    ),
    "nanoparticles-7cation": (
        "(AgInCoCuGaMnZn)S spheres on carbon film, 200 kV, one uniform composition "
        "(Table 2); core_shell=True adds a real Co/Mn/Zn-rich core"
    ),
    "lfo-sto": (
        "LaFeO3 film on SrTiO3 under a Cr (or Pt) cap, 300 kV cross-section with lattice "
        "fringes; defective= and irradiated= variants (Ter-Petrosyan et al. 2024)"
    ),
    "steel-mos2-pbs": (
        "10 nm film, 200 kV: steel (Fe70 Cr20 Ni10) with MoS2 grains and eight small PbS "
        "particles (~5 % of the pixels; S Ka, Mo La, Pb Ma within 55 eV), drawn with an "
        "independent line model (every xraylib transition, doublets split)"
    ),
}

# --------------------------------------------------------------------------- constants

_ENERGY_OFFSET_KEV = -0.2  # first channel; the zero-strobe peak is visible (as on a Talos)
_ZERO_PEAK_FRACTION = 0.03  # zero-strobe counts per pixel / counts_per_pixel
_HAADF_EXPONENT = 1.7  # HAADF intensity ~ Z^1.7 per atom
_MAX_CUBE_BYTES = 6 * 2**30
_EVENT_LIMIT = 0.5  # event sampling when counts < this x pixels x channels
_BLOCK_ELEMENTS = 2**23  # pixels x channels per block while rendering

_SULFIDE_NAMES = {"i": "chalcopyrite", "ii": "jalpaite", "iii": "majority wurtzite",
                  "iv": "minority wurtzite"}

#: Densities (g/cm^3) for the HAADF contrast (number density x Z^1.7).
_DENSITY = {"resin": 1.2, "carbon film": 2.0, "chalcopyrite": 4.19, "jalpaite": 6.8,
            "majority wurtzite": 4.1, "minority wurtzite": 4.3, "nanoparticle": 5.0,
            "core": 5.0, "shell": 5.0, "LFO": 6.6, "STO": 5.12, "Cr": 7.19, "Pt": 21.45,
            "steel": 7.9, "MoS2": 5.06, "PbS": 7.6}

#: Line models of the phantoms' characteristic spectra (option ``line_model``).
LINE_MODELS = ("exspy", "xraylib")

#: Lattice parameters (nm). LaFeO3 pseudo-cubic 0.394 (orthorhombic Pbnm a=0.5557,
#: b=0.5565, c=0.7854 nm -> 0.393-0.394); SrTiO3 cubic 0.3905.
A_LFO_NM = 0.394
A_STO_NM = 0.3905
#: Lattice expansion of the defect domains: the ratio of the paper's spacings 0.42/0.41.
DEFECT_EXPANSION = 0.42 / 0.41

#: lfo-sto variants (defective, irradiated) -> geometry giving the paper's Table II grids.
#: Pixel sizes follow the magnification (3.9 Mx: 50 pm, 5.5 Mx: 35.5 pm, 2.75 Mx: 71 pm),
#: so that every chip is ~0.7 nm; maps of 496-510 px give floor(N / chip) = Table II.
LFO_STO_VARIANTS: dict[tuple[bool, bool], dict[str, Any]] = {
    (False, False): {"sample": "Pristine", "dpa": 0.0, "magnification_Mx": 3.90,
                     "shape": (500, 500), "pixel_size_nm": 0.0500, "chip_px": 15},
    (False, True): {"sample": "Pristine", "dpa": 0.1, "magnification_Mx": 5.50,
                    "shape": (496, 496), "pixel_size_nm": 0.0355, "chip_px": 20},
    (True, False): {"sample": "Defective", "dpa": 0.0, "magnification_Mx": 3.90,
                    "shape": (510, 510), "pixel_size_nm": 0.0500, "chip_px": 15},
    (True, True): {"sample": "Defective", "dpa": 0.1, "magnification_Mx": 2.75,
                   "shape": (510, 510), "pixel_size_nm": 0.0710, "chip_px": 10},
}


# =========================================================================== helpers


def _normalised(composition: Mapping[str, float]) -> dict[str, float]:
    """Composition scaled to sum to 100 at. % (keys sorted, zero entries dropped)."""
    total = float(sum(composition.values()))
    return {el: 100.0 * float(v) / total for el, v in sorted(composition.items()) if v > 0}


def _paper() -> dict[str, Any]:
    from .data import paper_values

    return paper_values()


def _element_data(element: str) -> tuple[int, float]:
    """(Z, atomic weight in g/mol) from exspy's element database."""
    from exspy.material import elements as db

    props = db[element].General_properties
    return int(props.Z), float(props.atomic_weight)


def _haadf_level(composition: Mapping[str, float], density: float) -> float:
    """HAADF signal per nm of thickness, ~ atoms per nm^3 x mean Z^1.7 (arbitrary units)."""
    x = _normalised(composition)
    z17 = sum(v / 100 * _element_data(el)[0] ** _HAADF_EXPONENT for el, v in x.items())
    mass = sum(v / 100 * _element_data(el)[1] for el, v in x.items())
    atoms_per_nm3 = density / mass * 0.60221  # N_A x 1e-21
    return atoms_per_nm3 * z17


def _smooth_field(rng: np.random.Generator, shape: tuple[int, int], sigma_px: float
                  ) -> np.ndarray:
    """Gaussian random field, zero mean, unit standard deviation."""
    from scipy import ndimage

    field_ = ndimage.gaussian_filter(rng.standard_normal(shape), sigma_px, mode="wrap")
    return (field_ - field_.mean()) / max(field_.std(), 1e-12)


def _rng_streams(random_state: Any) -> tuple[np.random.Generator, ...]:
    """Independent generators for geometry, images and counts."""
    if isinstance(random_state, np.random.Generator):
        parent = random_state
    elif random_state is None or (isinstance(random_state, (int, np.integer))
                                  and not isinstance(random_state, bool)
                                  and random_state >= 0):
        parent = np.random.default_rng(random_state)
    else:
        raise StemsegValueError(
            f"random_state={random_state!r} is not valid; give a non-negative int (the "
            "seed), None, or a numpy.random.Generator."
        )
    return tuple(parent.spawn(3))


# =========================================================================== scene


@dataclass
class _Scene:
    """Geometry, truth and HAADF of a phantom, before the X-ray counts are drawn."""

    beam_energy_kV: float
    pixel_size_nm: float
    labels: np.ndarray
    phases: list[Phase]
    thickness: np.ndarray
    #: phase index -> path length of that phase through each pixel (nm), shape (y, x)
    path_nm: dict[int, np.ndarray]
    sample_mask: np.ndarray
    haadf: np.ndarray
    elements: list[str]
    stray: dict[str, float]  # element -> share of counts_per_pixel
    contamination_nm: float  # amorphous carbon on every pixel
    truth: dict[str, Any] = field(default_factory=dict)
    line_model: str = "exspy"
    cross_section: str = "bote-salvat"  # only with line_model="xraylib"
    metadata: dict[str, Any] = field(default_factory=dict)


# --------------------------------------------------------------------------- sulfide


def _sulfide_phases() -> list[Phase]:
    table = _paper()["eggeman2025_table1_6cation"]["workflow1_pca_gmm"]
    phases = [Phase("resin", {"C": 82.0, "O": 18.0})]  # epoxy without H (invisible); no S
    for key in ("i", "ii", "iii", "iv"):
        phases.append(Phase(_SULFIDE_NAMES[key],
                            _normalised({el: v[0] for el, v in table[key].items()})))
    return phases


def _grain_map(rng: np.random.Generator, shape: tuple[int, int], particles: np.ndarray,
               grain_px: float) -> np.ndarray:
    """Voronoi grains inside the particles: grain id per pixel (0 = resin)."""
    from scipy.spatial import cKDTree

    n_seeds = max(8, int(round(shape[0] * shape[1] / grain_px**2)))
    seeds = rng.uniform((0, 0), shape, size=(n_seeds, 2))
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    _, nearest = cKDTree(seeds).query(np.column_stack([yy.ravel(), xx.ravel()]))
    return np.where(particles, nearest.reshape(shape) + 1, 0)


def _assign_grain_phases(rng: np.random.Generator, grains: np.ndarray) -> np.ndarray:
    """Phase (1 chalcopyrite, 2 jalpaite, 3 wurtzite) of each grain id; every one present."""
    ids, sizes = np.unique(grains[grains > 0], return_counts=True)
    phase_of = np.zeros(int(grains.max()) + 1, dtype=int)
    phase_of[ids] = rng.choice([1, 2, 3], size=len(ids), p=[0.25, 0.2, 0.55])
    order = ids[np.argsort(-sizes, kind="stable")]  # largest first
    for phase in (3, 1, 2):  # every phase present: take the largest grain of a common phase
        if np.any(phase_of[ids] == phase):
            continue
        counts = np.bincount(phase_of[ids], minlength=4)
        donor = next((g for g in order if counts[phase_of[g]] > 1), None)
        if donor is not None:
            phase_of[donor] = phase
    return phase_of


def _sulfide_scene(shape: tuple[int, int], rng: np.random.Generator,
                   img_rng: np.random.Generator, *, pixel_size_nm: float,
                   section_nm: float, grain_px: float, rim_px: tuple[int, int],
                   particle_fraction: float) -> _Scene:
    from scipy import ndimage

    phases = _sulfide_phases()
    field_ = _smooth_field(rng, shape, max(shape) / 12.0)
    particles = field_ > np.quantile(field_, 1.0 - particle_fraction)
    particles = ndimage.binary_opening(particles, iterations=2)
    grains = _grain_map(rng, shape, particles, grain_px)
    phase_of = _assign_grain_phases(rng, grains)
    labels = phase_of[grains]
    wurtzite = labels == 3
    width = rng.integers(rim_px[0], rim_px[1] + 1, size=len(phase_of))[grains]
    rim = wurtzite & (ndimage.distance_transform_edt(wurtzite) <= width)
    labels[rim] = 4
    thickness = section_nm * (1.0 + 0.12 * _smooth_field(rng, shape, max(shape) / 6.0))
    thickness *= 1.0 + 0.08 * (np.linspace(-1, 1, shape[1])[None, :])  # microtome wedge
    thickness = np.clip(thickness, 0.4 * section_nm, None)
    path = {k: np.where(labels == k, thickness, 0.0) for k in range(len(phases))}
    haadf = _plain_haadf(labels, thickness, phases, img_rng)
    truth = {
        "pixel_size_nm": pixel_size_nm,
        "section_thickness_nm": section_nm,
        "grains": grains.astype(np.int32),
        "rim_mask": rim,
        "particle_mask": particles,
        "paper_cluster": {name: key for key, name in _SULFIDE_NAMES.items()},
        "stray_elements": ["Au"],
        "support_phase": "resin",
    }
    return _Scene(
        beam_energy_kV=200.0, pixel_size_nm=pixel_size_nm, labels=labels, phases=phases,
        thickness=thickness, path_nm=path, sample_mask=labels > 0, haadf=haadf,
        elements=["Ag", "Cd", "Cu", "Fe", "Mn", "S", "Zn"], stray={"Au": 0.01},
        contamination_nm=2.0, truth=truth,
        metadata={"microscope": "Talos F200X (simulated)", "detector": "Super-X"},
    )


def _plain_haadf(labels: np.ndarray, thickness: np.ndarray, phases: list[Phase],
                 rng: np.random.Generator, extra: np.ndarray | None = None,
                 electrons: float = 400.0) -> np.ndarray:
    """HAADF without lattice: thickness x Z-contrast per phase, shot and scan-line noise."""
    levels = np.array([_haadf_level(p.composition, _phase_density(p))
                       for p in phases])
    image = thickness * levels[labels] + (0.0 if extra is None else extra)
    return _detector_noise(image, rng, electrons)


def _detector_noise(image: np.ndarray, rng: np.random.Generator, electrons: float
                    ) -> np.ndarray:
    """Shot noise at ``electrons`` per pixel on average, per-line gain flicker, read noise."""
    scale = electrons / max(float(image.mean()), 1e-12)
    noisy = rng.poisson(np.clip(image, 0, None) * scale).astype(float) / scale
    gain = 1.0 + 0.01 * rng.standard_normal((image.shape[0], 1))  # scan-line flicker
    read = 0.01 * float(image.mean()) * rng.standard_normal(image.shape)
    return (noisy * gain + read).astype(np.float32)


# --------------------------------------------------------------------------- nanoparticles


def _np_compositions(enrichment: float) -> tuple[dict[str, float], dict[str, float]]:
    """(uniform composition, Co/Mn/Zn-enriched core composition) in at. %."""
    table = _paper()["eggeman2025_table2_7cation_nanoparticles"]["workflow2_single_i"]
    uniform = _normalised({el: v[0] for el, v in table.items()})
    enriched = ("Co", "Mn", "Zn")
    cations = {el: v for el, v in uniform.items() if el != "S"}
    rich = sum(cations[el] for el in enriched)
    rest = sum(cations.values()) - rich
    scale_rest = (rest - (enrichment - 1.0) * rich) / rest
    core = {el: (v * enrichment if el in enriched else v * scale_rest)
            for el, v in cations.items()}
    core["S"] = uniform["S"]
    return uniform, _normalised(core)


def _place_particles(rng: np.random.Generator, shape: tuple[int, int],
                     diameters_px: tuple[float, float], coverage: float
                     ) -> list[tuple[float, float, float]]:
    """Non-overlapping discs (cy, cx, r) in px inside the map up to ``coverage``."""
    placed: list[tuple[float, float, float]] = []
    area = 0.0
    for _ in range(4000):
        if area >= coverage * shape[0] * shape[1]:
            break
        r = rng.uniform(*diameters_px) / 2.0
        if 2 * r + 4 > min(shape):
            continue
        cy, cx = rng.uniform(r + 2, shape[0] - r - 2), rng.uniform(r + 2, shape[1] - r - 2)
        if all(math.hypot(cy - y, cx - x) > r + q + 2 for y, x, q in placed):
            placed.append((float(cy), float(cx), float(r)))
            area += math.pi * r * r
    return placed


def _chords(shape: tuple[int, int], particles: list[tuple[float, float, float]],
            core_fraction: float, pixel_size_nm: float
            ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Total chord, core chord (nm) and particle id (0 = film) per pixel."""
    yy, xx = np.mgrid[: shape[0], : shape[1]] + 0.5
    chord = np.zeros(shape)
    core = np.zeros(shape)
    ident = np.zeros(shape, dtype=np.int32)
    for k, (cy, cx, r) in enumerate(particles, start=1):
        d2 = (yy - cy) ** 2 + (xx - cx) ** 2
        inside = d2 < r * r
        chord[inside] = 2.0 * np.sqrt(r * r - d2[inside]) * pixel_size_nm
        ident[inside] = k
        rc = core_fraction * r
        in_core = d2 < rc * rc
        core[in_core] = 2.0 * np.sqrt(rc * rc - d2[in_core]) * pixel_size_nm
    return chord, core, ident


def _nanoparticle_scene(shape: tuple[int, int], rng: np.random.Generator,
                        img_rng: np.random.Generator, *, pixel_size_nm: float,
                        core_shell: bool, enrichment: float, core_fraction: float,
                        diameter_nm: tuple[float, float], coverage: float,
                        film_nm: float) -> _Scene:
    uniform, core_comp = _np_compositions(enrichment)
    film = Phase("carbon film", {"C": 97.0, "O": 3.0})
    diam_px = (diameter_nm[0] / pixel_size_nm, diameter_nm[1] / pixel_size_nm)
    particles = _place_particles(rng, shape, diam_px, coverage)
    if not particles:
        raise StemsegValueError(
            f"No particle of diameter_nm={diameter_nm} fits a {shape} map of "
            f"{pixel_size_nm:g} nm pixels; use a larger shape or smaller diameter_nm."
        )
    chord, core_chord, ident = _chords(shape, particles, core_fraction, pixel_size_nm)
    if not core_shell:
        core_chord = np.zeros(shape)
    in_particle = chord > 0
    if core_shell:
        phases = [film, Phase("shell", uniform), Phase("core", core_comp)]
        labels = np.where(core_chord > 0, 2, np.where(in_particle, 1, 0))
        path = {0: np.full(shape, film_nm), 1: chord - core_chord, 2: core_chord}
    else:
        phases = [film, Phase("nanoparticle", uniform)]
        labels = np.where(in_particle, 1, 0)
        path = {0: np.full(shape, film_nm), 1: chord}
    levels = [_haadf_level(p.composition, _phase_density(p)) for p in phases]
    image = sum(levels[k] * t for k, t in path.items())
    haadf = _detector_noise(image, img_rng, electrons=400.0)
    truth = {
        "pixel_size_nm": pixel_size_nm,
        "particles_px": [list(p) for p in particles],
        "particle_id": ident,
        "particle_thickness": chord,
        "core_thickness": core_chord,
        "film_thickness_nm": film_nm,
        "core_shell": bool(core_shell),
        "enrichment": float(enrichment) if core_shell else 1.0,
        "enriched_elements": ["Co", "Mn", "Zn"],
        "core_radius_fraction": float(core_fraction),
        "stray_elements": ["Au"],
        "support_phase": "carbon film",
    }
    return _Scene(
        beam_energy_kV=200.0, pixel_size_nm=pixel_size_nm, labels=labels, phases=phases,
        thickness=chord + film_nm, path_nm=path, sample_mask=in_particle, haadf=haadf,
        elements=["Ag", "Co", "Cu", "Ga", "In", "Mn", "S", "Zn"], stray={"Au": 0.01},
        contamination_nm=0.0, truth=truth,
        metadata={"microscope": "Talos F200X (simulated)", "detector": "Super-X"},
    )


# --------------------------------------------------------------------------- steel-mos2-pbs


def _steel_scene(shape: tuple[int, int], rng: np.random.Generator,
                 img_rng: np.random.Generator, *, pixel_size_nm: float, film_nm: float,
                 mos2_fraction: float, n_particles: int, particle_radius_px: tuple[float, float],
                 line_model: str, cross_section: str) -> _Scene:
    phases = [Phase("steel", {"Fe": 70.0, "Cr": 20.0, "Ni": 10.0}),
              Phase("MoS2", _normalised({"Mo": 1.0, "S": 2.0})),
              Phase("PbS", {"Pb": 50.0, "S": 50.0})]
    field_ = _smooth_field(rng, shape, sigma_px=max(2.0, min(shape) / 16.0))
    labels = np.where(field_ > np.quantile(field_, 1.0 - mos2_fraction), 1, 0)
    placed: list[tuple[float, float, float]] = []
    for _ in range(20000):
        if len(placed) >= n_particles:
            break
        r = rng.uniform(*particle_radius_px)
        cy, cx = rng.uniform(r + 1, shape[0] - r - 1), rng.uniform(r + 1, shape[1] - r - 1)
        if all(math.hypot(cy - y, cx - x) > r + q + 3 for y, x, q in placed):
            placed.append((float(cy), float(cx), float(r)))
    if len(placed) < n_particles:
        raise StemsegValueError(
            f"Only {len(placed)} of n_particles={n_particles} PbS particles of radius "
            f"{particle_radius_px} px fit a {shape} map; use a larger shape or fewer particles."
        )
    yy, xx = np.mgrid[: shape[0], : shape[1]] + 0.5
    for cy, cx, r in placed:
        labels[(yy - cy) ** 2 + (xx - cx) ** 2 < r * r] = 2
    thickness = np.full(shape, film_nm)
    path = {k: np.where(labels == k, film_nm, 0.0) for k in range(len(phases))}
    haadf = _plain_haadf(labels, thickness, phases, img_rng)
    truth = {"pixel_size_nm": pixel_size_nm, "particles_px": [list(p) for p in placed],
             "film_thickness_nm": film_nm, "stray_elements": [], "support_phase": None,
             "line_model": line_model, "cross_section": cross_section}
    return _Scene(
        beam_energy_kV=200.0, pixel_size_nm=pixel_size_nm, labels=labels, phases=phases,
        thickness=thickness, path_nm=path, sample_mask=np.ones(shape, dtype=bool),
        haadf=haadf, elements=["Cr", "Fe", "Mo", "Ni", "Pb", "S"], stray={},
        contamination_nm=0.0, truth=truth, line_model=line_model,
        cross_section=cross_section,
        metadata={"microscope": "200 kV STEM (simulated)", "detector": "Super-X"},
    )


# --------------------------------------------------------------------------- lfo-sto


def _perovskite_columns(a_site: str, b_site: str) -> list[tuple[tuple[float, float], float]]:
    """[100] projected columns (fractional (y, x) in the cell, HAADF weight ~ sum Z^1.7)."""
    z = {el: _element_data(el)[0] ** _HAADF_EXPONENT for el in (a_site, b_site, "O")}
    return [((0.0, 0.0), z[a_site]), ((0.5, 0.5), z[b_site] + z["O"]),
            ((0.0, 0.5), z["O"]), ((0.5, 0.0), z["O"])]


def _lattice(yy: np.ndarray, xx: np.ndarray, a: float, origin: tuple[float, float],
             columns: list[tuple[tuple[float, float], float]], sigma: float,
             column_noise: np.ndarray | None = None) -> np.ndarray:
    """Projected square lattice of Gaussian columns, normalised to mean 1.

    ``yy``/``xx`` are positions in nm; every column is the Gaussian of its nearest lattice
    site (sigma << a). ``column_noise`` (m, m) multiplies each column's weight.
    """
    out = np.zeros(np.broadcast_shapes(yy.shape, xx.shape))
    for (fy, fx), weight in columns:
        ty = (yy - origin[0]) / a - fy
        tx = (xx - origin[1]) / a - fx
        iy, ix = np.rint(ty), np.rint(tx)
        u, v = (tx - ix) * a, (ty - iy) * a
        w = weight
        if column_noise is not None:
            m = column_noise.shape[0]
            w = weight * column_noise[iy.astype(int) % m, ix.astype(int) % m]
        out += w * np.exp(-(u * u + v * v) / (2.0 * sigma * sigma))
    mean = sum(w for _, w in columns) * 2.0 * math.pi * sigma**2 / a**2
    return out / mean


def _lfo_compositions(cap: str) -> dict[str, dict[str, float]]:
    return {
        "cap": {cap: 100.0},
        # relative to ordered LFO: O +3 %, La -8 %, Fe -1 % (the paper: O +1.8-3.1 %,
        # La -8.5 to -12.1 %, Fe -1.9 to -5.9 %)
        "ordered LFO": {"La": 20.0, "Fe": 20.0, "O": 60.0},
        "disordered LFO": {"La": 18.4, "Fe": 19.8, "O": 61.8},
        # irradiated: O +4 %, La -7 %, Fe -5 % (the paper: O +1.4-7.5 %, La -4.7 to
        # -10.4 %, Fe -3.9 to -5.7 %)
        "amorphous LFO": {"La": 18.6, "Fe": 19.0, "O": 62.4},
        "interface": {"La": 10.0, "Sr": 10.0, "Fe": 10.0, "Ti": 10.0, "O": 60.0},
        "STO": {"Sr": 20.0, "Ti": 20.0, "O": 60.0},
    }


def _layers(shape: tuple[int, int], px: float) -> dict[str, int]:
    """Row indices of the layer boundaries (cap | LFO | STO) and the interface band."""
    ny = shape[0]
    fov = ny * px
    cap_end = int(round(0.2 * ny))
    lfo_rows = int(round(min(max(0.5 * fov, 10.0), 15.0) / px))
    lfo_end = min(cap_end + lfo_rows, ny - max(4, int(round(1.0 / px))))
    half = max(1, int(round(0.4 / px)))  # interface band 0.8 nm (two unit cells)
    return {"cap_end": cap_end, "lfo_end": lfo_end, "if_start": lfo_end - half,
            "if_end": lfo_end + half}


def _defect_domains(rng: np.random.Generator, nx: int, px: float) -> list[tuple[int, int]]:
    """Column ranges [x0, x1) of the vertical defect domains (4-5.5 nm wide)."""
    fov = nx * px
    n = max(2, int(round(fov / 12.0)))
    slot = nx / n
    out = []
    for k in range(n):
        width = int(round(rng.uniform(4.0, 5.5) / px))
        width = min(width, int(0.6 * slot))
        centre = (k + 0.5) * slot + rng.uniform(-0.1, 0.1) * slot
        x0 = int(max(0, round(centre - width / 2)))
        out.append((x0, min(nx, x0 + width)))
    return out


def _amorphous_triangle(shape: tuple[int, int], cap_end: int, lfo_end: int) -> np.ndarray:
    """Triangular amorphous region hanging from the cap into the top of the LFO."""
    ny, nx = shape
    yy, xx = np.mgrid[:ny, :nx]
    depth = 0.6 * (lfo_end - cap_end)
    half_base = 0.22 * nx
    centre = 0.58 * nx
    frac = (yy - cap_end) / depth
    return (yy >= cap_end) & (frac < 1.0) & (np.abs(xx - centre) < half_base * (1.0 - frac))


def _lfo_regions(shape: tuple[int, int], px: float, rng: np.random.Generator,
                 defective: bool, irradiated: bool) -> dict[str, Any]:
    """Region masks of the cross-section (every pixel in exactly one region)."""
    ny, nx = shape
    lay = _layers(shape, px)
    rows = np.arange(ny)[:, None] * np.ones((1, nx), dtype=int)
    cols = np.ones((ny, 1), dtype=int) * np.arange(nx)[None, :]
    masks = {"cap": rows < lay["cap_end"]}
    lfo = (rows >= lay["cap_end"]) & (rows < lay["if_start"])
    domains = _defect_domains(rng, nx, px) if defective else []
    disordered = np.zeros(shape, dtype=bool)
    for x0, x1 in domains:
        disordered |= lfo & (cols >= x0) & (cols < x1)
    amorphous = (_amorphous_triangle(shape, lay["cap_end"], lay["if_start"]) & lfo
                 if irradiated else np.zeros(shape, dtype=bool))
    disordered &= ~amorphous
    masks["ordered LFO"] = lfo & ~disordered & ~amorphous
    if defective:
        masks["disordered LFO"] = disordered
    if irradiated:
        masks["amorphous LFO"] = amorphous
    masks["interface"] = (rows >= lay["if_start"]) & (rows < lay["if_end"])
    masks["STO"] = rows >= lay["if_end"]
    return {"masks": masks, "layers": lay, "domains": domains}


def _lfo_thickness(shape: tuple[int, int], rng: np.random.Generator, lamella_nm: float,
                   sto_mask: np.ndarray, irradiated: bool) -> tuple[np.ndarray, np.ndarray]:
    """Lamella thickness (nm): FIB wedge + gentle waviness; a thicker STO part if irradiated."""
    ny, nx = shape
    wedge = 1.0 + 0.08 * np.linspace(-1, 1, ny)[:, None]
    t = lamella_nm * wedge * (1.0 + 0.02 * _smooth_field(rng, shape, nx / 8.0))
    step = np.zeros(shape, dtype=bool)
    if irradiated:
        step = sto_mask & (np.arange(nx)[None, :] >= int(0.55 * nx))
        t = np.where(step, 1.2 * t, t)
    return t, step


def _lfo_haadf(regions: dict[str, Any], comps: dict[str, dict[str, float]], cap: str,
               thickness: np.ndarray, px: float, rng: np.random.Generator) -> np.ndarray:
    """HAADF: Z contrast, perovskite fringes, amorphous speckle, scan jitter, noise."""
    masks = regions["masks"]
    shape = thickness.shape
    ny, nx = shape
    jitter = (0.010 * rng.standard_normal(ny)
              + 0.015 * np.sin(2 * np.pi * np.arange(ny) / rng.uniform(25, 45)
                               + rng.uniform(0, 2 * np.pi)))  # nm per scan line
    yy = np.arange(ny)[:, None] * px * np.ones((1, nx))
    xx = np.arange(nx)[None, :] * px + jitter[:, None]
    sigma = 0.055  # nm, probe-corrected column width
    cn = 1.0 + 0.03 * rng.standard_normal((64, 64))
    lfo_cols, sto_cols = _perovskite_columns("La", "Fe"), _perovskite_columns("Sr", "Ti")
    if_cols = [(pos, 0.5 * (w1 + w2)) for (pos, w1), (_, w2) in zip(lfo_cols, sto_cols)]
    level = {name: _haadf_level(comps[name], _DENSITY["LFO"]) for name in
             ("ordered LFO", "disordered LFO", "amorphous LFO")}
    level["amorphous LFO"] *= 0.95  # lower density of the amorphised film
    level["interface"] = 0.5 * (level["ordered LFO"] + _haadf_level(comps["STO"], 5.12))
    level["STO"] = _haadf_level(comps["STO"], _DENSITY["STO"])
    level["cap"] = _haadf_level(comps["cap"], _DENSITY[cap])
    background = 0.35  # thermal diffuse + amorphous surface layers
    lat_lfo = _lattice(yy, xx, A_LFO_NM, (0.0, 0.0), lfo_cols, sigma, cn)
    image = np.zeros(shape)
    structure = {
        "ordered LFO": lat_lfo,
        "STO": _lattice(yy, xx, A_STO_NM, (0.0, 0.0), sto_cols, sigma, cn),
        "interface": _lattice(yy, xx, 0.5 * (A_LFO_NM + A_STO_NM), (0.0, 0.0), if_cols,
                              sigma, cn),
    }
    speckle = 1.0 + 0.08 * _smooth_field(rng, shape, 0.08 / px)
    structure["cap"] = 1.0 + 0.05 * _smooth_field(rng, shape, 0.25 / px)
    structure["amorphous LFO"] = speckle
    if "disordered LFO" in masks:
        structure["disordered LFO"] = _domain_lattices(yy, xx, regions, lfo_cols, sigma, rng,
                                                      px)
    for name, mask in masks.items():
        contrast = structure[name]
        if name in ("cap", "amorphous LFO"):
            image[mask] = level[name] * contrast[mask]
        else:
            image[mask] = level[name] * (background + (1 - background) * contrast[mask])
    image *= thickness
    if regions["domains"]:
        image *= _striations(nx, regions["domains"], px, masks)
    return _detector_noise(image, rng, electrons=300.0)


def _domain_lattices(yy: np.ndarray, xx: np.ndarray, regions: dict[str, Any],
                     columns: list, sigma: float, rng: np.random.Generator, px: float
                     ) -> np.ndarray:
    """Expanded lattices of the defect domains (origin at each domain's centre)."""
    out = np.zeros(yy.shape)
    a = A_LFO_NM * DEFECT_EXPANSION
    noise = 1.0 + 0.10 * rng.standard_normal((64, 64))  # more column-to-column scatter
    for x0, x1 in regions["domains"]:
        centre = 0.5 * (x0 + x1) * px
        sl = np.s_[:, x0:x1]
        out[sl] = _lattice(yy[sl], xx[sl], a, (0.0, centre), columns, sigma, noise)
    return out


def _striations(nx: int, domains: list[tuple[int, int]], px: float,
                masks: dict[str, np.ndarray]) -> np.ndarray:
    """Dark vertical lines (15 % dip, 0.3 nm wide) at the domain boundaries in the film."""
    x = np.arange(nx) * px
    dip = np.zeros(nx)
    for x0, x1 in domains:
        for edge in (x0 * px, x1 * px):
            dip = np.maximum(dip, np.exp(-0.5 * ((x - edge) / 0.15) ** 2))
    film = masks["ordered LFO"] | masks.get("disordered LFO", False)
    return np.where(film, 1.0 - 0.15 * dip[None, :], 1.0)


def _lfo_sto_scene(shape: tuple[int, int], rng: np.random.Generator,
                   img_rng: np.random.Generator, *, defective: bool, irradiated: bool,
                   cap: str, pixel_size_nm: float, lamella_nm: float) -> _Scene:
    px = pixel_size_nm
    comps = _lfo_compositions(cap)
    regions = _lfo_regions(shape, px, rng, defective, irradiated)
    masks = regions["masks"]
    names = list(masks)
    phases = [Phase(n, _normalised(comps[n])) for n in names]
    labels = np.zeros(shape, dtype=int)
    for k, n in enumerate(names):
        labels[masks[n]] = k
    thickness, step = _lfo_thickness(shape, rng, lamella_nm, masks["STO"], irradiated)
    path = {k: np.where(labels == k, thickness, 0.0) for k in range(len(names))}
    haadf = _lfo_haadf(regions, comps, cap, thickness, px, img_rng)
    variant = LFO_STO_VARIANTS[(defective, irradiated)]
    spacing = {"cap": None, "ordered LFO": A_LFO_NM,
               "disordered LFO": A_LFO_NM * DEFECT_EXPANSION, "amorphous LFO": None,
               "interface": 0.5 * (A_LFO_NM + A_STO_NM), "STO": A_STO_NM}
    truth = {
        "pixel_size_nm": px,
        "regions": {n: k for k, n in enumerate(names)},
        "lattice_spacing_nm": {n: spacing[n] for n in names},
        "defect_expansion": DEFECT_EXPANSION if defective else 1.0,
        "defect_domains_px": [list(d) for d in regions["domains"]],
        "layers_px": regions["layers"],
        "sto_thick_mask": step,
        "sto_thickness_step": 1.2 if irradiated else 1.0,
        "defective": bool(defective),
        "irradiated": bool(irradiated),
        "cap": cap,
        "chip_px": variant["chip_px"],
        "magnification_Mx": variant["magnification_Mx"],
        "table2": {"sample": variant["sample"], "dpa": variant["dpa"],
                   "chip_px": variant["chip_px"]},
        "stray_elements": ["C", "Cu", "Ga"],
        "support_phase": None,
    }
    elements = sorted({el for p in phases for el in p.composition})
    return _Scene(
        beam_energy_kV=300.0, pixel_size_nm=px, labels=labels, phases=phases,
        thickness=thickness, path_nm=path, sample_mask=np.ones(shape, dtype=bool),
        haadf=haadf, elements=elements, stray={"Cu": 0.005, "Ga": 0.003},
        contamination_nm=1.0, truth=truth,
        metadata={"microscope": "Themis Z (simulated)", "detector": "Super-X",
                  "dwell_time_us": 2.0},
    )


# =========================================================================== counts


@dataclass(frozen=True)
class _EnergyAxis:
    offset: float
    scale: float
    size: int

    @property
    def centres(self) -> np.ndarray:
        """Channel centres in keV, shape (size,)."""
        return self.offset + self.scale * np.arange(self.size)


@functools.lru_cache(maxsize=64)
def _unit_spectrum(composition: tuple[tuple[str, float], ...], axis: _EnergyAxis,
                   beam_energy_kV: float, detector: str, density: float,
                   continuum: bool = True, line_model: str = "exspy",
                   cross_section: str = "bote-salvat") -> np.ndarray:
    """Expected counts per electron per nm (characteristic + continuum), (n_channels,).

    ``line_model="exspy"``: exspy's line families (the model stemseg.quant fits);
    ``"xraylib"``: every xraylib transition with its own energy and rate
    (:func:`stemseg.xray.transition_spectrum`), an independent shape.
    """
    from . import xray

    comp = dict(composition)
    det = xray.detector(detector)
    if line_model == "xraylib":
        spec = xray.transition_spectrum(comp, axis.centres, beam_energy_kV, detector=det,
                                        density_g_cm3=density, cross_section=cross_section)
    else:
        spec = xray.characteristic_spectrum(comp, axis.centres, beam_energy_kV, detector=det,
                                            density_g_cm3=density)
    spec = np.asarray(spec, dtype=float)
    if continuum:
        spec = spec + np.asarray(xray.bremsstrahlung_spectrum(
            comp, axis.centres, beam_energy_kV, detector=det, density_g_cm3=density),
            dtype=float)
    spec = np.clip(spec, 0.0, None)
    spec.setflags(write=False)
    return spec


def _phase_density(phase: Phase) -> float:
    """Density (g/cm^3) of a phase by name (cap phases by their element)."""
    if phase.name in _DENSITY:
        return _DENSITY[phase.name]
    if phase.name.endswith("LFO"):
        return _DENSITY["LFO"]
    if phase.name == "interface":
        return 0.5 * (_DENSITY["LFO"] + _DENSITY["STO"])
    if phase.name == "cap":
        return _DENSITY[next(iter(phase.composition))]
    return 5.0


def _key(composition: Mapping[str, float]) -> tuple[tuple[str, float], ...]:
    return tuple(sorted((el, float(v)) for el, v in composition.items()))


def _components(scene: _Scene, axis: _EnergyAxis, counts_per_pixel: float, detector: str
                ) -> tuple[list[tuple[np.ndarray, np.ndarray]], float]:
    """[(expected counts per pixel (y, x), channel distribution (n_ch,))], and the dose."""
    from . import xray

    beam = scene.beam_energy_kV
    raw: list[tuple[np.ndarray, np.ndarray]] = []
    for k, path in scene.path_nm.items():
        phase = scene.phases[k]
        unit = _unit_spectrum(_key(phase.composition), axis, beam, detector,
                              _phase_density(phase), line_model=scene.line_model,
                              cross_section=scene.cross_section)
        raw.append((path * unit.sum(), unit))
    if scene.contamination_nm > 0:
        unit = _unit_spectrum(_key({"C": 100.0}), axis, beam, detector, 2.0,
                              line_model=scene.line_model)
        raw.append((np.full(scene.labels.shape, scene.contamination_nm * unit.sum()), unit))
    per_electron = sum(w for w, _ in raw)
    mean_sample = float(per_electron[scene.sample_mask].mean())
    stray_share = sum(scene.stray.values())
    dose = counts_per_pixel * (1.0 - stray_share) / mean_sample  # electrons per pixel
    comps = [(w * dose, u / u.sum()) for w, u in raw if u.sum() > 0]
    for element, share in scene.stray.items():
        unit = _unit_spectrum(_key({element: 100.0}), axis, beam, detector, 5.0, False,
                              line_model=scene.line_model)
        if unit.sum() > 0:  # lines beyond a short energy axis are simply not recorded
            comps.append((np.full(scene.labels.shape, share * counts_per_pixel),
                          unit / unit.sum()))
    zero = np.clip(np.asarray(xray.zero_peak(axis.centres, detector=xray.detector(detector)),
                              dtype=float), 0, None)
    comps.append((np.full(scene.labels.shape, _ZERO_PEAK_FRACTION * counts_per_pixel),
                  zero / zero.sum()))
    return comps, dose


def _count_dtype(weights: np.ndarray, spectra: np.ndarray) -> type:
    bound = float((weights.max(axis=0) * spectra.max(axis=1)).sum())
    return np.uint16 if bound + 10.0 * math.sqrt(bound) + 10 < 65535 else np.uint32


def _poisson_cube(components: list[tuple[np.ndarray, np.ndarray]], shape: tuple[int, int],
                  rng: np.random.Generator) -> np.ndarray:
    """Poisson counts (y, x, n_channels) with the summed expectation of ``components``."""
    weights = np.stack([w.ravel() for w, _ in components], axis=1)  # (n_pix, C)
    spectra = np.stack([s for _, s in components])  # (C, n_ch)
    n_pix, n_ch = weights.shape[0], spectra.shape[1]
    dtype = _count_dtype(weights, spectra)
    out = np.empty((n_pix, n_ch), dtype=dtype)
    block = max(1, _BLOCK_ELEMENTS // n_ch)
    if weights.sum() < _EVENT_LIMIT * n_pix * n_ch:
        _events(weights, spectra, out, block, rng)
    else:
        for p0 in range(0, n_pix, block):
            lam = weights[p0: p0 + block] @ spectra
            out[p0: p0 + block] = rng.poisson(lam)
    return out.reshape(shape + (n_ch,))


def _events(weights: np.ndarray, spectra: np.ndarray, out: np.ndarray, block: int,
            rng: np.random.Generator) -> None:
    """Fill ``out`` by drawing each count as an event (exact Poisson; cost ~ counts)."""
    n_pix, n_ch = out.shape
    cdf = np.cumsum(spectra, axis=1)
    cdf /= cdf[:, -1:]
    numbers = rng.poisson(weights)  # (n_pix, C) counts per pixel and component
    for p0 in range(0, n_pix, block):
        p1 = min(n_pix, p0 + block)
        parts = []
        for c in range(spectra.shape[0]):
            n = numbers[p0:p1, c]
            total = int(n.sum())
            if total == 0:
                continue
            pixel = np.repeat(np.arange(p1 - p0, dtype=np.int64), n)
            channel = np.minimum(np.searchsorted(cdf[c], rng.random(total), side="right"),
                                 n_ch - 1)
            parts.append(pixel * n_ch + channel)
        flat = np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)
        out[p0:p1] = np.bincount(flat, minlength=(p1 - p0) * n_ch).reshape(p1 - p0, n_ch)


# =========================================================================== signals


def _nav_axes(signal: Any, pixel_size_nm: float) -> None:
    for axis, name in zip(signal.axes_manager.navigation_axes, ("x", "y")):
        axis.name, axis.units, axis.scale, axis.offset = name, "nm", pixel_size_nm, 0.0


def _eds_signal(counts: np.ndarray, scene: _Scene, axis: _EnergyAxis, detector: str,
                name: str) -> Any:
    import exspy

    from . import xray

    s = exspy.signals.EDSTEMSpectrum(counts)
    _nav_axes(s, scene.pixel_size_nm)
    e = s.axes_manager.signal_axes[0]
    e.name, e.units, e.scale, e.offset = "Energy", "keV", axis.scale, axis.offset
    det = xray.detector(detector)
    s.metadata.General.title = f"EDS ({name} phantom)"
    s.metadata.Signal.quantity = "X-rays (Counts)"
    s.set_microscope_parameters(
        beam_energy=scene.beam_energy_kV, tilt_stage=0.0, azimuth_angle=45.0,
        elevation_angle=float(det.take_off_angle_deg),
        energy_resolution_MnKa=float(det.fwhm_mn_ka_eV), display=False)
    s.metadata.set_item("Acquisition_instrument.TEM.Detector.EDS.solid_angle_sr",
                        float(det.solid_angle_sr))
    s.metadata.set_item("Acquisition_instrument.TEM.Detector.EDS.detector_type",
                        f"{scene.metadata.get('detector', 'Super-X')} (simulated)")
    s.metadata.set_item("Acquisition_instrument.TEM.microscope",
                        scene.metadata.get("microscope", "simulated"))
    if "dwell_time_us" in scene.metadata:
        s.metadata.set_item("Acquisition_instrument.TEM.Detector.EDS.dwell_time_us",
                            scene.metadata["dwell_time_us"])
    s.metadata.set_item("Sample.elements", sorted(scene.elements))
    lines = _lines(scene, axis)
    s.metadata.set_item("Sample.xray_lines", sorted(lines))
    s.metadata.set_item("Sample.description",
                        f"stemseg phantom {name!r}; stray lines from "
                        f"{', '.join(scene.truth.get('stray_elements', [])) or 'none'}")
    return s


def _lines(scene: _Scene, axis: _EnergyAxis) -> list[str]:
    """Principal X-ray lines of the sample's elements on the energy axis."""
    from . import xray

    top = axis.offset + axis.scale * axis.size
    try:
        return xray.principal_lines(sorted(scene.elements), scene.beam_energy_kV,
                                    energy_range_keV=(0.2, top))
    except StemsegValueError as err:
        raise StemsegValueError(
            f"The energy axis ends at {top:.2f} keV (n_channels x channel_width_keV), too "
            f"short for a line of every element: {err} Use more channels or wider ones."
        ) from None


def _haadf_signal(image: np.ndarray, pixel_size_nm: float, name: str) -> Any:
    from hyperspy.signals import Signal2D

    im = Signal2D(np.asarray(image, dtype=np.float32))
    for axis, axname in zip(im.axes_manager.signal_axes, ("x", "y")):
        axis.name, axis.units, axis.scale, axis.offset = axname, "nm", pixel_size_nm, 0.0
    im.metadata.General.title = "HAADF"
    im.metadata.Signal.quantity = "Intensity (a.u.)"
    im.metadata.set_item("Sample.description", f"stemseg phantom {name!r}")
    return im


# =========================================================================== options


@dataclass(frozen=True)
class _Spec:
    builder: Callable[..., _Scene]
    default_shape: Callable[[dict[str, Any]], tuple[int, int]]
    min_shape: int
    counts_per_pixel: float
    n_channels: int
    channel_width_keV: float
    options: dict[str, Any]


def _lfo_variant(opts: dict[str, Any]) -> dict[str, Any]:
    return LFO_STO_VARIANTS[(bool(opts["defective"]), bool(opts["irradiated"]))]


_SPECS: dict[str, _Spec] = {
    "sulfide-6cation": _Spec(
        builder=_sulfide_scene, default_shape=lambda o: (128, 128), min_shape=32,
        counts_per_pixel=200.0, n_channels=2048, channel_width_keV=0.01,
        options={"pixel_size_nm": 40.0, "section_nm": 50.0, "grain_px": 16.0,
                 "rim_px": (2, 4), "particle_fraction": 0.65},
    ),
    "nanoparticles-7cation": _Spec(
        builder=_nanoparticle_scene, default_shape=lambda o: (128, 128), min_shape=32,
        counts_per_pixel=170.0, n_channels=2048, channel_width_keV=0.01,
        options={"pixel_size_nm": 1.0, "core_shell": False, "enrichment": 1.5,
                 "core_fraction": 0.5, "diameter_nm": (18.0, 36.0), "coverage": 0.35,
                 "film_nm": 15.0},
    ),
    "lfo-sto": _Spec(
        builder=_lfo_sto_scene, default_shape=lambda o: _lfo_variant(o)["shape"],
        min_shape=64, counts_per_pixel=10.0, n_channels=1024, channel_width_keV=0.02,
        options={"defective": False, "irradiated": False, "cap": "Cr",
                 "pixel_size_nm": None, "lamella_nm": 40.0},
    ),
    "steel-mos2-pbs": _Spec(
        builder=_steel_scene, default_shape=lambda o: (128, 128), min_shape=48,
        counts_per_pixel=500.0, n_channels=2048, channel_width_keV=0.01,
        options={"pixel_size_nm": 2.0, "film_nm": 10.0, "mos2_fraction": 0.3,
                 "n_particles": 8, "particle_radius_px": (5.0, 7.0),
                 "line_model": "xraylib", "cross_section": "bote-salvat"},
    ),
}

_BOOL_OPTIONS = {"core_shell", "defective", "irradiated"}


def _unknown_name(name: Any) -> StemsegValueError:
    return StemsegValueError(
        f"Unknown phantom {name!r}. Valid names: {', '.join(PHANTOMS)} "
        "(see stemseg.simulate.PHANTOMS)."
    )


def _check_positive(key: str, value: Any, upper: float | None = None) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        v = float("nan")
    if not (math.isfinite(v) and v > 0 and (upper is None or v <= upper)):
        bound = f" and at most {upper:g}" if upper is not None else ""
        raise StemsegValueError(f"{key}={value!r} is not valid; give a positive number{bound}.")
    return v


def _resolve_options(name: str, spec: _Spec, options: dict[str, Any]) -> dict[str, Any]:
    """Defaults merged with the user's options, validated."""
    allowed = set(spec.options) | {"n_channels", "channel_width_keV"}
    unknown = sorted(set(options) - allowed)
    if unknown:
        raise StemsegValueError(
            f"Unknown option(s) {', '.join(map(repr, unknown))} for phantom {name!r}. Valid "
            f"options: shape, random_state, counts_per_pixel, {', '.join(sorted(allowed))}."
        )
    opts = {**spec.options, "n_channels": spec.n_channels,
            "channel_width_keV": spec.channel_width_keV, **options}
    for key in _BOOL_OPTIONS & set(opts):
        if not isinstance(opts[key], (bool, np.bool_)):
            raise StemsegValueError(f"{key}={opts[key]!r} must be True or False.")
        opts[key] = bool(opts[key])
    if "line_model" in opts and opts["line_model"] not in LINE_MODELS:
        raise StemsegValueError(
            f"line_model={opts['line_model']!r} is not valid; choose one of {LINE_MODELS}."
        )
    if "cross_section" in opts:
        from .xray import CROSS_SECTION_MODELS

        if opts["cross_section"] not in CROSS_SECTION_MODELS:
            raise StemsegValueError(
                f"cross_section={opts['cross_section']!r} is not valid; choose one of "
                f"{CROSS_SECTION_MODELS}."
            )
        if opts.get("line_model") != "xraylib" and opts["cross_section"] != "bote-salvat":
            raise StemsegValueError(
                "cross_section='bethe' needs line_model='xraylib' (the exspy line model "
                "uses the k-factors' own cross-sections)."
            )
    if "n_particles" in opts:
        n = opts["n_particles"]
        if not (isinstance(n, (int, np.integer)) and not isinstance(n, bool) and 1 <= n <= 200):
            raise StemsegValueError(f"n_particles={n!r} must be an integer from 1 to 200.")
    if "cap" in opts and opts["cap"] not in ("Cr", "Pt"):
        raise StemsegValueError(f"cap={opts['cap']!r} is not valid; choose 'Cr' or 'Pt'.")
    n_ch = opts["n_channels"]
    if not (isinstance(n_ch, (int, np.integer)) and not isinstance(n_ch, bool)
            and 128 <= n_ch <= 8192):
        raise StemsegValueError(f"n_channels={n_ch!r} must be an integer from 128 to 8192.")
    opts["channel_width_keV"] = _check_positive("channel_width_keV",
                                                opts["channel_width_keV"], 0.1)
    for key in ("pixel_size_nm", "section_nm", "grain_px", "enrichment", "film_nm",
                "lamella_nm"):
        if key in opts and opts[key] is not None:
            opts[key] = _check_positive(key, opts[key])
    for key, upper in (("particle_fraction", 0.95), ("core_fraction", 0.95),
                       ("coverage", 0.6), ("mos2_fraction", 0.9)):
        if key in opts:
            opts[key] = _check_positive(key, opts[key], upper)
    if name == "nanoparticles-7cation":
        _check_enrichment(opts["enrichment"])
    for key in ("diameter_nm", "particle_radius_px"):
        if key in opts:
            opts[key] = _check_range(key, opts[key])
    if "rim_px" in opts:
        lo, hi = _check_range("rim_px", opts["rim_px"])
        opts["rim_px"] = (max(1, int(round(lo))), max(1, int(round(hi))))
    return opts


def _check_range(key: str, value: Any) -> tuple[float, float]:
    try:
        lo, hi = (float(v) for v in value)
    except (TypeError, ValueError):
        lo = hi = float("nan")
    if not (math.isfinite(lo) and math.isfinite(hi) and 0 < lo <= hi):
        raise StemsegValueError(f"{key}={value!r} must be a pair (low, high) with 0 < low <= high.")
    return (lo, hi)


def _check_enrichment(enrichment: float) -> None:
    uniform, _ = _np_compositions(1.0)
    rich = sum(uniform[el] for el in ("Co", "Mn", "Zn"))
    cations = 100.0 - uniform["S"]
    limit = cations / rich
    if enrichment >= limit:
        raise StemsegValueError(
            f"enrichment={enrichment!r} is too large: the core would need more than all its "
            f"cations to be Co, Mn and Zn. Choose a value below {limit:.1f} (default 1.5)."
        )


def _check_shape(shape: Any, spec: _Spec, n_channels: int) -> tuple[int, int]:
    try:
        ny, nx = (int(v) for v in shape)
        ok = all(float(v).is_integer() for v in shape)
    except (TypeError, ValueError):
        ok = False
    if not ok or min(ny, nx) < spec.min_shape:
        raise StemsegValueError(
            f"shape={shape!r} is not valid; give (rows, columns), each at least "
            f"{spec.min_shape} pixels for this phantom."
        )
    if ny * nx * n_channels * 2 > _MAX_CUBE_BYTES:
        raise StemsegValueError(
            f"shape={shape!r} with {n_channels} channels would need "
            f"{ny * nx * n_channels * 2 / 2**30:.1f} GiB; reduce shape or n_channels."
        )
    return ny, nx


# =========================================================================== public


def phantom(name: str, shape: tuple[int, int] | None = None, random_state: Any = 0,
            counts_per_pixel: float | None = None, **options: Any) -> Phantom:
    """Simulate a spectrum image of one of the papers' materials, with its ground truth.

    Parameters
    ----------
    name : str
        One of :data:`PHANTOMS`:

        ``"sulfide-6cation"``
            (MnFeCuAgZnCd)S powder, ultramicrotomed section embedded in resin, 200 kV
            (Eggeman et al. 2025). Voronoi grains (~``grain_px`` px) inside resin-embedded
            particles: chalcopyrite, jalpaite and majority wurtzite (the paper's Table 1,
            workflow-1 compositions normalised to 100 % as truth), and minority wurtzite
            only as a rim ``rim_px`` px wide where wurtzite meets anything else. Resin:
            C 82, O 18 at. % (epoxy; H invisible; no S). Thickness: 50 nm section with
            +-12 % smooth variation and a +-8 % wedge. Stray Au (grid, 1 % of the counts) and
            a 2 nm carbon contamination layer; never Cu. Default shape (128, 128), 40 nm
            pixels; **default 200 counts per pixel** (mean over the grains; the resin gives
            ~50, mostly C Ka), 2048 channels of 10 eV.
        ``"nanoparticles-7cation"``
            (AgInCoCuGaMnZn)S spheres (18-36 nm, 35 % coverage) on a 15 nm carbon film
            (C 97, O 3), 200 kV; thickness = chord length; one uniform composition (Table 2,
            workflow 2, normalised). Stray Au (1 %). ``core_shell=True`` adds a real core
            (radius ``core_fraction`` = 0.5 of the particle) with Co, Mn and Zn multiplied
            by ``enrichment`` (default **1.5x**) at the expense of the other cations (S
            unchanged). Default shape (128, 128), 1 nm pixels, **default 170 counts per
            pixel** (mean over particle pixels; the film gives ~50, mostly C Ka). Paper:
            gross element-map counts of 1-2 per pixel for Co, Mn, Zn and 15-20 for Ag. Here
            (windows of +-1 FWHM, as ``get_lines_intensity``): Co 2.3, Mn 0.9, Zn 1.9,
            Ag 13.8. The simulated Ag/Co ratio (~6) is below the paper's (~10), so both
            ranges cannot hold at once; the default sits between them.
        ``"lfo-sto"``
            Cross-section of a LaFeO3 film (10-15 nm) on SrTiO3 under a Cr (or Pt) cap,
            300 kV (Ter-Petrosyan et al. 2024). Geometry per variant
            (:data:`LFO_STO_VARIANTS`): pixel sizes 50, 35.5, 50 and 71 pm and maps of 500,
            496, 510 and 510 px for (pristine, 0 dpa), (pristine, 0.1 dpa), (defective,
            0 dpa) and (defective, 0.1 dpa), so that chips of 15, 20, 15 and 10 px (~0.7 nm)
            give the paper's Table II grids (33, 24, 34 and 51 chips per side). HAADF: Z
            contrast, perovskite [100] column images (LFO pseudo-cubic 0.394 nm, STO
            0.3905 nm, 0.8 nm intermixed interface), line jitter and shot noise.
            ``defective=True`` adds vertical defect domains (4-5.5 nm) with the lattice
            expanded by 0.42/0.41, dark striations at their edges, and O +3 %, La -8 %,
            Fe -1 % (relative). ``irradiated=True`` adds a triangular amorphous region at
            the top of the LFO (no lattice; O +4 %, La -7 %, Fe -5 %) and a 20 % thicker STO
            on the right. Stray Cu (0.5 %) and Ga (0.3 %) from the FIB lamella, 1 nm carbon
            contamination. **Default 10 counts per pixel**: a 2 us dwell at ~40,000 counts/s
            gives ~0.08 counts per pixel and frame, so this is ~125 summed frames (the paper
            gives no count rate). 1024 channels of 20 eV (to 20.3 keV; Sr Ka included),
            uint16, ~0.5 GB for a 510 x 510 map.

        ``"steel-mos2-pbs"``
            The check map of issue 16, made *not* with the physics that quantifies it: a
            10 nm film at 200 kV of steel (Fe 70, Cr 20, Ni 10 at. %) with MoS2 grains (a
            smooth random field, ``mos2_fraction`` = 0.3 of the map) and ``n_particles`` = 8
            PbS discs of radius ``particle_radius_px`` = 5-7 px (~5 % of the pixels). S Ka,
            Mo La and Pb Ma lie within 55 eV of each other, Mo Ka and Pb La are doublets.
            ``line_model="xraylib"`` (default here): every X-ray transition at its own
            energy with xraylib's rates (:func:`stemseg.xray.transition_spectrum`), whereas
            the other phantoms and the exspy line model use exspy's line families;
            ``cross_section="bethe"`` also draws the lines with the Bethe cross-sections
            instead of the Bote-Salvat ones the k-factors use, so line ratios differ from
            the k-factors by up to ~15 % as a real specimen's may. 2 nm pixels, default
            (128, 128), **500 counts per pixel**, 2048 channels of 10 eV (Mo Ka and Kb on
            the axis), no stray lines or contamination.

        The paper's absolute d-spacing (0.41 nm for ordered LFO) is not a physical LaFeO3
        spacing (pseudo-cubic 0.393-0.394 nm; likely a calibration offset of the
        magnification), so the phantom uses the physical spacing and the paper's *ratio*
        for the defects; compare spacings relative to ``truth["lattice_spacing_nm"]``.
    shape : (int, int), optional
        (rows, columns) of the map; default per phantom (above).
    random_state : int, None or numpy.random.Generator
        Seed. The same seed gives the same cube; geometry, HAADF noise and counts use
        independent streams, so changing ``counts_per_pixel`` keeps the geometry.
    counts_per_pixel : float, optional
        Mean expected X-ray counts per pixel (all channels, zero peak excluded) over the
        sample pixels (grains; particles; the whole cross-section). Default per phantom.
    **options
        Per phantom (defaults in parentheses): all: ``n_channels``,
        ``channel_width_keV`` (energy axis from -0.2 keV). sulfide: ``pixel_size_nm`` (40),
        ``section_nm`` (50), ``grain_px`` (16), ``rim_px`` ((2, 4)),
        ``particle_fraction`` (0.65). nanoparticles: ``pixel_size_nm`` (1), ``core_shell``
        (False), ``enrichment`` (1.5), ``core_fraction`` (0.5), ``diameter_nm``
        ((18, 36)), ``coverage`` (0.35), ``film_nm`` (15). lfo-sto: ``defective`` (False),
        ``irradiated`` (False), ``cap`` ("Cr" or "Pt"), ``pixel_size_nm`` (per variant),
        ``lamella_nm`` (40). steel-mos2-pbs: ``pixel_size_nm`` (2), ``film_nm`` (10),
        ``mos2_fraction`` (0.3), ``n_particles`` (8), ``particle_radius_px`` ((5, 7)),
        ``line_model`` ("xraylib" or "exspy"), ``cross_section`` ("bote-salvat" or
        "bethe").

    Returns
    -------
    Phantom
        ``eds``: ``EDSTEMSpectrum`` (y, x | channels), integer counts (uint16; uint32 if
        needed); ``haadf``: ``Signal2D`` (y, x), float32, same nm grid (also in
        ``images["HAADF"]``); ``labels`` (y, x) int indexing ``phases``; ``thickness``
        (y, x) nm (total along the beam); ``truth``: ``pixel_size_nm``,
        ``counts_per_pixel``, ``dose_electrons_per_pixel``, ``options``, ``name``,
        ``stray_elements``, ``support_phase`` and per phantom: sulfide ``grains``,
        ``rim_mask``, ``particle_mask``, ``paper_cluster``; nanoparticles ``particles_px``
        ([cy, cx, r]), ``particle_id``, ``particle_thickness``, ``core_thickness`` (nm),
        ``enrichment``, ``enriched_elements``, ``core_radius_fraction``; lfo-sto
        ``regions`` (name -> label), ``lattice_spacing_nm`` (name -> nm or None),
        ``defect_expansion``, ``defect_domains_px``, ``layers_px``, ``sto_thick_mask``,
        ``chip_px``, ``magnification_Mx``, ``table2``; steel-mos2-pbs ``particles_px``,
        ``film_thickness_nm``, ``line_model``, ``cross_section``.

    Raises
    ------
    StemsegValueError
        Unknown name or option (the message lists the valid ones), a shape smaller than
        the phantom's minimum or too large for memory, non-positive ``counts_per_pixel``,
        an invalid option value.

    Examples
    --------
    >>> from stemseg import simulate
    >>> ph = simulate.phantom("sulfide-6cation", shape=(64, 64), random_state=1)
    >>> ph.eds.data.shape
    (64, 64, 2048)
    >>> [p.name for p in ph.phases]  # doctest: +NORMALIZE_WHITESPACE
    ['resin', 'chalcopyrite', 'jalpaite', 'majority wurtzite', 'minority wurtzite']
    """
    if not isinstance(name, str) or name not in _SPECS:
        raise _unknown_name(name)
    spec = _SPECS[name]
    opts = _resolve_options(name, spec, dict(options))
    if name == "lfo-sto" and opts["pixel_size_nm"] is None:
        opts["pixel_size_nm"] = _lfo_variant(opts)["pixel_size_nm"]
    if shape is None:
        shape = spec.default_shape(opts)
    shape = _check_shape(shape, spec, opts["n_channels"])
    cpp = spec.counts_per_pixel if counts_per_pixel is None else _check_positive(
        "counts_per_pixel", counts_per_pixel, 1e6)
    geo_rng, img_rng, count_rng = _rng_streams(random_state)
    scene_opts = {k: v for k, v in opts.items() if k not in ("n_channels", "channel_width_keV")}
    scene = spec.builder(shape, geo_rng, img_rng, **scene_opts)
    axis = _EnergyAxis(_ENERGY_OFFSET_KEV, opts["channel_width_keV"], int(opts["n_channels"]))
    _lines(scene, axis)  # fail early on an axis too short for the sample's lines
    detector = "super-x"
    comps, dose = _components(scene, axis, cpp, detector)
    counts = _poisson_cube(comps, shape, count_rng)
    eds = _eds_signal(counts, scene, axis, detector, name)
    haadf = _haadf_signal(scene.haadf, scene.pixel_size_nm, name)
    truth = dict(scene.truth)
    truth.update(name=name, counts_per_pixel=cpp, dose_electrons_per_pixel=dose,
                 options=_jsonable(opts),
                 random_state=(int(random_state)
                               if isinstance(random_state, (int, np.integer)) else None))
    return Phantom(eds=eds, haadf=haadf, images={"HAADF": haadf}, source=None,
                   labels=scene.labels.astype(np.int32), phases=list(scene.phases),
                   thickness=scene.thickness.astype(np.float32), truth=truth)


# =========================================================================== save / load

_FORMATS = (".hspy", ".zspy")


def same_phantom(obj: Any, name: str, shape: tuple[int, int] | None = None,
                 random_state: Any = 0, counts_per_pixel: float | None = None,
                 **options: Any) -> bool:
    """Whether ``obj`` is what ``phantom(name, shape, random_state, ...)`` would simulate.

    A notebook that already holds a phantom can reuse it instead of simulating (and
    holding) the same map twice.

    Parameters
    ----------
    obj : Phantom or anything else
        A phantom from :func:`phantom` (or :func:`load`); anything else gives False.
    name, shape, random_state, counts_per_pixel, **options
        As for :func:`phantom`; defaults are resolved the same way.

    Returns
    -------
    bool
        True only when the name, the map shape (pixels), the integer seed, the counts per
        pixel and every resolved option agree; False for a seed that is not an integer.
    """
    truth = getattr(obj, "truth", None)
    if not isinstance(truth, dict) or truth.get("name") != name or name not in _SPECS:
        return False
    if not isinstance(random_state, (int, np.integer)) or truth.get("random_state") != int(
            random_state):
        return False
    spec = _SPECS[name]
    opts = _resolve_options(name, spec, dict(options))
    if name == "lfo-sto" and opts["pixel_size_nm"] is None:
        opts["pixel_size_nm"] = _lfo_variant(opts)["pixel_size_nm"]
    want_shape = tuple(int(n) for n in (shape or spec.default_shape(opts)))
    cpp = spec.counts_per_pixel if counts_per_pixel is None else float(counts_per_pixel)
    return (tuple(obj.eds.data.shape[:2]) == want_shape
            and float(truth.get("counts_per_pixel", -1)) == float(cpp)
            and truth.get("options") == _jsonable(opts))


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value


def _split_truth(truth: dict[str, Any]) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    arrays = {k: v for k, v in truth.items() if isinstance(v, np.ndarray)}
    rest = {k: _jsonable(v) for k, v in truth.items() if k not in arrays}
    return arrays, rest


def _check_format(path: Path) -> None:
    if path.suffix not in _FORMATS:
        raise StemsegValueError(
            f"Cannot save a phantom as '{path.name}': use a .hspy (HDF5) or .zspy (Zarr) "
            "file name."
        )
    if path.suffix == ".zspy":
        try:
            import zarr  # noqa: F401
        except ImportError as err:
            raise StemsegDependencyError(
                "Saving .zspy needs the 'zarr' package, which is not installed; install it "
                "(pip install zarr) or save as .hspy."
            ) from err


def save(phantom: Phantom, path: str | Path, overwrite: bool = False) -> Path:
    """Write a phantom (EDS cube, HAADF and truth) to a .hspy or .zspy file, atomically.

    The truth (labels, phase table, thickness, HAADF image, ``truth`` dict) is stored in the
    EDS signal's ``metadata.Phantom`` so that :func:`load` restores the same Phantom; the
    file also opens as a plain EDS map in HyperSpy (``hs.load``) or :func:`stemseg.io.load`.

    Parameters
    ----------
    phantom : Phantom
        From :func:`phantom` (not modified).
    path : str or pathlib.Path
        Destination, ending in ``.hspy`` or ``.zspy``.
    overwrite : bool
        Replace an existing file. Default False: an existing file is refused.

    Returns
    -------
    pathlib.Path
        The path written.

    Raises
    ------
    StemsegFileExistsError
        ``path`` exists and ``overwrite`` is False.
    StemsegFileNotFoundError
        The destination folder does not exist.
    StemsegValueError
        Not a phantom, or an unsupported extension.
    StemsegDependencyError
        ``.zspy`` without the zarr package.
    """
    from .outputs import atomic_path

    if not isinstance(phantom, Phantom) or phantom.labels is None:
        raise StemsegValueError(
            f"save() needs a Phantom from stemseg.simulate.phantom(); got "
            f"{type(phantom).__name__}. Save a measured map with its signal's .save()."
        )
    path = Path(path)
    _check_format(path)
    signal = with_data(phantom.eds, phantom.eds.data)  # shares the cube, not copied
    arrays, rest = _split_truth(phantom.truth)
    md = {
        "format": "stemseg-phantom-1",
        "phases_json": json.dumps([{"name": p.name, "composition": p.composition}
                                   for p in phantom.phases]),
        "truth_json": json.dumps(rest),
        "labels": np.asarray(phantom.labels),
        "thickness": np.asarray(phantom.thickness),
        "truth_arrays": {k: (v.astype(np.uint8) if v.dtype == bool else v)
                         for k, v in arrays.items()},
        "bool_arrays": [k for k, v in arrays.items() if v.dtype == bool],
    }
    if phantom.haadf is not None:
        md["haadf"] = np.asarray(phantom.haadf.data)
    signal.metadata.set_item("Phantom", md)
    with atomic_path(path, overwrite=overwrite) as tmp:
        signal.save(tmp, overwrite=True)
    return path


def load(path: str | Path, lazy: bool = False) -> Phantom:
    """Read a phantom written by :func:`save`.

    Parameters
    ----------
    path : str or pathlib.Path
        A .hspy or .zspy file written by :func:`save`.
    lazy : bool
        Keep the EDS cube on disk (dask array) instead of reading it into memory.

    Returns
    -------
    Phantom
        Equal to the saved one (truth arrays and values; tuples come back as lists).

    Raises
    ------
    StemsegFileNotFoundError
        ``path`` does not exist.
    StemsegFileFormatError
        The file is not a stemseg phantom (use :func:`stemseg.io.load` for measured maps).
    """
    import hyperspy.api as hs

    path = Path(path)
    if not path.exists():
        raise StemsegFileNotFoundError(f"'{path}' does not exist; check the path.")
    try:
        signal = hs.load(path, lazy=lazy)
    except Exception as err:  # noqa: BLE001 - any reader failure means "not readable"
        raise StemsegFileFormatError(f"'{path}' could not be read as a HyperSpy file: {err}"
                                     ) from err
    md = signal.metadata.get_item("Phantom") if not isinstance(signal, list) else None
    if md is None or md.get_item("format") != "stemseg-phantom-1":
        raise StemsegFileFormatError(
            f"'{path}' is not a stemseg phantom (no metadata.Phantom); read measured maps "
            "with stemseg.io.load()."
        )
    md = md.as_dictionary()
    del signal.metadata.Phantom
    truth = json.loads(md["truth_json"])
    bools = set(md.get("bool_arrays") or [])
    for key, value in (md.get("truth_arrays") or {}).items():
        value = np.asarray(value)
        truth[key] = value.astype(bool) if key in bools else value
    phases = [Phase(p["name"], dict(p["composition"])) for p in json.loads(md["phases_json"])]
    pixel = float(signal.axes_manager.navigation_axes[0].scale)
    haadf = _haadf_signal(np.asarray(md["haadf"]), pixel, truth.get("name", "")) \
        if "haadf" in md else None
    return Phantom(eds=signal, haadf=haadf, images={} if haadf is None else {"HAADF": haadf},
                   source=path, labels=np.asarray(md["labels"]),
                   phases=phases, thickness=np.asarray(md["thickness"]), truth=truth)
