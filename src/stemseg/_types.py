"""Result types shared by every layer: Acquisition, Phase, Phantom and Segmentation.

These are data holders with little behaviour (convenience properties; a Segmentation also
gives its maps as HyperSpy signals and saves to and loads from a ``.hspy`` file), so that
sources (``io``, ``simulate``), stages and flows can all import them without import cycles
(see DESIGN.md, "Dependency rules"): HyperSpy and the other stemseg modules are imported
inside the methods that need them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["Acquisition", "Phase", "Phantom", "Segmentation", "SEGMENTATION_FORMAT"]


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
    image_calibration : dict or None
        Title and axes of the binned map for :meth:`label_signal` and the other map signals
        when ``counts`` is not at hand (a segmentation read by :meth:`load`):
        ``{"title": str, "axes": [y, x]}``, HyperSpy axis dictionaries (``name``, ``size``,
        ``scale``, ``offset``, ``units``). None (the workflows): taken from ``counts``.

    The label maps and probabilities are plain arrays, as above; :meth:`label_signal`,
    :meth:`probability_signal` and :meth:`noise_signal` give them as calibrated HyperSpy
    signals, and :meth:`save` / :meth:`load` write and read the result as one ``.hspy``
    file.
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
    image_calibration: dict[str, Any] | None = None

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

    # ------------------------------------------------------------ HyperSpy signals

    @property
    def _bin(self) -> int:
        return int(self.params.get("bin", 1) or 1)

    def _binned_calibration(self) -> tuple[str, list[dict[str, Any]]]:
        """(acquisition title, [y, x] axis dictionaries) of the binned map."""
        if self.image_calibration is not None:
            cal = self.image_calibration
            axes = [dict(a) for a in cal["axes"]]
            for axis, n in zip(axes, np.shape(self.labels)):
                axis["size"] = int(n)
            return str(cal.get("title", "")), axes
        from ._hs import length_factor_nm

        bin_ = self._bin
        shape = np.shape(self.labels)
        counts = self.counts
        nav = []
        if counts is not None and tuple(counts.data.shape[:-1]) == tuple(shape):
            nav = list(counts.axes_manager.navigation_axes)[::-1]  # (y, x), array order
        title = "" if counts is None else str(counts.metadata.get_item("General.title", ""))
        axes = []
        for i, (name, n) in enumerate(zip(("y", "x"), shape)):
            source = nav[i] if nav else None
            units = getattr(source, "units", None)
            units = units if isinstance(units, str) else ""
            if self.pixel_size_nm is not None:
                scale, factor = float(self.pixel_size_nm[i]), length_factor_nm(units)
                offset = (float(source.offset) * factor if source is not None and factor
                          else (bin_ - 1) * scale / (2 * bin_))
                units = "nm"
            elif source is not None:
                scale, offset = float(source.scale), float(source.offset)
            else:
                scale, offset = float(bin_), (bin_ - 1) / 2
            axes.append(dict(name=name, size=int(n), scale=scale, offset=offset,
                             units=units))
        return title, axes

    def _image_axes(self, full: bool) -> tuple[str, list[dict[str, Any]]]:
        """(acquisition title, [y, x] axis dictionaries) of the binned or original grid.

        HyperSpy's ``rebin`` puts a binned pixel at the centre of its ``bin x bin`` block,
        offset_binned = offset + (bin - 1) * scale / 2; the original grid is that undone.
        """
        title, axes = self._binned_calibration()
        if not full:
            return title, axes
        bin_ = self._bin
        out = []
        for axis, n in zip(axes, np.shape(self.labels_full)):
            scale = axis["scale"] / bin_
            out.append(dict(axis, size=int(n), scale=scale,
                            offset=axis["offset"] - (bin_ - 1) * scale / 2))
        return title, out

    def _carried_metadata(self, title: str, quantity: str) -> dict[str, Any]:
        """The acquisition's metadata (instrument, sample, general) with a new title."""
        source = self.mean_spectra if self.mean_spectra is not None else self.counts
        md: dict[str, Any] = {}
        if source is not None:
            full = source.metadata.as_dictionary()
            for key in ("Acquisition_instrument", "Sample"):
                if key in full:
                    md[key] = full[key]
            general = {k: v for k, v in full.get("General", {}).items()
                       if k not in ("title", "FileIO")}
            md["General"] = general
        md.setdefault("General", {})["title"] = title
        md["Signal"] = {"quantity": quantity}
        return md

    def _title(self, what: str, full: bool = False) -> str:
        source, _ = self._binned_calibration()
        bin_ = self._bin
        grid = "original pixels" if full or bin_ == 1 else f"binned x{bin_}"
        name = f"{self.workflow} {what}".strip()
        text = f"{name} ({self.n_clusters} clusters, {grid})"
        return f"{source}: {text}" if source else text

    def label_signal(self, full: bool = False) -> Any:
        """The label map as a calibrated HyperSpy image.

        Parameters
        ----------
        full : bool
            ``labels_full`` (original pixels) instead of ``labels`` (the binned grid the
            clusters were found on).

        Returns
        -------
        hyperspy.signals.Signal2D
            Data: the labels (int; -1 = noise or masked), shape (ny, nx) or (rows,
            columns). Signal axes ``y`` and ``x`` in nm: scale ``pixel_size_nm`` on the
            binned grid and ``pixel_size_nm / bin`` on the original pixels, offsets those
            of the acquisition (a binned pixel sits at the centre of its block, as
            HyperSpy's ``rebin`` puts it). Without a length calibration the axes keep
            the acquisition's units (or pixels). Metadata: the acquisition's instrument,
            sample and general entries, a title naming the acquisition, the workflow and
            the grid, ``Signal.quantity = "Cluster label"``. A new array: changing it
            leaves the Segmentation alone.

        Examples
        --------
        >>> from stemseg import simulate, workflows
        >>> seg = workflows.gmm(simulate.phantom("sulfide-6cation", shape=(32, 32)), 3)
        >>> s = seg.label_signal()
        >>> s.data.shape, s.axes_manager[0].scale, s.axes_manager[0].units
        ((16, 16), 80.0, 'nm')
        >>> seg.label_signal(full=True).axes_manager[0].scale
        40.0
        """
        import hyperspy.api as hs

        labels = np.array(self.labels_full if full else self.labels)
        _, axes = self._image_axes(full)
        md = self._carried_metadata(self._title("cluster labels", full), "Cluster label")
        return hs.signals.Signal2D(labels, axes=axes, metadata=md)

    def noise_signal(self, full: bool = False) -> Any:
        """Where the noise (and masked) pixels are, as a calibrated boolean image.

        Parameters
        ----------
        full : bool
            From ``labels_full`` (original pixels) instead of ``labels`` (binned).

        Returns
        -------
        hyperspy.signals.Signal2D
            Boolean, True where the label is -1 (HDBSCAN noise, or masked); same axes
            and metadata as :meth:`label_signal`.
        """
        import hyperspy.api as hs

        labels = np.asarray(self.labels_full if full else self.labels)
        _, axes = self._image_axes(full)
        md = self._carried_metadata(self._title("noise and masked pixels", full),
                                    "Noise or masked")
        return hs.signals.Signal2D(labels < 0, axes=axes, metadata=md)

    def probability_signal(self) -> Any:
        """The soft memberships ``weights`` as a stack of calibrated images, one per cluster.

        Returns
        -------
        hyperspy.signals.Signal2D
            Data shape (n_clusters, ny, nx) on the binned grid, float: GMM posterior
            probabilities, or HDBSCAN membership vectors (0 for noise and masked
            pixels). Navigation axis ``cluster`` (0, 1, ... as ``mean_spectra``); signal
            axes ``y``, ``x`` in nm as :meth:`label_signal` ``(full=False)``.
            ``s.inav[c]`` is cluster ``c``'s map. A new array.

        Examples
        --------
        >>> from stemseg import simulate, workflows
        >>> seg = workflows.gmm(simulate.phantom("sulfide-6cation", shape=(32, 32)), 3)
        >>> p = seg.probability_signal()
        >>> p.axes_manager.navigation_shape, p.axes_manager.signal_shape
        ((3,), (16, 16))
        >>> bool(abs(p.data.sum(axis=0) - 1).max() < 1e-6)
        True
        """
        import hyperspy.api as hs

        ny, nx = np.shape(self.labels)
        k = self.n_clusters
        data = np.ascontiguousarray(np.asarray(self.weights).reshape(ny, nx, k)
                                    .transpose(2, 0, 1))
        _, axes = self._image_axes(False)
        cluster = dict(name="cluster", size=k, scale=1.0, offset=0.0, units="",
                       navigate=True)
        md = self._carried_metadata(self._title("cluster probabilities"),
                                    "Membership probability")
        return hs.signals.Signal2D(data, axes=[cluster, *axes], metadata=md)

    # ------------------------------------------------------------ file

    def save(self, path: str | Path, overwrite: bool = False) -> Path:
        """Write the segmentation to one HyperSpy ``.hspy`` file, atomically.

        Layout (``FORMAT`` = ``"stemseg-segmentation-1"``): the file's signal is
        ``mean_spectra`` (same EDS class and metadata: elements, X-ray lines, beam energy)
        with ``mean_variance`` as its ``metadata.Signal.Noise_properties.variance``, so
        ``hs.load(path)`` gives the mean spectra ready for quantification. Everything else
        is in ``metadata.Segmentation``:

        * ``labels``, ``labels_full``, ``probabilities``: :meth:`label_signal`,
          :meth:`label_signal` ``(full=True)`` and :meth:`probability_signal`, calibrated
          images (in HyperSpy: ``s.metadata.Segmentation.labels.plot()``);
        * ``sizes`` and ``pixel_size_nm`` (arrays), ``scree`` and ``embedding`` when set;
        * ``noise_fraction``, ``workflow``, ``n_clusters``, ``format`` and
          ``stemseg_version``;
        * ``params_json``, ``timings_json``, ``random_state_json``: JSON text, because
          HyperSpy's metadata turns tuples and lists of numbers into other types; the
          JSON keeps tuples, so :meth:`load` gives back equal values.

        One file, not one per array, so that a result cannot be separated from its
        spectra; HDF5 (h5py) or HyperSpy reads it without stemseg.

        Not saved: ``models`` (the fitted estimators; refit with the stored ``params``
        and ``random_state``), ``counts``, ``spectrum_counts`` and ``spectrum_weights``
        (the pixels behind the spectra: as large as the map; rerun the workflow on the
        map for anything that needs them, e.g. count splitting or the mixing check).
        ``random_state`` other than an int or None is stored as its ``repr``.

        Parameters
        ----------
        path : str or pathlib.Path
            Destination ending in ``.hspy``, in an existing folder.
        overwrite : bool
            Replace an existing file. Default False: an existing file is refused and left
            as it is.

        Returns
        -------
        pathlib.Path
            The path written.

        Raises
        ------
        StemsegFileExistsError
            ``path`` exists and ``overwrite`` is False.
        StemsegFileNotFoundError
            The destination folder does not exist.
        StemsegValueError
            ``path`` does not end in ``.hspy``, or the segmentation has no mean spectra.

        Examples
        --------
        >>> import tempfile, pathlib
        >>> from stemseg import io, simulate, workflows
        >>> seg = workflows.gmm(simulate.phantom("sulfide-6cation", shape=(32, 32)), 3)
        >>> folder = pathlib.Path(tempfile.mkdtemp())
        >>> path = seg.save(folder / "seg.hspy")
        >>> again = io.load_segmentation(path)
        >>> bool((again.labels == seg.labels).all()), again.params == seg.params
        (True, True)
        """
        from . import __version__
        from ._hs import with_data
        from .errors import StemsegValueError
        from .outputs import atomic_path

        path = Path(path).expanduser()
        if path.suffix.lower() != ".hspy":
            raise StemsegValueError(
                f"Cannot save a segmentation as '{path.name}': it is written as one "
                "HyperSpy file; use a name ending in '.hspy'."
            )
        if self.mean_spectra is None:
            raise StemsegValueError(
                "This segmentation has no mean_spectra, which the file is built around; "
                "save the result of stemseg.workflows.gmm() or hdbscan()."
            )
        signal = with_data(self.mean_spectra, self.mean_spectra.data)  # data not copied
        if self.mean_variance is not None:
            signal.metadata.set_item("Signal.Noise_properties.variance", self.mean_variance)
        title, _ = self._binned_calibration()
        md: dict[str, Any] = {
            "format": SEGMENTATION_FORMAT,
            "stemseg_version": __version__,
            "workflow": str(self.workflow),
            "n_clusters": self.n_clusters,
            "noise_fraction": float(self.noise_fraction),
            "source_title": title,
            "labels": self.label_signal(),
            "labels_full": self.label_signal(full=True),
            "probabilities": self.probability_signal(),
            "params_json": json.dumps(_to_json(self.params)),
            "timings_json": json.dumps(_to_json(self.timings)),
            "random_state_json": json.dumps(_to_json(self.random_state)),
        }
        for key in ("sizes", "scree", "embedding"):
            value = getattr(self, key)
            if value is not None:
                md[key] = np.asarray(value)
        if self.pixel_size_nm is not None:
            md["pixel_size_nm"] = np.asarray(self.pixel_size_nm, dtype=float)
        signal.metadata.set_item("Segmentation", md)
        with atomic_path(path, overwrite=overwrite) as tmp:
            signal.save(tmp, overwrite=True)
        return path

    @classmethod
    def load(cls, path: str | Path) -> Segmentation:
        """Read a segmentation written by :meth:`save` (as :func:`stemseg.io.load_segmentation`).

        Parameters
        ----------
        path : str or pathlib.Path
            A ``.hspy`` file written by :meth:`save`.

        Returns
        -------
        Segmentation
            ``labels``, ``labels_full``, ``weights``, ``mean_spectra`` (same EDS class,
            elements, lines, beam energy), ``mean_variance``, ``sizes``,
            ``noise_fraction``, ``workflow``, ``params``, ``timings``, ``random_state``,
            ``pixel_size_nm``, ``scree`` and ``embedding`` equal to the saved ones;
            ``image_calibration`` keeps the maps' axes and title for
            :meth:`label_signal`. ``models`` is empty and ``counts``,
            ``spectrum_counts``, ``spectrum_weights`` are None: they are not saved.

        Raises
        ------
        StemsegFileNotFoundError
            ``path`` does not exist or is a folder.
        StemsegFileFormatError
            Not a ``.hspy`` file, unreadable, or not written by :meth:`save` (a spectrum
            image, a phantom, a file from a newer stemseg).
        """
        import hyperspy.api as hs

        from ._hs import with_data
        from .errors import StemsegFileFormatError, StemsegFileNotFoundError

        path = Path(path).expanduser()
        if not path.exists():
            raise StemsegFileNotFoundError(
                f"No such file: '{path}'. Check the path; segmentations are written by "
                "Segmentation.save(path)."
            )
        if path.is_dir():
            raise StemsegFileNotFoundError(
                f"'{path}' is a folder; pass the .hspy file written by Segmentation.save()."
            )
        if path.suffix.lower() != ".hspy":
            raise StemsegFileFormatError(
                f"'{path.name}' is not a .hspy file; a segmentation is saved as one "
                "(Segmentation.save(path) with a name ending in '.hspy'). Read spectrum "
                "images with stemseg.io.load()."
            )
        try:
            signal = hs.load(path)
        except Exception as err:  # noqa: BLE001 - any reader failure means "not readable"
            raise StemsegFileFormatError(
                f"'{path}' could not be read as a HyperSpy file ({err}); the file may be "
                "incomplete or damaged: save the segmentation again."
            ) from err
        md = None if isinstance(signal, list) else signal.metadata.get_item("Segmentation")
        fmt = None if md is None else md.get_item("format")
        if fmt is None or not str(fmt).startswith("stemseg-segmentation-"):
            raise StemsegFileFormatError(
                f"'{path}' holds no stemseg segmentation (no metadata.Segmentation written "
                "by Segmentation.save()). Read spectrum images with stemseg.io.load() and "
                "phantoms with stemseg.simulate.load()."
            )
        if fmt != SEGMENTATION_FORMAT:
            raise StemsegFileFormatError(
                f"'{path}' was written in the format '{fmt}', which this stemseg does not "
                f"read (it reads '{SEGMENTATION_FORMAT}'); update stemseg."
            )
        maps = {k: md.get_item(k) for k in ("labels", "labels_full", "probabilities")}
        md = md.as_dictionary()  # plain values (signals nested in it become "_sig_" dicts)
        missing = [k for k, v in maps.items() if not hasattr(v, "axes_manager")]
        missing += [k for k in ("params_json", "timings_json", "random_state_json",
                                "workflow") if k not in md]
        if missing:
            raise StemsegFileFormatError(
                f"'{path}' is an incomplete segmentation file (no {', '.join(missing)} in "
                "metadata.Segmentation); save the segmentation again."
            )
        del signal.metadata.Segmentation
        labels = np.asarray(maps["labels"].data)
        prob = np.asarray(maps["probabilities"].data)
        weights = np.ascontiguousarray(prob.reshape(prob.shape[0], -1).T)
        axes = list(maps["labels"].axes_manager.as_dictionary().values())
        keep = ("name", "size", "scale", "offset", "units")
        calibration = {"title": str(md.get("source_title", "")),
                       "axes": [{k: a[k] for k in keep if k in a} for a in axes]}
        variance = signal.metadata.get_item("Signal.Noise_properties.variance")
        mean_variance = None
        if variance is not None:
            # HyperSpy reads a signal nested in metadata back as a generic class: rebuild
            # it as the mean spectra's class, with their axes and metadata
            del signal.metadata.Signal.Noise_properties
            mean_variance = with_data(signal, np.asarray(variance.data))
            mean_variance.metadata.General.title = variance.metadata.get_item(
                "General.title", "variance of cluster mean spectra")
            signal.metadata.set_item("Signal.Noise_properties.variance", mean_variance)
        size = md.get("pixel_size_nm")
        return cls(
            labels=labels, labels_full=np.asarray(maps["labels_full"].data),
            weights=weights, mean_spectra=signal, mean_variance=mean_variance,
            sizes=None if md.get("sizes") is None else np.asarray(md["sizes"]),
            noise_fraction=float(md.get("noise_fraction", 0.0)),
            workflow=str(md["workflow"]),
            params=_from_json(json.loads(md["params_json"])),
            random_state=_from_json(json.loads(md["random_state_json"])),
            timings=_from_json(json.loads(md["timings_json"])),
            pixel_size_nm=None if size is None else (float(size[0]), float(size[1])),
            scree=None if md.get("scree") is None else np.asarray(md["scree"]),
            embedding=None if md.get("embedding") is None else np.asarray(md["embedding"]),
            image_calibration=calibration,
        )


