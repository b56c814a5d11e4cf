"""stemseg.preprocess: binning, energy crop, mask, scaling, Poisson weighting, errors."""

from __future__ import annotations

import numpy as np
import pytest

from _synth import synthetic_cube
from stemseg import preprocess as pre
from stemseg._types import Acquisition
from stemseg.errors import StemsegError, StemsegValueError


@pytest.fixture(scope="module")
def cube(synth_32):
    return synth_32


def test_binning_sums_counts_and_keeps_class_metadata(cube):
    s, _ = cube
    p = pre.preprocess(s, bin=2)
    assert type(p.counts) is type(s)
    assert p.counts.data.shape == (16, 16, 256)
    assert p.counts.data.sum() == s.data.astype(np.int64).sum()
    assert p.counts.metadata.Acquisition_instrument.TEM.beam_energy == 200.0
    nav = p.counts.axes_manager.navigation_axes
    assert nav[0].scale == pytest.approx(2 * s.axes_manager.navigation_axes[0].scale)
    assert p.counts.axes_manager.signal_axes[0].scale == s.axes_manager.signal_axes[0].scale
    assert p.X.shape == (256, p.n_features)
    assert p.nav_shape == (16, 16) and p.crop == (32, 32) and p.original_shape == (32, 32)
    assert p.pixel_size_nm == (0.5, 0.5)


def test_input_is_not_modified(cube):
    s, _ = cube
    before = s.data.copy()
    pre.preprocess(s, bin=2, poisson=True)
    np.testing.assert_array_equal(s.data, before)


def test_acquisition_and_signal_give_same_features(cube):
    s, _ = cube
    a = pre.preprocess(Acquisition(eds=s), bin=2)
    b = pre.preprocess(s, bin=2)
    np.testing.assert_array_equal(a.X, b.X)


def test_bin_that_does_not_divide_crops_remainder(cube):
    s, _ = cube
    p = pre.preprocess(s.inav[:31, :29], bin=2)  # x = 31 columns, y = 29 rows
    assert p.original_shape == (29, 31)
    assert p.nav_shape == (14, 15)
    assert p.crop == (28, 30)
    assert p.counts.data.sum() == s.data[:28, :30].astype(np.int64).sum()


def test_energy_range_drops_zero_peak(cube):
    s, _ = cube
    p = pre.preprocess(s, bin=1)
    assert p.energy.min() >= 0.25
    full = pre.preprocess(s, bin=1, energy_range=None)
    assert full.n_features == 256
    window = pre.preprocess(s, bin=1, energy_range=(1.0, 5.0))
    assert window.energy.min() >= 1.0 and window.energy.max() <= 5.0


def test_energy_bin_only_affects_features(cube):
    s, _ = cube
    p = pre.preprocess(s, bin=2, energy_bin=4, energy_range=None)
    assert p.n_features == 64
    assert p.counts.data.shape[-1] == 256  # mean spectra keep the original sampling
    np.testing.assert_allclose(p.energy[0], np.mean(s.axes_manager.signal_axes[0].axis[:4]))


def test_robust_scaler_centres_features(cube):
    s, _ = cube
    p = pre.preprocess(s, bin=2)
    np.testing.assert_allclose(np.median(p.X, axis=0), 0, atol=1e-9)
    raw = pre.preprocess(s, bin=2, scaler=None)
    assert raw.scaler is None
    assert np.all(raw.X >= 0)


def test_features_reproduce_fit_and_scale_unbinned_pixels(cube):
    s, _ = cube
    p = pre.preprocess(s, bin=2, poisson=True)
    binned = p.counts.data.reshape(-1, p.counts.data.shape[-1])
    np.testing.assert_allclose(p.features(binned), p.X, atol=1e-9)
    # unbinned pixels x bin^2 have the binned pixels' expected scale
    full = p.features(s.data.reshape(-1, s.data.shape[-1]), scale=4.0)
    assert abs(np.median(full.mean(0) - p.X.mean(0))) < 0.2


