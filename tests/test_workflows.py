"""stemseg.workflows end to end: a synthetic cube, then the phantoms of issue 6."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from _synth import synthetic_cube
from stemseg import assemble, metrics, workflows
from stemseg._types import Acquisition, Segmentation
from stemseg.errors import StemsegValueError

HERE = Path(__file__).parent


@pytest.fixture(scope="module")
def cube(synth):
    return synth  # 64 x 64 x 512, 4 phases, stripes 4 px wide


@pytest.fixture(scope="module")
def seg_gmm(cube):
    return workflows.gmm(cube[0], n_clusters=4, random_state=0)


@pytest.fixture(scope="module")
def seg_hdb(cube):
    return workflows.hdbscan(cube[0], min_cluster_size=120, random_state=0)


# ---------------------------------------------------------------- the result object

def test_gmm_segmentation_fields(cube, seg_gmm):
    s, truth = cube
    seg = seg_gmm
    assert isinstance(seg, Segmentation) and seg.workflow == "gmm"
    assert seg.labels.shape == (32, 32) and seg.labels_full.shape == (64, 64)
    assert seg.weights.shape == (1024, 4) and seg.n_clusters == 4
    np.testing.assert_allclose(seg.weights.sum(1), 1, atol=1e-6)
    assert np.all(np.diff(seg.sizes) <= 0)  # ordered by size
    assert seg.sizes.sum() == 1024 and seg.noise_fraction == 0
    np.testing.assert_array_equal(np.bincount(seg.labels.ravel()), seg.sizes)
    assert seg.params["n_components"] >= 3 and seg.params["bin"] == 2
    assert seg.scree.shape[0] == 30 and seg.random_state == 0
    assert set(seg.timings) >= {"preprocess", "reduce", "cluster", "labels_full", "total"}
    assert seg.pixel_size_nm == (1.0, 1.0)
    assert seg.cluster_ids == [0, 1, 2, 3]


def test_mean_spectra_are_means_of_the_original_pixels_by_labels_full(cube, seg_gmm):
    """Default spectra_from="full": each cluster's spectrum is the plain mean of the original
    pixels labels_full gives it (no binned block straddling a boundary, no soft weights)."""
    s, _ = cube
    seg = seg_gmm
    assert seg.params["spectra_from"] == "full"
    pixels = s.data.reshape(4096, -1).astype(float)
    lab = assemble.spectrum_labels(seg.labels_full, seg.n_clusters).ravel()
    for c in range(seg.n_clusters):
        members = pixels[lab == c]
        np.testing.assert_allclose(seg.mean_spectra.data[c], members.mean(0), rtol=1e-10)
        np.testing.assert_allclose(seg.mean_variance.data[c],
                                   members.sum(0) / len(members) ** 2, rtol=1e-10)
    counts, weights = seg.spectrum_pixels
    assert counts is s and weights.shape == (4096, seg.n_clusters)
    np.testing.assert_array_equal(weights.argmax(1)[lab >= 0], lab[lab >= 0])
    assert set(np.unique(weights)) <= {0.0, 1.0}
    # isolated pixels are in the map but not in the spectra
    full = seg.labels_full.ravel()
    assert ((full >= 0) & (lab < 0)).sum() == (weights.sum(1)[full >= 0] == 0).sum()
    noise = seg.mean_spectra.metadata.Signal.Noise_properties.variance
    np.testing.assert_allclose(noise.data, seg.mean_variance.data, rtol=1e-10)


def test_mean_spectra_binned_option_is_the_papers_soft_weighted_mean(cube):
    s, _ = cube
    seg = workflows.gmm(s, n_clusters=4, random_state=0, spectra_from="binned")
    assert seg.spectrum_counts is None and seg.spectrum_weights is None
    counts = s.data.reshape(32, 2, 32, 2, -1).sum(axis=(1, 3)).reshape(1024, -1).astype(float)
    w = seg.weights
    expected = (w.T @ counts) / w.sum(0)[:, None]
    variance = ((w**2).T @ counts) / w.sum(0)[:, None] ** 2
    assert type(seg.mean_spectra) is type(s)
    assert seg.mean_spectra.data.shape == (4, 512)
    np.testing.assert_allclose(seg.mean_spectra.data, expected, rtol=1e-10)
    np.testing.assert_allclose(seg.mean_variance.data, variance, rtol=1e-10)
    noise = seg.mean_spectra.metadata.Signal.Noise_properties.variance
    np.testing.assert_allclose(noise.data, variance, rtol=1e-10)
    assert seg.mean_spectra.metadata.Acquisition_instrument.TEM.beam_energy == 200.0
    e, e0 = seg.mean_spectra.axes_manager.signal_axes[0], s.axes_manager.signal_axes[0]
    assert (e.scale, e.offset, e.units) == (e0.scale, e0.offset, e0.units)
    assert seg.counts.data.shape == (32, 32, 512)


def test_gmm_recovers_phases_at_full_resolution(cube, seg_gmm):
    _, truth = cube
    ari_full = metrics.ari(seg_gmm.labels_full, truth)
    repeated = workflows.upsample_labels(seg_gmm.labels, 2, truth.shape)
    # stripes 4 px wide: copying binned labels onto blocks loses the boundaries
    assert ari_full > 0.97
    assert ari_full > metrics.ari(repeated, truth) + 0.05


def test_labels_full_repeat_option(cube):
    s, truth = cube
    seg = workflows.gmm(s, n_clusters=4, labels_full="repeat")
    np.testing.assert_array_equal(seg.labels_full, workflows.upsample_labels(seg.labels, 2,
                                                                             (64, 64)))


def test_hdbscan_segmentation(cube, seg_hdb):
    _, truth = cube
    seg = seg_hdb
    assert seg.workflow == "hdbscan"
    assert seg.params["min_cluster_size_binned"] == 30
    assert seg.noise_fraction < 0.1
    assert metrics.ari(seg.labels_full, truth) > 0.95
    assert seg.weights.shape == (1024, seg.n_clusters)
    np.testing.assert_array_equal(seg.weights[seg.labels.ravel() < 0], 0)
    assert np.all(np.diff(seg.sizes) <= 0)
    assert seg.mean_spectra.data.shape == (seg.n_clusters, 512)


def test_hdbscan_nm2_units_match_pixels(cube, seg_hdb):
    s, _ = cube
    # 0.5 nm pixels: 120 px = 30 nm^2
    seg = workflows.hdbscan(s, min_cluster_size=30, min_cluster_size_units="nm2",
                            random_state=0)
    assert seg.params["min_cluster_size_binned"] == 30
    np.testing.assert_array_equal(seg.labels, seg_hdb.labels)


def test_acquisition_input_mask_and_uneven_map(cube):
    s, truth = cube
    mask = np.ones((63, 61), dtype=bool)
    mask[:, :10] = False
    seg = workflows.gmm(Acquisition(eds=s.inav[:61, :63]), n_clusters=4, mask=mask)
    assert seg.labels.shape == (31, 30) and seg.labels_full.shape == (63, 61)
    assert np.all(seg.labels[:, :5] == -1) and np.all(seg.labels_full[:, :10] == -1)
    assert np.all(seg.weights[seg.labels.ravel() < 0] == 0)
    assert seg.noise_fraction == 0  # masked pixels are not noise
    inside = mask & (truth[:63, :61] >= 0)
    assert metrics.ari(seg.labels_full[inside], truth[:63, :61][inside]) > 0.9


def test_bin_one(cube):
    s, truth = cube
    seg = workflows.gmm(s.inav[:32, :32], n_clusters=3, bin=1, n_components=3)
    np.testing.assert_array_equal(seg.labels, seg.labels_full)


def test_same_seed_same_labels_in_process(cube, seg_gmm, seg_hdb):
    s, _ = cube
    np.testing.assert_array_equal(workflows.gmm(s, n_clusters=4).labels_full,
                                  seg_gmm.labels_full)
    np.testing.assert_array_equal(
        workflows.hdbscan(s, min_cluster_size=120).labels_full, seg_hdb.labels_full)


def test_hdbscan_umap_sample(cube, seg_hdb):
    """UMAP + HDBSCAN fitted on a sample, the other pixels placed and predicted."""
    s, truth = cube
    seg = workflows.hdbscan(s, min_cluster_size=120, umap_sample=256, random_state=0)
    # 30 binned px per region must keep >= 8 sampled pixels: 8 * 1024 / 30 -> 274 > 256
    assert seg.params["umap_fit_pixels"] == 274
    assert seg.params["min_cluster_size_fit"] == 8
    assert seg.models["umap_sample"].size == 274
    assert seg.embedding.shape == (1024, 4) and np.isfinite(seg.embedding).all()
    assert metrics.ari(seg.labels_full, truth) > 0.95
    assert metrics.ari(seg.labels_full, seg_hdb.labels_full) > 0.95
    assert seg.weights.shape == (1024, seg.n_clusters)
    np.testing.assert_array_equal(seg.weights[seg.labels.ravel() < 0], 0)
    assert np.all(seg.weights[seg.labels.ravel() >= 0].sum(axis=1) > 0)
    again = workflows.hdbscan(s, min_cluster_size=120, umap_sample=256, random_state=0)
    np.testing.assert_array_equal(again.labels_full, seg.labels_full)
    # fewer pixels than the sample: every pixel is fitted, as without umap_sample
    whole = workflows.hdbscan(s, min_cluster_size=120, umap_sample=2048, random_state=0)
    assert whole.params["umap_fit_pixels"] == 1024 and whole.models["umap_sample"] is None
    np.testing.assert_array_equal(whole.labels_full, seg_hdb.labels_full)


def test_hdbscan_prefetched_neighbours_equal_the_predicted_ones(cube):
    """In memory, the original pixels' neighbours are searched in a second thread while
    UMAP fits; labels_full from them equals a prediction of the same pixels from scratch
    (a copy of the map, which the prefetch does not cover)."""
    s, _ = cube
    seg = workflows.hdbscan(s, min_cluster_size=120, umap_sample=256, random_state=0)
    pixels = s.data.reshape(-1, s.data.shape[-1])
    again = seg.models["predict_pixels"](pixels.copy())
    first = seg.models["predict_pixels"](pixels)
    np.testing.assert_array_equal(first, again)
    assert seg.params["labels_full"] == "predict"
    # the clusterer's labels in the segmentation's (size) order; pixels predicted as
    # noise may take their block's label (labels_full_from_block), the others are as is
    kept = np.where(again >= 0, seg.models["cluster_order"][np.clip(again, 0, None)], -1)
    kept = kept.reshape(seg.labels_full.shape)
    assert np.array_equal(kept[kept >= 0], seg.labels_full[kept >= 0])


@pytest.mark.parametrize("weights", ["probability", "hard"])
def test_hdbscan_umap_sample_weight_kinds(cube, weights):
    s, _ = cube
    seg = workflows.hdbscan(s, min_cluster_size=120, umap_sample=256, weights=weights,
                            random_state=0)
    w, lab = seg.weights, seg.labels.ravel()
    assert np.all((w > 0).sum(axis=1) <= 1)  # own cluster only
    member = lab >= 0
    assert np.all(w[member, lab[member]] > 0)
    if weights == "hard":
        assert set(np.unique(w)) <= {0.0, 1.0}


def _digest(a: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(a, dtype=np.int64).tobytes()).hexdigest()


def test_same_seed_same_labels_in_another_process(seg_gmm, seg_hdb):
    script = textwrap.dedent("""
        import hashlib, json, sys, warnings
        warnings.filterwarnings("ignore")
        sys.path.insert(0, sys.argv[1])
        import numpy as np
        from _synth import synthetic_cube
        from stemseg import workflows
        s, _ = synthetic_cube()
        d = lambda a: hashlib.sha256(np.ascontiguousarray(a, dtype=np.int64).tobytes()).hexdigest()
        g = workflows.gmm(s, n_clusters=4, random_state=0)
        h = workflows.hdbscan(s, min_cluster_size=120, random_state=0)
        print(json.dumps([d(g.labels_full), d(h.labels_full)]))
    """)
    env = dict(os.environ, PYTHONHASHSEED="123")
    out = subprocess.run([sys.executable, "-c", script, str(HERE)], capture_output=True,
                         text=True, timeout=300, env=env, check=True)
    other = json.loads(out.stdout.strip().splitlines()[-1])
    assert other == [_digest(seg_gmm.labels_full), _digest(seg_hdb.labels_full)]


def test_plot(seg_hdb):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ax = seg_hdb.plot()
    assert ax.images and "hdbscan" in ax.get_title()
    seg_hdb.plot(full=True, ax=ax)
    plt.close("all")


# ---------------------------------------------------------------- bad input

@pytest.mark.parametrize("kwargs, fragment", [
    (dict(n_clusters=0), "n_clusters must be"),
    (dict(n_clusters=5000), "n_clusters=5000 exceeds"),
    (dict(n_components=10_000), "n_components=10000 exceeds"),
    (dict(bin=1.5), "bin must be a whole number"),
    (dict(labels_full="nearest"), "labels_full"),
    (dict(spectra_from="soft"), "spectra_from"),
])
def test_gmm_bad_parameters(cube, kwargs, fragment):
    with pytest.raises(StemsegValueError, match=fragment):
        workflows.gmm(cube[0], **{"n_clusters": 4, **kwargs})


@pytest.mark.parametrize("kwargs, fragment", [
    (dict(min_cluster_size=10_000), "more than the 1024 pixels"),
    (dict(min_cluster_size=-3), "positive"),
    (dict(noise="keep"), "noise"),
    (dict(bin=0), "bin must be"),
    (dict(min_cluster_size_units="acres"), "min_cluster_size_units"),
    (dict(umap_sample=10), "umap_sample must be"),
    (dict(umap_sample=500.5), "umap_sample must be"),
    (dict(umap_sample=True), "umap_sample must be"),
    (dict(spectra_from="full-soft"), "spectra_from"),
])
def test_hdbscan_bad_parameters(cube, kwargs, fragment):
    with pytest.raises(StemsegValueError, match=fragment):
        workflows.hdbscan(cube[0], **{"min_cluster_size": 120, **kwargs})


def test_bad_data(cube):
    s, _ = cube
    bad = s.deepcopy()
    bad.change_dtype("float32")
    bad.data[0, 0, 50] = np.nan
    with pytest.raises(StemsegValueError, match="NaN"):
        workflows.gmm(bad)
    bad.data[0, 0, 50] = -5
    with pytest.raises(StemsegValueError, match="negative"):
        workflows.hdbscan(bad)
    bad.data[:] = 0
    with pytest.raises(StemsegValueError, match="no counts"):
        workflows.gmm(bad)
    with pytest.raises(StemsegValueError, match="Acquisition"):
        workflows.gmm(s.data)


def test_spectrum_labels_leave_out_isolated_pixels_only():
    lab = np.zeros((6, 6), dtype=int)
    lab[2:5, 2:5] = 1          # a 3 x 3 grain
    lab[0, 5] = 1              # one isolated pixel of cluster 1
    lab[5, 0] = 2              # cluster 2 exists only as one pixel: kept
    lab[3, 0] = -1
    out = assemble.spectrum_labels(lab, 3)
    assert out[0, 5] == -1 and out[5, 0] == 2 and out[3, 0] == -1
    np.testing.assert_array_equal(out[2:5, 2:5], 1)
    assert ((out != lab).sum()) == 1


def test_labels_full_fall_back_to_the_binned_blocks_when_pixels_are_too_sparse():
    """Predicted original pixels that mostly disagree with their binned block (too few
    counts to place them: all noise, or all one cluster) give way to the binned labels, and
    the reason is stated; sound predictions (boundaries only) are kept."""
    from types import SimpleNamespace

    labels = np.repeat(np.arange(4), 16).reshape(8, 8)          # binned x2 of a 16 x 16 map
    prep = SimpleNamespace(bin=2, original_shape=(16, 16), used=np.ones((8, 8), bool))
    blocks = workflows.upsample_labels(labels, 2, (16, 16))
    sound = blocks.copy()
    sound[::4] = -1                                               # a quarter disagree
    kept, reason = assemble._sparse_fallback(sound, labels, prep, None)
    assert reason is None and np.array_equal(kept, sound)
    for bad in (np.full((16, 16), -1), np.zeros((16, 16), int)):  # all noise; one cluster
        full, reason = assemble._sparse_fallback(bad, labels, prep, None)
        assert np.array_equal(full, blocks)
        assert reason.startswith("repeat (only") and "too few counts" in reason



def test_predicted_noise_takes_its_binned_blocks_cluster():
    """An original pixel predicted as noise takes its block's label when the block is in a
    cluster; noise blocks, masked pixels and predicted labels stay as they are."""
    from types import SimpleNamespace

    labels = np.array([[0, 1], [-1, 1]])                       # binned x2 of a 4 x 4 map
    prep = SimpleNamespace(bin=2, original_shape=(4, 4))
    full = workflows.upsample_labels(labels, 2, (4, 4))
    full[0, 0] = full[1, 3] = full[3, 3] = -1                    # predicted noise
    full[2, 2] = 0                                               # predicted another cluster
    mask = np.ones((4, 4), bool)
    mask[3, 3] = False
    out, n = assemble._noise_from_block(np.where(mask, full, -1), labels, prep, mask)
    assert n == 2 and out[0, 0] == 0 and out[1, 3] == 1
    assert out[3, 3] == -1 and out[2, 2] == 0 and (out[2:, :2] == -1).all()


def test_hdbscan_labels_full_is_noise_only_in_noise_blocks(seg_hdb):
    blocks = workflows.upsample_labels(seg_hdb.labels, 2, seg_hdb.labels_full.shape)
    assert not ((seg_hdb.labels_full < 0) & (blocks >= 0)).any()
    assert isinstance(seg_hdb.params["labels_full_from_block"], int)

def test_plot_title_describes_the_image_shown(seg_hdb):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    binned = seg_hdb.plot().get_title()
    full = seg_hdb.plot(full=True).get_title()
    plt.close("all")
    assert "binned x2" in binned and "original pixels" in full
    noise = 100 * float((seg_hdb.labels_full < 0).mean())
    assert f"noise {noise:.1f} %" in full
