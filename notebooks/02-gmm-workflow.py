# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 2 · Workflow 1: PCA and a Gaussian mixture
#
# Workflow 1 of Eggeman *et al.* (2025) segments a STEM-EDX spectrum image in four steps:
# **bin** the map by 2, **scale** every energy channel (scikit-learn's `RobustScaler`),
# reduce the spectra with **PCA** to the number of components at the change point of the
# scree plot, and cluster the PCA scores with a **Gaussian mixture** (GMM) whose number of
# clusters the user chooses. Each cluster's pixels, weighted by their membership, give a
# mean spectrum with far less noise than any pixel -- the basis of the quantification in
# notebook 4.
#
# **Learning goals.** After this notebook you can
#
# 1. say what binning and robust scaling do to the data and why, and when a map has too
#    few counts to cluster;
# 2. read a PCA scree plot, find its change point, and see what too few components cost;
# 3. choose the number of GMM clusters with the BIC curve and judge the result against
#    truth (adjusted Rand index, ARI; claim E3) -- including what changes from one noise
#    realisation to the next;
# 4. explain why cluster-mean spectra gain signal-to-noise as the square root of the number
#    of pixels behind them (claim E4);
# 5. put the result next to the paper's Table 1, workflow 1.
#
# **Prerequisites.** Notebook 1; the idea of PCA (a rotation to directions of largest
# variance) and of a mixture of Gaussians.
#
# **Run time.** About a minute (45 s measured on a 2-core x86 machine; benchmarks/README.md).

# %% [markdown]
# ## Imports

# %%
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from IPython.display import display

import stemseg
from stemseg import (analysis, io, metrics, plots, preprocess, quant, validate, widgets,
                     workflows)

# HyperSpy's deprecation warnings and log messages off, pandas precision 3, the version
analysis.notebook_setup()

# %% [markdown]
# ## Data (change one line here)
#
# Default: the 6-cation sulfide phantom of notebook 1 (128 x 128 px, 40 nm pixels, 200 kV,
# ~200 counts per pixel on the grains), whose truth -- `data.labels`, `data.phases` -- lets
# us score the clustering.
#
# To analyse something else, **change one value**, `DATA`: the name of a bundled file
# (`stemseg.data.examples()` lists them: `"bruker_tem_CuOPdTi_64x64"` (TEM, 200 kV, Cu O Pd
# Ti, ~6 counts per pixel), `"bruker_sem_mineral_30x30"` (SEM, 20 kV: clustering works,
# Cliff-Lorimer quantification does not apply to bulk SEM samples), `"velox_si_16x16_CCaOCu"`
# (TEM, 16 x 16 px) and `"velox_eels_eds_FeCoO"` (TEM, 128 x 128 px, almost no X-rays)), or
# the path of your own file, e.g. `"/path/to/your/map.emd"`. From a terminal,
# `papermill 02-gmm-workflow.ipynb out.ipynb -p DATA bruker_tem_CuOPdTi_64x64` does the
# same. `SEED` seeds the phantom and every random step (PCA, the mixtures): change it to see
# which results belong to the method and which to one noise realisation. Cells that compare
# with the truth skip themselves on real data and say what to look at instead. Set
# `N_CLUSTERS` to what you expect (the sliders below let you change it).

# %% tags=["parameters"]
# ----------------------------------------------------------------------- DATA ------------
DATA = "phantom"   # the phantom; a bundled file, e.g. "bruker_tem_CuOPdTi_64x64"; or a path
SEED = 0           # seed of the phantom and of every random step below
N_CLUSTERS = 6     # resin + 4 sulfide phases + 1 spare (rims or boundary blocks, section 3)
BIN = 2            # spatial binning, as the paper
# ------------------------------------------------------------------------------------------

# %%
data = io.load_source(DATA, phantom="sulfide-6cation", shape=(128, 128), random_state=SEED)
has_truth = hasattr(data, "labels")
pixel_nm = plots.pixel_size_nm(data.eds)
print(data.eds, "| truth available:", has_truth)
if has_truth:
    print("phases:", [p.name for p in data.phases])

