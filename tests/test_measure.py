"""Tests of stemseg.measure.d_spacing on synthetic lattices and the lfo-sto phantoms."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from stemseg import StemsegValueError
from stemseg import measure
from stemseg import simulate as sim

# --------------------------------------------------------------------------- builders


def _perovskite(side: int, a_nm: float, px_nm: float, noise: float = 0.3, seed: int = 0,
                shift=(0.013, 0.021)) -> np.ndarray:
    """[100] perovskite image: bright A columns at the corners, weaker B at the centre."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[:side, :side] * px_nm

    def near(c, origin):
        t = (c - origin) / a_nm
        return (t - np.round(t)) * a_nm

    def column(u, v, sigma=0.06):
        return np.exp(-(u**2 + v**2) / (2 * sigma**2))

    image = 3.0 * column(near(x, shift[1]), near(y, shift[0]))
    image += column(near(x, shift[1] + a_nm / 2), near(y, shift[0] + a_nm / 2))
    return image + rng.normal(0, noise, image.shape)


def _amorphous(side: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return ndimage.gaussian_filter(rng.normal(size=(side, side)), 2.0)


# --------------------------------------------------------------------------- synthetic


def test_cosine_lattice_exact():
    y, x = np.mgrid[:128, :128] * 0.05
    lattice = np.cos(2 * np.pi * x / 0.39) + np.cos(2 * np.pi * y / 0.39)
    assert measure.d_spacing(lattice, pixel_size_nm=0.05) == pytest.approx(0.39, abs=2e-4)


@pytest.mark.parametrize("side", [40, 80, 200])
@pytest.mark.parametrize("a", [0.3905, 0.394, 0.404])
def test_perovskite_lattice_sub_bin(side, a):
    d = measure.d_spacing(_perovskite(side, a, 0.05), pixel_size_nm=0.05)
    # one FFT bin is ~ a / (side * px / a) = 20 % of a at 40 px; refinement does far better
    assert d == pytest.approx(a, rel=0.006 if side < 64 else 0.003)


def test_fundamental_not_strongest_reflection():
    """SrTiO3-like: (110) stronger than (100); the (100) spacing is reported."""
    side, a, px = 160, 0.3905, 0.05
    y, x = np.mgrid[:side, :side] * px
    image = np.cos(2 * np.pi * x / a) + np.cos(2 * np.pi * y / a)  # (100), weak
    image += 3 * (np.cos(2 * np.pi * (x + y) / a) + np.cos(2 * np.pi * (x - y) / a))
    assert measure.d_spacing(image, pixel_size_nm=px) == pytest.approx(a, rel=0.002)


@pytest.mark.parametrize("side", [40, 100, 200])
def test_amorphous_gives_none(side):
    assert measure.d_spacing(_amorphous(side), pixel_size_nm=0.05) is None
    ramp = np.arange(side)[None, :] * 0.01
    noisy = _amorphous(side, 1) + ramp + np.random.default_rng(2).normal(0, 0.1, (side, side))
    assert measure.d_spacing(noisy, pixel_size_nm=0.05) is None


def test_flat_image_gives_none():
    assert measure.d_spacing(np.ones((64, 64)), pixel_size_nm=0.1) is None


def test_signal2d_input_with_pm_axes():
    from hyperspy.signals import Signal2D

    image = Signal2D(_perovskite(120, 0.394, 0.05))
    for axis in image.axes_manager.signal_axes:
        axis.units, axis.scale = "pm", 50.0
    assert measure.d_spacing(image) == pytest.approx(0.394, rel=0.003)


def test_mask_and_nan_regions_use_the_largest_square():
    left = _perovskite(200, 0.394, 0.05, seed=1)
    right = _perovskite(200, 0.404, 0.05, seed=2)
    image = np.where(np.arange(200)[None, :] < 120, left, right)
    mask = np.zeros(image.shape, dtype=bool)
    mask[20:180, 0:110] = True  # 110 x 110 square inside the left lattice
    d, info = measure.d_spacing(image, pixel_size_nm=0.05, mask=mask, details=True)
    assert d == pytest.approx(0.394, rel=0.003)
    assert info["square"][2] == 110 and info["n_peaks"] >= 2
    cut = np.where(np.arange(200)[None, :] >= 125, image, np.nan)  # NaN = outside
    assert measure.d_spacing(cut, pixel_size_nm=0.05) == pytest.approx(0.404, rel=0.003)


def test_small_region_warns_and_returns_none():
    with pytest.warns(UserWarning, match="at least"):
        assert measure.d_spacing(np.ones((8, 30)), pixel_size_nm=0.05) is None


def test_largest_square_matches_brute_force():
    rng = np.random.default_rng(3)
    for _ in range(20):
        region = ndimage.binary_opening(rng.random((30, 25)) > 0.25)
        best = 0
        for r in range(30):
            for c in range(25):
                k = 0
                while r + k < 30 and c + k < 25 and region[r:r + k + 1, c:c + k + 1].all():
                    k += 1
                best = max(best, k)
        r0, c0, side = measure.largest_square(region)
        assert side == best
        assert region[r0:r0 + side, c0:c0 + side].all()


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"image_region": np.ones((32, 32))}, "pixel_size_nm"),
        ({"image_region": np.ones((4, 32, 32)), "pixel_size_nm": 0.1}, "2-D"),
        ({"image_region": np.ones((32, 32)), "pixel_size_nm": -1}, "positive"),
        ({"image_region": np.ones((32, 32)), "pixel_size_nm": 0.1,
          "mask": np.ones((10, 10), bool)}, "shape"),
        ({"image_region": np.ones((32, 32)), "pixel_size_nm": 0.1,
          "mask": np.ones((32, 32))}, "boolean"),
    ],
)
def test_invalid_inputs_raise(kwargs, match):
    with pytest.raises(StemsegValueError, match=match):
        measure.d_spacing(**kwargs)


