"""Dimensionality reduction: PCA with an automatic scree change point, and UMAP.

* :class:`PCAReducer` -- scikit-learn ``PCA`` fitted once with ``max_components``
  components (the scree curve, ``explained_variance_ratio_``); the number kept is
  ``n_components`` or, when None, the change point of the scree curve found by
  :func:`scree_knee`.
* :class:`UMAPReducer` -- umap-learn ``UMAP`` to ``n_components`` (default 4, as the paper)
  dimensions, with the k-nearest-neighbour graph computed by scikit-learn's exact
  ``NearestNeighbors`` and passed as ``precomputed_knn``.

Why kneed for the change point
------------------------------
``kneed`` (the Kneedle algorithm of Satopää et al. 2011) is a maintained, documented library
that works on a plain array, so the reduction does not need a HyperSpy signal. It is applied
to ``log10`` of the explained-variance ratios of the first ``max_points`` components, the
same curve and the same idea (largest distance from the chord) as HyperSpy's
``estimate_elbow_position``; the log makes the noise floor of a Poisson-noisy spectrum image
a straight tail so the knee is where the signal components end. When kneed finds no knee
(e.g. a curve with no bend) the HyperSpy rule (farthest point from the chord) is used, so a
number always comes back; ``scree_knee(..., method="hyperspy")`` selects it directly.

Why precomputed neighbours for UMAP
-----------------------------------
umap-learn finds neighbours with pynndescent above 4096 points, whose numba compilation
costs ~27 s once per process; an exact scikit-learn ``NearestNeighbors`` graph on a few
tens of thousands of points in tens of dimensions takes seconds and is deterministic. The
price: umap-learn cannot ``transform`` new points without its search index, so
:meth:`UMAPReducer.transform` places new points at the weighted mean embedding of their
nearest training points (the initial guess that UMAP's own ``transform`` starts from),
without the extra optimisation epochs.

Why 200 optimisation epochs for every map
-----------------------------------------
umap-learn runs 500 layout epochs on up to 10 000 points and 200 above. The paper's maps had
more than 10 000 pixels, so their embeddings had 200; a map just under the threshold (the
128 x 128 phantoms binned x2 are 4096 pixels) would get 500 and take 2.5 times as long for
no better clusters. Measured with workflow 2 on the sulfide phantom, seeds 0-9 (2 cores):
ARI against the truth equal to within 0.01 at nine seeds (0.96 instead of 0.61 at seed 5);
at 50 counts/px the PbS recall of the steel/MoS2/PbS phantom 0.895-0.97 instead of
0.86-0.97 (``labels_full`` of the time, predicted noise not yet given its block's label);
the minority-wurtzite rims got a cluster of their own in 7 of 15 runs (phantom seeds 0-4,
three UMAP seeds each) against 6 of 15; one fit 6-8 s instead of 12-15 s.
``n_epochs=None`` restores umap-learn's rule.

Compiled code cached on disk
----------------------------
umap-learn's numba kernels (the fuzzy simplicial set and the layout optimisation) are
compiled without numba's disk cache, ~10 s per fresh process. :func:`enable_umap_cache`
switches the cache on for those kernels before their first call (numba's own
``Dispatcher.enable_caching``), keyed by CPU and source file so a stale or foreign entry
is recompiled, never reused. Measured on the 2-core session machine: a 10-epoch fit of
3000 points in a fresh process 5.6 s -> 0.2 s once the cache exists.

Where the files go: numba's ``.nbi``/``.nbc`` files are written to stemseg's per-user
cache folder, never into umap-learn's or pynndescent's ``__pycache__`` in the installed
environment, nor into the repository: ``$STEMSEG_CACHE_DIR/numba`` when
``STEMSEG_CACHE_DIR`` is set, else ``platformdirs.user_cache_dir("stemseg")/numba``
(``~/.cache/stemseg/numba`` on Linux). ``import stemseg`` sets numba's cache directory
(``numba.config.CACHE_DIR``, exported as ``NUMBA_CACHE_DIR``) before umap-learn and
pynndescent are imported, so pynndescent's own ``cache=True`` functions go there too; a
``NUMBA_CACHE_DIR`` set by the user wins (see :mod:`stemseg._cache`). Deleting the folder
is safe (the kernels are recompiled). Set ``STEMSEG_NUMBA_CACHE=0`` to leave umap-learn
and numba's cache configuration untouched.
"""

