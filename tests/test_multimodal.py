"""Tests of stemseg.multimodal on inputs built so that the answer is known."""

from __future__ import annotations

import sys

import numpy as np
import pytest
from sklearn.metrics import adjusted_mutual_info_score as ami

from stemseg import StemsegDependencyError, StemsegValueError
from stemseg import multimodal as mm
from stemseg._types import Acquisition

# --------------------------------------------------------------------------- builders


def _acquisition(shape=(40, 40), n_channels=16, pixel_nm=0.05, haadf=True, seed=0,
                 haadf_shape=None, haadf_pixel_nm=None):
    """A small calibrated spectrum image with a registered HAADF image."""
    import exspy
    import hyperspy.api as hs

    rng = np.random.default_rng(seed)
    eds = exspy.signals.EDSTEMSpectrum(rng.poisson(2.0, (*shape, n_channels)).astype(float))
    for axis in eds.axes_manager.navigation_axes:
        axis.scale, axis.units = pixel_nm, "nm"
    energy = eds.axes_manager.signal_axes[0]
    energy.scale, energy.offset, energy.units = 0.5, 0.0, "keV"
    image = None
    if haadf:
        image = hs.signals.Signal2D(rng.normal(100.0, 5.0, haadf_shape or shape))
        for axis in image.axes_manager.signal_axes:
            axis.scale, axis.units = haadf_pixel_nm or pixel_nm, "nm"
    return Acquisition(eds=eds, haadf=image)


def _blobs(truth, centres, noise, seed):
    """Features = the centre of each chip's true class + Gaussian noise."""
    rng = np.random.default_rng(seed)
    centres = np.asarray(centres, dtype=float)
    return centres[np.ravel(truth)] + rng.normal(0.0, noise, (np.size(truth), centres.shape[1]))


@pytest.fixture(scope="module")
def chips8():
    """An 8 x 8 grid of 5 px chips (the features are supplied by the tests)."""
    return mm.chip(_acquisition(shape=(40, 42)), size=5)


def _halves(grid, axis):
    rows, cols = np.indices(grid)
    return ((rows if axis == 0 else cols) >= grid[axis] // 2).astype(int)


# --------------------------------------------------------------------------- chipping


def test_chip_grid_is_floor_of_map_over_size():
    acq = _acquisition(shape=(505, 505), n_channels=2)
    chips = mm.chip(acq, size=15)
    assert chips.grid == (33, 33) and chips.n_chips == 1089  # the paper's Table II
    assert chips.haadf.shape == (33, 33, 15, 15)
    assert chips.spectra.shape == (1089, 2)
    # chip (2, 3): pixels [30:45, 45:60]
    k = chips.flat_index(2, 3)
    assert tuple(chips.positions[k]) == (30, 45)
    np.testing.assert_allclose(chips.haadf[2, 3], acq.haadf.data[30:45, 45:60])
    np.testing.assert_allclose(chips.spectra[k], acq.eds.data[30:45, 45:60].sum(axis=(0, 1)))
    # the right/bottom remainder (505 - 495 = 10 px) is not used
    np.testing.assert_allclose(chips.spectra.sum(), acq.eds.data[:495, :495].sum())


def test_chip_size_in_nm_and_rectangular_maps():
    acq = _acquisition(shape=(47, 31), pixel_nm=0.05)
    chips = mm.chip(acq, size=0.5, units="nm")
    assert chips.size_px == 10 and chips.grid == (4, 3)
    assert chips.size_nm == pytest.approx(0.5)
    np.testing.assert_allclose(chips.energy_keV, acq.eds.axes_manager.signal_axes[0].axis)


def test_chip_spectra_signal_keeps_energy_axis():
    acq = _acquisition()
    chips = mm.chip(acq, size=10)
    sig = chips.spectra_signal(chips.spectra[:3])
    assert sig.data.shape == (3, 16)
    assert sig.axes_manager.signal_axes[0].scale == 0.5
    assert sig.metadata.Signal.signal_type == "EDS_TEM"


def test_chips_do_not_hold_the_source_cube():
    # a 40 x 40 x 16 map: the chips keep a one-spectrum template, not the whole map
    acq = _acquisition()
    acq.eds.metadata.General.title = "film"
    chips = mm.chip(acq, size=10)
    assert chips.eds.data.shape == (16,)
    assert not np.shares_memory(chips.eds.data, acq.eds.data)
    assert chips.map_shape == (40, 40)
    assert mm.pixel_labels(np.zeros(chips.grid, dtype=int), chips).shape == (40, 40)
    assert chips.spectra_signal().metadata.General.title == "film chip spectra"


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"size": 1}, "at least 2"),
        ({"size": 41}, "larger than the map"),
        ({"size": 5, "units": "furlong"}, "units"),
        ({"size": 5.5}, "whole number"),
    ],
)
def test_chip_bad_sizes(kwargs, message):
    with pytest.raises(StemsegValueError, match=message):
        mm.chip(_acquisition(), **kwargs)


