"""Tests of stemseg.simulate: phantoms, their truth, Poisson counts and save/load."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

from stemseg import (
    StemsegFileExistsError,
    StemsegFileFormatError,
    StemsegFileNotFoundError,
    StemsegValueError,
)
from stemseg import simulate as sim
from stemseg._types import Phantom

# --------------------------------------------------------------------------- helpers


def _summed(ph: Phantom, mask: np.ndarray):
    """The spectrum summed over ``mask`` as a single EDS spectrum with the map's metadata."""
    s = ph.eds.inav[0, 0].deepcopy()
    s.data = ph.eds.data[mask].sum(axis=0).astype(float)
    return s


def _window_maps(ph: Phantom, lines):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        maps = ph.eds.get_lines_intensity(list(lines))
    return {m.metadata.Sample.xray_lines[0]: np.asarray(m.data) for m in maps}


@pytest.fixture(scope="module")
def sulfide(sulfide_phantom):
    return sulfide_phantom


@pytest.fixture(scope="module")
def particles(particles_phantom):
    return particles_phantom


@pytest.fixture(scope="module")
def oxide():
    return sim.phantom("lfo-sto", defective=True, irradiated=True, random_state=0)


# --------------------------------------------------------------------------- structure


def test_phantoms_listed():
    assert set(sim.PHANTOMS) == {"sulfide-6cation", "nanoparticles-7cation", "lfo-sto",
                                 "steel-mos2-pbs"}
    assert all(isinstance(text, str) and text for text in sim.PHANTOMS.values())


@pytest.mark.parametrize("fixture", ["sulfide", "particles", "oxide"])
def test_signals_and_truth(fixture, request):
    ph = request.getfixturevalue(fixture)
    eds = ph.eds
    assert type(eds).__name__ == "EDSTEMSpectrum"
    assert eds.data.dtype == np.uint16 and eds.data.ndim == 3
    energy = eds.axes_manager.signal_axes[0]
    assert energy.units == "keV" and energy.offset < 0  # zero peak visible
    nav = eds.axes_manager.navigation_axes
    assert [a.name for a in nav] == ["x", "y"] and all(a.units == "nm" for a in nav)
    md = eds.metadata
    assert md.Acquisition_instrument.TEM.beam_energy in (200.0, 300.0)
    assert md.Acquisition_instrument.TEM.Detector.EDS.energy_resolution_MnKa > 0
    assert md.Sample.elements and len(md.Sample.xray_lines) == len(md.Sample.elements)
    # HAADF registered with the EDS map
    assert ph.haadf.data.shape == eds.data.shape[:2]
    assert math.isclose(ph.haadf.axes_manager.signal_axes[0].scale, nav[0].scale)
    assert ph.haadf.axes_manager.signal_axes[0].units == "nm"
    # truth: every pixel a phase (no -1), every phase present, thickness positive
    assert ph.labels.shape == eds.data.shape[:2]
    assert ph.labels.min() == 0 and ph.labels.max() == len(ph.phases) - 1
    assert set(np.unique(ph.labels)) == set(range(len(ph.phases)))
    assert np.all(ph.thickness > 0)
    for phase in ph.phases:
        assert math.isclose(sum(phase.composition.values()), 100.0, rel_tol=1e-9)
    # stray lines never collide with a sample element
    assert not set(ph.truth["stray_elements"]) & set(md.Sample.elements)


def test_counts_per_pixel_is_the_sample_mean(sulfide):
    totals = sulfide.eds.data.sum(axis=-1)
    sample = totals[sulfide.labels > 0].mean()
    # expected: counts_per_pixel plus the zero peak (3 %)
    assert sample == pytest.approx(200 * 1.03, rel=0.03)
    assert totals[sulfide.labels == 0].mean() < 0.35 * sample  # resin is dim (C Ka)


def test_sulfide_minority_wurtzite_is_a_rim(sulfide):
    names = [p.name for p in sulfide.phases]
    assert names == ["resin", "chalcopyrite", "jalpaite", "majority wurtzite",
                     "minority wurtzite"]
    rim = sulfide.labels == 4
    assert np.array_equal(rim, sulfide.truth["rim_mask"])
    from scipy import ndimage

    wurtzite = (sulfide.labels == 3) | rim
    depth = ndimage.distance_transform_edt(wurtzite)
    assert depth[rim].max() <= 4  # a rim of at most 4 px
    assert rim.sum() > 300
    # compositions are Table 1 (workflow 1), normalised to 100 %
    table = sim._paper()["eggeman2025_table1_6cation"]["workflow1_pca_gmm"]
    for key, phase in zip(("i", "ii", "iii", "iv"), sulfide.phases[1:]):
        total = sum(v[0] for v in table[key].values())
        for element, (value, _) in table[key].items():
            assert phase.composition[element] == pytest.approx(100 * value / total)