def test_poisson_normalisation_matches_hyperspy(cube):
    s, _ = cube
    p = pre.preprocess(s, bin=1, energy_range=None, poisson=True, scaler=None)
    hs_signal = s.deepcopy()
    hs_signal.change_dtype("float64")
    hs_signal.normalize_poissonian_noise()
    expected = hs_signal.data.reshape(-1, 256)
    # computed in float64, stored as float32 features (preprocess.FEATURE_DTYPE)
    assert p.X.dtype == np.float32
    np.testing.assert_allclose(p.X, expected, rtol=1e-6, atol=1e-9)


def test_mask_original_and_binned_resolution(cube):
    s, _ = cube
    mask = np.ones((32, 32), dtype=bool)
    mask[:, :16] = False
    p = pre.preprocess(s, bin=2, mask=mask)
    assert p.used.sum() == 128 and p.X.shape[0] == 128
    assert not p.used[:, :8].any()
    p2 = pre.preprocess(s, bin=2, mask=p.used)
    np.testing.assert_array_equal(p2.used, p.used)


@pytest.mark.parametrize("bad, fragment", [
    (np.nan, "NaN"), (np.inf, "NaN or infinite"), (-1.0, "negative"),
])
def test_bad_values_raise(cube, bad, fragment):
    s, _ = cube
    s = s.deepcopy()
    s.change_dtype("float32")
    s.data[3, 4, 100] = bad
    with pytest.raises(StemsegValueError, match=fragment) as info:
        pre.preprocess(s)
    assert "data" in str(info.value)


def test_all_zero_map_raises(cube):
    s, _ = cube
    s = s.deepcopy()
    s.data[:] = 0
    with pytest.raises(StemsegValueError, match="no counts"):
        pre.preprocess(s)


def test_counts_only_in_zero_peak_raise(cube):
    s, _ = cube
    s = s.deepcopy()
    s.data[..., 10:] = 0  # channels up to 0.2 keV only
    with pytest.raises(StemsegValueError, match="energy_range"):
        pre.preprocess(s)


@pytest.mark.parametrize("value", [1.5, 0, -2, True, "2", None])
def test_non_integer_bin_raises(cube, value):
    s, _ = cube
    with pytest.raises(StemsegValueError, match="bin must be a whole number"):
        pre.preprocess(s, bin=value)


def test_whole_float_bin_accepted_and_bin_larger_than_map_raises(cube):
    s, _ = cube
    assert pre.preprocess(s, bin=2.0).bin == 2
    with pytest.raises(StemsegValueError, match="larger than the map"):
        pre.preprocess(s, bin=64)
    with pytest.raises(StemsegValueError, match="energy_bin"):
        pre.preprocess(s, energy_bin=1.5)


@pytest.mark.parametrize("kwargs, fragment", [
    (dict(energy_range=(5.0, 1.0)), "below high"),
    (dict(energy_range=(30.0, None)), "Widen it"),
    (dict(energy_range="all"), "energy_range must be"),
    (dict(mask=np.ones((5, 5), dtype=bool)), "mask must have"),
    (dict(mask=np.ones((32, 32))), "boolean"),
    (dict(mask=np.zeros((32, 32), dtype=bool)), "excludes every pixel"),
    (dict(scaler="standard"), "scaler"),
])
def test_bad_parameters_raise(cube, kwargs, fragment):
    s, _ = cube
    with pytest.raises(StemsegValueError, match=fragment):
        pre.preprocess(s, **kwargs)


def test_not_a_spectrum_image_raises(cube):
    s, _ = cube
    with pytest.raises(StemsegValueError, match="EDSTEMSpectrum"):
        pre.preprocess(np.ones((4, 4, 10)))
    with pytest.raises(StemsegError, match="2 navigation axes"):
        pre.preprocess(s.inav[:, 0])


def test_lazy_signal_gives_same_result(cube):
    s, _ = cube
    lazy = s.as_lazy()
    a = pre.preprocess(lazy, bin=2)
    b = pre.preprocess(s, bin=2)
    np.testing.assert_allclose(a.X, b.X)
    assert not a.counts._lazy