from __future__ import annotations

import os
import threading
import warnings
from typing import Any

import numpy as np
from kneed import KneeLocator
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.decomposition import PCA
from sklearn.neighbors import NearestNeighbors

from . import _cache
from .errors import StemsegValueError

__all__ = ["scree_knee", "PCAReducer", "UMAPReducer", "distinct_rows", "enable_umap_cache",
           "preload_umap", "warm_umap_cache", "nearest_neighbors"]

#: Components of the PCA's scree curve (the knee is searched among the first
#: ``max_points`` + 1 = 21 of them). HyperSpy's baseline decomposes to rank 20; at 20 the
#: knee was the same at phantom seeds 0-9 (256 x 256 sulfide map) and the range finder
#: 0.2 s faster, but the Gaussian mixture that follows then fell into a worse optimum at
#: two seeds of the workflow-1 seed sweep (ARI 0.76 and 0.87 instead of > 0.9), so 30 stays.
MAX_COMPONENTS = 30

_UMAP_CACHE_ENABLED = False
_UMAP_LOCK = threading.RLock()
_PRELOAD: threading.Thread | None = None


def scree_knee(explained_variance_ratio: np.ndarray, max_points: int = 20,
               method: str = "kneed") -> int:
    """Number of components at the change point of a scree curve.

    Parameters
    ----------
    explained_variance_ratio : array_like, shape (n,)
        Decreasing explained-variance ratios (PCA's ``explained_variance_ratio_``).
    max_points : int
        Only the first ``max_points`` + 1 components are considered (default 20).
    method : {"kneed", "hyperspy"}
        ``"kneed"``: ``kneed.KneeLocator`` on log10 of the ratios (convex, decreasing,
        ``online=True`` so that a concave run of comparable signal components before
        the drop does not stop the search at the first point), falling back to ``"hyperspy"`` when no knee is found; ``"hyperspy"``: the point
        farthest from the chord of the log curve (HyperSpy's ``estimate_elbow_position``).

    Returns
    -------
    int
        The number of components to keep, >= 1: the knee's index + 1, HyperSpy's
        convention. On an ideal step (n signal components, then a noise floor) the knee
        is the first noise component, so n + 1 comes back; one extra dimension of noise
        costs a Gaussian mixture little, one missing signal dimension can merge phases.
    """
    evr = np.asarray(explained_variance_ratio, dtype=float)
    if evr.ndim != 1 or evr.size < 3:
        return int(max(evr.size, 1))
    if method not in ("kneed", "hyperspy"):
        raise StemsegValueError(f"method must be 'kneed' or 'hyperspy'; got {method!r}.")
    n = min(int(max_points), evr.size - 1)
    y = np.log10(np.clip(evr[: n + 1], 1e-30, None))
    x = np.arange(n + 1)
    if method == "kneed":
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            knee = KneeLocator(x, y, curve="convex", direction="decreasing",
                                online=True).knee
        if knee is not None:
            return int(knee) + 1
    chord = (x[-1] - x[0]) * (y[0] - y) - (x[0] - x) * (y[-1] - y[0])
    return int(np.argmax(np.abs(chord))) + 1


