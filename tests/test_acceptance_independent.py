"""Issue 16 acceptance: quantification checked on a map *not* made with the analysis' physics.

``simulate.phantom("steel-mos2-pbs")``: a 10 nm film at 200 kV of steel (Fe70 Cr20 Ni10),
MoS2 grains and eight PbS particles of 5-7 px radius (~6 % of the pixels), S Ka / Mo La /
Pb Ma within 55 eV, Mo Ka and Pb La doublets. Its spectra are drawn with every xraylib
transition at its own energy (``xray.transition_spectrum``); with ``cross_section="bethe"``
the line intensities also follow another ionisation model than the k-factors (Bethe against
Bote-Salvat: up to ~15 % apart), as a real specimen's would differ from theory.

Each claim has a number that could fail; the values measured when the checks were written
(x86_64, 2 cores, seed 0; seeds 1-2 in the comments) are given. The issue's starting point,
for comparison: PbS read Pb 30.5 / Fe 17.8 at. % (truth Pb 50, S 50) with sigmas of 0.2.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from stemseg import quant, simulate, workflows

pytestmark = pytest.mark.slow

SEED = 0


def _phase_of_cluster(labels_full: np.ndarray, truth: np.ndarray, n_phases: int) -> dict:
    """cluster -> index of the phase holding most of its pixels."""
    return {int(c): int(np.bincount(truth[labels_full == c], minlength=n_phases).argmax())
            for c in np.unique(labels_full) if c >= 0}


def _recalls(labels_full: np.ndarray, truth: np.ndarray, n_phases: int) -> np.ndarray:
    """Share of each phase's pixels in clusters whose majority is that phase."""
    owner = _phase_of_cluster(labels_full, truth, n_phases)
    out = []
    for k in range(n_phases):
        mine = [c for c, p in owner.items() if p == k]
        out.append(float(np.isin(labels_full[truth == k], mine).mean()) if mine else 0.0)
    return np.array(out)


