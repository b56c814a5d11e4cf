"""The lazy, bounded-memory GMM workflow (stemseg.streaming) against the in-memory one."""

from __future__ import annotations

import dataclasses
import hashlib
import warnings
from pathlib import Path

import numpy as np
import pytest

from stemseg import metrics, preprocess as pre, simulate, streaming, workflows
from stemseg._types import Segmentation
from stemseg.errors import StemsegValueError


def _tree_digest(path: Path) -> dict[str, tuple[str, int]]:
    """sha256 and mtime (ns) of every file under a .zspy folder (or of one .hspy file)."""
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    return {str(p.relative_to(path.parent)): (hashlib.sha256(p.read_bytes()).hexdigest(),
                                              p.stat().st_mtime_ns) for p in files}


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """A 128 x 128 sulfide phantom written as .zspy, and a 64 x 64 one as .hspy."""
    root = tmp_path_factory.mktemp("lazy")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        big = simulate.phantom("sulfide-6cation", shape=(128, 128), random_state=0)
        small = simulate.phantom("sulfide-6cation", shape=(64, 64), random_state=1)
        simulate.save(big, root / "big.zspy")
        simulate.save(small, root / "small.hspy")
    return dict(big=big, small=small, big_path=root / "big.zspy",
                small_path=root / "small.hspy")


