"""stemseg.widgets driven from code: construct, move a slider, check what changed, time it.

A plot-only update (colour scaling, highlight, colour-by) redraws without recomputing; a
refit redoes only the cheap step (the cached preprocessing, PCA scores and UMAP embedding
are the same objects before and after). How long they take (target <= 0.5 s) is measured in
benchmarks/bench_notebooks.py, not asserted here: timed unit tests fail on loaded machines.
"""

from __future__ import annotations

import base64
import statistics
import warnings

import numpy as np
import pytest

from stemseg import analysis, plots, quant, simulate, widgets, workflows
from stemseg.errors import StemsegValueError

warnings.filterwarnings("ignore", category=DeprecationWarning)

@pytest.fixture(scope="module")
def phantom(sulfide_64):
    return sulfide_64


@pytest.fixture(scope="module")
def gmm_seg(phantom):
    return workflows.gmm(phantom, n_clusters=5, random_state=0)


@pytest.fixture(scope="module")
def hdb_seg(phantom):
    return workflows.hdbscan(phantom, min_cluster_size=100, random_state=0,
                             labels_full="repeat")


def _median_time(explorer, kind, actions):
    times = []
    for act in actions:
        act()
        times.append(explorer.timings[kind])
    return statistics.median(times)


# ---------------------------------------------------------------- element maps

def test_element_map_explorer_toggle(phantom):
    maps = analysis.element_maps(phantom)
    ex = widgets.ElementMapExplorer(maps, mask=phantom.labels > 0)
    png0, renders = ex.image.value, ex.n_renders
    assert png0[:4] == b"\x89PNG"
    clims = [im.get_clim() for im in ex.fig.stemseg_images]
    assert len(set(clims)) > 1                                  # per-map: all different
    ex.scaling.value = "common"
    assert ex.n_renders == renders + 1 and ex.image.value != png0
    assert len({im.get_clim() for im in ex.fig.stemseg_images}) == 1
    assert list(ex.overlap["overlap"]) == sorted(ex.overlap["overlap"], reverse=True)
    assert "look most alike" in ex.pairs.value
    t = _median_time(ex, "plot", [lambda v=v: setattr(ex.scaling, "value", v)
                                  for v in ("per-map", "common", "per-map")])
    assert t > 0, t  # the plot step ran (its speed: benchmarks/)
    bundle = ex._repr_mimebundle_()
    assert "application/vnd.jupyter.widget-view+json" in bundle
    # a static page (the rendered book) shows the figure as it is now, and a short text
    assert base64.b64decode(bundle["image/png"]) == ex.image.value
    assert bundle["text/plain"].startswith("ElementMapExplorer")


def test_plot_only_update_keeps_the_layout(phantom, gmm_seg):
    """A plot-only update reuses the last layout; a full relayout moves nothing visibly."""
    ex = widgets.ElementMapExplorer(analysis.element_maps(phantom), mask=phantom.labels > 0)
    gx = widgets.GMMExplorer(phantom, segmentation=gmm_seg, n_clusters=5)
    for explorer, change in ((ex, lambda: setattr(ex.scaling, "value", "common")),
                             (gx, lambda: setattr(gx.highlight, "value", 2))):
        engine = explorer.fig.get_layout_engine()
        change()
        assert explorer.fig.get_layout_engine() is engine        # restored after the draw
        size = np.r_[explorer.fig.get_size_inches(), explorer.fig.get_size_inches()]
        frozen = np.array([a.get_position().bounds for a in explorer.fig.axes])
        png = explorer.image.value
        explorer._render(relayout=True)
        full = np.array([a.get_position().bounds for a in explorer.fig.axes])
        shift = np.abs(frozen - full) * size * explorer.dpi
        # wider colour-bar tick labels (common scale) move panels by < 2 px at most
        assert shift.max() < 3.0, shift.max()
        assert len(explorer.image.value) == pytest.approx(len(png), rel=0.05)


# ---------------------------------------------------------------- GMM

