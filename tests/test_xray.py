"""Tests of stemseg.xray: lines, detector, cross-sections, k-factors and model spectra.

Reference values and their sources
----------------------------------
* Line energies and family weights: exspy's element database (``exspy.material.elements``).
* Ionisation cross-sections: Bote, Salvat, Jablonski & Powell, At. Data Nucl. Data Tables 95,
  871 (2009), analytical formulas evaluated with their tabulated parameters (as distributed in
  NIST's public-domain BoteSalvatICX.jl, whose test values from Salvat's xion.f we reproduced
  to 0.3 %) at the edge energies Bote et al. recommend.
* k-factors at 200 kV, two vendors' theoretical sets:
  - Thermo Fisher Velox, exported for a Spectra 300 at 200 kV: file
    ``pyTEMlib/data/k-factors-Spectra300UTK200keV.csv`` of github.com/pycroscopy/pyTEMlib
    (MIT licence), commit e9388bd844ab1d3906db3cf6c16e3c998d8a15d4 (2025-11-16), column
    "K-factor" (weight convention, relative to B Ka = 1). Velox gives one value to all lines of
    a family (Ka1, Ka2, Kb1 alike), so it applies to whole-family intensities, whereas exspy
    (and stemseg) use the main line's intensity. The family/main-line ratio varies slowly
    with Z, so only ratios within one series (K/K, L/L, M/M) are compared.
  - Bruker Esprit for the FEI Osiris (200 kV, Super-X) as given in exspy's user guide
    (doc/user_guide/eds.rst, "kfactors = [1.450226, 5.075602] #For Fe Ka and Pt La") and
    in exspy-demos/EDS/TEM_EDS_nanoparticles.ipynb ("From Brucker software (Esprit)").
  Theoretical k-factors are good to 10-20 % [Williams & Carter 2009, ch. 35]; tolerances
  below are stated per comparison, and the spreads are printed with ``pytest -s``.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

from stemseg import xray
from stemseg.errors import StemsegError, StemsegValueError

# ----------------------------------------------------------------------------- references

# Bote et al. (2009) cross-sections in cm^2 at 100, 200, 300 keV (see module docstring).
BOTE_SALVAT_CM2 = {
    ("Si", "K"): (2.506e-21, 1.745e-21, 1.487e-21),
    ("Fe", "K"): (4.267e-22, 3.185e-22, 2.785e-22),
    ("Cu", "K"): (3.075e-22, 2.349e-22, 2.069e-22),
    ("Ag", "L3"): (2.440e-21, 1.726e-21, 1.479e-21),
    ("Pt", "L3"): (4.568e-22, 3.480e-22, 3.049e-22),
    ("Au", "M5"): (7.443e-21, 5.243e-21, 4.492e-21),
}
BEAMS_KV = (100, 200, 300)

# Velox 200 kV k-factors (pyTEMlib file above), "K-factor" column, relative to B Ka.
VELOX_200 = {
    "Mg_Ka": 0.327781, "Al_Ka": 0.330728, "Si_Ka": 0.324726, "S_Ka": 0.321669,
    "Ca_Ka": 0.333218, "Ti_Ka": 0.379229, "Cr_Ka": 0.402650, "Mn_Ka": 0.424546,
    "Fe_Ka": 0.432916, "Co_Ka": 0.460642, "Ni_Ka": 0.465132, "Cu_Ka": 0.513247,
    "Zn_Ka": 0.542706, "Ga_Ka": 0.599894, "Ge_Ka": 0.655539,
    "Pd_La": 0.506174, "Ag_La": 0.498260, "Cd_La": 0.505865, "In_La": 0.504319,
    "Sn_La": 0.509935,
    "W_La": 0.673991, "Pt_La": 0.759814, "Au_La": 0.785243, "Pb_La": 0.894557,
    "Pt_Ma": 0.325640, "Au_Ma": 0.319403, "Pb_Ma": 0.310504,
    # K lines above 12 keV and Mo's L line (same file)
    "Sr_Ka": 1.39900, "Zr_Ka": 1.91568, "Mo_Ka": 2.69449, "Ru_Ka": 3.88953, "Mo_La": 0.525675,
}
# Bruker Esprit, Osiris 200 kV Super-X (exspy user guide / exspy-demos).
ESPRIT_200 = {"Fe_Ka": 1.450226, "Pt_La": 5.075602}

# (lines, reference line of the ratio, tolerance) compared with Velox.
VELOX_SERIES = {
    "K, Ca-Ge vs Fe": (["Ca_Ka", "Ti_Ka", "Cr_Ka", "Mn_Ka", "Co_Ka", "Ni_Ka", "Cu_Ka",
                        "Zn_Ka", "Ga_Ka", "Ge_Ka"], "Fe_Ka", 0.15),
    "L, Pd-Sn vs Ag": (["Pd_La", "Cd_La", "In_La", "Sn_La"], "Ag_La", 0.15),
    "L, W-Pb vs Au": (["W_La", "Pt_La", "Pb_La"], "Au_La", 0.15),
    "M, Pt-Pb vs Au": (["Pt_Ma", "Pb_Ma"], "Au_Ma", 0.15),
    # Light-element K lines: the model's k_X/k_Fe (whole K family, not converted) is 15-26 %
    # below Velox's (9-16 % after the main-line conversion, see the across-series test).
    # Velox's low-energy detection efficiency and light-element fluorescence yields evidently
    # differ from the windowless Super-X model and xraylib's yields; stated, not hidden.
    "K, Mg-S vs Fe (known gap)": (["Mg_Ka", "Al_Ka", "Si_Ka", "S_Ka"], "Fe_Ka", 0.35),
}


def _ratio_errors(k: dict, ref_table: dict, lines: list, ref: str) -> dict:
    """(k_line / k_ref) / (table_line / table_ref) for each line."""
    return {ln: (k[ln] / k[ref]) / (ref_table[ln] / ref_table[ref]) for ln in lines}


def _exspy_cliff_lorimer(intensities: dict, kfactors: dict) -> dict:
    """Atomic % from exspy's own Cliff-Lorimer (EDSTEMSpectrum.quantification, method CL)."""
    import exspy

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        s = exspy.signals.EDSTEMSpectrum(np.zeros(2048))
        s.axes_manager[-1].scale = 0.01
        s.axes_manager[-1].units = "keV"
        s.set_microscope_parameters(beam_energy=200)
        s.add_lines(list(intensities))
        sigs = s.get_lines_intensity(show_progressbar=False)
        order = [sig.metadata.Sample.xray_lines[0] for sig in sigs]  # exspy sorts lines
        for sig, ln in zip(sigs, order):
            sig.data = np.full(sig.data.shape, float(intensities[ln]))
        res = s.quantification(sigs, method="CL", factors=[kfactors[ln] for ln in order],
                               composition_units="atomic", show_progressbar=False)
    return {ln.split("_")[0]: float(np.ravel(r.data)[0]) for ln, r in zip(order, res)}


