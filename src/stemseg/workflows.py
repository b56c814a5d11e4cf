"""The two clustering workflows of Eggeman et al. (2025), end to end.

* :func:`gmm` -- workflow 1: bin x2, RobustScaler, PCA (components up to the scree change
  point), Gaussian mixture with a user-chosen number of clusters.
* :func:`hdbscan` -- workflow 2: bin x2, RobustScaler, UMAP to 4 dimensions, HDBSCAN
  (Euclidean) whose minimum cluster size is a physical area.

Both return a :class:`stemseg.Segmentation` (``stemseg._types``) that
:func:`stemseg.quant.quantify` takes directly. A lazy (dask-backed) input, or a
``dask.distributed`` ``client=``, sends either workflow to :mod:`stemseg.streaming`, which
runs the same stages in passes over the file in bounded memory.

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

import contextvars
import functools
import sys
import time
from typing import Any, Callable, TypeVar

import numpy as np
from tqdm.auto import tqdm

from . import cluster as _cluster
from . import preprocess as _pre
from . import reduce as _reduce
from ._types import Segmentation
from .errors import StemsegValueError

__all__ = ["gmm", "hdbscan", "mean_spectra", "upsample_labels"]

_CHUNK = 4096
#: where the mean spectra come from (see the module notes)
SPECTRA_FROM = ("full", "binned")
#: Energy channels summed per UMAP feature in the HDBSCAN workflow (the module notes say why;
#: 1 is the paper's recipe)
HDBSCAN_ENERGY_BIN = 4
#: Principal components in which the HDBSCAN workflow searches the neighbours of unbinned
#: pixels for ``labels_full`` (the scree curves of EDS maps flatten well before 30).
_SEARCH_COMPONENTS = 30

#: The _Timer objects opened inside the current :func:`_closes_timers` call (None outside).
_OPEN_TIMERS: contextvars.ContextVar[list[_Timer] | None] = contextvars.ContextVar(
    "stemseg_open_timers", default=None)

_F = TypeVar("_F", bound=Callable[..., Any])


def _closes_timers(func: _F) -> _F:
    """Decorator: close (at 100 %) the :class:`_Timer` bars that ``func`` opens, also
    when it raises, so no progress bar is left open behind a failed workflow."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        opened: list[_Timer] = []
        token = _OPEN_TIMERS.set(opened)
        try:
            return func(*args, **kwargs)
        finally:
            _OPEN_TIMERS.reset(token)
            for timer in opened:
                timer.close()

    return wrapper  # type: ignore[return-value]


# --------------------------------------------------------------------------------------
# workflow 1: PCA + GMM
# --------------------------------------------------------------------------------------


