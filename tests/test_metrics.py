"""stemseg.metrics: ARI/AMI, confusion matrix, Hungarian matching, composition error, stability."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from stemseg import metrics
from stemseg._types import Phase
from stemseg.errors import StemsegValueError

TRUTH = np.array([[0, 0, 1, 1], [0, 0, 1, 1], [2, 2, 2, 2]])


def test_ari_ami_invariant_to_renaming():
    renamed = np.array([[5, 5, 3, 3], [5, 5, 3, 3], [7, 7, 7, 7]])
    assert metrics.ari(renamed, TRUTH) == pytest.approx(1.0)
    assert metrics.ami(renamed, TRUTH) == pytest.approx(1.0)
    assert metrics.ari(np.zeros_like(TRUTH), TRUTH) == pytest.approx(0.0)


def test_noise_counts_unless_ignored():
    noisy = TRUTH.copy()
    noisy[0, 0] = -1
    assert metrics.ari(noisy, TRUTH) < 1
    assert metrics.ari(noisy, TRUTH, ignore_noise=True) == pytest.approx(1.0)


def test_shape_and_dtype_errors():
    with pytest.raises(StemsegValueError, match="labels_full"):
        metrics.ari(TRUTH[:2], TRUTH)
    with pytest.raises(StemsegValueError, match="integer"):
        metrics.ami(TRUTH.astype(float), TRUTH)
    with pytest.raises(StemsegValueError, match="No pixels"):
        metrics.ari(np.full_like(TRUTH, -1), TRUTH, ignore_noise=True)


def test_confusion_matrix_and_matching():
    labels = np.array([[1, 1, 0, 0], [1, 1, 0, 3], [2, 2, 2, -1]])
    table = metrics.confusion_matrix(labels, TRUTH)
    assert list(table.index) == [-1, 0, 1, 2, 3] and list(table.columns) == [0, 1, 2]
    assert table.loc[1, 0] == 4 and table.loc[0, 1] == 3 and table.to_numpy().sum() == 12
    mapping = metrics.match_clusters(labels, TRUTH)
    assert mapping == {0: 1, 1: 0, 2: 2}  # cluster 3 (1 px) and noise unmatched


def test_matching_with_fewer_clusters_than_phases():
    labels = np.array([[0, 0, 0, 0], [0, 0, 0, 0], [1, 1, 1, 1]])
    assert metrics.match_clusters(labels, TRUTH) == {0: 0, 1: 2}
    assert metrics.match_clusters(np.full_like(TRUTH, -1), TRUTH) == {}


def test_composition_error():
    table = pd.DataFrame({
        "cluster": [0, 0, 1, 1],
        "element": ["Cu", "S", "Fe", "S"],
        "at_pct": [48.0, 52.0, 51.0, 49.0],
        "sigma": [1.0, 1.0, 0.5, 0.5],
    })
    phases = [Phase("a", {"Fe": 50.0, "S": 50.0}), Phase("b", {"Cu": 50.0, "S": 50.0, "Ag": 0.5})]
    err = metrics.composition_error(table, phases, {0: 1, 1: 0})
    row = err.set_index(["cluster", "element"])
    assert row.loc[(0, "Cu"), "error"] == pytest.approx(-2.0)
    assert row.loc[(0, "Cu"), "z"] == pytest.approx(-2.0)
    assert row.loc[(1, "Fe"), "z"] == pytest.approx(2.0)
    assert np.isnan(row.loc[(0, "Ag"), "at_pct"])
    major = metrics.composition_error(table, phases, {0: 1}, min_at_pct=1.0)
    assert set(major["element"]) == {"Cu", "S"}
    dicts = metrics.composition_error(table, [{"Fe": 50.0, "S": 50.0}], {1: 0})
    assert len(dicts) == 2
    with pytest.raises(StemsegValueError, match="at_pct"):
        metrics.composition_error(table.drop(columns="at_pct"), phases, {0: 1})


def test_stability_and_pairwise_ari():
    same = metrics.stability(lambda seed: TRUTH, seeds=[0, 1, 2])
    np.testing.assert_allclose(same, [1, 1, 1])
    flips = metrics.stability(lambda seed: TRUTH if seed else np.zeros_like(TRUTH), [0, 1, 2])
    assert flips.shape == (3,) and flips.min() < 0.5 and flips.max() == pytest.approx(1)
    with pytest.raises(StemsegValueError, match="two seeds"):
        metrics.stability(lambda seed: TRUTH, seeds=[0])
    assert metrics.pairwise_ari([TRUTH]).size == 0
