"""Sliders and selectors (ipywidgets) that steer the workflows in a notebook.

Every explorer computes the heavy results once -- binning and scaling
(:func:`stemseg.preprocess.preprocess`), the PCA fit, the UMAP embedding -- or takes them
from a finished :class:`stemseg.Segmentation` (``segmentation=``), and caches them. A
slider then redoes only the cheap step:

* :class:`ElementMapExplorer` -- per-map vs common colour scaling of element maps (plot
  only);
* :class:`GMMExplorer` -- number of PCA components (scree, knee) and of clusters (BIC),
  a Gaussian-mixture refit on the cached PCA scores;
* :class:`HDBSCANExplorer` -- ``min_cluster_size`` (pixels and nm^2) and ``min_samples``,
  an HDBSCAN refit on the cached UMAP embedding; colour the embedding by cluster or by
  truth (plot only);
* :class:`QuantExplorer` -- k-factors (theoretical at the beam energy, or your own) and
  the intensity method, a Cliff-Lorimer requantification of the cached mean spectra; the
  dose (counts relative to the map) scales the counting error bars and the z-score of the
  two most similar clusters (plot only).

Figures are rendered to PNG into an :class:`ipywidgets.Image` (no interactive backend
needed, so they work the same in JupyterLab, on Binder and in a headless test). Every
control is a public attribute: ``explorer.n_clusters.value = 4`` triggers exactly what
moving the slider does, and ``explorer.timings`` records how long the last update of each
kind took (``"refit"``, ``"plot"``, in seconds). Display an explorer by leaving it as the
last expression of a cell, or with ``display(explorer)``.
"""

from __future__ import annotations

import html
import io
import time
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from . import analysis, plots
from .reduce import MAX_COMPONENTS
from .errors import StemsegValueError

__all__ = ["ElementMapExplorer", "GMMExplorer", "HDBSCANExplorer", "QuantExplorer"]


def _widgets() -> Any:
    import ipywidgets

    return ipywidgets


class _Explorer:
    """A figure rendered to PNG in an Image widget, controls above it, a status line."""

    dpi = 72

    def __init__(self, figsize: tuple[float, float]) -> None:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure

        w = _widgets()
        # drawn at the PNG's resolution: savefig at another dpi than the figure's redoes
        # every text layout (measured 0.46 -> 0.25 s for the GMM explorer's redraw)
        self.fig = Figure(figsize=figsize, layout="constrained", dpi=self.dpi)
        FigureCanvasAgg(self.fig)
        self.image = w.Image(format="png", layout=w.Layout(max_width="100%"))
        self.status = w.HTML()
        self.timings: dict[str, float] = {}
        self.n_renders = 0

    # ------------------------------------------------------------------ rendering
    def _render(self, relayout: bool = True) -> None:
        """Draw the figure into the Image widget.

        One Agg draw at the figure's own dpi, encoded by Pillow (``savefig`` drew the
        figure twice with a layout engine and re-laid out all text at its other dpi).
        ``relayout=False`` (plot-only updates: colours, highlights, scaling) keeps the
        axes where the last constrained layout put them instead of recomputing it.
        Measured on the 2-core machine, GMM explorer's highlight: 0.64 s (savefig) ->
        0.25 s.
        """
        from PIL import Image

        engine = self.fig.get_layout_engine()
        freeze = not relayout and self.n_renders > 0 and engine is not None
        if freeze:
            self.fig.set_layout_engine("none")
        try:
            canvas = self.fig.canvas
            canvas.draw()
            size = canvas.get_width_height()
            rgba = Image.frombuffer("RGBA", size, canvas.buffer_rgba(), "raw", "RGBA", 0, 1)
        finally:
            if freeze:
                self.fig.set_layout_engine(engine)
        buf = io.BytesIO()
        rgba.convert("RGB").save(buf, format="png")
        self.image.value = buf.getvalue()
        self.n_renders += 1

    def _timed(self, kind: str, fn: Any, *args: Any) -> None:
        start = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fn(*args)
        self.timings[kind] = time.perf_counter() - start

    def _controls(self) -> list[Any]:  # pragma: no cover - overridden
        return []

    @property
    def widget(self) -> Any:
        """The ipywidgets box: controls, status line, figure."""
        w = _widgets()
        if not hasattr(self, "_box"):
            self._box = w.VBox([*self._controls(), self.status, self.image])
        return self._box

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        """The live widget, plus its figure as it is now as a static PNG.

        JupyterLab shows the widget; a static page without a widget manager (the rendered
        book, nbconvert, a notebook viewer) shows the PNG and the status line instead.
        """
        import base64

        bundle = dict(self.widget._repr_mimebundle_(**kwargs) or {})
        if self.image.value:
            bundle["image/png"] = base64.b64encode(self.image.value).decode("ascii")
        status = html.unescape(_strip_tags(self.status.value)).strip()
        bundle["text/plain"] = (f"{type(self).__name__} (interactive in JupyterLab)"
                                + (f": {status}" if status else ""))
        return bundle

    def close(self) -> None:
        """Close the widgets (frees the kernel-side comms)."""
        for child in self._controls() + [self.status, self.image, self.widget]:
            child.close()


def _strip_tags(text: str) -> str:
    import re

    return re.sub(r"<[^>]+>", " ", text)


def _html_table(df: pd.DataFrame, floatfmt: str = "{:.3g}") -> str:
    return df.to_html(float_format=lambda v: floatfmt.format(v), border=0)


# ======================================================================================
# element maps
# ======================================================================================


class ElementMapExplorer(_Explorer):
    """Element maps with a per-map vs common colour-scaling toggle (claim E1).

    Parameters
    ----------
    maps : sequence of Signal2D
        E.g. :func:`stemseg.analysis.element_maps`.
    mask : array of bool, optional
        Pixels for the counts per pixel in the titles and for the apparent overlaps (e.g.
        the sample without its support).
    scaling : {"per-map", "common"}
    percentile : float
        Percentile shown at full brightness.
    ncols : int

    Attributes
    ----------
    scaling : ipywidgets.ToggleButtons
    percentile : ipywidgets.FloatSlider
    overlap : pandas.DataFrame
        Apparent overlap of every pair under the current scaling
        (:func:`stemseg.analysis.apparent_overlap`), most similar first.
    """

    def __init__(self, maps: Sequence[Any], *, mask: Any = None, scaling: str = "per-map",
                 percentile: float = 99.0, ncols: int = 4) -> None:
        import math

        w = _widgets()
        n = len(maps)
        ncols = max(1, min(ncols, n))
        nrows = math.ceil(n / ncols)
        super().__init__((2.6 * ncols + 0.6, 2.6 * nrows + 0.4))
        self.maps = list(maps)
        self.mask = mask
        self.scaling = w.ToggleButtons(
            options=[("per-map autoscale", "per-map"), ("one common scale", "common")],
            value=scaling, description="scaling")
        self.percentile = w.FloatSlider(
            value=percentile, min=90.0, max=100.0, step=0.5,
            description="colour top (percentile)", style={"description_width": "initial"},
            tooltip="the percentile of the counts drawn white; brighter pixels saturate",
            continuous_update=False)
        self.pairs = w.HTML()
        plots.element_maps(self.maps, scaling=scaling, mask=mask, percentile=percentile,
                           ncols=ncols, fig=self.fig)
        self.scaling.observe(self._on_change, names="value")
        self.percentile.observe(self._on_change, names="value")
        self._timed("plot", self._update)

    def _controls(self) -> list[Any]:
        w = _widgets()
        return [w.HBox([self.scaling, self.percentile]), self.pairs]

    def _on_change(self, change: Any = None) -> None:
        self._timed("plot", self._update)

    def _update(self) -> None:
        plots.update_element_maps(self.fig, self.maps, self.scaling.value,
                                  self.percentile.value)
        self.overlap = analysis.apparent_overlap(
            self.maps, self.scaling.value, self.mask, percentile=self.percentile.value
        ).sort_values("overlap", ascending=False).reset_index(drop=True)
        top = self.overlap.head(5)
        self.pairs.value = ("<b>Pairs that look most alike</b> (overlap of displayed "
                            "brightness, 1 = identical): " + "; ".join(
                                f"{html.escape(a)}/{html.escape(b)} {v:.2f}"
                                for a, b, v in top.itertuples(index=False)))
        self._render(relayout=False)