# ----------------------------------------------------------------------------- lines


def test_line_energies_come_from_exspy():
    from exspy.material import elements as db

    for line in ["Fe_Ka", "Fe_Kb", "S_Ka", "Ag_La", "Cd_La", "Pt_Ma", "Au_Lb1", "C_Ka"]:
        el, name = line.split("_")
        expected = db[el].Atomic_properties.Xray_lines[name]["energy (keV)"]
        assert xray.line_energy(line) == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize(
    "line, match",
    [("Xx_Ka", "Unknown element 'Xx'"), ("fe_Ka", "Unknown element 'fe'"),
     ("Fe_Kz", r"Unknown X-ray line 'Fe_Kz'.*Fe_Ka"), ("FeKa", "Element_Line"),
     (42, "Element_Line")],
)
def test_line_energy_bad_input(line, match):
    with pytest.raises(StemsegValueError, match=match):
        xray.line_energy(line)


def test_line_family_follows_exspy_grouping():
    assert list(xray.line_family("Fe_Ka")) == ["Fe_Ka", "Fe_Kb"]
    fam = xray.line_family("Pt_Lb1")
    assert "Pt_La" in fam and "Pt_Lb1" in fam and all(k.startswith("Pt_L") for k in fam)
    assert fam["Pt_La"][1] == 1.0


def test_principal_lines_at_200kV():
    got = xray.principal_lines(["S", "Fe", "Cu", "Mo", "Ag", "Cd", "Sn", "Pt", "Au", "C"], 200)
    assert got == ["S_Ka", "Fe_Ka", "Cu_Ka", "Mo_Ka", "Ag_La", "Cd_La", "Sn_La", "Pt_La",
                   "Au_La", "C_Ka"]


def test_principal_lines_follow_range_and_overvoltage():
    assert xray.principal_lines(["Pt", "Pb"], 200, (0.2, 9.0)) == ["Pt_Ma", "Pb_Ma"]
    assert xray.principal_lines(["Zn", "Ga"], 20) == ["Zn_Ka", "Ga_La"]  # U(Ga K) < 2 at 20 kV
    assert xray.principal_lines(["Fe", "Fe"], 200) == ["Fe_Ka"]


def test_principal_lines_bad_input():
    with pytest.raises(StemsegValueError, match="No usable X-ray line for B"):
        xray.principal_lines(["B"], 200)  # B Ka at 0.183 keV, below 0.2 keV
    with pytest.raises(StemsegValueError, match="beam_energy_kV"):
        xray.principal_lines(["Fe"], None)
    with pytest.raises(StemsegValueError, match="Unknown element"):
        xray.principal_lines(["Fe", "Qq"], 200)
    with pytest.raises(StemsegValueError, match="energy_range_keV"):
        xray.principal_lines(["Fe"], 200, (5.0, 1.0))


# ----------------------------------------------------------------------------- detector


def test_detector_fwhm_matches_preset_and_exspy():
    from exspy._misc.eds.utils import get_FWHM_at_Energy

    for det in (xray.SUPER_X, xray.SINGLE_SDD):
        assert det.fwhm(xray.line_energy("Mn_Ka")) == pytest.approx(det.fwhm_mn_ka_eV * 1e-3)
    e = np.linspace(0.2, 20, 50)
    w = xray.SUPER_X.fwhm(e)
    assert w.shape == e.shape and np.all(np.diff(w) > 0)
    for energy in (0.5, 3.0, 9.7):
        assert xray.SUPER_X.fwhm(energy) == pytest.approx(get_FWHM_at_Energy(130.0, energy))
    assert isinstance(xray.SUPER_X.fwhm(1.0), float)
    assert xray.Detector("fine", fwhm_mn_ka_eV=121.0).fwhm(0.0) == pytest.approx(0.010)


def test_detector_efficiency():
    e = np.linspace(0.0, 40.0, 801)
    for det in (xray.SUPER_X, xray.SINGLE_SDD):
        eff = det.efficiency(e)
        assert eff.shape == e.shape and np.all((eff >= 0) & (eff <= 1))
        assert eff[e < xray.MIN_LINE_KEV].max() == 0
        assert det.efficiency(20.0) < 0.7 * det.efficiency(6.0)  # thin Si sensor
    sdd, sx = xray.SINGLE_SDD.efficiency, xray.SUPER_X.efficiency
    assert sdd(0.5) < 0.75 * sdd(5.0)  # windowed: falls below ~1 keV
    assert sdd(0.28) < sx(0.28) and sdd(0.52) < sx(0.52)  # the window costs light elements
    assert sx(6.4) > 0.95
    assert np.ndim(sx(1.0)) == 0 and float(sx(1.0)) > 0.9


