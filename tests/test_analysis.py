"""stemseg.analysis: the small analyses behind the notebooks' claim checks (E1-E9)."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pandas as pd
import pytest

from _synth import synthetic_cube, truth_map
from stemseg import analysis, quant, simulate, workflows
from stemseg.errors import StemsegValueError

warnings.filterwarnings("ignore", category=DeprecationWarning)


# ---------------------------------------------------------------- fixtures

@pytest.fixture(scope="module")
def sulfide(sulfide_64):
    return sulfide_64


@pytest.fixture(scope="module")
def synth_seg(synth):
    cube, truth = synth
    return workflows.gmm(cube, n_clusters=4, random_state=0, labels_full="repeat"), truth


def _disc_image(value_per_nm=2.0, enrich=1.0, seed=0, shape=(80, 80)):
    """Two spheres; counts ~ Poisson(chord x value, x enrich inside half the radius)."""
    particles = [(20.0, 20.0, 14.0), (55.0, 52.0, 18.0)]
    yy, xx = np.mgrid[: shape[0], : shape[1]] + 0.5
    chord = np.zeros(shape)
    core = np.zeros(shape, dtype=bool)
    for cy, cx, r in particles:
        d2 = (yy - cy) ** 2 + (xx - cx) ** 2
        inside = d2 < r * r
        chord[inside] = 2 * np.sqrt(r * r - d2[inside])
        core |= d2 < (0.5 * r) ** 2
    lam = chord * value_per_nm * np.where(core, enrich, 1.0)
    counts = np.random.default_rng(seed).poisson(lam).astype(float)
    return counts, chord, particles


# ---------------------------------------------------------------- element maps (E1)

def test_element_maps_titles_and_counts(sulfide):
    maps = analysis.element_maps(sulfide)
    lines = [analysis.line_name(m) for m in maps]
    assert lines == list(sulfide.eds.metadata.Sample.xray_lines)
    assert all(m.metadata.General.title == ln for m, ln in zip(maps, lines))
    assert all(m.data.shape == (64, 64) for m in maps)
    s = maps[lines.index("S_Ka")]
    resin = sulfide.labels == 0
    assert analysis.counts_per_pixel(s, ~resin) > 10 * analysis.counts_per_pixel(s, resin)
    # background subtraction lowers the gross window counts
    net = analysis.element_maps(sulfide, ["S_Ka"], background=True)[0]
    assert net.data.mean() < s.data.mean()


def test_element_maps_without_elements_raises():
    cube, _ = synthetic_cube(shape=(8, 8), n_channels=64)
    with pytest.raises(StemsegValueError, match="add_elements"):
        analysis.element_maps(cube)


def test_display_limits_and_displayed():
    a = np.arange(100.0).reshape(10, 10)
    b = 0.1 * a
    per = analysis.display_limits([a, b], "per-map", 100)
    com = analysis.display_limits([a, b], "common", 100)
    assert per == [(0.0, 99.0), (0.0, pytest.approx(9.9))]
    assert com[0] == com[1] == (0.0, 99.0)
    d = analysis.displayed([a, b], "common", 100)
    assert d.shape == (2, 10, 10) and d.min() >= 0 and d.max() <= 1
    assert d[1].max() == pytest.approx(0.1)
    with pytest.raises(StemsegValueError):
        analysis.display_limits([a], "log")


def test_apparent_overlap_depends_on_scaling_correlation_does_not():
    rng = np.random.default_rng(0)
    a = rng.uniform(0, 1, (20, 20))
    maps = [a, 0.1 * a, rng.uniform(0, 1, (20, 20))]
    per = analysis.apparent_overlap(maps, "per-map", names=list("abc"))
    com = analysis.apparent_overlap(maps, "common", names=list("abc"))
    ab_per = per.set_index(["a", "b"]).loc[("a", "b"), "overlap"]
    ab_com = com.set_index(["a", "b"]).loc[("a", "b"), "overlap"]
    assert ab_per == pytest.approx(1.0, abs=0.02)      # identical once each is autoscaled
    assert ab_com < 0.2                                 # one is dark under a common scale
    r = analysis.pair_correlations(maps, names=list("abc")).set_index(["a", "b"])["r"]
    assert r[("a", "b")] == pytest.approx(1.0)


def test_scaling_rankings_with_truth(sulfide):
    maps = analysis.element_maps(sulfide)
    lines = [analysis.line_name(m) for m in maps]
    truth = analysis.truth_concentration_maps(sulfide, [ln.split("_")[0] for ln in lines])
    assert truth.shape == (len(lines), 64, 64)
    fe = truth[lines.index("Fe_Ka")]
    assert fe[sulfide.labels == 0].max() == 0  # no Fe in the resin
    table = analysis.scaling_rankings(maps, truth=truth, mask=sulfide.labels > 0)
    n = len(lines)
    assert len(table) == n * (n - 1) // 2
    assert {"rank_per_map", "rank_common", "rank_counts", "rank_truth"} <= set(table)
    rho = table.attrs["spearman"]
    assert set(rho) >= {"per_map vs common", "per_map vs truth", "common vs truth"}
    assert all(-1 <= v <= 1 for v in rho.values())
    assert list(table["rank_per_map"]) == sorted(table["rank_per_map"])


# ---------------------------------------------------------------- radial profiles (E2)

def test_radial_profile_uniform_sphere_is_flat_after_normalising():
    counts, chord, particles = _disc_image()
    prof = analysis.radial_profile(counts, particles, reference=chord, bins=5)
    assert list(prof.columns) == ["r", "n_pixels", "mean", "sem", "ratio", "ratio_sigma"]
    assert prof["mean"].iloc[0] > 1.5 * prof["mean"].iloc[-1]   # raw: bright centre
    assert np.all(np.abs(prof["ratio"] - 1) < 4 * prof["ratio_sigma"])
    assert prof["n_pixels"].sum() == int(np.isfinite(analysis._relative_radius(
        counts.shape, np.array(particles))).sum())


def test_core_excess_uniform_vs_enriched():
    counts, chord, particles = _disc_image(value_per_nm=1.0)
    uni = analysis.core_excess(counts, particles, chord)
    assert abs(uni["z"]) < 3 and uni["core_pixels"] > 0 and uni["shell_pixels"] > 0
    counts2, chord2, _ = _disc_image(value_per_nm=1.0, enrich=1.3, seed=1)
    rich = analysis.core_excess(counts2, particles, chord2)
    assert rich["z"] > 3 and rich["excess"] == pytest.approx(1.3, rel=0.1)
    # a reference made of counts adds its own Poisson error
    ref_counts = np.random.default_rng(5).poisson(chord * 3.0).astype(float)
    with_ref = analysis.core_excess(counts, particles, ref_counts)
    assert with_ref["sigma"] > uni["sigma"] * 0.9
    with pytest.raises(StemsegValueError):
        analysis.core_excess(counts, particles, chord, core_fraction=0.95)
    with pytest.raises(StemsegValueError):
        analysis.radial_profile(counts, [(1, 2)])


def test_particle_regions_disjoint():
    _, _, particles = _disc_image()
    core, shell = analysis.particle_regions((80, 80), particles)
    assert core.any() and shell.any() and not (core & shell).any()


# ---------------------------------------------------------------- SNR (E4)

def test_effective_pixels():
    w = np.zeros((10, 2))
    w[:4, 0] = 1.0
    w[:, 1] = 0.5
    np.testing.assert_allclose(analysis.effective_pixels(w), [4.0, 10.0])
    assert analysis.effective_pixels(np.zeros((3, 1)))[0] == 0


def test_snr_gain_follows_sqrt_n(synth_seg):
    seg, _ = synth_seg
    res = analysis.snr_gain(seg, "Fe_Ka")
    assert res["n_pixels"] > 20
    assert res["gain"] > 5
    assert 0.8 < res["gain"] / res["sqrt_n_effective"] < 1.25


# ---------------------------------------------------------------- compositions (E5-E8)

def test_other_fraction_and_s_to_metal_exact():
    comp = {"Cu": (20.0, 1.0), "Fe": (25.0, 1.0), "S": (50.0, 2.0), "Ag": (3.0, 0.3),
            "Zn": (2.0, 0.4)}
    value, sigma = analysis.other_fraction(comp, ("Cu", "Fe", "S"))
    assert value == pytest.approx(5.0) and sigma == pytest.approx(0.5)
    ratio, rs = analysis.s_to_metal(comp)
    assert ratio == pytest.approx(1.0)
    assert rs == pytest.approx(math.hypot(2 / 50, math.sqrt(1 + 1 + 0.09 + 0.16) / 50))
    assert analysis.other_fraction({"Cu": 50, "S": 50}, ("Cu", "S"))[0] == 0


def test_paper_table_gives_the_quoted_numbers():
    p1 = quant.paper_table("eggeman2025_table1_6cation", "workflow1_pca_gmm")
    exp = analysis.EXPECTED_FROM_MAPS
    assert analysis.other_fraction(p1, exp["chalcopyrite"], "i")[0] == pytest.approx(4.92, abs=0.01)
    assert analysis.other_fraction(p1, exp["jalpaite"], "ii")[0] == pytest.approx(6.69, abs=0.01)
    assert analysis.s_to_metal(p1, "iii")[0] == pytest.approx(1.512, abs=0.002)
    ent = analysis.entropy_table(p1).set_index("cluster")
    assert ent.loc["iv", "entropy_R"] == pytest.approx(0.839, abs=0.002)
    assert ent.loc["iv", "max_equimolar_R"] == pytest.approx(0.5 * math.log(6))
    assert ent.loc[["i", "ii", "iii"], "entropy_R"].between(0.5, 0.61).all()
    assert (ent["sigma_R"] > 0).all()


def test_compare_with_paper_and_wide_table():
    p1 = quant.paper_table("eggeman2025_table1_6cation", "workflow1_pca_gmm")
    ours = p1.assign(cluster=p1["cluster"].map({"i": 7, "ii": 8, "iii": 9, "iv": 10}))
    cmp_ = analysis.compare_with_paper(ours, p1, {8: "ii", 7: "i"})
    assert list(dict.fromkeys(cmp_.index.get_level_values(0))) == ["i", "ii"]
    assert np.allclose(cmp_["difference"], 0) and np.allclose(cmp_["z"], 0)
    wide = analysis.composition_wide(p1)
    assert wide.loc["Ag", "ii"] == "39.00 ± 4.00"
    wide2 = analysis.composition_wide(ours, {10: "minority", 7: "chalco"})
    assert list(wide2.columns) == ["minority", "chalco"]


def test_composition_difference():
    t = pd.DataFrame({"cluster": [0, 0, 1, 1], "element": ["Co", "S", "Co", "S"],
                      "at_pct": [4.0, 50.0, 3.0, 50.0], "sigma": [0.3, 1.0, 0.4, 1.0]})
    d = analysis.composition_difference(t, 0, 1)
    assert d.loc["Co", "difference"] == pytest.approx(1.0)
    assert d.loc["Co", "z"] == pytest.approx(2.0)
    assert d.loc["S", "z"] == 0


# ---------------------------------------------------------------- support (E9)

def test_support_absorption(synth_seg):
    seg, truth = synth_seg
    df = analysis.support_absorption(seg, truth, support=0)
    assert df["support_pixels"].sum() == int((truth == 0).sum())
    assert df["share_of_support"].sum() == pytest.approx(1.0)
    assert df["is_support_cluster"].sum() == 1
    assert 0 <= df.attrs["absorbed"] <= 1 and df.attrs["noise"] == 0
    with pytest.raises(StemsegValueError):
        analysis.support_absorption(seg, truth[:10])


# ---------------------------------------------------------------- labels

def test_bin_labels_and_fraction():
    labels = np.array([[0, 0, 1, 1], [0, 1, 1, 1], [2, 2, 3, 3], [2, 2, 3, 2]])
    np.testing.assert_array_equal(analysis.bin_labels(labels, 2), [[0, 1], [2, 3]])
    np.testing.assert_array_equal(analysis.bin_labels(labels - 1, 2), [[-1, 0], [1, 2]])
    np.testing.assert_array_equal(analysis.bin_labels(labels, 1), labels)
    np.testing.assert_allclose(analysis.bin_fraction(labels == 1, 2), [[0.25, 1.0], [0, 0]])


def test_align_labels_and_phase_recovery():
    truth = truth_map((64, 64))
    perm = np.array([2, 0, 3, 1])
    labels = perm[truth]
    labels[0, 0] = -1
    aligned, renumber = analysis.align_labels(labels, truth)
    assert renumber == {2: 0, 0: 1, 3: 2, 1: 3}
    assert (aligned[truth >= 0][1:] == truth.ravel()[1:]).all()
    assert aligned[0, 0] == -1
    rec = analysis.phase_recovery(labels, truth, ["a", "b", "c", "d"])
    assert list(rec["name"]) == list("abcd")
    assert (rec["precision"] == 1).all() and (rec["recall"] > 0.99).all()


def test_check_answer():
    assert "not attempted" in analysis.check_answer(None, 3.0)
    assert analysis.check_answer(3.05, 3.0, rtol=0.05).endswith("correct.")
    assert "too high" in analysis.check_answer(4, 3.0)
    assert "too low" in analysis.check_answer(2, 3.0)
    # a pair of names is unordered; case, spaces and underscores do not matter
    for said in ("Ag_La / Cd_La", "Cd_La / Ag_La", "cd la/ag la"):
        assert analysis.check_answer(said, "Ag_La / Cd_La").endswith("correct.")
    assert analysis.check_answer("Ag_La / Cu_Ka", "Ag_La / Cd_La").endswith("not yet.")
    assert analysis.check_answer("yes", "Yes ").endswith("correct.")
    assert analysis.check_answer(5, 3.0, hint="halve it").endswith("Hint: halve it")
    assert "Hint" not in analysis.check_answer(3, 3.0, hint="halve it")
    assert "Hint" not in analysis.check_answer(None, 3.0, hint="halve it")
    assert "give a number" in analysis.check_answer("x", 3.0)
    assert analysis.check_answer(" Cu_Ka / Fe_Ka", "cu_ka / fe_ka").endswith("correct.")
    assert analysis.check_answer("no", "yes").endswith("not yet.")


def test_check_answer_accepts_equivalent_names():
    aliases = analysis.BUDGET_TERM_ALIASES["sigma_kfactor"]
    for answer in ("sigma_kfactor", "k-factor", "K factor", "kfactors", "k"):
        assert analysis.check_answer(answer, "sigma_kfactor", aliases=aliases).endswith(
            "correct."), answer
    assert analysis.check_answer("counting", "sigma_kfactor", aliases=aliases).endswith(
        "not yet.")
    assert analysis.check_answer("Poisson", "sigma",
                                 aliases=analysis.BUDGET_TERM_ALIASES["sigma"]).endswith(
        "correct.")


def test_budget_at_dose_scales_only_the_counting_term():
    table = pd.DataFrame({"sigma": [0.1, 0.2, 0.3], "sigma_calibration": [0.0, 0.0, 0.0],
                          "sigma_kfactor": [0.5, 0.6, 0.7], "sigma_mixing": [0.0, 0.0, 0.0]})
    at_1 = analysis.budget_at_dose(table)
    at_100th = analysis.budget_at_dose(table, 0.01)
    assert at_1["sigma"] == pytest.approx(0.2) and at_100th["sigma"] == pytest.approx(2.0)
    assert at_100th["sigma_kfactor"] == at_1["sigma_kfactor"] == pytest.approx(0.6)
    assert at_1["sigma_total"] == pytest.approx(math.hypot(0.2, 0.6))
    assert at_100th[["sigma", "sigma_kfactor"]].idxmax() == "sigma"
    with pytest.raises(StemsegValueError, match="positive"):
        analysis.budget_at_dose(table, 0)
    with pytest.raises(StemsegValueError, match="budget columns"):
        analysis.budget_at_dose(table[["sigma"]])


def test_cluster_statistics_and_rank_separation():
    labels = np.array([[0, 0, 1, 1], [0, 0, 1, -1]])
    thickness = np.array([[30.0, 32.0, 10.0, 12.0], [34.0, 36.0, 14.0, 99.0]])
    stats = analysis.cluster_statistics(labels, thickness, names={0: "core"})
    assert list(stats.index) == [0, 1] and stats.loc[0, "name"] == "core"
    assert stats.loc[0, "mean"] == pytest.approx(33.0) and stats.loc[1, "n_pixels"] == 3
    assert analysis.rank_separation(labels, thickness, 0, 1) == 1.0
    assert analysis.rank_separation(labels, thickness, 1, 0) == 0.0
    rng = np.random.default_rng(0)
    mixed = rng.normal(size=(40, 40))
    halves = (np.arange(1600) % 2).reshape(40, 40)
    assert abs(analysis.rank_separation(halves, mixed, 0, 1) - 0.5) < 0.05
    assert analysis.rank_separation(labels, np.ones((2, 4)), 0, 1) == 0.5  # ties count half
    with pytest.raises(StemsegValueError, match="same shape"):
        analysis.cluster_statistics(labels, thickness[:, :2])
    with pytest.raises(StemsegValueError, match="no pixels"):
        analysis.rank_separation(labels, thickness, 0, 5)


def test_check_answer_accepts_equivalent_texts_and_gives_hints():
    assert analysis.check_answer("The Ensemble", "ensemble").endswith("correct.")
    assert analysis.check_answer("Ensemble-Truth", "ensemble",
                                 aliases=["Ensemble-Truth"]).endswith("correct.")
    assert analysis.check_answer("eds", "ensemble", aliases=["haadf"]).endswith("not yet.")
    verdict = analysis.check_answer("eds", "ensemble", hint="look at the *-Truth rows")
    assert "not yet" in verdict and "look at the *-Truth rows" in verdict
    assert analysis.check_answer(0.21, 0.2, rtol=0, atol=0.011).endswith("correct.")
    assert "not attempted" in analysis.check_answer(None, "ensemble", hint="x")


def test_check_length_nm_accepts_units_and_flags_angstrom():
    ok = "correct."
    assert analysis.check_length_nm(0.404, 0.404).endswith(ok)
    assert analysis.check_length_nm("4.04 Å", 0.404).endswith(ok)
    assert analysis.check_length_nm("404 pm", 0.404).endswith(ok)
    assert analysis.check_length_nm("0.404nm", 0.404).endswith(ok)
    assert "looks like a value in Å" in analysis.check_length_nm(4.04, 0.404)
    assert "too low" in analysis.check_length_nm(0.3, 0.404)
    assert "not yet" in analysis.check_length_nm("four", 0.404)
    assert "not yet" in analysis.check_length_nm("4 furlongs", 0.404)
    assert "not attempted" in analysis.check_length_nm(None, 0.404)


# ---------------------------------------------------------------- notebook helpers (issue 18)

def test_notebook_setup_quiets_libraries_and_prints_the_version(capsys):
    import logging

    from hyperspy.exceptions import VisibleDeprecationWarning

    import stemseg

    levels = {n: logging.getLogger(n).level for n in analysis.NOTEBOOK_QUIET_LOGGERS}
    try:
        with warnings.catch_warnings(), pd.option_context("display.precision", 6):
            warnings.resetwarnings()
            analysis.notebook_setup(precision=2)
            assert pd.get_option("display.precision") == 2
            with warnings.catch_warnings(record=True) as caught:
                for category in (VisibleDeprecationWarning, DeprecationWarning, FutureWarning):
                    warnings.warn("hidden", category)
                warnings.warn("shown", UserWarning)
            assert [str(w.message) for w in caught] == ["shown"]
            analysis.notebook_setup(hide_user_warnings=True)
            with warnings.catch_warnings(record=True) as caught:
                warnings.warn("hidden too", UserWarning)
            assert caught == []
        for name in analysis.NOTEBOOK_QUIET_LOGGERS:
            assert logging.getLogger(name).level == logging.ERROR
    finally:
        for name, level in levels.items():
            logging.getLogger(name).setLevel(level)
    assert capsys.readouterr().out == f"stemseg {stemseg.__version__}\n" * 2


_WURTZITE_PHASES = ["resin", "chalcopyrite", "jalpaite", "majority wurtzite",
                    "minority wurtzite"]


def test_wurtzite_check_counts_the_two_wurtzites():
    truth = np.repeat(np.arange(5), 20).reshape(10, 10)   # 20 px per phase, label = phase
    labels = truth.copy()
    labels[truth == 4] = 3                                   # minority merged into majority...
    labels[(truth == 4) & (np.arange(100).reshape(10, 10) % 20 < 4)] = 1  # ...4 px to chalcop.
    got = analysis.wurtzite_check(labels, truth, _WURTZITE_PHASES)
    assert got["minority wurtzite recall"] == 0.0            # no cluster of its own
    assert got["wurtzite share of its cluster"] == 1.0       # cluster 3: only wurtzite
    assert got["minority wurtzite elsewhere"] == pytest.approx(4 / 20)
    exact = analysis.wurtzite_check(truth, truth, _WURTZITE_PHASES)
    assert exact == {"minority wurtzite recall": 1.0, "wurtzite share of its cluster": 1.0,
                     "minority wurtzite elsewhere": 0.0}


class _Slider:
    def __init__(self, value):
        self.value = value


class _FakeGMMExplorer:
    """The attributes of widgets.GMMExplorer that gmm_sweep reads."""

    def __init__(self, truth):
        self.n_components, self.n_clusters = _Slider(3), _Slider(6)
        self.truth = truth
        self.timings = {"refit": 0.25}

    @property
    def labels(self):  # k clusters: the truth, with phases >= k merged into the last
        return np.minimum(self.truth, self.n_clusters.value - 1)

    @property
    def ari(self):
        return float(self.n_components.value * 10 + self.n_clusters.value)


def test_gmm_sweep_visits_every_setting_and_puts_the_sliders_back():
    truth = np.repeat(np.arange(5), 20).reshape(10, 10)
    explorer = _FakeGMMExplorer(truth)
    table = analysis.gmm_sweep(explorer, (4, 5), (4, 5))
    assert list(table.index) == [(4, 4), (4, 5), (5, 4), (5, 5)]
    assert list(table["ARI (binned)"]) == [44.0, 45.0, 54.0, 55.0]
    assert (table["refit (s)"] == 0.25).all()
    assert (explorer.n_components.value, explorer.n_clusters.value) == (3, 6)
    with_phases = analysis.gmm_sweep(explorer, (4,), (4, 5), phases=_WURTZITE_PHASES)
    assert list(with_phases["minority wurtzite recall"]) == [0.0, 1.0]


def test_hdbscan_relabel_refits_on_the_cached_embedding(synth_32):
    cube, _ = synth_32
    seg = workflows.hdbscan(cube, 40, bin=1, random_state=0)
    eom = analysis.hdbscan_relabel(seg, 40, 1, cluster_selection_method="eom")
    leaf = analysis.hdbscan_relabel(seg, 40, 1)
    assert eom.shape == leaf.shape == seg.labels.shape
    assert eom.min() >= -1 and leaf.min() >= -1
    assert (eom >= 0).any() and (leaf >= 0).any()
    # leaves are never coarser than the excess-of-mass selection on the same tree
    assert leaf.max() >= eom.max()


def test_ensemble_gain_is_the_ensemble_minus_the_better_modality():
    index = pd.MultiIndex.from_product([["film A", "film B"], ["haadf", "eds", "ensemble"]],
                                       names=["film", "modality"])
    table = pd.DataFrame({"kmeans": [0.2, 0.5, 0.7, 0.9, 0.1, 0.8],
                          "fewshot": [0.4, 0.3, 0.3, 0.0, 0.0, 0.5]}, index=index)
    gain = analysis.ensemble_gain(table)
    assert list(gain.index) == ["film A", "film B"]
    assert gain.loc["film A", "kmeans"] == pytest.approx(0.2)
    assert gain.loc["film B", "kmeans"] == pytest.approx(-0.1)
    assert gain.loc["film A", "fewshot"] == pytest.approx(-0.1)
    assert gain.loc["film B", "fewshot"] == pytest.approx(0.5)


class _FakeHDBSCANExplorer:
    """The attributes of widgets.HDBSCANExplorer that hdbscan_sweep reads."""

    def __init__(self):
        self.min_cluster_size, self.min_samples = _Slider(200), _Slider(0)
        self.pixel_area_nm2 = 4.0
        self.timings = {"refit": 0.5}
        self.ari = float("nan")

    @property
    def labels(self):  # fewer clusters as min_cluster_size grows
        return np.arange(100).reshape(10, 10) // max(1, self.min_cluster_size.value)

    @property
    def n_found(self):
        return int(self.labels.max()) + 1

    @property
    def noise_fraction(self):
        return self.min_samples.value / 100


def test_hdbscan_sweep_tabulates_one_slider_and_puts_it_back():
    explorer = _FakeHDBSCANExplorer()
    sizes = analysis.hdbscan_sweep(explorer, "min_cluster_size", [10, 50])
    assert list(sizes.index) == [10, 50] and sizes.index.name == "min_cluster_size (px)"
    assert list(sizes["clusters"]) == [10, 2]
    assert list(sizes["area (µm²)"]) == pytest.approx([40e-6, 200e-6])
    assert list(sizes["major clusters"]) == [10, 2]
    assert explorer.min_cluster_size.value == 200
    samples = analysis.hdbscan_sweep(explorer, "min_samples", [5, 0])
    assert list(samples.index) == [5, "default"]
    assert list(samples["noise %"]) == pytest.approx([5.0, 0.0])
    assert explorer.min_samples.value == 0
    with pytest.raises(StemsegValueError, match="min_cluster_size"):
        analysis.hdbscan_sweep(explorer, "bin", [2])


def test_leaf_sweep_has_a_row_per_size(synth_32):
    cube, _ = synth_32
    seg = workflows.hdbscan(cube, 40, bin=1, random_state=0)
    table = analysis.leaf_sweep(seg, [20, 40], 1)
    assert list(table.index) == [20, 40]
    assert (table["major clusters (leaf)"] >= 1).all()
    assert ((table["noise % (leaf)"] >= 0) & (table["noise % (leaf)"] <= 100)).all()


def test_phase_homes_names_the_merged_phases():
    truth = np.repeat(np.arange(3), 10).reshape(5, 6)
    labels = np.where(truth == 2, 1, truth)       # phases 1 and 2 in cluster 1
    labels[0, 0] = -1                             # noise is never a home
    homes = analysis.phase_homes(labels, truth, {0: "resin", 1: "a", 2: "b"})
    assert list(homes["main cluster"]) == [0, 1, 1]
    assert list(homes["share there"]) == pytest.approx([0.9, 1.0, 1.0])
    assert homes.attrs["merged"] == [["a", "b"]]
    assert analysis.phase_homes(truth, truth, {0: "r", 1: "a", 2: "b"}).attrs["merged"] == []


def test_region_iou_has_a_row_per_film_and_modality():
    truth = np.repeat(np.arange(2), 8).reshape(4, 4)      # region 1: the lower half
    perfect, blank = truth.copy(), np.zeros_like(truth)
    results = {"community": {"haadf": perfect, "eds": blank, "ensemble": perfect},
               "fewshot": {"haadf": blank, "eds": blank, "ensemble": perfect}}
    films = {"A": {"truth": truth, "regions": {"amorphous LFO": 1}, "results": results},
             "B": {"truth": truth, "regions": {"amorphous LFO": 1}, "results": results}}
    table = analysis.region_iou(films, "amorphous LFO", ["B"])
    assert list(table.index) == [("B", "haadf"), ("B", "eds"), ("B", "ensemble")]
    assert list(table.columns) == ["community", "fewshot"]     # multimodal.METHODS order
    assert table.loc[("B", "ensemble")].tolist() == [1.0, 1.0]
    assert table.loc[("B", "eds")].tolist() == [0.0, 0.0]
    assert len(analysis.region_iou(films, "amorphous LFO")) == 6


# ---------------------------------------------------------------- notebook 4 helpers

def test_phase_composition_finds_the_phase_by_name(sulfide):
    comp = analysis.phase_composition(sulfide.phases, "jalpaite")
    assert comp == dict(sulfide.phases[[p.name for p in sulfide.phases].index("jalpaite")]
                        .composition)
    with pytest.raises(StemsegValueError, match="no phase called"):
        analysis.phase_composition(sulfide.phases, "pyrite")


def test_phantom_clusters_names_keys_and_purity(sulfide):
    from types import SimpleNamespace

    perfect = SimpleNamespace(labels_full=sulfide.labels,
                              cluster_ids=list(range(len(sulfide.phases))))
    names, keys, purity = analysis.phantom_clusters(perfect, sulfide)
    assert names == {i: p.name for i, p in enumerate(sulfide.phases)}
    assert keys == {c: sulfide.truth["paper_cluster"][n] for c, n in names.items()
                    if n in sulfide.truth["paper_cluster"]}
    assert sorted(keys.values()) == ["i", "ii", "iii", "iv"]
    assert all(p == pytest.approx(1.0) for p in purity.values())
    # half of the jalpaite relabelled as resin: the resin cluster is no longer pure
    jal = [p.name for p in sulfide.phases].index("jalpaite")
    resin = [p.name for p in sulfide.phases].index("resin")
    mixed = sulfide.labels.copy()
    rows = np.nonzero((sulfide.labels == jal).any(axis=1))[0]
    mixed[rows[: len(rows) // 4]] = np.where(mixed[rows[: len(rows) // 4]] == jal, resin,
                                             mixed[rows[: len(rows) // 4]])
    _, _, purity = analysis.phantom_clusters(SimpleNamespace(labels_full=mixed), sulfide)
    assert purity[resin] < 1.0 and purity[jal] == pytest.approx(1.0)
    # no truth: the clusters keep their numbers
    assert analysis.phantom_clusters(perfect, SimpleNamespace()) == (
        {}, {c: str(c) for c in perfect.cluster_ids}, {})


class _FakeQuantExplorer:
    """The attributes of widgets.QuantExplorer that dose_verdicts reads."""

    def __init__(self):
        self.dose = _Slider(1.0)

    @property
    def status(self):
        return _Slider(f"dose x {self.dose.value:g}; <b>z = {3 * self.dose.value ** 0.5:.1f}</b>")


def test_dose_verdicts_reads_the_status_and_puts_the_slider_back():
    explorer = _FakeQuantExplorer()
    verdicts = analysis.dose_verdicts(explorer, [0.25, 4.0])
    assert verdicts == {0.25: "dose x 0.25; z = 1.5", 4.0: "dose x 4; z = 6.0"}
    assert explorer.dose.value == 1.0


def test_compare_methods_puts_the_tables_side_by_side():
    def table(ag):
        return pd.DataFrame({"cluster": [0, 0, 1, 1], "element": ["Ag", "Cd", "Ag", "Cd"],
                             "at_pct": [ag, 100 - ag, 10.0, 90.0]})

    out = analysis.compare_methods({"model": table(60.0), "windows": table(40.0)},
                                   {1: "(i) one", 0: "(ii) zero"}, ["Cd"],
                                   truth={0: {"Ag": 61.0, "Cd": 39.0}, 1: {"Ag": 10.0}})
    assert list(out.index) == [("(i) one", "Cd"), ("(ii) zero", "Cd")]
    assert list(out.columns) == ["model", "windows", "truth"]
    assert out.loc[("(ii) zero", "Cd")].tolist() == [40.0, 60.0, 39.0]
    assert out.loc[("(i) one", "Cd"), "truth"] == 0.0     # an element the truth lacks
    assert "truth" not in analysis.compare_methods({"model": table(60.0)}, {0: "0"}, ["Ag"])


def test_other_elements_by_phase(sulfide):
    paper = quant.paper_table("eggeman2025_table1_6cation", "workflow1_pca_gmm")
    values = analysis.other_elements(paper)
    assert list(values.index) == list(analysis.EXPECTED_FROM_MAPS)
    assert values["chalcopyrite"] == pytest.approx(4.9, abs=0.05)   # the paper's 5-7 %
    assert values["jalpaite"] == pytest.approx(6.7, abs=0.05)
    # clusters named by the caller; a phase without a cluster is NaN
    only_cp = analysis.other_elements(paper[paper.cluster == "i"], {"i": "chalcopyrite"})
    assert only_cp["chalcopyrite"] == values["chalcopyrite"]
    assert np.isnan(only_cp["jalpaite"])
    truth = analysis.other_elements(sulfide.phases)
    assert truth["jalpaite"] == pytest.approx(analysis.other_fraction(
        analysis.phase_composition(sulfide.phases, "jalpaite"),
        analysis.EXPECTED_FROM_MAPS["jalpaite"])[0])


def test_core_shell_check_on_a_small_uniform_phantom():
    ph = simulate.phantom("nanoparticles-7cation", shape=(64, 64), random_state=0)
    g = workflows.gmm(ph, n_clusters=3, random_state=0)
    h = workflows.hdbscan(ph, min_cluster_size=50, random_state=0, labels_full="repeat")
    r = analysis.core_shell_check(ph, g, h)
    assert r["labels"].shape == ph.labels.shape and r["thickness"] is ph.thickness
    assert set(r["names"].values()) <= {"film", "particles", "core", "shell"}
    assert r["gmm_particle_clusters"] == sum(n != "film" for n in r["names"].values())
    if r["core"] is not None:   # the core is the thicker of the two particle clusters
        assert r["names"][r["core"]] == "core" and r["names"][r["shell"]] == "shell"
        thick = ph.truth["particle_thickness"]
        assert thick[r["labels"] == r["core"]].mean() > thick[r["labels"] == r["shell"]].mean()
        assert list(r["gmm_diff"].columns[-3:]) == ["difference", "sigma", "z"]
    else:
        assert r["gmm_diff"] is None
    # uniform particles: the truth regions agree, and HDBSCAN finds one particle cluster
    assert (r["region_diff"]["z"].abs() < 3).all()
    assert r["hdbscan_particle_clusters"] == 1 and r["hdbscan_clusters"] >= 2


# ---------------------------------------------------------------- notebook 5 helpers

def test_film_segmentation_chips_and_segments_a_small_film():
    from stemseg import multimodal as mm

    ph = simulate.phantom("lfo-sto", shape=(120, 120), random_state=0)
    f = analysis.film_segmentation(ph, random_state=0)
    assert f["chips"].grid == (120 // ph.truth["chip_px"],) * 2
    assert f["truth"].shape == f["chips"].grid == f["sto_thick"].shape
    assert set(np.unique(f["sto_thick"])) <= {0, 1}
    assert f["names"] == {k: p.name for k, p in enumerate(ph.phases)}
    assert f["regions"] == ph.truth["regions"] and f["phases"] is ph.phases
    assert set(f["results"]) == set(mm.METHODS)
    assert set(f["results"]["fewshot"]) == set(mm.MODALITIES)
    assert list(f["ami"].columns) == list(mm.METHODS)


def test_percent_difference_table_has_the_built_truth_and_method_rows():
    from types import SimpleNamespace

    from stemseg import multimodal as mm

    phases = [SimpleNamespace(name="ordered LFO", composition={"La": 20.0, "O": 60.0}),
              SimpleNamespace(name="amorphous LFO", composition={"La": 18.0, "O": 63.0})]
    films = {"A": {"phases": phases, "regions": {"ordered LFO": 0, "amorphous LFO": 1}},
             "B": {"phases": phases[:1], "regions": {"ordered LFO": 0}}}
    region = pd.DataFrame({"La": [20.0, 16.0], "O": [60.0, 66.0]},
                          index=["ordered LFO", "amorphous LFO"])
    summaries = {("A", who): region for who in ("truth", *mm.METHODS)}
    summaries[("A", mm.METHODS[0])] = region.iloc[:1]     # a method that missed the region
    table = analysis.percent_difference_table(films, summaries, regions=("amorphous LFO",),
                                              elements=("La", "O"))
    assert list(table.index.get_level_values("labels")) == [
        "phantom built", "truth", *mm.METHODS[1:]]
    assert set(table.index.get_level_values("film")) == {"A"}    # B has no amorphous LFO
    assert table.loc[("A", "amorphous LFO", "phantom built")].tolist() == pytest.approx(
        [-10.0, 5.0])
    assert table.loc[("A", "amorphous LFO", "truth")].tolist() == pytest.approx([-20.0, 10.0])