# ======================================================================================
# GMM workflow
# ======================================================================================


class GMMExplorer(_Explorer):
    """Workflow 1 with sliders: PCA components (scree + knee) and clusters (BIC).

    Binning, scaling and the PCA fit are done once (or taken from ``segmentation``); a
    slider refits only the Gaussian mixture on the cached scores.

    Parameters
    ----------
    data : Acquisition, Phantom or EDS spectrum image
    segmentation : Segmentation, optional
        A result of :func:`stemseg.workflows.gmm` on ``data``: its preprocessing and PCA
        are reused (nothing heavy is recomputed).
    n_clusters : int
    n_components : int, optional
        Default: the segmentation's, else the scree knee (at least n_clusters - 1).
    bin, max_components, random_state, n_init
        As :func:`stemseg.workflows.gmm`.
    truth : numpy.ndarray of int (y, x), optional
        Truth labels at the original resolution; adds the ARI (binned) to the status.
    names : dict, optional
        Truth label -> phase name, for the status line.
    bic_range : iterable of int
        Cluster numbers of the BIC curve.
    bic_n_init : int
        Initialisations per point of the BIC curve (default 1, fast).

    Attributes
    ----------
    n_components, n_clusters : ipywidgets.IntSlider
    highlight : ipywidgets.Dropdown
        Cluster whose mean spectrum is drawn thick (plot only).
    labels : numpy.ndarray (binned y, x)
        Current labels, clusters numbered by size, -1 = masked.
    weights : numpy.ndarray (n_binned_pixels, k)
    mean_spectra : EDS signal
    ari : float or None
    """

    def __init__(self, data: Any, *, segmentation: Any = None, n_clusters: int = 5,
                 n_components: int | None = None, bin: int = 2,
                 max_components: int = MAX_COMPONENTS,
                 random_state: int | None = 0, n_init: int | None = None,
                 truth: np.ndarray | None = None, names: Mapping[int, str] | None = None,
                 bic_range: Sequence[int] = range(1, 11), bic_n_init: int = 1) -> None:
        from . import cluster, preprocess, reduce

        w = _widgets()
        super().__init__((12.0, 7.0))
        self.data = data
        self.random_state = random_state
        self.n_init = cluster.DEFAULT_N_INIT if n_init is None else int(n_init)
        self.bic_range = list(bic_range)
        self.bic_n_init = int(bic_n_init)
        if segmentation is not None and segmentation.workflow == "gmm":
            self.prepared = segmentation.models["prepared"]
            self.reducer = segmentation.models["reducer"]
            n_components = n_components or int(segmentation.params["n_components"])
        else:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                self.prepared = preprocess.preprocess(data, bin)
                self.reducer = reduce.PCAReducer(max_components=max_components,
                                                 random_state=random_state
                                                 ).fit(self.prepared.X)
        self.scores = self.reducer.pca_.transform(self.prepared.X)
        self.knee = int(self.reducer.knee_)
        if n_components is None:
            n_components = max(self.knee, n_clusters - 1, 1)
        self.truth = None if truth is None else analysis.bin_labels(
            truth, self.prepared.bin, self.prepared.nav_shape)
        self.names = dict(names or {})
        self._bic: dict[int, pd.DataFrame] = {}
        self._fits: dict[tuple[int, int], Any] = {}
        self._segmentations: dict[tuple[int, int], Any] = {}
        self.n_components = w.IntSlider(value=int(n_components), min=1,
                                        max=self.scores.shape[1],
                                        description="PCA comps", continuous_update=False)
        self.n_clusters = w.IntSlider(value=int(n_clusters), min=1,
                                      max=max(12, int(n_clusters)), description="clusters",
                                      continuous_update=False)
        self.highlight = w.Dropdown(options=[("all", -1)], value=-1,
                                    description="highlight")
        self.n_components.observe(self._on_refit, names="value")
        self.n_clusters.observe(self._on_refit, names="value")
        self.highlight.observe(self._on_plot, names="value")
        self._timed("refit", self._refit)

    def _controls(self) -> list[Any]:
        w = _widgets()
        return [w.HBox([self.n_components, self.n_clusters, self.highlight])]

    # ------------------------------------------------------------------ computation
    def bic_table(self, n_components: int | None = None) -> pd.DataFrame:
        """BIC curve on the first ``n_components`` PCA scores (cached)."""
        from . import cluster

        nc = int(n_components or self.n_components.value)
        if nc not in self._bic:
            ks = [k for k in self.bic_range if k <= self.scores.shape[0]]
            self._bic[nc] = cluster.bic_curve(self.scores[:, :nc], ks, n_init=self.bic_n_init,
                                              random_state=self.random_state)
        return self._bic[nc]

    def _fit(self, nc: int, k: int) -> Any:
        from . import cluster

        key = (nc, k)
        if key not in self._fits:
            self._fits[key] = cluster.fit_gmm(self.scores[:, :nc], k, n_init=self.n_init,
                                              random_state=self.random_state)
        return self._fits[key]

    def _refit(self) -> None:
        from . import assemble, cluster

        nc, k = self.n_components.value, self.n_clusters.value
        model = self._fit(nc, k)
        s = self.scores[:, :nc]
        used = self.prepared.used.ravel()
        labels = np.full(used.size, -1, dtype=int)
        labels[used] = model.predict(s)
        weights = np.zeros((used.size, k))
        weights[used] = model.predict_proba(s)
        labels, weights, _ = cluster.order_by_size(labels, weights)
        self.model = model
        self.labels = labels.reshape(self.prepared.nav_shape)
        self.weights = weights
        self.mean_spectra, self.mean_variance = assemble.mean_spectra(self.prepared.counts,
                                                                       weights)
        self.ari = None
        self.key = None  # with a truth: one number, colour and name per matched phase
        if self.truth is not None:
            from . import metrics

            self.ari = metrics.ari(self.labels, self.truth)
            if self.names:
                self.key = analysis.cluster_key(self.labels, self.truth, self.names)
        legend = self.key["legend"] if self.key else [f"cluster {i}" for i in range(k)]
        options = [("all", -1)] + [(text, i) for i, text in enumerate(legend)]
        current = self.highlight.value if self.highlight.value < k else -1
        self.highlight.unobserve(self._on_plot, names="value")
        try:
            self.highlight.options = options
            self.highlight.value = current
        finally:
            self.highlight.observe(self._on_plot, names="value")
        self._draw()

    def _on_refit(self, change: Any = None) -> None:
        self._timed("refit", self._refit)

    def _on_plot(self, change: Any = None) -> None:
        self._timed("plot", self._draw_spectra_only)

    # ------------------------------------------------------------------ drawing
    def _draw(self) -> None:
        self.fig.clear()
        axd = self.fig.subplot_mosaic([["scree", "bic", "map"], ["spectra"] * 3],
                                      height_ratios=[1.1, 1.0])
        self._axes = axd
        nc, k = self.n_components.value, self.n_clusters.value
        plots.scree(self.reducer.explained_variance_ratio_, knee=self.knee, chosen=nc,
                    ax=axd["scree"])
        plots.bic(self.bic_table(nc), chosen=k, ax=axd["bic"])
        px = self.prepared.pixel_size_nm
        title = f"GMM: {k} clusters on {nc} PCA components"
        if self.ari is not None:
            title += f"\nARI vs truth {self.ari:.3f} (binned)"
        shown, n_colours = self.labels, k
        if self.key:  # renumbered to the matched phases: the truth's colours
            shown, n_colours = self.key["labels"], self.key["n_colours"]
        plots.label_map(shown, ax=axd["map"], n_clusters=n_colours, title=title,
                        names=self.key["names"] if self.key else None,
                        pixel_size=None if px is None else px[1] * self.prepared.bin)
        self._draw_spectra(render=False)
        sizes = np.bincount(self.labels[self.labels >= 0].ravel(), minlength=k)
        self.status.value = (f"scree knee: <b>{self.knee}</b> components; "
                             f"lowest BIC at <b>{self.bic_table(nc).attrs.get('best')}</b> "
                             f"clusters; cluster sizes (binned px): {sizes.tolist()}")
        self._render()

    def _draw_spectra(self, render: bool = True) -> None:
        ax = self._axes["spectra"]
        ax.clear()
        h = self.highlight.value
        plots.spectra(self.mean_spectra, ax=ax, highlight=None if h < 0 else h, log=True,
                      labels=self.key["legend"] if self.key else None,
                      colours=plots.key_colours(self.key),
                      title="weighted mean spectra (counts per binned pixel)")
        if render:
            self._render(relayout=False)

    def _draw_spectra_only(self) -> None:
        self._draw_spectra(render=True)

    # ------------------------------------------------------------------ results
    def segmentation(self) -> Any:
        """The full :func:`stemseg.workflows.gmm` result for the current sliders (cached)."""
        from . import workflows

        key = (self.n_components.value, self.n_clusters.value)
        if key not in self._segmentations:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                self._segmentations[key] = workflows.gmm(
                    self.data, n_clusters=key[1], n_components=key[0],
                    bin=self.prepared.bin, random_state=self.random_state,
                    n_init=self.n_init, max_components=self.scores.shape[1])
        return self._segmentations[key]


