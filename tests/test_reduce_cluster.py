"""stemseg.reduce (PCA + scree knee, UMAP) and stemseg.cluster (GMM, BIC, HDBSCAN)."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.datasets import make_blobs

from _synth import synthetic_cube
from stemseg import cluster, metrics, preprocess, reduce
from stemseg.errors import StemsegValueError


@pytest.fixture(scope="module")
def prepared():
    s, truth = synthetic_cube(shape=(48, 48), n_channels=256)
    return preprocess.preprocess(s, bin=2), truth[::2, ::2]


@pytest.fixture(scope="module")
def blobs():
    X, y = make_blobs(n_samples=600, centers=3, n_features=4, cluster_std=0.5,
                      random_state=1)
    return X, y


# ---------------------------------------------------------------- scree and PCA

def _step_curve(n_signal: int, n: int = 30) -> np.ndarray:
    rng = np.random.default_rng(0)
    signal = np.linspace(0.3, 0.1, n_signal)
    noise = 1e-3 * np.exp(-np.arange(n - n_signal) / 40) * (1 + 0.02 * rng.random(n - n_signal))
    return np.concatenate([signal, noise])


@pytest.mark.parametrize("n_signal", [2, 3, 5, 8])
def test_scree_knee_counts_signal_components_like_hyperspy(n_signal):
    import hyperspy.api as hs

    evr = _step_curve(n_signal)
    elbow = hs.signals.Signal1D(np.zeros((2, 2))).estimate_elbow_position(evr, max_points=20)
    # HyperSpy: the number of significant components is elbow_position + 1
    assert reduce.scree_knee(evr, method="hyperspy") == elbow + 1
    assert reduce.scree_knee(evr) in (n_signal, n_signal + 1)


def test_scree_knee_short_and_bad_method():
    assert reduce.scree_knee(np.array([0.9, 0.1])) == 2
    with pytest.raises(StemsegValueError, match="method"):
        reduce.scree_knee(_step_curve(3), method="guess")


def test_pca_reducer_automatic_and_override(prepared):
    p, _ = prepared
    auto = reduce.PCAReducer(random_state=0).fit(p.X)
    assert auto.explained_variance_ratio_.shape == (reduce.MAX_COMPONENTS,) == (30,)
    assert 3 <= auto.n_components_ <= 5  # 4 phases: 3 signal components (+1 at the knee)
    assert auto.transform(p.X).shape == (p.X.shape[0], auto.n_components_)
    fixed = reduce.PCAReducer(n_components=7, random_state=0).fit(p.X)
    assert fixed.n_components_ == 7 and fixed.knee_ == auto.knee_
    floor = reduce.PCAReducer(min_components=9, random_state=0).fit(p.X)
    assert floor.n_components_ == 9


@pytest.mark.parametrize("n, fragment", [(10_000, "energy channels"), (0, ">= 1"),
                                         (2.5, ">= 1")])
def test_pca_reducer_bad_n_components(prepared, n, fragment):
    p, _ = prepared
    with pytest.raises(StemsegValueError, match=fragment):
        reduce.PCAReducer(n_components=n).fit(p.X)


def test_pca_n_components_above_pixels():
    X = np.random.default_rng(0).random((5, 50))
    with pytest.raises(StemsegValueError, match="pixels"):
        reduce.PCAReducer(n_components=10).fit(X)


# ---------------------------------------------------------------- UMAP

def test_knn_graph_puts_each_point_first():
    X = np.random.default_rng(0).random((50, 3))
    X[10] = X[11]  # a duplicate
    idx, dist = reduce.knn_graph(X, 5)
    np.testing.assert_array_equal(idx[:, 0], np.arange(50))
    assert dist.dtype == np.float32 and np.all(dist[:, 0] == 0)


def test_umap_reducer_is_deterministic_and_transforms(blobs):
    X, y = blobs
    a = reduce.UMAPReducer(n_components=4, random_state=0).fit_transform(X)
    b = reduce.UMAPReducer(n_components=4, random_state=0).fit_transform(X)
    assert a.shape == (600, 4)
    np.testing.assert_array_equal(a, b)
    r = reduce.UMAPReducer(n_components=2, random_state=0).fit(X)
    moved = r.transform(X + 0.01)
    # new points land next to the training points they resemble
    near = np.linalg.norm(moved - r.embedding_, axis=1)
    assert np.median(near) < 0.1 * np.ptp(r.embedding_, axis=0).max()


def test_umap_reducer_bad_dimensions():
    X = np.random.default_rng(0).random((10, 3))
    with pytest.raises(StemsegValueError, match="n_components"):
        reduce.UMAPReducer(n_components=20).fit(X)


# ---------------------------------------------------------------- GMM

def test_fit_gmm_defaults_and_recovery(blobs):
    X, y = blobs
    gmm = cluster.fit_gmm(X, 3, random_state=0)
    assert gmm.n_init == cluster.DEFAULT_N_INIT >= 5
    assert metrics.ari(gmm.predict(X), y) > 0.99
    again = cluster.fit_gmm(X, 3, random_state=0)
    np.testing.assert_array_equal(gmm.predict(X), again.predict(X))


@pytest.mark.parametrize("k, fragment", [(0, ">= 1"), (601, "exceeds the 600 pixels"),
                                         (2.0, "whole number")])
def test_fit_gmm_bad_n_clusters(blobs, k, fragment):
    X, _ = blobs
    with pytest.raises(StemsegValueError, match=fragment):
        cluster.fit_gmm(X, k)


def test_bic_curve_minimum_at_true_k(blobs):
    X, _ = blobs
    table = cluster.bic_curve(X, range(1, 6), n_init=2)
    assert list(table.columns) == ["n_clusters", "bic", "aic"]
    assert table.attrs["best"] == 3


def test_gmm_predict_noisy_reduces_to_predict(blobs):
    X, _ = blobs
    gmm = cluster.fit_gmm(X, 3, random_state=0)
    zero = np.zeros((3, 4, 4))
    np.testing.assert_array_equal(cluster.gmm_predict_noisy(gmm, X, zero), gmm.predict(X))


# ---------------------------------------------------------------- HDBSCAN

def test_binned_min_cluster_size_units():
    assert cluster.binned_min_cluster_size(200, "px", bin=2) == 50
    # 0.5 nm pixels: 50 nm^2 = 200 px = 50 binned px
    assert cluster.binned_min_cluster_size(50, "nm2", bin=2, pixel_size_nm=(0.5, 0.5)) == 50
    assert cluster.binned_min_cluster_size(3, "px", bin=2) == 2  # HDBSCAN's minimum


@pytest.mark.parametrize("kwargs, fragment", [
    (dict(min_cluster_size=0), "positive"),
    (dict(min_cluster_size=10, units="um"), "'px' or 'nm2'"),
    (dict(min_cluster_size=10, units="nm2"), "calibrated"),
    (dict(min_cluster_size=1000, bin=2, n_pixels=100), "more than the 100 pixels"),
])
def test_binned_min_cluster_size_errors(kwargs, fragment):
    with pytest.raises(StemsegValueError, match=fragment):
        cluster.binned_min_cluster_size(**kwargs)


def test_fit_hdbscan_weights_and_noise(blobs):
    X, y = blobs
    X = np.vstack([X, np.random.default_rng(0).uniform(-15, 15, (30, 4))])  # scattered noise
    model = cluster.fit_hdbscan(X, 30)
    assert model.labels_.max() + 1 == 3
    assert 0 < cluster.noise_fraction(model.labels_) < 0.1
    w = cluster.hdbscan_weights(model)
    assert w.shape == (630, 3)
    np.testing.assert_array_equal(w[model.labels_ < 0], 0)
    member = model.labels_ >= 0
    assert np.all(w[member].sum(1) <= 1 + 1e-9) and np.all(w[member].sum(1) > 0)
    assert np.mean(w[member].argmax(1) == model.labels_[member]) > 0.95
    soft = cluster.hdbscan_weights(model, noise="soft")
    assert soft[model.labels_ < 0].sum() > 0
    with pytest.raises(StemsegValueError, match="min_cluster_size"):
        cluster.fit_hdbscan(X, 1000)
    with pytest.raises(StemsegValueError, match="min_samples"):
        cluster.fit_hdbscan(X, 30, min_samples=0)


def test_order_by_size():
    labels = np.array([[2, 2, 2], [0, -1, 1], [1, 1, 2]])
    w = np.eye(3)[[2, 2, 2, 0, 0, 1, 1, 1, 2]]
    new, w2, order = cluster.order_by_size(labels, w)
    np.testing.assert_array_equal(order, [2, 1, 0])
    np.testing.assert_array_equal(new, [[0, 0, 0], [2, -1, 1], [1, 1, 0]])
    np.testing.assert_array_equal(w2[:, 0], w[:, 2])
    empty, _, order = cluster.order_by_size(np.full((2, 2), -1))
    assert order.size == 0 and np.all(empty == -1)


# ---------------------------------------------------------------- stages together

def test_stages_on_synthetic_cube(prepared):
    p, truth = prepared
    scores = reduce.PCAReducer(random_state=0).fit_transform(p.X)
    gmm = cluster.fit_gmm(scores, 4, random_state=0)
    assert metrics.ari(gmm.predict(scores).reshape(p.nav_shape), truth) > 0.6


def test_n_major_clusters():
    from stemseg.cluster import n_major_clusters

    labels = np.array([0] * 50 + [1] * 45 + [2] * 3 + [-1] * 2)
    assert n_major_clusters(labels, 0.02) == 3       # 3 of 100 pixels >= 2 %
    assert n_major_clusters(labels, 0.05) == 2
    assert n_major_clusters(np.full(10, -1)) == 0
    with pytest.raises(StemsegValueError, match="min_fraction"):
        n_major_clusters(labels, 2.0)


def test_hdbscan_on_sample_checks_sizes_against_the_whole_map():
    from stemseg.cluster import hdbscan_on_sample

    rng = np.random.default_rng(0)
    emb = rng.normal(size=(1024, 4))
    sample = np.arange(0, 1024, 4)
    with pytest.raises(StemsegValueError, match="exceeds the 1024 pixels"):
        hdbscan_on_sample(emb, sample, 5000)
    with pytest.raises(StemsegValueError, match="at least 2"):
        hdbscan_on_sample(emb, sample, 1)
    with pytest.raises(StemsegValueError, match="min_samples must be"):
        hdbscan_on_sample(emb, sample, 40, min_samples=0)


def test_umap_reducer_embeds_duplicate_rows_once(blobs):
    """Many identical rows (the empty pixels of a sparse map) are embedded once and share
    their point, as umap-learn's unique=True: the same embedding in every run."""
    X, _ = blobs
    dup = np.vstack([X[:200], np.zeros((300, X.shape[1]))])
    r = reduce.UMAPReducer(n_components=2, random_state=0)
    a = r.fit_transform(dup)
    assert r.n_unique_ == 201 and a.shape == (500, 2)
    assert np.ptp(a[200:], axis=0).max() == 0, "the duplicates should share one point"
    np.testing.assert_array_equal(a, reduce.UMAPReducer(n_components=2, random_state=0)
                                  .fit_transform(dup))
    assert r.transform(dup[:5]).shape == (5, 2)


