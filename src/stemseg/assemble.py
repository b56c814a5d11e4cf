"""From fitted models to a :class:`stemseg.Segmentation`: the steps after the fit that the
in-memory and the streamed workflows (and the HDBSCAN explorer widget) share.

* placing the *original* pixels -- the GMM's extra counting noise of an unbinned pixel
  (:func:`noise_covariances`) and HDBSCAN's nearest-fitted-pixel placement
  (:func:`hdbscan_predict_pixels`); the workflows wrap these in their ``predict``;
* the seeded UMAP sample of the HDBSCAN workflow (:func:`umap_sample_indices`);
* mean spectra and their counting variance (:func:`mean_spectra`, over the one weighted-sum
  implementation of :mod:`stemseg._blocks`), the pixels they are summed over
  (:func:`spectrum_labels`), label upsampling (:func:`upsample_labels`);
* the one assembler (:func:`build_segmentation`): size ordering, ``labels_full``, the
  sparse-pixel fallback, mean spectra, timings.

Why each step is done as it is -- predicted ``labels_full``, hard weights over original
pixels by default, isolated pixels left out of the spectra -- is told in the notes of
:mod:`stemseg.workflows`. This module imports the stages (:mod:`stemseg.preprocess`,
:mod:`stemseg.reduce`, :mod:`stemseg.cluster`) and the result types, never the workflows.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from . import cluster as _cluster
from . import preprocess as _pre
from . import reduce as _reduce
from ._blocks import label_sums, one_hot, weighted_sums
from ._progress import Timer
from ._types import Segmentation
from .errors import StemsegValueError

__all__ = ["mean_spectra", "spectrum_labels", "hard_weights", "upsample_labels",
           "build_segmentation", "noise_covariances", "hdbscan_predict_pixels",
           "hdbscan_pixel_neighbours", "pixel_neighbour_count",
           "umap_sample_indices"]


#: where the mean spectra come from (see the module notes)
SPECTRA_FROM = ("full", "binned")


def hdbscan_pixel_neighbours(spectra: np.ndarray, prep: _pre.Prepared, comps: np.ndarray,
                             mean: np.ndarray, reference: np.ndarray, k: int
                             ) -> tuple[np.ndarray, np.ndarray]:
    """Nearest fitted pixels of original pixel spectra, the part of
    :func:`hdbscan_predict_pixels` that needs neither UMAP's embedding nor the clusterer.

    Parameters
    ----------
    spectra, prep, comps, mean, reference
        As :func:`hdbscan_predict_pixels`.
    k : int
        Neighbours per pixel (UMAP's ``n_neighbors``, at most the fitted pixels).

    Returns
    -------
    dist : numpy.ndarray of float, shape (n, k)
    near : numpy.ndarray of int, shape (n, k)
        Distances and row indices of the nearest fitted pixels, nearest first.
    """
    # Neighbours of the unbinned pixels are searched among the fitted binned ones in
    # the space of their leading principal components, not in all channels: the
    # projection folds into one product with the raw counts (Prepared.project), the
    # search costs tens of dimensions instead of thousands, and the noise-only
    # directions, which dominate distances between noisy unbinned spectra, are left out.
    x = prep.project(spectra, prep.bin**2, comps, mean)
    return _reduce.nearest_neighbors(reference, x, k)


def pixel_neighbour_count(reducer: _reduce.UMAPReducer, reference: np.ndarray) -> int:
    """Neighbours :func:`hdbscan_predict_pixels` searches: UMAP's, at most the fitted pixels."""
    return int(min(reducer.umap_.n_neighbors, np.asarray(reference).shape[0]))


def hdbscan_predict_pixels(spectra: np.ndarray, prep: _pre.Prepared, comps: np.ndarray,
                           mean: np.ndarray, reference: np.ndarray,
                           reducer: _reduce.UMAPReducer, model: Any,
                           neighbours: tuple[np.ndarray, np.ndarray] | None = None
                           ) -> np.ndarray:
    """HDBSCAN labels of original (unbinned) pixel spectra, by the fitted stages.

    Parameters
    ----------
    spectra : numpy.ndarray, shape (n, n_channels)
        Counts per original pixel.
    prep : stemseg.preprocess.Prepared
        The fitted preprocessing (crop, scaler, binning factor).
    comps : numpy.ndarray, shape (d, n_features)
    mean : numpy.ndarray, shape (n_features,)
        Principal axes and mean spanning the neighbour-search space.
    reference : numpy.ndarray of float32, shape (m, d)
        The fitted pixels' coordinates in that space (rows of UMAP's fit).
    reducer : stemseg.reduce.UMAPReducer
        Fitted UMAP.
    model : hdbscan.HDBSCAN
        Fitted with ``prediction_data=True``.
    neighbours : (dist, near), optional
        :func:`hdbscan_pixel_neighbours` of ``spectra`` when already computed (with
        :func:`pixel_neighbour_count` neighbours).

    Returns
    -------
    numpy.ndarray of int, shape (n,)
        The clusterer's labels; -1 = noise.
    """
    import hdbscan as _hdbscan

    if neighbours is None:
        neighbours = hdbscan_pixel_neighbours(spectra, prep, comps, mean, reference,
                                              pixel_neighbour_count(reducer, reference))
    dist, near = neighbours
    placed = reducer.place(dist, near)
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


def umap_sample_indices(n: int, umap_sample: int | None, mcs: int,
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


def mean_spectra(counts: Any, weights: np.ndarray,
                 sums: tuple[np.ndarray, np.ndarray] | None = None,
                 template: Any = None, client: Any = None) -> tuple[Any, Any]:
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
    client : dask.distributed.Client, optional
        Scheduler of the pass over lazy ``counts``.

    Returns
    -------
    mean : EDS signal, navigation (k,)
        ``sum_p w_pc counts_p / sum_p w_pc``; a cluster with zero total weight is all 0.
    variance : EDS signal, navigation (k,)
        ``sum_p w_pc^2 counts_p / (sum_p w_pc)^2`` (counts^2).
    """
    num, num2 = weighted_sums(counts, weights, client=client) if sums is None else sums
    total = weights.sum(axis=0)[:, None]
    safe = np.where(total > 0, total, 1.0)
    mean = np.where(total > 0, num / safe, 0.0)
    var = np.where(total > 0, num2 / safe**2, 0.0)
    template = counts if template is None else template
    mean_sig = _stack(template, mean, "cluster mean spectra")
    var_sig = _stack(template, var, "variance of cluster mean spectra")
    mean_sig.metadata.set_item("Signal.Noise_properties.variance", var_sig)
    return mean_sig, var_sig


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
    return one_hot(labels, n_clusters)


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


def build_segmentation(data: Any, prep: _pre.Prepared, labels_used: np.ndarray,
                       weights_used: np.ndarray,
                       predict: Callable[[np.ndarray], np.ndarray] | None, *,
                       params: dict[str, Any], workflow: str, random_state: Any = None,
                       mask: Any = None, timer: Timer | None = None,
                       sums: tuple[np.ndarray, np.ndarray] | None = None,
                       template: Any = None, embedding: np.ndarray | None = None,
                       scree: np.ndarray | None = None,
                       models: dict[str, Any] | None = None,
                       client: Any = None) -> Segmentation:
    """The one place a :class:`stemseg.Segmentation` is made from a fitted clustering.

    Parameters
    ----------
    data : Acquisition, Phantom or EDS spectrum image (in memory or lazy)
        The original map (its pixels make ``labels_full`` and the default mean spectra).
    prep : stemseg.preprocess.Prepared
        The binned, scaled map the clustering was fitted on.
    labels_used : numpy.ndarray of int, shape (n_used,)
        Cluster of each used (unmasked) binned pixel, in the clusterer's numbering; -1 noise.
    weights_used : numpy.ndarray, shape (n_used, k)
        Soft weights of the used binned pixels.
    predict : callable or None
        ``predict(spectra (n, n_channels)) -> labels (n,)`` of original pixels in the
        clusterer's numbering (see :mod:`stemseg.workflows`); None copies the binned labels
        onto their blocks.
    params : dict
        Parameters to record; ``params["spectra_from"]`` ("full", default, or "binned")
        chooses the mean spectra.
    workflow : str
        ``"gmm"`` or ``"hdbscan"``.
    random_state, mask, embedding, scree, models
        Recorded as given (``mask``: original or binned (rows, columns) bool, True = used);
        ``models`` gains ``"cluster_order"``, the segmentation's number of each of the
        clusterer's clusters.
    timer : stemseg._progress.Timer, optional
        Laps ``labels_full`` and ``mean_spectra``, then closes.
    sums : (numpy.ndarray, numpy.ndarray), each (k, n_channels), optional
        Weighted sums of the binned counts with ``weights_used`` (clusterer's order), when
        a pass over the counts already made them (binned spectra only).
    template : EDS signal, optional
        In-memory signal whose class, energy axis and metadata the mean spectra take
        (default ``prep.counts``; a one-pixel computed copy when the counts are lazy).
    client : dask.distributed.Client, optional
        Scheduler of the passes over a lazy map.

    Returns
    -------
    Segmentation
        Clusters numbered by decreasing size (binned pixels).
    """
    timer = Timer(False, workflow) if timer is None else timer
    template = prep.counts if template is None else template
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
        hard = label_sums(original, chosen, k, client=client)
        mean, var = mean_spectra(original, spectrum_weights, (hard, hard), template=template)
        spectrum_counts = original
    else:
        mean, var = mean_spectra(prep.counts, weights,
                                 None if sums is None else (sums[0][order], sums[1][order]),
                                 template=template, client=client)
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
        spectrum_weights=spectrum_weights, embedding=embedding, scree=scree,
        models={**(models or {}), "cluster_order": new_of_old},
    )


def noise_covariances(prep: _pre.Prepared, reducer: _reduce.PCAReducer,
                      weights: np.ndarray, client: Any = None
                      ) -> tuple[np.ndarray, tuple[np.ndarray, np.ndarray]]:
    """(k, d, d) extra counting-noise covariance of an unbinned pixel, in PCA space.

    Also returns the weighted sums of the binned counts
    (:func:`stemseg._blocks.weighted_sums`, clusters in the mixture's order; one pass over
    the counts, streamed when they are lazy) so that the mean spectra need no second pass.

    Parameters
    ----------
    prep : stemseg.preprocess.Prepared
    reducer : stemseg.reduce.PCAReducer
        Fitted; ``d`` components.
    weights : numpy.ndarray, shape (n_used, k)
        The mixture's posterior probabilities of the used binned pixels.
    client : dask.distributed.Client, optional
        Scheduler of a lazy map.

    Returns
    -------
    covariances : numpy.ndarray, shape (k, d, d)
    sums : (numpy.ndarray, numpy.ndarray), each (k, n_channels)

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
    sums = weighted_sums(prep.counts, w_all, client=client)
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
    the better-founded call (the notes of :mod:`stemseg.workflows` say what was measured).
    A pixel whose block is noise stays noise, so ``labels_full`` is noise only where
    ``labels`` is.
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


def check_distinct_spectra(X: np.ndarray, n_clusters: int) -> None:
    """Refuse more clusters than the map has distinct spectra (e.g. a nearly empty map)."""
    n_distinct = int(_reduce.distinct_rows(X, stop=n_clusters)[0].size)
    if n_distinct < n_clusters:
        raise StemsegValueError(
            f"n_clusters={n_clusters} but the map has only {n_distinct} distinct spectra "
            f"among its {X.shape[0]} (binned) pixels in the feature energy range: there is "
            "nothing to cluster. Check that this is the EDS spectrum image and that "
            "energy_range covers its X-ray lines, bin more, or record longer."
        )
