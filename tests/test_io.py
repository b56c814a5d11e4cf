"""stemseg.io.load and stemseg.data on the bundled real files, and every error case."""

from __future__ import annotations

import hashlib
import warnings

import numpy as np
import pytest

import stemseg
from stemseg import data, io
from stemseg.errors import (
    StemsegError,
    StemsegFileFormatError,
    StemsegFileNotFoundError,
    StemsegReaderCrash,
    StemsegValueError,
)

# file -> (EDS shape, dtype, elements, beam kV, pixel size nm, registered image titles, HAADF title)
EXPECTED = {
    "bruker_tem_CuOPdTi_64x64": (
        (64, 64, 2048), "uint8", {"Cu", "O", "Pd", "Ti"}, 200.0, 0.7710047542040269,
        {"HAADF"}, "HAADF",
    ),
    "bruker_sem_mineral_30x30": (
        (30, 30, 2048), "uint16", {"Al", "C", "Ca", "Ce", "Fe", "Gd", "K", "Mg", "Na", "Nd",
                                   "O", "P", "Si", "Sm", "Th", "Ti"}, 20.0, 1667.40910949362,
        {"AsB"}, None,
    ),
    "velox_eels_eds_FeCoO": (
        (128, 128, 4096), "uint16", {"Fe", "Co", "O"}, 300.0, 158.6580379596911, {"a"}, None,
    ),
    "velox_si_16x16_CCaOCu": (
        (16, 16, 4096), "uint16", {"C", "Ca", "O", "Cu"}, 300.0, 3.599249,
        {"C", "Ca", "O", "Cu", "HAADF"}, "HAADF",
    ),
}


