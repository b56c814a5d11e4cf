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
# # 1 · Element maps can mislead: why cluster a spectrum image?
#
# Element maps are the first thing everyone looks at after a STEM-EDX acquisition. Eggeman
# *et al.* (Faraday Discussions 2025) argue that, for multi-component materials, maps on
# their own can suggest correlations, phases and core-shell particles that are not there --
# or hide ones that are. This notebook shows how, on simulated maps whose truth is known
# (phantoms), and then looks at a real low-count map.
#
# **Learning goals.** After this notebook you can
#
# 1. explain how the colour scaling of element maps changes which elements *look* correlated,
#    and compute a correlation that does not depend on it (claim E1);
# 2. read counts per pixel next to every map and judge when a map is noise-limited;
# 3. test an apparent core-shell contrast with a thickness-normalised radial profile (E2);
# 4. run a first clustering of the whole spectrum image and compare it with the truth.
#
# **Prerequisites.** Basic Python and NumPy; what an EDS spectrum and an X-ray line are. No
# machine learning is needed yet (notebooks 2 and 3 explain the workflows).
#
# **Run time.** About 20 s (18 s measured on a 2-core x86 machine; benchmarks/README.md).

# %% [markdown]
# ## Imports
# Everything used below comes from `stemseg` and the standard scientific Python stack.
# HyperSpy's deprecation warnings are filtered so that the output stays readable.

# %%
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from IPython.display import display

import stemseg
from stemseg import analysis, io, metrics, plots, simulate, widgets, workflows

# HyperSpy's deprecation warnings and log messages off, pandas precision 3, the version
analysis.notebook_setup()

# %% [markdown]
# ## Data (change one line here)
#
# The default is the **6-cation sulfide phantom**: a simulated 128 x 128 px map (40 nm pixels,
# 200 kV) of (MnFeCuAgZnCd)S grains in resin -- chalcopyrite, jalpaite, majority wurtzite and
# rims of minority wurtzite, with the compositions of the paper's Table 1 -- about 200 counts
# per pixel. Because it is simulated, `data.labels` holds the true phase of every pixel.
#
# To use real data instead, **change one value**, `DATA`: the name of a bundled file
# (`stemseg.data.examples()` lists them: `"bruker_tem_CuOPdTi_64x64"`,
# `"bruker_sem_mineral_30x30"`, `"velox_si_16x16_CCaOCu"`, `"velox_eels_eds_FeCoO"`) or the
# path of your own map (`"/path/to/your/map.emd"`). From a terminal,
# `papermill 01-element-maps-vs-clustering.ipynb out.ipynb -p DATA bruker_tem_CuOPdTi_64x64`
# does the same. `SEED` seeds the phantoms and every random step below. Cells that compare
# with the truth then skip themselves and tell you what to look at instead. Sections 2 and 3
# always use their own phantoms and the bundled Bruker map, whatever `DATA` is.

# %% tags=["parameters"]
# ----------------------------------------------------------------------- DATA ------------
DATA = "phantom"   # the phantom; a bundled file, e.g. "bruker_tem_CuOPdTi_64x64"; or a path
SEED = 0           # seed of the phantoms and of every random step below
N_CLUSTERS = 6     # section 4: the phantom's 5 phases + 1 for pixels on grain boundaries
# ------------------------------------------------------------------------------------------

# %%
data = io.load_source(DATA, phantom="sulfide-6cation", shape=(128, 128), random_state=SEED)
has_truth = hasattr(data, "labels")
print(data.eds)
print("elements:", data.eds.metadata.get_item("Sample.elements"),
      "| truth available:", has_truth)
if has_truth:
    print("phases:", [p.name for p in data.phases])

# %% [markdown]
# ## 1 · The same maps, two colour scalings (claim E1)
#
# Element maps are window integrals of the spectrum image around each element's main X-ray
# line (HyperSpy/exspy `get_lines_intensity`). Most software then **autoscales each map
# separately**: every map spans the full colour range, whatever its counts. The alternative
# is **one common scale** for all maps. Toggle between the two below and ask yourself which
# elements appear to go together. Counts per pixel (over the sample, without the resin) are
# in every title.

# %%
try:
    maps = analysis.element_maps(data)
except stemseg.StemsegError as err:  # e.g. a file that names no elements
    maps = []
    print(f"No element maps: {err}")