class PCAReducer(TransformerMixin, BaseEstimator):
    """PCA keeping the components up to the scree change point.

    Parameters
    ----------
    n_components : int or None
        Components to keep; None (default) = :func:`scree_knee` of the scree curve.
    max_components : int
        Components computed for the scree curve (default :data:`MAX_COMPONENTS` = 30;
        capped by the data).
    max_points : int
        Points of the scree curve searched for the knee (default 20).
    knee_method : {"kneed", "hyperspy"}
        See :func:`scree_knee`.
    min_components : int
        Lower bound on the automatic choice (default 1). The workflows pass
        ``n_clusters - 1``: k Gaussian clusters need k - 1 dimensions to be separable.
    svd_solver : str
        Passed to ``PCA`` (default "auto").
    random_state : int, numpy.random.RandomState or None
        Seed of the randomized solver.

    Attributes
    ----------
    pca_ : sklearn.decomposition.PCA
        Fitted with ``max_components`` components.
    explained_variance_ratio_ : numpy.ndarray, shape (max_components,)
        The scree curve.
    knee_ : int
        The automatic choice (computed even when ``n_components`` is given).
    n_components_ : int
        Components actually kept.
    """

    def __init__(self, n_components: int | None = None,
                 max_components: int = MAX_COMPONENTS,
                 max_points: int = 20, knee_method: str = "kneed", min_components: int = 1,
                 svd_solver: str = "auto", random_state: Any = None) -> None:
        self.n_components = n_components
        self.max_components = max_components
        self.max_points = max_points
        self.knee_method = knee_method
        self.min_components = min_components
        self.svd_solver = svd_solver
        self.random_state = random_state

    def fit(self, X: np.ndarray, y: Any = None) -> PCAReducer:
        """Fit the PCA on ``X`` (n_samples, n_features) and choose the components."""
        # float32 halves the memory traffic of the randomized SVD (measured 3.5 -> 2.9 s
        # on 16k x 2000); the leading ratios agree with float64 to 5 digits
        # our own float32 copy, which PCA may then centre in place (copy=False): one
        # copy of X instead of two, and the caller's array is never touched
        X = np.array(X, dtype=np.float32, copy=True)
        limit = min(X.shape)
        if self.n_components is not None:
            _check_n_components(self.n_components, X.shape)
        n_fit = min(max(int(self.max_components), int(self.n_components or 1)), limit)
        self.pca_ = PCA(n_components=n_fit, svd_solver=self.svd_solver, copy=False,
                        random_state=self.random_state).fit(X)
        self.explained_variance_ratio_ = self.pca_.explained_variance_ratio_
        self.knee_ = scree_knee(self.explained_variance_ratio_, self.max_points,
                                self.knee_method)
        auto = min(max(self.knee_, int(self.min_components)), n_fit)
        self.n_components_ = int(self.n_components) if self.n_components else auto
        return self

    def transform(self, X: np.ndarray) -> np.ndarray:
        """Project ``X`` (n, n_features) onto the kept components -> (n, ``n_components_``).

        The product is formed in X's float type (float32 features: single precision,
        as the PCA was fitted in), the result returned in float64.
        """
        # only the kept components (PCA.transform would project on all max_components);
        # the mean is subtracted after the product, (X - m) V^T = X V^T - m V^T, so no
        # centred copy of X is made (a fresh 260 MB array at 16k x 2000 cost ~0.8 s here)
        X = np.asarray(X)
        if X.dtype not in (np.float32, np.float64):
            X = X.astype(np.float64)
        comps = self.components_
        scores = (X @ comps.T.astype(X.dtype)).astype(np.float64)
        scores -= self.pca_.mean_.astype(np.float64) @ comps.T.astype(np.float64)
        return scores

    @property
    def components_(self) -> np.ndarray:
        """The kept principal axes, shape (``n_components_``, n_features)."""
        return self.pca_.components_[: self.n_components_]


def _check_n_components(n_components: Any, shape: tuple[int, int]) -> None:
    n_samples, n_features = shape
    if not isinstance(n_components, (int, np.integer)) or isinstance(n_components, bool) \
            or n_components < 1:
        raise StemsegValueError(
            f"n_components must be a whole number >= 1 or None (automatic); got "
            f"{n_components!r}."
        )
    if n_components > n_features:
        raise StemsegValueError(
            f"n_components={n_components} exceeds the {n_features} energy channels used. "
            "Choose fewer components, widen energy_range or reduce energy_bin."
        )
    if n_components > n_samples:
        raise StemsegValueError(
            f"n_components={n_components} exceeds the {n_samples} pixels clustered. Choose "
            "fewer components or a smaller bin."
        )


