"""Count splitting (issue 17): clusters checked on counts they never saw."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest

from stemseg import cli, data, io, simulate, validate
from stemseg.errors import StemsegValueError

BRUKER = data.example("bruker_tem_CuOPdTi_64x64")


def test_split_counts_halves_are_binomial_and_sum_to_the_counts():
    ph = simulate.phantom("sulfide-6cation", shape=(32, 32), random_state=0)
    a, b = validate.split_counts(ph, random_state=1)
    counts = ph.eds.data
    assert np.array_equal(a.data + b.data, counts)
    assert (a.data >= 0).all() and (b.data >= 0).all()
    # each count goes to A with probability 1/2: A's share of all counts within 4 s.d.
    n = counts.sum()
    assert abs(a.data.sum() / n - 0.5) < 4 * np.sqrt(0.25 / n)
    assert np.array_equal(validate.split_counts(ph, random_state=1)[0].data, a.data)


def test_split_counts_refuses_fractional_counts():
    ph = simulate.phantom("sulfide-6cation", shape=(32, 32), random_state=0)
    s = ph.eds.deepcopy()
    s.change_dtype("float64")
    s.data = s.data * 0.5
    with pytest.raises(StemsegValueError, match="whole numbers"):
        validate.split_counts(s)


def test_noise_split_of_one_phase_is_merged():
    """Pixels of one material split in two by a coin: the same spectrum on held-out counts."""
    rng = np.random.default_rng(0)
    ph = simulate.phantom("sulfide-6cation", shape=(64, 64), random_state=0)
    a, b = validate.split_counts(ph, random_state=0)
    one = ph.labels == 0                                     # resin only
    labels = np.where(one, rng.integers(0, 2, one.shape), -1)
    merged, tests = validate.distinct_clusters(b, labels)
    assert set(np.unique(merged)) == {-1, 0} and bool(tests.merged.iloc[0])
    truth = np.where(ph.labels <= 1, ph.labels, -1)          # resin vs chalcopyrite
    merged, tests = validate.distinct_clusters(b, truth)
    assert set(np.unique(merged)) == {-1, 0, 1} and not tests.merged.any()


@pytest.mark.slow
def test_choose_n_clusters_keeps_the_phantom_phases_and_refuses_the_sparse_noise_split():
    """The sulfide phantom's five phases (the sixth mixture's cluster is boundary pixels or a
    phase split by noise); the bundled 6-counts-per-pixel Bruker film: one cluster."""
    ph = simulate.phantom("sulfide-6cation", random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        choice = validate.choose_n_clusters(ph, max_clusters=6, random_state=0)
        film = validate.choose_n_clusters(io.load(BRUKER), max_clusters=4, random_state=0)
    assert choice.n_clusters == len(ph.phases) == 5, choice.survivors
    assert choice.mixtures[6].mixture.sum() >= 1 or choice.survivors[6] == 5
    assert film.n_clusters == 1, film.survivors


def test_cli_n_clusters_auto(tmp_path):
    out = tmp_path / "auto"
    assert cli.main(["run", str(BRUKER), "--n-clusters", "auto", "--out", str(out)]) == 0
    result = json.loads((out / "result.json").read_text())
    assert result["n_clusters"] == result["n_clusters_choice"]["chosen"] == 1
    assert "count splitting" in result["n_clusters_choice"]["method"]


def test_cluster_sums_are_exact_for_large_uint16_counts():
    """The summed spectra of count splitting (a sparse membership product) equal a plain
    per-cluster sum, also where uint16 counts sum far beyond 65535; noise (-1) left out."""
    rng = np.random.default_rng(0)
    counts = rng.integers(0, 60000, size=(32, 32, 50)).astype(np.uint16)
    labels = rng.integers(-1, 3, size=(32, 32))
    channels = np.arange(5, 45)
    got = validate._cluster_sums(counts, labels, channels, 3)
    flat = counts.reshape(-1, 50)
    expected = np.array([flat[labels.ravel() == c][:, channels].sum(0, dtype=np.float64)
                         for c in range(3)])
    assert np.array_equal(got, expected) and got.max() > 65535
