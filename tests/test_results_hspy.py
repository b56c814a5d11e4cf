"""Segmentation as HyperSpy signals and as one .hspy file (issue 18).

The label maps, probabilities and noise map come back as calibrated HyperSpy signals (nm,
binned pixel = bin x original pixel, offsets as HyperSpy's ``rebin`` puts them), and a
segmentation survives ``save`` -> ``io.load_segmentation`` with equal arrays, spectra and
parameters. Everything here runs on the 64 x 64 phantom of the shared fixtures (~3 s).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from stemseg import io, workflows
from stemseg._blocks import is_lazy
from stemseg._hs import with_data
from stemseg._types import Segmentation
from stemseg.errors import (
    StemsegFileExistsError,
    StemsegFileFormatError,
    StemsegFileNotFoundError,
    StemsegValueError,
)


@pytest.fixture(scope="module")
def seg(sulfide_64):
    """GMM, 3 clusters, bin 2 on the 64 x 64 sulfide phantom (40 nm pixels)."""
    return workflows.gmm(sulfide_64, n_clusters=3, random_state=0)


@pytest.fixture(scope="module")
def skewed(sulfide_64):
    """A 16 x 32 px crop with unequal axes: y 20 nm from 0, x 0.04 um (40 nm) from 0.1 um."""
    eds = sulfide_64.eds.inav[:32, :16].deepcopy()
    y, x = eds.axes_manager["y"], eds.axes_manager["x"]
    y.scale, y.offset = 20.0, 0.0
    x.scale, x.offset, x.units = 0.04, 0.1, "µm"
    eds.metadata.General.title = "skewed crop"
    return workflows.gmm(eds, n_clusters=3, random_state=0)


def _axes(signal):
    """{name: (size, scale, offset, units)} of the signal axes."""
    return {a.name: (a.size, a.scale, a.offset, a.units)
            for a in signal.axes_manager.signal_axes}


# ----------------------------------------------------------------------- signals


def test_label_signal_is_calibrated_in_nm(seg, sulfide_64):
    s, full = seg.label_signal(), seg.label_signal(full=True)
    assert type(s).__name__ == "Signal2D" and s.axes_manager.navigation_dimension == 0
    np.testing.assert_array_equal(s.data, seg.labels)
    np.testing.assert_array_equal(full.data, seg.labels_full)
    # binned: 2 x 40 nm, the first binned pixel centred on its 2 x 2 block
    assert seg.pixel_size_nm == (80.0, 80.0)
    assert _axes(s) == {"x": (32, 80.0, 20.0, "nm"), "y": (32, 80.0, 20.0, "nm")}
    assert _axes(full) == {"x": (64, 40.0, 0.0, "nm"), "y": (64, 40.0, 0.0, "nm")}
    # the original pixels' axes are the acquisition's own
    for axis in sulfide_64.eds.axes_manager.navigation_axes:
        assert _axes(full)[axis.name][1:] == (axis.scale, axis.offset, axis.units)
    # title and metadata carried from the acquisition
    acq = sulfide_64.eds.metadata
    assert s.metadata.General.title.startswith(acq.General.title)
    assert "binned x2" in s.metadata.General.title
    assert "original pixels" in full.metadata.General.title
    assert s.metadata.Acquisition_instrument.TEM.beam_energy == \
        acq.Acquisition_instrument.TEM.beam_energy
    assert s.metadata.Sample.elements == acq.Sample.elements
    # a new array: the segmentation is left alone
    s.data[:] = 99
    assert (seg.labels != 99).all()


def test_label_signal_keeps_y_and_x_apart_and_converts_units(skewed):
    assert skewed.labels.shape == (8, 16)
    assert skewed.pixel_size_nm == pytest.approx((40.0, 80.0))
    s, full = skewed.label_signal(), skewed.label_signal(full=True)
    (ny, sy, oy, uy), (nx, sx, ox, ux) = _axes(s)["y"], _axes(s)["x"]
    assert (ny, nx, uy, ux) == (8, 16, "nm", "nm")
    assert (sy, oy, sx, ox) == pytest.approx((40.0, 10.0, 80.0, 120.0))
    (ny, sy, oy, _), (nx, sx, ox, _) = _axes(full)["y"], _axes(full)["x"]
    assert (ny, nx) == (16, 32)
    assert (sy, oy, sx, ox) == pytest.approx((20.0, 0.0, 40.0, 100.0))
    assert s.metadata.General.title.startswith("skewed crop: gmm cluster labels")


def test_probability_and_noise_signals(seg):
    p = seg.probability_signal()
    assert p.axes_manager.navigation_shape == (3,)
    assert p.axes_manager.navigation_axes[0].name == "cluster"
    assert _axes(p) == _axes(seg.label_signal())
    for c in range(3):
        np.testing.assert_array_equal(p.inav[c].data, seg.weights[:, c].reshape(32, 32))
    assert "probabilities" in p.metadata.General.title
    noisy = dataclasses.replace(seg, labels=np.where(seg.labels == 2, -1, seg.labels))
    n = noisy.noise_signal()
    assert n.data.dtype == bool and _axes(n) == _axes(seg.label_signal())
    np.testing.assert_array_equal(n.data, seg.labels == 2)
    assert not seg.noise_signal(full=True).data.any()


def test_without_calibration_the_maps_are_in_pixels(seg):
    bare = dataclasses.replace(seg, pixel_size_nm=None, counts=None)
    assert _axes(bare.label_signal()) == {"x": (32, 2.0, 0.5, ""), "y": (32, 2.0, 0.5, "")}
    assert _axes(bare.label_signal(full=True)) == {"x": (64, 1.0, 0.0, ""),
                                                   "y": (64, 1.0, 0.0, "")}


# ----------------------------------------------------------------------- file


def test_save_load_round_trip(seg, tmp_path):
    path = seg.save(tmp_path / "seg.hspy")
    assert path == tmp_path / "seg.hspy" and path.is_file()
    back = io.load_segmentation(path)
    assert isinstance(back, Segmentation)
    for name in ("labels", "labels_full", "weights", "sizes", "scree", "embedding"):
        a, b = getattr(seg, name), getattr(back, name)
        assert b.dtype == a.dtype and b.shape == a.shape, name
        np.testing.assert_array_equal(b, a, err_msg=name)
    assert back.params == seg.params and isinstance(back.params["energy_range"], tuple)
    assert back.timings == seg.timings
    assert (back.workflow, back.random_state, back.noise_fraction, back.pixel_size_nm) == \
        (seg.workflow, seg.random_state, seg.noise_fraction, seg.pixel_size_nm)
    # mean spectra: same EDS class, elements, lines, beam energy, and their variance
    m, m0 = back.mean_spectra, seg.mean_spectra
    assert type(m) is type(m0) and type(back.mean_variance) is type(m0)
    np.testing.assert_array_equal(m.data, m0.data)
    np.testing.assert_array_equal(back.mean_variance.data, seg.mean_variance.data)
    assert m.metadata.Signal.Noise_properties.variance is back.mean_variance
    assert m.metadata.Sample.elements == m0.metadata.Sample.elements
    assert m.metadata.Sample.xray_lines == m0.metadata.Sample.xray_lines
    assert m.metadata.Acquisition_instrument.TEM.beam_energy == \
        m0.metadata.Acquisition_instrument.TEM.beam_energy
    assert m.axes_manager[-1].scale == m0.axes_manager[-1].scale
    assert not m.metadata.has_item("Segmentation")
    # not saved: the fitted models and the pixels behind the spectra
    assert back.models == {} and back.counts is None and back.spectrum_counts is None
    # the maps come back with the same calibration and title, without the counts
    for full in (False, True):
        a, b = seg.label_signal(full=full), back.label_signal(full=full)
        assert _axes(a) == _axes(b)
        assert a.metadata.General.title == b.metadata.General.title
    # and a loaded segmentation saves again to the same content
    again = io.load_segmentation(back.save(tmp_path / "again.hspy"))
    np.testing.assert_array_equal(again.weights, seg.weights)
    assert again.params == seg.params and _axes(again.label_signal()) == _axes(
        seg.label_signal())


def test_saved_file_is_a_plain_hyperspy_file(seg, tmp_path):
    import hyperspy.api as hs

    s = hs.load(seg.save(tmp_path / "seg.hspy"))
    assert s.metadata.Signal.signal_type == "EDS_TEM"
    assert s.axes_manager.navigation_shape == (3,)
    labels = s.metadata.Segmentation.labels
    np.testing.assert_array_equal(labels.data, seg.labels)
    assert labels.axes_manager["x"].scale == 80.0 and labels.axes_manager["x"].units == "nm"
    # a spectrum-image reader is pointed to the right loader
    with pytest.raises(StemsegFileFormatError, match="load_segmentation"):
        io.load(tmp_path / "seg.hspy")


def test_save_refuses_to_overwrite(seg, tmp_path):
    path = seg.save(tmp_path / "seg.hspy")
    before = path.read_bytes()
    with pytest.raises(StemsegFileExistsError) as err:
        seg.save(path)
    assert str(path) in str(err.value) and "overwrite=True" in str(err.value)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["seg.hspy"]  # no temporary left
    seg.save(path, overwrite=True)
    np.testing.assert_array_equal(io.load_segmentation(path).labels, seg.labels)
    with pytest.raises(StemsegValueError, match=r"\.hspy"):
        seg.save(tmp_path / "seg.emd")
    with pytest.raises(StemsegFileNotFoundError, match="does not exist"):
        seg.save(tmp_path / "no-such-folder" / "seg.hspy")


def test_load_refuses_what_is_not_a_segmentation(seg, tmp_path):
    import hyperspy.api as hs

    plain = tmp_path / "spectra.hspy"
    seg.mean_spectra.deepcopy().save(plain)  # the same spectra, no metadata.Segmentation
    with pytest.raises(StemsegFileFormatError, match="no stemseg segmentation") as err:
        io.load_segmentation(plain)
    assert str(plain) in str(err.value) and "stemseg.io.load()" in str(err.value)
    hs.signals.Signal2D(np.zeros((4, 4))).save(tmp_path / "image.hspy")
    with pytest.raises(StemsegFileFormatError, match="no stemseg segmentation"):
        Segmentation.load(tmp_path / "image.hspy")
    with pytest.raises(StemsegFileNotFoundError, match="No such file"):
        io.load_segmentation(tmp_path / "missing.hspy")
    with pytest.raises(StemsegFileNotFoundError, match="folder"):
        io.load_segmentation(tmp_path)
    (tmp_path / "notes.txt").write_text("labels")
    with pytest.raises(StemsegFileFormatError, match="not a .hspy file"):
        io.load_segmentation(tmp_path / "notes.txt")
    (tmp_path / "broken.hspy").write_bytes(b"not HDF5 at all")
    with pytest.raises(StemsegFileFormatError, match="could not be read"):
        io.load_segmentation(tmp_path / "broken.hspy")
    newer = seg.mean_spectra.deepcopy()
    newer.metadata.set_item("Segmentation.format", "stemseg-segmentation-99")
    newer.save(tmp_path / "newer.hspy")
    with pytest.raises(StemsegFileFormatError, match="update stemseg"):
        io.load_segmentation(tmp_path / "newer.hspy")
    partial = seg.mean_spectra.deepcopy()
    partial.metadata.set_item("Segmentation.format", "stemseg-segmentation-1")
    partial.save(tmp_path / "partial.hspy")
    with pytest.raises(StemsegFileFormatError, match="incomplete"):
        io.load_segmentation(tmp_path / "partial.hspy")


# ----------------------------------------------------------------------- helpers


def test_with_data_and_is_lazy(seg):
    spectra = seg.mean_spectra
    data = np.asarray(spectra.data, dtype=float) * 2
    new = with_data(spectra, data)
    assert type(new) is type(spectra) and new.data is data
    assert new.axes_manager.as_dictionary() == spectra.axes_manager.as_dictionary()
    assert new.metadata.Sample.elements == spectra.metadata.Sample.elements
    new.metadata.General.title = "changed"
    assert spectra.metadata.General.title != "changed"
    with pytest.raises(ValueError, match="same shape"):
        with_data(spectra, data[:1])
    assert not is_lazy(spectra) and is_lazy(spectra.as_lazy()) and not is_lazy(data)
