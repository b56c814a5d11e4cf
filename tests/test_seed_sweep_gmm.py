"""Seed sweep of the claims that notebooks 01, 02 and 04 assert on workflow 1 (issue 15).

A claim that a notebook asserts must hold for every seed, not for the one it was written
with: another seed (of the phantom and of every random step) is what another CPU gives too.
Here the random parts of those claims are recomputed for seeds 0-9 on the notebooks' own
map (the 128 x 128 sulfide phantom, bin 2), with the notebooks' thresholds, so that a
fragile claim fails in the test suite instead of on a student's machine.

Measured ranges over seeds 0-9 (session machine, 1 thread; the notebooks' prose cites them):
scaling Spearman per-map vs common 0.34-0.58, per-map minus common (vs truth) 0.41-0.61,
counts vs truth 0.84-0.97; GMM(6) ARI 0.92-0.98; scree knee 4-6 (6 at seed 8) with
evr[2]/evr[knee] 18.6-25.1; the four distinct phases covered >= 0.966 by the clusters they
dominate (k = 5 and 6), recall of the best cluster >= 0.98 with k = 5 but, with 6 clusters,
down to 0.56 where the spare cluster splits jalpaite (seed 1; 0.88 at seed 8)
(Bote-Salvat phantom spectra);
SNR gain / sqrt(N_eff) 0.996-1.001; windows overestimate jalpaite Cd by 11.8-12.4 at. %,
the model fit is within 0.16; S : metal of majority wurtzite 75-132 sigma above 1, from
its truth pixels 1.500-1.518 (truth 1.512); Ag gives 56-57 % of the line counts in
jalpaite's Cd La window.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

from stemseg import analysis, cluster, metrics, quant, simulate, workflows

SEEDS = range(10)
DISTINCT = ("resin", "chalcopyrite", "jalpaite")  # never merged with another phase


def _run(seed: int) -> dict:
    """The notebooks' phantom and workflow-1 results for one seed."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ph = simulate.phantom("sulfide-6cation", shape=(128, 128), random_state=seed)
        seg6 = workflows.gmm(ph, n_clusters=6, bin=2, random_state=seed)
        seg5 = workflows.gmm(ph, n_clusters=5, bin=2, random_state=seed)
    return dict(ph=ph, seg6=seg6, seg5=seg5)


def _check_notebook01_scaling_claims(seed, r):
    ph = r["ph"]
    maps = analysis.element_maps(ph)
    lines = [analysis.line_name(m) for m in maps]
    truth = analysis.truth_concentration_maps(ph, [ln.split("_")[0] for ln in lines])
    rankings = analysis.scaling_rankings(maps, truth=truth, mask=ph.labels > 0)
    rho = rankings.attrs["spearman"]
    assert rho["per_map vs common"] < 0.8, f"seed {seed}: the scalings rank alike: {rho}"
    gap = rho["per_map vs truth"] - rho["common vs truth"]
    assert gap > 0.2, f"seed {seed}: per-map not clearly closer to the truth ({gap:.2f})"
    assert rho["counts vs truth"] > 0.8, f"seed {seed}: counts do not follow the truth: {rho}"
    top = rankings.loc[rankings["rank_truth"].idxmin()]
    assert top["pair"] == "Mn_Ka / Zn_Ka", f"seed {seed}: top truth pair {top['pair']}"
    assert top["rank_per_map"] <= 3 < top["rank_common"], f"seed {seed}: {top.to_dict()}"


def _check_notebooks01_02_clustering_claims(seed, r):
    ph, seg6, seg5 = r["ph"], r["seg6"], r["seg5"]
    ari = metrics.ari(seg6.labels_full, ph.labels)
    assert ari > 0.9, f"seed {seed}: GMM(6) ARI {ari:.3f}"
    evr, knee = seg6.scree, seg6.params["scree_knee"]
    assert 4 <= knee <= 6, f"seed {seed}: scree knee {knee}"
    assert evr[2] / evr[knee] > 10, f"seed {seed}: no noise floor after 3 components: {evr[:7]}"
    for k, seg in ((6, seg6), (5, seg5)):
        rec = analysis.phase_recovery(seg.labels_full, ph.labels, ph.phases).set_index("name")
        four = rec.loc[[*DISTINCT, "majority wurtzite"]]
        assert (four.coverage > 0.95).all(), f"seed {seed}, k={k}: coverage\n{four}"
        assert (rec.loc[list(DISTINCT), "precision"] > 0.95).all(), f"seed {seed}, k={k}\n{rec}"
        if k == 5:
            assert (four.recall > 0.95).all(), f"seed {seed}, k=5: recall\n{four}"
    # notebook 02 section 3: the BIC's minimum (1-10 clusters, the widget's curve on the
    # components in use) lies past the five phases + 1 spare; measured 7-10 on seeds 0-9
    nc, models = seg6.params["n_components"], seg6.models
    scores = models["reducer"].pca_.transform(models["prepared"].X)[:, :nc]
    best = cluster.bic_curve(scores, list(range(1, 11)), n_init=1,
                             random_state=seed).attrs["best"]
    assert best > 6, f"seed {seed}: BIC minimum at {best} clusters"


