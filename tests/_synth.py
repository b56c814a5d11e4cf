"""A small synthetic Poisson spectrum image with known phases, for the stage tests.

Four phases (matrix, narrow vertical stripes, blobs, a horizontal band), each a continuum
plus Gaussian lines at phase-specific energies and the detector's zero peak; calibrated
axes (nm, keV) on an exspy ``EDSTEMSpectrum``.
"""

from __future__ import annotations

import numpy as np

# line energies (keV) and relative heights per phase
PHASE_LINES = [
    {2.31: 1.0, 6.40: 0.6},            # 0 matrix: "S Ka", "Fe Ka"
    {2.31: 1.0, 8.05: 0.9},            # 1 stripes: "S", "Cu"
    {2.31: 0.6, 2.98: 1.0},            # 2 blobs: "S", "Ag La"
    {2.31: 1.0, 5.90: 0.7, 8.64: 0.4},  # 3 band: "S", "Mn", "Zn"
]


def truth_map(shape: tuple[int, int] = (64, 64)) -> np.ndarray:
    ny, nx = shape
    y, x = np.mgrid[:ny, :nx]
    labels = np.zeros(shape, dtype=int)
    for x0 in (8, 21, 40):
        labels[(x >= x0) & (x < x0 + 4)] = 1
    for cy, cx in ((16, 30), (36, 14), (30, 52)):
        labels[(y - cy) ** 2 + (x - cx) ** 2 <= 25] = 2
    labels[(y >= 50) & (y < 56)] = 3
    return labels


def phase_spectra(energy: np.ndarray) -> np.ndarray:
    """(n_phases, n_channels) expected spectrum shapes, each summing to 1."""
    out = []
    for lines in PHASE_LINES:
        s = 0.4 * np.exp(-0.5 * (energy / 0.05) ** 2)  # zero peak
        s += 0.02 * np.clip(energy, 0, None) * np.exp(-energy / 3.0)  # continuum
        for e, h in lines.items():
            s += h * np.exp(-0.5 * ((energy - e) / 0.06) ** 2)
        out.append(s / s.sum())
    return np.array(out)


def synthetic_cube(shape: tuple[int, int] = (64, 64), n_channels: int = 512,
                   counts: float = 150.0, random_state: int = 0, pixel_nm: float = 0.5,
                   dtype: type = np.uint16):
    """Return (EDSTEMSpectrum, truth labels (y, x))."""
    import exspy

    rng = np.random.default_rng(random_state)
    energy = -0.2 + 0.04 * np.arange(n_channels)
    labels = truth_map(shape)
    lam = counts * phase_spectra(energy)[labels]
    s = exspy.signals.EDSTEMSpectrum(rng.poisson(lam).astype(dtype))
    for axis, name in zip(s.axes_manager.navigation_axes, ("x", "y")):
        axis.name, axis.units, axis.scale = name, "nm", pixel_nm
    e = s.axes_manager.signal_axes[0]
    e.name, e.units, e.scale, e.offset = "Energy", "keV", 0.04, -0.2
    s.set_microscope_parameters(beam_energy=200.0)
    s.metadata.General.title = "synthetic"
    return s, labels
