"""Clustering of reduced pixel features: Gaussian mixture and HDBSCAN.

* :func:`fit_gmm` -- scikit-learn ``GaussianMixture`` with several initialisations by
  default (``n_init=5``): one k-means initialisation on 20 PCA components gave ARI 0.57
  against truth where five gave 0.96 (measured on a phantom), because EM converges to the
  local optimum nearest its start.
* :func:`bic_curve` -- the Bayesian information criterion over a range of cluster numbers,
  to help choose ``n_clusters`` (lower is better).
* :func:`fit_hdbscan` -- ``hdbscan.HDBSCAN`` with ``prediction_data=True`` (for soft
  membership vectors and for predicting new points), ``min_cluster_size`` in binned
  pixels; :func:`binned_min_cluster_size` converts a size given in original pixels or in
  nm^2. Noise keeps the label -1; :func:`noise_fraction` reports its share.
* :func:`hdbscan_weights`, :func:`order_by_size` -- soft weights and size ordering used by
  the workflows.
"""

from __future__ import annotations

import math
import warnings
from numbers import Integral, Real
from typing import Any

import numpy as np
import pandas as pd
from sklearn.mixture import GaussianMixture
from threadpoolctl import threadpool_limits

from .errors import StemsegSparseDataWarning, StemsegValueError

__all__ = [
    "DEFAULT_N_INIT",
    "check_n_clusters",
    "fit_gmm",
    "gmm_predict_noisy",
    "bic_curve",
    "binned_min_cluster_size",
    "fit_hdbscan",
    "n_major_clusters",
    "hdbscan_weights",
    "hdbscan_predict",
    "hdbscan_on_sample",
    "noise_fraction",
    "order_by_size",
]

#: Default number of GaussianMixture initialisations (see the module notes).
DEFAULT_N_INIT = 5


#: fewest binned pixels per Gaussian-mixture cluster, on average, before a warning
MIN_PIXELS_PER_CLUSTER = 20