def _check_notebook02_composition_claims(seed, r):
    """Notebook 02, E4 (6 clusters): chalcopyrite and jalpaite within 1.5 at. % of the
    paper values the phantom is built from; with the rims in a cluster of their own (recall
    > 0.8), majority wurtzite within 1.5 and rims within 2. Measured: i <= 0.31, ii <= 0.80,
    iii <= 0.50 (1.23 at seed 8, majority wurtzite split), iv <= 0.37."""
    ph, seg = r["ph"], r["seg6"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        table = quant.quantify(seg, mixing_check=False)
    paper = quant.paper_table("eggeman2025_table1_6cation", "workflow1_pca_gmm")
    phase_of = analysis.phase_names(metrics.match_clusters(seg.labels_full, ph.labels),
                                    ph.phases)
    key_of = ph.truth["paper_cluster"]
    to_paper = {c: key_of[n] for c, n in phase_of.items() if n in key_of}
    worst = analysis.compare_with_paper(table, paper, to_paper)["difference"].abs() \
        .groupby(level=0).max()
    assert (worst[["i", "ii"]] < 1.5).all(), f"seed {seed}: {worst.round(2).to_dict()}"
    rims = analysis.phase_recovery(seg.labels_full, ph.labels, ph.phases).set_index(
        "name").loc["minority wurtzite", "recall"]
    if rims > 0.8:
        assert worst["iii"] < 1.5 and worst["iv"] < 2.0, \
            f"seed {seed}: {worst.round(2).to_dict()}"


def _check_notebook02_snr_follows_sqrt_n(seed, r):
    gain = analysis.snr_gain(r["seg6"], "S_Ka")
    assert gain["gain"] > 10, f"seed {seed}: {gain}"
    ratio = gain["gain"] / gain["sqrt_n_effective"]
    assert 0.9 < ratio < 1.1, f"seed {seed}: gain / sqrt(N_eff) = {ratio:.3f}"


def _check_notebook04_quantification_claims(seed, r):
    ph, seg = r["ph"], r["seg6"]
    names = analysis.phase_names(metrics.match_clusters(seg.labels_full, ph.labels), ph.phases)
    cluster_of = {n: c for c, n in names.items()}
    truth = {p.name: p.composition for p in ph.phases}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = quant.quantify(seg)
        windows = quant.quantify(seg, method="windows")

    def at_pct(table, phase, el):
        t = table[(table.cluster == cluster_of[phase]) & (table.element == el)]
        return float(t["at_pct"].iloc[0])

    cd = truth["jalpaite"]["Cd"]
    assert at_pct(windows, "jalpaite", "Cd") - cd > 5, f"seed {seed}: windows Cd not biased"
    assert abs(at_pct(model, "jalpaite", "Cd") - cd) < 1, f"seed {seed}: model Cd off"
    ratio, sigma = analysis.s_to_metal(model, cluster_of["majority wurtzite"])
    assert math.isfinite(ratio) and (ratio - 1.0) / sigma > 20, \
        f"seed {seed}: S : metal {ratio:.3f} +- {sigma:.3f} not far from 1 : 1"
    assert np.isfinite(model["at_pct"]).all()
    lines = list(model.attrs["lines"])
    # the truth pixels of the majority wurtzite: S : metal within 0.02 of the truth
    wz = [p.name for p in ph.phases].index("majority wurtzite")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t_wz = quant.quantify(ph.eds, weights=(ph.labels == wz).reshape(-1, 1).astype(float),
                              lines=lines, mixing_check=False)
    truth_ratio = analysis.s_to_metal(truth["majority wurtzite"])[0]
    region = analysis.s_to_metal(t_wz, 0)[0]
    assert abs(region - truth_ratio) < 0.02, f"seed {seed}: truth pixels S : metal {region:.3f}"
    # the Cd La window of jalpaite holds more Ag (Ag Lb1) than 40 % of its line counts
    spectrum = seg.mean_spectra.inav[cluster_of["jalpaite"]]
    comp = quant.model_components(spectrum, lines)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        lo, hi = quant.line_intensities(spectrum, lines, method="windows").details["windows"][
            lines.index("Cd_La")]
    in_cd = comp.loc[lo:hi, ["Ag_La", "Cd_La"]].sum()
    assert in_cd["Ag_La"] / in_cd.sum() > 0.4, f"seed {seed}: Cd La window {in_cd.to_dict()}"


@pytest.mark.slow
@pytest.mark.parametrize("seed", SEEDS)
def test_workflow1_claims_hold_for_every_seed(seed):
    """Each seed's phantom and fits are made once and every claim is checked on them."""
    r = _run(seed)
    _check_notebook01_scaling_claims(seed, r)
    _check_notebooks01_02_clustering_claims(seed, r)
    _check_notebook02_composition_claims(seed, r)
    _check_notebook02_snr_follows_sqrt_n(seed, r)
    _check_notebook04_quantification_claims(seed, r)