#: The ``metadata.Segmentation.format`` of the files :meth:`Segmentation.save` writes.
SEGMENTATION_FORMAT = "stemseg-segmentation-1"


def _to_json(value: Any) -> Any:
    """``value`` as JSON data; tuples and arrays tagged so that :func:`_from_json` restores them.

    Objects JSON cannot hold become ``{"__repr__": repr(value)}`` (read back as that text).
    """
    if isinstance(value, dict):
        return {str(k): _to_json(v) for k, v in value.items()}
    if isinstance(value, tuple):
        return {"__tuple__": [_to_json(v) for v in value]}
    if isinstance(value, list):
        return [_to_json(v) for v in value]
    if isinstance(value, np.ndarray):
        return {"__ndarray__": value.tolist(), "dtype": value.dtype.str}
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return {"__repr__": repr(value)}


def _from_json(value: Any) -> Any:
    if isinstance(value, list):
        return [_from_json(v) for v in value]
    if isinstance(value, dict):
        if set(value) == {"__tuple__"}:
            return tuple(_from_json(v) for v in value["__tuple__"])
        if set(value) == {"__ndarray__", "dtype"}:
            return np.asarray(value["__ndarray__"], dtype=np.dtype(value["dtype"]))
        if set(value) == {"__repr__"}:
            return value["__repr__"]
        return {k: _from_json(v) for k, v in value.items()}
    return value