def test_au_stray_present_and_no_cu_in_resin(sulfide):
    resin = _summed(sulfide, sulfide.labels == 0)
    axis = resin.axes_manager.signal_axes[0].axis
    data = resin.data

    def window(e, half=0.12):
        return data[(axis > e - half) & (axis < e + half)].sum()

    au_la, background = window(9.713), 0.5 * (window(9.3) + window(10.1))
    assert au_la > background * 1.5  # Au L lines from the grid in every pixel
    cu_ka, cu_bg = window(8.046), 0.5 * (window(7.6) + window(8.45))
    assert cu_ka < cu_bg * 1.2  # no Cu in the resin


# --------------------------------------------------------------------------- quantification


def _check_quant(ph, extra, skip=()):
    from stemseg import quant

    for k, phase in enumerate(ph.phases):
        if phase.name in skip:
            continue
        table = quant.quantify(_summed(ph, ph.labels == k), method="model",
                               extra_elements=list(extra))
        got = dict(zip(table["element"], table["at_pct"]))
        for element, value in phase.composition.items():
            if value > 1.0:
                assert got[element] == pytest.approx(value, abs=1.5), (phase.name, element)


def test_quantified_phases_match_truth_sulfide(sulfide):
    _check_quant(sulfide, ["Au", "C", "O"], skip=("resin",))


def test_quantified_phases_match_truth_nanoparticles(particles):
    _check_quant(particles, ["Au", "C", "O"], skip=("carbon film",))


def test_quantified_phases_match_truth_oxide(oxide):
    _check_quant(oxide, ["C", "Cu", "Ga"])


# --------------------------------------------------------------------------- Poisson


@pytest.mark.parametrize("mean", [0.25, 40.0])  # event sampling, per-channel sampling
def test_sampler_is_poisson(mean):
    rng = np.random.default_rng(5)
    n_ch = 64
    shape = np.linspace(1.0, 3.0, n_ch)
    shape /= shape.sum()
    weights = np.full((60, 60), mean * n_ch)
    cube = sim._poisson_cube([(weights, shape)], (60, 60), rng).reshape(-1, n_ch)
    expected = mean * n_ch * shape
    assert cube.mean(axis=0) == pytest.approx(expected, rel=0.15 if mean < 1 else 0.03)
    dispersion = cube.var(axis=0, ddof=1) / cube.mean(axis=0)
    # Var/mean of 3600 Poisson draws: 1 +- sqrt((1 / mean + 2) / 3600) per channel
    assert dispersion.mean() == pytest.approx(1.0, abs=0.02)
    assert np.all(np.abs(dispersion - 1) < 0.15)


def test_phantom_counts_are_poisson_in_a_uniform_region():
    ph = sim.phantom("lfo-sto", shape=(128, 128), random_state=2)
    # the cap: one composition, thickness uniform to ~2 %: channels with mean > 0.05
    cap = ph.eds.data[ph.labels == ph.truth["regions"]["cap"]].astype(float)
    mean = cap.mean(axis=0)
    used = mean > 0.05
    dispersion = cap.var(axis=0, ddof=1)[used] / mean[used]
    assert used.sum() > 20
    assert np.median(dispersion) == pytest.approx(1.0, abs=0.05)


# --------------------------------------------------------------------------- nanoparticles


def test_nanoparticle_map_counts_match_the_paper(particles):
    maps = _window_maps(particles, ["Ag_La", "Co_Ka", "Mn_Ka", "Zn_Ka"])
    inside = particles.truth["particle_thickness"] > 0
    means = {line: float(m[inside].mean()) for line, m in maps.items()}
    for line in ("Co_Ka", "Mn_Ka", "Zn_Ka"):
        assert 0.5 <= means[line] <= 3.0, means
    assert 10.0 <= means["Ag_La"] <= 25.0, means


def _core_excess(ph):
    """(Co + Mn + Zn) / Ag window counts, inner (r < 0.4 R) over outer (r > 0.6 R) pixels."""
    maps = _window_maps(ph, ["Ag_La", "Co_Ka", "Mn_Ka", "Zn_Ka"])
    ident = ph.truth["particle_id"]
    yy, xx = np.mgrid[: ident.shape[0], : ident.shape[1]] + 0.5
    rel = np.full(ident.shape, np.inf)
    for k, (cy, cx, r) in enumerate(ph.truth["particles_px"], start=1):
        m = ident == k
        rel[m] = np.hypot(yy[m] - cy, xx[m] - cx) / r
    rich = maps["Co_Ka"] + maps["Mn_Ka"] + maps["Zn_Ka"]
    inner, outer = rel < 0.4, (rel > 0.6) & (ident > 0)
    return (rich[inner].sum() / maps["Ag_La"][inner].sum()) / (
        rich[outer].sum() / maps["Ag_La"][outer].sum())