def _errors(ph, seg, main_only: bool = False) -> list[tuple[str, str, float, float]]:
    """(phase, element, at_pct - truth, sigma_total) for every quantified cluster, or only
    for each phase's main cluster (the one holding most of its pixels)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        df = quant.quantify(seg)
    owner = _phase_of_cluster(seg.labels_full, ph.labels, len(ph.phases))
    if main_only:
        lab = seg.labels_full
        mains = {int(np.bincount(lab[(ph.labels == k) & (lab >= 0)]).argmax())
                 for k in range(len(ph.phases))}
        df = df[df.cluster.isin(mains)]
    rows = []
    for r in df.itertuples():
        phase = ph.phases[owner[int(r.cluster)]]
        rows.append((phase.name, r.element, r.at_pct - phase.composition.get(r.element, 0.0),
                     r.sigma_total))
    return rows


def _segment(ph, flow: str):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if flow == "gmm":
            return workflows.gmm(ph.eds, n_clusters=3, random_state=SEED)
        return workflows.hdbscan(ph.eds, random_state=SEED)


@pytest.fixture(scope="module")
def map500():
    return simulate.phantom("steel-mos2-pbs", random_state=SEED)


@pytest.mark.parametrize("flow", ["gmm", "hdbscan"])
def test_every_element_of_every_phase_within_1p5_at_pct(map500, flow):
    """~500 counts/px, both workflows at their defaults, the project's own k-factors: every
    element of every phase (all cover >= 3 % of the pixels; each phase's main cluster)
    within 1.5 at. % of truth.
    Measured worst at seeds 0 / 1 / 2: GMM 0.69 / 0.35 / 0.52, HDBSCAN 0.72 / 0.03 / 0.45
    (S or Fe in PbS; HDBSCAN's extra clusters of 1 original pixel at seeds 1-2 aside).
    Measured again when predicted noise took its block's label (HDBSCAN; 0 / 6 / 0 pixels
    did): 0.72 / 0.12 (S in MoS2) / 0.45, the same as without it; at seed 1 the extra PbS
    cluster of 5 -> 7 original pixels read Pb -6.3 at. % (sigma_total 7.7) instead of -2.8.
    Before: 3.3 at. % Fe in PbS at seed 1 from 22 isolated steel pixels predicted as PbS
    (now left out of the spectra); the exspy line model gave Pb -7.0 / S +5.4; the paper's
    soft binned means 19.5."""
    seg = _segment(map500, flow)
    share = np.bincount(map500.labels.ravel()) / map500.labels.size
    assert share.min() >= 0.03
    assert (_recalls(seg.labels_full, map500.labels, 3) > 0.9).all()
    rows = _errors(map500, seg, main_only=True)
    worst = max(rows, key=lambda r: abs(r[2]))
    print(f"\n{flow}: worst {worst[0]} {worst[1]} {worst[2]:+.2f} at. %")
    assert abs(worst[2]) <= 1.5, f"{flow}: {worst[0]} {worst[1]} off by {worst[2]:+.2f} at. %"


def test_sigma_total_is_honest_when_the_physics_differs():
    """Line intensities from Bethe cross-sections, k-factors from Bote-Salvat (up to ~15 %
    apart): truth within 2 sigma_total for >= 95 % of (phase, element) pairs (pooled over
    seeds 0 and 1: 36 pairs, as 2 sigma leaves ~1 in 20 outside by chance), and sigma_total
    not inflated (rms sigma_total <= 3 x rms error). Measured: 35 of 36 (the miss: Ni 0.10
    at. % in PbS against 2 sigma = 0.08), ratio 1.12-1.20; worst error Mo -3.8 at. % in MoS2
    with sigma_total 3.0, carried by the k-factor term."""
    err, sig = [], []
    for seed in (0, 1):
        ph = simulate.phantom("steel-mos2-pbs", random_state=seed, cross_section="bethe")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            seg = workflows.gmm(ph.eds, n_clusters=3, random_state=seed)
        rows = _errors(ph, seg)
        err += [r[2] for r in rows]
        sig += [r[3] for r in rows]
    err, sig = np.array(err), np.array(sig)
    covered = float(np.mean(np.abs(err) <= 2 * sig))
    ratio = float(np.sqrt(np.mean(sig**2)) / np.sqrt(np.mean(err**2)))
    print(f"\ncovered {covered:.3f} of {err.size}, rms sigma / rms error {ratio:.2f}")
    assert covered >= 0.95
    assert ratio <= 3.0
    assert np.abs(err).max() > 1.0  # the physics really differs: a check that can fail


@pytest.mark.parametrize("flow", ["gmm", "hdbscan"])
def test_low_dose_finds_every_phase(flow):
    """~50 counts/px, both workflows at their defaults keep every phase (recall >= 0.9).
    Measured recalls (steel / MoS2 / PbS) over seeds 0-9, phantom seed = random_state:
    GMM steel 0.991-0.995, MoS2 0.954-0.982, PbS 0.912-0.969 (its cluster also collects
    isolated pixels -- mixing flags raised); HDBSCAN with 4 energy channels per UMAP feature
    (the default) steel and MoS2 0.999-1.000, PbS 0.963-0.983 (every seed >= 0.9; seed 0:
    0.968, seed 8: 0.963). Before an original pixel predicted as noise took its binned
    block's label, HDBSCAN's PbS recall was 0.957-0.972 at nine seeds and 0.893 at seed 8,
    where 72 PbS pixels were noise in ``labels_full`` although their blocks were in the PbS
    cluster (see the module notes of stemseg.workflows). A sweep over the ten seeds takes
    ~70 s on 2 cores, so it is not a test.
    The paper's recipe (energy_bin=1) merged PbS into MoS2 at every seed tried (recall
    <= 0.04): the default checked here is the fix, so the old recipe is checked to fail."""
    ph = simulate.phantom("steel-mos2-pbs", random_state=SEED, counts_per_pixel=50)
    seg = _segment(ph, flow)
    recall = _recalls(seg.labels_full, ph.labels, 3)
    print(f"\n{flow}: recalls {np.round(recall, 3)}")
    assert (recall >= 0.9).all()
    if flow == "hdbscan":
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            paper = workflows.hdbscan(ph.eds, random_state=SEED, energy_bin=1)
        assert _recalls(paper.labels_full, ph.labels, 3)[2] < 0.5