def test_gmm_explorer_reuses_the_segmentation(phantom, gmm_seg):
    ex = widgets.GMMExplorer(phantom, segmentation=gmm_seg, n_clusters=5,
                             truth=phantom.labels)
    assert ex.prepared is gmm_seg.models["prepared"]
    assert ex.reducer is gmm_seg.models["reducer"]
    assert ex.n_components.value == gmm_seg.params["n_components"]
    # the explorer's labels are the workflow's binned labels
    np.testing.assert_array_equal(ex.labels, gmm_seg.labels)
    assert 0 < ex.ari <= 1
    assert ex.key is None                                  # no names: raw cluster numbers


def test_gmm_explorer_names_clusters_by_their_matched_phase(phantom, gmm_seg):
    names = {i: p.name for i, p in enumerate(phantom.phases)}
    ex = widgets.GMMExplorer(phantom, segmentation=gmm_seg, n_clusters=5,
                             truth=phantom.labels, names=names)
    legend = [text for text, value in ex.highlight.options if value >= 0]
    assert legend == ex.key["legend"]
    assert set(names.values()) & set(legend)               # matched clusters carry names
    # the map shows the renumbered labels: cluster c is drawn as its phase's number
    for c, n in enumerate(ex.key["number"]):
        assert np.all(ex.key["labels"][ex.labels == c] == n)


def test_gmm_explorer_sliders(phantom):
    ex = widgets.GMMExplorer(phantom, n_clusters=4, truth=phantom.labels)
    scores_id = id(ex.scores)
    labels4, png4 = ex.labels.copy(), ex.image.value
    ex.n_clusters.value = 5
    assert ex.labels.max() == 4 and labels4.max() == 3
    assert ex.image.value != png4
    assert ex.weights.shape == (ex.labels.size, 5)
    assert ex.mean_spectra.data.shape[0] == 5
    assert [o[1] for o in ex.highlight.options] == [-1, 0, 1, 2, 3, 4]
    nc = ex.n_components.value
    ex.n_components.value = nc + 1
    assert id(ex.scores) == scores_id                 # PCA not refitted
    assert set(ex._bic) == {nc, nc + 1}               # one BIC curve per component count
    assert "refit" in ex.timings
    # plot-only: the highlighted mean spectrum
    t = _median_time(ex, "plot", [lambda c=c: setattr(ex.highlight, "value", c)
                                  for c in (1, 2, 0)])
    assert t > 0, t  # the plot step ran (its speed: benchmarks/)
    # the full workflow for the current sliders gives the same binned labels
    seg = ex.segmentation()
    assert seg.params["n_components"] == nc + 1 and seg.n_clusters == 5
    np.testing.assert_array_equal(seg.labels, ex.labels)
    assert ex.segmentation() is seg                   # cached


# ---------------------------------------------------------------- HDBSCAN

def test_hdbscan_explorer_sliders(phantom, hdb_seg):
    ex = widgets.HDBSCANExplorer(phantom, segmentation=hdb_seg, min_cluster_size=100,
                                 truth=phantom.labels,
                                 names={i: p.name for i, p in enumerate(phantom.phases)})
    emb = ex.embedding
    assert ex.prepared is hdb_seg.models["prepared"]
    np.testing.assert_array_equal(ex.labels, hdb_seg.labels)
    assert ex.n_found == hdb_seg.n_clusters
    assert "nm²" in ex.area.value
    png = ex.image.value
    ex.min_cluster_size.value = 1000
    assert ex.embedding is emb                         # UMAP not recomputed
    assert ex.n_found < hdb_seg.n_clusters or ex.noise_fraction > hdb_seg.noise_fraction
    assert ex.image.value != png
    ex.min_cluster_size.value = 100
    ex.min_samples.value = 1
    # noise levels of a few tenths of a per cent: no ordering of two such numbers holds on
    # every CPU and seed, only their size
    assert ex.noise_fraction < 0.05
    ex.min_samples.value = 0
    np.testing.assert_array_equal(ex.labels, hdb_seg.labels)
    # with names, clusters are drawn under their matched phase's number (and colour)
    lab, k, names = ex._embedding_labels()
    assert k == ex.key["n_colours"] and names == ex.key["names"]
    for c, n in enumerate(ex.key["number"]):
        assert np.all(lab[ex.labels.ravel()[ex.prepared.used.ravel()] == c] == n)
    # plot-only: colour by truth / cluster, other dimensions
    t = _median_time(ex, "plot", [lambda v=v: setattr(ex.colour_by, "value", v)
                                  for v in ("truth", "cluster", "truth")])
    assert t > 0, t  # the plot step ran (its speed: benchmarks/)
    ex.dims.value = (2, 3)
    assert ex._axes["embedding"].stemseg_dims == (2, 3)
    assert ex.timings["plot"] > 0