# ======================================================================================
# HDBSCAN workflow
# ======================================================================================


class HDBSCANExplorer(_Explorer):
    """Workflow 2 with sliders: ``min_cluster_size`` (px and nm^2) and ``min_samples``.

    The UMAP embedding is computed once (or taken from ``segmentation``); a slider refits
    only HDBSCAN on it (a fraction of a second for a 64 x 64 binned map).

    Parameters
    ----------
    data : Acquisition, Phantom or EDS spectrum image
    segmentation : Segmentation, optional
        A result of :func:`stemseg.workflows.hdbscan` on ``data`` (its preprocessing and
        embedding are reused).
    min_cluster_size : float
        In original pixels.
    min_samples : int, optional
        In binned pixels; None = HDBSCAN's default (the binned min_cluster_size).
    bin, n_components, n_neighbors, random_state
        As :func:`stemseg.workflows.hdbscan` (used only without ``segmentation``).
    truth : numpy.ndarray of int (y, x), optional
        Truth labels; enables colouring by truth and the ARI.
    names : dict, optional
        Truth label -> phase name.
    max_cluster_size : int, optional
        Upper end of the slider in original pixels (default a quarter of the map).

    Attributes
    ----------
    min_cluster_size, min_samples : ipywidgets.IntSlider
        ``min_samples`` 0 means HDBSCAN's default.
    colour_by : ipywidgets.ToggleButtons
        "cluster" or "truth" (plot only).
    dims : ipywidgets.Dropdown
        Embedding dimensions shown (plot only).
    labels, noise_fraction, n_found, ari
        Of the current fit (binned grid; -1 = noise).
    """

    def __init__(self, data: Any, *, segmentation: Any = None,
                 min_cluster_size: float = 200, min_samples: int | None = None,
                 bin: int = 2, n_components: int = 4, n_neighbors: int = 30,
                 random_state: int | None = 0, truth: np.ndarray | None = None,
                 names: Mapping[int, str] | None = None,
                 max_cluster_size: int | None = None) -> None:
        from . import preprocess, reduce

        w = _widgets()
        super().__init__((11.0, 4.6))
        self.data = data
        self.random_state = random_state
        self.reducer = None
        # pixels UMAP was fitted on (None: all); HDBSCAN is refitted on them and predicts
        # the others, as stemseg.workflows.hdbscan does on maps above its umap_sample
        self.sample = None
        if segmentation is not None and segmentation.workflow == "hdbscan":
            self.prepared = segmentation.models["prepared"]
            self.embedding = np.asarray(segmentation.embedding)
            self.reducer = segmentation.models.get("reducer")
            self.sample = segmentation.models.get("umap_sample")
            self._params = dict(segmentation.params)
        else:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                self.prepared = preprocess.preprocess(
                    data, bin, energy_bin=preprocess.HDBSCAN_ENERGY_BIN)
                self.reducer = reduce.UMAPReducer(n_components=n_components,
                                                  n_neighbors=n_neighbors,
                                                  random_state=random_state)
                self.embedding = self.reducer.fit_transform(self.prepared.X)
            self._params = dict(n_components=n_components, n_neighbors=n_neighbors,
                                **self.prepared.params)
        b = self.prepared.bin
        px = self.prepared.pixel_size_nm
        self.pixel_area_nm2 = None if px is None else px[0] * px[1]
        n_orig = self.prepared.original_shape[0] * self.prepared.original_shape[1]
        top = int(max_cluster_size or max(n_orig // 4, 4 * b * b))
        self.truth = None if truth is None else analysis.bin_labels(
            truth, b, self.prepared.nav_shape)
        self.names = dict(names or {})
        self._fits: dict[tuple[int, int, str], Any] = {}
        self.min_cluster_size = w.IntSlider(
            value=int(min_cluster_size), min=2 * b * b, max=top, step=b * b,
            description="min size (px)", continuous_update=False,
            style={"description_width": "initial"})
        self.area = w.Label()
        self.min_samples = w.IntSlider(value=int(min_samples or 0), min=0, max=100,
                                       description="min_samples", continuous_update=False)
        self.colour_by = w.ToggleButtons(
            options=["cluster", "truth"] if self.truth is not None else ["cluster"],
            value="cluster", description="colour by")
        nd = self.embedding.shape[1]
        pairs = [(i, j) for i in range(nd) for j in range(i + 1, nd)]
        self.dims = w.Dropdown(options=[(f"dims {i + 1}-{j + 1}", (i, j)) for i, j in pairs],
                               value=pairs[0], description="embedding")
        self.min_cluster_size.observe(self._on_refit, names="value")
        self.min_samples.observe(self._on_refit, names="value")
        self.colour_by.observe(self._on_plot, names="value")
        self.dims.observe(self._on_plot, names="value")
        self._timed("refit", self._refit)

    def _controls(self) -> list[Any]:
        w = _widgets()
        return [w.HBox([self.min_cluster_size, self.area, self.min_samples]),
                w.HBox([self.colour_by, self.dims])]

    # ------------------------------------------------------------------ computation
    @property
    def min_cluster_size_binned(self) -> int:
        from . import cluster

        return cluster.binned_min_cluster_size(self.min_cluster_size.value, "px",
                                               self.prepared.bin)

    def _fit(self, weights: str = "hard") -> tuple[Any, np.ndarray, np.ndarray]:
        """(clusterer, labels, soft weights) of the used pixels at the sliders' values.

        The sliders' refits ask for ``"hard"`` weights: the labels are the same for every
        kind, and soft memberships of the pixels outside a UMAP sample
        (``hdbscan.membership_vector``, ~1 s per 10 000 pixels) are computed only when
        :meth:`segmentation` needs them.
        """
        from . import cluster

        mcs = self.min_cluster_size_binned
        ms = self.min_samples.value or None
        key = (mcs, ms or 0, weights)
        if key not in self._fits:
            if ms is not None:
                ms = min(ms, self.embedding.shape[0] - 1)
            model, labels, soft, _ = cluster.hdbscan_on_sample(
                self.embedding, self.sample, mcs, min_samples=ms, weights=weights)
            self._fits[key] = (model, labels, soft)
        return self._fits[key]

    def _model(self) -> Any:
        return self._fit()[0]

    def _refit(self) -> None:
        from . import cluster, metrics

        model, fitted, _ = self._fit()
        used = self.prepared.used.ravel()
        labels = np.full(used.size, -1, dtype=int)
        labels[used] = fitted
        labels, _, self._order = cluster.order_by_size(labels)
        self.model = model
        self.labels = labels.reshape(self.prepared.nav_shape)
        self.n_found = int(labels.max()) + 1
        self.noise_fraction = cluster.noise_fraction(self.labels, self.prepared.used)
        self.ari = None if self.truth is None else metrics.ari(self.labels, self.truth)
        self.key = None  # with a truth and names: clusters numbered after their phase
        if self.truth is not None and self.names:
            self.key = analysis.cluster_key(self.labels, self.truth, self.names)
        if self.pixel_area_nm2 is not None:
            self.area.value = f"= {self.min_cluster_size.value * self.pixel_area_nm2:,.0f} nm²"
        ms = self.min_samples.value or "auto"
        text = (f"<b>{self.n_found}</b> clusters, noise <b>{100 * self.noise_fraction:.1f} %"
                f"</b> (min_cluster_size {self.min_cluster_size.value} px = "
                f"{self.min_cluster_size_binned} binned px, min_samples {ms})")
        if self.ari is not None:
            text += f"; ARI vs truth {self.ari:.3f} (binned, noise as a label)"
        self.status.value = text
        self._draw()

    def _on_refit(self, change: Any = None) -> None:
        self._timed("refit", self._refit)

    def _on_plot(self, change: Any = None) -> None:
        self._timed("plot", self._recolour)

    # ------------------------------------------------------------------ drawing
    def _embedding_labels(self) -> tuple[np.ndarray, int, Mapping[int, str] | None]:
        used = self.prepared.used.ravel()
        if self.colour_by.value == "truth" and self.truth is not None:
            lab = self.truth.ravel()[used]
            k = self.key["n_colours"] if self.key else int(self.truth.max()) + 1
            return lab, k, self.names
        if self.key:  # the same number, colour and name as the truth's phase
            return self.key["labels"].ravel()[used], self.key["n_colours"], self.key["names"]
        return self.labels.ravel()[used], max(self.n_found, 1), None

    def _draw(self) -> None:
        self.fig.clear()
        axd = self.fig.subplot_mosaic([["map", "embedding"]], width_ratios=[1.1, 1.0])
        self._axes = axd
        px = self.prepared.pixel_size_nm
        shown, k = self.labels, max(self.n_found, 1)
        if self.key:
            shown, k = self.key["labels"], self.key["n_colours"]
        plots.label_map(shown, ax=axd["map"], n_clusters=k,
                        names=self.key["names"] if self.key else None,
                        title=f"HDBSCAN: {self.n_found} clusters, noise "
                              f"{100 * self.noise_fraction:.1f} %",
                        pixel_size=None if px is None else px[1] * self.prepared.bin)
        lab, k, names = self._embedding_labels()
        plots.embedding(self.embedding, lab, ax=axd["embedding"], dims=self.dims.value,
                        n_colours=k, names=names,
                        title=f"UMAP embedding coloured by {self.colour_by.value}")
        self._render()

    def _recolour(self) -> None:
        ax = self._axes["embedding"]
        lab, k, names = self._embedding_labels()
        dims = self.dims.value
        title = f"UMAP embedding coloured by {self.colour_by.value}"
        if getattr(ax, "stemseg_dims", None) != dims:
            ax.clear()
            plots.embedding(self.embedding, lab, ax=ax, dims=dims, n_colours=k, names=names,
                            title=title)
        else:
            ax.stemseg_scatter.set_facecolors(plots.label_colours(lab[ax.stemseg_index], k))
            legend = ax.get_legend()
            if legend is not None:
                legend.remove()
            plots._label_legend(ax, lab, names, k)
            ax.set_title(title, fontsize=10)
        self._render(relayout=False)

    # ------------------------------------------------------------------ results
    def segmentation(self, weights: str = "membership") -> Any:
        """A :class:`stemseg.Segmentation` of the current fit, without recomputing UMAP.

        ``labels_full`` copies the binned labels onto their blocks (``"repeat"``, see
        :mod:`stemseg.workflows`); weights and mean spectra as
        :func:`stemseg.workflows.hdbscan` (noise weight 0).
        """
        from .assemble import build_segmentation

        model, fitted, soft = self._fit(weights)
        params = dict(self._params, workflow="hdbscan",
                      min_cluster_size=self.min_cluster_size.value,
                      min_cluster_size_units="px",
                      min_cluster_size_binned=self.min_cluster_size_binned,
                      min_samples=self.min_samples.value or None, weights=weights,
                      noise="zero", labels_full="repeat", spectra_from="binned")
        return build_segmentation(
            self.data, self.prepared, fitted, soft, None, params=params, workflow="hdbscan",
            random_state=self.random_state, embedding=self.embedding,
            models=dict(prepared=self.prepared, reducer=self.reducer, clusterer=model))


# ======================================================================================
# quantification
# ======================================================================================


class QuantExplorer(_Explorer):
    """Cliff-Lorimer compositions of a segmentation's clusters with editable k-factors.

    The mean spectra and their variances are taken from the segmentation (nothing is
    re-clustered); changing a k-factor or the intensity method requantifies them
    (:func:`stemseg.quant.quantify`, about a second).

    The **dose** slider (relative to this map's counts, 1/10000 to 100 times) is plot only:
    it asks "with this many counts, could I tell the clusters apart?". Counting errors of
    Poisson data scale as 1 / sqrt(counts), so the at. % error bars become
    ``sigma / sqrt(dose)`` (the propagated counting error of :func:`stemseg.quant.quantify`,
    exact to first order; the expected compositions do not change), and the z-score of a
    composition difference between two clusters grows as sqrt(dose). The figure shows the
    compositions with +-1 s.d. bars at that dose (the table's convention too) and, for the
    two most similar clusters (lowest largest-element z), z against dose with the 3 s.d.
    line. The range reaches 1e-4 so that the 3 s.d. crossing of well-separated clusters
    (a few 1e-4 of a 150-count-per-pixel phantom map) lies on the slider.

    Parameters
    ----------
    segmentation : Segmentation
    clusters : sequence of int, optional
        Clusters to show (default all).
    names : dict, optional
        Cluster -> name (column headers).
    kfactors : dict, optional
        Starting k-factors (default theoretical at the beam energy,
        :func:`stemseg.xray.kfactors`).
    beam_energy_kV : float, optional
        Default: the spectra's metadata.
    method : {"model", "windows"}
    dose : float
        Starting dose factor (default 1 = the measured counts), between 1e-4 and 100.

    Attributes
    ----------
    dose : ipywidgets.FloatLogSlider
        Counts relative to the measured map (plot only).
    kfactor_inputs : dict of str to ipywidgets.BoundedFloatText
        One per line; set ``.value`` to override.
    method : ipywidgets.ToggleButtons
    reset : ipywidgets.Button
        Back to the theoretical k-factors.
    table : pandas.DataFrame
        The current :func:`stemseg.quant.quantify` result (at the measured dose).
    sigma_at_dose : pandas.Series
        ``table["sigma"] / sqrt(dose)``, indexed like ``table``.
    separation : pandas.DataFrame
        One row per pair of shown clusters: ``a``, ``b``, ``element`` (the one that
        differs most in units of its error), ``z`` at the measured dose; sorted, most
        similar pair first. ``z * sqrt(dose)`` is the z at another dose.
    timings : dict
        ``"quantify"`` (a requantification) and ``"plot"`` (a dose change), seconds.
    """

    DOSE_RANGE = (1e-4, 1e2)

    def __init__(self, segmentation: Any, *, clusters: Sequence[int] | None = None,
                 names: Mapping[int, str] | None = None,
                 kfactors: Mapping[str, float] | None = None,
                 beam_energy_kV: float | None = None, method: str = "model",
                 dose: float = 1.0) -> None:
        from . import xray

        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure

        w = _widgets()
        super().__init__((10.5, 3.8))
        # fixed margins, no layout engine: a dose change then draws the figure once
        self.fig = Figure(figsize=(10.5, 3.8))
        FigureCanvasAgg(self.fig)
        self.segmentation = segmentation
        self.clusters = None if clusters is None else list(clusters)
        self.names = dict(names or {})
        lo, hi = self.DOSE_RANGE
        if not (isinstance(dose, (int, float)) and lo <= dose <= hi):
            raise StemsegValueError(
                f"dose={dose!r} is outside the slider's range; give a factor between {lo:g} "
                f"and {hi:g} (1 = the measured counts).")
        spectra = segmentation.mean_spectra
        lines = spectra.metadata.get_item("Sample.xray_lines")
        if not lines:
            elements = spectra.metadata.get_item("Sample.elements") or []
            if not elements:
                raise StemsegValueError(
                    "The spectra have no elements; add them with "
                    "acq.eds.add_elements([...]) before clustering.")
            lines = None
        beam = beam_energy_kV or spectra.metadata.get_item(
            "Acquisition_instrument.TEM.beam_energy")
        if lines is None:
            lines = xray.principal_lines(elements, beam)
        self.lines = list(lines)
        self.beam_energy_kV = beam
        self.theoretical = xray.kfactors(self.lines, beam)
        start = dict(self.theoretical if kfactors is None else kfactors)
        self.kfactor_inputs = {
            ln: w.BoundedFloatText(value=round(float(start[ln]), 4), min=1e-3, max=1e3,
                                   step=0.01, description=ln,
                                   layout=w.Layout(width="160px"),
                                   style={"description_width": "55px"})
            for ln in self.lines}
        self.dose = w.FloatLogSlider(value=float(dose), base=10, min=np.log10(lo),
                                     max=np.log10(hi), step=0.25, readout_format=".3g",
                                     description="dose ×", continuous_update=False)
        self.method = w.ToggleButtons(options=["model", "windows"], value=method,
                                      description="intensities")
        self.reset = w.Button(description="theoretical k-factors")
        self.output = w.HTML()
        counts = getattr(segmentation, "counts", None)
        data = getattr(counts, "data", counts)
        self.counts_per_pixel = (None if data is None or np.ndim(data) < 2 else
                                 float(np.asarray(data).reshape(-1, np.shape(data)[-1])
                                       .sum(1).mean()))
        for box in self.kfactor_inputs.values():
            box.observe(self._on_change, names="value")
        self.method.observe(self._on_change, names="value")
        self.dose.observe(self._on_dose, names="value")
        self.reset.on_click(self._on_reset)
        self._on_change()

    @property
    def kfactors(self) -> dict[str, float]:
        """The k-factors in use, line -> value."""
        return {ln: float(b.value) for ln, b in self.kfactor_inputs.items()}

    @property
    def sigma_at_dose(self) -> pd.Series:
        return self.table["sigma"] / np.sqrt(float(self.dose.value))

    def _on_reset(self, _: Any = None) -> None:
        for ln, box in self.kfactor_inputs.items():
            box.unobserve(self._on_change, names="value")
            box.value = round(float(self.theoretical[ln]), 4)
            box.observe(self._on_change, names="value")
        self._on_change()

    def _on_change(self, change: Any = None) -> None:
        from . import quant

        start = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            table = quant.quantify(self.segmentation, kfactors=self.kfactors,
                                   lines=self.lines, method=self.method.value)
        if self.clusters is not None:
            table = table[table["cluster"].isin(self.clusters)].reset_index(drop=True)
        self.table = table
        self.separation = self._separation(table)
        wide = table.assign(value=[f"{v:.2f} ± {s:.2f}" for v, s in
                                   zip(table["at_pct"], table["sigma"])]
                            ).pivot(index="element", columns="cluster", values="value")
        wide.columns = [self.names.get(c, f"cluster {c}") for c in wide.columns]
        self.output.value = (f"<b>at. % ± 1 s.d. (counting, measured dose), "
                             f"{self.method.value} intensities</b>" + wide.to_html(border=0))
        self._draw()
        self.timings["quantify"] = time.perf_counter() - start

    def _on_dose(self, change: Any = None) -> None:
        self._timed("plot", self._update_dose)

    # ------------------------------------------------------------------ computation
    @staticmethod
    def _separation(table: pd.DataFrame) -> pd.DataFrame:
        """Most different element of every cluster pair, in units of its counting error."""
        x = table.pivot(index="cluster", columns="element", values="at_pct")
        s = table.pivot(index="cluster", columns="element", values="sigma")
        rows = []
        ids = list(x.index)
        for i, a in enumerate(ids):
            for b in ids[i + 1:]:
                diff = (x.loc[a] - x.loc[b]).abs()
                err = np.sqrt(s.loc[a] ** 2 + s.loc[b] ** 2)
                z = np.where(err > 0, diff / err.where(err > 0, 1.0),
                             np.where(diff > 0, np.inf, 0.0))
                j = int(np.argmax(z))
                rows.append({"a": a, "b": b, "element": x.columns[j], "z": float(z[j])})
        return (pd.DataFrame(rows, columns=["a", "b", "element", "z"])
                .sort_values("z").reset_index(drop=True))

    def _name(self, c: Any) -> str:
        return str(self.names.get(c, f"cluster {c}"))

    # ------------------------------------------------------------------ drawing
    def _draw(self) -> None:
        """Build the figure for the current table (after a requantification)."""
        from matplotlib.ticker import NullLocator

        table = self.table
        self.fig.clear()
        ax, axz = self.fig.subplots(1, 2, width_ratios=[2.3, 1.0], gridspec_kw=dict(
            left=0.06, right=0.97, bottom=0.13, top=0.91, wspace=0.2))
        self._axes = {"composition": ax, "z": axz}
        clusters = list(dict.fromkeys(table["cluster"]))
        elements = list(dict.fromkeys(table["element"]))
        k = len(clusters)
        colours = plots.cluster_colours(max([int(c) + 1 for c in clusters] + [k, 1]))
        width = 0.8 / max(k, 1)
        self._errorbars = []
        for i, c in enumerate(clusters):
            part = (table["cluster"] == c).to_numpy()
            sub = table[part].set_index("element").reindex(elements)
            x = np.arange(len(elements)) - 0.4 + (i + 0.5) * width
            ax.bar(x, sub["at_pct"], width, label=self._name(c), color=colours[int(c)])
            bars = ax.vlines(x, sub["at_pct"], sub["at_pct"], color="k", lw=0.9)
            self._errorbars.append((bars, x, sub["at_pct"].to_numpy(),
                                    sub["sigma"].to_numpy()))
        ax.set_xticks(np.arange(len(elements)))
        ax.set_xticklabels(elements, fontsize=9)
        ax.set_ylabel("at. %")
        top = float(table["at_pct"].max()) if len(table) else 1.0
        ax.set_ylim(0, 1.25 * top)  # fixed: the error bars grow past it at low dose
        ax.legend(fontsize=7, ncol=2, loc="upper left")
        lo, hi = self.DOSE_RANGE
        axz.axhline(3.0, color="tab:red", ls="--", lw=1, label="3 s.d.")
        self._dose_line = axz.axvline(1.0, color="0.4", lw=1)
        axz.set_xscale("log")
        axz.set_xlim(lo, hi)
        axz.xaxis.set_minor_locator(NullLocator())  # fewer tick artists: a faster redraw
        axz.set_xlabel("dose (× this map)")
        axz.set_ylabel("z of the largest difference")
        self._marker = None
        pair = self._closest_pair()
        if pair is not None:
            doses = np.logspace(np.log10(lo), np.log10(hi), 50)
            z = max(pair["z"], 1e-3)
            axz.plot(doses, z * np.sqrt(doses), color="tab:blue",
                     label=f"{self._name(pair['a'])} vs {self._name(pair['b'])}")
            (self._marker,) = axz.plot([1.0], [z], "o", color="tab:blue")
            axz.set_yscale("log")  # z grows as sqrt(dose): a straight line on log-log
            axz.set_ylim(min(1.0, 0.5 * z * np.sqrt(lo)), None)  # keep the 3 s.d. line in
            axz.yaxis.set_minor_locator(NullLocator())
            axz.set_title(f"most similar pair: {pair['element']}", fontsize=10)
        else:
            axz.set_title("fewer than two clusters shown", fontsize=10)
        axz.legend(fontsize=7, loc="upper left")
        self._update_dose(relayout=True)  # new axes: lay them out

    def _closest_pair(self) -> Any:
        if len(self.separation) and np.isfinite(self.separation["z"].iloc[0]):
            return self.separation.iloc[0]
        return None

    def _update_dose(self, relayout: bool = False) -> None:
        """Error bars, dose marker and status for the current dose (plot only)."""
        f = float(self.dose.value)
        for bars, x, y, s in self._errorbars:
            e = s / np.sqrt(f)  # +-1 s.d., as in the table below the figure
            bars.set_segments([[(xi, yi - ei), (xi, yi + ei)] for xi, yi, ei in zip(x, y, e)])
        ax = self._axes["composition"]
        ax.set_title(f"composition ± 1 s.d. (counting) at dose × {f:.3g}", fontsize=10)
        self._dose_line.set_xdata([f, f])
        text = (f"dose × <b>{f:.3g}</b>"
                + ("" if self.counts_per_pixel is None else
                   f" (≈ {f * self.counts_per_pixel:,.3g} counts per binned pixel)")
                + f": counting error up to <b>{self.sigma_at_dose.max():.2f}</b> at. % "
                  "(1 s.d.)")
        pair = self._closest_pair()
        if pair is not None:
            z_now = pair["z"] * np.sqrt(f)
            f_min = (3.0 / pair["z"]) ** 2 if pair["z"] > 0 else np.inf
            self._marker.set_data([f], [max(z_now, 1e-3 * np.sqrt(f))])
            verdict = "distinguishable" if z_now >= 3 else "<b>not</b> distinguishable"
            text += (f"; the most similar clusters, {html.escape(self._name(pair['a']))} and "
                     f"{html.escape(self._name(pair['b']))}, differ most in "
                     f"{html.escape(str(pair['element']))}: z = <b>{z_now:.1f}</b>, "
                     f"{verdict} at 3 s.d. (needs dose × {f_min:.2g} or more)")
        else:
            text += "; fewer than two clusters shown: no pair to compare"
        self.status.value = text
        self._render(relayout=relayout)

    def _controls(self) -> list[Any]:
        w = _widgets()
        boxes = list(self.kfactor_inputs.values())
        rows = [w.HBox(boxes[i:i + 4]) for i in range(0, len(boxes), 4)]
        return [self.dose, w.HBox([self.method, self.reset]), *rows]

    @property
    def widget(self) -> Any:
        """The ipywidgets box: dose slider, method, k-factors, status, figure, table."""
        w = _widgets()
        if not hasattr(self, "_box"):
            self._box = w.VBox([*self._controls(), self.status, self.image, self.output])
        return self._box

    def close(self) -> None:
        """Close the widgets (frees the kernel-side comms)."""
        for child in [self.dose, self.method, self.reset, *self.kfactor_inputs.values(),
                      self.status, self.image, self.output, self.widget]:
            child.close()


# ======================================================================================
# multimodal (HAADF + EDS chips; Ter-Petrosyan et al. 2024)
# ======================================================================================


#: Which segmentation each method-specific control of :class:`MultimodalExplorer` feeds.
MULTIMODAL_CONTROL_SCOPE = {
    "threshold": "community detection",
    "n_clusters": "agglomerative clustering",
    "support": "few-shot classification",
    "eds_weight": "the ensemble of community detection or few-shot",
}


def multimodal_controls(method: str, modality: str) -> dict[str, bool]:
    """Which method-specific controls of the multimodal explorer change the result.

    Parameters
    ----------
    method : {"community", "agglomerative", "fewshot"}
    modality : {"haadf", "eds", "ensemble"}

    Returns
    -------
    dict of str to bool
        For ``threshold``, ``n_clusters``, ``support`` and ``eds_weight``: True when the
        control is used by this method and modality. The EDS weight only mixes the two
        modalities of the community and few-shot ensembles (vector voting has no weight).
    """
    return {"threshold": method == "community",
            "n_clusters": method == "agglomerative",
            "support": method == "fewshot",
            "eds_weight": modality == "ensemble" and method in ("community", "fewshot")}


def multimodal_hint(method: str, modality: str) -> str:
    """One line naming the greyed-out controls and the method each belongs to.

    Parameters
    ----------
    method, modality : str
        As for :func:`multimodal_controls`.

    Returns
    -------
    str
        E.g. ``"Greyed out (not used here): threshold -- community detection only; ..."``;
        empty when every control applies.
    """
    off = [f"{name.replace('n_clusters', 'clusters').replace('_', ' ')} -- "
           f"{MULTIMODAL_CONTROL_SCOPE[name]} only"
           for name, used in multimodal_controls(method, modality).items() if not used]
    return ("Greyed out (not used by this method and modality): " + "; ".join(off)
            if off else "")


class MultimodalExplorer(_Explorer):
    """Chip segmentation of a registered HAADF + EDS map with every choice on a control.

    The heavy steps are cached per chip size: the chips (:func:`stemseg.multimodal.chip`),
    both modalities' standardised features and their cosine affinity matrices. Moving a
    control then redoes only what depends on it:

    * ``opacity`` -- the label overlay on the HAADF image (plot only, no recomputation);
    * ``method``, ``modality``, ``threshold``, ``eds_weight``, ``support``, ``n_clusters``
      -- one segmentation on the cached features / affinities (``timings["segment"]``);
      results are cached too, so going back to a setting costs only the drawing;
    * ``chip_size`` -- chipping and features for a size not seen yet
      (``timings["chip"]``), then the segmentation.

    Four controls feed one method only (:func:`multimodal_controls`): ``threshold``
    (community detection), ``n_clusters`` (agglomerative), ``support`` (few-shot) and
    ``eds_weight`` (the community and few-shot ensembles). The ones the current method
    and modality do not use are disabled, and ``hint`` says which method they belong to.

    Parameters
    ----------
    data : Acquisition or Phantom
        With ``eds`` (y, x | E) and a registered ``haadf`` (Signal2D, same grid).
    size : int, optional
        Chip edge in px; default the phantom's ``truth["chip_px"]``, else 15.
    sizes : (int, int), optional
        Range of the chip-size slider (px); default (max(4, size // 2), 2 * size).
    method : {"community", "agglomerative", "fewshot"}
    modality : {"haadf", "eds", "ensemble"}
    threshold : {"mode", "mean", "median"}
        Community detection's similarity statistic.
    eds_weight : float
        Weight of the EDS modality in the community and few-shot ensembles (the HAADF
        weight is ``1 - eds_weight``); 0.5 averages them, 0.55 is the paper's choice for
        the irradiated defective film.
    n_clusters : int, optional
        Agglomerative clustering; default the number of truth regions, else 4.
    support : dict, optional
        Few-shot support set ``{class: 4 chips}`` (flat indices or (row, col)) at the
        starting chip size; for other sizes each support chip is moved to the chip that
        holds its centre pixel. With a truth the choices ``"interior"`` and ``"random"``
        (:func:`stemseg.multimodal.support_from_truth`) are added.
    truth : numpy.ndarray of int, shape (y, x), optional
        Pixel truth (default ``data.labels`` when present): adds the AMI against truth
        to the status line and the truth map to the figure.
    names : dict of int to str, optional
        Truth label -> region name (default from ``data.phases``).
    random_state : int or None
        Seed of Louvain and of the random support set.

    Attributes
    ----------
    opacity, chip_size, eds_weight, n_clusters : ipywidgets sliders
    method, modality, threshold : ipywidgets.ToggleButtons
    support : ipywidgets.Dropdown
    hint : ipywidgets.HTML
        Names the disabled controls and the method each belongs to.
    result : stemseg.multimodal.MultimodalResult
        The current segmentation.
    chips : stemseg.multimodal.Chips
        The chips at the current size.
    truth_chips : numpy.ndarray of int (n_rows, n_cols) or None
    ami : float or None
        AMI of the current labels against the chip truth.
    n_computed : dict of str to int
        How many times each heavy step ran (``"chip"``, ``"features"``, ``"affinity"``,
        ``"segment"``): a control that should be cheap leaves the heavy counts alone.
    """

    def __init__(self, data: Any, *, size: int | None = None,
                 sizes: tuple[int, int] | None = None, method: str = "community",
                 modality: str = "ensemble", threshold: str = "mode",
                 eds_weight: float = 0.5, n_clusters: int | None = None,
                 support: Mapping[Any, Sequence] | None = None,
                 truth: np.ndarray | None = None, names: Mapping[int, str] | None = None,
                 random_state: int | None = 0) -> None:
        from . import multimodal as mm

        if getattr(data, "haadf", None) is None:
            raise StemsegValueError(
                "MultimodalExplorer needs a registered HAADF image (data.haadf is None); "
                "load the file with its HAADF/ADF image, or use "
                "stemseg.multimodal.segment(chips, modality='eds') without the explorer.")
        for name, value, allowed in (("method", method, mm.METHODS),
                                     ("modality", modality, mm.MODALITIES),
                                     ("threshold", threshold, mm.THRESHOLDS)):
            if value not in allowed:
                raise StemsegValueError(f"{name}={value!r} is not known; use one of "
                                        f"{', '.join(map(repr, allowed))}.")
        if not 0.0 <= float(eds_weight) <= 1.0:
            raise StemsegValueError(f"eds_weight={eds_weight!r} must lie in [0, 1] (the "
                                    "HAADF weight is 1 - eds_weight), e.g. 0.5 or 0.55.")
        w = _widgets()
        super().__init__((11.0, 4.4))
        self.data = data
        self.random_state = random_state
        truth_info = getattr(data, "truth", None) or {}
        size = int(size or truth_info.get("chip_px", 15))
        lo, hi = sizes or (max(4, size // 2), 2 * size)
        n_min = min(int(n) for n in data.eds.data.shape[:-1])
        hi = min(int(hi), n_min)
        if not 2 <= int(lo) <= size <= hi:
            raise StemsegValueError(
                f"chip size {size} px is outside sizes=({lo}, {hi}) (and the map is "
                f"{n_min} px across); give 2 <= sizes[0] <= size <= sizes[1] <= {n_min}.")
        self.pixel_truth = truth if truth is not None else getattr(data, "labels", None)
        if names is None and self.pixel_truth is not None and hasattr(data, "phases"):
            names = {k: p.name for k, p in enumerate(data.phases)}
        self.names = dict(names or {})
        self.base_size = size
        self._base_support = None
        self._cache: dict[int, dict[str, Any]] = {}
        self._results: dict[tuple, Any] = {}
        self.n_computed = {"chip": 0, "features": 0, "affinity": 0, "segment": 0}
        self._prepare(size)
        if support is not None:  # validated once at the starting size
            self._base_support = mm._support_indices(support, self._cache[size]["chips"].grid)
        options = []
        if self._base_support is not None:
            options.append(("given", "given"))
        if self.pixel_truth is not None:
            options += [("4 interior chips per region (truth)", "interior"),
                        ("4 random chips per region (truth)", "random")]
        if n_clusters is None:
            n_clusters = (int(np.unique(self._cache[size]["truth"]).size)
                          if self._cache[size]["truth"] is not None else 4)

        self.opacity = w.FloatSlider(value=0.45, min=0.0, max=1.0, step=0.05,
                                     description="overlay", continuous_update=False)
        self.chip_size = w.IntSlider(value=size, min=int(lo), max=hi, step=1,
                                     description="chip (px)", continuous_update=False)
        self.size_nm = w.Label()
        self.method = w.ToggleButtons(options=list(mm.METHODS), value=method,
                                      description="method")
        self.modality = w.ToggleButtons(options=list(mm.MODALITIES), value=modality,
                                        description="modality")
        self.threshold = w.ToggleButtons(options=list(mm.THRESHOLDS), value=threshold,
                                         description="threshold")
        self.eds_weight = w.FloatSlider(value=float(eds_weight), min=0.0, max=1.0,
                                        step=0.05, description="EDS weight",
                                        continuous_update=False, readout_format=".2f")
        self.n_clusters = w.IntSlider(value=int(n_clusters), min=2, max=12,
                                      description="clusters", continuous_update=False)
        self.support = w.Dropdown(options=options or [("(none: give support=)", "")],
                                  value=(options[0][1] if options else ""),
                                  description="support")
        self.hint = w.HTML()
        for name, scope in MULTIMODAL_CONTROL_SCOPE.items():
            getattr(self, name).tooltip = f"used by {scope} only"
        self.opacity.observe(self._on_plot, names="value")
        self.chip_size.observe(self._on_chip, names="value")
        for control in (self.method, self.modality, self.threshold, self.eds_weight,
                        self.n_clusters, self.support):
            control.observe(self._on_segment, names="value")
        self._enable_controls()
        self._timed("segment", self._segment)

    def _enable_controls(self) -> None:
        """Grey out the controls the current method and modality do not use; say why."""
        used = multimodal_controls(self.method.value, self.modality.value)
        for name, on in used.items():
            getattr(self, name).disabled = not on
        hint = multimodal_hint(self.method.value, self.modality.value)
        self.hint.value = f"<i>{hint}</i>" if hint else ""

    def _controls(self) -> list[Any]:
        w = _widgets()
        return [w.HBox([self.opacity, self.chip_size, self.size_nm]),
                w.HBox([self.method, self.modality]),
                w.HBox([self.threshold, self.eds_weight]),
                w.HBox([self.support, self.n_clusters]),
                self.hint]

    # ------------------------------------------------------------------ heavy, cached
    def _prepare(self, size: int) -> dict[str, Any]:
        """Chips, standardised features and affinities at one chip size (cached)."""
        from . import multimodal as mm

        if size in self._cache:
            return self._cache[size]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            chips = mm.chip(self.data, size=size)
            self.n_computed["chip"] += 1
            feats = {
                "haadf": mm._standardise(mm.haadf_features(chips),
                                         mm._standardise_how("auto", "haadf", "fft")),
                "eds": mm._standardise(mm.eds_features(chips),
                                       mm._standardise_how("auto", "eds", "spectra")),
            }
            self.n_computed["features"] += 1
        truth = None if self.pixel_truth is None else mm.truth_labels(
            np.asarray(self.pixel_truth), chips)
        entry = {"chips": chips, "features": feats, "affinity": {}, "truth": truth}
        self._cache[size] = entry
        return entry

    def _affinity(self, size: int, modality: str) -> np.ndarray:
        from . import multimodal as mm

        entry = self._prepare(size)
        if modality not in entry["affinity"]:
            entry["affinity"][modality] = mm.cosine_affinity(entry["features"][modality])
            self.n_computed["affinity"] += 1
        return entry["affinity"][modality]

    def support_set(self, size: int | None = None) -> dict[Any, list[int]] | None:
        """The few-shot support set (flat chip indices) chosen in ``support`` at a size."""
        from . import multimodal as mm

        size = int(size or self.chip_size.value)
        entry = self._prepare(size)
        choice = self.support.value
        if choice in ("interior", "random"):
            return mm.support_from_truth(entry["truth"], how=choice, names=self.names,
                                         random_state=self.random_state)
        if choice == "given" and self._base_support is not None:
            grid = entry["chips"].grid
            s0 = self.base_size
            out = {}
            for name, flat in self._base_support.items():
                rows, cols = np.divmod(np.asarray(flat), self._cache[s0]["chips"].grid[1])
                r = np.minimum(((rows + 0.5) * s0 / size).astype(int), grid[0] - 1)
                c = np.minimum(((cols + 0.5) * s0 / size).astype(int), grid[1] - 1)
                out[name] = (r * grid[1] + c).tolist()
            return out
        return None

    def _key(self) -> tuple:
        method = self.method.value
        key = (self.chip_size.value, method, self.modality.value)
        if method == "community":
            key += (self.threshold.value,)
        if method == "agglomerative":
            key += (self.n_clusters.value,)
        if method == "fewshot":
            key += (self.support.value,)
        if self.modality.value == "ensemble" and method != "agglomerative":
            key += (round(self.eds_weight.value, 4),)
        return key

    def _compute(self) -> Any:
        from . import multimodal as mm

        size, method, modality = self.chip_size.value, self.method.value, self.modality.value
        entry = self._prepare(size)
        w_eds = float(self.eds_weight.value)
        weights = (1.0 - w_eds, w_eds)
        if method == "fewshot" and self.support_set(size) is None:
            raise StemsegValueError(
                "the few-shot method needs a support set: pass support={class: 4 chips} "
                "to MultimodalExplorer, or a truth for the automatic choices.")
        self.n_computed["segment"] += 1
        if method == "community":
            mods = {"haadf": weights[0], "eds": weights[1]} if modality == "ensemble" \
                else {modality: 1.0}
            affinity = sum(wt * self._affinity(size, m) for m, wt in mods.items() if wt > 0)
            labels, t = mm.community_labels(affinity, self.threshold.value,
                                            random_state=self.random_state)
            grid = entry["chips"].grid
            return mm.MultimodalResult(
                labels=labels.reshape(grid), method=method, modality=modality,
                params={"threshold": self.threshold.value, "weights": weights,
                        "random_state": self.random_state, "size_px": size},
                modality_labels={} if modality == "ensemble" else
                {modality: labels.reshape(grid)},
                threshold_value=t, size_px=size)
        return mm.segment(entry["chips"], method, modality, features=entry["features"],
                          standardize="none", n_clusters=self.n_clusters.value,
                          support=self.support_set(size), weights=weights,
                          random_state=self.random_state)

    def _segment(self) -> None:
        from . import metrics
        from . import multimodal as mm

        key = self._key()
        if key not in self._results:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                self._results[key] = self._compute()
        self.result = self._results[key]
        entry = self._cache[self.chip_size.value]
        self.chips = entry["chips"]
        self.truth_chips = entry["truth"]
        self.ami = None if self.truth_chips is None else metrics.ami(self.result.labels,
                                                                     self.truth_chips)
        nm = self.chips.size_nm
        self.size_nm.value = "" if nm is None else f"= {nm:.2f} nm, grid " \
            f"{self.chips.grid[0]} x {self.chips.grid[1]}"
        text = (f"<b>{self.result.method}</b> on <b>{self.result.modality}</b>: "
                f"<b>{self.result.n_classes}</b> classes")
        if self.result.threshold_value is not None:
            text += f" ({mm.describe_threshold(self.result.threshold_value)})"
        if self.ami is not None:
            text += f"; AMI vs truth <b>{self.ami:.3f}</b>"
        self.status.value = text
        self._draw()

    def _on_segment(self, change: Any = None) -> None:
        self._enable_controls()
        self._timed("segment", self._segment)

    def _on_chip(self, change: Any = None) -> None:
        start = time.perf_counter()
        self._timed("chip", self._prepare, int(self.chip_size.value))
        self._timed("segment", self._segment)
        self.timings["chip"] = time.perf_counter() - start

    def _on_plot(self, change: Any = None) -> None:
        self._timed("plot", self._set_opacity)

    # ------------------------------------------------------------------ drawing
    def _draw(self) -> None:
        from matplotlib.colors import ListedColormap

        from . import multimodal as mm

        self.fig.clear()
        with_truth = self.truth_chips is not None
        axes = self.fig.subplots(1, 2 if with_truth else 1, squeeze=False)[0]
        self._axes = axes
        haadf = np.asarray(self.data.haadf.data, dtype=float)
        lo, hi = np.percentile(haadf, [1, 99])
        ax = axes[0]
        ax.imshow(haadf, cmap="gray", vmin=lo, vmax=hi, interpolation="nearest")
        labels = self.result.labels
        if with_truth:  # clusters matched to a region take its colour (plots.phase_colour)
            labels, _ = analysis.align_labels(labels, self.truth_chips)
        pix = mm.pixel_labels(labels, self.chips)
        k = max(int(labels.max()) + 1, 1)
        colours = (plots.phase_colours(k, self.names) if with_truth and self.names
                   else plots.cluster_colours(k))
        overlay = np.ma.masked_less(pix, 0)
        self._overlay = ax.imshow(overlay, cmap=ListedColormap(colours), vmin=-0.5,
                                  vmax=k - 0.5, alpha=self.opacity.value,
                                  interpolation="nearest")
        ax.set_title(f"{self.result.method} / {self.result.modality}: "
                     f"{self.result.n_classes} classes"
                     + ("" if self.ami is None else f", AMI vs truth {self.ami:.2f}"),
                     fontsize=10)
        ax.set_xticks([])
        ax.set_yticks([])
        plots.add_scalebar(ax, plots.pixel_size_nm(self.data.haadf))
        if with_truth and self.names:
            plots.phase_map(self.truth_chips, self.names, ax=axes[1],
                            title="truth per chip (majority)", pixel_size=self.chips.size_nm)
        elif with_truth:
            plots.label_map(self.truth_chips, ax=axes[1], title="truth per chip (majority)",
                            pixel_size=self.chips.size_nm, colorbar_label="region")
        self._render()

    def _set_opacity(self) -> None:
        self._overlay.set_alpha(self.opacity.value)
        self._render(relayout=False)


__all__ += ["MultimodalExplorer", "multimodal_controls", "multimodal_hint",
            "MULTIMODAL_CONTROL_SCOPE"]
