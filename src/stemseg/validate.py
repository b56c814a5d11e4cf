"""Clusters checked on counts they never saw: count splitting (Poisson thinning).

Testing whether two clusters differ on the same counts that made them is biased: the
clustering picked the split that makes them differ, so any test on those counts finds a
difference, even in pure noise. An X-ray spectrum image gives a way out. Its counts are
Poisson; sending each recorded count to half A or half B with probability 1/2 (binomial
thinning) gives two *independent* Poisson maps of the same specimen, each with half the
dose (Neufeld et al. 2024, "count splitting"; Leiner et al. 2023, "data fission"). The
clusters are made on A; on B, the summed spectra of two clusters are compared with a
chi-square test of homogeneity. Clusters of one phase that the clustering split by noise
have, on B, spectra of the same shape: the test keeps them together. Clusters of different
chemistry differ on B as on A.

The test compares spectrum *shapes* (counts per channel given each cluster's total), so a
thickness change within one phase (more counts, same shape) is not a difference. A real
difference that is small compared with the counting noise of half the dose is not found
either: the verdict is "not distinguishable at this dose", not "identical".

References
----------
Neufeld, A., Gao, L. L., Popp, J., Battle, A. & Witten, D. (2024). Inference after latent
variable estimation for single-cell RNA sequencing data. Biostatistics 25, 270-287.
Leiner, J., Duan, B., Wasserman, L. & Ramdas, A. (2023). Data fission: splitting a single
data point. Journal of the American Statistical Association.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from . import preprocess as _pre
from .errors import StemsegValueError

__all__ = ["split_counts", "distinct_clusters", "mixture_clusters", "choose_n_clusters",
           "CountSplitChoice"]

#: fewest counts (both clusters together) in a pooled channel of the chi-square table
MIN_POOLED_COUNTS = 20


def split_counts(data: Any, random_state: Any = None) -> tuple[Any, Any]:
    """Two independent halves of a spectrum image's counts (binomial thinning, p = 1/2).

    Parameters
    ----------
    data : Acquisition, Phantom or EDS spectrum image, shape (rows, columns, channels)
        Raw X-ray counts (whole numbers).
    random_state : int, numpy.random.Generator or None

    Returns
    -------
    a, b : EDS spectrum images like ``data``'s (copies), ``a + b`` equal to the counts

    Raises
    ------
    StemsegValueError
        Counts that are not whole non-negative numbers (a background-subtracted,
        normalised or denoised map cannot be split).

    Examples
    --------
    >>> from stemseg import simulate, validate
    >>> ph = simulate.phantom("sulfide-6cation", shape=(32, 32), random_state=0)
    >>> a, b = validate.split_counts(ph, random_state=0)
    >>> bool((a.data + b.data == ph.eds.data).all())
    True
    """
    signal = _pre.as_signal(data)
    counts = np.asarray(signal.data)
    if counts.dtype.kind == "f":
        if not np.all(np.isfinite(counts)) or np.any(counts != np.round(counts)):
            raise StemsegValueError(
                "count splitting needs raw X-ray counts (whole numbers); this map holds "
                "fractional values. Use the map as recorded, before any background "
                "subtraction, normalisation or denoising."
            )
    if counts.size and counts.min() < 0:
        raise StemsegValueError(
            f"count splitting needs counts >= 0; the map's minimum is {counts.min()}."
        )
    rng = np.random.default_rng(random_state)
    a = rng.binomial(counts.astype(np.int64), 0.5).astype(counts.dtype)
    b = (counts - a).astype(counts.dtype)
    half_a, half_b = signal.deepcopy(), signal.deepcopy()
    half_a.data, half_b.data = a, b
    for half, name in ((half_a, "A"), (half_b, "B")):
        half.metadata.General.title = f"{signal.metadata.General.title} (count split {name})"
    return half_a, half_b


def _pool_edges(total: np.ndarray) -> np.ndarray:
    """Start indices of pooled channels holding >= MIN_POOLED_COUNTS of ``total`` each."""
    edges, acc = [0], 0.0
    for i, t in enumerate(total):
        acc += t
        if acc >= MIN_POOLED_COUNTS:
            edges.append(i + 1)
            acc = 0.0
    if len(edges) > 1 and edges[-1] == total.size:
        edges.pop()                     # no empty pooled channel at the end
    elif len(edges) > 1:
        edges.pop()                     # the remainder joins the last pooled channel
    return np.asarray(edges)


def _pooled_table(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """2 x m table of two spectra, neighbouring channels pooled to >= MIN_POOLED_COUNTS."""
    edges = _pool_edges(a + b)
    return np.vstack([np.add.reduceat(a, edges), np.add.reduceat(b, edges)])


def _homogeneity(a: np.ndarray, b: np.ndarray) -> tuple[float, int, float]:
    """Chi-square test that spectra ``a`` and ``b`` (counts) have the same shape."""
    table = _pooled_table(a, b)
    if table.shape[1] < 2 or table.sum(axis=1).min() <= 0:
        return 0.0, 0, 1.0
    chi2, p, dof, _ = stats.chi2_contingency(table, correction=False)
    return float(chi2), int(dof), float(p)


def _cluster_sums(counts: np.ndarray, labels: np.ndarray, channels: np.ndarray,
                  k: int) -> np.ndarray:
    """Summed spectra (k, n_channels) of the pixels of each label 0..k-1."""
    from ._blocks import label_sums

    return label_sums(counts, labels, k)[:, channels]


def distinct_clusters(counts_b: Any, labels: np.ndarray, *, alpha: float = 0.01,
                      energy_range: tuple[float | None, float | None] = (0.25, None)
                      ) -> tuple[np.ndarray, pd.DataFrame]:
    """Merge the clusters whose spectra do not differ on independent counts.

    Parameters
    ----------
    counts_b : EDS spectrum image, shape (rows, columns, channels)
        The half of the counts the clusters were *not* made from (:func:`split_counts`).
    labels : numpy.ndarray of int, shape (rows, columns)
        Clusters made from the other half, -1 = noise.
    alpha : float
        Family-wise error rate: a pair is "different" when its p-value is below
        ``alpha / n_pairs`` (Bonferroni).
    energy_range : (float or None, float or None)
        Channels compared (keV).

    Returns
    -------
    merged : numpy.ndarray of int, shape (rows, columns)
        Labels after merging, numbered 0..m-1 by size (-1 kept).
    tests : pandas.DataFrame
        One row per pair tested in the merging: ``a``, ``b`` (clusters, in the original
        numbering, merged groups as "1+3"), ``chi2``, ``dof``, ``p``, ``threshold`` and
        ``merged``.

    Notes
    -----
    Agglomerative: while some pair of (merged) clusters is not distinct, the pair with the
    largest p-value is merged and its spectra summed, and the tests are repeated.
    """
    signal = _pre.as_signal(counts_b)
    labels = np.asarray(labels)
    if labels.shape != tuple(signal.axes_manager.navigation_shape[::-1]):
        raise StemsegValueError(
            f"labels of shape {labels.shape} do not match the map's "
            f"{signal.axes_manager.navigation_shape[::-1]} pixels; pass labels_full."
        )
    channels, _ = _pre._channel_selection(signal, 1, energy_range)
    k = int(labels.max()) + 1 if (labels >= 0).any() else 0
    groups = {c: [c] for c in range(k)}
    sums = {c: s for c, s in enumerate(_cluster_sums(np.asarray(signal.data), labels,
                                                     channels, k))}
    rows = []
    while len(groups) > 1:
        keys = sorted(groups)
        pairs = [(i, j) for n, i in enumerate(keys) for j in keys[n + 1:]]
        threshold = alpha / len(pairs)
        tested = [(i, j, *_homogeneity(sums[i], sums[j])) for i, j in pairs]
        i, j, chi2, dof, p = max(tested, key=lambda t: t[4])
        name = lambda g: "+".join(str(c) for c in groups[g])  # noqa: E731
        merge = p >= threshold
        rows.append(dict(a=name(i), b=name(j), chi2=chi2, dof=dof, p=p, threshold=threshold,
                         merged=merge))
        if not merge:
            break
        groups[i] += groups.pop(j)
        sums[i] = sums[i] + sums.pop(j)
    new = np.full(k, -1)
    order = sorted(groups, key=lambda g: -sum(int((labels == c).sum()) for c in groups[g]))
    for rank, g in enumerate(order):
        new[groups[g]] = rank
    merged = np.where(labels >= 0, new[np.clip(labels, 0, None)], -1)
    return merged, pd.DataFrame(rows, columns=["a", "b", "chi2", "dof", "p", "threshold",
                                                "merged"])


#: a cluster is a mixture of others when a non-negative mix of their spectra fits its own
#: within this excess over counting noise (Pearson chi2 / dof below 1 + this) ...
MIXTURE_MAX_EXCESS = 0.25
#: ... and fewer than this share of its pixels have their whole 3 x 3 neighbourhood in it
MIXTURE_MAX_CORE = 0.02


def mixture_clusters(counts_b: Any, labels: np.ndarray, *,
                     energy_range: tuple[float | None, float | None] = (0.25, None)
                     ) -> pd.DataFrame:
    """Which clusters are mixed pixels of others (boundaries), judged on held-out counts.

    Pixels that straddle a boundary hold two phases; a mixture can gather them into a
    cluster of their own whose spectrum really differs from each neighbour's, so the
    homogeneity test of :func:`distinct_clusters` keeps it. Such a cluster is no phase:
    its spectrum on the held-out half B is a non-negative mix of the other clusters'
    spectra (fitted by non-negative least squares on their shapes), and it has no interior
    (almost none of its pixels has its whole 3 x 3 neighbourhood in the cluster).
    Measured on the sulfide and steel/MoS2/PbS phantoms: boundary clusters fit with
    chi2/dof 0.90-1.13 and 0 % interior; phases, the thin minority-wurtzite rims included,
    with chi2/dof >= 1.48 or >= 4 % interior.

    Parameters
    ----------
    counts_b : EDS spectrum image, shape (rows, columns, channels)
    labels : numpy.ndarray of int, shape (rows, columns)
        0..k-1, -1 = noise.
    energy_range : (float or None, float or None)

    Returns
    -------
    pandas.DataFrame
        One row per cluster: ``pixels``, ``interior`` (share), ``chi2_per_dof`` of the best
        mix of the other clusters, ``mixture`` (bool) and ``of`` (the clusters mixed, with
        weights above 5 %).
    """
    from scipy import optimize

    from .quant import core_labels

    signal = _pre.as_signal(counts_b)
    labels = np.asarray(labels)
    channels, _ = _pre._channel_selection(signal, 1, energy_range)
    k = int(labels.max()) + 1 if (labels >= 0).any() else 0
    sums = _cluster_sums(np.asarray(signal.data), labels, channels, k)
    core = core_labels(labels)
    rows = []
    for c in range(k):
        n = int((labels == c).sum())
        interior = float((core == c).sum() / n) if n else 0.0
        others = [i for i in range(k) if i != c and sums[i].sum() > 0]
        ratio, of = np.inf, ""
        if others and sums[c].sum() > 0:
            edges = _pool_edges(sums[c] + sums[others].sum(axis=0))
            y = np.add.reduceat(sums[c], edges)
            basis = np.add.reduceat(sums[others], edges, axis=1)
            shapes = basis / basis.sum(axis=1, keepdims=True)
            w, _ = optimize.nnls(shapes.T, y)
            mu = shapes.T @ w
            ok = mu > 0
            dof = int(ok.sum()) - len(others)
            if dof > 0 and edges.size > 1:
                ratio = float((((y - mu) ** 2)[ok] / mu[ok]).sum() / dof)
            share = w / w.sum() if w.sum() > 0 else w
            of = "+".join(f"{others[i]}" for i in np.flatnonzero(share > 0.05))
        rows.append(dict(cluster=c, pixels=n, interior=interior, chi2_per_dof=ratio,
                         mixture=bool(ratio < 1 + MIXTURE_MAX_EXCESS
                                      and interior < MIXTURE_MAX_CORE),
                         of=of))
    return pd.DataFrame(rows, columns=["cluster", "pixels", "interior", "chi2_per_dof",
                                       "mixture", "of"])


@dataclass
class CountSplitChoice:
    """The number of clusters that count splitting supports.

    Attributes
    ----------
    n_clusters : int
        Distinct clusters of the largest mixture tried (the number to use).
    survivors : dict
        Mixture size k -> clusters that stayed distinct on the held-out counts and are
        not mixed pixels of others.
    tests : dict
        k -> the pairwise tests of :func:`distinct_clusters`.
    mixtures : dict
        k -> the table of :func:`mixture_clusters` on the merged clusters.
    """

    n_clusters: int
    survivors: dict[int, int] = field(default_factory=dict)
    tests: dict[int, pd.DataFrame] = field(default_factory=dict)
    mixtures: dict[int, pd.DataFrame] = field(default_factory=dict)


def choose_n_clusters(data: Any, *, max_clusters: int = 8, alpha: float = 0.01,
                      random_state: Any = 0, **gmm_kwargs: Any) -> CountSplitChoice:
    """Choose workflow 1's number of clusters by count splitting.

    For k = 2 .. ``max_clusters``, the Gaussian-mixture workflow runs on half A of the
    counts; its clusters are merged where half B does not tell them apart
    (:func:`distinct_clusters`), and clusters of mixed boundary pixels are not counted
    (:func:`mixture_clusters`). The answer is the largest number of distinct, unmixed
    clusters found; k stops growing once two successive sizes add none.

    Parameters
    ----------
    data : Acquisition, Phantom or EDS spectrum image (raw counts)
    max_clusters : int
        Largest mixture tried (>= 2).
    alpha : float
        Family-wise error rate of the pairwise tests.
    random_state : int
        Seed of the split and of the workflow.
    **gmm_kwargs
        Passed to :func:`stemseg.workflows.gmm` (e.g. ``bin``, ``energy_range``).

    Returns
    -------
    CountSplitChoice

    Raises
    ------
    StemsegValueError
        ``max_clusters`` below 2, or counts that cannot be split (:func:`split_counts`).
    """
    import warnings

    from . import workflows
    from .errors import StemsegSparseDataWarning

    if not isinstance(max_clusters, (int, np.integer)) or max_clusters < 2:
        raise StemsegValueError(f"max_clusters must be a whole number >= 2; got "
                                f"{max_clusters!r}.")
    a, b = split_counts(data, random_state=random_state)
    energy_range = gmm_kwargs.get("energy_range", _pre.DEFAULT_ENERGY_RANGE)
    choice = CountSplitChoice(n_clusters=1)
    stale = 0
    for k in range(2, int(max_clusters) + 1):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", StemsegSparseDataWarning)  # half the dose
            try:
                seg = workflows.gmm(a, n_clusters=k, random_state=random_state,
                                    **gmm_kwargs)
            except StemsegValueError:
                if k == 2:
                    raise
                break  # e.g. fewer distinct spectra than k: no larger mixture to try
        er = energy_range or (None, None)
        merged, tests = distinct_clusters(b, seg.labels_full, alpha=alpha, energy_range=er)
        mixtures = mixture_clusters(b, merged, energy_range=er)
        found = int((~mixtures.mixture).sum())
        choice.survivors[k], choice.tests[k] = found, tests
        choice.mixtures[k] = mixtures
        if found > choice.n_clusters:
            choice.n_clusters, stale = found, 0
        else:
            stale += 1
            if stale == 2:
                break
    return choice
