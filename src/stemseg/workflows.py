"""The two clustering workflows of Eggeman et al. (2025), end to end.

* :func:`gmm` -- workflow 1: bin x2, RobustScaler, PCA (components up to the scree change
  point), Gaussian mixture with a user-chosen number of clusters.
* :func:`hdbscan` -- workflow 2: bin x2, RobustScaler, UMAP to 4 dimensions, HDBSCAN
  (Euclidean) whose minimum cluster size is a physical area.

Both are thin functions over two estimators in the scikit-learn style,
:class:`GMMSegmenter` and :class:`HDBSCANSegmenter`: their parameters are declared with
constraints (``_parameter_constraints``) and all checked when ``fit`` starts, before the map
is touched, so a bad value fails at once with a :class:`stemseg.errors.StemsegValueError`
that names it and the allowed values. ``fit(data)`` returns the estimator;
``segmentation()`` the :class:`stemseg.Segmentation` (``stemseg._types``) that
:func:`stemseg.quant.quantify` takes directly; ``predict(spectra)`` labels original pixels
with the fitted stages. A lazy (dask-backed) input, or a ``dask.distributed`` ``client=``,
sends either fit to :mod:`stemseg.streaming`, which runs the same stages in passes over the
file in bounded memory; both paths end in the one assembler,
:func:`stemseg.assemble.build_segmentation`.

Labels at the original resolution (``labels_full``)
---------------------------------------------------
The clustering runs on the binned map. Copying each binned label onto its ``bin x bin``
block caps the agreement with truth where phases are only a few pixels wide (ARI ~0.94 at
x2 measured on such a phantom): every block straddling a boundary is half wrong. Instead,
by default (``labels_full="predict"``) every *original* pixel is pushed through the fitted
stages -- its counts multiplied by ``bin**2`` so that their expected value matches a binned
pixel's, the same energy crop, Poisson weighting and scaler, then

* GMM workflow: the fitted PCA and ``GaussianMixture.predict``;
* HDBSCAN workflow: the fitted (PCA and) UMAP -- new points placed at the weighted mean
  embedding of their nearest binned pixels, see :meth:`stemseg.reduce.UMAPReducer.transform`
  -- and ``hdbscan.approximate_predict`` (which may call a pixel noise, -1); a pixel whose
  nearest fitted pixels all share one cluster label takes that label directly (the result
  approximate_predict gave for every such pixel measured, at a fraction of the cost).

The unbinned pixels are noisier (a quarter of the counts at x2), but the model was fitted on
the cleaner binned ones, so this recovers boundaries to the original pixel. Pixels in the
rows/columns cropped by binning are predicted the same way.

An original pixel that the prediction calls noise takes the label of its binned block when
HDBSCAN put that block in a cluster (the block's counts, ``bin**2`` times the pixel's,
decided it; the pixel's own cannot); ``params["labels_full_from_block"]`` counts these
pixels. So ``labels_full`` is noise only inside noise blocks of ``labels``, and ``labels``
and ``noise_fraction`` (HDBSCAN's own noise, binned) are unchanged. Why: on the steel /
MoS2 / PbS phantom at ~50 counts per pixel (seed 8) the clustering put 199 of the 203
binned PbS pixels in the PbS cluster and only one in noise, yet 72 of the 867 original PbS
pixels came out noise (PbS recall 0.893): their nearest fitted pixels were mostly PbS with
some MoS2 (median 70 % PbS among 30; 46 of them had no noise neighbour), and
approximate_predict called the point placed at their mean embedding, between the two
clusters, noise. With the block's label the PbS recall is 0.963 (292 pixels took it; the
blocks of 61 of the 72 were PbS). Over seeds 0-9 at ~50 counts per pixel 7-44 pixels (292 at
seed 8) took their block's label, 77-100 % of them joining the cluster of their true phase
(the majority label of their nearest fitted pixels instead: 14-98 %), and 0-2 noise pixels
were left. On the 128 x 128 sulfide phantom (min_cluster_size 200 px, seeds 0-9) 0-380
pixels took their block's label, 70 % of them on a phase boundary; ARI against truth
moved by -0.002 to +0.011 and jalpaite kept recall and precision >= 0.99. The GMM workflow
never predicts noise, so is unaffected.

``labels_full="repeat"`` (or when prediction is impossible: HDBSCAN found no cluster) copies
the binned labels onto their blocks and extends the edge labels over cropped rows/columns.
Masked pixels are -1 either way. ``weights`` and ``mean_spectra`` always refer to the binned
map.

Subsampled UMAP (HDBSCAN workflow, maps above ``umap_sample`` binned pixels)
-----------------------------------------------------------------------------
UMAP's cost grows with the number of points (an exact neighbour search in ~2000 channels
and the layout optimisation); at 256 x 256 binned x2 (16 384 pixels) it was ~90 % of the
workflow. By default UMAP and HDBSCAN are therefore fitted on a uniform random sample of
4096 binned pixels (seeded by ``random_state``) with ``min_cluster_size`` (and
``min_samples``) scaled by the sample fraction, since a region of m pixels keeps about
m * f of them; the other binned pixels are placed in the embedding like the unbinned ones
(nearest sampled pixels in the leading principal components) and labelled by
``hdbscan.approximate_predict``, their soft weights by ``hdbscan.membership_vector``. When a
region of ``min_cluster_size`` would keep fewer than 8 sampled pixels the sample grows (up
to every pixel). Measured on the 256 x 256 sulfide phantom: ARI against truth 0.992
(sample) vs 0.994 (every pixel); maps up to 4096 binned pixels (e.g. 128 x 128 at x2) are
not subsampled. ``umap_sample=None`` fits on every pixel.

Energy channels of the HDBSCAN workflow (``energy_bin``)
--------------------------------------------------------
UMAP's neighbour graph is built from distances over every channel of the scaled spectra. At
low dose most of the ~2000 channels of 10 eV hold 0 or 1 count, and their noise swamps the
few channels where phases differ: on a steel / MoS2 / PbS map at ~50 counts per pixel the
paper's recipe (``energy_bin=1``) merged the PbS particles (5 % of the map) into MoS2 at
every seed tried (recall 0), where GMM kept them. Summing 4 channels per feature (40 eV,
still a third of a peak width) keeps them (recall 0.96-0.97, ARI 0.996) and changes none of
the claims on the sulfide phantom (seeds 0-9). A PCA before UMAP also kept PbS but cut the
sulfide phases by thickness, so it is not the default. Wider sums were measured too: 8
channels kept PbS at all ten seeds (recall 0.98-0.99) but made leaf selection lose a sulfide
phase at seed 1 (with 500 and with 200 UMAP epochs), 6 split the majority wurtzite at
another; 4 is the widest sum under which every sulfide claim held (PbS recall 0.95-0.97 at
nine seeds, 0.895 at the tenth, with 200 epochs; 0.963-0.983 at all ten since a pixel
predicted as noise takes its block's label, see above).
``energy_bin=1`` gives the paper's exact recipe.

Mean spectra (``spectra_from``)
-------------------------------
By default (``spectra_from="full"``) the mean spectrum of cluster c is the mean of the
*original* pixels that ``labels_full`` assigns to c -- hard weights, whatever binning the
clustering used, noise, masked and isolated pixels left out (:func:`spectrum_labels`: a
pixel with no neighbour in its own cluster is mostly a prediction gone astray in single-pixel
noise, and a few of them from a large phase shift a small cluster's composition):
``mean_spectra[c] = sum_{p: labels_full_p = c} counts_p / n_c`` (counts per original pixel,
full energy axis), variance ``sum counts_p / n_c^2`` (Poisson counts). Two shortcuts of the
paper's recipe mix phases into a cluster's spectrum and are therefore not the default:
a binned pixel whose block straddles a boundary carries the neighbour's counts (on a map of
5-7 px particles, 30 % of a minority cluster's counts came from the matrix around it), and
soft weights add a share of every other cluster's pixels. ``spectra_from="binned"`` keeps the
paper's recipe -- ``sum_p w_pc counts_p / sum_p w_pc`` over binned pixels with the soft
``weights`` (counts per *binned* pixel) -- for comparison. Either way the variance is stored as
``mean_variance`` and as the mean spectra's ``metadata.Signal.Noise_properties.variance``, and
the pixels and weights behind the spectra as ``spectrum_counts`` / ``spectrum_weights`` (what
:func:`stemseg.quant.quantify` uses for its bootstrap and its mixing check).
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np
from sklearn.base import BaseEstimator

from . import cluster as _cluster
from . import preprocess as _pre
from . import reduce as _reduce
from ._blocks import is_lazy
from ._params import Anything, Boolean, Instance, Number, Options, Whole, check_params
from ._progress import Timer, closes_timers
from ._types import Segmentation
from .assemble import (SPECTRA_FROM, build_segmentation, check_distinct_spectra,
                       hdbscan_pixel_neighbours, hdbscan_predict_pixels, mean_spectra,
                       pixel_neighbour_count,
                       noise_covariances, umap_sample_indices, upsample_labels)
from .errors import StemsegValueError
from .preprocess import HDBSCAN_ENERGY_BIN

__all__ = ["GMMSegmenter", "HDBSCANSegmenter", "gmm", "hdbscan", "mean_spectra",
           "upsample_labels"]

#: Principal components in which the HDBSCAN workflow searches the neighbours of unbinned
#: pixels for ``labels_full`` (the scree curves of EDS maps flatten well before 30).
_SEARCH_COMPONENTS = 30

# ------------------------------------------------------------------ shared constraints
_RANDOM_STATE = [Whole(0), None, Instance(np.random.RandomState, np.random.Generator,
                                            what="a numpy RandomState or Generator")]
_PREPROCESS_CONSTRAINTS: dict[str, list[Any]] = {
    "bin": [Whole(1, accept_float=True)],
    "random_state": _RANDOM_STATE,
    "energy_bin": [Whole(1)],
    "energy_range": [Anything("a (low, high) pair in keV"), None],
    "mask": [Anything("a boolean map of the pixels to use"), None],
    "poisson": [Boolean()],
    "scaler": [Options("robust"), None],
    "labels_full": [Options("predict", "repeat")],
    "spectra_from": [Options(*SPECTRA_FROM)],
    "progress": [Boolean(), None],
    "client": [Anything("a dask.distributed.Client"), None],
}
_HINTS = {
    "n_clusters": "Use bic_curve to compare candidates.",
    "bin": ("1 = no binning; use e.g. bin=2 (non-integer binning would mix counts of "
            "neighbouring pixels)."),
    "umap_sample": "It counts binned pixels; None fits UMAP on every pixel.",
    "min_samples": "Smaller = less noise; None uses the binned min_cluster_size.",
}


class _Segmenter(BaseEstimator):
    """Common part of the two estimators: checks, the in-memory/streamed dispatch, the
    fitted attributes, ``predict`` and ``segmentation``."""

    _parameter_constraints: dict[str, list[Any]] = {}

    def _check_params(self) -> None:
        """Every declared constraint, then the cheap checks of other stages (energy range,
        client): all before the map is touched."""
        params = self.get_params()
        check_params(params, self._parameter_constraints, _HINTS)
        if params["energy_range"] is not None:
            _pre._check_range(params["energy_range"])
        if params["client"] is not None:
            from . import streaming

            streaming._check_client(params["client"])

    @closes_timers
    def fit(self, data: Any, y: Any = None) -> _Segmenter:
        """Segment a spectrum image (in memory or lazy).

        Parameters
        ----------
        data : Acquisition, Phantom or EDS spectrum image (y, x | energy)
            Raw counts; not modified.
        y : ignored

        Returns
        -------
        self
        """
        self._check_params()
        if self.client is not None or is_lazy(data):
            from .streaming import Streamed

            backend: Any = Streamed(self.client)
        else:
            backend = _InMemory()
        seg = self._fit(data, backend)
        self.segmentation_ = seg
        self.labels_ = seg.labels
        self.labels_full_ = seg.labels_full
        self.n_clusters_ = seg.n_clusters
        return self

    def _fit(self, data: Any, backend: Any) -> Segmentation:  # pragma: no cover - abstract
        raise NotImplementedError

    def _prepare(self, data: Any, backend: Any) -> _pre.Prepared:
        return backend.prepare(data, self.bin, energy_bin=self.energy_bin,
                               energy_range=self.energy_range, mask=self.mask,
                               poisson=self.poisson, scaler=self.scaler)

    def _fitted(self) -> Segmentation:
        seg = getattr(self, "segmentation_", None)
        if seg is None:
            raise StemsegValueError(
                f"This {type(self).__name__} is not fitted yet: call fit(data) first.")
        return seg

    def segmentation(self) -> Segmentation:
        """The :class:`stemseg.Segmentation` of the last :meth:`fit`."""
        return self._fitted()

    def predict(self, spectra: Any) -> np.ndarray:
        """Cluster of original-resolution pixel spectra, by the fitted stages.

        Parameters
        ----------
        spectra : array or EDS signal, shape (..., n_channels)
            Counts per *original* pixel on the fitted map's energy axis.

        Returns
        -------
        numpy.ndarray of int, shape ``spectra.shape[:-1]``
            In the segmentation's numbering (by size); -1 = noise (HDBSCAN). For the fitted
            map's own pixels this is ``labels_full`` unless the segmentation fell back to
            the binned labels (too few counts per original pixel, see
            ``segmentation().params["labels_full"]``) or took a block's label for a pixel
            predicted as noise (``params["labels_full_from_block"]``).

        Raises
        ------
        StemsegValueError
            Not fitted, no cluster to predict (HDBSCAN found none), or the wrong number of
            channels.
        """
        seg = self._fitted()
        place = seg.models.get("predict_pixels")
        if place is None:
            raise StemsegValueError(
                "This segmentation has no cluster to predict (HDBSCAN labelled every pixel "
                "noise); lower min_cluster_size or bin more, then fit again.")
        x = np.asarray(getattr(spectra, "data", spectra))
        n_ch = seg.counts.data.shape[-1]
        if x.shape[-1] != n_ch:
            raise StemsegValueError(
                f"spectra have {x.shape[-1]} channels; the fitted map has {n_ch}. Give "
                "spectra on the same energy axis (same calibration and channels).")
        raw = np.asarray(place(x.reshape(-1, n_ch)))
        order = seg.models["cluster_order"]
        out = np.where(raw >= 0, order[np.clip(raw, 0, None)], -1)
        return out.reshape(x.shape[:-1])


class _InMemory:
    """The passes over an in-memory map (the streamed ones: :class:`stemseg.streaming.Streamed`).

    A workflow's fit calls the same methods on either; here each is one call on the whole
    feature matrix, there a pass over the blocks of a lazy map.
    """

    lazy = False
    client = None

    def prepare(self, data: Any, bin: int, **kwargs: Any) -> _pre.Prepared:
        return _pre.preprocess(data, bin, **kwargs)

    @staticmethod
    def n_used(prep: _pre.Prepared) -> int:
        return int(prep.X.shape[0])

    @staticmethod
    def features(prep: _pre.Prepared, rows: np.ndarray | None = None) -> np.ndarray:
        return prep.X if rows is None else prep.X[rows]

    @staticmethod
    def fit_pca(prep: _pre.Prepared, **kwargs: Any) -> _reduce.PCAReducer:
        return _reduce.PCAReducer(**kwargs).fit(prep.X)

    @staticmethod
    def scores(prep: _pre.Prepared, reducer: _reduce.PCAReducer,
               rows: np.ndarray | None = None, x_rows: np.ndarray | None = None
               ) -> np.ndarray:
        return reducer.transform(prep.X)

    @staticmethod
    def map_pixels(func: Callable[..., np.ndarray], spectra: np.ndarray, *args: Any
                   ) -> np.ndarray:
        return func(spectra, *args)

    @staticmethod
    def template(prep: _pre.Prepared) -> Any:
        return prep.counts


def _gmm_block(spectra: np.ndarray, prep: _pre.Prepared, comps: np.ndarray,
               mean: np.ndarray, model: Any, extra: np.ndarray) -> np.ndarray:
    """Mixture component of original-pixel spectra (n, n_channels) -> (n,), int64."""
    x = prep.project(np.asarray(spectra), prep.bin**2, comps, mean)
    return _cluster.gmm_predict_noisy(model, x, extra).astype(np.int64)


# --------------------------------------------------------------------------------------
# workflow 1: PCA + GMM
# --------------------------------------------------------------------------------------


class GMMSegmenter(_Segmenter):
    """Workflow 1 as an estimator: RobustScaler, PCA to the scree change point, Gaussian
    mixture. Parameters, defaults and results are those of :func:`gmm` (all but ``data``),
    checked against ``_parameter_constraints`` when :meth:`fit` starts.

    Attributes
    ----------
    segmentation_ : Segmentation
    labels_, labels_full_ : numpy.ndarray of int
        Binned and original-pixel labels of the fitted map.
    n_clusters_ : int

    Examples
    --------
    >>> from stemseg import simulate
    >>> ph = simulate.phantom(shape=(32, 32), random_state=0)  # doctest: +SKIP
    >>> GMMSegmenter(n_clusters=3).fit(ph).segmentation().n_clusters  # doctest: +SKIP
    3
    """

    _parameter_constraints = {
        "n_clusters": [Whole(1)],
        "n_components": [Whole(1), None],
        "n_init": [Whole(1)],
        "covariance_type": [Options(*_cluster.COVARIANCE_TYPES)],
        "max_components": [Whole(1)],
        "knee_method": [Options("kneed", "hyperspy")],
        **_PREPROCESS_CONSTRAINTS,
    }

    def __init__(self, n_clusters: int = 5, n_components: int | None = None, bin: int = 2,
                 random_state: int | None = 0, *, n_init: int = _cluster.DEFAULT_N_INIT,
                 covariance_type: str = "full",
                 max_components: int = _reduce.MAX_COMPONENTS,
                 knee_method: str = "kneed", energy_bin: int = 1,
                 energy_range: tuple[float | None, float | None] | None =
                 _pre.DEFAULT_ENERGY_RANGE,
                 mask: Any = None, poisson: bool = False, scaler: str | None = "robust",
                 labels_full: str = "predict", spectra_from: str = "full",
                 progress: bool | None = None, client: Any = None) -> None:
        self.n_clusters = n_clusters
        self.n_components = n_components
        self.bin = bin
        self.random_state = random_state
        self.n_init = n_init
        self.covariance_type = covariance_type
        self.max_components = max_components
        self.knee_method = knee_method
        self.energy_bin = energy_bin
        self.energy_range = energy_range
        self.mask = mask
        self.poisson = poisson
        self.scaler = scaler
        self.labels_full = labels_full
        self.spectra_from = spectra_from
        self.progress = progress
        self.client = client

    def _fit(self, data: Any, backend: Any) -> Segmentation:
        timer = Timer(self.progress, "gmm (lazy)" if backend.lazy else "gmm")
        prep = self._prepare(data, backend)
        n_clusters = _cluster.check_n_clusters(self.n_clusters, backend.n_used(prep))
        if not backend.lazy:
            check_distinct_spectra(prep.X, n_clusters)
        timer.lap("preprocess")
        reducer = backend.fit_pca(prep, n_components=self.n_components,
                                  max_components=self.max_components,
                                  knee_method=self.knee_method,
                                  min_components=max(1, n_clusters - 1),
                                  random_state=self.random_state)
        scores = backend.scores(prep, reducer)
        timer.lap("reduce")
        if not backend.lazy:
            _cluster.warn_small_mixture(prep.X.shape[0], n_clusters, reducer.n_components_,
                                        prep.bin)
        model = _cluster.fit_gmm(scores, n_clusters, n_init=self.n_init,
                                 covariance_type=self.covariance_type,
                                 random_state=self.random_state)
        labels, weights = model.predict(scores), model.predict_proba(scores)
        timer.lap("cluster")
        extra, sums = noise_covariances(prep, reducer, weights, client=backend.client)
        comps, mean = reducer.components_, reducer.pca_.mean_

        def predict(spectra: Any) -> np.ndarray:
            return backend.map_pixels(_gmm_block, spectra, prep, comps, mean, model, extra)

        params = dict(workflow="gmm", n_clusters=n_clusters,
                      n_components=reducer.n_components_,
                      n_components_requested=self.n_components, scree_knee=reducer.knee_,
                      n_init=self.n_init, covariance_type=self.covariance_type,
                      max_components=self.max_components, knee_method=self.knee_method,
                      labels_full=self.labels_full, spectra_from=self.spectra_from,
                      **prep.params)
        return build_segmentation(
            data, prep, labels, weights, predict if self.labels_full == "predict" else None,
            params=params, workflow="gmm", random_state=self.random_state, mask=self.mask,
            timer=timer, sums=sums, template=backend.template(prep), embedding=scores,
            scree=reducer.explained_variance_ratio_,
            models=dict(prepared=prep, reducer=reducer, clusterer=model,
                        predict_pixels=predict))


# --------------------------------------------------------------------------------------
# workflow 2: UMAP + HDBSCAN
# --------------------------------------------------------------------------------------


class HDBSCANSegmenter(_Segmenter):
    """Workflow 2 as an estimator: RobustScaler, UMAP, HDBSCAN. Parameters, defaults and
    results are those of :func:`hdbscan` (all but ``data``), checked against
    ``_parameter_constraints`` when :meth:`fit` starts.

    Attributes
    ----------
    segmentation_ : Segmentation
    labels_, labels_full_ : numpy.ndarray of int
        Binned and original-pixel labels (-1 = noise).
    n_clusters_ : int
    """

    _parameter_constraints = {
        "min_cluster_size": [Number(0)],
        "n_components": [Whole(1)],
        "min_samples": [Whole(1), None],
        "min_cluster_size_units": [Options("px", "pixels", "nm2", "nm^2")],
        "n_neighbors": [Whole(2)],
        "min_dist": [Number(0, closed_low=True)],
        "pca_components": [Whole(1), Options("auto"), None],
        "noise": [Options("zero", "soft")],
        "weights": [Options("membership", "probability", "hard")],
        "cluster_selection_method": [Options("eom", "leaf")],
        "umap_sample": [Whole(100), None],
        **_PREPROCESS_CONSTRAINTS,
    }

    def __init__(self, min_cluster_size: float = 200, n_components: int = 4, bin: int = 2,
                 random_state: int | None = 0, *, min_samples: int | None = None,
                 min_cluster_size_units: str = "px", n_neighbors: int = 30,
                 min_dist: float = 0.0, pca_components: int | str | None = None,
                 noise: str = "zero", weights: str = "membership",
                 cluster_selection_method: str = "eom",
                 energy_bin: int = HDBSCAN_ENERGY_BIN,
                 energy_range: tuple[float | None, float | None] | None =
                 _pre.DEFAULT_ENERGY_RANGE,
                 mask: Any = None, poisson: bool = False, scaler: str | None = "robust",
                 labels_full: str = "predict", umap_sample: int | None = 4096,
                 spectra_from: str = "full", progress: bool | None = None,
                 client: Any = None) -> None:
        self.min_cluster_size = min_cluster_size
        self.n_components = n_components
        self.bin = bin
        self.random_state = random_state
        self.min_samples = min_samples
        self.min_cluster_size_units = min_cluster_size_units
        self.n_neighbors = n_neighbors
        self.min_dist = min_dist
        self.pca_components = pca_components
        self.noise = noise
        self.weights = weights
        self.cluster_selection_method = cluster_selection_method
        self.energy_bin = energy_bin
        self.energy_range = energy_range
        self.mask = mask
        self.poisson = poisson
        self.scaler = scaler
        self.labels_full = labels_full
        self.umap_sample = umap_sample
        self.spectra_from = spectra_from
        self.progress = progress
        self.client = client

    def _fit(self, data: Any, backend: Any) -> Segmentation:
        rs = self.random_state
        timer = Timer(self.progress, "hdbscan (lazy)" if backend.lazy else "hdbscan")
        _reduce.preload_umap()         # the import overlaps the preprocessing
        prep = self._prepare(data, backend)
        n = backend.n_used(prep)
        mcs = _cluster.binned_min_cluster_size(self.min_cluster_size,
                                               self.min_cluster_size_units, prep.bin,
                                               prep.pixel_size_nm, n)
        if not backend.lazy:
            _cluster.warn_single_cluster_size(n, mcs)
        sample = umap_sample_indices(n, self.umap_sample, mcs, rs)
        x_fit = backend.features(prep, sample)       # = X[fit rows], in memory
        timer.lap("preprocess")
        pca = None
        features_fit = x_fit
        if self.pca_components is not None:
            pca = _reduce.PCAReducer(None if self.pca_components == "auto"
                                     else self.pca_components, random_state=rs).fit(x_fit)
            features_fit = pca.transform(x_fit)
        # the space in which pixels left out of UMAP's fit find their nearest fitted pixels:
        # the leading principal components of the fitted rows (or PCA's, if UMAP ran on
        # them); computed only when some pixel needs placing
        search: dict[str, Any] = {}

        def search_space() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
            if not search:
                red = pca if pca is not None else _reduce.PCAReducer(
                    n_components=min(_SEARCH_COMPONENTS, *x_fit.shape), max_components=0,
                    random_state=rs).fit(x_fit)
                scores = backend.scores(prep, red, rows=sample, x_rows=x_fit)
                search.update(comps=red.components_, mean=red.pca_.mean_,
                              scores=np.asarray(scores, dtype=np.float32))
            return search["comps"], search["mean"], search["scores"]

        prefetch = None
        if sample is not None:
            comps, mean, scores = search_space()   # needs no umap-learn (still importing)
            if (not backend.lazy and self.labels_full == "predict"
                    and (prep.bin > 1 or prep.crop != prep.original_shape)):
                # the original pixels' nearest fitted pixels need neither the embedding
                # nor the clusterer: searched in a second thread (NumPy and scikit-learn
                # release the GIL) while UMAP's single-threaded layout runs
                k = int(min(self.n_neighbors, sample.size))
                prefetch = _Prefetch(_pre.as_signal(data).data, hdbscan_pixel_neighbours,
                                     prep, comps, mean, scores[sample], k)
        reducer = _reduce.UMAPReducer(n_components=self.n_components,
                                      n_neighbors=self.n_neighbors, min_dist=self.min_dist,
                                      random_state=rs)
        embedding_fit = reducer.fit_transform(features_fit)
        del features_fit
        reference = None
        if sample is not None:
            reference = search_space()[2][sample]
            embedding = np.empty((n, embedding_fit.shape[1]), dtype=np.float32)
            embedding[sample] = embedding_fit
            rest = np.setdiff1d(np.arange(n), sample)
            embedding[rest] = reducer.transform(search_space()[2][rest], reference=reference)
        else:
            embedding = embedding_fit
        timer.lap("reduce")
        ref = search_space()[2] if sample is None else reference
        if prefetch is not None and prefetch.args[-1] != pixel_neighbour_count(reducer, ref):
            prefetch = None     # UMAP saw duplicate rows and uses fewer neighbours
        model, labels, soft, mcs_fit = _cluster.hdbscan_on_sample(
            embedding, sample, mcs, min_samples=self.min_samples, noise=self.noise,
            weights=self.weights, cluster_selection_method=self.cluster_selection_method)
        timer.lap("cluster")

        def predict(spectra: Any) -> np.ndarray:
            comps, mean, _ = search_space()
            if prefetch is not None and prefetch.covers(spectra):
                return hdbscan_predict_pixels(spectra, prep, comps, mean, ref, reducer, model,
                                              neighbours=prefetch.result())
            return backend.map_pixels(hdbscan_predict_pixels, spectra, prep, comps, mean,
                                      ref, reducer, model)

        has_cluster = model.labels_.max() >= 0
        can_predict = self.labels_full == "predict" and has_cluster
        params = dict(workflow="hdbscan", min_cluster_size=self.min_cluster_size,
                      min_cluster_size_units=self.min_cluster_size_units,
                      min_cluster_size_binned=mcs, min_samples=self.min_samples,
                      n_components=self.n_components, n_neighbors=self.n_neighbors,
                      min_dist=self.min_dist,
                      pca_components=None if pca is None else pca.n_components_,
                      noise=self.noise, weights=self.weights,
                      cluster_selection_method=self.cluster_selection_method,
                      umap_sample=self.umap_sample,
                      umap_fit_pixels=n if sample is None else int(sample.size),
                      min_cluster_size_fit=mcs_fit,
                      labels_full=self.labels_full if can_predict
                      or self.labels_full == "repeat" else "repeat (no cluster found)",
                      spectra_from=self.spectra_from, **prep.params)
        return build_segmentation(
            data, prep, labels, soft, predict if can_predict else None, params=params,
            workflow="hdbscan", random_state=rs, mask=self.mask, timer=timer,
            template=backend.template(prep), embedding=embedding,
            models=dict(prepared=prep, reducer=reducer, clusterer=model, pca=pca,
                        umap_sample=sample, predict_pixels=predict if has_cluster else None),
            client=backend.client)


class _Prefetch:
    """``func(pixels, *args)`` of every pixel of an in-memory cube, run in a second thread.

    ``covers(spectra)`` tells whether ``spectra`` are those pixels: the same memory, shape
    and strides as ``cube.reshape(-1, n_channels)`` (how the assembler passes the map), so
    the result computed in advance is the one ``func(spectra, *args)`` would give;
    ``args`` are kept for the caller to check they still hold.
    """

    def __init__(self, cube: np.ndarray, func: Callable[..., Any], *args: Any) -> None:
        from concurrent.futures import ThreadPoolExecutor

        self.pixels = np.asarray(cube).reshape(-1, cube.shape[-1])
        self.args = args
        pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="stemseg-prefetch")
        self._future = pool.submit(func, self.pixels, *args)
        pool.shutdown(wait=False)        # the thread ends with its one task

    def covers(self, spectra: Any) -> bool:
        if not isinstance(spectra, np.ndarray):
            return False
        here, there = spectra.__array_interface__, self.pixels.__array_interface__
        return (spectra.shape == self.pixels.shape and spectra.dtype == self.pixels.dtype
                and spectra.strides == self.pixels.strides
                and here["data"][0] == there["data"][0])

    def result(self) -> Any:
        return self._future.result()


# --------------------------------------------------------------------------------------
# the two workflows as functions (the notebooks' and the command line's entry points)
# --------------------------------------------------------------------------------------


def gmm(data: Any, n_clusters: int = 5, n_components: int | None = None, bin: int = 2,
        random_state: int | None = 0, **params: Any) -> Segmentation:
    """Workflow 1: RobustScaler, PCA to the scree change point, Gaussian mixture.

    ``GMMSegmenter(**params).fit(data).segmentation()``: every parameter is checked before
    the map is touched.

    Parameters
    ----------
    data : Acquisition, Phantom or EDS spectrum image (y, x | energy)
        Raw counts; not modified.
    n_clusters : int
        Number of mixture components (the paper chooses it by hand; see
        :func:`stemseg.cluster.bic_curve`).
    n_components : int, optional
        PCA components kept; None (default) = the scree change point
        (:func:`stemseg.reduce.scree_knee`), at least ``n_clusters - 1``.
    bin : int
        Spatial binning factor (default 2, as the paper).
    random_state : int or None
        Seed of PCA (randomized solver) and the mixture's initialisations.
    n_init : int
        Mixture initialisations (default 5).
    covariance_type : str
        ``GaussianMixture`` covariance type (default "full").
    max_components : int
        Length of the scree curve (default 30, :data:`stemseg.reduce.MAX_COMPONENTS`).
    knee_method : {"kneed", "hyperspy"}
        Change-point rule, see :func:`stemseg.reduce.scree_knee`.
    energy_bin, energy_range, mask, poisson, scaler
        See :func:`stemseg.preprocess.preprocess`.
    labels_full : {"predict", "repeat"}
        How ``labels_full`` is made (see the module notes).
    spectra_from : {"full", "binned"}
        Mean spectra from the original pixels by ``labels_full`` (default, hard weights) or
        from the binned pixels with soft weights (the paper's recipe; mixes phases at
        boundaries, see the module notes).
    progress : bool or None
        Show a tqdm bar over the stages (None: only on a terminal).
    client : dask.distributed.Client, optional
        Run the streamed (lazy) workflow on this cluster's workers. A lazy input
        (``stemseg.io.load(path, lazy=True)``) or a client selects the bounded-memory path
        of :mod:`stemseg.streaming` (same stages and result type; PCA exact from streamed
        moments, so labels agree with the in-memory path, not bit for bit); otherwise the
        map is processed in memory.

    Returns
    -------
    Segmentation
        ``weights`` are the posterior probabilities; ``scree`` the explained variance
        ratios; ``params["n_components"]`` the components used.

    Raises
    ------
    StemsegValueError
        Bad data or parameters (message names the parameter and the fix).
    """
    return GMMSegmenter(n_clusters, n_components, bin, random_state,
                        **_keywords(GMMSegmenter, params)).fit(data).segmentation()


def hdbscan(data: Any, min_cluster_size: float = 200, n_components: int = 4, bin: int = 2,
            random_state: int | None = 0, **params: Any) -> Segmentation:
    """Workflow 2: RobustScaler, UMAP to ``n_components`` dimensions, HDBSCAN.

    ``HDBSCANSegmenter(**params).fit(data).segmentation()``: every parameter is checked
    before the map is touched.

    Parameters
    ----------
    data : Acquisition, Phantom or EDS spectrum image (y, x | energy)
        Raw counts; not modified.
    min_cluster_size : float
        Smallest region that counts as a cluster, in *original* pixels (default) or nm^2
        (``min_cluster_size_units="nm2"``); converted to binned pixels (divided by
        ``bin**2``, see :func:`stemseg.cluster.binned_min_cluster_size`).
    n_components : int
        UMAP dimensions (default 4, as the paper).
    bin : int
        Spatial binning factor (default 2).
    random_state : int or None
        Seed of UMAP (and of the optional PCA); HDBSCAN itself is deterministic.
    min_samples : int, optional
        HDBSCAN's core-distance neighbourhood, in binned pixels (default: the binned
        ``min_cluster_size``). Smaller = less noise.
    min_cluster_size_units : {"px", "nm2"}
    n_neighbors : int
        UMAP neighbourhood (default 30).
    min_dist : float
        UMAP minimum distance (default 0.0, recommended for clustering).
    pca_components : int, "auto" or None
        Optional PCA before UMAP (None, default, as the paper: UMAP on the scaled
        spectra; "auto": scree change point).
    noise : {"zero", "soft"}
        Weight of noise pixels in the mean spectra: 0 (default) or their HDBSCAN membership
        vector.
    weights : {"membership", "probability", "hard"}
        Soft weights of the mean spectra, see :func:`stemseg.cluster.hdbscan_weights`.
    cluster_selection_method : {"eom", "leaf"}
        HDBSCAN's cluster selection.
    energy_bin : int
        Channels summed per feature (default :data:`HDBSCAN_ENERGY_BIN` = 4; 1 is the
        paper's recipe, which loses small phases at low dose, see the module notes).
    energy_range, mask, poisson, scaler
        See :func:`stemseg.preprocess.preprocess`.
    labels_full : {"predict", "repeat"}
        How ``labels_full`` is made (see the module notes).
    spectra_from : {"full", "binned"}
        Mean spectra from the original pixels by ``labels_full`` (default, hard weights) or
        from the binned pixels with soft weights (the paper's recipe; mixes phases at
        boundaries, see the module notes).
    umap_sample : int or None
        Fit UMAP and HDBSCAN on a random sample of this many binned pixels (default 4096)
        when the map has more, and place the others (see the module notes); None fits on
        every pixel. The sample grows so that a region of ``min_cluster_size`` keeps at
        least 8 sampled pixels.
    progress : bool or None
        Show a tqdm bar over the stages (None: only on a terminal).
    client : dask.distributed.Client, optional
        Run the streamed (lazy) workflow on this cluster's workers. A lazy input
        (``stemseg.io.load(path, lazy=True)``) or a client selects the bounded-memory path
        of :mod:`stemseg.streaming` (the same fit, same UMAP sample and result type; labels
        agree with the in-memory path, not bit for bit); otherwise the map is processed in
        memory.

    Returns
    -------
    Segmentation
        ``weights`` as chosen by ``weights`` (default HDBSCAN soft membership vectors,
        noise rows 0 unless ``noise="soft"``); ``noise_fraction`` the share of pixels
        labelled -1.

    Raises
    ------
    StemsegValueError
        Bad data or parameters, ``min_cluster_size`` above the number of pixels.
    """
    return HDBSCANSegmenter(min_cluster_size, n_components, bin, random_state,
                            **_keywords(HDBSCANSegmenter, params)).fit(data).segmentation()


def _keywords(cls: type, params: dict[str, Any]) -> dict[str, Any]:
    """Refuse keywords the estimator does not take (with the list of those it takes)."""
    known = cls._get_param_names()
    unknown = sorted(set(params) - set(known))
    if unknown:
        raise StemsegValueError(
            f"Unknown parameter(s) {unknown}; {cls.__name__} takes {known}.")
    return params