def distinct_rows(X: np.ndarray, stop: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The distinct rows of ``X``, in order of first appearance, by their bytes.

    Hashing each row's bytes costs ~0.2 s for 16 384 x 2000 float32 rows, ten times less
    than :func:`numpy.unique` with ``axis=0`` (which sorts the rows).

    Parameters
    ----------
    X : numpy.ndarray, shape (n, d)
    stop : int, optional
        Stop as soon as this many distinct rows are found (``inverse`` is then not
        computed and returned empty).

    Returns
    -------
    first : numpy.ndarray of int, shape (n_distinct,)
        Index of each distinct row's first appearance.
    inverse : numpy.ndarray of int, shape (n,)
        Which distinct row each row is (``X[first][inverse] == X``).
    """
    X = np.ascontiguousarray(X)
    seen: dict[bytes, int] = {}
    first, inverse = [], np.empty(X.shape[0], dtype=np.int64)
    for i, row in enumerate(X):
        j = seen.setdefault(row.tobytes(), len(seen))
        if j == len(first):
            first.append(i)
            if stop is not None and len(first) >= stop:
                return np.asarray(first, dtype=np.int64), np.empty(0, dtype=np.int64)
        inverse[i] = j
    return np.asarray(first, dtype=np.int64), inverse


def knn_graph(X: np.ndarray, n_neighbors: int) -> tuple[np.ndarray, np.ndarray]:
    """Exact k nearest neighbours of every row of ``X`` including itself.

    Parameters
    ----------
    X : numpy.ndarray, shape (n, d)
    n_neighbors : int
        Neighbours per point, the point itself first.

    Returns
    -------
    indices : numpy.ndarray of int, shape (n, n_neighbors)
    distances : numpy.ndarray of float32, shape (n, n_neighbors)
    """
    nn = NearestNeighbors(n_neighbors=n_neighbors, n_jobs=_n_jobs()).fit(X)
    dist, idx = nn.kneighbors(X)
    # put every point first in its own list (ties between duplicates can swap it)
    first = idx[:, 0] != np.arange(X.shape[0])
    if first.any():
        for i in np.flatnonzero(first):
            j = np.flatnonzero(idx[i] == i)
            if j.size:
                idx[i, [0, j[0]]] = idx[i, [j[0], 0]]
                dist[i, [0, j[0]]] = dist[i, [j[0], 0]]
            else:
                idx[i, 1:], dist[i, 1:] = idx[i, :-1].copy(), dist[i, :-1].copy()
                idx[i, 0], dist[i, 0] = i, 0.0
    return idx.astype(np.int64), dist.astype(np.float32)


def nearest_neighbors(train: np.ndarray, X: np.ndarray, k: int
                      ) -> tuple[np.ndarray, np.ndarray]:
    """Exact ``k`` nearest rows of ``train`` for every row of ``X`` (Euclidean, in float32).

    scikit-learn's brute-force ``NearestNeighbors`` (the fastest of its algorithms here:
    measured 65 536 queries among 4096 points in 30 dimensions, 0.66 s against 1.8 s for
    a ball tree and 2.4 s for a k-d tree), queried in blocks of 4096 rows.

    Returns
    -------
    dist : numpy.ndarray of float, shape (n, k)
    idx : numpy.ndarray of int, shape (n, k)
    """
    train = np.asarray(train, dtype=np.float32)
    nn = NearestNeighbors(n_neighbors=int(k), n_jobs=_n_jobs()).fit(train)
    parts = [nn.kneighbors(np.asarray(X[start:start + 4096], dtype=np.float32))
             for start in range(0, X.shape[0], 4096)]
    if not parts:
        return np.empty((0, int(k)), dtype=np.float32), np.empty((0, int(k)), dtype=np.intp)
    return (np.concatenate([d for d, _ in parts]),
            np.concatenate([i for _, i in parts]))


def enable_umap_cache() -> bool:
    """Switch on numba's disk cache for umap-learn's compiled kernels (see module notes).

    Idempotent and cheap; does nothing when ``STEMSEG_NUMBA_CACHE=0`` is set or when
    numba's dispatcher API is not as expected (the cache is an optimisation only). The
    files go to ``numba`` under stemseg's per-user cache folder (``$STEMSEG_CACHE_DIR``,
    else ``platformdirs.user_cache_dir("stemseg")``) unless ``NUMBA_CACHE_DIR`` is set;
    never into the installed umap-learn package.

    Returns
    -------
    bool
        True when the cache is (now) enabled.
    """
    with _UMAP_LOCK:
        return _enable_umap_cache()


def _enable_umap_cache() -> bool:
    global _UMAP_CACHE_ENABLED
    if _UMAP_CACHE_ENABLED:
        return True
    if not _cache.numba_cache_enabled():
        return False
    # numba's cache directory must be set before umap-learn (and pynndescent, which it
    # imports) is imported: cache=True functions pick their folder at decoration time
    _cache.configure_numba_cache_dir()
    try:
        import umap.layouts
        import umap.umap_
        from numba.core.dispatcher import Dispatcher
        from numba.core.caching import NullCache
    except ImportError:
        return False
    for module in (umap.umap_, umap.layouts):
        for obj in vars(module).values():
            if isinstance(obj, Dispatcher) and isinstance(obj._cache, NullCache):
                try:
                    obj.enable_caching()
                except Exception:  # noqa: BLE001 -- e.g. a function without a source file
                    continue
    _UMAP_CACHE_ENABLED = True
    return True


def _import_umap() -> None:
    try:
        enable_umap_cache()
        import umap  # noqa: F401
    except Exception:  # noqa: BLE001 -- the fit's own import reports any failure
        pass


def preload_umap() -> None:
    """Start importing umap-learn in a background thread; return at once.

    ``import umap`` loads (or, with an empty numba cache, compiles) umap-learn's and
    pynndescent's numba kernels: ~1 s with a warm cache, tens of seconds on a first run
    (measured on the 2-core session machine). The HDBSCAN workflow calls this when its fit
    starts, so that the import overlaps the preprocessing, whose NumPy work releases
    the GIL (as does LLVM's compilation); the fit's own ``import umap`` then waits for
    the thread (Python's import lock) or finds the module loaded. Nothing is computed
    differently. Idempotent; a failed import is left for the fit to report.
    """
    global _PRELOAD
    import sys

    with _UMAP_LOCK:
        if _PRELOAD is not None or "umap.umap_" in sys.modules:
            return
        # not a daemon: the interpreter waits for it at exit instead of killing it inside
        # an import
        _PRELOAD = threading.Thread(target=_import_umap, name="stemseg-import-umap")
        _PRELOAD.start()


#: UMAP optimisation epochs of every fit (see the module notes): what umap-learn itself runs
#: on maps of more than 10 000 pixels, the size of the paper's maps
UMAP_EPOCHS = 200


def _n_jobs() -> int:
    return max(1, min(2, os.cpu_count() or 1))


class UMAPReducer(TransformerMixin, BaseEstimator):
    """UMAP embedding with exact, precomputed nearest neighbours.

    Parameters
    ----------
    n_components : int
        Embedding dimensions (default 4, as the paper).
    n_neighbors : int
        Size of the local neighbourhood (default 30). Larger values favour global
        structure; for clustering, umap-learn's documentation recommends values above the
        default 15.
    min_dist : float
        Minimum distance between embedded points (default 0.0: dense, well-separated
        clumps, the setting umap-learn recommends for clustering).
    precomputed_knn : bool
        Compute the neighbour graph with scikit-learn (default True; see module notes).
    random_state : int or None
        Seed of the embedding; with a seed umap-learn runs single-threaded and is
        reproducible.
    n_epochs : int or None
        Layout optimisation epochs (default :data:`UMAP_EPOCHS` = 200 whatever the number of
        points; None: umap-learn's own choice, 500 up to 10 000 points, else 200).
    umap_kwargs : dict, optional
        Further arguments of ``umap.UMAP``.

    Attributes
    ----------
    umap_ : umap.UMAP
        The fitted model.
    embedding_ : numpy.ndarray, shape (n_samples, n_components)
    n_unique_ : int
        Distinct rows of the fitted data; duplicates share one embedded point (umap-learn's
        ``unique=True``), so that a map with many identical (e.g. empty) pixels embeds the
        same way in every run.
    """

    def __init__(self, n_components: int = 4, n_neighbors: int = 30, min_dist: float = 0.0,
                 precomputed_knn: bool = True, random_state: Any = None,
                 n_epochs: int | None = UMAP_EPOCHS,
                 umap_kwargs: dict[str, Any] | None = None) -> None:
        self.n_components = n_components
        self.n_neighbors = n_neighbors
        self.min_dist = min_dist
        self.precomputed_knn = precomputed_knn
        self.random_state = random_state
        self.n_epochs = n_epochs
        self.umap_kwargs = umap_kwargs

    def fit(self, X: np.ndarray, y: Any = None) -> UMAPReducer:
        """Embed ``X`` (n_samples, n_features)."""
        self.fit_transform(X)
        return self

    def fit_transform(self, X: np.ndarray, y: Any = None, **_: Any) -> np.ndarray:
        """Embed ``X`` (n_samples, n_features) -> (n_samples, n_components)."""
        X = np.asarray(X, dtype=np.float32)
        self._X_fit = X
        # exact duplicate rows (pixels with the same counts, e.g. the empty pixels of a
        # very sparse map) are embedded once, as umap-learn's own unique=True does: more
        # duplicates than n_neighbors make the neighbour distances all zero, and the layout
        # then differs from run to run even with a seed (measured on a Velox map with 3
        # distinct binned spectra among 4096)
        first, inverse = distinct_rows(X)
        unique = X[first]
        self.n_unique_ = int(first.size)
        if self.n_unique_ < X.shape[0]:
            if self.n_unique_ < max(3, self.n_components + 2):
                raise StemsegValueError(
                    f"only {self.n_unique_} distinct spectra among the {X.shape[0]} pixels "
                    "to embed: there is nothing to cluster. Check that this is the EDS "
                    "spectrum image and that energy_range covers its X-ray lines, bin "
                    "more, or record longer."
                )
            self.embedding_ = self._fit_embedding(unique)[inverse]
        else:
            self.embedding_ = self._fit_embedding(X)
        return self.embedding_

    def _fit_embedding(self, X: np.ndarray) -> np.ndarray:
        """umap-learn's fit on distinct rows ``X`` (n, n_features) -> (n, n_components)."""
        n = X.shape[0]
        if self.n_components < 1 or self.n_components >= n - 1:
            raise StemsegValueError(
                f"n_components={self.n_components} must be between 1 and the number of "
                f"pixels minus 2 ({n - 2}). Use fewer dimensions or a smaller bin."
            )
        k = int(min(self.n_neighbors, n - 1))
        if k < 2:
            raise StemsegValueError(
                f"UMAP needs at least 3 pixels; got {n}. Use a smaller bin or a larger map."
            )
        kwargs = dict(n_components=int(self.n_components), n_neighbors=k,
                      min_dist=float(self.min_dist), random_state=self.random_state,
                      n_jobs=1 if self.random_state is not None else _n_jobs(),
                      n_epochs=None if self.n_epochs is None else int(self.n_epochs))
        kwargs.update(self.umap_kwargs or {})
        if self.precomputed_knn:
            idx, dist = knn_graph(X, k)
            kwargs["precomputed_knn"] = (idx, dist)
        # only now: the neighbours above need no umap-learn, so an import started by
        # preload_umap() runs on meanwhile; the cache folder is set before the import
        enable_umap_cache()
        import umap

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            self.umap_ = umap.UMAP(**kwargs)
            return self.umap_.fit_transform(X)

    def transform(self, X: np.ndarray, n_neighbors: int | None = None,
                  reference: np.ndarray | None = None, return_neighbors: bool = False
                  ) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
        """Place new points in the embedding.

        Each row of ``X`` goes to the mean embedding of its ``n_neighbors`` nearest
        training points (default: the fitted ``n_neighbors``), weighted by
        ``exp(-(d - d_min) / sigma)`` with ``sigma`` the mean neighbour distance above
        the nearest -- the starting point that umap-learn's own ``transform`` refines.

        Parameters
        ----------
        X : numpy.ndarray, shape (n, n_features)
        reference : numpy.ndarray, shape (n_samples, n_features'), optional
            The training points in another representation (e.g. their leading PCA
            scores) in which to search the neighbours; ``X`` must then be in the same
            representation. Default: the features UMAP was fitted on.
        return_neighbors : bool
            Also return the indices of the neighbours found.

        Returns
        -------
        numpy.ndarray, shape (n, n_components)
        neighbors : numpy.ndarray of int, shape (n, n_neighbors)
            Only with ``return_neighbors=True``: row indices of the training points.
        """
        train = self._X_fit if reference is None else np.asarray(reference, np.float32)
        if train.shape[0] != self.embedding_.shape[0]:
            raise StemsegValueError(
                f"reference has {train.shape[0]} rows but UMAP was fitted on "
                f"{self.embedding_.shape[0]} points; pass the training points' representation."
            )
        k = int(min(n_neighbors or self.umap_.n_neighbors, train.shape[0]))
        dist, idx = nearest_neighbors(train, X, k)
        out = self.place(dist, idx)
        return (out, idx) if return_neighbors else out

    def place(self, dist: np.ndarray, idx: np.ndarray) -> np.ndarray:
        """Embedding of new points from their nearest training points (see :meth:`transform`).

        Parameters
        ----------
        dist, idx : numpy.ndarray, shape (n, k)
            Distances (increasing) and row indices of each point's nearest training
            points, as :func:`nearest_neighbors` gives them.

        Returns
        -------
        numpy.ndarray of float32, shape (n, n_components)
        """
        out = np.empty((dist.shape[0], self.embedding_.shape[1]), dtype=np.float32)
        for start in range(0, dist.shape[0], 4096):
            d, i = dist[start:start + 4096], idx[start:start + 4096]
            excess = d - d[:, :1]
            sigma = excess.mean(axis=1, keepdims=True)
            w = np.exp(-excess / np.where(sigma > 0, sigma, 1.0))
            w /= w.sum(axis=1, keepdims=True)
            out[start:start + 4096] = np.einsum("nk,nkd->nd", w, self.embedding_[i])
        return out


def warm_umap_cache(random_state: int = 0) -> bool:
    """Compile umap-learn's kernels for this machine now and keep them in numba's disk cache.

    A first HDBSCAN workflow on a new machine (or a new Binder container) otherwise spends
    tens of seconds compiling them (see the module notes); ``stemseg warm-up`` calls this
    once after installation (``make venv`` and Binder's ``postBuild`` do). It fits two
    small UMAP embeddings of random points with the workflow's settings -- 300 points
    (umap-learn's path for fewer than 4096) and 4200 (its path for more, which the
    workflow's 4096-pixel sample takes) -- for 5 epochs each, and places a few new points,
    so that every kernel the workflow calls is compiled with the argument types it uses.

    Returns
    -------
    bool
        True when the compiled code went to the disk cache (False when
        ``STEMSEG_NUMBA_CACHE=0``: the kernels were compiled for this process only).
    """
    cached = enable_umap_cache()
    rng = np.random.default_rng(random_state)
    for n in (300, 4200):
        x = rng.normal(size=(n, 12)).astype(np.float32)
        reducer = UMAPReducer(n_components=4, random_state=random_state, n_epochs=5)
        reducer.fit(x)
        reducer.transform(x[:8])
    return cached