# %% [markdown]
# ## 1 · Bin and scale
#
# **Binning** sums 2 x 2 pixels: four times the counts per pixel (half the relative Poisson
# noise) for a quarter of the pixels, i.e. half the spatial resolution. **Feature channels**
# start at 0.25 keV so that the detector's zero-strobe peak, which carries no composition,
# does not dominate the variance. **RobustScaler** then removes each channel's median and
# divides by its inter-quartile range, so that channels with many counts (S Ka) do not
# drown out the weak ones (Zn Ka). The workflow does all of this itself; we call the step
# here only to look at it.
#
# **Enough counts?** Clustering can only separate phases whose pixel spectra differ by more
# than counting noise. Below 100 counts per binned pixel *in the feature channels* the step
# issues a **`StemsegSparseDataWarning`** (printed under this cell and under section 2; it
# is left visible on purpose). It means: a pixel's spectrum is then mostly Poisson noise, so
# the clusters follow the noise -- salt-and-pepper maps -- and their mean spectra and
# compositions describe arbitrary groups of pixels, not phases. The warning says what to do:
# bin more (it gives the `BIN` that reaches 100 counts), ask for fewer clusters, or record
# longer. The phantom has ~600 counts per binned pixel and does not warn; the bundled Bruker
# TEM map has ~25 and does; the two Velox files hold many counts in the zero-strobe peak but
# under one X-ray per pixel above 0.25 keV. The notebook still runs every step on such maps,
# so that you can see what a result from too few counts looks like -- read it as a sketch.

# %%
prep = preprocess.preprocess(data, bin=BIN)
raw_cpp = float(data.eds.data.sum(-1).mean())
binned_cpp = float(prep.counts.data.sum(-1).mean())
feature_cpp = float(prep.counts.data[..., prep.channels].sum(-1).mean())  # >= 0.25 keV
display(pd.DataFrame({
    "map (px)": [data.eds.data.shape[:2], prep.nav_shape],
    "pixel (nm)": [pixel_nm, None if pixel_nm is None else pixel_nm * BIN],
    "counts per pixel": [raw_cpp, binned_cpp],
    "in the feature channels": [feature_cpp / BIN**2, feature_cpp],
}, index=["as recorded", f"binned x{BIN}"]))

# %%
print(f"features: {prep.X.shape[0]} binned pixels x {prep.X.shape[1]} channels "
      f"({prep.energy[0]:.2f}-{prep.energy[-1]:.2f} keV)")
sparse = feature_cpp < preprocess.SPARSE_COUNTS_PER_PIXEL
if sparse:
    print(f"Only {feature_cpp:.3g} counts per binned pixel in the feature channels (fewer than "
          f"{preprocess.SPARSE_COUNTS_PER_PIXEL:g}): expect clusters that follow counting "
          "noise; see the StemsegSparseDataWarning above for how far to bin.")

# %%
ratio = binned_cpp / raw_cpp
assert abs(ratio - BIN**2) < 0.05 * BIN**2, (
    f"expected binning x{BIN} to multiply the counts per pixel by {BIN**2} (it sums "
    f"{BIN}x{BIN} pixels); got a factor {ratio:.2f}")
assert prep.energy[0] >= 0.25, (
    "expected the feature channels to start at 0.25 keV or above (zero-strobe peak left "
    f"out); got {prep.energy[0]:.3f} keV")

# %% [markdown]
# ## 2 · Run workflow 1 once
#
# One call runs every step. Without `n_components` the number of PCA components is the
# change point ("knee") of the scree curve, but at least `n_clusters - 1`. The result keeps
# its fitted stages, so the sliders below reuse them instead of recomputing.

# %%
seg = workflows.gmm(data, n_clusters=N_CLUSTERS, bin=BIN, random_state=SEED)
print(f"scree knee (the automatic change point): {seg.params['scree_knee']} components | "
      f"used: {seg.params['n_components']} (the knee, but at least N_CLUSTERS - 1 = "
      f"{N_CLUSTERS - 1})")
print("cluster sizes (binned px):", seg.sizes.tolist())
print("seconds per stage:", {k: round(v, 2) for k, v in seg.timings.items()})

# %% [markdown]
# ## 3 · Scree, change point and number of clusters (sliders)
#
# * **PCA comps** -- the scree plot (top left) shows the share of variance of each
#   component on a log scale. A few components carry the chemistry, then the curve flattens
#   into a noise floor. The red dashed line is the scree knee (the automatic change point),
#   the blue line the number in use; move the slider to override it.
# * **clusters** -- the Bayesian information criterion (BIC, top middle) of mixtures with 1
#   to 10 clusters on the chosen components: lower is better, but its minimum lies well past
#   the number of phases (7-10 clusters on phantom seeds 0-9), so it guides rather than
#   decides.
# * **highlight** -- draws one cluster's mean spectrum thick (plot only, instant).
#
# The GMM is refitted on the cached PCA scores (the time of each refit is printed in the
# table below; a new number of PCA components also computes its BIC curve once). The cluster
# map shows the binned labels and, on a phantom, the ARI against the binned truth; there the
# clusters are numbered, coloured and named after the phase they match, as in the truth map.