def test_detector_presets_and_validation():
    assert xray.detector("Super-X") is xray.SUPER_X
    assert xray.detector("single_sdd") is xray.SINGLE_SDD
    assert xray.detector(xray.SINGLE_SDD) is xray.SINGLE_SDD
    with pytest.raises(StemsegValueError, match="Unknown detector 'eds9000'.*super-x"):
        xray.detector("eds9000")
    with pytest.raises(StemsegValueError, match="fwhm_mn_ka_eV"):
        xray.Detector("bad", fwhm_mn_ka_eV=-5)
    with pytest.raises(StemsegValueError, match="solid_angle_sr"):
        xray.Detector("bad", solid_angle_sr=20.0)
    with pytest.raises(StemsegValueError, match="Cannot parse material"):
        xray.Detector("bad", window_material="Unobtainium", window_thickness_nm=100)


def test_mass_attenuation():
    mu = xray.mass_attenuation("Si", [1.0, 1.8, 10.0])
    assert mu[0] > mu[1] > mu[2] > 0  # falls with energy between edges
    assert xray.mass_attenuation("Si", 1.9) > 5 * xray.mass_attenuation("Si", 1.8)
    sio2 = xray.mass_attenuation({"Si": 0.4674, "O": 0.5326}, 5.0)
    assert sio2 == pytest.approx(xray.mass_attenuation("SiO2", 5.0), rel=1e-3)


# ----------------------------------------------------------------------------- cross-sections


@pytest.mark.parametrize("key", list(BOTE_SALVAT_CM2))
def test_cross_sections_vs_bote_salvat(key):
    """The default model reproduces Bote et al.'s values (evaluated independently, see the
    module docstring) to 0.1 %; the Bethe option stays within 25 % with the same energy trend
    (200 -> 300 kV within 8 %)."""
    el, shell = key
    ref = BOTE_SALVAT_CM2[key]
    got = [xray.ionization_cross_section(el, shell, e0) for e0 in BEAMS_KV]
    for g, r in zip(got, ref):
        assert g == pytest.approx(r, rel=1e-3)
    bethe = [xray.ionization_cross_section(el, shell, e0, model="bethe") for e0 in BEAMS_KV]
    for g, r in zip(bethe, ref):
        assert g == pytest.approx(r, rel=0.25)
    assert bethe[2] / bethe[1] == pytest.approx(ref[2] / ref[1], rel=0.08)
    assert got[0] > got[1] > got[2] > 0


def test_cross_section_models_differ_where_documented():
    """Bethe / Bote at 200 kV: Si K 1.17, Fe K 1.09, Pt L3 1.00, Au M5 0.93 (module notes)."""
    for (el, shell), ratio in {("Si", "K"): 1.17, ("Fe", "K"): 1.09, ("Pt", "L3"): 1.00,
                               ("Au", "M5"): 0.93}.items():
        got = (xray.ionization_cross_section(el, shell, 200, model="bethe")
               / xray.ionization_cross_section(el, shell, 200))
        assert got == pytest.approx(ratio, abs=0.01), (el, shell, got)
    with pytest.raises(StemsegValueError, match="Unknown cross-section model"):
        xray.ionization_cross_section("Fe", "K", 200, model="powell")


def test_cross_section_threshold_and_shape():
    edge = 7.112  # Fe K, keV (xraylib)
    assert xray.ionization_cross_section("Fe", "K", 7.0) == 0.0
    assert xray.ionization_cross_section("Fe", "K", 1.05 * edge) > 0.0
    # Bethe with c = 0.65 vanishes below U = 1/c ~ 1.5 (documented); above, it is positive
    assert xray.ionization_cross_section("Fe", "K", 1.4 * edge, model="bethe") == 0.0
    assert xray.ionization_cross_section("Fe", "K", 1.6 * edge, model="bethe") > 0.0
    e0 = np.array([8, 10, 15, 20, 25, 30, 50, 100, 200, 300])
    sig = np.array([xray.ionization_cross_section("Fe", "K", e) for e in e0])
    peak = int(np.argmax(sig))
    assert 1.5 < e0[peak] / edge < 5  # rises to a maximum at a few times the edge ...
    assert np.all(np.diff(sig[peak:]) < 0)  # ... then falls slowly
    assert 0.8 < sig[-1] / sig[-2] < 1.0  # 200 -> 300 kV: a slow change
    assert xray.ionization_cross_section("Si", "M5", 200) == 0.0  # empty sub-shell


def test_cross_section_bad_input():
    with pytest.raises(StemsegValueError, match="Unknown shell 'N1'"):
        xray.ionization_cross_section("Fe", "N1", 200)
    with pytest.raises(StemsegValueError, match="Unknown element"):
        xray.ionization_cross_section("Xx", "K", 200)
    with pytest.raises(StemsegValueError, match="positive"):
        xray.ionization_cross_section("Fe", "K", -1)
    with pytest.raises(StemsegValueError, match="200, not 200000"):
        xray.ionization_cross_section("Fe", "K", 200000)


def test_generation_rate():
    g = xray.generation_rate("Fe_Ka", 200)
    sigma = xray.ionization_cross_section("Fe", "K", 200)
    assert 0.2 * sigma < g < 0.4 * sigma  # omega_K(Fe) ~ 0.35 x Ka fraction ~ 0.88
    assert xray.generation_rate("Fe_Kb", 200) / g == pytest.approx(
        xray.line_family("Fe_Ka")["Fe_Kb"][1])
    assert xray.generation_rate("Fe_Ka", 5) == 0.0
    assert xray.generation_rate("Ag_La", 200) > 0 and xray.generation_rate("Au_Ma", 200) > 0
    with pytest.raises(StemsegValueError, match="Unknown X-ray line"):
        xray.generation_rate("Fe_Mz", 200)


# ----------------------------------------------------------------------------- k-factors