def test_umap_reducer_refuses_a_handful_of_distinct_rows():
    X = np.repeat(np.eye(3), 100, axis=0)
    with pytest.raises(StemsegValueError, match="only 3 distinct spectra"):
        reduce.UMAPReducer(n_components=4, random_state=0).fit(X)


def test_gmm_refuses_more_clusters_than_distinct_spectra():
    from stemseg import workflows

    s, _ = synthetic_cube(shape=(16, 16), n_channels=64)
    s.data[:] = 0
    s.data[0, 0, -10] = 5   # one pixel with counts: two distinct binned spectra
    with pytest.raises(StemsegValueError, match="only 2 distinct"):
        workflows.gmm(s, n_clusters=3, random_state=0)


def test_distinct_rows_first_appearance_and_inverse():
    X = np.array([[1.0, 0], [0, 0], [1, 0], [0, 0], [2, 2]])
    first, inverse = reduce.distinct_rows(X)
    assert first.tolist() == [0, 1, 4] and inverse.tolist() == [0, 1, 0, 1, 2]
    np.testing.assert_array_equal(X[first][inverse], X)
    assert reduce.distinct_rows(X, stop=2)[0].tolist() == [0, 1]


def test_small_mixtures_and_oversized_min_cluster_size_warn():
    from stemseg.errors import StemsegSparseDataWarning

    # the bundled 16 x 16 Velox map binned x2: 64 pixels, 5 clusters, 4 components
    with pytest.warns(StemsegSparseDataWarning, match=r"13 pixels per cluster.*at most 3"):
        cluster.warn_small_mixture(64, 5, 4, 2)
    # 625 pixels, 40 clusters; 15 components on a 64-pixel map
    with pytest.warns(StemsegSparseDataWarning, match="16 pixels per cluster"):
        cluster.warn_small_mixture(625, 40, 3, 1)
    with pytest.warns(StemsegSparseDataWarning, match="fewer than the 32"):
        cluster.warn_small_mixture(64, 3, 15, 1)
    with pytest.warns(StemsegSparseDataWarning, match="below 32 binned pixels"):
        cluster.warn_single_cluster_size(64, 40)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        cluster.warn_small_mixture(4096, 6, 5, 2)      # the notebooks' phantom
        cluster.warn_single_cluster_size(4096, 50)