def test_hdbscan_explorer_segmentation_quantifies(phantom, hdb_seg):
    ex = widgets.HDBSCANExplorer(phantom, segmentation=hdb_seg, min_cluster_size=100)
    seg = ex.segmentation(weights="probability")
    assert seg.workflow == "hdbscan" and seg.params["labels_full"] == "repeat"
    assert seg.n_clusters == ex.n_found
    assert seg.labels_full.shape == phantom.labels.shape
    assert seg.mean_spectra.data.shape[0] == seg.n_clusters
    np.testing.assert_array_equal(seg.labels, hdb_seg.labels)
    table = quant.quantify(seg)
    assert set(table["cluster"]) == set(range(seg.n_clusters))


def test_hdbscan_explorer_on_a_subsampled_segmentation(phantom):
    # 64 x 64 -> 1024 binned pixels; UMAP fitted on 274 of them (see test_workflows)
    seg = workflows.hdbscan(phantom, min_cluster_size=120, umap_sample=256, random_state=0,
                            labels_full="repeat")
    assert seg.models["umap_sample"] is not None
    ex = widgets.HDBSCANExplorer(phantom, segmentation=seg, min_cluster_size=120)
    assert ex.sample is seg.models["umap_sample"]
    # refitted on the sample and predicted elsewhere, as the workflow: the same labels
    np.testing.assert_array_equal(ex.labels, seg.labels)
    again = ex.segmentation()
    np.testing.assert_array_equal(again.labels, seg.labels)
    np.testing.assert_allclose(again.weights, seg.weights)


def test_hdbscan_explorer_computes_its_own_embedding():
    small = simulate.phantom("sulfide-6cation", shape=(32, 32), random_state=1)
    ex = widgets.HDBSCANExplorer(small, min_cluster_size=40, n_neighbors=10)
    assert ex.embedding.shape == (256, 4)
    assert ex.reducer is not None and ex.colour_by.options == ("cluster",)


# ---------------------------------------------------------------- quantification

def test_quant_explorer_override_and_reset(gmm_seg):
    qx = widgets.QuantExplorer(gmm_seg, clusters=[1, 2])
    assert set(qx.table["cluster"]) == {1, 2}
    assert set(qx.kfactor_inputs) == set(qx.lines)
    base = qx.table.set_index(["cluster", "element"])["at_pct"]
    qx.kfactor_inputs["Fe_Ka"].value = 2 * qx.theoretical["Fe_Ka"]
    assert qx.kfactors["Fe_Ka"] == pytest.approx(2 * qx.theoretical["Fe_Ka"], rel=1e-3)
    moved = qx.table.set_index(["cluster", "element"])["at_pct"]
    assert (moved.xs("Fe", level="element") > base.xs("Fe", level="element")).all()
    qx.reset.click()
    back = qx.table.set_index(["cluster", "element"])["at_pct"]
    np.testing.assert_allclose(back, base, rtol=1e-3)
    qx.method.value = "windows"
    assert qx.table.attrs["method"] == "windows"
    assert "windows intensities" in qx.output.value
    assert "application/vnd.jupyter.widget-view+json" in qx._repr_mimebundle_()