def test_chip_unregistered_haadf():
    with pytest.raises(StemsegValueError, match="not registered"):
        mm.chip(_acquisition(haadf_shape=(40, 39)), size=5)
    with pytest.raises(StemsegValueError, match="pixel size"):
        mm.chip(_acquisition(haadf_pixel_nm=0.1), size=5)


def test_chip_nm_needs_calibration():
    acq = _acquisition(haadf=False)
    for axis in acq.eds.axes_manager.navigation_axes:
        axis.units = "<undefined>"
    with pytest.raises(StemsegValueError, match="calibrated"):
        mm.chip(acq, size=1.0, units="nm")


def test_no_haadf_only_eds():
    chips = mm.chip(_acquisition(haadf=False), size=10)
    assert chips.haadf is None
    assert mm.segment(chips, "agglomerative", "eds", n_clusters=2).labels.shape == (4, 4)
    for modality in ("haadf", "ensemble"):
        with pytest.raises(StemsegValueError, match="no HAADF"):
            mm.segment(chips, "agglomerative", modality, n_clusters=2)
    with pytest.raises(StemsegValueError, match="no HAADF"):
        mm.haadf_features(chips)


# --------------------------------------------------------------------------- features


def test_fft_features_find_lattice_spacing_and_crystallinity():
    acq = _acquisition(shape=(40, 40), pixel_nm=0.1)
    x = np.arange(40)
    lattice = 100.0 + 20.0 * np.cos(2 * np.pi * x / 5.0)[None, :] * np.ones((40, 1))
    image = acq.haadf.data
    image[:20] = lattice[:20] + np.random.default_rng(1).normal(0, 1, (20, 40))  # top: crystal
    image[20:] = 100.0 + np.random.default_rng(2).normal(0, 10, (20, 40))  # bottom: amorphous
    chips = mm.chip(acq, size=20)
    f = mm.haadf_features(chips)
    assert f.shape == (4, 20 + 4)
    spacing, strength = f[:, -4], f[:, -3]
    np.testing.assert_allclose(spacing[:2], 0.5, rtol=1e-6)  # 5 px x 0.1 nm
    assert strength[:2].min() > strength[2:].max() + 1.0
    np.testing.assert_allclose(f[:, -2], [c.mean() for c in chips.haadf.reshape(-1, 20, 20)])


def test_eds_features_spectra_are_normalised():
    chips = mm.chip(_acquisition(), size=10)
    f = mm.eds_features(chips, energy_range=(1.0, 6.0), bin=2, norm="l1")
    assert f.shape == (16, 5)  # channels at 1.0..6.0 keV (11) binned by 2
    np.testing.assert_allclose(f.sum(axis=1), 1.0)
    f2 = mm.eds_features(chips, norm="l2")
    np.testing.assert_allclose(np.linalg.norm(f2, axis=1), 1.0)
    with pytest.raises(StemsegValueError, match="method"):
        mm.eds_features(chips, method="pca")


def test_cnn_without_torch_says_how_to_install(monkeypatch):
    chips = mm.chip(_acquisition(), size=10)
    monkeypatch.setitem(sys.modules, "torch", None)  # import torch -> ImportError
    with pytest.raises(StemsegDependencyError, match=r'pip install "stemseg\[cnn\]"'):
        mm.haadf_features(chips, method="cnn")
    with pytest.raises(StemsegValueError, match="method"):
        mm.haadf_features(chips, method="vgg")


