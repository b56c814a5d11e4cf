"""The two workflows as estimators: declared parameter constraints checked before the map is
touched, scikit-learn's parameter protocol, ``predict`` of original pixels, and the
functions ``workflows.gmm`` / ``workflows.hdbscan`` as thin wrappers over them."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.base import clone

from stemseg import preprocess, streaming, workflows
from stemseg.errors import StemsegValueError
from stemseg.workflows import GMMSegmenter, HDBSCANSegmenter

#: one value each constrained parameter must refuse (and a word its message must hold)
BAD = {
    "n_clusters": (0, "whole number >= 1"),
    "n_components": ("three", "whole number >= 1"),
    "bin": (1.5, "whole number >= 1"),
    "random_state": (-1, "random_state"),
    "n_init": (0, "whole number >= 1"),
    "covariance_type": ("bogus", "'full'"),
    "max_components": (0, "whole number >= 1"),
    "knee_method": ("elbow", "'kneed'"),
    "energy_bin": (0, "whole number >= 1"),
    "poisson": ("yes", "True or False"),
    "scaler": ("minmax", "'robust'"),
    "labels_full": ("nearest", "'predict'"),
    "spectra_from": ("soft", "'full'"),
    "progress": ("on", "True or False"),
    "min_cluster_size": (-5, "positive number"),
    "min_samples": (0, "whole number >= 1 or None"),
    "min_cluster_size_units": ("nm", "'px'"),
    "n_neighbors": (1, "whole number >= 2"),
    "min_dist": (-0.1, "number >= 0"),
    "pca_components": ("some", "'auto'"),
    "noise": ("some", "'zero'"),
    "weights": ("soft", "'membership'"),
    "cluster_selection_method": ("tree", "'eom'"),
    "umap_sample": (50, "whole number >= 100 or None"),
}
CASES = [(cls, name) for cls in (GMMSegmenter, HDBSCANSegmenter)
         for name in cls._parameter_constraints if name in BAD]


@pytest.fixture
def no_preprocessing(monkeypatch):
    """Preprocessing (in memory and streamed) fails the test if it is reached."""
    def fail(*args, **kwargs):
        raise AssertionError("the map was preprocessed before the parameters were checked")

    monkeypatch.setattr(preprocess, "preprocess", fail)
    monkeypatch.setattr(streaming, "prepare", fail)


def test_every_constrained_parameter_has_a_bad_value_here():
    for cls in (GMMSegmenter, HDBSCANSegmenter):
        unchecked = set(cls._parameter_constraints) - set(BAD) - {
            "energy_range", "mask", "client"}      # checked by their own stages' messages
        assert not unchecked, f"{cls.__name__}: add bad values for {sorted(unchecked)}"


@pytest.mark.parametrize("cls, name", CASES,
                         ids=[f"{c.__name__}-{n}" for c, n in CASES])
def test_bad_parameter_refused_before_the_map_is_touched(cls, name, synth_32,
                                                         no_preprocessing):
    value, words = BAD[name]
    est = cls(**{name: value})
    with pytest.raises(StemsegValueError) as info:
        est.fit(synth_32[0])
    message = str(info.value)
    assert message.startswith(f"{name} must be") and words in message, message
    assert repr(value) in message, message
    with pytest.raises(StemsegValueError):   # the lazy path checks the same, first
        est.fit(synth_32[0].as_lazy())


def test_other_stages_cheap_checks_also_come_first(synth_32, no_preprocessing):
    with pytest.raises(StemsegValueError, match="energy_range"):
        GMMSegmenter(energy_range=(5, 1)).fit(synth_32[0])
    with pytest.raises(StemsegValueError, match="dask.distributed.Client"):
        HDBSCANSegmenter(client="tcp://localhost:8786").fit(synth_32[0])


def test_whole_number_floats_and_numpy_integers_are_accepted(synth_32):
    seg = GMMSegmenter(np.int64(3), bin=2.0, n_init=1).fit(synth_32[0]).segmentation()
    assert seg.n_clusters == 3 and seg.params["bin"] == 2


def test_scikit_learn_parameter_protocol():
    est = HDBSCANSegmenter(min_cluster_size=50, umap_sample=None)
    assert est.get_params()["min_cluster_size"] == 50
    twin = clone(est).set_params(min_samples=3)
    assert twin.get_params()["min_samples"] == 3 and est.min_samples is None
    assert set(GMMSegmenter().get_params()) == set(GMMSegmenter._parameter_constraints)
    assert set(HDBSCANSegmenter().get_params()) == set(
        HDBSCANSegmenter._parameter_constraints)


def test_functions_are_the_estimators(synth_32):
    s = synth_32[0]
    seg = workflows.gmm(s, 3, random_state=1, n_init=1)
    est = GMMSegmenter(3, random_state=1, n_init=1).fit(s)
    np.testing.assert_array_equal(seg.labels_full, est.labels_full_)
    np.testing.assert_array_equal(seg.mean_spectra.data, est.segmentation().mean_spectra.data)
    with pytest.raises(StemsegValueError, match=r"Unknown parameter\(s\) \['n_cluster'\]"):
        workflows.hdbscan(s, n_cluster=3)


@pytest.mark.parametrize("cls, kwargs", [(GMMSegmenter, dict(n_clusters=4, n_init=1)),
                                         (HDBSCANSegmenter, dict(min_cluster_size=80))])
def test_predict_labels_original_pixels_as_labels_full(cls, kwargs, synth):
    """``labels_full`` is the prediction of every original pixel: predicting them again
    through the estimator gives the same labels (and the truth's regions)."""
    s, truth = synth
    est = cls(**kwargs).fit(s)
    seg = est.segmentation()
    assert seg.params["labels_full"] == "predict"
    again = est.predict(s)
    assert again.shape == truth.shape
    np.testing.assert_array_equal(again, seg.labels_full)
    one = est.predict(s.data[5, 7])          # a single spectrum -> a 0-d label
    assert one.shape == () and int(one) == seg.labels_full[5, 7]


def test_predict_refuses_an_unfitted_estimator_and_wrong_channels(synth_32):
    with pytest.raises(StemsegValueError, match="not fitted yet"):
        GMMSegmenter().predict(np.zeros((2, 256)))
    est = GMMSegmenter(3, n_init=1).fit(synth_32[0])
    with pytest.raises(StemsegValueError, match="100 channels; the fitted map has 256"):
        est.predict(np.zeros((2, 100)))


def test_constraint_kinds_accept_and_describe():
    from stemseg._params import Boolean, Number, Options, Whole, check_params

    assert Options("full").accepts(np.str_("full")) and not Options("full").accepts(["full"])
    assert not Options(1).accepts(True) and not Whole(0).accepts(True)
    assert Whole(1, accept_float=True).accepts(2.0) and not Whole(1).accepts(2.0)
    assert Number(0).describe() == "a positive number" and not Number(0).accepts(0)
    assert Number(0, closed_low=True).accepts(0) and not Number(0).accepts(float("nan"))
    assert Boolean().accepts(np.bool_(True)) and not Boolean().accepts(1)
    with pytest.raises(StemsegValueError, match=r"^k must be a whole number from 1 to 3 or "
                                                r"None; got 4\. Pick fewer\.$"):
        check_params({"k": 4}, {"k": [Whole(1, 3), None]}, {"k": "Pick fewer."})