def test_cluster_colours_distinct_and_never_noise_grey():
    """Up to 54 clusters every colour differs from the others and from the noise grey
    (tab10's own grey was cluster 7's colour, and tab10 repeats after 10)."""
    colours = [tuple(np.round(c, 3)) for c in plots.cluster_colours(54)]
    assert len(set(colours)) == 54, "two clusters share a colour"
    for c in colours:
        r, g, b = c[:3]
        assert max(r, g, b) - min(r, g, b) > 0.05, f"cluster colour {c} is a grey"
    assert plots.cluster_colours(7) == [tuple(plt_tab10(i)) for i in range(7)]


def plt_tab10(i):
    import matplotlib.pyplot as plt

    return plt.get_cmap("tab10")(i)


def test_plots_label_colours_consistent():
    colours = plots.label_colours(np.array([-1, 0, 3]), 5)
    assert tuple(colours[0]) == plots.NOISE_COLOUR
    assert tuple(colours[2]) == plots.cluster_colours(5)[3]


def test_quant_explorer_dose_slider_is_plot_only(gmm_seg, monkeypatch):
    """The dose slider rescales the counting error bars without requantifying."""
    qx = widgets.QuantExplorer(gmm_seg, clusters=[1, 2, 3, 4])
    assert qx.dose.value == 1.0 and qx.dose.min < 0 < qx.dose.max  # log10 range
    table, png, renders = qx.table, qx.image.value, qx.n_renders
    pair = qx.separation.iloc[0]
    assert list(qx.separation["z"]) == sorted(qx.separation["z"])
    assert len(qx.separation) == 6 and pair["z"] > 0                # 4 clusters: 6 pairs

    def no_requantification(*args, **kwargs):
        raise AssertionError("a dose change must not requantify")

    monkeypatch.setattr(quant, "quantify", no_requantification)
    qx.dose.value = 0.01
    assert qx.table is table and qx.n_renders == renders + 1 and qx.image.value != png
    np.testing.assert_allclose(qx.sigma_at_dose, 10 * table["sigma"])
    assert f"z = <b>{0.1 * pair['z']:.1f}</b>" in qx.status.value
    for bars, _, _, sigma in qx._errorbars:       # drawn bars: +-1 sigma(dose), as the table
        lengths = [seg[1][1] - seg[0][1] for seg in bars.get_segments()]
        np.testing.assert_allclose(lengths, 2 * 10 * sigma)
    assert "± 1 s.d." in qx._axes["composition"].get_title() and "± 1 s.d." in qx.output.value
    assert qx.dose.min == pytest.approx(-4)  # the 3 s.d. crossings of the phantom lie above
    # both ends of the slider draw a result; back at 1 the figure is the original one
    for value in (10 ** qx.dose.min, 10 ** qx.dose.max, 1.0):
        qx.dose.value = value
        assert qx.timings["plot"] > 0 and "counting error up to" in qx.status.value
    assert qx.image.value == png
    t = _median_time(qx, "plot", [lambda v=v: setattr(qx.dose, "value", v)
                                  for v in (0.1, 10.0, 1.0)])
    assert t > 0, t  # the plot step ran (its speed: benchmarks/)
    monkeypatch.undo()
    # the rule the slider applies is what a real quantification of 4x the counts gives
    more = gmm_seg.counts.deepcopy()
    more.data = more.data * 4
    t1 = quant.quantify(gmm_seg.counts, weights=gmm_seg.weights)
    t4 = quant.quantify(more, weights=gmm_seg.weights)
    major = (t1["at_pct"] > 1.0) & t1["cluster"].isin([1, 2, 3, 4])
    np.testing.assert_allclose(t4.loc[major, "at_pct"], t1.loc[major, "at_pct"], rtol=2e-3)
    np.testing.assert_allclose(t4.loc[major, "sigma"] / t1.loc[major, "sigma"], 0.5,
                               rtol=0.02)


def test_quant_explorer_rejects_a_dose_outside_the_slider(gmm_seg):
    with pytest.raises(StemsegValueError, match="dose=1000.*between 0.0001 and 100"):
        widgets.QuantExplorer(gmm_seg, dose=1000)