# --------------------------------------------------------------------------- community


def test_threshold_statistics():
    sim = np.array([[1.0, 0.2, 0.3], [0.2, 1.0, 0.9], [0.3, 0.9, 1.0]])
    assert mm.threshold_value(sim, "mean") == pytest.approx((0.2 + 0.3 + 0.9) / 3)
    assert mm.threshold_value(sim, "median") == pytest.approx(0.3)
    assert mm.threshold_value(sim, 0.5) == 0.5
    n = 21  # 210 pairs: 150 at 0.61, the others spread over [0, 1]
    values = np.r_[np.full(150, 0.61), np.linspace(0.0, 1.0, 60)]
    big = np.eye(n)
    iu = np.triu_indices(n, k=1)
    big[iu] = values
    big.T[iu] = values
    assert mm.threshold_value(big, "mode") == pytest.approx(0.61, abs=0.01)
    with pytest.raises(StemsegValueError, match="threshold"):
        mm.threshold_value(sim, "max")


def test_community_finds_separated_groups(chips8):
    truth = _halves(chips8.grid, 0)
    feats = _blobs(truth, [[3, 0, 0, 1], [0, 3, 1, 0]], 0.3, seed=1)
    res = mm.segment(chips8, "community", "haadf", features={"haadf": feats})
    assert ami(truth.ravel(), res.labels.ravel()) == pytest.approx(1.0)
    assert res.threshold_value is not None


def test_community_ensemble_of_a_modality_with_itself_is_that_modality(chips8):
    truth = _halves(chips8.grid, 0) + 2 * _halves(chips8.grid, 1)
    a = _blobs(truth, np.eye(4) * 2, 0.8, seed=2)
    single = mm.segment(chips8, "community", "haadf", features={"haadf": a})
    both = mm.segment(chips8, "community", "ensemble", features={"haadf": a, "eds": a})
    np.testing.assert_array_equal(single.labels, both.labels)
    assert single.threshold_value == both.threshold_value


def test_community_ensemble_uses_both_modalities(chips8):
    rows, cols = _halves(chips8.grid, 0), _halves(chips8.grid, 1)
    quadrant = rows + 2 * cols
    a = _blobs(rows, [[2, 0, 0], [0, 2, 0]], 0.4, seed=3)  # HAADF sees the row halves
    b = _blobs(cols, [[2, 0, 0], [0, 2, 0]], 0.4, seed=4)  # EDS sees the column halves
    ens = mm.segment(chips8, "community", "ensemble", features={"haadf": a, "eds": b})
    # the averaged graph separates the four quadrants; neither modality alone does
    assert ami(quadrant.ravel(), ens.labels.ravel()) == pytest.approx(1.0)
    eds_only = mm.segment(chips8, "community", "eds", features={"eds": b})
    assert ami(quadrant.ravel(), eds_only.labels.ravel()) < 0.8
    # changing either modality's features changes the ensemble
    flat = _blobs(np.zeros_like(rows), [[2, 0, 0]], 0.4, seed=5)
    for feats in ({"haadf": flat, "eds": b}, {"haadf": a, "eds": flat}):
        other = mm.segment(chips8, "community", "ensemble", features=feats)
        assert ami(ens.labels.ravel(), other.labels.ravel()) < 0.9


def test_community_same_seed_same_labels(chips8):
    feats = np.random.default_rng(7).normal(size=(chips8.n_chips, 5))
    r1 = mm.segment(chips8, "community", "eds", features={"eds": feats}, random_state=3)
    r2 = mm.segment(chips8, "community", "eds", features={"eds": feats}, random_state=3)
    np.testing.assert_array_equal(r1.labels, r2.labels)


# --------------------------------------------------------------------------- agglomerative


def test_vector_vote_gives_product_classes():
    rng = np.random.default_rng(0)
    a, b = rng.integers(0, 3, 200), rng.integers(0, 2, 200)
    v = mm.vector_vote(a, b)
    assert set(np.unique(v)) == set(range(6))
    # a bijection between tuples and classes
    pairs = {(x, y): z for x, y, z in zip(a, b, v)}
    assert len(pairs) == 6 and len(set(pairs.values())) == 6
    np.testing.assert_array_equal(mm.vector_vote(a, a), mm.vector_vote(a))
    with pytest.raises(StemsegValueError, match="same shape"):
        mm.vector_vote(a, b[:10])


