"""The bad-input matrix (issue 10): every public entry, fed what users really feed it.

One table per outcome:

* ``RAISES`` -- the call raises a :class:`stemseg.StemsegError` subclass whose message
  names the parameter or file *and* the fix (checked with ``match=``);
* ``RESULTS`` -- the call succeeds with a documented, sensible result (checked by a
  function that could fail);
* ``CLI`` -- ``stemseg ...`` exits with status 2 and a one-line ``stemseg: error:`` (or
  argparse usage) message naming the option and the fix, and leaves no output behind;
* ``SLIDERS`` -- every slider of the explorers in :mod:`stemseg.widgets` set to its
  minimum and its maximum: no exception escapes, and the explorer shows a result or a
  clear message.

Cases that expose a bug in a module being edited elsewhere are marked
``xfail(strict=True)`` with the fix needed in ``reason``; they turn into failures (XPASS)
the moment the fix lands, so the mark must then be removed.

All data are tiny (an 8 x 8 synthetic cube, 32 x 32 phantoms, the bundled 16 x 16 Velox
and 64 x 64 Bruker files) and built once per module.
"""

from __future__ import annotations

import functools
import re
import shutil
import warnings
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from _synth import synthetic_cube
from stemseg import cli, cluster, data, io, multimodal, preprocess, quant, reduce, widgets
from stemseg import analysis, simulate, workflows, xray
from stemseg.errors import (
    StemsegError,
    StemsegFileFormatError,
    StemsegFileNotFoundError,
    StemsegValueError,
)
from stemseg.io import StemsegLoadWarning

warnings.filterwarnings("ignore", category=DeprecationWarning)

BCF = data.example("bruker_tem_CuOPdTi_64x64")
EMD = data.example("velox_si_16x16_CCaOCu")


# ---------------------------------------------------------------------------- tiny data
# (cached: every case that needs them shares one copy; cases copy before changing it)

@functools.lru_cache(maxsize=None)
def _cube():
    """8 x 8 pixels, 128 channels (-0.2 to 4.9 keV), four phases, ~150 counts/pixel."""
    s, _ = synthetic_cube(shape=(8, 8), n_channels=128)
    return s


def cube(**changes):
    s = _cube().deepcopy()
    for key, value in changes.items():
        if key == "fill":
            s.change_dtype("float64")
            s.data[0, 0, 5] = value
        elif key == "zero":
            s.data[:] = 0
        elif key == "identical":
            s.data[:] = s.data[3, 3]
        elif key == "uncalibrated_energy":
            ax = s.axes_manager.signal_axes[0]
            ax.units, ax.scale, ax.offset = "<undefined>", 1.0, 0.0
        elif key == "uncalibrated_nav":
            for ax in s.axes_manager.navigation_axes:
                ax.units, ax.scale = "<undefined>", 1.0
    return s


@functools.lru_cache(maxsize=None)
def one_pixel():
    s, _ = synthetic_cube(shape=(1, 1), n_channels=128)
    return s


@functools.lru_cache(maxsize=None)
def sulfide():
    return simulate.phantom("sulfide-6cation", shape=(32, 32), random_state=0)


@functools.lru_cache(maxsize=None)
def spectrum():
    """The summed spectrum of the 6-cation phantom (lines, 200 kV beam)."""
    return sulfide().eds.sum()


def spectrum_copy(**changes):
    s = spectrum().deepcopy()
    if "scale" in changes:
        s.data = s.data * changes["scale"]
    if "offset" in changes:
        s.data = s.data + changes["offset"]
    if changes.get("no_beam"):
        del s.metadata.Acquisition_instrument.TEM.beam_energy
    if changes.get("uncalibrated"):
        ax = s.axes_manager.signal_axes[0]
        ax.units, ax.scale, ax.offset = "<undefined>", 1.0, 0.0
    return s


@functools.lru_cache(maxsize=None)
def lfo():
    return simulate.phantom("lfo-sto", shape=(64, 64), random_state=0)


