"""Property-based tests (hypothesis) of quantification and configurational entropy."""

from __future__ import annotations

import math
import warnings

import exspy
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stemseg import quant, xray

CATIONS = ("Mn", "Fe", "Cu", "Ag", "Zn", "Cd")
ENERGY = np.arange(2048) * 0.01 + 0.005  # keV, channel centres
BEAM_KV = 200.0

fractions = st.lists(st.floats(0.5, 30.0), min_size=len(CATIONS), max_size=len(CATIONS))


def _composition(values, sulfur=50.0):
    total = sum(values)
    comp = {e: (100 - sulfur) * v / total for e, v in zip(CATIONS, values)}
    comp["S"] = sulfur
    return comp


def _spectrum(expected: np.ndarray):
    s = exspy.signals.EDSTEMSpectrum(expected)
    axis = s.axes_manager.signal_axes[0]
    axis.scale, axis.offset, axis.units, axis.name = 0.01, 0.005, "keV", "Energy"
    s.set_microscope_parameters(beam_energy=BEAM_KV, energy_resolution_MnKa=130.0)
    s.add_elements(list(CATIONS) + ["S"])
    return s


def _expected_counts(comp, total=2e5):
    lam = xray.characteristic_spectrum(comp, ENERGY, BEAM_KV)
    lam = lam + 0.3 * xray.bremsstrahlung_spectrum(comp, ENERGY, BEAM_KV) * lam.sum() / max(
        xray.bremsstrahlung_spectrum(comp, ENERGY, BEAM_KV).sum(), 1e-300)
    return lam * total / lam.sum()


# --------------------------------------------------------------------------- entropy


@given(fractions, st.floats(20.0, 70.0))
def test_entropy_between_zero_and_maximum(values, sulfur):
    comp = _composition(values, sulfur)
    value, sigma = quant.configurational_entropy(comp)
    x_m = (100 - sulfur) / 100
    assert -1e-12 <= value <= quant.maximum_entropy(len(CATIONS), x_m) + 1e-12
    assert sigma == 0.0


@given(fractions, st.permutations(range(len(CATIONS) + 1)), st.floats(0.01, 100.0))
def test_entropy_invariant_to_order_and_units(values, order, factor):
    comp = _composition(values)
    items = list(comp.items())
    shuffled = {items[i][0]: items[i][1] * factor for i in order}
    assert quant.configurational_entropy(shuffled)[0] == pytest.approx(
        quant.configurational_entropy(comp)[0], abs=1e-12)


@given(st.integers(1, 12), st.floats(0.05, 0.95))
def test_equimolar_cations_reach_the_maximum(n, cation_fraction):
    # any element symbols (only the anion list matters); not made-up ones, which are refused
    names = ["Fe", "Cu", "Zn", "Mn", "Ag", "Cd", "In", "Co", "Ni", "Sn", "Pb", "Ga"][:n]
    comp = {e: 100 * cation_fraction / n for e in names} | {"S": 100 * (1 - cation_fraction)}
    value, _ = quant.configurational_entropy(comp)
    assert value == pytest.approx(cation_fraction * math.log(n), abs=1e-12)


# --------------------------------------------------------------------------- Cliff-Lorimer


@pytest.fixture(scope="module")
def warm_model():
    """The first model fit builds exspy components (~1 s); do it once."""
    comp = _composition([1.0] * len(CATIONS))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        quant.quantify(_spectrum(_expected_counts(comp)), method="model")


@settings(max_examples=5, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(fractions, st.integers(0, 2**31 - 1))
def test_quantified_composition_sums_to_100(warm_model, values, seed):
    comp = _composition(values)
    counts = np.random.default_rng(seed).poisson(_expected_counts(comp)).astype(float)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        table = quant.quantify(_spectrum(counts), method="model")
    assert table.at_pct.sum() == pytest.approx(100.0, abs=1e-6)
    assert (table.at_pct >= 0).all() and (table.sigma > 0).all()


@settings(max_examples=6, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(fractions, st.floats(0.1, 50.0), st.sampled_from(["model", "windows"]))
def test_invariant_to_a_common_scaling_of_intensities(warm_model, values, factor, method):
    comp = _composition(values)
    expected = _expected_counts(comp)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        a = quant.quantify(_spectrum(expected), method=method)
        b = quant.quantify(_spectrum(expected * factor), method=method)
    np.testing.assert_allclose(a.at_pct, b.at_pct, atol=1e-6)


@settings(max_examples=5, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(fractions, st.sampled_from(["model", "windows"]))
def test_poisson_sigmas_shrink_as_counts_grow(warm_model, values, method):
    comp = _composition(values)
    expected = _expected_counts(comp)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        low = quant.quantify(_spectrum(expected), method=method)
        high = quant.quantify(_spectrum(expected * 16), method=method)
    # sigma ~ 1/sqrt(counts): 16x the counts gives a quarter of the sigma
    np.testing.assert_allclose(high.sigma / low.sigma, 0.25, rtol=0.05)