# %%
truth = data.labels if has_truth else None
names = {i: p.name for i, p in enumerate(data.phases)} if has_truth else None
explorer = widgets.GMMExplorer(data, segmentation=seg, n_clusters=N_CLUSTERS, truth=truth,
                               names=names, random_state=SEED)
explorer

# %% [markdown]
# The scree and the BIC curve of the run above as static figures (they are also in the
# widget, but a printed page or a notebook that has not run shows only these):

# %%
fig, axes = plt.subplots(1, 2, figsize=(10, 3.4), layout="constrained")
plots.scree(seg.scree, knee=seg.params["scree_knee"], chosen=seg.params["n_components"],
            ax=axes[0])
plots.bic(explorer.bic_table(seg.params["n_components"]), chosen=N_CLUSTERS, ax=axes[1])
plt.show()

# %% [markdown]
# The sliders can also be moved from code -- here both, each step a refit on the cached
# scores. On the phantom, two more columns follow the two wurtzites: the **recall** of the
# minority wurtzite (share of its binned pixels in its matched cluster) and the share of
# wurtzite (of either kind) in the cluster matched to the majority wurtzite.

# %%
sweep = analysis.gmm_sweep(explorer, n_components=(4, 5), n_clusters=(5, 6),
                           phases=data.phases if has_truth else None)
display(sweep)
bic_best = explorer.bic_table().attrs["best"]
print("BIC minimum at", bic_best, "clusters")

# %% [markdown]
# **What to see.** The scree curve has three large components, then the noise floor. The
# knee is the first noise component (HyperSpy's convention): at 4 on most seeds, at 5 when a
# weaker fourth component stands above the floor (phantom seeds 0-9: knee 4 on nine, 5 on
# seed 2). The workflow keeps at least `n_clusters - 1` components, so 6 clusters run on 5.
# On a map with too few counts (section 1) there is no clear change point: the curve falls
# slowly into the noise and the knee lands wherever the rule stops (16 components on the
# bundled Bruker map) -- one more sign that its clusters follow the noise.
#
# The wurtzites are always told apart from the other phases: in every setting of the table
# the cluster of the majority wurtzite holds almost only wurtzite, and hardly any minority
# wurtzite lands in the resin, chalcopyrite or jalpaite clusters. Whether the **minority
# wurtzite** rims get a cluster of their own is a different matter. They are 2-4 px wide, so
# after binning most of their blocks mix with a neighbour, and their composition lies close
# to a mixture of the phases around them. The mixture with the rims as a cluster and the
# mixture that merges them into the majority wurtzite and spends the cluster on mixed
# boundary blocks instead have almost the same likelihood (their mean log-likelihoods per
# binned pixel differ by only ~0.005-0.02), so which one wins flips with the number of
# components, the number of clusters and
# the noise realisation: on seeds 0-9 the rims' binned recall was either above 0.64 (found)
# or below 0.31 (merged), in no fixed pattern over the four settings. Run the notebook with
# another `SEED` to see it change. The BIC has its minimum at 7-10 clusters on seeds 0-9,
# well past the five phases: a hint, not an answer. The ARI here is on the binned map, where
# every block on a boundary mixes two phases, hence lower than at full resolution
# (section 5).

# %%
if has_truth:
    evr = seg.scree
    knee = seg.params["scree_knee"]
    assert 4 <= knee <= 6, (
        "expected the scree knee at 4 to 6 components (three strong components, sometimes "
        f"one or two weaker ones, then noise); got {knee}")
    assert evr[2] / evr[knee] > 10, (
        "expected the third component to carry more than 10x the variance of the first noise "
        f"component (the knee); got {evr[2] / evr[knee]:.1f}x")
    assert evr[knee] / evr[knee + 1] < 1.2, (
        "expected a flat noise floor after the knee (neighbouring components within 20 %); "
        f"got a ratio {evr[knee] / evr[knee + 1]:.2f}")
    print("scree ratios:", np.round(evr[:6] / evr[1:7], 1))

# %%
if has_truth:
    share = sweep["wurtzite share of its cluster"]
    assert (share > 0.9).all(), (
        "expected the majority-wurtzite cluster to hold more than 90 % wurtzite (either kind) "
        f"in every setting; got {share.round(3).to_dict()}")
    elsewhere = sweep["minority wurtzite elsewhere"]
    assert (elsewhere < 0.05).all(), (
        "expected under 5 % of the minority wurtzite in the resin, chalcopyrite or jalpaite "
        f"clusters in every setting; got {elsewhere.round(3).to_dict()}")
    assert bic_best > 6, (
        "expected the BIC minimum beyond 6 clusters (BIC keeps falling past the 5 phases + 1 "
        f"for boundary pixels); got {bic_best}")
    print("minority wurtzite on its own (binned recall > 0.5):",
          (sweep["minority wurtzite recall"] > 0.5).to_dict())

