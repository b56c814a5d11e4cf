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
# **Run time.** About a minute on two cores.

# %% [markdown]
# ## Imports
# Everything used below comes from `stemseg` and the standard scientific Python stack.
# HyperSpy's deprecation warnings are filtered so that the output stays readable.

# %%
import logging
import warnings

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from hyperspy.exceptions import VisibleDeprecationWarning
from IPython.display import display

import stemseg
from stemseg import analysis, io, metrics, plots, simulate, widgets, workflows

warnings.filterwarnings("ignore", category=VisibleDeprecationWarning)
warnings.filterwarnings("ignore", category=DeprecationWarning)
warnings.filterwarnings("ignore", category=FutureWarning)
for name in ("hyperspy", "exspy", "rsciio"):
    logging.getLogger(name).setLevel(logging.ERROR)
pd.set_option("display.precision", 3)
print("stemseg", stemseg.__version__)

# %% [markdown]
# ## Data (change one line here)
#
# The default is the **6-cation sulfide phantom**: a simulated 128 x 128 px map (40 nm pixels,
# 200 kV) of (MnFeCuAgZnCd)S grains in resin -- chalcopyrite, jalpaite, majority wurtzite and
# rims of minority wurtzite, with the compositions of the paper's Table 1 -- about 200 counts
# per pixel. Because it is simulated, `data.labels` holds the true phase of every pixel.
#
# To use real data instead, comment the first line and uncomment one of the others. Cells
# that compare with the truth then skip themselves and tell you what to look at instead.

# %%
# ----------------------------------------------------------------------- DATA ------------
data = simulate.phantom("sulfide-6cation", shape=(128, 128), random_state=0)
# data = io.load(stemseg.data.example("bruker_tem_CuOPdTi_64x64"))   # bundled real TEM map
# data = io.load("/path/to/your/map.emd")                             # your own file
N_CLUSTERS = 6  # for the first clustering (section 4); the phantom has 5 phases
# ------------------------------------------------------------------------------------------
has_truth = hasattr(data, "labels")
print(data.eds)
print("elements:", data.eds.metadata.Sample.elements, "| truth available:", has_truth)
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
maps = analysis.element_maps(data)
sample = (data.labels > 0) if has_truth else None  # the resin (label 0) is not sample
map_explorer = widgets.ElementMapExplorer(maps, mask=sample, scaling="per-map")
map_explorer

# %% [markdown]
# To put a number on "look alike" we use the **overlap of displayed brightness** of two maps,
# sum(min(a, b)) / sum(max(a, b)) with a, b the displayed brightness in [0, 1] -- a proxy for
# what the eye compares. It depends on the scaling. The **Pearson correlation of the counts**
# does not (it is invariant to any linear rescaling). On the phantom the truth is known: the
# correlation of the true concentration maps says which pairs really go together.

# %%
lines = [analysis.line_name(m) for m in maps]
truth_maps = (analysis.truth_concentration_maps(data, [ln.split("_")[0] for ln in lines])
              if has_truth else None)
rankings = analysis.scaling_rankings(maps, truth=truth_maps, mask=sample)
display(rankings.head(8))
print("Spearman rank correlation between rankings:")
for pair, rho in rankings.attrs["spearman"].items():
    print(f"  {pair:>20s}: {rho:+.2f}")

# %%
fig, axes = plt.subplots(1, 2, figsize=(10, 3.6), layout="constrained", sharey=True)
order = rankings.sort_values("rank_truth" if has_truth else "rank_counts")
for ax, col, title in zip(axes, ["overlap_per_map", "overlap_common"],
                          ["per-map autoscale", "one common scale"]):
    ax.barh(order["pair"], order[col], color="tab:blue")
    ax.set_title(f"apparent overlap, {title}", fontsize=10)
    ax.set_xlabel("overlap of displayed brightness")
    ax.invert_yaxis()
axes[0].set_ylabel("pairs, most correlated in truth first" if has_truth else "pairs")
plt.show()

# %% [markdown]
# **What to see.** Under one common scale the minor elements (Zn, Mn) are dark everywhere,
# so their pairs look unrelated; under per-map scaling they light up. The truth decides:
# Mn and Zn are the most strongly correlated pair of the phantom (both sit in the wurtzite),
# yet the common scale ranks them near the bottom. Ag and Cd look alike under both scalings --
# partly because the Cd La window also collects Ag Lb1 counts (notebook 4 separates them).
#
# *On real data* there is no truth: rely on `r_counts` (scale-invariant), and on the
# clustering below rather than on the eye.

# %%
# Checks of claim E1 on the phantom (skipped on real data)
if has_truth:
    rho = rankings.attrs["spearman"]
    # the two scalings rank the pairs differently
    assert rho["per_map vs common"] < 0.8, rho
    # the truth decides: here the per-map ranking is closer to the truth than the common one
    assert rho["per_map vs truth"] > rho["common vs truth"], rho
    top_truth = rankings.loc[rankings["rank_truth"].idxmin()]
    assert top_truth["pair"] == "Mn_Ka / Zn_Ka", top_truth
    assert top_truth["rank_common"] > 3 >= top_truth["rank_per_map"], top_truth
    # the counts' correlation is the same whatever the display does
    assert rho["counts vs truth"] > 0.8, rho
    print("E1 holds on the phantom:", {k: round(v, 2) for k, v in rho.items()})
else:
    print("No truth: compare the two rankings above; trust r_counts, not the eye.")