def _lazy(path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return simulate.load(path, lazy=True)


# --------------------------------------------------------------------------------------
# exact quantiles from histograms
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("n", [1, 2, 3, 4, 5, 7, 100, 1001, 4096])
def test_quantiles_from_histogram_equal_numpy_percentile(n):
    rng = np.random.default_rng(n)
    for high in (1, 3, 50):
        sample = rng.integers(0, high + 1, size=n)
        values, counts = np.unique(sample, return_counts=True)
        q = [0, 10, 25, 33.3, 50, 75, 90, 100]
        got = streaming.quantiles_from_histogram(values, counts, q)
        assert np.array_equal(got, np.percentile(sample.astype(float), q))


def test_quantiles_from_histogram_rejects_bad_histograms():
    with pytest.raises(StemsegValueError, match="non-empty"):
        streaming.quantiles_from_histogram([], [])
    with pytest.raises(StemsegValueError, match="increasing"):
        streaming.quantiles_from_histogram([2, 1], [1, 1])
    with pytest.raises(StemsegValueError, match="positive"):
        streaming.quantiles_from_histogram([1, 2], [0, 1])


# --------------------------------------------------------------------------------------
# the streamed preprocessing equals the in-memory one
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("kwargs", [dict(), dict(poisson=True), dict(energy_bin=2),
                                    dict(bin=3, mask="half"), dict(bin=1, scaler=None)])
def test_prepare_equals_preprocess(files, kwargs):
    ph = files["small"]
    kwargs = dict(kwargs)
    if kwargs.get("mask") == "half":
        m = np.zeros(ph.labels.shape, dtype=bool)
        m[5:50, 3:60] = True
        kwargs["mask"] = m
    bin = kwargs.pop("bin", 2)
    a = pre.preprocess(ph, bin, **kwargs)
    b = streaming.prepare(_lazy(files["small_path"]), bin, **kwargs)
    assert b.counts._lazy and b.params["lazy"] is True
    assert np.array_equal(a.used, b.used) and a.crop == b.crop
    if a.scaler is None:
        assert b.scaler is None
    else:  # exact, not approximately: the same median and quartiles
        assert np.array_equal(a.scaler.center_, b.scaler.center_)
        assert np.array_equal(a.scaler.scale_, b.scaler.scale_)
    if a.poisson:
        assert np.array_equal(a.channel_root, b.channel_root)
    np.testing.assert_allclose(np.asarray(b.X.compute()), a.X, rtol=0, atol=1e-9)


# --------------------------------------------------------------------------------------
# the workflow: lazy vs in memory, seeds, a LocalCluster
# --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def segs(files):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        lazy = workflows.gmm(_lazy(files["big_path"]), n_clusters=5, random_state=0)
        memory = workflows.gmm(files["big"], n_clusters=5, random_state=0)
    return lazy, memory


def test_lazy_gmm_matches_in_memory(segs, files):
    lazy, memory = segs
    assert isinstance(lazy, Segmentation) and lazy.params["lazy"] is True
    assert lazy.counts._lazy                         # the binned counts stay on disk
    assert not lazy.mean_spectra._lazy and type(lazy.mean_spectra) is type(memory.mean_spectra)
    for f in dataclasses.fields(Segmentation):       # same fields filled, same shapes
        a, b = getattr(lazy, f.name), getattr(memory, f.name)
        assert (a is None) == (b is None), f.name
        if isinstance(b, np.ndarray):
            assert a.shape == b.shape, f.name
    assert lazy.params["n_components"] == memory.params["n_components"]
    assert metrics.ari(lazy.labels, memory.labels) > 0.999
    assert metrics.ari(lazy.labels_full, memory.labels_full) > 0.999
    assert np.array_equal(lazy.sizes, memory.sizes)
    np.testing.assert_allclose(lazy.mean_spectra.data, memory.mean_spectra.data, atol=0.05)
    np.testing.assert_allclose(lazy.scree[:5], memory.scree[:5], rtol=1e-3)
    truth = files["big"].labels
    assert abs(metrics.ari(lazy.labels_full, truth) - metrics.ari(memory.labels_full, truth)) \
        < 0.002


def test_lazy_gmm_same_seed_same_labels(segs, files):
    again = workflows.gmm(_lazy(files["big_path"]), n_clusters=5, random_state=0)
    assert np.array_equal(again.labels, segs[0].labels)
    assert np.array_equal(again.labels_full, segs[0].labels_full)


def test_local_cluster_gives_the_same_result(segs, files):
    from dask.distributed import Client, LocalCluster

    with LocalCluster(n_workers=1, threads_per_worker=1, processes=False,
                      dashboard_address=None) as cluster, Client(cluster) as client:
        seg = workflows.gmm(_lazy(files["big_path"]), n_clusters=5, random_state=0,
                            client=client)
    assert np.array_equal(seg.labels, segs[0].labels)
    assert np.array_equal(seg.labels_full, segs[0].labels_full)
    np.testing.assert_allclose(seg.mean_spectra.data, segs[0].mean_spectra.data, rtol=1e-12)


def test_in_memory_input_without_client_stays_in_memory(segs):
    assert "lazy" not in segs[1].params and not segs[1].counts._lazy


def test_poisson_and_mask_on_the_lazy_path(files):
    ph = files["small"]
    mask = np.ones(ph.labels.shape, dtype=bool)
    mask[:8] = False
    lazy = workflows.gmm(_lazy(files["small_path"]), n_clusters=4, random_state=0,
                         poisson=True, mask=mask)
    memory = workflows.gmm(ph, n_clusters=4, random_state=0, poisson=True, mask=mask)
    assert (lazy.labels_full[:8] == -1).all()
    assert metrics.ari(lazy.labels_full, memory.labels_full) > 0.99


# --------------------------------------------------------------------------------------
# bad input, and nothing a user owns is modified
# --------------------------------------------------------------------------------------


def test_input_file_unchanged(files):
    for key in ("big_path", "small_path"):
        path = files[key]
        before = _tree_digest(path)
        acq = _lazy(path)
        workflows.gmm(acq, n_clusters=3, random_state=0, labels_full="repeat")
        assert _tree_digest(path) == before


def test_not_a_client_is_refused(files):
    with pytest.raises(StemsegValueError, match="dask.distributed.Client"):
        workflows.gmm(_lazy(files["small_path"]), n_clusters=3, client="tcp://localhost:8786")


def test_non_integer_counts_are_refused_with_advice(files):
    s = files["small"].eds.deepcopy()
    s.change_dtype("float64")
    s.data += 0.1  # 0.4 after x2 binning: not whole numbers
    with pytest.raises(StemsegValueError, match="whole numbers.*scaler=None"):
        workflows.gmm(s.as_lazy(), n_clusters=3)
    seg = workflows.gmm(s.as_lazy(), n_clusters=3, scaler=None, random_state=0)
    assert seg.params["scaler"] is None and seg.labels_full.shape == (64, 64)


@pytest.mark.parametrize("change, match", [
    ("negative", "negative counts"),
    ("nan", "NaN or infinite"),
    ("zero", "no counts"),
])
def test_bad_counts_are_refused(files, change, match):
    s = files["small"].eds.deepcopy()
    s.change_dtype("float64")
    if change == "negative":
        s.data[3, 4, 100] = -1
    elif change == "nan":
        s.data[3, 4, 100] = np.nan
    else:
        s.data[:] = 0
    with pytest.raises(StemsegValueError, match=match):
        workflows.gmm(s.as_lazy(), n_clusters=3)


def test_bad_parameters_are_refused(files):
    acq = _lazy(files["small_path"])
    with pytest.raises(StemsegValueError, match="mask excludes every pixel"):
        workflows.gmm(acq, n_clusters=3, mask=np.zeros((64, 64), dtype=bool))
    with pytest.raises(StemsegValueError, match="n_components"):
        workflows.gmm(acq, n_clusters=3, n_components=100_000)
    with pytest.raises(StemsegValueError, match="bin"):
        workflows.gmm(acq, n_clusters=3, bin=0)
    with pytest.raises(StemsegValueError, match="labels_full"):
        workflows.gmm(acq, n_clusters=3, labels_full="nearest")


# --------------------------------------------------------------------------------------
# the HDBSCAN workflow on lazy input
# --------------------------------------------------------------------------------------


def _lazy_blocks(path, chunks=(48, 40)):
    """The lazy map cut into several dask blocks (uneven at the edges)."""
    acq = _lazy(path)
    acq.eds.data = acq.eds.data.rechunk(chunks + (-1,))
    return acq


@pytest.fixture(scope="module")
def hsegs(files):
    """Lazy and in-memory HDBSCAN of the 128 x 128 phantom, UMAP on 1024 of 4096 pixels."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        lazy = workflows.hdbscan(_lazy_blocks(files["big_path"]), random_state=0,
                                 umap_sample=1024)
        memory = workflows.hdbscan(files["big"], random_state=0, umap_sample=1024)
    return lazy, memory


def test_lazy_hdbscan_matches_in_memory_with_a_umap_sample(hsegs, files):
    lazy, memory = hsegs
    assert isinstance(lazy, Segmentation) and lazy.params["lazy"] is True
    assert "lazy" not in memory.params and not memory.counts._lazy
    assert lazy.counts._lazy and not lazy.mean_spectra._lazy
    assert lazy.params["umap_fit_pixels"] == memory.params["umap_fit_pixels"] == 1024
    assert np.array_equal(lazy.models["umap_sample"], memory.models["umap_sample"])
    for f in dataclasses.fields(Segmentation):       # same fields filled, same shapes
        a, b = getattr(lazy, f.name), getattr(memory, f.name)
        assert (a is None) == (b is None), f.name
        if isinstance(b, np.ndarray):
            assert a.shape == b.shape, f.name
    assert metrics.ari(lazy.labels, memory.labels) > 0.99
    assert metrics.ari(lazy.labels_full, memory.labels_full) > 0.99
    assert lazy.weights.shape == memory.weights.shape
    np.testing.assert_allclose(lazy.mean_spectra.data, memory.mean_spectra.data, atol=0.5)
    truth = files["big"].labels
    assert abs(metrics.ari(lazy.labels_full, truth) - metrics.ari(memory.labels_full, truth)) \
        < 0.01


def test_lazy_hdbscan_small_map_without_a_sample(files):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        lazy = workflows.hdbscan(_lazy(files["small_path"]), random_state=0)
        memory = workflows.hdbscan(files["small"], random_state=0)
    assert lazy.params["lazy"] is True and lazy.models["umap_sample"] is None
    assert lazy.params["umap_fit_pixels"] == 32 * 32
    assert metrics.ari(lazy.labels_full, memory.labels_full) > 0.99
    assert np.array_equal(lazy.sizes, memory.sizes)


def test_lazy_hdbscan_same_seed_same_labels(hsegs, files):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        again = workflows.hdbscan(_lazy_blocks(files["big_path"], (64, 64)), random_state=0,
                                  umap_sample=1024)
    assert np.array_equal(again.labels, hsegs[0].labels)
    assert np.array_equal(again.labels_full, hsegs[0].labels_full)


def test_lazy_hdbscan_on_a_local_cluster(hsegs, files):
    from dask.distributed import Client, LocalCluster

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with LocalCluster(n_workers=1, threads_per_worker=1, processes=False,
                          dashboard_address=None) as cluster, Client(cluster) as client:
            seg = workflows.hdbscan(_lazy_blocks(files["big_path"]), random_state=0,
                                    umap_sample=1024, client=client)
    assert np.array_equal(seg.labels, hsegs[0].labels)
    assert np.array_equal(seg.labels_full, hsegs[0].labels_full)
    # not bit for bit: the search-space scores come from BLAS on a worker thread, whose
    # last-bit rounding differs from multi-threaded BLAS in the caller, and the float32
    # placement turns that into ~1e-6 in the soft weights (identical with one BLAS thread)
    np.testing.assert_allclose(seg.weights, hsegs[0].weights, rtol=0, atol=1e-4)
    np.testing.assert_allclose(seg.mean_spectra.data, hsegs[0].mean_spectra.data, rtol=1e-4,
                               atol=1e-6)


def test_lazy_hdbscan_with_pca_before_umap(files):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        lazy = workflows.hdbscan(_lazy(files["small_path"]), random_state=0,
                                 pca_components=6, umap_sample=400)
        memory = workflows.hdbscan(files["small"], random_state=0, pca_components=6,
                                   umap_sample=400)
    assert lazy.params["pca_components"] == memory.params["pca_components"] == 6
    assert lazy.params["umap_fit_pixels"] == 400
    assert metrics.ari(lazy.labels_full, memory.labels_full) > 0.99


def test_lazy_hdbscan_poisson_and_mask(files):
    ph = files["small"]
    mask = np.ones(ph.labels.shape, dtype=bool)
    mask[:8] = False
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        lazy = workflows.hdbscan(_lazy_blocks(files["small_path"], (24, 40)), random_state=0,
                                 poisson=True, mask=mask, umap_sample=400)
        memory = workflows.hdbscan(ph, random_state=0, poisson=True, mask=mask,
                                   umap_sample=400)
    assert (lazy.labels_full[:8] == -1).all() and (lazy.labels[:4] == -1).all()
    assert metrics.ari(lazy.labels_full, memory.labels_full) > 0.99


def test_lazy_hdbscan_bad_parameters_are_refused(files, monkeypatch):
    acq = _lazy(files["small_path"])
    with pytest.raises(StemsegValueError, match="labels_full"):
        workflows.hdbscan(acq, labels_full="nearest")
    with pytest.raises(StemsegValueError, match="umap_sample"):
        workflows.hdbscan(acq, umap_sample=50)
    with pytest.raises(StemsegValueError, match="noise"):
        workflows.hdbscan(acq, noise="some")
    with pytest.raises(StemsegValueError, match="dask.distributed.Client"):
        workflows.hdbscan(acq, client="tcp://localhost:8786")
    monkeypatch.setattr(streaming, "_GATHER_LIMIT", 1 << 20)
    with pytest.raises(StemsegValueError, match="umap_sample="):
        workflows.hdbscan(acq, umap_sample=None)


def test_gather_features_equals_rows_of_the_lazy_matrix(files):
    prep = streaming.prepare(_lazy_blocks(files["small_path"], (20, 12)), 2)
    rows = np.array([0, 3, 17, 200, 511, 512, 1000, 1023])
    np.testing.assert_array_equal(streaming.gather_features(prep, rows),
                                  np.asarray(prep.X.compute())[rows])
    assert streaming.gather_features(prep).shape == (1024, prep.channels.size)


def test_lazy_sparse_map_falls_back_to_binned_labels_like_in_memory():
    """Issue 17: on the bundled Bruker TEM map (6 counts per pixel) the predicted original
    pixels mostly disagree with their binned block (43 % agree at 5 clusters), so
    labels_full repeats the binned labels -- through the streamed path as in memory."""
    import warnings

    from stemseg import data as examples
    from stemseg import io

    path = examples.example("bruker_tem_CuOPdTi_64x64")
    segs = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for lazy in (False, True):
            segs.append(workflows.gmm(io.load(path, lazy=lazy), n_clusters=5, random_state=0))
    for seg in segs:
        assert seg.params["labels_full"].startswith("repeat"), seg.params["labels_full"]
        np.testing.assert_array_equal(
            seg.labels_full, workflows.upsample_labels(seg.labels, 2, seg.labels_full.shape))
    # (the two partitions themselves differ, ARI 0.84: on this map the clusters follow
    # counting noise, and the streamed PCA from moments is not bit-identical)