# %% [markdown]
# ### Choosing the number of clusters on counts the clustering never saw
#
# The BIC is computed on the same counts that made the clusters, so every extra cluster
# that follows the noise a little better lowers it. **Count splitting** avoids that: each
# recorded X-ray goes to half A or half B at random, giving two independent maps of the
# same specimen at half the dose (Neufeld et al. 2024; Leiner et al. 2023). Mixtures of
# k = 2, 3, ... clusters are fitted on A; on B, two clusters whose summed spectra do not
# differ beyond counting noise are merged, and a cluster whose spectrum is a mix of the
# others' and that has no interior pixels (mixed boundary pixels) is not counted. The
# number to use is the largest number of distinct, unmixed clusters. On the phantom it
# was 5, the number of phases, at every seed 0-9 we tried; on the bundled Bruker film
# (6 counts per pixel) it is 1: its "clusters" are splits of counting noise.

# %%
try:
    choice = validate.choose_n_clusters(data, max_clusters=6, random_state=SEED, bin=BIN)
except stemseg.StemsegError as err:
    choice = None
    print(f"Count splitting does not apply to these data: {err}")
else:
    display(pd.Series(choice.survivors, name="distinct, unmixed clusters")
            .rename_axis("mixture size k").to_frame().T)
    print(f"count splitting supports {choice.n_clusters} cluster(s); "
          f"the BIC's minimum is at {bic_best}"
          + (f"; the phantom has {len(data.phases)} phases" if has_truth else ""))

# %% [markdown]
# ## 4 · Cluster maps against the truth
#
# The full-resolution labels (`seg.labels_full`) classify every original pixel with the
# model fitted on the binned ones, so boundaries are not blocky. Clusters are renumbered to
# their matched phase so that a colour and a name mean the same phase in both maps, in the
# confusion matrix and in the mean spectra of section 6 (`analysis.cluster_key`); a cluster
# that matches no phase is called "extra cluster".

# %%
if has_truth:
    key = analysis.cluster_key(seg.labels_full, data.labels, names)
    fig, axes = plt.subplots(1, 3, figsize=(16, 4.2), layout="constrained")
    plots.label_map(key["labels"], ax=axes[0], pixel_size=pixel_nm, names=key["names"],
                    n_clusters=key["n_colours"], title=f"workflow 1: {seg.n_clusters} clusters")
    plots.label_map(data.labels, ax=axes[1], pixel_size=pixel_nm, names=names,
                    n_clusters=key["n_colours"], title="truth", colorbar_label="phase")
    plots.confusion(metrics.confusion_matrix(key["labels"], data.labels), ax=axes[2],
                    normalise="row", xnames=names, ynames=key["names"],
                    ylabel="cluster (named by its matched phase)",
                    title="pixels: cluster vs phase")
    plt.show()

# %%
if not has_truth:
    key = None   # no truth: clusters keep their own numbers and colours
    plots.label_map(seg.labels_full, pixel_size=pixel_nm, title="workflow 1")
    plt.show()
    if sparse:
        print("Few counts per pixel (see section 1): a speckled map means the clusters follow "
              "counting noise, not phases.")

# %% [markdown]
# ## 5 · Agreement with the truth: four major phases (claim E3)
#
# The paper: "Both ML workflows applied to the data returned four major components." The
# adjusted Rand index (ARI) is 1 for a perfect partition and ~0 for chance; Hungarian
# matching pairs each phase with one cluster, and recall/precision say how cleanly. We run
# the workflow with 6 and with 5 clusters (5 = the number of phases).

# %%
if has_truth:
    ari = metrics.ari(seg.labels_full, data.labels)
    recovery = analysis.phase_recovery(seg.labels_full, data.labels, data.phases)
    print(f"{seg.n_clusters} clusters: ARI against truth {ari:.3f}")
    display(recovery)
    seg5 = workflows.gmm(data, n_clusters=5, bin=BIN, random_state=SEED)
    rec5 = analysis.phase_recovery(seg5.labels_full, data.labels, data.phases)
    print(f"5 clusters ({seg5.params['n_components']} PCA components): "
          f"ARI {metrics.ari(seg5.labels_full, data.labels):.3f}")
    display(rec5)
else:
    print("No truth: judge the clusters by their mean spectra (section 6), by an image of "
          "the same area (HAADF) where the file has one, and by how they change with "
          "N_CLUSTERS and SEED.")