@pytest.mark.parametrize("beam", [200, 300])
def test_kfactors_vs_esprit_fept(beam):
    """Pt La / Fe Ka within 15 % of Esprit's 200 kV value (3.50); 300 kV shifts it < 6 %."""
    k = xray.kfactors(["Fe_Ka", "Pt_La"], beam)
    ratio = (k["Pt_La"] / k["Fe_Ka"]) / (ESPRIT_200["Pt_La"] / ESPRIT_200["Fe_Ka"])
    print(f"\n{beam} kV  Pt_La/Fe_Ka vs Esprit: {ratio:.3f}")
    assert ratio == pytest.approx(1.0, abs=0.15)


@pytest.mark.parametrize("beam", [200, 300])
@pytest.mark.parametrize("series", list(VELOX_SERIES))
def test_kfactors_vs_velox(series, beam):
    lines, ref, tol = VELOX_SERIES[series]
    k = xray.kfactors(lines + [ref], beam)
    errors = _ratio_errors(k, VELOX_200, lines, ref)
    print(f"\n{beam} kV {series}: " + " ".join(f"{ln} {r:.3f}" for ln, r in errors.items()))
    for ln, r in errors.items():
        assert r == pytest.approx(1.0, abs=tol), ln


def _velox_main_line(line: str) -> float:
    """Velox's whole-family k converted to the main line: k_main = k_family / f_main, with
    f_main the main line's share of all photons of its family from xraylib's atomic data
    at 200 kV (xray.main_line_fraction).

    Why the whole family and these weights: Velox gives Ka1, Ka2 and Kb1 (and La1, La2 and
    Lb2) one k, so its k has no line fraction in it (a = 1: every photon of the family);
    its Lb1 and Lb3 values are its La1 value times the ratio of Bethe cross-sections at the
    L2 or L1 edge instead of L3 (W: x1.18 and x1.26 in the file, x1.20 and x1.28 from
    Bethe's form), i.e. one family model evaluated at another edge, not per-sub-shell
    intensities (those would differ by x2-3). exspy's family weights are not a physical
    share for every element: W's give La 0.539 against 0.507 from the physics, while Ta's,
    Pt's and Au's sit 4-7 % below theirs; converted with them, W La looked 10 % out of line
    with its neighbours (issue 16), with these it lies on their trend."""
    return VELOX_200[line] / xray.main_line_fraction(line)


# Across series, ratios to Fe Ka, at 200 kV (Bote-Salvat cross-sections, Super-X), measured:
# * Mg Ka 0.84: the light K lines fall smoothly below Velox from Ca (0.96) to C (0.72), with
#   no step at the Al or Si K edges and still 4 % at Ca Ka (3.7 keV) where no window or dead
#   layer absorbs, so not the detector; it is the spread of light-element K fluorescence
#   yields (Krause 1979, as in Elam's tables, is 11-15 % below xraylib's Hubbell et al. 1994
#   values for Mg-Ca relative to Fe; with Krause's yields Mg reads 0.93). PTB's measured
#   omega_K(O) = 0.00688 (Hoenicke et al., Spectrochim. Acta B 124, 94, 2016) matches
#   xraylib's 0.0069 and is 20 % above Krause's, so the yields are not changed.
# * L lines: Cd-Sn and W-Au are 15-22 % above Velox, smoothly from Pd (1.11) to In (1.18)
#   and from Pb (1.12) to W (1.23) and Hf (1.26),
#   while Esprit's Pt La / Fe Ka agrees within 3 %: the two vendors differ by 22 % on that
#   very ratio. Our W and Ta L-shell data agree with PTB's measured Ta yields and
#   Coster-Kronig factors (Wauschkuhn et al., JAAS 38, 197, 2023: w_L3 0.247(12) against
#   xraylib's 0.243). Vacancies handed down from the K shell add only 1-1.5 % to L3.
VELOX_ACROSS_EXCEPTIONS = {"Mg_Ka": 0.20, "Cd_La": 0.20, "In_La": 0.20, "Sn_La": 0.20,
                           "W_La": 0.25, "Pt_La": 0.25, "Au_La": 0.20}


def _across_series_vs_velox() -> dict:
    lines = [ln for ln in VELOX_200 if ln.split("_")[1][0] in "KL"]
    k = xray.kfactors(lines, 200)
    return {ln: (k[ln] / k["Fe_Ka"]) / (_velox_main_line(ln) / _velox_main_line("Fe_Ka"))
            for ln in lines}


def test_kfactors_across_series_vs_velox_and_esprit():
    """Issue criterion: K and L k-factors within 15 % of each reference across series (ratios
    to Fe Ka, Velox converted to main lines), stated exceptions aside; Esprit's Pt La / Fe Ka
    (already main-line, as exspy uses it) within 5 %."""
    ratios = _across_series_vs_velox()
    print("\n" + " ".join(f"{ln} {r:.3f}" for ln, r in ratios.items()))
    for ln, r in ratios.items():
        tol = VELOX_ACROSS_EXCEPTIONS.get(ln, 0.15)
        assert abs(r - 1) <= tol, f"{ln}: ours/Velox = {r:.3f}, beyond {tol:.0%}"
    # the exceptions are real: each is beyond 10 %, so the list does not hide passing lines
    assert all(abs(ratios[ln] - 1) > 0.10 for ln in VELOX_ACROSS_EXCEPTIONS)
    k = xray.kfactors(["Fe_Ka", "Pt_La"], 200)
    esprit = (k["Pt_La"] / k["Fe_Ka"]) / (ESPRIT_200["Pt_La"] / ESPRIT_200["Fe_Ka"])
    assert esprit == pytest.approx(1.0, abs=0.05)