# %% [markdown]
# ## 2 · A uniform nanoparticle that looks core-shell (claim E2)
#
# The paper's 7-cation sulfide nanoparticles show Co, Mn and Zn maps concentrated in the
# particle centres, "suggesting a core-shell microstructure", from maps with 1-2 counts per
# pixel (Ag: 15-20). Here is a phantom of such particles with **one uniform composition**
# (the paper's Table 2), spheres 18-36 nm on a carbon film, 1 nm pixels.

# %%
particles_data = simulate.phantom("nanoparticles-7cation", random_state=0)  # uniform truth
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

# %%
excess = pd.DataFrame({line: analysis.core_excess(m, particles, thickness)
                       for line, m in zip(cpp, np_maps)}).T
excess["centre / edge (raw)"] = [raw[ln]["mean"].iloc[0] / raw[ln]["mean"].iloc[-1]
                                 for ln in excess.index]
display(excess[["excess", "sigma", "z", "centre / edge (raw)"]])

# %% [markdown]
# The raw maps are two to three times brighter in the centre than at the edge, but after
# normalising by the thickness the core excess is 1 within its counting error. For contrast,
# the same analysis on a phantom whose core **is** enriched (Co, Mn and Zn x 1.5 inside half
# the radius):

# %%
core_shell = simulate.phantom("nanoparticles-7cation", random_state=0, core_shell=True)
cs_maps = analysis.element_maps(core_shell, ["Co_Ka", "Mn_Ka", "Zn_Ka", "Ag_La"])
cs_excess = pd.DataFrame({analysis.line_name(m): analysis.core_excess(
    m, core_shell.truth["particles_px"], core_shell.truth["particle_thickness"])
    for m in cs_maps}).T
display(cs_excess[["excess", "sigma", "z"]])

# %%
# Checks of claim E2 (phantoms)
for line in ("Co_Ka", "Mn_Ka", "Zn_Ka"):
    assert cpp[line] < 3.0, (line, cpp[line])               # a few counts per pixel
    assert cpp["Ag_La"] > 5 * cpp[line], cpp                  # Ag has many more
    assert excess.loc[line, "centre / edge (raw)"] > 1.5      # the raw map looks core-like
    assert abs(excess.loc[line, "z"]) < 3, excess.loc[line]   # ... but no significant excess
assert cs_excess.loc["Co_Ka", "z"] > 3 and cs_excess.loc["Zn_Ka", "z"] > 3, cs_excess
print("E2 holds: uniform particles look core-shell in raw maps; normalised, no excess.")
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
assert total_cpp < 10, total_cpp
assert max(bruker_cpp.values()) < 1.0, bruker_cpp
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
# a few seconds:

# %%
seg = workflows.gmm(data, n_clusters=N_CLUSTERS, random_state=0)
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

# %%
if has_truth:
    first_ari = metrics.ari(seg.labels_full, data.labels)
    match = metrics.match_clusters(seg.labels_full, data.labels)
    print(f"ARI against truth: {first_ari:.3f}")
    print("cluster -> phase:", analysis.phase_names(match, data.phases))
    assert first_ari > 0.9, first_ari
    assert set(match.values()) == set(range(len(data.phases))), match  # every phase found
else:
    print("No truth: compare the clusters with the HAADF image and the element maps.")

# %% [markdown]
# One run, no colour scale to choose, and every phase -- including the thin rims of minority
# wurtzite that no single map shows clearly -- comes out. How many clusters, how many PCA
# components, and what the clusters' spectra tell us are the topics of the next notebooks.

# %% [markdown]
# ## Exercises
#
# Each exercise has a self-check cell: replace `None` with your answer and run both cells.
#
# **Exercise 1.** Under *one common scale*, which pair of maps looks most alike (highest
# overlap)? Give it as a string like `"Cu_Ka / Fe_Ka"`.

# %%
answer_1 = None

# %%
expected_1 = rankings.loc[rankings["overlap_common"].idxmax(), "pair"]
print(analysis.check_answer(answer_1, expected_1, name="Exercise 1"))

# %% [markdown]
# **Exercise 2.** How many counts per pixel does the **Cu** map of the uniform nanoparticle
# phantom hold over the particles? (Hint: `analysis.element_maps` and
# `analysis.counts_per_pixel` with `mask=in_particles`.)

# %%
answer_2 = None

# %%
cu_map = analysis.element_maps(particles_data, ["Cu_Ka"])[0]
expected_2 = analysis.counts_per_pixel(cu_map, in_particles)
print(analysis.check_answer(answer_2, expected_2, rtol=0.02, name="Exercise 2"))

# %% [markdown]
# **Exercise 3.** Is the Cu signal of the **core-shell** phantom (`core_shell`) significantly
# *depleted* in the cores? Compute its thickness-normalised core excess with
# `analysis.core_excess` and answer `"yes"` if z < -3, else `"no"`.

# %%
answer_3 = None

# %%
cu_cs = analysis.element_maps(core_shell, ["Cu_Ka"])[0]
z_cu = analysis.core_excess(cu_cs, core_shell.truth["particles_px"],
                            core_shell.truth["particle_thickness"])["z"]
print(analysis.check_answer(answer_3, "yes" if z_cu < -3 else "no", name="Exercise 3"))

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
# * Clustering whole spectra recovers every phase of the phantom in one step.
#
# ## What's next
#
# Notebook **02-gmm-workflow** takes workflow 1 apart: binning, scaling, the PCA scree and
# its change point, the number of clusters (BIC), cluster-mean spectra and their
# signal-to-noise.
