"""Seed sweep of the claims that notebook 03 asserts on workflow 2 (issue 15).

UMAP's embedding differs between CPUs just as between seeds, so a claim about HDBSCAN's
result is only worth asserting if it holds for every seed. For seeds 0-9 (of the phantom
and of UMAP) the notebook's phantom (128 x 128, bin 2, min_cluster_size 200 px) is
segmented once and the notebook's claims are checked on it:

* excess-of-mass selection (the default) merges phases at some seeds (the thin
  minority-wurtzite rims with a neighbour) but never splits one: every phase has > 80 % of
  its binned pixels in one cluster (measured 0.894-0.963 over seeds 0-9, 200 UMAP epochs);
* noise stays below 10 % for every min_samples (measured <= 2.9 %; with 500 epochs it was
  7.3 % at seed 7 with min_samples=10);
* leaf selection at 800 px loses no phase: at least five major clusters and every phase
  matched to a cluster of its own with precision > 0.7 (measured 0.76-0.90, ARI 0.88-0.93;
  with 500 epochs seed 8 cut the majority wurtzite into two leaves, ARI 0.68).
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from stemseg import analysis, cluster, simulate, workflows

SEEDS = range(10)
BIN = 2


def _refit(seg, size_px: int, **kwargs) -> np.ndarray:
    """HDBSCAN refitted on the cached embedding; labels on the binned grid."""
    _, fitted, _, _ = cluster.hdbscan_on_sample(
        seg.embedding, seg.models["umap_sample"],
        cluster.binned_min_cluster_size(size_px, "px", BIN), weights="hard", **kwargs)
    labels = np.full(seg.labels.shape, -1)
    labels[seg.models["prepared"].used] = fitted
    return labels


@pytest.mark.slow
@pytest.mark.parametrize("seed", SEEDS)
def test_workflow2_claims_hold_for_every_seed(seed):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ph = simulate.phantom("sulfide-6cation", shape=(128, 128), random_state=seed)
        seg = workflows.hdbscan(ph, min_cluster_size=200, bin=BIN, random_state=seed,
                                labels_full="repeat")
    truth = analysis.bin_labels(ph.labels, BIN, seg.labels.shape)
    used = seg.models["prepared"].used

    # merged, never split: each phase mostly inside one cluster
    for p, phase in enumerate(ph.phases):
        inside = seg.labels[truth == p]
        counts = np.bincount(inside[inside >= 0], minlength=1)
        share = counts.max() / inside.size
        assert share > 0.8, f"seed {seed}: {phase.name} split, {share:.2f} in one cluster"
    assert cluster.n_major_clusters(seg.labels, 0.02) <= len(ph.phases), f"seed {seed}"

    # noise: a few per cent at most, whatever min_samples
    for ms in (None, 1, 5, 10, 25):
        labels = _refit(seg, 200, min_samples=ms)
        noise = cluster.noise_fraction(labels, used)
        assert noise < 0.10, f"seed {seed}, min_samples={ms}: noise {100 * noise:.2f} %"

    # leaf selection loses no phase (a large one may come out as two leaves)
    leaf = _refit(seg, 800, cluster_selection_method="leaf")
    found = cluster.n_major_clusters(leaf, 0.02)
    assert found >= len(ph.phases), f"seed {seed}: {found} major clusters with leaf selection"
    worst = analysis.phase_recovery(leaf, truth, ph.phases).precision.min()
    assert worst > 0.7, f"seed {seed}: a phase without a cluster of its own ({worst:.2f})"
