"""Result types shared by every layer: Acquisition, Phase and Phantom.

These are plain data holders with no behaviour beyond convenience properties,
so that sources (``io``, ``simulate``), stages and flows can all import them
without import cycles (see DESIGN.md, "Dependency rules").
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["Acquisition", "Phase", "Phantom"]


@dataclass
class Acquisition:
    """A spectrum image with the images registered with it.

    Attributes
    ----------
    eds : exspy.signals.EDSTEMSpectrum or exspy.signals.EDSSEMSpectrum
        The EDS spectrum image; navigation axes (y, x) in nm, signal axis in
        keV, metadata as read from the file.
    haadf : hyperspy.signals.Signal2D or None
        The HAADF (or ADF/DF) image registered with ``eds`` (same navigation
        shape), or None when the file has none that can be identified.
    images : dict of str to hyperspy.signals.Signal2D
        Every 2-D image whose shape equals the EDS navigation shape, by title.
    source : pathlib.Path or None
        The file the acquisition was read from (None for simulated data).
    """

    eds: Any
    haadf: Any = None
    images: dict[str, Any] = field(default_factory=dict)
    source: Path | None = None

    @property
    def navigation_shape(self) -> tuple[int, int]:
        """(rows, columns) of the map in pixels (NumPy order)."""
        return tuple(self.eds.data.shape[:-1])  # type: ignore[return-value]

    @property
    def is_sem(self) -> bool:
        """True when the EDS signal is an SEM (bulk) spectrum image."""
        return self.eds.metadata.Signal.signal_type == "EDS_SEM"

    def __repr__(self) -> str:  # pragma: no cover - cosmetic
        haadf = None if self.haadf is None else self.haadf.metadata.General.title
        return (
            f"<Acquisition {self.eds.data.shape} {self.eds.data.dtype}, "
            f"haadf={haadf!r}, images={list(self.images)}, source={self.source}>"
        )


@dataclass(frozen=True)
class Phase:
    """A phase of a phantom.

    Attributes
    ----------
    name : str
        Human-readable name, e.g. ``"chalcopyrite"`` or ``"resin"``.
    composition : dict of str to float
        Element symbol -> atomic percent (sums to 100).
    """

    name: str
    composition: dict[str, float]


@dataclass(repr=False)
class Phantom(Acquisition):
    """A simulated acquisition with its ground truth.

    Attributes
    ----------
    labels : numpy.ndarray of int, shape (rows, columns)
        Index into ``phases`` for every pixel (no -1: the support is a phase).
    phases : list of Phase
    thickness : numpy.ndarray of float, shape (rows, columns)
        Specimen thickness per pixel in nm.
    truth : dict
        Everything else a test needs to check a claim (documented per phantom).
    """

    labels: np.ndarray | None = None
    phases: list[Phase] = field(default_factory=list)
    thickness: np.ndarray | None = None
    truth: dict[str, Any] = field(default_factory=dict)