def lfo_with(haadf="same", zero_eds=False, uncalibrated=False):
    ph = lfo()
    eds = ph.eds
    if zero_eds or uncalibrated:
        eds = eds.deepcopy()
    if zero_eds:
        eds.data[:] = 0
    if uncalibrated:
        for ax in eds.axes_manager.navigation_axes:
            ax.units, ax.scale = "<undefined>", 1.0
    if haadf == "same":
        image = ph.haadf
    elif haadf == "cropped":
        image = ph.haadf.isig[:40, :40]
    elif haadf == "rescaled":
        image = ph.haadf.deepcopy()
        image.axes_manager[0].scale *= 3
        image.axes_manager[1].scale *= 3
    else:
        image = None
    return SimpleNamespace(eds=eds, haadf=image)


@functools.lru_cache(maxsize=None)
def lfo_chips():
    return multimodal.chip(lfo(), size=12)


# -------------------------------------------------------------------------- file makers

def empty_copy(tmp, src):
    path = tmp / src.name
    path.touch()
    return path


def truncated_copy(tmp, src, keep=0.5):
    path = tmp / src.name
    path.write_bytes(src.read_bytes()[: int(src.stat().st_size * keep)])
    return path


def mutated_copy(tmp, src, seed):
    """16 random bytes in the last three quarters set to random values (as test_io)."""
    raw = bytearray(src.read_bytes())
    rng = np.random.default_rng(seed)
    for pos in rng.integers(len(raw) // 4, len(raw), 16):
        raw[pos] = rng.integers(0, 256)
    path = tmp / f"corrupt{src.suffix}"
    path.write_bytes(bytes(raw))
    return path


def renamed_copy(tmp, src, suffix):
    path = tmp / f"renamed{suffix}"
    path.write_bytes(src.read_bytes())
    return path


def saved(tmp, signal, name):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        signal.save(tmp / name)
    return tmp / name


def image_only(tmp):
    import hyperspy.api as hs

    return saved(tmp, hs.signals.Signal2D(np.zeros((8, 8))), "image.hspy")


def quiet(fn, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fn(*args, **kwargs)


# ===================================================================== 1. errors raised
# id, call(tmp_path), exception class, regex the message must match (parameter/file + fix)

XFAIL = pytest.mark.xfail

RAISES = [
    # ---------------------------------------------------------------- io
    ("io-zero-byte-bcf", lambda t: io.load(empty_copy(t, BCF)),
     StemsegFileFormatError, r"bruker_tem_CuOPdTi_64x64\.bcf.*empty.*Copy it again"),
    ("io-zero-byte-emd", lambda t: io.load(empty_copy(t, EMD)),
     StemsegFileFormatError, r"velox_si_16x16_CCaOCu\.emd.*empty"),
    ("io-truncated-bcf", lambda t: io.load(truncated_copy(t, BCF, 0.9)),
     StemsegFileFormatError, r"bruker_tem_CuOPdTi_64x64\.bcf.*truncated.*copy it again"),
    ("io-truncated-emd", lambda t: io.load(truncated_copy(t, EMD), isolate=True),
     StemsegFileFormatError, r"velox_si_16x16_CCaOCu\.emd.*(truncated|corrupt).*again"),
    ("io-corrupt-bcf", lambda t: io.load(mutated_copy(t, BCF, 0)),
     StemsegFileFormatError, r"corrupt\.bcf.*corrupt.*(Copy|export)"),
    ("io-corrupt-emd", lambda t: io.load(mutated_copy(t, EMD, 0), isolate=True),
     StemsegFileFormatError, r"corrupt\.emd.*corrupt.*(Copy|export)"),
    ("io-wrong-extension", lambda t: io.load(renamed_copy(t, EMD, ".xyz")),
     StemsegFileFormatError, r"extension '\.xyz'"),
    ("io-bcf-content-named-emd", lambda t: io.load(renamed_copy(t, BCF, ".emd")),
     StemsegFileFormatError, r"renamed\.emd.*(corrupt|truncated).*again"),
    # fixed here: used to blame "reader options []" that were never given
    ("io-emd-content-named-bcf", lambda t: io.load(renamed_copy(t, EMD, ".bcf")),
     StemsegFileFormatError, r"renamed\.bcf.*does not match its extension.*real extension"),
    ("io-directory", lambda t: io.load(t),
     StemsegFileNotFoundError, r"is a directory.*Pass one spectrum-image file"),
    ("io-missing-path", lambda t: io.load(t / "nothere.emd"),
     StemsegFileNotFoundError, r"nothere\.emd.*Check the path"),
    ("io-image-only-file", lambda t: io.load(image_only(t)),
     StemsegFileFormatError, r"image\.hspy.*no EDS spectrum image"),
    ("io-unknown-haadf-title", lambda t: io.load(BCF, haadf="nope"),
     StemsegValueError, r"haadf='nope'.*HAADF"),
    # ---------------------------------------------------------------- preprocess / workflows
    ("preprocess-nan-counts", lambda t: workflows.gmm(cube(fill=np.nan), 2, bin=1),
     StemsegValueError, r"data holds 1 NaN.*np\.nan_to_num.*mask="),
    ("preprocess-inf-counts", lambda t: workflows.hdbscan(cube(fill=np.inf), 10, bin=1),
     StemsegValueError, r"data holds 1 NaN or infinite.*Replace them"),
    ("preprocess-negative-counts", lambda t: workflows.gmm(cube(fill=-1.0), 2, bin=1),
     StemsegValueError, r"negative counts.*undo any background subtraction.*np\.clip"),
    ("preprocess-all-zero-map", lambda t: workflows.gmm(cube(zero=True), 2, bin=1),
     StemsegValueError, r"data holds no counts.*right signal"),
    ("preprocess-non-integer-bin", lambda t: workflows.gmm(cube(), 2, bin=1.5),
     StemsegValueError, r"bin must be a whole number.*got 1\.5.*bin=2"),
    ("preprocess-bin-larger-than-map", lambda t: workflows.gmm(cube(), 2, bin=20),
     StemsegValueError, r"bin=20 is larger than the map \(8 x 8.*smaller bin"),
    ("preprocess-energy-range-inverted", lambda t: preprocess.preprocess(
        cube(), 1, energy_range=(5, 1)), StemsegValueError, r"energy_range.*Swap them"),
    ("preprocess-energy-range-off-axis", lambda t: preprocess.preprocess(
        cube(), 1, energy_range=(50, 60)),
     StemsegValueError, r"energy_range=\(50, 60\) keV keeps 0 channel.*Widen it"),
    pytest.param(
        "preprocess-uncalibrated-energy-keV-range",
        lambda t: workflows.gmm(cube(uncalibrated_energy=True), 2, bin=1),
        StemsegValueError, r"energy_range.*(calibrat|keV).*energy_range=None"),
    ("workflows-one-pixel-two-clusters", lambda t: workflows.gmm(one_pixel(), 2, bin=1),
     StemsegValueError, r"n_clusters=2 exceeds the 1 pixels.*fewer clusters"),
    pytest.param(
        "workflows-one-pixel-one-cluster",
        lambda t: workflows.gmm(one_pixel(), 1, bin=1),
        StemsegValueError, r"at least 2 pixels"),
    ("workflows-nm2-on-uncalibrated-map", lambda t: workflows.hdbscan(
        cube(uncalibrated_nav=True), 10, min_cluster_size_units="nm2", bin=1),
     StemsegValueError, r"min_cluster_size_units='nm2' needs navigation axes calibrated.*'px'"),
    # ---------------------------------------------------------------- reduce
    ("reduce-n-components-zero", lambda t: workflows.gmm(cube(), 2, n_components=0, bin=1),
     StemsegValueError, r"n_components must be a whole number >= 1 or None"),
    ("reduce-n-components-above-channels", lambda t: reduce.PCAReducer(
        n_components=50).fit(np.random.default_rng(0).random((20, 5))),
     StemsegValueError, r"n_components=50 exceeds the 5 energy channels.*fewer components"),
    ("reduce-gmm-n-components-above-channels", lambda t: workflows.gmm(
        cube(), 2, n_components=1000, bin=1),
     StemsegValueError, r"n_components=1000 exceeds the \d+ energy channels.*widen energy_range"),
    # ---------------------------------------------------------------- cluster
    ("cluster-n-clusters-zero", lambda t: workflows.gmm(cube(), 0, bin=1),
     StemsegValueError, r"n_clusters must be a whole number >= 1; got 0.*bic_curve"),
    ("cluster-n-clusters-fraction", lambda t: workflows.gmm(cube(), 2.5, bin=1),
     StemsegValueError, r"n_clusters must be a whole number >= 1; got 2\.5"),
    ("cluster-n-clusters-above-pixels", lambda t: workflows.gmm(cube(), 100, bin=1),
     StemsegValueError, r"n_clusters=100 exceeds the 64 pixels.*smaller bin"),
    ("cluster-covariance-type-unknown",
     lambda t: workflows.gmm(cube(), 2, bin=1, covariance_type="bogus"),
     StemsegValueError, r"covariance_type must be one of .*'full'.*got 'bogus'"),
    ("cluster-n-init-zero", lambda t: workflows.gmm(cube(), 2, bin=1, n_init=0),
     StemsegValueError, r"n_init must be a whole number >= 1; got 0"),
    ("cluster-min-cluster-size-zero", lambda t: workflows.hdbscan(cube(), 0, bin=1),
     StemsegValueError, r"min_cluster_size must be a positive number; got 0"),
    ("cluster-min-cluster-size-above-pixels", lambda t: workflows.hdbscan(cube(), 1000, bin=1),
     StemsegValueError, r"min_cluster_size=1000 px.*more than the 64 pixels.*smaller"),
    pytest.param(
        "cluster-fit-hdbscan-min-cluster-size-one",
        lambda t: cluster.fit_hdbscan(np.random.default_rng(0).random((20, 2)), 1),
        StemsegValueError, r"min_cluster_size.*at least 2"),
    pytest.param(
        "cluster-fit-gmm-nan-features",
        lambda t: cluster.fit_gmm(np.full((10, 2), np.nan), 2),
        StemsegValueError, r"NaN"),
    # ---------------------------------------------------------------- quant
    ("workflows-identical-spectra-gmm",
     lambda t: quiet(workflows.gmm, cube(identical=True), 2, bin=1),
     StemsegValueError, r"n_clusters=2 but the map has only 1 distinct spectra.*nothing to "
                        r"cluster"),
    ("quant-segmentation-without-clusters",
     # min_cluster_size above half the 64 pixels: HDBSCAN can split off no cluster
     lambda t: quant.quantify(quiet(workflows.hdbscan, cube(), 40, bin=1)),
     StemsegValueError, r"no cluster \(100\.0 % of the pixels are noise\).*min_cluster_size"),
    ("quant-unknown-element", lambda t: quant.quantify(spectrum(), lines=["Xx_Ka", "S_Ka"]),
     StemsegValueError, r"Unknown element 'Xx'.*capital letter"),
    ("quant-line-outside-energy-axis", lambda t: quant.quantify(
        spectrum(), lines=["Au_Ka", "S_Ka"]),
     StemsegValueError, r"Au_Ka \(68\.8\d* keV\) lie outside the usable energy range.*another line"),
    ("quant-missing-beam-energy", lambda t: quant.quantify(spectrum_copy(no_beam=True)),
     StemsegValueError, r"beam energy.*beam_energy_kV=200.*kfactors="),
    ("quant-incomplete-kfactors", lambda t: quant.quantify(spectrum(), kfactors={"S_Ka": 1.0}),
     StemsegValueError, r"k-factors lack the line\(s\).*Give a k-factor for every"),
    ("quant-all-zero-spectrum", lambda t: quant.quantify(spectrum_copy(scale=0)),
     StemsegValueError, r"zero counts in every channel.*Remove empty clusters"),
    ("quant-nan-spectrum", lambda t: quant.quantify(spectrum_copy(scale=np.nan)),
     StemsegValueError, r"NaN or infinite.*replace them"),
    # fixed here: used to return a table of meaningless at. % from negative "counts"
    ("quant-negative-counts", lambda t: quant.quantify(spectrum_copy(offset=-1e9)),
     StemsegValueError, r"negative counts.*needs raw counts.*np\.clip"),
    ("quant-uncalibrated-energy-axis", lambda t: quant.quantify(spectrum_copy(uncalibrated=True)),
     StemsegValueError, r"energy axis of spectrum is in '<undefined>'.*convert_to_units"),
    ("quant-beam-energy-in-volts", lambda t: xray.kfactors(["Fe_Ka", "S_Ka"], 200000),
     StemsegValueError, r"beam_energy_kV=200000.*200, not 200000"),
    ("quant-bootstrap-negative", lambda t: quant.quantify(spectrum(), bootstrap=-1),
     StemsegValueError, r"bootstrap must be an integer >= 0"),
    # ---------------------------------------------------------------- multimodal
    ("multimodal-chip-one-pixel", lambda t: multimodal.chip(lfo(), size=1),
     StemsegValueError, r"size=1 px.*at least 2 x 2.*Increase size"),
    ("multimodal-chip-larger-than-map", lambda t: multimodal.chip(lfo(), size=1000),
     StemsegValueError, r"size=1000 px.*larger than the map \(64 x 64.*at most 64"),
    ("multimodal-chip-non-integer-px", lambda t: multimodal.chip(lfo(), size=7.5),
     StemsegValueError, r"size=7\.5 px is not a whole number.*units='nm'"),
    ("multimodal-chip-nm-uncalibrated", lambda t: multimodal.chip(
        lfo_with(haadf=None, uncalibrated=True), size=2.0, units="nm"),
     StemsegValueError, r"size in nm needs a calibrated map.*units='px'"),
    ("multimodal-unregistered-haadf-shape", lambda t: multimodal.chip(
        lfo_with("cropped"), size=12),
     StemsegValueError, r"HAADF image \(40, 40\) is not registered.*(rebin|modality='eds')"),
    ("multimodal-unregistered-haadf-pixel-size", lambda t: multimodal.chip(
        lfo_with("rescaled"), size=12),
     StemsegValueError, r"HAADF pixel size.*differs.*not registered.*calibration"),
    ("multimodal-haadf-modality-without-haadf", lambda t: multimodal.segment(
        multimodal.chip(lfo_with(haadf=None), size=12), modality="haadf"),
     StemsegValueError, r"modality='haadf' needs HAADF chips.*modality='eds'"),
    ("multimodal-agglomerative-without-n-clusters", lambda t: multimodal.segment(
        lfo_chips(), method="agglomerative"),
     StemsegValueError, r"method='agglomerative' needs n_clusters"),
    ("multimodal-n-clusters-above-chips", lambda t: multimodal.segment(
        lfo_chips(), method="agglomerative", n_clusters=1000),
     StemsegValueError, r"n_clusters=1000 is more than the 25 chips.*fewer clusters"),
    pytest.param(
        "multimodal-all-zero-eds",
        lambda t: multimodal.segment(multimodal.chip(lfo_with(haadf=None, zero_eds=True),
                                                     size=12), modality="eds"),
        StemsegValueError, r"no counts"),
]


def _id(case) -> str:
    return case.values[0] if hasattr(case, "marks") else case[0]  # pytest.param or tuple


@pytest.mark.parametrize("case, call, error, match", RAISES, ids=[_id(c) for c in RAISES])
def test_bad_input_raises_a_clear_stemseg_error(tmp_path, case, call, error, match):
    assert issubclass(error, StemsegError)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(error, match=match) as info:
            call(tmp_path)
    # one line of "what was wrong and what to do", not a dump of the data
    assert len(str(info.value)) < 700, str(info.value)


# ========================================================== 2. documented sensible results

def _loads_with_warning(tmp, signal, name, pattern):
    path = saved(tmp, signal, name)
    with pytest.warns(StemsegLoadWarning, match=pattern):
        acq = io.load(path)
    return acq


def check_uncalibrated_energy_loads_with_warning(tmp):
    import exspy

    s = exspy.signals.EDSTEMSpectrum(np.random.default_rng(0).poisson(5, (4, 4, 64))
                                     .astype("uint16"))
    acq = _loads_with_warning(tmp, s, "uncal.hspy", r"not keV.*uncalibrated.*calibrate")
    assert acq.eds.data.shape == (4, 4, 64)


def check_all_zero_map_loads_with_warning(tmp):
    import exspy

    s = exspy.signals.EDSTEMSpectrum(np.zeros((4, 4, 64), dtype="uint16"))
    s.axes_manager[-1].units = "keV"
    acq = _loads_with_warning(tmp, s, "zero.hspy", r"zero\.hspy.*holds no counts")
    assert not acq.eds.data.any()
    with pytest.raises(StemsegValueError, match="no counts"):  # and then stops clearly
        quiet(workflows.gmm, acq, 2, bin=1)


def check_uncalibrated_energy_full_axis(tmp):
    """energy_range=None needs no calibration: clustering by channel works."""
    seg = quiet(workflows.gmm, cube(uncalibrated_energy=True), 2, bin=1,
                energy_range=None)
    assert seg.labels.shape == (8, 8) and set(np.unique(seg.labels)) == {0, 1}


def check_one_pixel_preprocess(tmp):
    prep = preprocess.preprocess(one_pixel(), 1)
    assert prep.X.shape[0] == 1 and np.isfinite(prep.X).all()


def check_identical_spectra_hdbscan(tmp):
    """No structure: HDBSCAN finds no cluster, every pixel is noise, no soft weights.

    (On the scaled spectra, not a UMAP embedding: UMAP's first call in a process costs
    ~25 s of numba compilation; workflows.hdbscan gives the same 0 clusters, 100 % noise.)
    """
    prep = quiet(preprocess.preprocess, cube(identical=True), 1)
    model = cluster.fit_hdbscan(prep.X, 10)
    assert (model.labels_ == -1).all()
    assert cluster.noise_fraction(model.labels_) == 1.0
    assert cluster.hdbscan_weights(model, "zero", "membership").shape == (64, 0)


def check_hdbscan_large_min_samples(tmp):
    """min_samples above the pixel count is clamped: a result, not an error."""
    rng = np.random.default_rng(0)
    x = np.vstack([rng.normal(0, 0.1, (30, 2)), rng.normal(5, 0.1, (30, 2))])
    model = cluster.fit_hdbscan(x, 5, min_samples=min(10, len(x) - 1))
    assert set(model.labels_) <= {-1, 0, 1}


def check_quant_one_cluster_only(tmp):
    """A single spectrum quantifies; its at. % sum to 100 with finite sigmas."""
    table = quiet(quant.quantify, spectrum())
    assert np.isclose(table["at_pct"].sum(), 100) and np.isfinite(table["sigma"]).all()


RESULTS = [
    ("io-uncalibrated-energy-axis-warns", check_uncalibrated_energy_loads_with_warning),
    ("io-all-zero-map-warns-then-stops", check_all_zero_map_loads_with_warning),
    ("preprocess-uncalibrated-energy-full-axis", check_uncalibrated_energy_full_axis),
    ("preprocess-one-pixel-map", check_one_pixel_preprocess),
    ("cluster-identical-spectra-hdbscan", check_identical_spectra_hdbscan),
    ("cluster-min-samples-clamped", check_hdbscan_large_min_samples),
    ("quant-single-spectrum", check_quant_one_cluster_only),
]


@pytest.mark.parametrize("case, check", RESULTS, ids=[c[0] for c in RESULTS])
def test_bad_input_gives_a_documented_result(tmp_path, case, check):
    check(tmp_path)


# ======================================================================== 3. command line

def _json(tmp, text):
    (tmp / "k.json").write_text(text)
    return str(tmp / "k.json")


CLI = [
    ("cli-run-missing-file", lambda t: ["run", str(t / "nope.emd"), "--out", str(t / "o")],
     r"No such file: '.*nope\.emd'.*Check the path"),
    ("cli-run-folder-without-maps", lambda t: ["run", str(t), "--out", str(t / "o")],
     r"holds no spectrum-image files \(bcf, emd"),
    ("cli-run-kfactors-missing", lambda t: ["run", str(BCF), "--kfactors", str(t / "k.json"),
                                            "--out", str(t / "o")],
     r"--kfactors: no such file '.*k\.json'"),
    ("cli-run-kfactors-bad-json", lambda t: ["run", str(BCF), "--kfactors", _json(t, "{bad"),
                                             "--out", str(t / "o")],
     r"--kfactors: cannot read '.*k\.json'.*Give a JSON object"),
    ("cli-run-bin-zero", lambda t: ["run", str(BCF), "--bin", "0", "--out", str(t / "o")],
     r"--bin must be a whole number >= 1.*got 0"),
    ("cli-run-bin-fraction", lambda t: ["run", str(BCF), "--bin", "1.5", "--out", str(t / "o")],
     r"argument --bin: invalid int value: '1\.5'"),
    # fixed here: exspy's bare ValueError escaped as a traceback
    ("cli-run-unknown-element", lambda t: ["run", str(BCF), "--elements", "Fe", "Xx",
                                           "--out", str(t / "o")],
     r"--elements: 'Xx' is not a chemical element symbol.*--elements Fe Cu S"),
    # fixed here: exited 0 after segmenting, the bad beam energy reduced to a note
    ("cli-run-negative-beam-energy", lambda t: ["run", str(BCF), "--beam-energy", "-1",
                                                "--out", str(t / "o")],
     r"--beam-energy must be a positive number in kV.*--beam-energy 200"),
    ("cli-simulate-unknown-name", lambda t: ["simulate", "nope", "--out", str(t / "o.hspy")],
     r"Unknown phantom 'nope'. Valid names: sulfide-6cation"),
    ("cli-simulate-wrong-extension", lambda t: ["simulate", "lfo-sto", "--out",
                                                str(t / "o.txt")],
     r"'o\.txt'.*use a \.hspy .* or \.zspy"),
    ("cli-simulate-shape-too-small", lambda t: ["simulate", "lfo-sto", "--shape", "2", "2",
                                                "--out", str(t / "o.hspy")],
     r"shape=\(2, 2\) is not valid.*at least \d+ pixels"),
]


@pytest.mark.parametrize("case, argv, match", CLI, ids=[c[0] for c in CLI])
def test_bad_command_line_exits_2_with_a_message(tmp_path, capsys, case, argv, match):
    work = tmp_path / "in"
    work.mkdir()
    try:
        code = cli.main(argv(work))
    except SystemExit as exc:  # argparse's own usage errors
        code = exc.code
    err = capsys.readouterr().err
    assert code == 2, err
    assert re.search(match, err), err
    assert "Traceback" not in err
    assert not (work / "o").exists() and not (work / "o.hspy").exists()


# ============================================================== 4. sliders at both ends

@functools.lru_cache(maxsize=None)
def _gmm_seg():
    return quiet(workflows.gmm, sulfide(), 3, random_state=0)


def _hdbscan_seg():
    """A Segmentation-like input for HDBSCANExplorer: a PCA embedding, no UMAP (cheap)."""
    prep = quiet(preprocess.preprocess, sulfide(), 2)
    emb = reduce.PCAReducer(n_components=4, random_state=0).fit(prep.X).transform(prep.X)
    return SimpleNamespace(workflow="hdbscan", models={"prepared": prep}, embedding=emb,
                           params=dict(n_components=4, **prep.params))


@functools.lru_cache(maxsize=None)
def _explorer(kind):
    """One explorer per kind, shared by its sliders' cases (GMMExplorer renders are slow)."""
    if kind == "elements":
        return widgets.ElementMapExplorer(quiet(analysis.element_maps, sulfide()))
    if kind == "gmm":  # its own small PCA (8 components), one initialisation per fit
        return quiet(widgets.GMMExplorer, sulfide(), n_clusters=3, max_components=8, bin=4,
                     n_init=1, bic_range=range(1, 4))
    if kind == "hdbscan":
        return quiet(widgets.HDBSCANExplorer, sulfide(), segmentation=_hdbscan_seg(),
                     min_cluster_size=40)
    return quiet(widgets.QuantExplorer, _gmm_seg())


def _shown(ex):
    """What the explorer shows besides the figure (status line / pairs / table)."""
    return " ".join(getattr(ex, name).value for name in ("status", "pairs", "output")
                    if hasattr(ex, name))


SLIDERS = [
    ("elements", "percentile", r"Pairs that look most alike.*\d\.\d\d"),
    ("gmm", "n_components", r"scree knee.*cluster sizes \(binned px\): \[\d"),
    ("gmm", "n_clusters", r"lowest BIC at.*cluster sizes \(binned px\): \[\d"),
    ("hdbscan", "min_cluster_size", r"<b>\d+</b> clusters, noise <b>[\d.]+ %"),
    ("hdbscan", "min_samples", r"<b>\d+</b> clusters, noise <b>[\d.]+ %"),
    ("quant", "dose", r"counting error up to <b>[\d.]+</b> at\. %"),
]


@pytest.mark.parametrize("kind, name, shows", SLIDERS,
                         ids=[f"widgets-{k}-{n}" for k, n, _ in SLIDERS])
def test_slider_at_both_ends_shows_a_result_or_message(kind, name, shows):
    ex = _explorer(kind)
    slider = getattr(ex, name)
    log = type(slider).__name__ == "FloatLogSlider"  # min/max are exponents
    ends = [10.0 ** slider.min, 10.0 ** slider.max] if log else [slider.min, slider.max]
    start = slider.value
    pngs = {bytes(ex.image.value)}
    for value in ends:
        slider.value = value  # an exception in the observer propagates here
        assert slider.value == pytest.approx(value)
        assert ex.image.value[:4] == b"\x89PNG"
        assert re.search(shows, _shown(ex)), _shown(ex)
        pngs.add(bytes(ex.image.value))
    assert len(pngs) >= 2  # the ends drew something different from the start
    slider.value = start  # the next case of this (shared) explorer starts from its default


def test_hdbscan_explorer_all_noise_is_said_in_words():
    """At the largest min_cluster_size the 32 x 32 phantom has no cluster: 100 % noise."""
    ex = quiet(widgets.HDBSCANExplorer, sulfide(), segmentation=_hdbscan_seg(),
               min_cluster_size=40)
    ex.min_samples.value = ex.min_samples.max
    assert ex.n_found == 0 and "<b>0</b> clusters, noise <b>100.0 %" in ex.status.value
    assert "0 clusters" in ex._axes["map"].get_title()
    ex.close()


def test_matrix_size():
    """The matrix covers every layer named in issue 10 with at least 30 cases."""
    ids = ([_id(c) for c in RAISES]
           + [c[0] for c in RESULTS] + [c[0] for c in CLI]
           + [f"widgets-{k}-{n}" for k, n, _ in SLIDERS])
    assert len(ids) >= 30 and len(set(ids)) == len(ids)
    layers = {i.split("-")[0] for i in ids}
    assert {"io", "preprocess", "reduce", "cluster", "quant", "multimodal", "cli",
            "widgets"} <= layers, layers


def test_bad_mixture_parameters_fail_before_preprocessing(monkeypatch):
    """covariance_type and n_init are checked before the map is touched (preprocessing a
    256 x 256 map took seconds before scikit-learn refused 'bogus' with its own error)."""
    from stemseg import preprocess

    def fail(*args, **kwargs):
        raise AssertionError("preprocess ran before the parameters were checked")

    monkeypatch.setattr(preprocess, "preprocess", fail)
    for kwargs in (dict(covariance_type="bogus"), dict(n_init=0)):
        with pytest.raises(StemsegValueError):
            workflows.gmm(cube(), 2, bin=1, **kwargs)