def test_agglomerative_ensemble_is_vector_voting(chips8):
    rows, cols = _halves(chips8.grid, 0), _halves(chips8.grid, 1)
    a = _blobs(rows, [[2, 0], [0, 2]], 0.2, seed=8)
    b = _blobs(cols, [[2, 0], [0, 2]], 0.2, seed=9)
    res = mm.segment(chips8, "agglomerative", "ensemble", n_clusters=2,
                     features={"haadf": a, "eds": b})
    assert res.n_classes == 4
    assert ami((rows + 2 * cols).ravel(), res.labels.ravel()) == pytest.approx(1.0)
    assert ami(rows.ravel(), res.modality_labels["haadf"].ravel()) == pytest.approx(1.0)
    with pytest.raises(StemsegValueError, match="n_clusters"):
        mm.segment(chips8, "agglomerative", "eds", features={"eds": b})


# --------------------------------------------------------------------------- few-shot


def _support(truth, per_class=4):
    flat = np.ravel(truth)
    return {f"c{k}": np.flatnonzero(flat == k)[:per_class].tolist() for k in np.unique(flat)}


def test_fewshot_exact_on_separated_prototypes(chips8):
    truth = (np.indices(chips8.grid).sum(axis=0) % 3)  # 3 interleaved classes
    a = _blobs(truth, np.eye(3) * 5, 0.3, seed=10)
    b = _blobs(truth, np.eye(3)[:, ::-1] * 5, 0.3, seed=11)
    for modality in ("haadf", "eds", "ensemble"):
        res = mm.segment(chips8, "fewshot", modality, support=_support(truth),
                         features={"haadf": a, "eds": b})
        np.testing.assert_array_equal(res.labels, truth)
        assert res.classes == ["c0", "c1", "c2"]
        np.testing.assert_allclose(res.scores.sum(axis=2), 1.0)


def test_fewshot_ensemble_weights_scores(chips8):
    truth = _halves(chips8.grid, 0)
    a = _blobs(truth, [[3, 0], [0, 3]], 1.0, seed=12)
    b = _blobs(1 - truth, [[3, 0], [0, 3]], 1.0, seed=13)  # EDS disagrees everywhere...
    support = {"top": [0, 1, 2, 3], "bottom": [60, 61, 62, 63]}
    feats = {"haadf": a, "eds": b}
    # ...except on the support chips, so that each modality has its own prototypes
    h = mm.segment(chips8, "fewshot", "haadf", support=support, features=feats)
    e = mm.segment(chips8, "fewshot", "eds", support=support, features=feats)
    w = mm.segment(chips8, "fewshot", "ensemble", support=support, features=feats,
                   weights=(0.45, 0.55))
    np.testing.assert_allclose(w.scores, 0.45 * h.scores + 0.55 * e.scores)
    np.testing.assert_array_equal(w.labels, np.argmax(w.scores, axis=2))


@pytest.mark.parametrize(
    "support, message",
    [
        ({"a": [0, 1, 2], "b": [4, 5, 6, 7]}, "exactly 4"),
        ({"a": [0, 1, 2, 3, 8], "b": [4, 5, 6, 7]}, "exactly 4"),
        ({"a": [0, 1, 2, 64], "b": [4, 5, 6, 7]}, "out of range"),
        ({"a": [(0, 0), (0, 1), (9, 0), (1, 1)], "b": [4, 5, 6, 7]}, "outside"),
        ({"a": [0, 1, 2, 3]}, "two classes"),
        ([0, 1, 2, 3], "dict"),
    ],
)
def test_fewshot_bad_support(chips8, support, message):
    feats = {"eds": np.random.default_rng(0).normal(size=(64, 3))}
    with pytest.raises(StemsegValueError, match=message):
        mm.segment(chips8, "fewshot", "eds", support=support, features=feats)