def _sha256(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def loaded():
    """Every bundled file loaded once (warnings recorded), with input hashes."""
    out = {}
    for name in EXPECTED:
        path = data.example(name)
        before = _sha256(path)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            acq = io.load(path)
        out[name] = (acq, caught, before, path)
    return out


def _beam(eds):
    md = eds.metadata
    return md.get_item("Acquisition_instrument.TEM.beam_energy") or md.get_item(
        "Acquisition_instrument.SEM.beam_energy"
    )


@pytest.mark.parametrize("name", list(EXPECTED))
def test_bundled_file_loads_as_described(loaded, name):
    shape, dtype, elements, beam, pixel_nm, titles, haadf = EXPECTED[name]
    acq, _, _, path = loaded[name]
    eds = acq.eds
    assert eds.data.shape == shape
    assert str(eds.data.dtype) == dtype
    assert set(eds.metadata.Sample.elements) == elements
    assert _beam(eds) == pytest.approx(beam)
    assert acq.source == path
    # navigation axes (y, x) in nm with the scale kept exactly (µm * 1000 for Bruker/Velox)
    for axis in eds.axes_manager.navigation_axes:
        assert axis.units == "nm"
        assert axis.scale == pytest.approx(pixel_nm, rel=1e-6)
    assert [a.name for a in eds.axes_manager.navigation_axes] == ["x", "y"]
    assert eds.axes_manager.signal_axes[0].units == "keV"
    assert set(acq.images) == titles
    for image in acq.images.values():
        assert image.data.shape == shape[:2]
    if haadf is None:
        assert acq.haadf is None
    else:
        assert acq.haadf is acq.images[haadf]


def test_bruker_scale_is_exact(loaded):
    """The nm scale is the file's µm scale times 1000, to the last bit."""
    acq = loaded["bruker_tem_CuOPdTi_64x64"][0]
    assert acq.eds.axes_manager.navigation_axes[0].scale == 0.000771004754204027 * 1000


def test_sem_map_is_flagged(loaded):
    acq = loaded["bruker_sem_mineral_30x30"][0]
    assert acq.is_sem
    assert acq.eds.metadata.Signal.signal_type == "EDS_SEM"
    assert not loaded["bruker_tem_CuOPdTi_64x64"][0].is_sem


def test_velox_without_xray_lines_still_loads(loaded):
    acq = loaded["velox_si_16x16_CCaOCu"][0]
    assert acq.eds.metadata.get_item("Sample.xray_lines") is None
    # the EELS cube and single spectra in the FeCoO file are never chosen
    feco = loaded["velox_eels_eds_FeCoO"][0].eds
    assert feco.metadata.Signal.signal_type == "EDS_TEM"
    assert feco.axes_manager.navigation_shape == (128, 128)


@pytest.mark.parametrize(
    "name,candidate",
    [("velox_eels_eds_FeCoO", "a"), ("bruker_sem_mineral_30x30", "AsB")],
)
def test_missing_haadf_warns_with_candidates_and_can_be_chosen(loaded, name, candidate):
    _, caught, _, path = loaded[name]
    messages = [str(w.message) for w in caught if issubclass(w.category, io.StemsegLoadWarning)]
    assert any(candidate in m and "haadf=" in m for m in messages)
    acq = io.load(path, haadf=candidate)
    assert acq.haadf is acq.images[candidate]


def test_mean_counts_per_pixel(loaded):
    means = {n: float(v[0].eds.data.sum(-1).mean()) for n, v in loaded.items()}
    assert means["bruker_tem_CuOPdTi_64x64"] == pytest.approx(6.35, abs=0.01)
    assert 15000 < means["bruker_sem_mineral_30x30"] < 25000
    assert means["velox_eels_eds_FeCoO"] < 1.0


def test_inputs_stay_byte_identical(loaded):
    for _, (_, _, before, path) in loaded.items():
        assert _sha256(path) == before


def test_reader_options_pass_through():
    bruker = io.load(data.example("bruker_tem_CuOPdTi_64x64"), downsample=2)
    assert bruker.eds.data.shape == (32, 32, 2048)
    assert bruker.eds.axes_manager.navigation_axes[0].scale == pytest.approx(2 * 0.771004754)
    # the full-size HAADF image is not registered with the downsampled map
    assert bruker.images == {} and bruker.haadf is None
    velox = io.load(data.example("velox_si_16x16_CCaOCu"), rebin_energy=4)
    assert velox.eds.data.shape == (16, 16, 1024)


def test_lazy_load():
    acq = io.load(data.example("velox_si_16x16_CCaOCu"), lazy=True)
    assert acq.eds._lazy
    eager = io.load(data.example("velox_si_16x16_CCaOCu"))
    np.testing.assert_array_equal(acq.eds.data.compute(), eager.eds.data)


def test_isolated_load_equals_direct_load():
    path = data.example("bruker_tem_CuOPdTi_64x64")
    direct = io.load(path)
    isolated = io.load(path, isolate=True)
    np.testing.assert_array_equal(direct.eds.data, isolated.eds.data)
    assert type(isolated.eds) is type(direct.eds)
    assert isolated.haadf is not None
    np.testing.assert_array_equal(direct.haadf.data, isolated.haadf.data)
    assert isolated.eds.metadata.Sample.elements == direct.eds.metadata.Sample.elements


# --------------------------------------------------------------------------- errors


def test_exception_family():
    assert issubclass(StemsegValueError, ValueError)
    assert issubclass(StemsegFileNotFoundError, FileNotFoundError)
    assert issubclass(StemsegFileFormatError, StemsegError)
    assert issubclass(StemsegReaderCrash, StemsegFileFormatError)
    assert stemseg.StemsegError is StemsegError


def test_missing_file(tmp_path):
    with pytest.raises(StemsegFileNotFoundError, match="No such file.*nothere.emd"):
        io.load(tmp_path / "nothere.emd")


def test_directory(tmp_path):
    with pytest.raises(StemsegFileNotFoundError, match="is a directory"):
        io.load(tmp_path)


def test_unknown_extension(tmp_path):
    bad = tmp_path / "map.xyz"
    bad.write_bytes(b"not a map")
    with pytest.raises(StemsegFileFormatError, match=r"extension '\.xyz'"):
        io.load(bad)


@pytest.mark.parametrize("name", ["bruker_tem_CuOPdTi_64x64", "velox_si_16x16_CCaOCu"])
def test_zero_byte_file(tmp_path, name):
    empty = tmp_path / data.example(name).name
    empty.touch()
    with pytest.raises(StemsegFileFormatError, match="empty"):
        io.load(empty)


@pytest.mark.parametrize("name", ["bruker_tem_CuOPdTi_64x64", "velox_si_16x16_CCaOCu"])
def test_truncated_file(tmp_path, name):
    src = data.example(name)
    cut = tmp_path / src.name
    cut.write_bytes(src.read_bytes()[: src.stat().st_size // 2])
    with pytest.raises(StemsegFileFormatError, match=f"{cut.name}.*(truncated|corrupt)"):
        io.load(cut, isolate=True)


def test_truncated_bruker_names_the_sizes(tmp_path):
    src = data.example("bruker_tem_CuOPdTi_64x64")
    cut = tmp_path / src.name
    cut.write_bytes(src.read_bytes()[:-1000])
    with pytest.raises(StemsegFileFormatError, match="truncated.*332056 bytes"):
        io.load(cut)


def _mutated_copy(src, dst, seed):
    """16 random bytes in the last three quarters of the file set to random values."""
    raw = bytearray(src.read_bytes())
    rng = np.random.default_rng(seed)
    for pos in rng.integers(len(raw) // 4, len(raw), 16):
        raw[pos] = rng.integers(0, 256)
    dst.write_bytes(bytes(raw))
    return dst


def test_corrupt_file_raises_a_stemseg_error(tmp_path):
    # seed 0: the Bruker XML header is broken -> a Python exception in the reader
    bad = _mutated_copy(data.example("bruker_tem_CuOPdTi_64x64"), tmp_path / "bad.bcf", 0)
    with pytest.raises(StemsegFileFormatError, match="corrupt"):
        io.load(bad)


def test_reader_segfault_is_contained(tmp_path):
    # seed 8: measured to kill the interpreter with SIGSEGV inside the Bruker reader
    bad = _mutated_copy(data.example("bruker_tem_CuOPdTi_64x64"), tmp_path / "crash.bcf", 8)
    with pytest.raises(StemsegReaderCrash, match="crashed.*crash.bcf"):
        io.load(bad, isolate=True)


def _save(signal, path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        signal.save(path)
    return path


def test_image_only_file(tmp_path):
    import hyperspy.api as hs

    path = _save(hs.signals.Signal2D(np.zeros((8, 8))), tmp_path / "image.hspy")
    with pytest.raises(StemsegFileFormatError, match="no EDS spectrum image"):
        io.load(path)


def test_single_spectrum_is_not_a_map(tmp_path):
    import exspy

    spectrum = exspy.signals.EDSTEMSpectrum(np.ones(64))
    path = _save(spectrum, tmp_path / "one.hspy")
    with pytest.raises(StemsegFileFormatError, match="no EDS spectrum image"):
        io.load(path)


def test_unknown_reader_option():
    with pytest.raises(StemsegValueError, match="reader options.*bogus"):
        io.load(data.example("velox_si_16x16_CCaOCu"), bogus=1)


def test_haadf_title_not_found():
    with pytest.raises(StemsegValueError, match="haadf='nope'.*HAADF"):
        io.load(data.example("bruker_tem_CuOPdTi_64x64"), haadf="nope")


def test_hspy_round_trip_keeps_nm(tmp_path):
    acq = io.load(data.example("bruker_tem_CuOPdTi_64x64"))
    path = _save(acq.eds, tmp_path / "map.hspy")
    again = io.load(path)
    assert again.eds.axes_manager.navigation_axes[0].units == "nm"
    assert again.eds.axes_manager.navigation_axes[0].scale == pytest.approx(0.771004754)
    np.testing.assert_array_equal(again.eds.data, acq.eds.data)


# --------------------------------------------------------------------------- data


def test_example_paths_and_names():
    for name in data.EXAMPLES:
        assert data.example(name).is_file()
    assert data.example("bruker_tem_CuOPdTi_64x64.bcf") == data.example("bruker_tem_CuOPdTi_64x64")
    with pytest.raises(StemsegValueError, match="Valid names"):
        data.example("nope")


def test_paper_values_is_a_copy():
    values = data.paper_values()
    table = values["eggeman2025_table1_6cation"]["workflow1_pca_gmm"]
    assert table["iv"]["Ag"] == [10.8, 0.62]
    table["iv"]["Ag"] = None
    assert data.paper_values()["eggeman2025_table1_6cation"]["workflow1_pca_gmm"]["iv"]["Ag"] == [
        10.8, 0.62,
    ]


def test_bundled_data_match_shared_copy():
    """The package copy equals the shared original when the checkout has one beside it."""
    from pathlib import Path

    shared = Path(__file__).resolve().parents[2] / "shared" / "data" / "real"
    if not shared.is_dir():
        pytest.skip("../shared is not beside this checkout")
    for name, (filename, _) in data.EXAMPLES.items():
        assert _sha256(shared / filename) == _sha256(data.example(name))



def test_isolated_load_from_a_script_on_stdin():
    """Isolation must not depend on how the caller was started (script, stdin, kernel)."""
    import subprocess
    import sys

    script = (
        "import stemseg.io as io, stemseg.data as d\n"
        "a = io.load(d.example('velox_si_16x16_CCaOCu'), isolate=True)\n"
        "print(a.eds.data.shape)\n"
    )
    result = subprocess.run(
        [sys.executable, "-W", "ignore", "-"], input=script, capture_output=True, text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "(16, 16, 4096)" in result.stdout


@pytest.mark.parametrize("suffix", [".hspy", ".zspy"])
def test_phantom_files_load_with_truth_and_haadf(tmp_path, suffix):
    from stemseg import simulate

    phantom = simulate.phantom("sulfide-6cation", shape=(32, 32), random_state=3)
    path = simulate.save(phantom, tmp_path / f"six{suffix}")
    acq = io.load(path)
    assert acq.haadf is not None and acq.haadf.data.shape == (32, 32)
    np.testing.assert_array_equal(acq.labels, phantom.labels)
    np.testing.assert_array_equal(acq.eds.data, phantom.eds.data)
    lazy = io.load(path, lazy=True)
    assert lazy.eds._lazy