def test_core_shell_enrichment_is_real_only_when_asked(particles):
    cs = sim.phantom("nanoparticles-7cation", core_shell=True, random_state=0)
    names = [p.name for p in cs.phases]
    assert names == ["carbon film", "shell", "core"]
    shell, core = cs.phases[1].composition, cs.phases[2].composition
    for el in ("Co", "Mn", "Zn"):
        assert core[el] == pytest.approx(1.5 * shell[el])
    assert core["S"] == pytest.approx(shell["S"])
    assert cs.truth["enrichment"] == 1.5 and particles.truth["enrichment"] == 1.0
    assert np.all(particles.truth["core_thickness"] == 0)
    assert _core_excess(particles) == pytest.approx(1.0, abs=0.08)
    assert _core_excess(cs) > 1.12


def test_notebook01_core_excess_claims_hold_for_every_seed():
    """Notebook 01 section 2 asserts, for its SEED: no significant thickness-normalised core
    excess of Co, Mn or Zn in the uniform particles (|z| < 3.5); a significant Co and Zn
    excess (z > 3.5) in the enriched cores; Ag depleted there (z < 0). Seeds 0-9."""
    from stemseg import analysis

    lines = ["Co_Ka", "Mn_Ka", "Zn_Ka", "Ag_La"]
    for seed in range(10):
        z = {}
        for core_shell in (False, True):
            ph = sim.phantom("nanoparticles-7cation", core_shell=core_shell, random_state=seed)
            for m in analysis.element_maps(ph, lines):
                z[core_shell, analysis.line_name(m)] = analysis.core_excess(
                    m, ph.truth["particles_px"], ph.truth["particle_thickness"])["z"]
        for line in lines[:3]:
            assert abs(z[False, line]) < 3.5, (seed, line, z)
        assert min(z[True, "Co_Ka"], z[True, "Zn_Ka"]) > 3.5, (seed, z)
        assert z[True, "Ag_La"] < 0, (seed, z)


# --------------------------------------------------------------------------- lfo-sto geometry


