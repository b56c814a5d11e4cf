"""stemseg.plots: every figure draws from given arrays, tables and signals."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from _synth import synthetic_cube  # noqa: E402
from stemseg import analysis, cluster, plots, quant  # noqa: E402


@pytest.fixture(autouse=True)
def _close():
    yield
    plt.close("all")


def test_label_map_names_noise_and_scalebar():
    labels = np.array([[-1, 0], [1, 2]])
    ax = plots.label_map(labels, pixel_size=40.0, names={0: "resin"}, title="t")
    texts = [t.get_text() for t in ax.figure.axes[-1].get_yticklabels()]
    assert texts[0] == "noise" and texts[1] == "0: resin"
    assert any(type(a).__name__ == "ScaleBar" for a in ax.artists)
    ax2 = plots.label_map(labels, pixel_size=None, colorbar=False)
    assert "uncalibrated" in ax2.get_xlabel()


def test_phase_colour_follows_the_name_not_the_label_number():
    # STO is label 3 in one film and label 4 in the next: the same colour in both maps
    a = plots.phase_map(np.array([[0, 3]]), {0: "cap", 3: "STO"}, legend=False)
    b = plots.phase_map(np.array([[0, 4]]), {0: "cap", 4: "STO"}, legend=False)
    rgba_a = a.images[0].cmap(a.images[0].norm(3 + 1))
    rgba_b = b.images[0].cmap(b.images[0].norm(4 + 1))
    assert rgba_a == pytest.approx(plots.phase_colour("STO"))
    assert rgba_b == pytest.approx(plots.phase_colour("STO"))
    assert plots.phase_colour("some new phase") == plots.phase_colour("some new phase")
    assert plots.phase_colour("some new phase") != plots.NOISE_COLOUR
    colours = plots.phase_colours(3, {1: "STO"})
    assert colours[1] == plots.phase_colour("STO") and colours[0] != colours[2]
    named = set(plots.PHASE_COLOURS.values())
    assert colours[0] not in named and colours[2] not in named


def test_phase_map_legend_names_phases_and_unmatched_clusters():
    ax = plots.phase_map(np.array([[0, 1], [5, -1]]), {0: "cap", 1: "STO"}, pixel_size=0.5)
    texts = [t.get_text() for t in ax.get_legend().get_texts()]
    assert texts[:2] == ["cap", "STO"] and "no region" in texts[2]
    assert any(type(a).__name__ == "ScaleBar" for a in ax.artists)


def test_power_spectrum_marks_the_measured_ring_in_inverse_nm():
    from stemseg import measure

    y, x = np.mgrid[:96, :96] * 0.05
    spec = measure.power_spectrum(np.cos(2 * np.pi * x / 0.4) + np.cos(2 * np.pi * y / 0.4),
                                  pixel_size_nm=0.05)
    ax = plots.power_spectrum(spec, title="ordered")
    assert "nm" in ax.get_xlabel() and "nm" in ax.get_ylabel()
    assert ax.patches[0].get_radius() == pytest.approx(1 / spec["d_spacing_nm"])
    assert "d = 0.400 nm" in ax.get_legend().get_texts()[0].get_text()
    none = dict(spec, d_spacing_nm=None)
    ax2 = plots.power_spectrum(none)
    assert any("no lattice" in t.get_text() for t in ax2.texts)


def test_percent_differences_band_and_reference():
    table = pd.DataFrame({"La": [-5.0, -4.0], "O": [4.0, 3.5]}, index=["truth", "fewshot"])
    ax = plots.percent_differences(table, tolerance=pd.Series({"La": 1.0, "O": 0.5}),
                                   reference=pd.Series({"La": -7.0, "O": 4.0}))
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert {"truth", "fewshot", "tolerance band", "reference"} <= set(labels)
    assert len(ax.patches) == 4 and "%" in ax.get_ylabel()


def test_element_maps_titles_and_update():
    cube, _ = synthetic_cube(shape=(16, 16), n_channels=64)
    total = cube.sum(-1).T  # Signal2D with nm axes
    maps = [total, total * 0.1]
    fig = plots.element_maps(maps, names=["A", "B"], ncols=2)
    titles = [ax.get_title() for ax in fig.axes if ax.get_title()]
    assert titles[0].startswith("A:") and "counts/px" in titles[0]
    assert len({im.get_clim() for im in fig.stemseg_images}) == 2
    plots.update_element_maps(fig, maps, "common")
    assert len({im.get_clim() for im in fig.stemseg_images}) == 1
    assert plots.pixel_size_nm(maps[0]) == pytest.approx(0.5)


def test_curves_and_tables():
    evr = np.array([0.5, 0.3, 0.1, 0.001, 0.0009, 0.0008])
    ax = plots.scree(evr, knee=4, chosen=5)
    assert ax.get_yscale() == "log" and len(ax.get_legend().texts) == 3
    table = cluster.bic_curve(np.random.default_rng(0).normal(size=(200, 2)), range(1, 4))
    plots.bic(table, chosen=2)
    conf = pd.DataFrame([[5, 1], [0, 7]], index=pd.Index([-1, 0], name="cluster"),
                        columns=pd.Index([0, 1], name="truth"))
    ax = plots.confusion(conf, normalise="row", xnames={0: "a", 1: "b"})
    assert [t.get_text() for t in ax.get_yticklabels()] == ["noise", "0"]
    p1 = quant.paper_table()
    axes = plots.composition_bars(analysis.compare_with_paper(p1, p1, {"i": "i", "ii": "ii"}))
    assert len(axes) == 2
    plots.entropy_bars(analysis.entropy_table(p1), reference=0.9)
    emb = np.random.default_rng(0).normal(size=(50, 4))
    ax = plots.embedding(emb, np.r_[np.zeros(25, int), -np.ones(25, int)], dims=(1, 2))
    assert ax.stemseg_dims == (1, 2) and len(ax.stemseg_index) == 50


def test_spectra_and_profiles():
    cube, _ = synthetic_cube(shape=(8, 8), n_channels=128)
    cube.metadata.set_item("Sample.xray_lines", ["S_Ka", "Fe_Ka"])
    ax = plots.spectra(cube.inav[0, 0], log=True, energy_range=(0.2, 4.0))
    assert ax.get_xlabel() == "energy (keV)"
    assert any(t.get_text() == "S Ka" for t in ax.texts)
    ax = plots.spectra([cube.inav[0, 0], cube.inav[1, 1]], labels=["a", "b"], normalise=True)
    assert len(ax.lines) >= 2
    prof = pd.DataFrame({"r": [0.25, 0.75], "mean": [2.0, 1.0], "sem": [0.1, 0.1],
                         "ratio": [1.0, 1.0], "ratio_sigma": [0.05, 0.05]})
    plots.radial_profiles({"Co": prof}, column="ratio")


def test_mixing_flags_show_in_tables_and_bars():
    """Issue 16: a cluster that fails the mixing check is marked in the wide table (" !")
    and hatched in the composition bars, whose error bars are sigma_total."""
    p1 = quant.paper_table()
    ours = p1.copy()
    ours["sigma_total"] = ours["sigma"] * 3
    ours["mixing_flag"] = (ours["cluster"] == "ii") & (ours["element"] == "Ag")
    wide = analysis.composition_wide(ours)
    assert wide.loc["Ag", "ii"].endswith(" !") and not wide.loc["Fe", "ii"].endswith("!")
    cmp_ = analysis.compare_with_paper(ours, p1, {"i": "i", "ii": "ii"})
    assert cmp_.loc[("ii", "Ag"), "mixing_flag"] and not cmp_.loc[("i", "Ag"), "mixing_flag"]
    assert cmp_.loc[("i", "Fe"), "ours_sigma_total"] == pytest.approx(
        3 * cmp_.loc[("i", "Fe"), "ours_sigma"])
    axes = plots.composition_bars(cmp_)
    hatched = [b for b in axes[1].patches if b.get_hatch() == "///"]
    assert len(hatched) >= 1 and not [b for b in axes[0].patches if b.get_hatch()]
    assert "mixing flag" in axes[1].get_legend_handles_labels()[1]


def test_composition_bars_mark_the_phantom_truth():
    p1 = quant.paper_table()
    cmp_ = analysis.compare_with_paper(p1.copy(), p1, {"i": "i"})
    axes = plots.composition_bars(cmp_)
    assert "phantom truth" not in axes[0].get_legend_handles_labels()[1]
    cmp_["phantom truth"] = cmp_["paper"] + 1.0
    axes = plots.composition_bars(cmp_)
    assert "phantom truth" in axes[0].get_legend_handles_labels()[1]
    ticks = axes[0].collections[-1].get_segments()
    assert len(ticks) == len(cmp_.loc["i"])
    assert ticks[0][0][1] == pytest.approx(cmp_["phantom truth"].iloc[0])


def test_parameter_sweep_one_panel_per_column_with_markers():
    table = pd.DataFrame({"clusters": [3, 5, 5, 2], "noise %": [0.1, 0.2, 1.0, 17.0]},
                         index=pd.Index([8, 100, 800, 3000], name="min_cluster_size (px)"))
    axes = plots.parameter_sweep(table, ["clusters", "noise %"], logx=True,
                                 markers={"size used": 200})
    assert len(axes) == 2 and axes[1].get_xscale() == "log"
    assert axes[0].get_xlabel() == "min_cluster_size (px)" and axes[1].get_ylabel() == "noise %"
    np.testing.assert_array_equal(axes[1].lines[0].get_ydata(), table["noise %"])
    assert axes[0].get_legend_handles_labels()[1] == ["size used"]


def test_line_label_slots_keep_close_labels_apart():
    # two labels closer than one label's width: one on each side of its marker
    slots = plots.line_label_slots([0.62, 0.60, 0.2], width=0.03)
    assert slots[1] == ("right", 0) and slots[0] == ("left", 0) and slots[2] == ("right", 0)
    # a third label in the same place goes one level down
    assert plots.line_label_slots([0.5, 0.51, 0.52], width=0.03)[2][1] == 1


def test_spectra_labels_of_overlapping_lines_do_not_overlap():
    """Ag Lb1 (3.151 keV) and Cd La (3.134 keV), 17 eV apart, get legible labels."""
    cube, _ = synthetic_cube(shape=(4, 4), n_channels=512)
    fig, ax = plt.subplots(figsize=(7, 3.4), layout="constrained")
    plots.spectra(cube.inav[0, 0], ax=ax, energy_range=(2.0, 3.8), labels=["a"],
                  lines=["S_Ka", "Ag_La", "Ag_Lb1", "Cd_La", "Cd_Lb1"])
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    boxes = {t.get_text(): t.get_window_extent(renderer) for t in ax.texts}
    assert {"Ag Lb1", "Cd La"} <= set(boxes)
    names = sorted(boxes)
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            assert not boxes[a].overlaps(boxes[b]), f"labels {a} and {b} overlap"


def test_line_components_draws_families_and_windows():
    e = np.linspace(2.8, 3.4, 61)
    bg = np.full(e.size, 0.1)
    ag = np.exp(-0.5 * ((e - 2.98) / 0.03) ** 2) + 0.4 * np.exp(-0.5 * ((e - 3.15) / 0.03) ** 2)
    cd = 0.5 * np.exp(-0.5 * ((e - 3.13) / 0.03) ** 2)
    comp = pd.DataFrame({"counts": bg + ag + cd, "background": bg, "model": bg + ag + cd,
                         "Ag_La": ag, "Cd_La": cd}, index=pd.Index(e, name="energy_keV"))
    ax = plots.line_components(comp, families=["Ag_La", "Cd_La"],
                               windows={"Cd_La": (3.03, 3.23)}, title="t")
    assert ax.get_xlabel() == "energy (keV)" and ax.get_ylabel() == "counts per channel"
    legend = [t.get_text() for t in ax.get_legend().texts]
    assert "Ag La family (fit)" in legend and "Cd La family (fit)" in legend
    assert any(t.get_text() == "Cd La window" for t in ax.texts)


def test_value_map_has_units_and_scalebar():
    ax = plots.value_map(np.arange(12.0).reshape(3, 4), pixel_size=2.0,
                         label="thickness (nm)", title="t")
    assert ax.figure.axes[-1].get_ylabel() == "thickness (nm)"
    assert any(type(a).__name__ == "ScaleBar" for a in ax.artists)


def test_key_colours_follow_the_matched_phase():
    key = analysis.cluster_key(np.array([0, 0, 1, 2]), np.array([1, 1, 0, 0]),
                               {0: "resin", 1: "grain"})
    palette = plots.cluster_colours(key["n_colours"])
    assert plots.key_colours(key) == [palette[1], palette[0], palette[2]]
    assert plots.key_colours(None) is None


def test_chip_grid_draws_the_grid_lines_and_a_scalebar():
    ax = plots.chip_grid(np.random.default_rng(0).random((50, 50)), (3, 4), 12,
                         pixel_size=0.1)
    assert ax.get_title() == "HAADF with the 3 x 4 chip grid"
    hlines, vlines = ax.collections[:2]
    assert len(hlines.get_segments()) == 4 and len(vlines.get_segments()) == 5
    assert hlines.get_segments()[-1][0][1] == 36      # the grid ends at 3 x 12 px
    assert ax.get_xticks().size == 0 and ax.get_yticks().size == 0


def test_region_compositions_draws_a_bar_per_region_and_element():
    summary = pd.DataFrame({"La": [20.0, 18.0], "sigma_La": [0.5, 0.6],
                            "O": [60.0, 63.0], "sigma_O": [1.0, 1.1]},
                           index=["ordered LFO", "amorphous LFO"])
    ax = plots.region_compositions(summary, ("La", "O"), title="film")
    assert len(ax.patches) == 4 and ax.get_title() == "film"
    assert [t.get_text() for t in ax.get_xticklabels()] == ["La", "O"]
    assert ax.patches[0].get_facecolor()[:3] == pytest.approx(
        matplotlib.colors.to_rgb(plots.phase_colour("ordered LFO")))
    assert [p.get_height() for p in ax.patches] == [20.0, 60.0, 18.0, 63.0]