@pytest.mark.parametrize("poisson, scaler, energy_bin", [
    (False, "robust", 1), (True, "robust", 1), (True, None, 2), (False, None, 3),
])
def test_project_equals_features_then_projection(poisson, scaler, energy_bin, synth):
    from sklearn.decomposition import PCA

    s, _ = synth
    prep = pre.preprocess(s, 2, poisson=poisson, scaler=scaler, energy_bin=energy_bin)
    pca = PCA(5, random_state=0).fit(prep.X)
    raw = s.data.reshape(-1, s.data.shape[-1])[:3000]
    feats = prep.features(raw, 4)
    assert feats.dtype == np.float32
    expected = (feats.astype(np.float64) - pca.mean_) @ pca.components_.T
    # the features are float32, the folded projection float64: equal to float32 rounding
    # of the features (~6e-8 relative), summed over the channels
    tol = 1e-6 * np.abs(expected).max()
    np.testing.assert_allclose(prep.project(raw, 4, pca.components_, pca.mean_), expected,
                               rtol=1e-6, atol=tol)


def test_fast_robust_scaler_matches_scikit_learn():
    from sklearn.preprocessing import RobustScaler

    x = np.random.default_rng(1).poisson(0.3, (500, 40)).astype(float)
    x[:, 3] = 0.0                                    # zero inter-quartile range -> scale 1
    ours, ref = pre._fit_robust_scaler(x), RobustScaler().fit(x)
    np.testing.assert_allclose(ours.center_, ref.center_)
    np.testing.assert_allclose(ours.scale_, ref.scale_)
    np.testing.assert_allclose(ours.transform(x), ref.transform(x))


@pytest.mark.parametrize("shape, lam", [((4097, 7), 3.0), ((1, 4), 0.5), ((500, 33), 40.0),
                                        ((64, 2), 0.0)])
def test_integer_percentiles_equal_numpy(shape, lam):
    from stemseg.preprocess import _integer_percentiles

    rng = np.random.default_rng(7)
    x = rng.poisson(lam, size=shape).astype(float)
    q = (0.0, 12.5, 25.0, 50.0, 66.7, 75.0, 100.0)
    got = _integer_percentiles(x, q)
    np.testing.assert_array_equal(got, np.percentile(x, list(q), axis=0))
    # float32 copies of counts, declared whole (the check skipped): the same numbers
    x32 = x.astype(np.float32)
    np.testing.assert_array_equal(_integer_percentiles(x32, q, whole=True),
                                  np.percentile(x32, list(q), axis=0))


def test_integer_percentiles_fall_back_for_fractions_and_huge_counts():
    from stemseg.preprocess import _integer_percentiles

    assert _integer_percentiles(np.array([[0.5, 1.0], [2.0, 3.0]]), (50.0,)) is None
    assert _integer_percentiles(np.array([[1e9, 1.0], [2.0, 3.0]]), (50.0,)) is None
    assert _integer_percentiles(np.array([[1.0, 1.0], [-2.0, 3.0]]), (50.0,)) is None


def test_lazy_map_that_bin_does_not_divide_is_cropped_and_summed_exactly():
    """HyperSpy's lazy rebin neither crops nor accepts a bin that does not divide the map."""
    s, _ = synthetic_cube(shape=(65, 63), n_channels=128)
    lazy = s.as_lazy()
    lazy.data = lazy.data.rechunk((16, 16, -1))
    binned = pre.bin_signal(lazy, 2)
    assert binned._lazy and binned.data.shape == (32, 31, 128)
    assert binned.data.dtype == pre.binned_dtype(s.data.dtype, 2)
    assert lazy.data.shape == (65, 63, 128)               # the input is not modified
    a = pre.preprocess(lazy, bin=2)
    b = pre.preprocess(s, bin=2)
    assert a.crop == b.crop == (64, 62) and a.original_shape == (65, 63)
    np.testing.assert_array_equal(a.X, b.X)
    np.testing.assert_array_equal(a.counts.data, b.counts.data)
    assert a.counts.data.dtype == b.counts.data.dtype == pre.binned_dtype(s.data.dtype, 2)