has_pairs = len(maps) >= 2  # comparing maps needs at least two of them
sample = (data.labels > 0) if has_truth else None  # the resin (label 0) is not sample
for scaling in ("per-map", "common") if maps else ():  # the two displays, as static figures
    fig = plots.element_maps(maps, scaling=scaling, mask=sample, ncols=7, panel_size=2.0)
    fig.suptitle("each map autoscaled on its own" if scaling == "per-map"
                 else "one common colour scale for all maps", fontsize=11)
    plt.show()

# %% [markdown]
# The same maps in a widget: toggle the scaling and move **colour top** (the percentile of
# the counts that is drawn white; higher = fewer saturated pixels). The widget lists the
# pairs that look most alike under the current setting.

# %%
if has_pairs:
    map_explorer = widgets.ElementMapExplorer(maps, mask=sample, scaling="per-map")
    display(map_explorer)
    blank = [analysis.line_name(m) for m in maps if analysis.counts_per_pixel(m) == 0]
    if blank:
        print(f"No counts at all in the windows of {blank}: those maps are blank, and nothing "
              "can be read from them (is the spectrum calibrated? are the lines in range?).")
else:
    print(f"{len(maps)} element map(s): section 1 compares pairs of maps and is skipped. "
          "Add the elements, e.g. data.eds.add_elements(['Fe', 'S']), and rerun.")

# %% [markdown]
# To put a number on "look alike" we use the **overlap of displayed brightness** of two maps,
# sum(min(a, b)) / sum(max(a, b)) with a, b the displayed brightness in [0, 1] -- a proxy for
# what the eye compares. It depends on the scaling. The **Pearson correlation of the counts**
# does not (it is invariant to any linear rescaling). On the phantom the truth is known: the
# correlation of the true concentration maps says which pairs really go together.

# %%
rankings = None
if has_pairs:
    lines = [analysis.line_name(m) for m in maps]
    truth_maps = (analysis.truth_concentration_maps(data, [ln.split("_")[0] for ln in lines])
                  if has_truth else None)
    rankings = analysis.scaling_rankings(maps, truth=truth_maps, mask=sample)
    display(rankings.head(8))
    print("Spearman rank correlation between rankings:")
    for pair, rho in rankings.attrs["spearman"].items():
        print(f"  {pair:>20s}: {rho:+.2f}")
    if np.isnan(list(rankings.attrs["spearman"].values())).any():
        print("nan: a ranking in which every pair ties (blank maps) cannot be compared.")

# %%
if has_pairs:
    fig, axes = plt.subplots(1, 2, figsize=(10, 0.8 + 0.17 * len(rankings)),
                             layout="constrained", sharey=True)
    order = rankings.sort_values("rank_truth" if has_truth else "rank_counts")
    for ax, col, title in zip(axes, ["overlap_per_map", "overlap_common"],
                              ["per-map autoscale", "one common scale"]):
        ax.barh(order["pair"], order[col], color="tab:blue")
        ax.set_title(f"apparent overlap, {title}", fontsize=10)
        ax.set_xlabel("overlap of displayed brightness")
    axes[0].invert_yaxis()  # the axes share y: inverting both would cancel out
    axes[0].set_ylabel("pairs, most correlated in truth first" if has_truth else "pairs")
    plt.show()

# %% [markdown]
# **What to see.** Under one common scale the maps with few counts are dim everywhere --
# Zn (about 2.5 counts per sample pixel on the phantom) and, less so, Mn (about 8.5), next to
# S (about 48; the counts are in the titles) -- so their pairs look unrelated; under per-map
# scaling they light up. The truth decides:
# Mn and Zn are the most strongly correlated pair of the phantom (both sit in the wurtzite),
# yet the common scale does not even put them among its three most similar-looking pairs,
# while per-map scaling does. Ag and Cd look alike under both scalings -- partly because
# the Cd La window also collects Ag Lb1 counts (notebook 4 separates them). Neither display
# reproduces the truth's ranking; the correlation of the counts comes closest.
#
# *On real data* there is no truth: rely on `r_counts` (scale-invariant), and on the
# clustering below rather than on the eye. A map with almost no counts in a line window
# (see the counts per pixel in the titles) has no meaningful correlation with anything: on
# the bundled Bruker map, with under one count per pixel in every line, all `r_counts` are
# close to zero -- Poisson noise swamps any pixel-to-pixel correlation until you bin.