def test_fewshot_support_as_row_col_pairs(chips8):
    truth = _halves(chips8.grid, 1)
    feats = {"eds": _blobs(truth, [[4, 0], [0, 4]], 0.3, seed=14)}
    support = {"left": [(0, 0), (1, 0), (2, 1), (3, 1)], "right": [(0, 7), (1, 7), (2, 6), (3, 6)]}
    res = mm.segment(chips8, "fewshot", "eds", support=support, features=feats)
    np.testing.assert_array_equal(res.labels, truth)


# --------------------------------------------------------------------------- segment arguments


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"method": "kmeans"}, "method"),
        ({"modality": "eels"}, "modality"),
        ({"threshold": "max"}, "threshold"),
        ({"weights": (1.0, -1.0)}, "weights"),
        ({"method": "fewshot"}, "support"),
    ],
)
def test_segment_bad_arguments(chips8, kwargs, message):
    with pytest.raises(StemsegValueError, match=message):
        mm.segment(chips8, **kwargs)


def test_segment_precomputed_features_shape(chips8):
    with pytest.raises(StemsegValueError, match="n_chips"):
        mm.segment(chips8, "community", "eds", features={"eds": np.ones((10, 3))})


def test_segment_end_to_end_same_seed_same_labels():
    acq = _acquisition(shape=(30, 30), seed=5)
    chips = mm.chip(acq, size=5)
    for method, kw in (("community", {}), ("agglomerative", {"n_clusters": 3}),
                       ("fewshot", {"support": {"a": [0, 1, 2, 3], "b": [30, 31, 32, 33]}})):
        r1 = mm.segment(chips, method, "ensemble", random_state=0, **kw)
        r2 = mm.segment(chips, method, "ensemble", random_state=0, **kw)
        np.testing.assert_array_equal(r1.labels, r2.labels)
        assert r1.labels.shape == (6, 6)


# --------------------------------------------------------------------------- evaluation


def test_ami_table_layout():
    a = np.array([0, 0, 1, 1, 2, 2])
    b = np.array([1, 1, 0, 0, 2, 2])
    c = np.array([0, 1, 0, 1, 0, 1])
    one = mm.ami_table({"haadf": a, "eds": b, "ensemble": c})
    assert list(one.index) == ["HAADF-EDS", "HAADF-Ensemble", "EDS-Ensemble"]
    assert one.loc["HAADF-EDS", "AMI"] == pytest.approx(1.0)
    assert one.loc["HAADF-Ensemble", "AMI"] == pytest.approx(ami(a, c))
    many = mm.ami_table({"community": {"haadf": a, "eds": b, "ensemble": a},
                         "fewshot": {"haadf": a, "eds": c}}, truth=a)
    assert list(many.columns) == ["community", "fewshot"]
    assert many.loc["Ensemble-Truth", "community"] == pytest.approx(1.0)
    assert np.isnan(many.loc["HAADF-Ensemble", "fewshot"])


def test_truth_labels_majority_and_pixel_labels():
    acq = _acquisition(shape=(20, 30))
    chips = mm.chip(acq, size=10)

    class _P:
        labels = np.zeros((20, 30), int)

    _P.labels[:, 12:] = 1  # chip (., 1) is 2 px of 0 and 8 px of 1 per row
    _P.labels[:, 24:] = 2  # chip (., 2): 4 px of 1, 6 px of 2 per row
    truth = mm.truth_labels(_P, chips)
    np.testing.assert_array_equal(truth, [[0, 1, 2], [0, 1, 2]])
    pix = mm.pixel_labels(truth, chips)
    assert pix.shape == (20, 30) and pix[15, 15] == 1 and pix[0, 29] == 2


def test_percent_difference():
    assert mm.percent_difference(50.0, 55.0) == pytest.approx(10.0)
    assert mm.percent_difference(20.0, 15.0) == pytest.approx(-25.0)
    np.testing.assert_allclose(mm.percent_difference(np.array([10.0, 4.0]), np.array([11.0, 3.0])),
                               [10.0, -25.0])
    with pytest.raises(StemsegValueError, match="ordered"):
        mm.percent_difference(0.0, 1.0)


# --------------------------------------------------------------------------- notebook helpers