@_closes_timers
def gmm(
    data: Any,
    n_clusters: int = 5,
    n_components: int | None = None,
    bin: int = 2,
    random_state: int | None = 0,
    *,
    n_init: int = _cluster.DEFAULT_N_INIT,
    covariance_type: str = "full",
    max_components: int = 30,
    knee_method: str = "kneed",
    energy_bin: int = 1,
    energy_range: tuple[float | None, float | None] | None = _pre.DEFAULT_ENERGY_RANGE,
    mask: Any = None,
    poisson: bool = False,
    scaler: str | None = "robust",
    labels_full: str = "predict",
    spectra_from: str = "full",
    progress: bool | None = None,
    client: Any = None,
) -> Segmentation:
    """Workflow 1: RobustScaler, PCA to the scree change point, Gaussian mixture.

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
        Length of the scree curve (default 30).
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
    _cluster.check_gmm_params(n_init, covariance_type)  # before any heavy step
    if client is not None or getattr(getattr(data, "eds", data), "_lazy", False):
        from . import streaming

        return streaming.gmm(
            data, n_clusters, n_components, bin, random_state, n_init=n_init,
            covariance_type=covariance_type, max_components=max_components,
            knee_method=knee_method, energy_bin=energy_bin, energy_range=energy_range,
            mask=mask, poisson=poisson, scaler=scaler, labels_full=labels_full,
            spectra_from=spectra_from, progress=progress, client=client)
    _check_choice(labels_full, ("predict", "repeat"), "labels_full")
    _check_choice(spectra_from, SPECTRA_FROM, "spectra_from")
    timer = _Timer(progress, "gmm")
    prep = _pre.preprocess(data, bin, energy_bin=energy_bin, energy_range=energy_range,
                           mask=mask, poisson=poisson, scaler=scaler)
    n_clusters = _cluster.check_n_clusters(n_clusters, prep.X.shape[0])
    _check_distinct_spectra(prep.X, n_clusters)
    timer.lap("preprocess")
    reducer = _reduce.PCAReducer(n_components=n_components, max_components=max_components,
                                 knee_method=knee_method,
                                 min_components=max(1, n_clusters - 1),
                                 random_state=random_state).fit(prep.X)
    scores = reducer.transform(prep.X)
    timer.lap("reduce")
    _cluster.warn_small_mixture(prep.X.shape[0], n_clusters, reducer.n_components_, prep.bin)
    model = _cluster.fit_gmm(scores, n_clusters, n_init=n_init,
                             covariance_type=covariance_type, random_state=random_state)
    labels, weights = model.predict(scores), model.predict_proba(scores)
    timer.lap("cluster")

    extra, sums = _extra_noise_covariances(prep, reducer, weights)

    def predict(spectra: np.ndarray) -> np.ndarray:
        scores_full = prep.project(spectra, prep.bin**2, reducer.components_,
                                   reducer.pca_.mean_)
        return _cluster.gmm_predict_noisy(model, scores_full, extra)

    params = dict(workflow="gmm", n_clusters=n_clusters, n_components=reducer.n_components_,
                  n_components_requested=n_components, scree_knee=reducer.knee_,
                  n_init=n_init, covariance_type=covariance_type,
                  max_components=max_components, knee_method=knee_method,
                  labels_full=labels_full, spectra_from=spectra_from, **prep.params)
    seg = _assemble(data, prep, labels, weights, predict if labels_full == "predict" else None,
                    mask, timer, params, random_state, "gmm", sums=sums)
    seg.scree = reducer.explained_variance_ratio_
    seg.embedding = scores
    seg.models = dict(prepared=prep, reducer=reducer, clusterer=model)
    return seg


# --------------------------------------------------------------------------------------
# workflow 2: UMAP + HDBSCAN
# --------------------------------------------------------------------------------------


@_closes_timers
def hdbscan(
    data: Any,
    min_cluster_size: float = 200,
    n_components: int = 4,
    bin: int = 2,
    random_state: int | None = 0,
    *,
    min_samples: int | None = None,
    min_cluster_size_units: str = "px",
    n_neighbors: int = 30,
    min_dist: float = 0.0,
    pca_components: int | str | None = None,
    noise: str = "zero",
    weights: str = "membership",
    cluster_selection_method: str = "eom",
    energy_bin: int = HDBSCAN_ENERGY_BIN,
    energy_range: tuple[float | None, float | None] | None = _pre.DEFAULT_ENERGY_RANGE,
    mask: Any = None,
    poisson: bool = False,
    scaler: str | None = "robust",
    labels_full: str = "predict",
    umap_sample: int | None = 4096,
    spectra_from: str = "full",
    progress: bool | None = None,
    client: Any = None,
) -> Segmentation:
    """Workflow 2: RobustScaler, UMAP to ``n_components`` dimensions, HDBSCAN.

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
        of :func:`stemseg.streaming.hdbscan` (same stages, same UMAP sample and result
        type; labels agree with the in-memory path, not bit for bit); otherwise the map is
        processed in memory.

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
    if client is not None or getattr(getattr(data, "eds", data), "_lazy", False):
        from . import streaming

        return streaming.hdbscan(
            data, min_cluster_size, n_components, bin, random_state,
            min_samples=min_samples, min_cluster_size_units=min_cluster_size_units,
            n_neighbors=n_neighbors, min_dist=min_dist, pca_components=pca_components,
            noise=noise, weights=weights, cluster_selection_method=cluster_selection_method,
            energy_bin=energy_bin, energy_range=energy_range, mask=mask, poisson=poisson,
            scaler=scaler, labels_full=labels_full, umap_sample=umap_sample,
            spectra_from=spectra_from, progress=progress, client=client)
    _check_choice(labels_full, ("predict", "repeat"), "labels_full")
    _check_choice(spectra_from, SPECTRA_FROM, "spectra_from")
    timer = _Timer(progress, "hdbscan")
    _check_choice(noise, ("zero", "soft"), "noise")
    _check_choice(weights, ("membership", "probability", "hard"), "weights")
    _check_umap_sample(umap_sample)
    prep = _pre.preprocess(data, bin, energy_bin=energy_bin, energy_range=energy_range,
                           mask=mask, poisson=poisson, scaler=scaler)
    n = prep.X.shape[0]
    mcs = _cluster.binned_min_cluster_size(min_cluster_size, min_cluster_size_units, prep.bin,
                                           prep.pixel_size_nm, n)
    _cluster.warn_single_cluster_size(n, mcs)
    sample = _umap_sample_indices(n, umap_sample, mcs, random_state)
    timer.lap("preprocess")
    pca = None
    features = prep.X
    fit_rows = slice(None) if sample is None else sample
    if pca_components is not None:
        pca = _reduce.PCAReducer(None if pca_components == "auto" else pca_components,
                                 random_state=random_state).fit(prep.X[fit_rows])
        features = pca.transform(prep.X)
    # the space in which pixels left out of UMAP's fit find their nearest fitted pixels:
    # the leading principal components (see predict below), or PCA's scores if UMAP ran on
    # them; computed lazily, only when some pixel needs placing
    search: dict[str, Any] = {}

    def search_space() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        if not search:
            if pca is not None:
                comps, mean, scores = pca.components_, pca.pca_.mean_, features
            else:
                red = _reduce.PCAReducer(
                    n_components=min(_SEARCH_COMPONENTS, *prep.X[fit_rows].shape),
                    max_components=0, random_state=random_state).fit(prep.X[fit_rows])
                comps, mean, scores = red.components_, red.pca_.mean_, red.transform(prep.X)
            search.update(comps=comps, mean=mean,
                          scores=np.asarray(scores, dtype=np.float32))
        return search["comps"], search["mean"], search["scores"]

    reducer = _reduce.UMAPReducer(n_components=n_components, n_neighbors=n_neighbors,
                                  min_dist=min_dist, random_state=random_state)
    embedding_fit = reducer.fit_transform(features[fit_rows])
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
    model, labels, soft, mcs_fit = _cluster.hdbscan_on_sample(
        embedding, sample, mcs, min_samples=min_samples, noise=noise, weights=weights,
        cluster_selection_method=cluster_selection_method)
    timer.lap("cluster")

    def predict(spectra: np.ndarray) -> np.ndarray:
        comps, mean, scores = search_space()
        ref = scores if sample is None else reference
        return _hdbscan_predict(prep, spectra, comps, mean, ref, reducer, model)

    can_predict = labels_full == "predict" and model.labels_.max() >= 0
    params = dict(workflow="hdbscan", min_cluster_size=min_cluster_size,
                  min_cluster_size_units=min_cluster_size_units,
                  min_cluster_size_binned=mcs, min_samples=min_samples,
                  n_components=n_components, n_neighbors=n_neighbors, min_dist=min_dist,
                  pca_components=None if pca is None else pca.n_components_, noise=noise,
                  weights=weights,
                  cluster_selection_method=cluster_selection_method,
                  umap_sample=umap_sample, umap_fit_pixels=n if sample is None else
                  int(sample.size), min_cluster_size_fit=mcs_fit,
                  labels_full=labels_full if can_predict or labels_full == "repeat"
                  else "repeat (no cluster found)", spectra_from=spectra_from, **prep.params)
    seg = _assemble(data, prep, labels, soft, predict if can_predict else None, mask,
                    timer, params, random_state, "hdbscan")
    seg.embedding = embedding
    seg.models = dict(prepared=prep, reducer=reducer, clusterer=model, pca=pca,
                      umap_sample=sample)
    return seg