# %%
# Checks of claim E1 on the phantom (skipped on real data)
if has_truth:
    rho = rankings.attrs["spearman"]
    assert rho["per_map vs common"] < 0.8, (
        "expected the two colour scalings to rank the pairs differently (Spearman rank "
        f"correlation below 0.8); got {rho['per_map vs common']:.2f}")
    assert rho["per_map vs truth"] > rho["common vs truth"] + 0.2, (
        "expected the per-map ranking to be clearly closer to the truth than the common-scale "
        f"one (Spearman at least 0.2 higher); got {rho['per_map vs truth']:.2f} (per-map) vs "
        f"{rho['common vs truth']:.2f} (common)")
elif has_pairs:
    print("No truth: compare the two rankings above; trust r_counts, not the eye.")
else:
    print("No pairs of element maps: nothing to check.")

# %% [markdown]
# The pair that is most alike in the truth, Mn / Zn, should look alike under per-map
# scaling and not under one common scale; the counts' own correlation, which no display
# changes, should rank the pairs as the truth does:

# %%
if has_truth:
    top_truth = rankings.loc[rankings["rank_truth"].idxmin()]
    assert top_truth["pair"] == "Mn_Ka / Zn_Ka", (
        f"expected Mn / Zn to be the most correlated pair in the truth; got {top_truth['pair']}")
    assert top_truth["rank_per_map"] <= 3 < top_truth["rank_common"], (
        "expected Mn / Zn among the three most alike-looking pairs under per-map scaling and "
        f"outside them under one common scale; got rank {top_truth['rank_per_map']} (per-map) "
        f"and {top_truth['rank_common']} (common)")
    assert rho["counts vs truth"] > 0.8, (
        "expected the ranking by the counts' correlation (the same under any display) to "
        f"follow the truth's (Spearman above 0.8); got {rho['counts vs truth']:.2f}")

# %%
if has_truth:
    print("E1 holds on the phantom:", {k: round(v, 2) for k, v in rho.items()})
    print(f"Mn / Zn: rank {top_truth['rank_per_map']} per-map, {top_truth['rank_common']} "
          f"common, {top_truth['rank_counts']} by the counts' correlation "
          f"(of {len(rankings)} pairs).")

# %% [markdown]
# ## 2 · A uniform nanoparticle that looks core-shell (claim E2)
#
# The paper's 7-cation sulfide nanoparticles show Co, Mn and Zn maps concentrated in the
# particle centres, "suggesting a core-shell microstructure", from maps with 1-2 counts per
# pixel (Ag: 15-20). Here is a phantom of such particles with **one uniform composition**
# (the paper's Table 2), spheres 18-36 nm on a carbon film, 1 nm pixels.

# %%
particles_data = simulate.phantom("nanoparticles-7cation", random_state=SEED)  # uniform truth
np_maps = analysis.element_maps(particles_data, ["Co_Ka", "Mn_Ka", "Zn_Ka", "Ag_La"])
in_particles = particles_data.labels > 0
fig = plots.element_maps(np_maps, scaling="per-map", mask=in_particles, ncols=4)
plt.show()
cpp = {analysis.line_name(m): analysis.counts_per_pixel(m, in_particles) for m in np_maps}
print("counts per particle pixel:", {k: round(v, 2) for k, v in cpp.items()})

# %% [markdown]
# The maps are brightest in the middle of every particle. Is that a Co/Mn/Zn-rich core? A
# sphere is thickest in the middle, so *every* element gives more counts there. Compare the
# **radial profile** (counts per pixel against the distance from the particle centre, in
# units of the particle radius) with the profile expected for a uniform particle, i.e.
# normalise by the thickness. On real data the thickness is unknown: normalise by a major
# element's map (S here) or by the HAADF signal instead.

# %%
particles = particles_data.truth["particles_px"]          # (y, x, radius) of every particle
thickness = particles_data.truth["particle_thickness"]    # chord length, nm
raw = {analysis.line_name(m): analysis.radial_profile(m, particles, bins=8) for m in np_maps}
normalised = {analysis.line_name(m): analysis.radial_profile(m, particles, reference=thickness,
                                                             bins=8) for m in np_maps}