# %% [markdown]
# **What holds, and what depends on the seed.** On phantom seeds 0-9 the resin,
# chalcopyrite, jalpaite and majority wurtzite are each found: over 96 % of each lies in the
# clusters it dominates, the first three with precision of at least 0.98, and the
# majority-wurtzite cluster holds nothing but wurtzite -- with 6 and with 5 clusters. With
# 5 clusters each has one cluster of its own (recall at least 0.98); with 6 the spare
# cluster now and then cuts a grain phase in two (jalpaite at one seed: recall 0.56 for its
# larger half). The ARI with 6 clusters was 0.92-0.98 (with 5: 0.87-0.99, lower where the
# rims are merged). The minority wurtzite
# (the fourth "major component") is the fragile one, for the reason of section 3: with 6
# clusters it had a cluster of its own on every seed (recall 0.83-0.97), at the price of the
# occasional split grain phase above; with 5 clusters it was found on 7 of 10 seeds (recall
# at least 0.98) and merged on seeds 0, 1 and 9. Neither number of clusters is right on
# every seed -- which is why the paper's "four major components" needs the look at mean
# spectra and maps, not just a number of clusters. (Measured on another CPU, these counts
# can differ by a seed or two; the asserted claims hold on all ten.)

# %%
# Checks of claim E3 (workflow 1) on the phantom: what holds on every seed
if has_truth:
    assert ari > 0.9, (
        f"expected the ARI against the truth above 0.9 with {seg.n_clusters} clusters; "
        f"got {ari:.3f}")
    for k, rec in ((seg.n_clusters, recovery), (5, rec5)):
        found = rec.set_index("name")
        majors = found.loc[["resin", "chalcopyrite", "jalpaite", "majority wurtzite"]]
        assert (majors.coverage > 0.95).all(), (
            f"expected over 95 % of the resin and of each of the three grain phases in the "
            f"clusters it dominates with {k} clusters (a spare cluster may split one phase "
            f"in two); got {majors.coverage.round(3).to_dict()}")
        pure = found.loc[["resin", "chalcopyrite", "jalpaite"], "precision"]
        assert (pure > 0.95).all(), (
            f"expected the resin, chalcopyrite and jalpaite clusters to be over 95 % pure "
            f"with {k} clusters; got {pure.round(3).to_dict()}")

# %%
# E3: the wurtzites kept apart from the other phases, with 6 and with 5 clusters
if has_truth:
    for k, labels in ((seg.n_clusters, seg.labels_full), (5, seg5.labels_full)):
        wurtz = analysis.wurtzite_check(labels, data.labels, data.phases)
        assert wurtz["wurtzite share of its cluster"] > 0.95, (
            f"expected the majority-wurtzite cluster to hold over 95 % wurtzite with {k} "
            f"clusters; got {wurtz['wurtzite share of its cluster']:.3f}")
        assert wurtz["minority wurtzite elsewhere"] < 0.02, (
            f"expected under 2 % of the minority wurtzite in the resin, chalcopyrite or "
            f"jalpaite clusters with {k} clusters; got {wurtz['minority wurtzite elsewhere']:.3f}")

# %%
if has_truth:
    for k, rec in ((seg.n_clusters, recovery), (5, rec5)):
        minority = rec.set_index("name").loc["minority wurtzite", "recall"]
        print(f"{k} clusters: the minority wurtzite is "
              + ("found on its own" if minority > 0.8 else
                 "partly split between a rim cluster and a boundary cluster"
                 if minority > 0.5 else "merged with the majority wurtzite")
              + f" for SEED = {SEED} (recall {minority:.2f}).")
    print("E3, robust part: resin and the three grain phases recovered, the wurtzites kept "
          "apart from the rest, with 6 and with 5 clusters.")

# %% [markdown]
# ## 6 · Mean spectra and their signal-to-noise (claim E4)
#
# Each cluster's mean spectrum is the mean of the *original* pixels that `seg.labels_full`
# gives it -- every pixel counts once, in its own cluster only (hard weights w = 1). The
# paper averages the binned pixels with the GMM membership probabilities as weights,
# sum_p w_pc counts_p / sum_p w_pc. That is `workflows.gmm(..., spectra_from="binned")`,
# and notebook 04 shows how it mixes phases. Either way, Poisson statistics say that the
# signal-to-noise ratio (SNR) grows as sqrt(N_eff), with N_eff = (sum w)^2 / sum w^2 the
# effective number of pixels -- simply the number of pixels for hard weights.