def warn_small_mixture(n_pixels: int, n_clusters: int, n_components: int, bin: int) -> None:
    """Warn when a Gaussian mixture has too few pixels per cluster for its covariances.

    A full covariance in ``n_components`` dimensions has ``n_components (n_components + 1)
    / 2`` entries; with fewer than ``max(20, 2 (n_components + 1))`` pixels per cluster on
    average they are mostly noise (scikit-learn then leans on ``reg_covar``), and the
    clusters follow it. Measured on the bundled 16 x 16 Velox map binned x2: 64 pixels for
    5 clusters.

    Warns
    -----
    StemsegSparseDataWarning
        With the pixels per cluster, the largest number of clusters that would pass, and
        the other levers (fewer components, a smaller bin).
    """
    need = max(MIN_PIXELS_PER_CLUSTER, 2 * (n_components + 1))
    if n_pixels / n_clusters >= need:
        return
    most = max(1, n_pixels // need)
    warnings.warn(
        f"clustering: {n_clusters} clusters in {n_components} PCA components on "
        f"{n_pixels} binned pixels (bin={bin}) leave {n_pixels / n_clusters:.0f} pixels per "
        f"cluster, fewer than the {need} that their covariances need. Ask for at most "
        f"{most} cluster(s), fewer components (n_components=), or a smaller bin.",
        StemsegSparseDataWarning, stacklevel=3)


def warn_single_cluster_size(n_pixels: int, min_cluster_size_binned: int) -> None:
    """Warn when ``min_cluster_size`` exceeds half the pixels: HDBSCAN can then split off no
    cluster (a split needs two groups of at least that size) and returns only noise.

    Warns
    -----
    StemsegSparseDataWarning
    """
    if 2 * min_cluster_size_binned <= n_pixels:
        return
    warnings.warn(
        f"clustering: min_cluster_size is {min_cluster_size_binned} binned pixels, more than "
        f"half of the {n_pixels} pixels clustered: HDBSCAN can find no cluster (it needs two "
        f"groups of that size to split). Use a min_cluster_size below {n_pixels // 2} binned "
        "pixels, or a smaller bin.",
        StemsegSparseDataWarning, stacklevel=3)


def check_n_clusters(n_clusters: Any, n_pixels: int) -> int:
    """Validate a number of clusters against the number of pixels clustered.

    Raises
    ------
    StemsegValueError
        Not a whole number, < 1, or more than ``n_pixels``.
    """
    if not isinstance(n_clusters, Integral) or isinstance(n_clusters, bool) or n_clusters < 1:
        raise StemsegValueError(
            f"n_clusters must be a whole number >= 1; got {n_clusters!r}. Use bic_curve "
            "to compare candidates."
        )
    if n_clusters > n_pixels:
        raise StemsegValueError(
            f"n_clusters={n_clusters} exceeds the {n_pixels} pixels clustered. Choose fewer "
            "clusters, or a smaller bin."
        )
    if n_pixels < 2:
        raise StemsegValueError(
            f"A Gaussian mixture needs at least 2 pixels; the map has {n_pixels} after "
            "binning. Use a larger map or a smaller bin."
        )
    return int(n_clusters)


#: covariance types of ``sklearn.mixture.GaussianMixture``
COVARIANCE_TYPES = ("full", "tied", "diag", "spherical")


def check_gmm_params(n_init: Any, covariance_type: Any) -> None:
    """Check the mixture's own parameters before any heavy step.

    Parameters
    ----------
    n_init : int
        Initialisations (>= 1).
    covariance_type : str
        One of :data:`COVARIANCE_TYPES`.

    Raises
    ------
    StemsegValueError
        ``n_init`` not a whole number >= 1; ``covariance_type`` not one of
        :data:`COVARIANCE_TYPES`.
    """
    if isinstance(n_init, bool) or not isinstance(n_init, Integral) or n_init < 1:
        raise StemsegValueError(f"n_init must be a whole number >= 1; got {n_init!r}.")
    if covariance_type not in COVARIANCE_TYPES:
        raise StemsegValueError(
            f"covariance_type must be one of {COVARIANCE_TYPES}; got {covariance_type!r}.")


def fit_gmm(X: np.ndarray, n_clusters: int, *, n_init: int = DEFAULT_N_INIT,
            covariance_type: str = "full", random_state: Any = None,
            **kwargs: Any) -> GaussianMixture:
    """Fit a Gaussian mixture to the rows of ``X``.

    Parameters
    ----------
    X : numpy.ndarray, shape (n_samples, n_dims)
        Reduced features (e.g. PCA scores).
    n_clusters : int
        Number of mixture components, 1 <= n_clusters <= n_samples.
    n_init : int
        Initialisations; the best likelihood wins (default 5).
    covariance_type : {"full", "tied", "diag", "spherical"}
        Passed to ``GaussianMixture``.
    random_state : int or None
        Seed of the initialisations.
    **kwargs
        Further ``GaussianMixture`` arguments (``max_iter``, ``reg_covar``, ...).

    Returns
    -------
    sklearn.mixture.GaussianMixture
        Fitted; ``predict``/``predict_proba`` give labels/posteriors.

    Raises
    ------
    StemsegValueError
        Bad ``n_clusters``, ``n_init`` or ``covariance_type``; non-finite ``X``.
    """
    n_clusters = check_n_clusters(n_clusters, X.shape[0])
    if not np.isfinite(X).all():
        raise StemsegValueError(
            "X holds NaN or infinite values; check the features (e.g. "
            "stemseg.preprocess.check_counts on the counts) or drop those rows."
        )
    check_gmm_params(n_init, covariance_type)
    gmm = GaussianMixture(n_components=n_clusters, n_init=int(n_init),
                          covariance_type=covariance_type, random_state=random_state,
                          **kwargs)
    # one BLAS/OpenMP thread: the mixture's matrices are (n, d) with d ~ 5, too small to
    # share; a second thread only adds synchronisation (measured at 16 384 x 4, 2 cores:
    # 0.8-0.9 s -> 0.5 s, identical fit) and the result no longer depends on the core count
    with warnings.catch_warnings(), threadpool_limits(limits=1):
        warnings.simplefilter("ignore")  # ConvergenceWarning on tiny or degenerate data
        return gmm.fit(X)


def _full_covariances(gmm: GaussianMixture) -> np.ndarray:
    """The mixture's covariances as (k, d, d) whatever its covariance_type."""
    cov, k, d = gmm.covariances_, gmm.n_components, gmm.means_.shape[1]
    if gmm.covariance_type == "full":
        return np.array(cov)
    if gmm.covariance_type == "tied":
        return np.broadcast_to(cov, (k, d, d)).copy()
    if gmm.covariance_type == "diag":
        return np.array([np.diag(c) for c in cov])
    return np.array([np.eye(d) * c for c in cov])  # spherical


def gmm_predict_noisy(gmm: GaussianMixture, X: np.ndarray,
                      extra_covariances: np.ndarray) -> np.ndarray:
    """Predict with every component's covariance widened by known extra noise.

    Used for pixels noisier than those the mixture was fitted on (unbinned pixels of a
    map clustered after binning): a pixel with counting noise ``bin**2`` times larger than
    a binned pixel's has ``(bin**2 - 1)`` times the binned noise covariance on top of the
    component's own spread. Without it, a tight component (a pure phase) loses its
    noisier pixels to broad components (mixed boundary pixels).

    Parameters
    ----------
    gmm : sklearn.mixture.GaussianMixture
        Fitted.
    X : numpy.ndarray, shape (n, d)
    extra_covariances : numpy.ndarray, shape (k, d, d)
        Added to component ``k``'s covariance.

    Returns
    -------
    numpy.ndarray of int, shape (n,)
        Most probable component of every row.
    """
    from scipy.stats import multivariate_normal

    cov = _full_covariances(gmm) + extra_covariances
    logp = np.column_stack([
        multivariate_normal(mean=m, cov=c, allow_singular=True).logpdf(X)
        for m, c in zip(gmm.means_, cov)
    ]).reshape(X.shape[0], -1) + np.log(gmm.weights_)
    return np.argmax(logp, axis=1)


def bic_curve(X: np.ndarray, ks: Any = range(1, 11), *, n_init: int = DEFAULT_N_INIT,
              covariance_type: str = "full", random_state: Any = 0,
              **kwargs: Any) -> pd.DataFrame:
    """BIC and AIC of Gaussian mixtures over candidate cluster numbers.

    Parameters
    ----------
    X : numpy.ndarray, shape (n_samples, n_dims)
    ks : iterable of int
        Candidate numbers of clusters (default 1..10).
    n_init, covariance_type, random_state, **kwargs
        As :func:`fit_gmm`.

    Returns
    -------
    pandas.DataFrame
        Columns ``n_clusters``, ``bic``, ``aic`` (dimensionless, lower is better); the
        row of the minimum BIC is in ``attrs["best"]``.
    """
    rows = []
    for k in ks:
        gmm = fit_gmm(X, k, n_init=n_init, covariance_type=covariance_type,
                      random_state=random_state, **kwargs)
        rows.append((int(k), float(gmm.bic(X)), float(gmm.aic(X))))
    table = pd.DataFrame(rows, columns=["n_clusters", "bic", "aic"])
    if len(table):
        table.attrs["best"] = int(table.loc[table["bic"].idxmin(), "n_clusters"])
    return table


def binned_min_cluster_size(min_cluster_size: Any, units: str = "px", bin: int = 1,
                            pixel_size_nm: tuple[float, float] | None = None,
                            n_pixels: int | None = None) -> int:
    """Convert a minimum cluster size to pixels of the binned grid.

    Parameters
    ----------
    min_cluster_size : float
        In original (unbinned) pixels (``units="px"``) or in nm^2 (``units="nm2"``).
    units : {"px", "nm2"}
    bin : int
        Spatial binning factor; one binned pixel is ``bin**2`` original pixels.
    pixel_size_nm : (float, float), optional
        (dy, dx) of an original pixel in nm; needed for ``"nm2"``.
    n_pixels : int, optional
        Pixels clustered (binned grid); the size may not exceed it.

    Returns
    -------
    int
        ``round(size_px / bin**2)``, at least 2 (HDBSCAN's minimum).

    Raises
    ------
    StemsegValueError
        Non-positive size, unknown units, nm^2 without a pixel size, size above the number
        of pixels.
    """
    if not isinstance(min_cluster_size, Real) or isinstance(min_cluster_size, bool) \
            or not math.isfinite(min_cluster_size) or min_cluster_size <= 0:
        raise StemsegValueError(
            f"min_cluster_size must be a positive number; got {min_cluster_size!r}."
        )
    if units in ("px", "pixels"):
        size_px = float(min_cluster_size)
    elif units in ("nm2", "nm^2"):
        if pixel_size_nm is None:
            raise StemsegValueError(
                "min_cluster_size_units='nm2' needs navigation axes calibrated in a length "
                "unit (nm, µm, Å); these are not. Give min_cluster_size in pixels "
                "(min_cluster_size_units='px') or set the axes' scale and units."
            )
        size_px = float(min_cluster_size) / (pixel_size_nm[0] * pixel_size_nm[1])
    else:
        raise StemsegValueError(
            f"min_cluster_size_units must be 'px' or 'nm2'; got {units!r}."
        )
    binned = max(2, int(round(size_px / bin**2)))
    if n_pixels is not None and binned > n_pixels:
        raise StemsegValueError(
            f"min_cluster_size={min_cluster_size} {units} is {binned} binned pixels, more "
            f"than the {n_pixels} pixels clustered. Choose a smaller min_cluster_size (it is "
            "the smallest region, in original pixels or nm^2, that counts as a cluster)."
        )
    return binned


def fit_hdbscan(X: np.ndarray, min_cluster_size: int, *, min_samples: int | None = None,
                **kwargs: Any) -> Any:
    """Fit ``hdbscan.HDBSCAN`` (Euclidean) with prediction data.

    Parameters
    ----------
    X : numpy.ndarray, shape (n_samples, n_dims)
        Embedded features (e.g. UMAP to 4 dimensions).
    min_cluster_size : int
        Smallest cluster, in rows of ``X`` (binned pixels), >= 2.
    min_samples : int, optional
        Neighbourhood of the core distance (default: ``min_cluster_size``, hdbscan's
        rule). Smaller values label fewer points noise.
    **kwargs
        Further ``hdbscan.HDBSCAN`` arguments (``cluster_selection_method``,
        ``cluster_selection_epsilon``, ...).

    Returns
    -------
    hdbscan.HDBSCAN
        Fitted; ``labels_`` (-1 = noise), ``probabilities_``; ``prediction_data=True``.
    """
    import hdbscan

    _check_hdbscan_sizes(min_cluster_size, min_samples, X.shape[0])
    clusterer = hdbscan.HDBSCAN(min_cluster_size=int(min_cluster_size),
                                min_samples=None if min_samples is None else int(min_samples),
                                metric="euclidean", prediction_data=True, core_dist_n_jobs=1,
                                **kwargs)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return clusterer.fit(np.asarray(X, dtype=np.float64))


def _check_hdbscan_sizes(min_cluster_size: Any, min_samples: Any, n: int) -> None:
    """Raise unless ``2 <= min_cluster_size <= n`` and ``min_samples`` is None or in [1, n)."""
    if not isinstance(min_cluster_size, Integral) or min_cluster_size < 2:
        raise StemsegValueError(
            f"min_cluster_size must be at least 2 (binned) pixels; got {min_cluster_size!r}. "
            "Use min_cluster_size=2 or more."
        )
    if min_cluster_size > n:
        raise StemsegValueError(
            f"min_cluster_size ({min_cluster_size} binned pixels) exceeds the {n} pixels "
            "clustered. Choose a smaller min_cluster_size."
        )
    if min_samples is not None and (not isinstance(min_samples, Integral)
                                    or not 1 <= min_samples < n):
        raise StemsegValueError(
            f"min_samples must be a whole number between 1 and {n - 1} or None; got "
            f"{min_samples!r}."
        )


def _check_weight_kind(noise: Any, kind: Any) -> None:
    if noise not in ("zero", "soft"):
        raise StemsegValueError(f"noise must be 'zero' or 'soft'; got {noise!r}.")
    if kind not in ("membership", "probability", "hard"):
        raise StemsegValueError(
            f"weights must be 'membership', 'probability' or 'hard'; got {kind!r}."
        )


def hdbscan_weights(clusterer: Any, noise: str = "zero", kind: str = "membership"
                    ) -> np.ndarray:
    """Cluster weights of the fitted points.

    Parameters
    ----------
    clusterer : hdbscan.HDBSCAN
        Fitted with ``prediction_data=True``.
    noise : {"zero", "soft"}
        ``"zero"`` (default): noise points get weight 0 in every cluster; ``"soft"``: they
        keep their membership vector (they then contribute to the mean spectra). Only for
        ``kind="membership"``.
    kind : {"membership", "probability", "hard"}
        ``"membership"`` (default): ``hdbscan.all_points_membership_vectors``, soft
        memberships in every cluster (rows sum to at most 1: hdbscan scales each vector by
        the probability that the point is in some cluster). They are diffuse: a point
        typically keeps a few per cent in every other cluster, so a small cluster's mean
        spectrum takes in a share of the large clusters' pixels.
        ``"probability"``: weight ``probabilities_`` (HDBSCAN's strength of membership,
        0..1) in the point's own cluster only, 0 elsewhere -- no cross-talk between
        clusters, outliers of a cluster down-weighted.
        ``"hard"``: 1 in the point's own cluster.

    Returns
    -------
    numpy.ndarray, shape (n_samples, n_clusters)
        Zero columns when HDBSCAN found no cluster.
    """
    import hdbscan

    _check_weight_kind(noise, kind)
    labels = clusterer.labels_
    k = int(labels.max()) + 1
    if k == 0:
        return np.zeros((labels.size, 0))
    if kind != "membership":
        w = np.zeros((labels.size, k))
        member = np.flatnonzero(labels >= 0)
        value = 1.0 if kind == "hard" else clusterer.probabilities_[member]
        w[member, labels[member]] = value
        return w
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        w = np.asarray(hdbscan.all_points_membership_vectors(clusterer), dtype=float)
    w = w.reshape(labels.size, k)
    if noise == "zero":
        w[labels < 0] = 0.0
    return w


def hdbscan_predict(clusterer: Any, points: np.ndarray, noise: str = "zero",
                    kind: str = "membership") -> tuple[np.ndarray, np.ndarray]:
    """Labels and cluster weights of new points for a fitted HDBSCAN.

    The counterpart of :func:`hdbscan_weights` for points the clusterer was not fitted
    on (e.g. the pixels left out of a subsampled fit): ``hdbscan.approximate_predict``
    gives the labels (-1 = noise) and strengths, ``hdbscan.membership_vector`` the soft
    memberships.

    Parameters
    ----------
    clusterer : hdbscan.HDBSCAN
        Fitted with ``prediction_data=True``.
    points : numpy.ndarray, shape (n_points, n_dims)
        In the space the clusterer was fitted in.
    noise, kind
        As in :func:`hdbscan_weights`.

    Returns
    -------
    labels : numpy.ndarray of int, shape (n_points,)
    weights : numpy.ndarray, shape (n_points, n_clusters)
    """
    import hdbscan

    _check_weight_kind(noise, kind)
    k = int(clusterer.labels_.max()) + 1
    points = np.asarray(points, dtype=np.float64)
    if k == 0 or points.shape[0] == 0:
        return np.full(points.shape[0], -1, dtype=int), np.zeros((points.shape[0], max(k, 0)))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        labels, strength = hdbscan.approximate_predict(clusterer, points)
    labels = np.asarray(labels, dtype=int)
    if kind == "membership":
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            w = np.asarray(hdbscan.membership_vector(clusterer, points), dtype=float)
        w = np.nan_to_num(w.reshape(points.shape[0], k))
        if noise == "zero":
            w[labels < 0] = 0.0
        return labels, w
    w = np.zeros((points.shape[0], k))
    member = np.flatnonzero(labels >= 0)
    w[member, labels[member]] = 1.0 if kind == "hard" else np.asarray(strength)[member]
    return labels, w


def hdbscan_on_sample(embedding: np.ndarray, sample: np.ndarray | None,
                      min_cluster_size: int, *, min_samples: int | None = None,
                      noise: str = "zero", weights: str = "membership", **kwargs: Any
                      ) -> tuple[Any, np.ndarray, np.ndarray, int]:
    """HDBSCAN fitted on the rows in ``sample``, the other rows predicted.

    Parameters
    ----------
    embedding : numpy.ndarray, shape (n, n_dims)
        Every point (e.g. every binned pixel's UMAP coordinates).
    sample : numpy.ndarray of int, shape (m,), or None
        Rows to fit on (None: all, then this is :func:`fit_hdbscan` +
        :func:`hdbscan_weights`).
    min_cluster_size : int
        In rows of the whole ``embedding``; scaled by ``m / n`` for the fit (a region
        of ``c`` points keeps about ``c * m / n`` of them in a uniform sample), >= 2.
    min_samples : int, optional
        Likewise scaled (>= 1).
    noise, weights
        As in :func:`hdbscan_weights`.
    **kwargs
        Further ``hdbscan.HDBSCAN`` arguments.

    Returns
    -------
    clusterer : hdbscan.HDBSCAN
        Fitted on the sample.
    labels : numpy.ndarray of int, shape (n,)
    soft : numpy.ndarray, shape (n, n_clusters)
    min_cluster_size_fit : int
        The scaled ``min_cluster_size`` used.
    """
    n = embedding.shape[0]
    if sample is None:
        model = fit_hdbscan(embedding, min_cluster_size, min_samples=min_samples, **kwargs)
        return model, model.labels_, hdbscan_weights(model, noise, weights), min_cluster_size
    _check_hdbscan_sizes(min_cluster_size, min_samples, n)   # of the whole map
    f = sample.size / n
    mcs = max(2, int(round(min_cluster_size * f)))
    ms = None if min_samples is None else max(1, int(round(min_samples * f)))
    if ms is not None:
        ms = min(ms, sample.size - 1)
    model = fit_hdbscan(embedding[sample], mcs, min_samples=ms, **kwargs)
    k = int(model.labels_.max()) + 1
    labels = np.empty(n, dtype=int)
    soft = np.zeros((n, k))
    rest = np.setdiff1d(np.arange(n), sample)
    labels[sample] = model.labels_
    soft[sample] = hdbscan_weights(model, noise, weights)
    labels[rest], soft[rest] = hdbscan_predict(model, embedding[rest], noise, weights)
    return model, labels, soft, mcs


def n_major_clusters(labels: np.ndarray, min_fraction: float = 0.02) -> int:
    """Number of clusters holding at least ``min_fraction`` of the labelled pixels.

    HDBSCAN at a small ``min_cluster_size`` may add side clusters of a few boundary pixels;
    whether it does depends on fine details of the embedding. Counting only the major
    clusters makes statements such as "five clusters over a range of sizes" robust.

    Parameters
    ----------
    labels : numpy.ndarray of int, any shape
        Cluster labels; negative values (noise, masked) are not clusters but count in the
        total.
    min_fraction : float
        Share of all pixels (0..1) a cluster must reach (default 0.02).

    Returns
    -------
    int

    Raises
    ------
    StemsegValueError
        ``min_fraction`` outside [0, 1].
    """
    if not 0.0 <= float(min_fraction) <= 1.0:
        raise StemsegValueError(
            f"min_fraction must be between 0 and 1 (a share of the pixels); got "
            f"{min_fraction!r}."
        )
    labels = np.asarray(labels).ravel()
    if not labels.size or labels.max() < 0:
        return 0
    sizes = np.bincount(labels[labels >= 0])
    return int(np.sum(sizes[sizes > 0] >= min_fraction * labels.size))


def noise_fraction(labels: np.ndarray, used: np.ndarray | None = None) -> float:
    """Share of the (used) pixels labelled noise (-1), in [0, 1]."""
    labels = np.asarray(labels).ravel()
    if used is not None:
        labels = labels[np.asarray(used).ravel()]
    return float(np.mean(labels < 0)) if labels.size else 0.0


def order_by_size(labels: np.ndarray, weights: np.ndarray | None = None
                  ) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
    """Relabel clusters 0, 1, ... by decreasing pixel count (ties: original order).

    Parameters
    ----------
    labels : numpy.ndarray of int
        Any shape; -1 (noise/masked) is kept.
    weights : numpy.ndarray, shape (n, k), optional
        Columns reordered the same way.

    Returns
    -------
    labels : numpy.ndarray of int
    weights : numpy.ndarray or None
    order : numpy.ndarray of int, shape (k,)
        ``order[new] = old``.
    """
    labels = np.asarray(labels)
    k = int(labels.max()) + 1 if labels.size else 0
    if weights is not None:
        k = max(k, weights.shape[1])
    if k == 0:
        return labels.copy(), weights, np.zeros(0, dtype=int)
    sizes = np.bincount(labels[labels >= 0].ravel(), minlength=k)
    order = np.argsort(-sizes, kind="stable")
    new_of_old = np.empty(k, dtype=int)
    new_of_old[order] = np.arange(k)
    relabelled = np.where(labels >= 0, new_of_old[np.clip(labels, 0, None)], -1)
    return relabelled, None if weights is None else weights[:, order], order