def test_w_la_outlier_was_the_exspy_conversion():
    """Issue 16: W La stood 13-16 % above Pt and Au La against Velox. The cause is exspy's W
    L-family weights (La share 0.539, 6 % above the physics, while the neighbours' are 4-7 %
    below it), not our W generation: with the physical shares the L ratios run smoothly
    with Z in both L groups (Pd-In rising, W-Pb falling) and W lies within 3 % of Pt."""
    phys = _across_series_vs_velox()
    exspy_f = {ln: xray.main_line_fraction(ln, weights="exspy") for ln in VELOX_200
               if ln.split("_")[1][0] in "KL"}
    via_exspy = {ln: r * exspy_f[ln] / xray.main_line_fraction(ln)
                 / (exspy_f["Fe_Ka"] / xray.main_line_fraction("Fe_Ka"))
                 for ln, r in phys.items()}
    assert via_exspy["W_La"] / via_exspy["Pt_La"] > 1.13  # the outlier as it was reported
    assert phys["W_La"] / phys["Pt_La"] == pytest.approx(1.0, abs=0.03)
    assert phys["W_La"] > phys["Pt_La"] > phys["Au_La"] > phys["Pb_La"]
    assert phys["Pd_La"] < phys["Ag_La"] < phys["Cd_La"] < phys["In_La"]
    for ln, share in (("W_La", 0.507), ("Pt_La", 0.539), ("Au_La", 0.542), ("Pb_La", 0.541)):
        assert xray.main_line_fraction(ln) == pytest.approx(share, abs=0.002)
    assert exspy_f["W_La"] / xray.main_line_fraction("W_La") > 1.05
    for ln in ("Pt_La", "Au_La", "Pb_La"):
        assert exspy_f[ln] / xray.main_line_fraction(ln) < 0.98


def test_main_line_fraction_sources_and_bad_input():
    # K: the K-L2,3 share of xraylib's K radiative rates, whatever the beam energy
    assert xray.main_line_fraction("Fe_Ka") == pytest.approx(0.882, abs=0.001)
    assert xray.main_line_fraction("Fe_Ka", beam_energy_kV=80) == pytest.approx(
        xray.main_line_fraction("Fe_Ka"), rel=1e-12)
    # L: sub-shell populations move it by about 1 % between 80 and 300 kV
    w80, w300 = (xray.main_line_fraction("W_La", beam_energy_kV=e) for e in (80, 300))
    assert w80 > w300 and w80 / w300 < 1.015
    assert 0 < xray.main_line_fraction("Pb_Ma") < 1
    assert xray.main_line_fraction("Fe_Ka", weights="exspy") == pytest.approx(0.887, abs=0.001)
    with pytest.raises(StemsegValueError, match="weights"):
        xray.main_line_fraction("Fe_Ka", weights="velox")
    with pytest.raises(StemsegValueError, match="Ka, La or Ma"):
        xray.main_line_fraction("Fe_Kb")
    with pytest.raises(StemsegValueError, match="beam_energy_kV"):
        xray.main_line_fraction("W_La", beam_energy_kV=None)


def test_bote_salvat_fixes_the_cross_series_excess():
    """The Bethe cross-sections of earlier versions put Mo Ka 23 %, Pb La 17 % and W La 36 %
    above Velox and S Ka 15 % below; Bote-Salvat brings each closer (measured, not assumed)."""
    ours = _across_series_vs_velox()
    saved = xray._sigma
    try:
        xray._physics_generation.cache_clear()
        xray._sigma = lambda z, shell, e0, model="bethe": xray._sigma_bethe(z, shell, e0)
        bethe = _across_series_vs_velox()
    finally:
        xray._sigma = saved
        xray._physics_generation.cache_clear()
    for ln in ("Mo_Ka", "Pb_La", "W_La", "S_Ka", "Si_Ka", "Ge_Ka"):
        assert abs(math.log(ours[ln])) < abs(math.log(bethe[ln])), (ln, ours[ln], bethe[ln])
    assert bethe["Mo_Ka"] > 1.18 and ours["Mo_Ka"] < 1.12


def test_kfactor_sigma_covers_velox_across_series():
    """Across series (every line against Fe Ka, as the sulfides are quantified: Ag/Cd L and
    S K against Fe/Cu K), our k-factors and Velox's (converted to main lines) agree within
    twice the stated relative sigma of the two lines -- the budget's k-factor term is not
    smaller than the disagreement between references."""
    lines = list(VELOX_200)
    k = xray.kfactors(lines, 200)
    out = []
    for ln in lines:
        ratio = (k[ln] / k["Fe_Ka"]) / (_velox_main_line(ln) / _velox_main_line("Fe_Ka"))
        allowed = 2 * math.hypot(xray.kfactor_relative_sigma(ln),
                                 xray.kfactor_relative_sigma("Fe_Ka"))
        out.append((ln, ratio, allowed))
    print("\n" + " ".join(f"{ln} {r:.2f}" for ln, r, _ in out))
    for ln, r, allowed in out:
        assert abs(math.log(r)) < allowed, f"{ln}: ours/Velox {r:.2f} beyond 2 sigma {allowed:.2f}"


def test_kfactor_relative_sigma():
    assert xray.kfactor_relative_sigma("Fe_Ka") == 0.05
    assert xray.kfactor_relative_sigma("S_Ka") == 0.10
    assert xray.kfactor_relative_sigma("Mo_Ka") == 0.10
    assert xray.kfactor_relative_sigma("Ag_La") == 0.08
    assert xray.kfactor_relative_sigma("Pb_La") == 0.12
    assert xray.kfactor_relative_sigma("Pb_Ma") == 0.50
    with pytest.raises(StemsegValueError):
        xray.kfactor_relative_sigma("Fe_Qz")