def test_support_from_truth_interior_random_and_seed():
    truth = np.zeros((8, 8), int)
    truth[:, 4:] = 1
    truth[6:, :] = 2                                     # a thin bottom band
    sup = mm.support_from_truth(truth, names={0: "left", 1: "right", 2: "band"})
    assert list(sup) == ["left", "right", "band"] and all(len(v) == 4 for v in sup.values())
    rows, cols = np.divmod(np.asarray(sup["left"]), 8)
    # interior: the chips farthest from the other classes (the map edge is no boundary):
    # depth min(6 - row, 4 - col) is 4 at column 0, rows 0-2, and 3 next to them
    assert (np.minimum(6 - rows, 4 - cols) >= 3).all() and 0 in cols
    assert all(truth.ravel()[i] == k for k, name in enumerate(sup) for i in sup[name])
    r1 = mm.support_from_truth(truth, how="random", random_state=3)
    r2 = mm.support_from_truth(truth, how="random", random_state=3)
    assert r1 == r2
    with pytest.raises(StemsegValueError, match="how"):
        mm.support_from_truth(truth, how="best")
    with pytest.raises(StemsegValueError, match="class"):
        mm.support_from_truth(np.zeros((4, 4), int))


def test_segment_all_equals_segment(chips8):
    truth = _halves(chips8.grid, 0) + 2 * _halves(chips8.grid, 1)
    feats = {"haadf": _blobs(truth, np.eye(4) * 3, 0.5, seed=20),
             "eds": _blobs(truth, np.eye(4)[::-1] * 3, 0.5, seed=21)}
    support = _support(truth)
    allres = mm.segment_all(chips8, n_clusters=4, support=support, features=feats)
    assert set(allres) == set(mm.METHODS)
    for method in mm.METHODS:
        for modality in mm.MODALITIES:
            one = mm.segment(chips8, method, modality, n_clusters=4, support=support,
                             features=feats)
            np.testing.assert_array_equal(allres[method][modality].labels, one.labels)
    table = mm.ami_table(allres, truth=truth)
    assert table.loc["Ensemble-Truth", "fewshot"] == pytest.approx(1.0)


def test_assign_regions_and_region_recovery():
    truth = np.array([[0, 0, 1, 1], [0, 0, 1, 1]])
    labels = np.array([[5, 5, 5, 7], [5, 5, 7, 7]])    # cluster 5 is mostly region 0
    np.testing.assert_array_equal(mm.assign_regions(labels, truth),
                                  [[0, 0, 0, 1], [0, 0, 1, 1]])
    rec = mm.region_recovery(labels, truth, 1)
    assert rec["recall"] == pytest.approx(0.75) and rec["precision"] == pytest.approx(1.0)
    assert rec["iou"] == pytest.approx(0.75) and rec["found"]
    missed = mm.region_recovery(np.zeros_like(truth), truth, 1)  # one cluster: region 0 wins
    assert missed["iou"] == 0.0 and not missed["found"]
    with pytest.raises(StemsegValueError, match="shape"):
        mm.assign_regions(labels, truth[:, :2])


def test_paper_ami_table_is_the_papers_table_one():
    from stemseg.data import paper_values

    t1 = paper_values()["terpetrosyan2024_multimodal"]["ami_table1"]
    one = mm.paper_ami_table("Pristine 0.1 dpa")
    assert list(one.columns) == ["community", "agglomerative", "fewshot"]
    assert list(one.index) == ["HAADF-EDS", "HAADF-Ensemble", "EDS-Ensemble"]
    assert one.loc["HAADF-Ensemble"].tolist() == t1["Pristine 0.1 dpa"]["HAADF-Ensemble"]
    assert mm.paper_ami_table().shape == (12, 3)
    with pytest.raises(StemsegValueError, match="Table I"):
        mm.paper_ami_table("Pristine 1 dpa")


def test_truth_labels_takes_an_array():
    chips = mm.chip(_acquisition(shape=(20, 30)), size=10)
    mask = np.zeros((20, 30), int)
    mask[:, 15:] = 1
    np.testing.assert_array_equal(mm.truth_labels(mask, chips), [[0, 0, 1], [0, 0, 1]])


@pytest.fixture(scope="module")
def irradiated_pristine():
    from stemseg import simulate

    ph = simulate.phantom("lfo-sto", irradiated=True, random_state=0)  # the paper's 24 x 24 grid
    chips = mm.chip(ph, size=ph.truth["chip_px"])
    return ph, chips, mm.truth_labels(ph, chips)


