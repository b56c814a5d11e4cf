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

__all__ = ["Acquisition", "Phase", "Phantom", "Segmentation"]


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


@dataclass(repr=False)
class Segmentation:
    """The result of a clustering workflow (:mod:`stemseg.workflows`).

    Pixels are flattened in NumPy (row-major, y then x) order of the binned map wherever a
    pixel index appears.

    Attributes
    ----------
    labels : numpy.ndarray of int, shape (ny, nx)
        Cluster of every pixel of the binned map the clustering ran on; -1 = noise
        (HDBSCAN) or masked. Clusters are numbered by decreasing size (0 = largest).
    labels_full : numpy.ndarray of int, shape (rows, columns)
        The same at the original map's resolution (see the workflow for how). By default
        each original pixel is predicted from its own counts; one that HDBSCAN's prediction
        calls noise takes its binned block's label when that block is in a cluster, so -1
        only where the block in ``labels`` is noise or masked (``params`` counts these
        pixels as ``labels_full_from_block``).
    weights : numpy.ndarray of float, shape (ny * nx, n_clusters)
        Soft membership of every binned pixel (GMM posterior probabilities; HDBSCAN
        membership vectors, 0 for noise and masked pixels by default).
    mean_spectra : exspy EDS signal, navigation (n_clusters,)
        Mean spectrum of each cluster, sum_p w_pc counts_p / sum_p w_pc over the pixels
        ``spectrum_counts`` with the weights ``spectrum_weights``: by default the original
        pixels of ``labels_full``, hard weights (counts per original pixel); with the
        workflows' ``spectra_from="binned"`` the binned ``counts`` with the soft ``weights``
        (counts per binned pixel). Same class and metadata as the input; its
        ``metadata.Signal.Noise_properties.variance`` is ``mean_variance``.
    mean_variance : exspy EDS signal, navigation (n_clusters,)
        Counting variance of ``mean_spectra``, sum_p w_pc^2 counts_p / (sum_p w_pc)^2
        (counts^2).
    counts : exspy EDS signal, navigation (ny, nx)
        The binned counts behind ``weights``.
    sizes : numpy.ndarray of int, shape (n_clusters,)
        Binned pixels with each label.
    noise_fraction : float
        Share of the clustered (unmasked) binned pixels labelled -1.
    workflow : str
        ``"gmm"`` or ``"hdbscan"``.
    params : dict
        Every parameter that determined the result (including automatic choices such as
        the number of PCA components).
    random_state : int or None
        The seed; the same seed gives the same labels.
    timings : dict of str to float
        Seconds per stage, and ``"total"``.
    pixel_size_nm : (float, float) or None
        (dy, dx) of a binned pixel in nm.
    scree : numpy.ndarray or None
        PCA explained-variance ratios (GMM workflow).
    embedding : numpy.ndarray or None, shape (n_used, n_dims)
        The reduced features that were clustered (PCA scores or UMAP embedding).
    models : dict
        The fitted stages: ``"prepared"``, ``"reducer"``, ``"clusterer"``.
    spectrum_counts : exspy EDS signal, navigation (rows, columns), or None
        The pixels behind ``mean_spectra`` when they are not ``counts``: the original map
        (the input signal itself, not a copy; lazy when the input is lazy).
    spectrum_weights : numpy.ndarray of float32, shape (rows * columns, n_clusters), or None
        The weights behind ``mean_spectra`` when they are not ``weights``: one-hot rows of
        ``labels_full`` (zero rows for noise and masked pixels).
    """

    labels: np.ndarray
    labels_full: np.ndarray
    weights: np.ndarray
    mean_spectra: Any
    mean_variance: Any = None
    counts: Any = None
    sizes: np.ndarray | None = None
    noise_fraction: float = 0.0
    workflow: str = ""
    params: dict[str, Any] = field(default_factory=dict)
    random_state: Any = None
    timings: dict[str, float] = field(default_factory=dict)
    pixel_size_nm: tuple[float, float] | None = None
    scree: np.ndarray | None = None
    embedding: np.ndarray | None = None
    models: dict[str, Any] = field(default_factory=dict)
    spectrum_counts: Any = None
    spectrum_weights: np.ndarray | None = None

    @property
    def n_clusters(self) -> int:
        """Number of clusters (noise not counted)."""
        return int(self.weights.shape[1])

    @property
    def spectrum_pixels(self) -> tuple[Any, np.ndarray]:
        """``(counts, weights)`` behind ``mean_spectra``: ``spectrum_counts`` and
        ``spectrum_weights`` when set, else the binned ``counts`` and soft ``weights``."""
        if self.spectrum_counts is not None and self.spectrum_weights is not None:
            return self.spectrum_counts, self.spectrum_weights
        return self.counts, self.weights

    @property
    def cluster_ids(self) -> list[int]:
        """Cluster numbers, in the order of ``mean_spectra`` and the weight columns."""
        return list(range(self.n_clusters))

    def plot(self, full: bool = False, ax: Any = None, cmap: str = "tab10") -> Any:
        """Show the label map with a colour per cluster, noise in grey, and a scale bar.

        The colours are :func:`stemseg.plots.cluster_colours` (distinct for 54 clusters,
        never the grey of noise). The title describes the image shown: the binned map the
        clusters were found on, or the original pixels of ``labels_full``, with that
        image's own share of noise. A map without a pixel size says so under the image.

        Parameters
        ----------
        full : bool
            Plot ``labels_full`` (original pixels) instead of ``labels`` (binned).
        ax : matplotlib.axes.Axes, optional
            Axes to draw in (default: a new figure).
        cmap : str
            Qualitative matplotlib colour map (``"tab10"``: the suite's palette).

        Returns
        -------
        matplotlib.axes.Axes
        """
        from . import plots

        labels = np.asarray(self.labels_full if full else self.labels)
        bin_ = int(self.params.get("bin", 1))
        size = self.pixel_size_nm
        step = None if size is None else size[1] / (bin_ if full else 1)
        noise = float((labels < 0).mean()) if labels.size else 0.0
        shown = len(np.unique(labels[labels >= 0]))
        which = ("original pixels" if full or bin_ == 1 else f"binned x{bin_}")
        title = (f"{self.workflow}: {self.n_clusters} clusters, {which}, "
                 f"noise {100 * noise:.1f} %")
        if shown < self.n_clusters:
            title += f"\n{self.n_clusters - shown} cluster(s) hold no pixel of this image"
        ax = plots.label_map(labels, ax=ax, pixel_size=step, title=title,
                             n_clusters=max(self.n_clusters, 1), cmap=cmap)
        if step is None:
            ax.set_xlabel("no pixel size in the file: no scale bar", fontsize=8)
        return ax