def test_kfactor_change_200_to_300kV_follows_bote_salvat():
    """k ratios of K lines move with beam energy as Bote et al.'s cross-sections say (3 %)."""
    k200 = xray.kfactors(["Fe_Ka", "Cu_Ka"], 200)
    k300 = xray.kfactors(["Fe_Ka", "Cu_Ka"], 300)
    bs = BOTE_SALVAT_CM2
    for el in ("Fe", "Cu"):
        expected = (bs[(el, "K")][1] / bs[(el, "K")][2]) / (bs[("Si", "K")][1] / bs[("Si", "K")][2])
        got = k300[f"{el}_Ka"] / k200[f"{el}_Ka"]  # both relative to Si Ka
        assert got == pytest.approx(expected, rel=0.03)
        assert abs(got - 1) < 0.06


def test_kfactors_reference_order_and_detector():
    k = xray.kfactors(["Pt_La", "Si_Ka", "Fe_Ka"], 200)
    assert list(k) == ["Pt_La", "Si_Ka", "Fe_Ka"] and k["Si_Ka"] == pytest.approx(1.0)
    kf = xray.kfactors(["Pt_La", "Fe_Ka"], 200, reference="Fe_Ka")
    assert kf["Fe_Ka"] == pytest.approx(1.0)
    assert kf["Pt_La"] == pytest.approx(k["Pt_La"] / k["Fe_Ka"])
    # a windowed detector sees less O Ka: its k-factor (relative to Fe) is larger
    o_sx = xray.kfactors(["O_Ka"], 200, "super-x", reference="Fe_Ka")["O_Ka"]
    o_sdd = xray.kfactors(["O_Ka"], 200, xray.SINGLE_SDD, reference="Fe_Ka")["O_Ka"]
    assert o_sdd > 1.3 * o_sx


def test_kfactors_bad_input():
    with pytest.raises(StemsegValueError, match="beam_energy_kV is None.*k-factors"):
        xray.kfactors(["Fe_Ka"], None)
    with pytest.raises(StemsegValueError, match="Unknown element"):
        xray.kfactors(["Xx_Ka"], 200)
    with pytest.raises(StemsegValueError, match="No theoretical k-factor for Au_Ka.*edge"):
        xray.kfactors(["Au_Ka", "Fe_Ka"], 60)
    with pytest.raises(StemsegValueError, match="lines is empty"):
        xray.kfactors([], 200)
    with pytest.raises(StemsegValueError, match="Unknown detector"):
        xray.kfactors(["Fe_Ka"], 200, detector="nope")
    assert issubclass(StemsegValueError, StemsegError) and issubclass(StemsegValueError, ValueError)


def test_check_kfactors():
    user = {"Fe_Ka": 1.35, "Pt_La": 5.0, "Cu_Ka": 1.6}
    assert xray.check_kfactors(user, ["Pt_La", "Fe_Ka"]) == {"Pt_La": 5.0, "Fe_Ka": 1.35}
    with pytest.raises(StemsegValueError, match=r"lack the line\(s\) \['S_Ka', 'Zn_Ka'\]"):
        xray.check_kfactors(user, ["Fe_Ka", "S_Ka", "Zn_Ka"])
    with pytest.raises(StemsegValueError, match="never mixed"):
        xray.check_kfactors({"Fe_Ka": 1.0}, ["Fe_Ka", "S_Ka"])
    with pytest.raises(StemsegValueError, match="must be > 0"):
        xray.check_kfactors({"Fe_Ka": 0.0}, ["Fe_Ka"])
    with pytest.raises(StemsegValueError, match="must be a dict"):
        xray.check_kfactors([1.35], ["Fe_Ka"])


# ----------------------------------------------------------------------------- spectra

SULFIDE = {"Mg": 10, "Si": 15, "S": 25, "Fe": 20, "Cu": 10, "Ag": 8, "Cd": 7, "Pt": 5}


def test_line_areas_recover_composition_through_exspy():
    """Main-line areas + these k-factors + exspy's Cliff-Lorimer -> the input, < 0.1 at.%."""
    lines = xray.principal_lines(SULFIDE, 200)
    areas = xray.line_areas(SULFIDE, 200)
    k = xray.kfactors(lines, 200)
    dose = 1e9 * 50  # electrons x nm, so that exspy's 0.1-count threshold is irrelevant
    got = _exspy_cliff_lorimer({ln: areas[ln] * dose for ln in lines}, k)
    total = sum(SULFIDE.values())
    for el, x in SULFIDE.items():
        assert got[el] == pytest.approx(100 * x / total, abs=0.1), el


def test_spectrum_windows_recover_composition():
    """Channel sums of the spectrum around well-separated Ka lines + CL -> input < 0.1 at.%."""
    comp = {"S": 30, "Ca": 8, "Ti": 12, "Fe": 35, "Zn": 15}  # no Kb inside another window
    x = np.arange(2048) * 0.01 + 0.005
    spec = xray.characteristic_spectrum(comp, x, 300, detector=xray.SINGLE_SDD)
    lines = [f"{el}_Ka" for el in comp]
    intensities = {}
    for ln in lines:
        e = xray.line_energy(ln)
        half = 2 * xray.SINGLE_SDD.fwhm(e) / 2.3548  # +-2 sigma: the same 95 % of each line
        intensities[ln] = spec[np.abs(x - e) <= half].sum() * 1e11
    k = xray.kfactors(lines, 300, xray.SINGLE_SDD)
    got = _exspy_cliff_lorimer(intensities, k)
    total = sum(comp.values())
    for el, amount in comp.items():
        assert got[el] == pytest.approx(100 * amount / total, abs=0.1), el