def test_uncalibrated_signal_raises():
    from hyperspy.signals import Signal2D

    with pytest.raises(StemsegValueError, match="not a length"):
        measure.d_spacing(Signal2D(np.ones((32, 32))))


# --------------------------------------------------------------------------- phantoms


@pytest.fixture(scope="module", params=[(False, False), (False, True), (True, False),
                                        (True, True)], ids=lambda p: f"def{p[0]}-irr{p[1]}")
def oxide(request):
    defective, irradiated = request.param
    return sim.phantom("lfo-sto", defective=defective, irradiated=irradiated,
                       n_channels=128, random_state=0)


def _region_d(ph, name):
    mask = ph.labels == ph.truth["regions"][name]
    return measure.d_spacing(ph.haadf, mask=mask)


def test_phantom_spacings_match_truth(oxide):
    truth = oxide.truth["lattice_spacing_nm"]
    ordered = _region_d(oxide, "ordered LFO")
    assert ordered == pytest.approx(truth["ordered LFO"], abs=0.005)
    assert _region_d(oxide, "STO") == pytest.approx(truth["STO"], abs=0.005)
    if "disordered LFO" in truth:
        ratio = _region_d(oxide, "disordered LFO") / ordered
        expected = truth["disordered LFO"] / truth["ordered LFO"]
        assert expected == pytest.approx(0.42 / 0.41)
        assert ratio == pytest.approx(expected, abs=0.01)
    if "amorphous LFO" in truth:
        assert _region_d(oxide, "amorphous LFO") is None
    assert _region_d(oxide, "cap") is None  # the cap is rendered without lattice


def test_power_spectrum_peak_gives_the_d_spacing():
    # 0.05 nm pixels, a 0.39 nm square lattice: the peak radius converts back to d
    y, x = np.mgrid[:128, :128] * 0.05
    lattice = np.cos(2 * np.pi * x / 0.39) + np.cos(2 * np.pi * y / 0.39)
    spec = measure.power_spectrum(lattice, pixel_size_nm=0.05)
    assert spec["power"].shape == (spec["n_fft"], spec["n_fft"]) == (512, 512)
    assert spec["d_spacing_nm"] == pytest.approx(0.39, rel=2e-3)
    assert measure.d_from_peak(spec["peak_radius_px"], spec["n_fft"], 0.05) == pytest.approx(
        spec["d_spacing_nm"])
    k = int(np.argmax(spec["power"][spec["n_fft"] // 2, spec["n_fft"] // 2 + 5:])) + 5
    assert spec["frequency_per_nm"][spec["n_fft"] // 2 + k] == pytest.approx(1 / 0.39, rel=0.02)
    flat = measure.power_spectrum(np.random.default_rng(0).normal(size=(64, 64)),
                                  pixel_size_nm=0.05)
    assert flat["d_spacing_nm"] is None and flat["peak_radius_px"] is None


def test_d_from_peak_formula_and_bad_radius():
    assert measure.d_from_peak(20.0, 256, 0.0355) == pytest.approx(256 * 0.0355 / 20)
    with pytest.raises(StemsegValueError, match="> 0"):
        measure.d_from_peak(0.0, 256, 0.05)