def _hdbscan_predict(prep: _pre.Prepared, spectra: np.ndarray, comps: np.ndarray,
                     mean: np.ndarray, reference: np.ndarray, reducer: _reduce.UMAPReducer,
                     model: Any) -> np.ndarray:
    """HDBSCAN labels (-1 = noise) of unbinned pixel spectra (n, n_channels) -> (n,).

    ``comps`` (d, n_features) and ``mean`` span the search space, ``reference`` holds the
    fitted pixels' coordinates in it (rows of UMAP's fit, float32).
    """
    import hdbscan as _hdbscan

    # Neighbours of the unbinned pixels are searched among the fitted binned ones in
    # the space of their leading principal components, not in all channels: the
    # projection folds into one product with the raw counts (Prepared.project), the
    # search costs tens of dimensions instead of thousands, and the noise-only
    # directions, which dominate distances between noisy unbinned spectra, are left out.
    x = prep.project(spectra, prep.bin**2, comps, mean)
    placed, near = reducer.transform(x, reference=reference, return_neighbors=True)
    # A pixel whose nearest fitted pixels all carry the same cluster label is placed
    # inside that cluster and gets its label; only the others (boundaries, outliers)
    # go through approximate_predict, whose per-point Python loop was ~3 s for the
    # 65 536 pixels of a 256 x 256 map. On that phantom 85 % of pixels were unanimous
    # and approximate_predict agreed with all of them.
    votes = model.labels_[near]
    out = votes[:, 0].copy()
    open_ = ~((votes == votes[:, :1]).all(axis=1) & (votes[:, 0] >= 0))
    if open_.any():
        out[open_] = _hdbscan.approximate_predict(model, placed[open_])[0]
    return out