def test_characteristic_spectrum_properties():
    x = np.arange(4096) * 0.01 - 0.2
    areas = xray.line_areas(SULFIDE, 200)
    spec = xray.characteristic_spectrum(SULFIDE, x, 200)
    assert spec.shape == x.shape and np.all(spec >= 0)
    assert spec.sum() == pytest.approx(sum(areas.values()), rel=1e-4)  # nothing lost
    assert {"Fe_Ka", "Fe_Kb", "Fe_La", "Ag_La", "Ag_Lb1", "Pt_Ma", "Pt_La"} <= set(areas)
    assert spec[np.argmin(np.abs(x - 6.404))] > 50 * spec[np.argmin(np.abs(x - 5.5))]
    # linear in density, and in the solid angle
    dense = xray.characteristic_spectrum(SULFIDE, x, 200, density_g_cm3=10.0)
    assert dense == pytest.approx(2 * spec)
    # only the families asked for
    only = xray.line_areas(SULFIDE, 200, lines=["Fe_Ka"])
    assert set(only) == {"Fe_Ka", "Fe_Kb"} and only["Fe_Ka"] == pytest.approx(areas["Fe_Ka"])
    # per electron per nm: Fe Ka of a 20 at.% film ~1e-9-1e-8 counts per electron and nm
    assert 1e-10 < areas["Fe_Ka"] < 1e-7


def test_characteristic_spectrum_bad_input():
    x = np.arange(1024) * 0.01
    with pytest.raises(StemsegValueError, match="Pt_La at 9.442 keV is outside the energy axis"):
        xray.characteristic_spectrum({"Pt": 1}, x[:500], 200, lines=["Pt_La"])
    with pytest.raises(StemsegValueError, match="Cu, which is not in the composition"):
        xray.characteristic_spectrum({"Fe": 1}, x, 200, lines=["Cu_Ka"])
    with pytest.raises(StemsegValueError, match="Unknown element 'Xx'"):
        xray.characteristic_spectrum({"Xx": 1}, x, 200)
    with pytest.raises(StemsegValueError, match=r"composition\['Fe'\]"):
        xray.characteristic_spectrum({"Fe": -1}, x, 200)
    with pytest.raises(StemsegValueError, match="energy_axis_keV must be a 1-D"):
        xray.characteristic_spectrum({"Fe": 1}, np.zeros((4, 4)), 200)
    with pytest.raises(StemsegValueError, match="increase strictly"):
        xray.characteristic_spectrum({"Fe": 1}, x[::-1], 200)
    with pytest.raises(StemsegValueError, match="beam_energy_kV is None"):
        xray.characteristic_spectrum({"Fe": 1}, x, None)
    with pytest.raises(StemsegValueError, match="cannot be excited at 5 kV"):
        xray.characteristic_spectrum({"Fe": 1}, x, 5, lines=["Fe_Ka"])
    with pytest.raises(StemsegValueError, match="density_g_cm3"):
        xray.characteristic_spectrum({"Fe": 1}, x, 200, density_g_cm3=0)


def test_bremsstrahlung_spectrum():
    x = np.arange(4096) * 0.01 - 0.2
    b = xray.bremsstrahlung_spectrum({"Fe": 1}, x, 200)
    assert b.shape == x.shape and np.all(b >= 0)
    assert np.all(b[x <= 0] == 0)
    i5, i10 = np.argmin(np.abs(x - 5.0)), np.argmin(np.abs(x - 10.0))
    eff = xray.SUPER_X.efficiency
    assert b[i5] / b[i10] == pytest.approx(2 * eff(5.0) / eff(10.0), rel=0.01)  # ~ 1 / E
    heavy = xray.bremsstrahlung_spectrum({"Pt": 1}, x, 200, density_g_cm3=5.0)
    # per nm: sum N Z^2, N ~ 1/A at equal density
    expected = (78**2 / 195.08) / (26**2 / 55.845)
    assert heavy[i5] / b[i5] == pytest.approx(expected, rel=1e-3)
    low = xray.bremsstrahlung_spectrum({"Fe": 1}, x, 20)
    assert np.all(low[x >= 20] == 0) and low[i5] > 0
    # sanity of the absolute level: peak channel / continuum channel of pure Fe at Fe Ka
    spec = xray.characteristic_spectrum({"Fe": 1}, x, 200)
    assert 100 < spec[np.argmin(np.abs(x - 6.404))] / b[np.argmin(np.abs(x - 6.404))] < 3000


def test_zero_peak():
    x = np.arange(2048) * 0.01 - 0.5
    z = xray.zero_peak(x)
    assert z.sum() == pytest.approx(1.0, abs=1e-9)
    assert x[np.argmax(z)] == pytest.approx(0.0, abs=0.006)
    mean = (z * x).sum()
    sd = math.sqrt((z * (x - mean) ** 2).sum())
    fwhm = xray.SUPER_X.fwhm(0.0)
    assert 0.035 < fwhm < 0.06  # electronic noise of a 130 eV detector
    assert sd == pytest.approx(math.sqrt((fwhm / 2.3548) ** 2 + 0.01**2 / 12), rel=0.01)
    assert xray.zero_peak(np.arange(100) * 0.01 + 1.0).sum() < 1e-12  # axis away from 0


# ----------------------------------------------------------------------------- xraylib lines


def test_transition_lines_resolve_doublets_and_keep_main_line_totals():
    """Every transition at its own energy; the main lines' transitions add up to
    generation_rate (so kfactors apply to spectra of either line model)."""
    mo = {name: (e, g) for name, e, g in xray.transition_lines("Mo", 200)}
    assert mo["KL3"][0] == pytest.approx(17.479, abs=2e-3)
    assert mo["KL2"][0] == pytest.approx(17.374, abs=2e-3)  # Ka2, 105 eV below Ka1
    assert mo["KL2"][1] / mo["KL3"][1] == pytest.approx(0.52, abs=0.03)
    for line, parts in {"Mo_Ka": ("KL2", "KL3"), "Fe_Ka": ("KL2", "KL3"),
                        "Pb_La": ("L3M4", "L3M5"), "Pb_Ma": ("M5N6", "M5N7")}.items():
        el = line.split("_")[0]
        gen = {name: g for name, _, g in xray.transition_lines(el, 200)}
        assert sum(gen[p] for p in parts) == pytest.approx(xray.generation_rate(line, 200),
                                                           rel=1e-9), line