def test_chipping_geometry_matches_table2():
    from stemseg import multimodal

    table = sim._paper()["terpetrosyan2024_multimodal"]["chipping_table2"]
    for row in table:
        defective, irradiated = row["sample"] == "Defective", row["dpa"] > 0
        ph = sim.phantom("lfo-sto", defective=defective, irradiated=irradiated,
                         n_channels=128)
        ny, nx = ph.eds.data.shape[:2]
        size = ph.truth["chip_px"]
        assert size == row["chip_px"]
        assert (ny // size, nx // size) == (row["rows"], row["cols"])
        assert 495 <= min(ny, nx) and max(ny, nx) <= 512
        px = ph.truth["pixel_size_nm"]
        assert 0.035 <= px <= 0.071
        assert 0.65 <= size * px <= 0.8  # chips of ~0.7 nm
        chips = multimodal.chip(ph, size=size)
        assert chips.grid == (row["rows"], row["cols"])
        assert chips.grid[0] * chips.grid[1] == row["chips"]
        expected = {"cap", "ordered LFO", "interface", "STO"}
        expected |= {"disordered LFO"} if defective else set()
        expected |= {"amorphous LFO"} if irradiated else set()
        assert set(ph.truth["regions"]) == expected


def test_oxide_truth_describes_the_regions(oxide):
    t = oxide.truth
    assert t["defect_expansion"] == pytest.approx(0.42 / 0.41)
    spacing = t["lattice_spacing_nm"]
    assert 0.393 <= spacing["ordered LFO"] <= 0.395 and spacing["STO"] == 0.3905
    assert spacing["amorphous LFO"] is None
    comp = {p.name: p.composition for p in oxide.phases}
    assert comp["disordered LFO"]["O"] > comp["ordered LFO"]["O"]
    assert comp["amorphous LFO"]["O"] > comp["ordered LFO"]["O"]
    for el in ("La", "Fe"):
        assert comp["amorphous LFO"][el] < comp["ordered LFO"][el]
    step = t["sto_thick_mask"]
    sto = oxide.labels == t["regions"]["STO"]
    assert step.any() and np.all(sto[step])
    assert oxide.thickness[step].mean() > 1.15 * oxide.thickness[sto & ~step].mean()
    assert oxide.eds.metadata.Acquisition_instrument.TEM.beam_energy == 300.0


# --------------------------------------------------------------------------- reproducibility


def test_same_seed_same_cube_and_counts_keep_geometry():
    a = sim.phantom("sulfide-6cation", shape=(48, 48), random_state=7)
    b = sim.phantom("sulfide-6cation", shape=(48, 48), random_state=7)
    c = sim.phantom("sulfide-6cation", shape=(48, 48), random_state=8)
    d = sim.phantom("sulfide-6cation", shape=(48, 48), random_state=7, counts_per_pixel=50)
    assert np.array_equal(a.eds.data, b.eds.data)
    assert np.array_equal(a.haadf.data, b.haadf.data)
    assert not np.array_equal(a.eds.data, c.eds.data)
    assert not np.array_equal(a.labels, c.labels)
    assert np.array_equal(a.labels, d.labels) and np.array_equal(a.thickness, d.thickness)
    assert d.eds.data.sum() < 0.4 * a.eds.data.sum()


@pytest.mark.parametrize(
    ("args", "kwargs", "match"),
    [
        (("nope",), {}, "sulfide-6cation, nanoparticles-7cation, lfo-sto, steel-mos2-pbs"),
        (("steel-mos2-pbs",), {"line_model": "vendor"}, "line_model"),
        (("steel-mos2-pbs",), {"cross_section": "powell"}, "cross_section"),
        (("steel-mos2-pbs",), {"line_model": "exspy", "cross_section": "bethe"},
         "needs line_model='xraylib'"),
        (("steel-mos2-pbs",), {"n_particles": 0}, "n_particles"),
        (("steel-mos2-pbs",), {"n_particles": 60, "shape": (48, 48)}, "fit"),
        (("lfo-sto",), {"colour": 1}, "Valid options"),
        (("sulfide-6cation",), {"counts_per_pixel": -5}, "counts_per_pixel"),
        (("sulfide-6cation",), {"counts_per_pixel": 0}, "counts_per_pixel"),
        (("sulfide-6cation",), {"counts_per_pixel": float("nan")}, "counts_per_pixel"),
        (("sulfide-6cation",), {"shape": (8, 8)}, "at least 32"),
        (("sulfide-6cation",), {"shape": (64,)}, "shape"),
        (("lfo-sto",), {"shape": (40, 500)}, "at least 64"),
        (("sulfide-6cation",), {"random_state": -1}, "random_state"),
        (("lfo-sto",), {"cap": "Au"}, "'Cr' or 'Pt'"),
        (("lfo-sto",), {"defective": "yes"}, "True or False"),
        (("nanoparticles-7cation",), {"enrichment": 50}, "below"),
        (("sulfide-6cation",), {"n_channels": 10}, "n_channels"),
        (("sulfide-6cation",), {"n_channels": 128}, "too short"),
        (("sulfide-6cation",), {"shape": (5000, 5000)}, "GiB"),
    ],
)
def test_invalid_requests_raise(args, kwargs, match):
    with pytest.raises(StemsegValueError, match=match):
        sim.phantom(*args, **kwargs)


# --------------------------------------------------------------------------- save / load


def test_save_load_round_trip(tmp_path):
    ph = sim.phantom("lfo-sto", shape=(80, 80), irradiated=True, n_channels=256)
    path = tmp_path / "oxide.hspy"
    assert sim.save(ph, path) == path
    assert sorted(p.name for p in tmp_path.iterdir()) == ["oxide.hspy"]  # no temp left
    back = sim.load(path)
    assert type(back.eds).__name__ == "EDSTEMSpectrum"
    assert np.array_equal(back.eds.data, ph.eds.data)
    assert back.eds.metadata.Sample.xray_lines == ph.eds.metadata.Sample.xray_lines
    assert back.eds.metadata.get_item("Phantom") is None
    assert back.phases == ph.phases
    assert np.array_equal(back.labels, ph.labels)
    assert np.array_equal(back.thickness, ph.thickness)
    assert np.array_equal(back.haadf.data, ph.haadf.data)
    assert back.haadf.axes_manager[0].scale == ph.haadf.axes_manager[0].scale
    assert set(back.truth) == set(ph.truth)
    for key, value in ph.truth.items():
        if isinstance(value, np.ndarray):
            assert np.array_equal(back.truth[key], value) and back.truth[key].dtype == value.dtype
        else:
            assert back.truth[key] == value, key
    lazy = sim.load(path, lazy=True)
    assert lazy.eds._lazy and np.array_equal(np.asarray(lazy.eds.data.compute()), ph.eds.data)


def test_save_refuses_to_overwrite(tmp_path):
    ph = sim.phantom("sulfide-6cation", shape=(32, 32), n_channels=512)
    path = tmp_path / "s.hspy"
    sim.save(ph, path)
    before = path.read_bytes()
    with pytest.raises(StemsegFileExistsError, match="overwrite"):
        sim.save(ph, path)
    assert path.read_bytes() == before
    other = sim.phantom("sulfide-6cation", shape=(32, 32), n_channels=512, random_state=1)
    sim.save(other, path, overwrite=True)
    assert np.array_equal(sim.load(path).eds.data, other.eds.data)


def test_save_and_load_errors(tmp_path):
    ph = sim.phantom("sulfide-6cation", shape=(32, 32), n_channels=512)
    with pytest.raises(StemsegValueError, match=".hspy"):
        sim.save(ph, tmp_path / "x.emd")
    with pytest.raises(StemsegFileNotFoundError):
        sim.load(tmp_path / "missing.hspy")
    plain = tmp_path / "plain.hspy"
    ph.eds.save(plain)
    with pytest.raises(StemsegFileFormatError, match="io.load"):
        sim.load(plain)


# --------------------------------------------------------------------------- steel-mos2-pbs


def test_steel_phantom_is_built_with_the_independent_line_model():
    """The issue-16 check map: steel, MoS2 grains and ~5 % PbS particles; its spectra carry
    split doublets (xraylib) that the exspy line model does not, and the same main-line
    intensities."""
    ph = sim.phantom("steel-mos2-pbs", shape=(64, 64), random_state=3, n_particles=3,
                     counts_per_pixel=300)
    assert [p.name for p in ph.phases] == ["steel", "MoS2", "PbS"]
    assert ph.phases[2].composition == {"Pb": 50.0, "S": 50.0}
    share = np.bincount(ph.labels.ravel(), minlength=3) / ph.labels.size
    assert 0.02 < share[2] < 0.12 and 0.2 < share[1] < 0.45
    assert ph.truth["line_model"] == "xraylib" and len(ph.truth["particles_px"]) == 3
    assert ph.eds.data.shape == (64, 64, 2048)
    assert ph.eds.metadata.Sample.xray_lines == sorted(
        ["Cr_Ka", "Fe_Ka", "Mo_Ka", "Ni_Ka", "Pb_La", "S_Ka"])
    assert ph.eds.data.sum(axis=-1).mean() == pytest.approx(300 * 1.03, rel=0.05)
    # the same geometry with exspy's line model: Mo Ka's centroid sits ~35 eV higher
    twin = sim.phantom("steel-mos2-pbs", shape=(64, 64), random_state=3, n_particles=3,
                       counts_per_pixel=300, line_model="exspy")
    np.testing.assert_array_equal(twin.labels, ph.labels)
    e = ph.eds.axes_manager[-1].axis
    ka = (e > 17.0) & (e < 18.0)
    mos2 = ph.labels == 1

    def centroid(p):
        spec = p.eds.data[mos2].sum(axis=0)[ka].astype(float)
        return float((e[ka] * spec).sum() / spec.sum())

    assert centroid(twin) - centroid(ph) == pytest.approx(0.035, abs=0.015)


def test_same_phantom_recognises_what_phantom_would_simulate():
    ph = sim.phantom("lfo-sto", shape=(64, 64), irradiated=True, random_state=3)
    assert sim.same_phantom(ph, "lfo-sto", shape=(64, 64), irradiated=True, random_state=3)
    assert sim.same_phantom(ph, "lfo-sto", shape=(64, 64), irradiated=True, defective=False,
                            random_state=3)  # a default given explicitly
    for other in (dict(shape=(64, 64), irradiated=True, random_state=4),
                  dict(shape=(96, 96), irradiated=True, random_state=3),
                  dict(shape=(64, 64), irradiated=False, random_state=3),
                  dict(shape=(64, 64), irradiated=True, random_state=3, counts_per_pixel=5)):
        assert not sim.same_phantom(ph, "lfo-sto", **other), other
    assert not sim.same_phantom(ph, "sulfide-6cation", shape=(64, 64), random_state=3)
    assert not sim.same_phantom(ph.eds, "lfo-sto", shape=(64, 64), random_state=3)
    assert not sim.same_phantom(ph, "lfo-sto", shape=(64, 64), irradiated=True,
                                random_state=np.random.default_rng(3))