#: Smallest number of pixels a region of ``min_cluster_size`` must keep in UMAP's sample;
#: the sample grows beyond ``umap_sample`` when needed (measured at 256 x 256: a scaled
#: minimum cluster size of 3 merged two phases, 6 kept all five).
_MIN_SAMPLED_CLUSTER = 8


def _check_umap_sample(umap_sample: Any) -> None:
    if umap_sample is None:
        return
    if not isinstance(umap_sample, (int, np.integer)) or isinstance(umap_sample, bool) \
            or umap_sample < 100:
        raise StemsegValueError(
            f"umap_sample must be a whole number of (binned) pixels >= 100, or None to fit "
            f"UMAP on every pixel; got {umap_sample!r}."
        )


def _umap_sample_indices(n: int, umap_sample: int | None, mcs: int,
                         random_state: Any) -> np.ndarray | None:
    """Sorted indices of the binned pixels UMAP is fitted on, or None for all ``n``.

    At least ``umap_sample`` pixels, more when a region of ``mcs`` pixels would keep fewer
    than :data:`_MIN_SAMPLED_CLUSTER` of them; uniform without replacement, seeded.
    """
    if umap_sample is None:
        return None
    size = max(int(umap_sample), int(np.ceil(_MIN_SAMPLED_CLUSTER * n / max(mcs, 1))))
    if size >= n:
        return None
    rng = np.random.default_rng(random_state)
    return np.sort(rng.choice(n, size=size, replace=False))


# --------------------------------------------------------------------------------------
# shared steps
# --------------------------------------------------------------------------------------


def mean_spectra(counts: Any, weights: np.ndarray,
                 sums: tuple[np.ndarray, np.ndarray] | None = None,
                 template: Any = None) -> tuple[Any, Any]:
    """Weighted mean spectra of a spectrum image and their counting variance.

    Parameters
    ----------
    counts : exspy EDS signal, navigation (ny, nx)
        Counts per pixel.
    weights : numpy.ndarray, shape (ny * nx, k)
        Non-negative weights, pixels in row-major order.
    sums : (numpy.ndarray, numpy.ndarray), each shape (k, n_channels), optional
        ``(weights.T @ counts, (weights**2).T @ counts)`` when already computed.
    template : EDS signal, optional
        Signal whose class, energy axis and metadata the results take (default ``counts``;
        an in-memory one when ``counts`` is lazy).

    Returns
    -------
    mean : EDS signal, navigation (k,)
        ``sum_p w_pc counts_p / sum_p w_pc``; a cluster with zero total weight is all 0.
    variance : EDS signal, navigation (k,)
        ``sum_p w_pc^2 counts_p / (sum_p w_pc)^2`` (counts^2).
    """
    num, num2 = _weighted_sums(counts, weights) if sums is None else sums
    total = weights.sum(axis=0)[:, None]
    safe = np.where(total > 0, total, 1.0)
    mean = np.where(total > 0, num / safe, 0.0)
    var = np.where(total > 0, num2 / safe**2, 0.0)
    template = counts if template is None else template
    mean_sig = _stack(template, mean, "cluster mean spectra")
    var_sig = _stack(template, var, "variance of cluster mean spectra")
    mean_sig.metadata.set_item("Signal.Noise_properties.variance", var_sig)
    return mean_sig, var_sig