def test_transition_lines_differ_from_exspy_where_the_issue_found():
    """Pb Mb / Ma: 0.52 from xraylib's rates against 0.64 in exspy's weights (issue 16)."""
    pb = {name: g for name, _, g in xray.transition_lines("Pb", 200)}
    ratio = pb["M4N6"] / (pb["M5N6"] + pb["M5N7"])
    assert ratio == pytest.approx(0.52, abs=0.03)
    exspy_ratio = xray.line_family("Pb_Ma")["Pb_Mb"][1]
    assert exspy_ratio > ratio + 0.08


def test_transition_lines_cross_section_option_and_bad_input():
    bote = {n: g for n, _, g in xray.transition_lines("Fe", 200)}
    bethe = {n: g for n, _, g in xray.transition_lines("Fe", 200, cross_section="bethe")}
    assert bethe["KL3"] / bote["KL3"] == pytest.approx(1.09, abs=0.01)
    with pytest.raises(StemsegValueError, match="Unknown cross-section model"):
        xray.transition_lines("Fe", 200, cross_section="x")
    with pytest.raises(StemsegValueError, match="Unknown element"):
        xray.transition_lines("Xx", 200)


def test_transition_spectrum_has_the_line_areas_of_the_physics():
    """Total counts of each main line equal those of characteristic_spectrum; the shape
    differs (Ka2 on the low side of Mo Ka)."""
    e = np.arange(0.1, 20.0, 0.005)
    comp = {"Mo": 33.3, "S": 66.7}
    new = xray.transition_spectrum(comp, e, 200)
    old = xray.characteristic_spectrum(comp, e, 200)
    ka = (e > 16.8) & (e < 18.2)
    assert new[ka].sum() == pytest.approx(old[ka].sum(), rel=0.01)
    centroid_new = (e[ka] * new[ka]).sum() / new[ka].sum()
    centroid_old = (e[ka] * old[ka]).sum() / old[ka].sum()
    assert centroid_old - centroid_new == pytest.approx(0.035, abs=0.01)  # Ka2's pull
    with pytest.raises(StemsegValueError):
        xray.transition_spectrum({"Mo": 1.0}, e, 200, cross_section="x")


# ----------------------------------------------------------------------------- k-factor files


def _velox_export(path, table):
    """A k-factor file in Velox's export layout (header, units row, Ka1/Ka2/Kb1 rows)."""
    rows = ["Line identifier,Energy level,Intensity,Chi-Rho-Tau absorption,K-factor",
            "-,eV,counts,-,-"]
    for line, k in table.items():
        el, name = line.split("_")
        for sub in {"Ka": ("Ka1", "Ka2", "Kb1"), "La": ("La1", "La2", "Lb1"),
                    "Ma": ("Ma1", "Mb")}[name]:
            energy = xray.line_energy(line) * 1e3
            rows.append(f"{el}-{sub},{energy:.5e},0.00000e+00,0.00000e+00,{k:.6e}")
    path.write_text("\n".join(rows) + "\n")
    return path


def test_read_kfactors_formats_and_conventions(tmp_path):
    """JSON, CSV and a Velox export load; family values become main-line values by the
    conversion the across-series checks use."""
    plain = tmp_path / "k.json"
    plain.write_text('{"Fe_Ka": 1.35, "S_Ka": 1.0}')
    assert xray.read_kfactors(plain) == {"Fe_Ka": 1.35, "S_Ka": 1.0}
    declared = tmp_path / "fam.json"
    declared.write_text('{"convention": "family", "kfactors": {"Fe_Ka": 1.0, "Pb_La": 2.0}}')
    got = xray.read_kfactors(declared)
    assert got["Pb_La"] == pytest.approx(2.0 / xray.main_line_fraction("Pb_La"))
    assert xray.read_kfactors(declared, convention="line") == {"Fe_Ka": 1.0, "Pb_La": 2.0}
    csv_file = tmp_path / "k.csv"
    csv_file.write_text("line,k\nconvention,family\nFe_Ka,1.0\nCu_Ka,1.2\n")
    assert xray.read_kfactors(csv_file)["Cu_Ka"] == pytest.approx(
        1.2 / xray.main_line_fraction("Cu_Ka"))
    lines = ["Fe_Ka", "S_Ka", "Ag_La", "Pt_La", "Pb_Ma"]
    velox = xray.read_kfactors(_velox_export(tmp_path / "velox.csv",
                                             {ln: VELOX_200[ln] for ln in lines}))
    assert set(velox) == set(lines)
    for ln in lines:
        assert velox[ln] == pytest.approx(_velox_main_line(ln), rel=1e-6)
    # loaded vendor values against the project's own, across series: as checked above
    ours = xray.kfactors(lines, 200)
    for ln in ("S_Ka", "Ag_La", "Pt_La"):
        assert (ours[ln] / ours["Fe_Ka"]) / (velox[ln] / velox["Fe_Ka"]) == pytest.approx(
            1.0, abs=VELOX_ACROSS_EXCEPTIONS.get(ln, 0.15))


@pytest.mark.parametrize("content, suffix, match", [
    ("{bad", ".json", "not JSON"),
    ('{"Fe_Ka": "x"}', ".json", "not a number"),
    ("[1, 2]", ".json", "not an object"),
    ("line,k\n", ".csv", "no k-factor"),
    ('{"convention": "shell", "kfactors": {"Fe_Ka": 1}}', ".json", "convention"),
    ('{"Fe_Qq": 1.0}', ".json", "Unknown X-ray line"),
])
def test_read_kfactors_bad_files(tmp_path, content, suffix, match):
    f = tmp_path / f"k{suffix}"
    f.write_text(content)
    with pytest.raises(StemsegValueError, match=match):
        xray.read_kfactors(f)
    with pytest.raises(StemsegValueError, match="No k-factor file"):
        xray.read_kfactors(tmp_path / "missing.json")