fig, axes = plt.subplots(1, 2, figsize=(10, 3.6), layout="constrained")
plots.radial_profiles(raw, ax=axes[0], title="raw maps: bright centres")
plots.radial_profiles(normalised, column="ratio", ax=axes[1],
                      title="normalised by thickness: flat = uniform")
plt.show()

# %% [markdown]
# The **core excess** puts one number on it: (counts / thickness) in the cores (r < R/2)
# over the same in the shells, with its Poisson error `sigma` and `z` = (excess - 1) / sigma.
# How large must |z| be before we call an excess real? Three lines are tested at once, so a
# 3-sigma rule would flag a perfectly uniform phantom by chance about once in a hundred
# seeds (for `SEED = 5` Mn reaches z = -2.9); we call an excess significant beyond 3.5
# sigma (a chance of about 1 in 700 per run).

# %%
Z_SIGNIFICANT = 3.5  # |z| above this = a significant core excess (or depletion)
excess = pd.DataFrame({line: analysis.core_excess(m, particles, thickness)
                       for line, m in zip(cpp, np_maps)}).T
excess["centre / edge (raw)"] = [raw[ln]["mean"].iloc[0] / raw[ln]["mean"].iloc[-1]
                                 for ln in excess.index]
display(excess[["excess", "sigma", "z", "centre / edge (raw)"]])

# %% [markdown]
# The raw maps are about three times brighter in the centre than at the edge, but after
# normalising by the thickness the core excess is 1 within its counting error. For contrast,
# the same analysis on a phantom whose core **is** enriched (Co, Mn and Zn x 1.5 inside half
# the radius):

# %%
core_shell = simulate.phantom("nanoparticles-7cation", random_state=SEED, core_shell=True)
cs_maps = analysis.element_maps(core_shell, ["Co_Ka", "Mn_Ka", "Zn_Ka", "Ag_La"])
cs_excess = pd.DataFrame({analysis.line_name(m): analysis.core_excess(
    m, core_shell.truth["particles_px"], core_shell.truth["particle_thickness"])
    for m in cs_maps}).T
display(cs_excess[["excess", "sigma", "z"]])

# %% [markdown]
# The excess is only about 1.15, not 1.5: a projection through the middle of a sphere also
# passes through its shell. Co and Zn, with about 2 counts per pixel, show it at high
# significance. Mn, with less than one count per pixel, has the largest counting error: its
# z lies between about 2 and 5 depending on the seed, so one map may or may not reveal a
# real Mn-rich core -- counts decide what a map can show.
#
# **Why does Ag come out *depleted* in these cores** (z below 0 at every seed 0-9 we tried,
# between about -1.4 and -5) although nothing was done to Ag? The cation fractions of the
# core still add up to one: raising Co, Mn and Zn to x1.5 leaves less room for the other
# cations, so Ag and Cu drop in the core by the same bookkeeping. The drop is modest, so
# whether it passes the 3.5-sigma bar depends on the seed, like Mn's excess. A real
# enrichment of one element always comes with a depletion somewhere else -- look for both.

# %%
# Checks of claim E2 (phantoms)
for line in ("Co_Ka", "Mn_Ka", "Zn_Ka"):
    assert cpp[line] < 3.0, (
        f"expected a few counts per particle pixel in the {line} map (below 3); "
        f"got {cpp[line]:.2f}")
    assert cpp["Ag_La"] > 5 * cpp[line], (
        f"expected Ag La to have over 5 times the counts of {line}; got {cpp['Ag_La']:.2f} "
        f"vs {cpp[line]:.2f} per pixel")
    assert excess.loc[line, "centre / edge (raw)"] > 1.5, (
        f"expected the raw {line} map to look core-like (centre over 1.5 x the edge); got "
        f"{excess.loc[line, 'centre / edge (raw)']:.2f}")
    assert abs(excess.loc[line, "z"]) < Z_SIGNIFICANT, (
        f"expected no significant core excess of {line} in the uniform particles "
        f"(|z| < {Z_SIGNIFICANT}); got z = {excess.loc[line, 'z']:.2f}")

# %% [markdown]
# With a real Co/Zn-rich core the excess does show, in Co and Zn, and Ag makes room for it:

# %%
for line in ("Co_Ka", "Zn_Ka"):
    assert cs_excess.loc[line, "z"] > Z_SIGNIFICANT, (
        f"expected the real Co/Zn-rich cores to show as a significant {line} core excess "
        f"(z > {Z_SIGNIFICANT}); got z = {cs_excess.loc[line, 'z']:.2f}")
assert cs_excess.loc["Ag_La", "z"] < 0, (
    "expected Ag to come out depleted in the enriched cores (z below 0: the other cations "
    f"take its place); got z = {cs_excess.loc['Ag_La', 'z']:.2f}")
print("E2 holds: uniform particles look core-shell in raw maps; normalised, no excess. "
      "A real core enrichment shows.")
print(f"Note: Ag here has {cpp['Ag_La']:.1f} counts/px, below the paper's 15-20 "
      "(the phantom's Co/Mn/Zn match the paper's 1-2).")

# %% [markdown]
# ## 3 · A real low-count map
#
# The bundled Bruker file is a 64 x 64 px TEM map at 200 kV with about 6 counts per pixel in
# total (Cu, O, Pd, Ti) and a HAADF image. At such counts most element maps are dominated by
# Poisson noise: look at the counts per pixel before reading any structure into a map.

# %%
bruker = io.load(stemseg.data.example("bruker_tem_CuOPdTi_64x64"))
bruker_maps = analysis.element_maps(bruker)
fig = plots.element_maps(bruker_maps, scaling="per-map", ncols=4)
plt.show()
total_cpp = float(bruker.eds.data.sum(-1).mean())
bruker_cpp = {analysis.line_name(m): analysis.counts_per_pixel(m) for m in bruker_maps}
print(f"total counts per pixel: {total_cpp:.1f}")
print("counts per pixel in each line window:", {k: round(v, 3) for k, v in bruker_cpp.items()})

# %%
fig, axes = plt.subplots(1, 2, figsize=(10, 3.4), layout="constrained",
                         gridspec_kw={"width_ratios": [1, 2]})
axes[0].imshow(bruker.haadf.data, cmap="gray")
axes[0].set_title("HAADF", fontsize=10)
plots.add_scalebar(axes[0], plots.pixel_size_nm(bruker.haadf))
plots.spectra(bruker.eds.sum(), ax=axes[1], log=True, energy_range=(0.2, 12),
              labels=["sum of all pixels"], title="sum spectrum")
plt.show()

# %%
# The bundled map is a low-count map: every element map has < 1 count per pixel
assert total_cpp < 10, (
    f"expected the bundled Bruker map to hold fewer than 10 counts per pixel in all; got "
    f"{total_cpp:.1f}")
assert max(bruker_cpp.values()) < 1.0, (
    "expected every element map of the bundled Bruker file to hold < 1 count per pixel; "
    f"got {bruker_cpp}")
print("Every element map of the bundled Bruker file holds < 1 count per pixel.")

# %% [markdown]
# **What to look at on real data.** With < 1 count per pixel, an element map is mostly zeros
# and ones; what looks like structure needs a test (binning, a profile with error bars, or
# the clustering of whole spectra that the next notebooks teach). The HAADF image, with its
# many more electrons per pixel, is the better guide to morphology.

# %% [markdown]
# ## 4 · A first clustering of the whole spectrum image
#
# Instead of reading maps one element at a time, cluster the pixels by their *whole
# spectrum*. Workflow 1 of the paper (bin x2, scale, PCA, Gaussian mixture; notebook 2) takes
# a few seconds.
#
# On a real map with few counts the workflow warns (`StemsegSparseDataWarning`, printed
# below the cell): with fewer than about 100 counts per binned pixel, clusters mostly follow
# the counting noise (salt-and-pepper maps), and their mean spectra are not phases. The
# warning says how far to bin; notebook 2 shows how. On the bundled Bruker map (about 6
# counts per pixel) it does warn -- read its clusters as a sketch, not as phases.

# %%
seg = workflows.gmm(data, n_clusters=N_CLUSTERS, random_state=SEED)
pixel_nm = plots.pixel_size_nm(data.eds)
fig, axes = plt.subplots(1, 2 if has_truth else 1, figsize=(10 if has_truth else 5, 4),
                         layout="constrained", squeeze=False)