def test_fewshot_ensemble_on_the_irradiated_pristine_phantom(irradiated_pristine):
    ph, chips, truth = irradiated_pristine
    support = mm.support_from_truth(truth)
    res = mm.segment_all(chips, methods=("fewshot",), support=support)["fewshot"]
    table = mm.ami_table(res, truth=truth)["AMI"]
    best_single = max(table["HAADF-Truth"], table["EDS-Truth"])
    assert table["Ensemble-Truth"] >= best_single - 0.02, table
    amorphous = ph.truth["regions"]["amorphous LFO"]
    assert mm.region_recovery(res["ensemble"], truth, amorphous)["found"]
    # same seed, same labels
    again = mm.segment(chips, "fewshot", "ensemble", support=support, random_state=0)
    np.testing.assert_array_equal(again.labels, res["ensemble"].labels)


def test_region_summary_of_chosen_regions(irradiated_pristine):
    ph, chips, truth = irradiated_pristine
    regs = ph.truth["regions"]
    lfo = [regs["ordered LFO"], regs["amorphous LFO"]]
    s = mm.region_summary(chips, truth, regions=lfo, names={v: k for k, v in regs.items()})
    assert list(s["name"]) == ["ordered LFO", "amorphous LFO"]
    ordered, amorph = s.iloc[0], s.iloc[1]
    assert ordered["d_spacing_nm"] == pytest.approx(ph.truth["lattice_spacing_nm"]["ordered LFO"],
                                                    rel=0.01)
    assert amorph["d_spacing_nm"] is None or np.isnan(amorph["d_spacing_nm"])
    assert amorph["O"] > ordered["O"] and amorph["La"] < ordered["La"]
    with pytest.raises(StemsegValueError, match="no chip"):
        mm.region_summary(chips, truth, regions=[99])


def test_region_image_is_the_largest_square_of_chips():
    acq = _acquisition(shape=(40, 40))
    chips = mm.chip(acq, size=5)                      # 8 x 8 chips
    mask = np.zeros(chips.grid, dtype=bool)
    mask[2:5, 1:5] = True                             # a 3 x 4 block: the square is 3 x 3
    image, k = mm.region_image(chips, mask)
    assert k == 3 and image.shape == (15, 15)
    np.testing.assert_allclose(image, acq.haadf.data[10:25, 5:20])
    assert mm.region_image(chips, np.zeros(chips.grid, dtype=bool)) == (None, 0)


def test_percent_difference_sigma_propagates_both_uncertainties():
    assert mm.percent_difference_sigma(20.0, 0.0, 19.0, 0.2) == pytest.approx(1.0)
    assert mm.percent_difference_sigma(20.0, 0.2, 20.0, 0.0) == pytest.approx(1.0)
    assert mm.percent_difference_sigma(20.0, 0.2, 20.0, 0.2) == pytest.approx(np.sqrt(2))


def test_best_against_truth_and_ties():
    import pandas as pd

    ami_t = pd.DataFrame({"fewshot": [0.5, 0.70, 0.75], "community": [0.6, 0.605, 0.3]},
                         index=["HAADF-Truth", "EDS-Truth", "Ensemble-Truth"])
    best = mm.best_against_truth(ami_t, "fewshot")
    assert best["best"] == "ensemble" and best["margin"] == pytest.approx(0.05)
    assert best["also"] == ["Ensemble-Truth"]
    tied = mm.best_against_truth(ami_t, "community")
    assert tied["best"] == "eds" and "haadf" in tied["also"]


def test_region_percent_difference_from_a_summary():
    import pandas as pd

    summary = pd.DataFrame({"name": ["ordered", "amorphous"], "La": [20.0, 19.0],
                            "sigma_La": [0.0, 0.2], "O": [60.0, 63.0], "sigma_O": [0.0, 0.6]})
    out = mm.region_percent_difference(summary, "ordered", "amorphous", elements=("La", "O"))
    assert out.loc["La", "percent_difference"] == pytest.approx(-5.0)
    assert out.loc["O", "percent_difference"] == pytest.approx(5.0)
    assert out.loc["La", "sigma"] == pytest.approx(1.0)
