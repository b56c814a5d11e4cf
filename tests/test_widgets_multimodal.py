"""stemseg.widgets.MultimodalExplorer driven from code.

A plot-only control (overlay opacity) redraws without recomputing anything; a
segmentation control reuses the cached chips, features and affinities; only a new chip
size redoes the chipping and the features; going back to a setting seen before is
served from the cache.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from stemseg import StemsegValueError, simulate, widgets
from stemseg import multimodal as mm

warnings.filterwarnings("ignore", category=DeprecationWarning)



@pytest.fixture(scope="module")
def phantom():
    # 240 x 240 px of the irradiated pristine film (35.5 pm pixels): 12 x 12 chips of 20 px
    return simulate.phantom("lfo-sto", irradiated=True, shape=(240, 240), random_state=0)


@pytest.fixture(scope="module")
def explorer(phantom):
    ex = widgets.MultimodalExplorer(phantom, method="agglomerative", modality="ensemble")
    yield ex
    ex.close()


def test_starts_with_the_phantoms_chip_size_and_truth(explorer, phantom):
    assert explorer.chip_size.value == phantom.truth["chip_px"] == 20
    assert explorer.chips.grid == (12, 12)
    assert explorer.truth_chips.shape == (12, 12)
    assert explorer.image.value[:4] == b"\x89PNG"
    assert 0.0 <= explorer.ami <= 1.0
    assert "AMI vs truth" in explorer.status.value
    # the same labels as the package function on the same chips
    ref = mm.segment(explorer.chips, "agglomerative", "ensemble",
                     n_clusters=explorer.n_clusters.value)
    np.testing.assert_array_equal(explorer.result.labels, ref.labels)


def test_opacity_is_plot_only(explorer):
    before = dict(explorer.n_computed)
    png, result = explorer.image.value, explorer.result
    times = []
    for v in (0.2, 0.8, 0.5):
        explorer.opacity.value = v
        times.append(explorer.timings["plot"])
        assert explorer.image.value != png
        png = explorer.image.value
    assert explorer.n_computed == before and explorer.result is result
    assert min(times) > 0  # the plot step ran; its speed is measured in benchmarks/


def test_segmentation_controls_reuse_features_and_cache_results(explorer):
    heavy = {k: explorer.n_computed[k] for k in ("chip", "features")}
    explorer.method.value = "community"
    explorer.modality.value = "ensemble"
    n_aff = explorer.n_computed["affinity"]
    explorer.eds_weight.value = 0.55              # the paper's irradiated-defective weighting
    assert explorer.result.params["weights"] == pytest.approx((0.45, 0.55))
    assert explorer.n_computed["affinity"] == n_aff  # affinities are cached per modality
    explorer.threshold.value = "median"
    explorer.method.value = "fewshot"
    assert explorer.result.classes is not None and len(explorer.result.classes) >= 2
    n_seg = explorer.n_computed["segment"]
    explorer.method.value = "community"
    explorer.threshold.value = "median"           # seen before: from the cache
    assert explorer.n_computed["segment"] == n_seg
    assert {k: explorer.n_computed[k] for k in ("chip", "features")} == heavy


def test_ensemble_weight_moves_the_community_result(explorer):
    explorer.method.value = "community"
    explorer.modality.value = "ensemble"
    explorer.threshold.value = "mode"
    explorer.eds_weight.value = 0.0
    only_haadf = explorer.result.labels.copy()
    explorer.modality.value = "haadf"
    np.testing.assert_array_equal(explorer.result.labels, only_haadf)  # weight 0 = HAADF alone
    explorer.modality.value = "ensemble"
    explorer.eds_weight.value = 1.0
    explorer.modality.value = "eds"
    eds = explorer.result.labels.copy()
    explorer.modality.value = "ensemble"
    np.testing.assert_array_equal(explorer.result.labels, eds)
    explorer.eds_weight.value = 0.5


def test_chip_size_recomputes_once_and_support_follows(explorer):
    explorer.method.value = "fewshot"
    explorer.support.value = "interior"
    chips_before = explorer.n_computed["chip"]
    explorer.chip_size.value = 15
    assert explorer.chips.grid == (16, 16) and explorer.n_computed["chip"] == chips_before + 1
    assert all(len(v) == 4 and max(v) < 256 for v in explorer.support_set().values())
    explorer.chip_size.value = 20
    explorer.chip_size.value = 15                 # both sizes cached now
    assert explorer.n_computed["chip"] == chips_before + 1
    explorer.chip_size.value = 20


def test_given_support_and_bad_input(phantom):
    support = {"cap": [0, 1, 2, 3], "STO": [140, 141, 142, 143]}
    ex = widgets.MultimodalExplorer(phantom, method="fewshot", support=support,
                                    modality="eds")
    assert ex.support.value == "given" and ex.result.classes == ["cap", "STO"]
    ex.close()
    with pytest.raises(StemsegValueError, match="exactly 4"):
        widgets.MultimodalExplorer(phantom, support={"a": [0, 1], "b": [5, 6, 7, 8]})
    with pytest.raises(StemsegValueError, match="eds_weight"):
        widgets.MultimodalExplorer(phantom, eds_weight=1.5)
    with pytest.raises(StemsegValueError, match="method"):
        widgets.MultimodalExplorer(phantom, method="kmeans")
    with pytest.raises(StemsegValueError, match="chip size"):
        widgets.MultimodalExplorer(phantom, size=300)


def test_needs_haadf(phantom):
    from stemseg._types import Acquisition

    with pytest.raises(StemsegValueError, match="HAADF"):
        widgets.MultimodalExplorer(Acquisition(eds=phantom.eds, haadf=None))


def test_only_the_controls_of_the_current_method_are_enabled(explorer):
    expected = {  # (method, modality) -> controls in use
        ("community", "ensemble"): {"threshold", "eds_weight"},
        ("community", "eds"): {"threshold"},
        ("agglomerative", "ensemble"): {"n_clusters"},
        ("fewshot", "ensemble"): {"support", "eds_weight"},
        ("fewshot", "haadf"): {"support"},
    }
    for (method, modality), used in expected.items():
        explorer.method.value, explorer.modality.value = method, modality
        enabled = {n for n in widgets.MULTIMODAL_CONTROL_SCOPE if not getattr(explorer, n).disabled}
        assert enabled == used, (method, modality)
        assert {n for n, on in widgets.multimodal_controls(method, modality).items() if on} == used
        for name in set(widgets.MULTIMODAL_CONTROL_SCOPE) - used:  # the hint names each
            label = name.replace("n_clusters", "clusters").replace("_", " ")
            assert label in explorer.hint.value
    assert not explorer.opacity.disabled and not explorer.chip_size.disabled
    assert widgets.multimodal_hint("community", "ensemble").count("only") == 2
    explorer.method.value, explorer.modality.value = "community", "ensemble"


@pytest.mark.parametrize("t, text", [(0.412, "below 0.412 removed"),
                                     (-0.278, "similarity <= 0 removed"),
                                     (0.0, "similarity <= 0 removed")])
def test_threshold_is_described_as_what_is_done(t, text):
    described = mm.describe_threshold(t)
    assert text in described
    if t <= 0:
        assert "below -" not in described and "below 0.000" not in described


def test_status_line_states_the_threshold_that_was_applied(explorer):
    explorer.method.value, explorer.modality.value = "community", "ensemble"
    t = explorer.result.threshold_value
    assert mm.describe_threshold(t) in explorer.status.value
    assert "edges below similarity -" not in explorer.status.value