# %%
plots.spectra(seg.mean_spectra, log=True, labels=key["legend"] if key else None,  # section 4
              colours=plots.key_colours(key),
              title="cluster mean spectra (counts per original pixel)")
plt.show()

# %%
c_big = int(np.argmax(seg.sizes[1:]) + 1) if has_truth else int(np.argmax(seg.sizes))
members = np.flatnonzero(seg.labels.ravel() == c_big)
y, x = divmod(int(members[0]), seg.labels.shape[1])
one_pixel = seg.counts.inav[x, y]
plots.spectra([one_pixel, seg.mean_spectra.inav[c_big]], normalise=True, log=True,
              labels=["one binned pixel", "mean of " + (key["legend"][c_big] if key
                                                         else f"cluster {c_big}")],
              title="the same phase: one pixel vs the cluster mean")
plt.show()

# %% [markdown]
# The table takes the X-ray lines the file names (`Sample.xray_lines`), else one line per
# element from `Sample.elements` (exspy's `add_lines` on a copy). For every line the cluster
# with the most counts in it is used. A line the map barely contains gives a meaningless
# (even negative) SNR, and with very few counts the window integration can fail (NaN): such
# rows are reported, not used.

# %%
lines = list(data.eds.metadata.get_item("Sample.xray_lines") or [])
if not lines and data.eds.metadata.get_item("Sample.elements"):
    probe = seg.mean_spectra.deepcopy()  # exspy picks one line per element for the beam
    probe.add_lines()
    lines = list(probe.metadata.Sample.xray_lines)
rows = {}
for line in lines:
    try:
        rows[line] = analysis.snr_gain(seg, line)
    except stemseg.StemsegError as err:
        print(f"{line}: no SNR -- {err}")
snr = pd.DataFrame.from_dict(rows, orient="index")

# %%
if len(snr):
    snr["gain / sqrt(N_eff)"] = snr["gain"] / snr["sqrt_n_effective"]
    display(snr[["cluster", "n_pixels", "n_effective", "snr_pixel", "snr_mean", "gain",
                 "sqrt_n_effective", "gain / sqrt(N_eff)"]])
    bad = snr.index[~np.isfinite(snr["gain"])].tolist()
    if bad:
        print("no finite SNR (too few counts in the window) for:", bad)
elif not lines:
    print("No X-ray lines to measure: the file names no elements. Add them, e.g. "
          "data.eds.add_elements(['Fe', 'S']), and rerun.")
else:
    print("No line could be measured (see the reasons above): the clusters hold too few "
          "counts in the lines.")

# %%
# Check of claim E4 on the phantom: the mean spectra's SNR gain follows sqrt(N_eff)
if has_truth:
    assert (snr["gain"] > 10).all(), (
        "expected every line's SNR gain above 10 (clusters of hundreds of binned pixels); "
        f"got {snr['gain'].round(1).to_dict()}")
    follows = snr["gain / sqrt(N_eff)"]
    assert ((follows > 0.9) & (follows < 1.1)).all(), (
        "expected the SNR gain within 10 % of sqrt(N_eff), as Poisson statistics predict; "
        f"got gain / sqrt(N_eff) = {follows.round(3).to_dict()}")
    print("E4 holds: SNR gain", snr["gain"].round(1).to_dict())
elif len(snr):
    print("Compare the last column with 1: Poisson statistics predict gain = sqrt(N_eff).")

# %% [markdown]
# ## 7 · Next to the paper's Table 1, workflow 1
#
# The mean spectra are quantified by Cliff-Lorimer with theoretical k-factors
# (`quant.quantify`; notebook 4 explains it). The paper's numbers come with the package
# (`quant.paper_table`). The phantom was built with the paper's workflow-1 compositions
# (normalised to 100 %), so here the comparison tests the whole chain: simulation,
# clustering, mean spectra and quantification. Cliff-Lorimer is a thin-film method: for an
# SEM map (bulk sample) `quant.quantify` refuses and says why, and a map whose clusters
# hold no counts in the lines cannot be quantified either.

# %%
try:
    table = quant.quantify(seg)
except stemseg.StemsegError as err:
    table = None
    print(f"No quantification: {err}")

# %%
if table is not None and has_truth:
    paper = quant.paper_table("eggeman2025_table1_6cation", "workflow1_pca_gmm")
    match = metrics.match_clusters(seg.labels_full, data.labels)
    phase_of = analysis.phase_names(match, data.phases)
    key_of = data.truth["paper_cluster"]                     # phase name -> paper's i..iv
    to_paper = {c: key_of[n] for c, n in phase_of.items() if n in key_of}
    compare = analysis.compare_with_paper(table, paper, to_paper)
    display(compare.round(2))
    plots.composition_bars(compare, names={k: f"({k}) {n}" for n, k in key_of.items()},
                           title="phantom, workflow 1 vs the paper's Table 1 (workflow 1)")
    plt.show()

