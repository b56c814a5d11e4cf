"""Big maps: the two workflows streamed over a lazy (dask) spectrum image, in bounded memory.

The workflows' estimators (:class:`stemseg.workflows.GMMSegmenter`,
:class:`stemseg.workflows.HDBSCANSegmenter`, and the functions over them) fit through
:class:`Streamed` when their input is a HyperSpy *lazy* signal (e.g.
``stemseg.io.load(path, lazy=True)``) or when they are given a ``dask.distributed``
``Client``: the fit is the same code, only its passes over the map are these.
The stages are those of the in-memory workflow (:mod:`stemseg.preprocess`,
:mod:`stemseg.reduce`, :mod:`stemseg.cluster`), but the spectrum image and the feature
matrix are never held whole: every pass over the data goes block by block through dask
(one block = one dask chunk of the map, all energy channels), and only small per-block
results travel back.

The passes
----------
1. **Binning** -- HyperSpy's lazy ``rebin`` (counts summed, remainder cropped), as the
   in-memory :func:`stemseg.preprocess.bin_signal`.
2. **RobustScaler statistics, exact** -- per-channel histograms of the (integer) binned
   feature counts, summed over blocks; the median and quartiles follow from the cumulative
   histogram with NumPy's default ``"linear"`` interpolation (:func:`quantiles_from_histogram`),
   bit for bit what ``np.percentile`` gives on the whole matrix. With ``poisson=True`` the
   histogram is kept per (counts, pixel total) pair, whose weighted value
   ``counts / sqrt(total) / sqrt(channel total)`` is computed with the in-memory path's
   floating-point operations, so these statistics are exact too. Counts that are not whole
   numbers are refused (the exact statistics need them; see the error's advice).
3. **PCA from streamed moments** -- ``sum(x)`` and ``x^T x`` of the scaled features summed
   over blocks (exact, one pass, map-reduce), then ``numpy.linalg.eigh`` of the
   (n_features x n_features) covariance on the caller. The in-memory workflow uses a
   randomized SVD of the same matrix; the leading components agree to its accuracy (signs
   are fixed by scikit-learn's rule), so labels agree (ARI ~1 measured, not bit-identical).
4. **Scores** of the binned pixels (n x d, small), through the folded projection
   :meth:`stemseg.preprocess.Prepared.project`; the Gaussian mixture is fitted in memory
   on them (:func:`stemseg.cluster.fit_gmm`, the scree knee of :mod:`stemseg.reduce`).
5. **Weighted sums** of the binned counts for the mean spectra and the unbinned-pixel
   noise covariances, then **labels_full** of every original pixel by the same folded
   projection and :func:`stemseg.cluster.gmm_predict_noisy`, block by block.

The HDBSCAN workflow shares passes 1, 4 and 5 (its steps:
:meth:`stemseg.workflows.HDBSCANSegmenter._fit`):
UMAP is fitted on the same seeded sample of binned pixels as in memory, whose feature rows
alone are gathered (:func:`gather_features`), and its search-space PCA is fitted on them
exactly as in memory, so the labels agree with the in-memory path to rounding.

Peak memory is a few blocks in float64 per dask thread plus one (n_features x n_features)
matrix per block in flight, independent of the map's size; the result's ``counts`` is the
lazy binned signal, ``models["prepared"].X`` the lazy (dask) feature matrix.

Schedulers
----------
``client=None`` uses dask's default scheduler (threads on this machine, or a
``dask.distributed`` Client already made the default). A ``distributed.Client`` -- a
``LocalCluster``, dask-jobqueue on SLURM/PBS, dask-kubernetes, Dask Gateway -- runs the
same graph on its workers (``dask.compute(..., scheduler=client)``); the workers must see
the input file at the same path. stemseg has no scheduler of its own.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from . import preprocess as _pre
from . import reduce as _reduce
from ._blocks import compute, is_lazy, one_energy_chunk, tree, weighted_sums
from .errors import StemsegValueError

__all__ = ["is_lazy", "prepare", "fit_pca", "scores", "gather_features", "weighted_sums",
           "Streamed", "quantiles_from_histogram"]

_SUB = 4096           # pixels converted to float64 at a time inside a block
_V_BITS = 24          # histogram key: counts per feature channel < 2**24
_DENSE_LIMIT = 1 << 22  # largest dense per-block histogram (entries) before np.unique


# --------------------------------------------------------------------------------------
# small public helpers
# --------------------------------------------------------------------------------------


def quantiles_from_histogram(values: np.ndarray, counts: np.ndarray,
                             q: Any = (25.0, 50.0, 75.0)) -> np.ndarray:
    """Percentiles of a sample given as a histogram, equal to ``np.percentile`` on the sample.

    NumPy's default ``"linear"`` method: for ``n`` sorted values ``v`` and percentile ``q``
    the virtual index is ``h = (n - 1) q / 100``, the result ``v[floor h]`` interpolated
    towards ``v[floor h + 1]`` by ``h - floor h`` (NumPy's ``_lerp``, reproduced here with
    the same floating-point operations, so the results are identical, not just close).
    The order statistics are read from the cumulative histogram.

    Parameters
    ----------
    values : numpy.ndarray, shape (m,)
        Distinct sample values, increasing.
    counts : numpy.ndarray of int, shape (m,)
        Occurrences of each value, > 0.
    q : float or sequence of float
        Percentiles in [0, 100].

    Returns
    -------
    numpy.ndarray of float64, shape (len(q),)

    Raises
    ------
    StemsegValueError
        Empty histogram, unsorted values or non-positive counts.
    """
    values = np.asarray(values, dtype=np.float64)
    counts = np.asarray(counts, dtype=np.int64)
    if values.ndim != 1 or values.shape != counts.shape or not values.size:
        raise StemsegValueError(
            "values and counts must be non-empty 1-D arrays of the same length; got shapes "
            f"{values.shape} and {counts.shape}."
        )
    if np.any(counts <= 0) or np.any(np.diff(values) <= 0):
        raise StemsegValueError(
            "values must be strictly increasing and counts positive (a histogram with its "
            "empty bins dropped); sort with np.unique(sample, return_counts=True)."
        )
    cum = np.cumsum(counts)
    return _lerp_quantiles(values, cum, np.zeros(1, np.int64), int(cum[-1]),
                           np.atleast_1d(np.asarray(q, dtype=np.float64)))[:, 0]


def _lerp_quantiles(values: np.ndarray, cum: np.ndarray, offsets: np.ndarray, n: int,
                    q: np.ndarray) -> np.ndarray:
    """(len(q), n_groups) percentiles of groups of n values each, from one cumulative count.

    ``values`` hold the distinct values of every group in turn (increasing within a group),
    ``cum`` their cumulative counts over all groups and ``offsets`` the number of values
    before each group (``g * n``).
    """
    out = np.empty((q.size, offsets.size))
    for i, qi in enumerate(q / 100.0):
        h = np.float64(n - 1) * qi                  # NumPy: (n - 1) * quantiles
        lo = np.floor(h)
        gamma = np.float64(h - lo)
        lo = int(lo)
        hi = lo + 1 if lo + 1 < n else n - 1
        a = values[np.searchsorted(cum, offsets + lo, side="right")]
        b = values[np.searchsorted(cum, offsets + hi, side="right")]
        diff = b - a                                # NumPy's _lerp, same operations
        res = a + diff * gamma
        if gamma >= 0.5:
            res = b - diff * (1 - gamma)
        out[i] = res
    return out


# --------------------------------------------------------------------------------------
# dask plumbing
# --------------------------------------------------------------------------------------


def _check_client(client: Any) -> None:
    if client is None:
        return
    try:
        from distributed import Client
    except ImportError:  # pragma: no cover - distributed is a dependency
        Client = ()  # type: ignore[assignment]
    if not (isinstance(client, Client) if Client else hasattr(client, "get")):
        raise StemsegValueError(
            f"client must be a dask.distributed.Client (or None for dask's default "
            f"scheduler); got {type(client).__name__}. Make one with "
            "`from dask.distributed import Client; client = Client(cluster)`."
        )
    if getattr(client, "status", "running") not in ("running", "connecting", "newly-created"):
        raise StemsegValueError(
            f"client is {client.status!r}, not running. Create a new Client (or reconnect) "
            "before passing it."
        )


def _blockwise(arr: Any, used: np.ndarray, func: Any, *args: Any) -> list:
    """Delayed ``func(block, used_block, *args)`` for every (y, x) block of a 3-D dask array."""
    from dask import delayed

    arr = one_energy_chunk(arr)
    ys = np.cumsum((0,) + arr.chunks[0])
    xs = np.cumsum((0,) + arr.chunks[1])
    blocks = arr.to_delayed()
    f = delayed(func, pure=True)
    return [f(blocks[i, j, 0], used[ys[i]:ys[i + 1], xs[j]:xs[j + 1]], *args)
            for i in range(len(ys) - 1) for j in range(len(xs) - 1)]


def _used_pixels(block: np.ndarray, used: np.ndarray) -> np.ndarray:
    pixels = block.reshape(-1, block.shape[-1])
    return pixels if used.all() else pixels[used.ravel()]


# --------------------------------------------------------------------------------------
# pass 1: checks and exact RobustScaler statistics
# --------------------------------------------------------------------------------------


def _stats_block(block: np.ndarray, used: np.ndarray, energy_bin: int, channels: np.ndarray,
                 poisson: bool, histogram: bool) -> dict:
    """Checks, channel totals and the sparse feature histogram of one block."""
    block = np.asarray(block)
    out: dict[str, Any] = dict(n=0, nonfinite=0, min=np.inf, nonzero=False,
                               integer=True, totals=np.zeros(channels.size),
                               keys=np.zeros(0, np.int64), counts=np.zeros(0, np.int64),
                               vmax=0, amax=0)
    if block.dtype.kind in "fc":
        out["nonfinite"] = int(np.count_nonzero(~np.isfinite(block)))
    if block.size:
        out["min"] = float(block.min())
        out["nonzero"] = bool(np.any(block))
    pixels = _used_pixels(block, used)
    out["n"] = int(pixels.shape[0])
    if out["nonfinite"] or out["min"] < 0:
        return out
    f = channels.size
    keys, counts = [], []
    for start in range(0, pixels.shape[0], _SUB):
        x = _pre._feature_channels(pixels[start:start + _SUB], energy_bin, channels)
        out["totals"] += x.sum(axis=0)
        if not histogram:
            continue
        xi = x.astype(np.int64)
        if np.any(xi != x):
            out["integer"] = False
            histogram = False
            continue
        rows, cols = np.nonzero(xi)
        v = xi[rows, cols]
        out["vmax"] = max(out["vmax"], int(v.max()) if v.size else 0)
        if poisson:
            a = xi.sum(axis=1)
            out["amax"] = max(out["amax"], int(a.max()) if a.size else 0)
            if out["vmax"] >> _V_BITS or out["amax"] >> (62 - _V_BITS - f.bit_length()):
                return out           # too large to pack; the caller says so
            k = ((a[rows] << _V_BITS) | v) * f + cols
        else:
            if out["vmax"] >> _V_BITS:
                return out
            k = v * f + cols
        if k.size and int(k.max()) < _DENSE_LIMIT:
            dense = np.bincount(k, minlength=0)
            u = np.flatnonzero(dense)
            keys.append(u.astype(np.int64))
            counts.append(dense[u].astype(np.int64))
        else:
            u, c = np.unique(k, return_counts=True)
            keys.append(u)
            counts.append(c.astype(np.int64))
    if keys:
        out["keys"], out["counts"] = _merge_hist(np.concatenate(keys), np.concatenate(counts))
    return out


def _merge_hist(keys: np.ndarray, counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    u, inv = np.unique(keys, return_inverse=True)
    return u, np.bincount(inv.ravel(), weights=counts, minlength=u.size).astype(np.int64)


def _stats_combine(a: dict, b: dict) -> dict:
    keys, counts = _merge_hist(np.concatenate([a["keys"], b["keys"]]),
                               np.concatenate([a["counts"], b["counts"]]))
    return dict(n=a["n"] + b["n"], nonfinite=a["nonfinite"] + b["nonfinite"],
                min=min(a["min"], b["min"]), nonzero=a["nonzero"] or b["nonzero"],
                integer=a["integer"] and b["integer"], totals=a["totals"] + b["totals"],
                keys=keys, counts=counts, vmax=max(a["vmax"], b["vmax"]),
                amax=max(a["amax"], b["amax"]))


def _check_stats(stats: dict, energy_range: Any) -> None:
    """The messages of :func:`stemseg.preprocess.check_counts`, from the streamed totals."""
    if stats["nonfinite"]:
        raise StemsegValueError(
            f"data holds {stats['nonfinite']} NaN or infinite values (after binning). Replace "
            "them (e.g. signal.data = np.nan_to_num(signal.data)) or mask those pixels with "
            "mask=."
        )
    if stats["min"] < 0:
        raise StemsegValueError(
            f"data holds negative counts (minimum {stats['min']:g} after binning). Clustering "
            "expects raw X-ray counts: undo any background subtraction, or clip with "
            "signal.map(np.clip, a_min=0, a_max=None)."
        )
    if not stats["nonzero"]:
        raise StemsegValueError(
            "data holds no counts (all zero). Check that the right signal was loaded and that "
            "energy_range covers the X-ray lines."
        )
    if not np.any(stats["totals"]):
        raise StemsegValueError(
            f"data within energy_range={energy_range} keV holds no counts (all zero). Check "
            "that the right signal was loaded and that energy_range covers the X-ray lines."
        )


def _robust_scaler(stats: dict, n_features: int, channel_root: np.ndarray | None) -> Any:
    """A fitted RobustScaler whose statistics equal those of the in-memory path."""
    from sklearn.preprocessing import RobustScaler

    n = stats["n"]
    keys, counts = stats["keys"], stats["counts"]
    chan = keys % n_features
    packed = keys // n_features
    v = (packed & ((1 << _V_BITS) - 1)).astype(np.float64)
    if channel_root is not None:  # (v / sqrt(a)) / sqrt(b): preprocess.poisson_normalise's ops
        a = (packed >> _V_BITS).astype(np.float64)
        v = v / np.sqrt(a) / channel_root[chan]
    zeros = n - np.bincount(chan, weights=counts, minlength=n_features).astype(np.int64)
    chan = np.concatenate([chan, np.arange(n_features)])
    v = np.concatenate([v, np.zeros(n_features)])
    counts = np.concatenate([counts, zeros])
    keep = counts > 0
    chan, v, counts = chan[keep], v[keep], counts[keep]
    order = np.lexsort((v, chan))
    chan, v, counts = chan[order], v[order], counts[order]
    # equal values (after the float division) merge into one histogram entry
    new = np.ones(v.size, dtype=bool)
    new[1:] = (chan[1:] != chan[:-1]) | (v[1:] != v[:-1])
    idx = np.cumsum(new) - 1
    counts = np.bincount(idx, weights=counts).astype(np.int64)
    v = v[new]
    cum = np.cumsum(counts)
    offsets = np.arange(n_features, dtype=np.int64) * n
    q25, q50, q75 = _lerp_quantiles(v, cum, offsets, n, np.array([25.0, 50.0, 75.0]))
    scaler = RobustScaler()
    iqr = q75 - q25
    scaler.center_ = q50
    scaler.scale_ = np.where(iqr == 0, 1.0, iqr)
    scaler.n_features_in_ = n_features
    return scaler


def prepare(
    data: Any,
    bin: int = 2,
    *,
    energy_bin: int = 1,
    energy_range: tuple[float | None, float | None] | None = _pre.DEFAULT_ENERGY_RANGE,
    mask: Any = None,
    poisson: bool = False,
    scaler: str | None = "robust",
    client: Any = None,
) -> _pre.Prepared:
    """:func:`stemseg.preprocess.preprocess` for a lazy spectrum image, in bounded memory.

    One pass over the data (block by block): the checks of the counts, the channel totals
    (Poisson weighting) and the exact RobustScaler statistics (see the module notes).

    Parameters
    ----------
    data : Acquisition, Phantom or EDS spectrum image (y, x | energy), lazy or not
        Raw counts; not modified. A non-lazy signal is wrapped as a dask array (no copy).
    bin, energy_bin, energy_range, mask, poisson, scaler
        As :func:`stemseg.preprocess.preprocess`.
    client : dask.distributed.Client, optional
        Runs the pass on its workers (default: dask's default scheduler).

    Returns
    -------
    stemseg.preprocess.Prepared
        ``counts`` is the *lazy* binned signal and ``X`` the *lazy* (dask) feature matrix,
        shape (n_used, n_features), float32; ``scaler``, ``channel_root``, ``used`` and
        the rest as the in-memory result (``params["lazy"] = True``).

    Raises
    ------
    StemsegValueError
        As :func:`stemseg.preprocess.preprocess`; counts that are not whole numbers when
        ``scaler="robust"``; a ``client`` that is not a running ``distributed.Client``.
    """
    _check_client(client)
    signal = _pre.as_signal(data)
    bin = _pre.check_bin(bin, "bin")
    energy_bin = _pre.check_bin(energy_bin, "energy_bin")
    if scaler not in ("robust", None):
        raise StemsegValueError(f"scaler must be 'robust' or None; got {scaler!r}.")
    channels, energy = _pre._channel_selection(signal, energy_bin, energy_range)
    if not is_lazy(signal):
        signal = signal.as_lazy()
    ny0, nx0 = signal.data.shape[:2]
    cy, cx = (ny0 // bin) * bin, (nx0 // bin) * bin
    cropped = signal
    if bin > 1 and 0 < cy and 0 < cx and (cy, cx) != (ny0, nx0):
        # HyperSpy's lazy rebin does not crop (crop=True is for in-memory data): crop first
        cropped = signal.inav[:cx, :cy]
    if bin == 1:   # the same (immutable) dask array in a new signal: nothing is copied
        counts = signal.inav[:, :]
    elif min(ny0, nx0) < bin:
        counts = _pre.bin_signal(signal, bin)    # raises its "bin larger than the map"
    else:
        # HyperSpy's lazy rebin in the input's integer type (sums in 64-bit integers):
        # preprocess.bin_signal's float64 sums would first convert each whole dask chunk
        # to float64 (4x a uint16 chunk), the largest transient of the streamed path
        counts = cropped.rebin(scale=(bin, bin, 1), crop=True)
    original_shape = tuple(signal.data.shape[:2])
    cube = one_energy_chunk(counts.data)
    used = _binned_mask(mask, original_shape, tuple(cube.shape[:2]), bin)
    want_hist = scaler == "robust"
    parts = _blockwise(cube, used, _stats_block, energy_bin, channels, bool(poisson), want_hist)
    (stats,) = compute(tree(parts, _stats_combine), client=client)
    _check_stats(stats, energy_range)
    _pre.warn_if_sparse(float(stats["totals"].sum()) / max(stats["n"], 1), bin,
                        original_shape=tuple(original_shape))
    if want_hist and not stats["integer"]:
        raise StemsegValueError(
            "The lazy path computes the RobustScaler statistics exactly from histograms of "
            "integer counts, but these counts are not whole numbers (calibrated or "
            "background-subtracted data?). Pass scaler=None, round the counts "
            "(signal.map(np.round)), or load the map without lazy=True for the in-memory "
            "workflow."
        )
    if want_hist and (stats["vmax"] >> _V_BITS
                      or stats["amax"] >> (62 - _V_BITS - channels.size.bit_length())):
        raise StemsegValueError(
            f"Counts too large for the lazy path's exact histograms (up to {stats['vmax']} "
            f"per channel, {stats['amax']} per pixel). Use energy_bin=1, a smaller bin, or "
            "the in-memory workflow (load without lazy=True)."
        )
    channel_root = None
    if poisson:
        b = stats["totals"]
        channel_root = np.sqrt(np.where(b > 0, b, 1.0))
    fitted = _robust_scaler(stats, channels.size, channel_root) if want_hist else None
    ny, nx = cube.shape[:2]
    prep = _pre.Prepared(
        X=np.empty((0, channels.size)), counts=counts, used=used,
        original_shape=original_shape, bin=bin, energy_bin=energy_bin, channels=channels,
        energy=energy, scaler=fitted, poisson=bool(poisson), channel_root=channel_root,
        crop=(ny * bin, nx * bin), pixel_size_nm=_pre._pixel_size_nm(signal),
        params=dict(bin=bin, energy_bin=energy_bin, energy_range=energy_range,
                    mask=mask is not None, poisson=bool(poisson), scaler=scaler, lazy=True),
    )
    light = _light(prep)
    feats = cube.map_blocks(_features_block, light, dtype=_pre.FEATURE_DTYPE,
                            chunks=cube.chunks[:2] + ((channels.size,),))
    flat = feats.reshape(-1, channels.size)
    prep.X = flat if used.all() else flat[used.ravel()]
    return prep


def _binned_mask(mask: Any, original_shape: tuple[int, int], binned_shape: tuple[int, int],
                 bin: int) -> np.ndarray:
    if mask is not None and hasattr(getattr(mask, "data", mask), "compute"):
        mask = np.asarray(getattr(mask, "data", mask).compute())
    used = _pre._binned_mask(mask, original_shape, binned_shape, bin)
    if not used.any():
        raise StemsegValueError("mask excludes every pixel. Pass mask=None or a looser mask.")
    return used


def _light(prep: _pre.Prepared) -> _pre.Prepared:
    """The prepared stages without the data (what a dask task needs to transform pixels)."""
    return dataclasses.replace(prep, X=np.empty((0, prep.channels.size)), counts=None)


def _features_block(block: np.ndarray, prep: _pre.Prepared) -> np.ndarray:
    pixels = np.asarray(block).reshape(-1, block.shape[-1])
    return prep.features(pixels).reshape(block.shape[:2] + (prep.channels.size,))


# --------------------------------------------------------------------------------------
# pass 2: PCA from streamed moments
# --------------------------------------------------------------------------------------


def _moments_block(block: np.ndarray, used: np.ndarray, prep: _pre.Prepared
                   ) -> tuple[int, np.ndarray, np.ndarray]:
    pixels = _used_pixels(np.asarray(block), used)
    f = prep.channels.size
    s, g = np.zeros(f), np.zeros((f, f))
    for start in range(0, pixels.shape[0], _SUB):
        # moments in float64: the covariance is a difference of large sums
        x = prep.features(pixels[start:start + _SUB]).astype(np.float64)
        s += x.sum(axis=0)
        g += x.T @ x
    return pixels.shape[0], s, g


def _moments_combine(a: tuple, b: tuple) -> tuple:
    return a[0] + b[0], a[1] + b[1], a[2] + b[2]


def fit_pca(prep: _pre.Prepared, n_components: int | None = None, *,
            max_components: int = _reduce.MAX_COMPONENTS,
            max_points: int = 20, knee_method: str = "kneed", min_components: int = 1,
            client: Any = None) -> _reduce.PCAReducer:
    """PCA of the lazy feature matrix from its streamed first and second moments.

    Parameters
    ----------
    prep : stemseg.preprocess.Prepared
        From :func:`prepare` (lazy ``counts``).
    n_components, max_components, max_points, knee_method, min_components
        As :class:`stemseg.reduce.PCAReducer`.
    client : dask.distributed.Client, optional

    Returns
    -------
    stemseg.reduce.PCAReducer
        Fitted (``pca_`` a scikit-learn ``PCA`` holding the exact leading eigenvectors of
        the covariance, ``explained_variance_ratio_``, ``knee_``, ``n_components_``).
    """
    from sklearn.decomposition import PCA

    f = prep.channels.size
    if n_components is not None:
        _reduce._check_n_components(n_components, (int(prep.used.sum()), f))
    cube = one_energy_chunk(prep.counts.data)
    parts = _blockwise(cube, prep.used, _moments_block, _light(prep))
    ((n, s, g),) = compute(tree(parts, _moments_combine), client=client)
    n_fit = min(max(int(max_components), int(n_components or 1)), n, f)
    mean = s / n
    cov = (g - n * np.outer(mean, mean)) / max(n - 1, 1)
    cov = (cov + cov.T) / 2
    total = float(np.clip(np.diag(cov), 0, None).sum())   # = the sum of all eigenvalues
    if n_fit < f - 1:
        # the leading n_fit eigenpairs only (Lanczos, fixed start vector: deterministic);
        # exact to rounding (measured 4e-16 relative vs eigh) and ~5x faster than a full
        # eigh of a 2000 x 2000 matrix
        from scipy.sparse.linalg import eigsh

        evals, evecs = eigsh(cov, k=n_fit, which="LA", v0=np.ones(f))
    else:
        evals, evecs = np.linalg.eigh(cov)
    order = np.argsort(evals)[::-1]
    evals, evecs = evals[order], evecs[:, order]
    comps = evecs[:, :n_fit].T.copy()
    # scikit-learn's sign rule (svd_flip, v-based): largest |loading| of each axis positive
    signs = np.sign(comps[np.arange(n_fit), np.argmax(np.abs(comps), axis=1)])
    comps *= np.where(signs == 0, 1.0, signs)[:, None]
    var = np.clip(evals[:n_fit], 0, None)
    pca = PCA(n_components=n_fit)
    pca.components_ = comps
    pca.mean_ = mean
    pca.explained_variance_ = var
    pca.explained_variance_ratio_ = var / total if total > 0 else np.zeros(n_fit)
    pca.singular_values_ = np.sqrt(var * max(n - 1, 1))
    pca.n_components_ = n_fit
    pca.n_features_in_ = f
    pca.n_samples_ = n
    rest = total - float(var.sum())
    pca.noise_variance_ = max(rest, 0.0) / (f - n_fit) if f > n_fit else 0.0
    reducer = _reduce.PCAReducer(n_components=n_components, max_components=max_components,
                                 max_points=max_points, knee_method=knee_method,
                                 min_components=min_components)
    reducer.pca_ = pca
    reducer.explained_variance_ratio_ = pca.explained_variance_ratio_
    reducer.knee_ = _reduce.scree_knee(reducer.explained_variance_ratio_, max_points,
                                       knee_method)
    auto = min(max(reducer.knee_, int(min_components)), n_fit)
    reducer.n_components_ = int(n_components) if n_components else auto
    return reducer


# --------------------------------------------------------------------------------------
# passes 3-5: scores, weighted sums, labels of the original pixels
# --------------------------------------------------------------------------------------


def _scores_block(block: np.ndarray, prep: _pre.Prepared, comps: np.ndarray,
                  mean: np.ndarray) -> np.ndarray:
    pixels = np.asarray(block).reshape(-1, block.shape[-1])
    return prep.project(pixels, 1.0, comps, mean).reshape(block.shape[:2] + (comps.shape[0],))


def scores(prep: _pre.Prepared, reducer: _reduce.PCAReducer, client: Any = None) -> np.ndarray:
    """PCA scores of the used binned pixels, shape (n_used, ``n_components_``), in memory.

    Equal to ``reducer.transform(features)`` (the folded projection
    :meth:`stemseg.preprocess.Prepared.project` on the binned counts, block by block).
    """
    cube = one_energy_chunk(prep.counts.data)
    d = reducer.n_components_
    out = cube.map_blocks(_scores_block, _light(prep), reducer.components_,
                          reducer.pca_.mean_, dtype=np.float64,
                          chunks=cube.chunks[:2] + ((d,),))
    (result,) = compute(out, client=client)
    return result.reshape(-1, d)[prep.used.ravel()]


# --------------------------------------------------------------------------------------
# the HDBSCAN workflow's feature rows
# --------------------------------------------------------------------------------------

#: Largest feature block (bytes, float64) that :meth:`Streamed.features` gathers into memory for
#: UMAP's fit; beyond it the caller is told to fit UMAP on a sample (``umap_sample``).
_GATHER_LIMIT = 2 << 30


def _gather_block(block: np.ndarray, selected: np.ndarray, prep: _pre.Prepared) -> np.ndarray:
    return prep.features(_used_pixels(np.asarray(block), selected))


def gather_features(prep: _pre.Prepared, rows: np.ndarray | None = None,
                    client: Any = None) -> np.ndarray:
    """Rows of the lazy feature matrix ``prep.X``, computed block by block, in memory.

    Only the selected pixels of each block are transformed and sent back, so memory holds
    the result (``len(rows) x n_features`` float32) plus a few blocks.

    Parameters
    ----------
    prep : stemseg.preprocess.Prepared
        From :func:`prepare` (lazy ``counts``).
    rows : numpy.ndarray of int, shape (m,), optional
        Increasing row indices into ``prep.X`` (used binned pixels, row-major); None: all.
    client : dask.distributed.Client, optional

    Returns
    -------
    numpy.ndarray of float32, shape (m, n_features)
        Equal to ``prep.X[rows]`` (the features of
        :meth:`stemseg.preprocess.Prepared.features`).
    """
    from dask import delayed

    used = prep.used
    flat = np.flatnonzero(used.ravel())
    selected = np.zeros(used.size, dtype=bool)
    selected[flat if rows is None else flat[np.asarray(rows)]] = True
    selected = selected.reshape(used.shape)
    cube = one_energy_chunk(prep.counts.data)
    nx = used.shape[1]
    ys = np.cumsum((0,) + cube.chunks[0])
    xs = np.cumsum((0,) + cube.chunks[1])
    blocks = cube.to_delayed()
    f = delayed(_gather_block, pure=True)
    light = _light(prep)
    parts, where = [], []
    for i in range(len(ys) - 1):
        for j in range(len(xs) - 1):
            sel = selected[ys[i]:ys[i + 1], xs[j]:xs[j + 1]]
            if not sel.any():                 # no task, the block is not even read
                continue
            r, c = np.nonzero(sel)
            where.append((r + ys[i]) * nx + c + xs[j])
            parts.append(f(blocks[i, j, 0], sel, light))
    if not parts:
        return np.empty((0, prep.channels.size), dtype=_pre.FEATURE_DTYPE)
    out = np.concatenate(compute(*parts, client=client))
    return out[np.argsort(np.concatenate(where), kind="stable")]


def _light_umap(reducer: _reduce.UMAPReducer) -> _reduce.UMAPReducer:
    """What :meth:`stemseg.reduce.UMAPReducer.transform` needs with a ``reference``.

    The embedding and the neighbour count only: not the fitted features (m x n_features)
    nor umap-learn's model, which every dask task would otherwise carry.
    """
    import types

    light = _reduce.UMAPReducer(**reducer.get_params())
    light.embedding_ = reducer.embedding_
    light.umap_ = types.SimpleNamespace(n_neighbors=reducer.umap_.n_neighbors)
    light._X_fit = np.empty((0, 0), dtype=np.float32)
    return light




# --------------------------------------------------------------------------------------
# the passes, as the workflows' fits call them
# --------------------------------------------------------------------------------------


def _int_block(block: Any, func: Any, *args: Any) -> np.ndarray:
    return np.asarray(func(np.asarray(block), *args), dtype=np.int64)


class Streamed:
    """The passes of a workflow over a lazy map, block by block (in bounded memory).

    :class:`stemseg.workflows.GMMSegmenter` and :class:`stemseg.workflows.HDBSCANSegmenter`
    fit through an object with these methods: this one for a lazy input (or a ``client``),
    a one-call in-memory twin otherwise. The fit itself -- the order of the stages, the
    parameters, the assembly of the result -- is written once, in :mod:`stemseg.workflows`.

    Parameters
    ----------
    client : dask.distributed.Client, optional
        Runs every pass on its workers (default: dask's default scheduler).
    """

    lazy = True

    def __init__(self, client: Any = None) -> None:
        _check_client(client)
        self.client = client

    def prepare(self, data: Any, bin: int, **kwargs: Any) -> _pre.Prepared:
        """Pass 1 (:func:`prepare`): binning, checks, exact scaler statistics."""
        return prepare(data, bin, client=self.client, **kwargs)

    @staticmethod
    def n_used(prep: _pre.Prepared) -> int:
        return int(prep.used.sum())

    def features(self, prep: _pre.Prepared, rows: np.ndarray | None = None) -> np.ndarray:
        """Feature rows gathered into memory (:func:`gather_features`), size-checked first."""
        m = self.n_used(prep) if rows is None else int(len(rows))
        f = prep.channels.size
        if m * f * 8 > _GATHER_LIMIT:
            raise StemsegValueError(
                f"UMAP would be fitted on {m} binned pixels x {f} channels "
                f"({m * f * 8 / 2**30:.1f} GiB of features in memory), more than the lazy "
                f"path holds ({_GATHER_LIMIT / 2**30:.0f} GiB). Pass umap_sample= (default "
                "4096) and a min_cluster_size that keeps the sample small, a larger bin or "
                "energy_bin, or a narrower energy_range."
            )
        return gather_features(prep, rows, client=self.client)

    def fit_pca(self, prep: _pre.Prepared, *, n_components: int | None = None,
                max_components: int = _reduce.MAX_COMPONENTS, knee_method: str = "kneed",
                min_components: int = 1, random_state: Any = None) -> _reduce.PCAReducer:
        """Pass 2 (:func:`fit_pca`): PCA from streamed moments (exact; no random state)."""
        return fit_pca(prep, n_components, max_components=max_components,
                       knee_method=knee_method, min_components=min_components,
                       client=self.client)

    def scores(self, prep: _pre.Prepared, reducer: _reduce.PCAReducer,
               rows: np.ndarray | None = None, x_rows: np.ndarray | None = None
               ) -> np.ndarray:
        """Scores of every used pixel: streamed, except rows already in memory
        (``x_rows`` = the features of ``rows``; of every row when ``rows`` is None)."""
        if x_rows is not None and rows is None:
            return reducer.transform(x_rows)
        out = scores(prep, reducer, client=self.client)
        if rows is not None and x_rows is not None:
            out[rows] = reducer.transform(x_rows)
        return out

    def map_pixels(self, func: Any, spectra: Any, *args: Any) -> np.ndarray:
        """``func(block, *args)`` over the blocks of lazy ``spectra`` (n, n_channels).

        The prepared stages and a UMAP reducer among ``args`` travel without their data
        (what a dask task needs only).
        """
        args = tuple(_light(a) if isinstance(a, _pre.Prepared)
                     else _light_umap(a) if isinstance(a, _reduce.UMAPReducer) else a
                     for a in args)
        if not hasattr(spectra, "map_blocks"):        # an in-memory array
            return _int_block(spectra, func, *args)
        spectra = one_energy_chunk(spectra)
        out = spectra.map_blocks(_int_block, func, *args, drop_axis=1, dtype=np.int64)
        return compute(out, client=self.client)[0]

    @staticmethod
    def template(prep: _pre.Prepared) -> Any:
        """A one-pixel in-memory copy of the binned counts: the class, energy axis and
        metadata of the mean spectra (the Segmentation keeps the lazy counts)."""
        template = prep.counts.inav[0, 0]
        template.compute()
        return template