if has_truth:  # renumber the clusters so that one colour = one phase in both maps
    shown, renumber = analysis.align_labels(seg.labels_full, data.labels)
    names = {i: p.name for i, p in enumerate(data.phases)}
    plots.label_map(shown, ax=axes[0, 0], pixel_size=pixel_nm, names=names,
                    title=f"GMM, {seg.n_clusters} clusters (matched to phases)")
    plots.label_map(data.labels, ax=axes[0, 1], pixel_size=pixel_nm, names=names,
                    n_clusters=int(shown.max()) + 1, title="truth", colorbar_label="phase")
else:
    plots.label_map(seg.labels_full, ax=axes[0, 0], pixel_size=pixel_nm,
                    title=f"GMM, {seg.n_clusters} clusters")
plt.show()

# %% [markdown]
# How well is each phase recovered? Each phase is matched to one cluster (Hungarian
# matching); `recall` is the share of the phase's pixels in that cluster, `precision` the
# share of the cluster's pixels that belong to the phase, `f1` combines the two.

# %%
if has_truth:
    first_ari = metrics.ari(seg.labels_full, data.labels)
    recovery = analysis.phase_recovery(seg.labels_full, data.labels, data.phases)
    print(f"ARI against truth: {first_ari:.3f}")
    display(recovery.set_index("name")[["cluster", "pixels", "recall", "precision", "f1"]])
    f1 = recovery.set_index("name")["f1"]
    assert first_ari > 0.9, (
        f"expected the ARI against the truth above 0.9 (near-perfect agreement); got "
        f"{first_ari:.3f}")
else:
    print("No truth: compare the clusters with the element maps and with an image of the "
          "same area (HAADF), where the file has one. If a StemsegSparseDataWarning appears "
          "above, the clusters mostly follow counting noise.")

# %% [markdown]
# Phase by phase: the three distinct phases each as one cluster, the majority wurtzite
# inside one, and the thin minority-wurtzite rims:

# %%
if has_truth:
    distinct = ["resin", "chalcopyrite", "jalpaite"]
    assert (f1[distinct] > 0.95).all(), (
        "expected the resin, chalcopyrite and jalpaite each found as one cluster (F1 above "
        f"0.95); got {f1[distinct].round(3).to_dict()}")
    wurtzite = recovery.set_index("name").loc["majority wurtzite"]
    assert wurtzite["recall"] > 0.95, (
        "expected the majority wurtzite inside one cluster (recall above 0.95); got "
        f"{wurtzite['recall']:.3f}")
    rims = f1["minority wurtzite"]
    print(f"Minority wurtzite rims: F1 = {rims:.2f} -- "
          + ("a cluster of their own." if rims > 0.8 else
             "mostly merged with the majority wurtzite for this seed."))

# %% [markdown]
# One run, no colour scale to choose: the resin, chalcopyrite and jalpaite come out as one
# cluster each, and the ARI is above 0.9. The thin rims of minority wurtzite, which no single
# map shows clearly, are the hardest part: they are a few pixels wide, so after the 2 x 2
# binning many of their spectra are mixed with the grain next to them. For most seeds they
# get a cluster of their own (F1 about 0.8-0.97); for some (`SEED = 1`) the mixture puts
# them together with the majority wurtzite and spends the sixth cluster on mixed pixels at
# grain boundaries. That is why `N_CLUSTERS` is 6 for 5 phases: the 2 x 2 blocks on grain
# boundaries mix two spectra, and a mixture model given exactly five clusters tends to spend
# one of them on such blocks and merge two real phases; the spare sixth cluster absorbs
# them (notebook 2 tests this choice on counts the clustering never saw). How many clusters,
# how many PCA
# components, and what the clusters' spectra tell us are the topics of the next notebooks.

# %% [markdown]
# ## Exercises
#
# *Solutions:* in the instructor's copy a worked solution follows each answer cell, in a
# collapsed cell tagged `solution` (click its left margin to open it); the student release
# (`make student`) leaves those cells out and keeps the self-checks.
#
# Each exercise has a self-check cell: replace `None` with your answer and run both cells.
#
# **Exercise 1.** Under *one common scale*, which pair of maps looks most alike (highest
# overlap)? Give it as a string like `"Cu_Ka / Fe_Ka"` (either order).

# %%
answer_1 = None

# %% jupyter={"source_hidden": true} tags=["solution"]
# the pair with the largest overlap under one common scale, read off the table of section 1
if rankings is not None:
    answer_1 = rankings.loc[rankings["overlap_common"].idxmax(), "pair"]