# %%
if table is not None and not has_truth:
    display(table.pivot(index="element", columns="cluster", values="at_pct").round(2))
    if sparse:
        print("Few counts per pixel (section 1): these are compositions of groups of pixels "
              "that may follow counting noise, not of phases.")

# %%
if has_truth:
    worst = compare["difference"].abs().groupby(level=0).max()
    print("largest |difference| per cluster (at. %):", worst.round(2).to_dict())
    assert (worst[["i", "ii"]] < 1.5).all(), (
        "expected chalcopyrite (i) and jalpaite (ii) within 1.5 at. % of the truth in every "
        f"element; got {worst[['i', 'ii']].round(2).to_dict()}")

# %%
if has_truth:
    rims = recovery.set_index("name").loc["minority wurtzite", "recall"]
    if rims > 0.8:  # the rims have a cluster of their own
        assert worst["iii"] < 1.5 and worst["iv"] < 2.0, (
            "with the rims in a cluster of their own, expected the majority wurtzite (iii) "
            "within 1.5 at. % and the rims (iv) within 2 at. %; got "
            f"{worst[['iii', 'iv']].round(2).to_dict()}")
    else:
        print(f"The rims have no clean cluster for SEED = {SEED} (recall {rims:.2f}): their "
              "pixels are shared with the majority-wurtzite cluster or with clusters of mixed "
              "boundary pixels, so the differences of iii and iv test the segmentation, not "
              "the quantification.")

# %% [markdown]
# Every phase comes back close to its truth (phantom seeds 0-9, 6 clusters): chalcopyrite
# within 0.31 at. %, jalpaite within 0.80, the rims within 0.37 and the majority wurtzite
# within 0.5 -- 1.2 at the one seed where the spare cluster cut the majority wurtzite in two.
# With sigmas of ~0.1 at. % from counting alone, what remains is systematic: the cluster
# spectra are means of the original pixels that `labels_full` assigns (hard weights), and a
# few pixels at grain boundaries are assigned to the neighbour. The paper's recipe, soft
# weights over binned pixels whose blocks straddle the boundaries, mixed neighbouring phases
# into each spectrum and read jalpaite up to 1.3 at. % off. When a segmentation is wrong --
# rims merged into the majority wurtzite, say -- the composition is wrong by several at. %,
# far more than its counting error: it shows up as a wrong composition, not as a large
# sigma (the mixing check of notebook 04 flags such clusters).
#
# *On real data*, compare the clusters' compositions with known phases, look at their mean
# spectra for lines that should not be there, and vary `N_CLUSTERS` and `SEED`: what
# changes with the seed is not a result.

# %% [markdown]
# ## Exercises
#
# *Solutions:* in the instructor's copy a worked solution follows each answer cell, in a
# collapsed cell tagged `solution` (click its left margin to open it); the student release
# (`make student`) leaves those cells out and keeps the self-checks.
#
# **Exercise 1.** How many clusters does the BIC favour (its minimum) when the mixture is
# fitted on the automatic number of PCA components (the scree knee)? Use
# `explorer.bic_table(n)`.

# %%
answer_1 = None

# %% jupyter={"source_hidden": true} tags=["solution"]
answer_1 = explorer.bic_table(seg.params["scree_knee"]).attrs["best"]  # the BIC's minimum

# %%
expected_1 = explorer.bic_table(seg.params["scree_knee"]).attrs["best"]
print(analysis.check_answer(answer_1, expected_1, name="Exercise 1"))

# %% [markdown]
# **Exercise 2.** Predict the SNR gain of the Fe Ka line in the mean spectrum of the cluster
# with the most Fe Ka counts (on the phantom: the chalcopyrite) from its effective number of
# pixels alone, without measuring any SNR. Take the pixels the mean spectra were averaged
# over, `counts, weights = seg.spectrum_pixels` (the original pixels, not the binned ones the
# mixture was fitted on), and `analysis.effective_pixels(weights)`. On a file without iron,
# the cell below names the line to use instead.

# %%
answer_2 = None

# %% jupyter={"source_hidden": true} tags=["solution"]
# the line the self-check uses; its cluster is the one in the SNR table of section 6
line_fe = "Fe_Ka" if "Fe_Ka" in lines else (lines[0] if lines else None)
if line_fe in snr.index:
    _, spectrum_weights = seg.spectrum_pixels                 # pixels behind the means
    n_eff = analysis.effective_pixels(spectrum_weights)       # one value per cluster
    answer_2 = float(np.sqrt(n_eff[int(snr.loc[line_fe, "cluster"])]))  # gain = sqrt(N_eff)