def _weighted_sums(counts: Any, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(w.T @ counts, (w**2).T @ counts)``, each (k, n_channels), one pass over blocks."""
    data = counts.data.reshape(-1, counts.data.shape[-1])
    k = weights.shape[1]
    num = np.zeros((k, data.shape[1]))
    num2 = np.zeros((k, data.shape[1]))
    for start in range(0, data.shape[0], _CHUNK):
        block = np.asarray(data[start:start + _CHUNK], dtype=float)
        w = weights[start:start + _CHUNK]
        num += w.T @ block
        num2 += (w**2).T @ block
    return num, num2


def spectrum_labels(labels_full: np.ndarray, n_clusters: int) -> np.ndarray:
    """The pixels each cluster's mean spectrum is summed over: ``labels_full`` without
    isolated pixels.

    A pixel none of whose 8 neighbours shares its cluster is left out (-1) of its cluster's
    spectrum, unless the cluster has no other pixel. Such pixels are mostly predictions
    gone astray in the counting noise of single pixels: on a steel / MoS2 / PbS map at 500
    counts per pixel, 22 isolated steel pixels predicted as PbS put 3.3 at. % Fe into the
    PbS cluster (1000 pixels), and none of its own pixels is isolated. The label maps keep
    every pixel.

    Parameters
    ----------
    labels_full : numpy.ndarray of int, shape (rows, columns)
        Cluster per original pixel; -1 = noise or masked.
    n_clusters : int

    Returns
    -------
    numpy.ndarray of int, shape (rows, columns)

    Examples
    --------
    >>> lab = np.array([[0, 0, 1], [0, 0, 0], [1, 1, 0]])
    >>> spectrum_labels(lab, 2).tolist()
    [[0, 0, -1], [0, 0, 0], [1, 1, 0]]
    """
    from scipy import ndimage

    lab = np.asarray(labels_full)
    if lab.ndim != 2:
        return lab.copy()
    out = lab.copy()
    ring = np.ones((3, 3), dtype=bool)
    ring[1, 1] = False
    for c in range(int(n_clusters)):
        mine = lab == c
        if not mine.any():
            continue
        alone = mine & ~ndimage.binary_dilation(mine, structure=ring)
        if alone.sum() < mine.sum():
            out[alone] = -1
    return out


def hard_weights(labels: np.ndarray, n_clusters: int) -> np.ndarray:
    """One-hot weights of a label map: 1 for a pixel's own cluster, 0 elsewhere and for -1.

    Parameters
    ----------
    labels : numpy.ndarray of int, shape (rows, columns) or (n_pixels,)
        Cluster per pixel; -1 = noise or masked.
    n_clusters : int

    Returns
    -------
    numpy.ndarray of float32, shape (n_pixels, n_clusters)
        Pixels in row-major order.

    Examples
    --------
    >>> hard_weights(np.array([[0, -1], [1, 1]]), 2).tolist()
    [[1.0, 0.0], [0.0, 0.0], [0.0, 1.0], [0.0, 1.0]]
    """
    flat = np.asarray(labels).ravel()
    w = np.zeros((flat.size, int(n_clusters)), dtype=np.float32)
    rows = np.flatnonzero((flat >= 0) & (flat < n_clusters))
    w[rows, flat[rows]] = 1.0
    return w


def _hard_sums(counts: Any, labels: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-cluster sums of the pixel spectra, ``(sums, sums)`` (hard weights: w = w^2).

    Walks ``counts`` (in memory or lazy, e.g. a file opened with ``lazy=True``) in blocks
    of rows, so a lazy map is read once in bounded memory.
    """
    cube = counts.data
    ny, nx, n_ch = cube.shape[0], cube.shape[1], cube.shape[-1]
    labels = labels.reshape(ny, nx)
    sums = np.zeros((k, n_ch))
    rows = max(1, _CHUNK // max(nx, 1))
    for y0 in range(0, ny, rows):
        block = np.asarray(cube[y0:y0 + rows], dtype=np.float64).reshape(-1, n_ch)
        lab = labels[y0:y0 + rows].ravel()
        for c in np.unique(lab[(lab >= 0) & (lab < k)]):
            sums[c] += block[lab == c].sum(axis=0)
    return sums, sums


def _stack(template: Any, data: np.ndarray, title: str) -> Any:
    """A signal of the template's class, energy axis and metadata with nav = clusters."""
    nav = dict(name="cluster", units="", size=data.shape[0], scale=1.0, offset=0.0,
               navigate=True)
    sig_axis = template.axes_manager.signal_axes[0].get_axis_dictionary()
    metadata = template.metadata.as_dictionary()
    metadata.get("Signal", {}).pop("Noise_properties", None)
    cls = type(template)
    signal = cls(data, axes=[nav, sig_axis], metadata=metadata,
                 original_metadata=template.original_metadata.as_dictionary())
    signal.metadata.General.title = title
    return signal


def upsample_labels(labels: np.ndarray, bin: int, shape: tuple[int, int]) -> np.ndarray:
    """Copy binned labels onto their ``bin x bin`` blocks and extend the edges.

    Parameters
    ----------
    labels : numpy.ndarray of int, shape (ny, nx)
    bin : int
    shape : (int, int)
        Original (rows, columns), >= (ny * bin, nx * bin).

    Returns
    -------
    numpy.ndarray of int, shape ``shape``
    """
    full = np.repeat(np.repeat(labels, bin, axis=0), bin, axis=1)
    pad = ((0, shape[0] - full.shape[0]), (0, shape[1] - full.shape[1]))
    return np.pad(full, pad, mode="edge") if any(p[1] for p in pad) else full


def _assemble(data: Any, prep: _pre.Prepared, labels_used: np.ndarray,
              weights_used: np.ndarray, predict: Callable[[np.ndarray], np.ndarray] | None,
              mask: Any, timer: _Timer, params: dict[str, Any], random_state: Any,
              workflow: str, sums: tuple[np.ndarray, np.ndarray] | None = None
              ) -> Segmentation:
    """Maps, size ordering, labels_full and mean spectra -> Segmentation."""
    used = prep.used.ravel()
    n_pixels, k = used.size, weights_used.shape[1]
    labels_flat = np.full(n_pixels, -1, dtype=int)
    labels_flat[used] = labels_used
    weights = np.zeros((n_pixels, k))
    weights[used] = weights_used
    labels_flat, weights, order = _cluster.order_by_size(labels_flat, weights)
    labels = labels_flat.reshape(prep.nav_shape)
    new_of_old = np.empty(k, dtype=int)
    new_of_old[order] = np.arange(k)
    full = _labels_full(data, prep, labels, predict, new_of_old, mask)
    full, fallback = _sparse_fallback(full, labels, prep, mask)
    if fallback:
        params = {**params, "labels_full": fallback}
    elif predict is not None:
        full, n_block = _noise_from_block(full, labels, prep, mask)
        params = {**params, "labels_full_from_block": n_block}
    timer.lap("labels_full")
    if params.get("spectra_from", "full") == "full":
        original = _pre.as_signal(data)
        chosen = spectrum_labels(full, k)
        spectrum_weights = hard_weights(chosen, k)
        mean, var = mean_spectra(original, spectrum_weights,
                                 _hard_sums(original, chosen.ravel(), k), template=prep.counts)
        spectrum_counts = original
    else:
        mean, var = mean_spectra(prep.counts, weights,
                                 None if sums is None else (sums[0][order], sums[1][order]))
        spectrum_counts, spectrum_weights = None, None  # the binned counts and weights
    timer.lap("mean_spectra")
    dy_dx = None if prep.pixel_size_nm is None else (
        prep.pixel_size_nm[0] * prep.bin, prep.pixel_size_nm[1] * prep.bin)
    timer.close()
    return Segmentation(
        labels=labels, labels_full=full, weights=weights, mean_spectra=mean,
        mean_variance=var, counts=prep.counts,
        sizes=np.bincount(labels_flat[labels_flat >= 0], minlength=k),
        noise_fraction=_cluster.noise_fraction(labels, prep.used), workflow=workflow,
        params=params, random_state=random_state, timings=timer.timings,
        pixel_size_nm=dy_dx, spectrum_counts=spectrum_counts,
        spectrum_weights=spectrum_weights,
    )


def _extra_noise_covariances(prep: _pre.Prepared, reducer: _reduce.PCAReducer,
                             weights: np.ndarray
                             ) -> tuple[np.ndarray, tuple[np.ndarray, np.ndarray]]:
    """(k, d, d) extra counting-noise covariance of an unbinned pixel, in PCA space.

    Also returns the weighted sums of the binned counts (:func:`_weighted_sums`, clusters
    in the mixture's order) so that the mean spectra need no second pass.

    A binned pixel of cluster k has Poisson feature variance ``lambda_k / s^2`` per
    channel (``lambda_k`` its mean feature-channel counts, ``s`` the scaler's scale and,
    with the Poisson normalisation, its row/column factors); an unbinned pixel times
    ``bin**2`` has ``bin**2`` times that. The difference, projected on the kept PCA
    components, is what :func:`stemseg.cluster.gmm_predict_noisy` adds.
    """
    # lambda_k: the weighted mean counts of cluster k in the feature channels -- the
    # energy-binned mean spectra, so the one pass over the counts serves both
    w_all = np.zeros((prep.used.size, weights.shape[1]))
    w_all[prep.used.ravel()] = weights
    sums = _weighted_sums(prep.counts, w_all)
    total = weights.sum(axis=0)
    mean = sums[0] / np.where(total > 0, total, 1.0)[:, None]
    lam = _pre._energy_bin(mean, prep.energy_bin)[:, prep.channels]
    var = lam.copy()
    if prep.poisson:
        a = lam.sum(axis=1, keepdims=True)
        var = var / np.where(a > 0, a, 1.0) / prep.channel_root[None, :] ** 2
    if prep.scaler is not None:
        var = var / prep.scaler.scale_[None, :] ** 2
    comps = reducer.components_
    cov = np.einsum("df,kf,ef->kde", comps, var, comps)
    return (prep.bin**2 - 1) * cov, sums


def _labels_full(data: Any, prep: _pre.Prepared, labels: np.ndarray,
                 predict: Callable[[np.ndarray], np.ndarray] | None,
                 new_of_old: np.ndarray, mask: Any) -> np.ndarray:
    """Labels of the original pixels (see the module notes)."""
    shape = prep.original_shape
    if predict is None or prep.bin == 1 and prep.crop == shape:
        full = upsample_labels(labels, prep.bin, shape)
    else:
        cube = _pre.as_signal(data).data
        raw = predict(cube.reshape(-1, cube.shape[-1]))
        full = np.where(raw >= 0, new_of_old[np.clip(raw, 0, None)], -1).reshape(shape)
    return np.where(_full_mask(mask, prep), full, -1)


#: predicted labels_full are given up for the binned labels when fewer than this share of
#: the original pixels agree with the binned label of their block (pixels too sparse to place)
FULL_MIN_AGREEMENT = 0.5


def _sparse_fallback(full: np.ndarray, labels: np.ndarray, prep: _pre.Prepared,
                     mask: Any) -> tuple[np.ndarray, str | None]:
    """``labels_full`` copied from the binned labels when prediction failed on sparse pixels.

    Prediction places each original pixel by its own counts. With a few counts per original
    pixel (e.g. under one X-ray on a Velox map) those counts say almost nothing: HDBSCAN's
    prediction calls nearly every pixel noise, or puts them all in one cluster, and the map
    of original pixels no longer shows the clusters found on the binned map. Where the
    prediction is sound, most original pixels keep the label of their binned block (they
    differ at boundaries only). So when fewer than :data:`FULL_MIN_AGREEMENT` of them agree
    with their block, the binned labels are copied onto their blocks instead (``"repeat"``)
    and the reason is returned for ``params["labels_full"]``.

    Returns
    -------
    full : numpy.ndarray of int, shape (rows, columns)
    reason : str or None
        None when the predicted labels are kept.
    """
    inside = _full_mask(mask, prep)
    if not inside.any() or prep.bin == 1:
        return full, None
    repeated = np.where(inside, upsample_labels(labels, prep.bin, prep.original_shape), -1)
    agreement = float((full == repeated)[inside].mean())
    if agreement >= FULL_MIN_AGREEMENT:
        return full, None
    return repeated, (f"repeat (only {100 * agreement:.0f} % of the predicted original pixels "
                      "kept their binned block's label: too few counts per original pixel to "
                      "place them)")


def _noise_from_block(full: np.ndarray, labels: np.ndarray, prep: _pre.Prepared,
                      mask: Any) -> tuple[np.ndarray, int]:
    """Predicted noise (-1) in ``labels_full`` replaced by the label of the pixel's binned
    block where that block is in a cluster; returns the labels and how many pixels changed.

    HDBSCAN's prediction judges an original pixel by its own counts, a quarter of its
    block's at x2; the clustering judged the block by all of them. When the prediction
    calls a pixel noise but the clustering put its block in a cluster, the block's label is
    the better-founded call (see the module notes for what was measured). A pixel whose
    block is noise stays noise, so ``labels_full`` is noise only where ``labels`` is.
    """
    inside = _full_mask(mask, prep)
    block = upsample_labels(labels, prep.bin, prep.original_shape)
    take = (full < 0) & (block >= 0) & inside
    n = int(take.sum())
    if not n:
        return full, 0
    return np.where(take, block, full), n


def _full_mask(mask: Any, prep: _pre.Prepared) -> np.ndarray:
    if mask is None:
        return np.ones(prep.original_shape, dtype=bool)
    m = np.asarray(getattr(mask, "data", mask), dtype=bool)
    if m.shape == prep.original_shape:
        return m
    return upsample_labels(m.astype(int), prep.bin, prep.original_shape).astype(bool)


def _check_distinct_spectra(X: np.ndarray, n_clusters: int) -> None:
    """Refuse more clusters than the map has distinct spectra (e.g. a nearly empty map)."""
    n_distinct = int(_reduce.distinct_rows(X, stop=n_clusters)[0].size)
    if n_distinct < n_clusters:
        raise StemsegValueError(
            f"n_clusters={n_clusters} but the map has only {n_distinct} distinct spectra "
            f"among its {X.shape[0]} (binned) pixels in the feature energy range: there is "
            "nothing to cluster. Check that this is the EDS spectrum image and that "
            "energy_range covers its X-ray lines, bin more, or record longer."
        )


def _check_choice(value: Any, choices: tuple[str, ...], name: str) -> None:
    if value not in choices:
        raise StemsegValueError(f"{name} must be one of {choices}; got {value!r}.")


def _no_bar(progress: bool | None) -> bool:
    """Whether the stage bar is hidden: ``progress=None`` shows it only on a terminal.

    tqdm's own ``disable=None`` hides a text bar off a terminal, but ``tqdm.auto`` draws a
    widget in a Jupyter kernel, which a saved notebook keeps as a stale "0/5" line; so
    None is decided here from stderr, which is not a terminal in a kernel.
    """
    if progress is None:
        isatty = getattr(sys.stderr, "isatty", None)
        return not (callable(isatty) and isatty())
    return not progress


class _Timer:
    """Seconds per stage, with an optional tqdm bar over the stages.

    The bar counts the stages (:meth:`lap`); :meth:`close` sets its total to the stages
    actually run and redraws it before closing it, so it always ends at 100 % -- also
    when a stage was skipped or the workflow stopped on an error -- and never stays
    behind half-drawn (e.g. "80 % 4/5 mean_spectra" in a saved notebook). ``close`` is
    idempotent; the timer is a context manager, and a workflow wrapped in
    :func:`_closes_timers` closes every timer it opened, also when it raises.
    """

    _STAGES = ("preprocess", "reduce", "cluster", "labels_full", "mean_spectra")

    def __init__(self, progress: bool | None, name: str) -> None:
        self.timings: dict[str, float] = {}
        self._start = self._last = time.perf_counter()
        self._closed = False
        self._bar = tqdm(total=len(self._STAGES), desc=name, leave=False,
                         disable=_no_bar(progress))
        opened = _OPEN_TIMERS.get()
        if opened is not None:
            opened.append(self)

    def __enter__(self) -> _Timer:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def lap(self, stage: str) -> None:
        now = time.perf_counter()
        self.timings[stage] = now - self._last
        self._last = now
        self._bar.set_postfix_str(stage, refresh=False)
        self._bar.update()

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self.timings["total"] = time.perf_counter() - self._start
        bar = self._bar
        try:
            if not bar.disable:
                n = bar.n
                if bar.total != n:  # stages skipped or stopped early: total = stages run
                    start = bar.start_t
                    bar.reset(total=n)  # (tqdm.notebook resizes its widget here)
                    bar.start_t = start
                    bar.n = n
                bar.refresh()  # draw the final 100 % (update() draws at most every 0.1 s)
        finally:
            bar.close()