# %%
if rankings is not None:
    expected_1 = rankings.loc[rankings["overlap_common"].idxmax(), "pair"]
    print(analysis.check_answer(answer_1, expected_1, name="Exercise 1"))
else:
    print("Exercise 1 needs two or more element maps of DATA (section 1 was skipped).")

# %% [markdown]
# **Exercise 2.** How many counts per pixel does the **Cu** map of the uniform nanoparticle
# phantom hold over the particles? (Hint: `analysis.element_maps` and
# `analysis.counts_per_pixel` with `mask=in_particles`.)

# %%
answer_2 = None

# %% jupyter={"source_hidden": true} tags=["solution"]
cu_particles = analysis.element_maps(particles_data, ["Cu_Ka"])[0]
answer_2 = analysis.counts_per_pixel(cu_particles, mask=in_particles)

# %%
cu_map = analysis.element_maps(particles_data, ["Cu_Ka"])[0]
expected_2 = analysis.counts_per_pixel(cu_map, in_particles)
print(analysis.check_answer(answer_2, expected_2, rtol=0.02, name="Exercise 2"))

# %% [markdown]
# **Exercise 3.** Is the Cu signal of the **core-shell** phantom (`core_shell`) significantly
# *depleted* in the cores? Compute its thickness-normalised core excess with
# `analysis.core_excess` and answer `"yes"` if z < -Z_SIGNIFICANT (-3.5), else `"no"`.

# %%
answer_3 = None

# %% jupyter={"source_hidden": true} tags=["solution"]
cu_core_shell = analysis.element_maps(core_shell, ["Cu_Ka"])[0]
cu_z = analysis.core_excess(cu_core_shell, core_shell.truth["particles_px"],
                            core_shell.truth["particle_thickness"])["z"]
answer_3 = "yes" if cu_z < -Z_SIGNIFICANT else "no"

# %%
cu_cs = analysis.element_maps(core_shell, ["Cu_Ka"])[0]
z_cu = analysis.core_excess(cu_cs, core_shell.truth["particles_px"],
                            core_shell.truth["particle_thickness"])["z"]
print(analysis.check_answer(answer_3, "yes" if z_cu < -Z_SIGNIFICANT else "no",
                           name="Exercise 3"))

# %% [markdown]
# **Exercise 4 (predict, then check).** The table of the core-shell phantom gives the Co
# core excess with its counting error `sigma`. If the particles were recorded with **four
# times the dose** (four times the counts in every pixel), what would `sigma` of the Co excess
# be? Work it out from how Poisson errors scale -- no new simulation needed -- and give a
# number.

# %%
answer_4 = None

# %% jupyter={"source_hidden": true} tags=["solution"]
# the relative error of N counts is 1 / sqrt(N); with 4N it halves, while the excess (a
# ratio of counts, the same at any dose) keeps its value -- so its sigma halves too
answer_4 = cs_excess.loc["Co_Ka", "sigma"] / np.sqrt(4)

# %%
expected_4 = cs_excess.loc["Co_Ka", "sigma"] / 2  # relative Poisson error ~ 1 / sqrt(counts)
print(analysis.check_answer(answer_4, expected_4, rtol=0.1, name="Exercise 4",
                           hint="the relative error of N counts is 1 / sqrt(N); what does "
                                "4N do to it?"))

# %% [markdown]
# ## Summary
#
# * The colour scaling of element maps changes which elements *look* correlated; the
#   Pearson correlation of the counts does not. On the phantom the truth sides with neither
#   display fully -- compute, don't eyeball (E1).
# * At 1-2 counts per pixel, a uniform sphere looks like a core-shell particle because it
#   is thicker in the middle; a thickness-normalised radial profile shows no core excess, and
#   does show it when the core is real (E2).
# * Real maps can hold < 1 count per pixel per element: read the counts beside every map.
# * Clustering whole spectra recovers the phases of the phantom in one step (ARI > 0.9);
#   only the thinnest rims depend on the seed.
#
# ## What's next
#
# Notebook **02-gmm-workflow** takes workflow 1 apart: binning, scaling, the PCA scree and
# its change point, the number of clusters (BIC), cluster-mean spectra and their
# signal-to-noise.