# %%
line_2 = "Fe_Ka" if "Fe_Ka" in lines else (lines[0] if lines else None)
expected_2 = snr.loc[line_2, "gain"] if line_2 in snr.index else np.nan
if line_2 is None:
    print("Exercise 2: the file names no X-ray lines (see section 6); nothing to check.")
elif not np.isfinite(expected_2):
    print(f"Exercise 2: no finite SNR for {line_2} in this map (too few counts), so there "
          "is nothing to check your prediction against.")
else:
    print(f"Exercise 2 uses {line_2} (cluster {int(snr.loc[line_2, 'cluster'])}).")
    # the measured gain, or the prediction itself: on a cluster of a few pixels with a count
    # or two each, the measured gain can stray from sqrt(N_eff) by more than 10 %
    predicted_2 = float(snr.loc[line_2, "sqrt_n_effective"])
    print(analysis.check_answer(answer_2, float(expected_2), rtol=0.1, name="Exercise 2",
                                aliases=[predicted_2]))

# %% [markdown]
# **Exercise 3.** Set the PCA slider to **2** components (keep `N_CLUSTERS` clusters). What
# is the ARI (binned) now? Then put the slider back to the number the workflow used
# (`seg.params["n_components"]`). (Phantom only: the ARI needs the truth.)

# %%
answer_3 = None

# %% jupyter={"source_hidden": true} tags=["solution"]
# what moving the slider does, done in code: refit with 2 components, read the ARI, go back
explorer.n_components.value = 2
answer_3 = explorer.ari
explorer.n_components.value = seg.params["n_components"]

# %%
explorer.n_components.value = 2
expected_3 = explorer.ari
explorer.n_components.value = seg.params["n_components"]
if expected_3 is None:
    print("Exercise 3: no truth in this file, so no ARI; look at how the map changes instead.")
else:
    print(analysis.check_answer(answer_3, expected_3, rtol=0.02, name="Exercise 3"))

# %% [markdown]
# **Exercise 4 (predict, then check).** Take the line of Exercise 2. If its cluster held
# **four times as many pixels** of the same phase, what would the SNR gain of its mean
# spectrum be? Answer from the table of section 6 and the sqrt(N_eff) law, without running
# anything.

# %%
answer_4 = None

# %% jupyter={"source_hidden": true} tags=["solution"]
# four times the pixels: N_eff x 4, so the gain x sqrt(4) = 2 (the gain of Exercise 2's line)
if line_2 in snr.index:
    answer_4 = 2 * float(snr.loc[line_2, "gain"])

# %%
if line_2 is not None and np.isfinite(expected_2):
    print(analysis.check_answer(answer_4, 2 * float(expected_2), rtol=0.1,
                               name="Exercise 4", aliases=[2 * predicted_2],
                               hint="the gain grows as sqrt(N_eff); what is sqrt(4)?"))
else:
    print("Exercise 4 needs the SNR of Exercise 2, which this map does not give.")

# %% [markdown]
# ## Summary
#
# * Binning x2 quadruples the counts per pixel; robust scaling puts weak and strong
#   channels on an equal footing; the zero peak is left out. Below ~100 counts per binned
#   pixel (`StemsegSparseDataWarning`) clusters follow counting noise: bin more or record
#   longer.
# * The scree change point gives the number of PCA components automatically: here three
#   strong components + 1 (sometimes + 2); the workflow uses at least `n_clusters - 1`.
# * The BIC guides the cluster number but has its minimum well past the number of phases; count
#   splitting (clusters tested on X-rays they never saw) gives the number of phases.
# * On every phantom seed workflow 1 recovers the resin and the three grain phases and keeps
#   the wurtzites apart from the rest (E3, robust part). Whether the thin minority-wurtzite
#   rims get their own cluster is a near tie that flips with the seed and the settings.
# * Cluster-mean spectra gain SNR as sqrt(N_eff) (E4) --
#   which is what makes per-phase quantification possible.
# * On the phantom, workflow 1 recovers the paper's Table 1 (which the phantom was built
#   from) within ~1.3 at. % for chalcopyrite and jalpaite; the wurtzites only as well as
#   their segmentation.
#
# ## What's next
#
# Notebook **03-hdbscan-workflow**: workflow 2 replaces PCA + GMM by UMAP + HDBSCAN, which
# chooses the number of clusters itself from a physical minimum cluster size and may call
# pixels noise.
