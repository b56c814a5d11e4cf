"""Agreement between label maps, cluster-to-phase matching and composition errors.

All functions take arrays (label maps, tables), never pipelines, so they serve any
segmentation: compare ``seg.labels_full`` with a phantom's ``labels`` (same shape), two
workflows with each other, or runs with different seeds (:func:`stability`).

* :func:`ari`, :func:`ami` -- adjusted Rand index and adjusted mutual information
  (scikit-learn), 1 = identical partitions, ~0 = chance.
* :func:`confusion_matrix` -- pixel counts of every (cluster, phase) pair.
* :func:`match_clusters` -- one-to-one cluster -> phase mapping maximising the matched
  pixels (Hungarian method, ``scipy.optimize.linear_sum_assignment``).
* :func:`composition_error` -- measured minus true composition of matched clusters.
* :func:`stability` -- pairwise ARI of the labels from several seeds.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from itertools import combinations
from typing import Any

import numpy as np
import pandas as pd
from scipy.optimize import linear_sum_assignment
from sklearn.metrics import adjusted_mutual_info_score, adjusted_rand_score

from .errors import StemsegValueError

__all__ = ["ari", "ami", "confusion_matrix", "match_clusters", "composition_error",
           "pairwise_ari", "stability"]


def _pair(labels: Any, truth: Any, ignore_noise: bool) -> tuple[np.ndarray, np.ndarray]:
    a, b = np.asarray(labels), np.asarray(truth)
    if a.shape != b.shape:
        raise StemsegValueError(
            f"labels {a.shape} and truth {b.shape} must have the same shape. Compare "
            "seg.labels_full with a map at the original resolution (or bin the truth)."
        )
    a, b = a.ravel(), b.ravel()
    if a.dtype.kind not in "iub" or b.dtype.kind not in "iub":
        raise StemsegValueError(
            f"labels and truth must be integer arrays; got {a.dtype} and {b.dtype}."
        )
    if ignore_noise:
        keep = (a >= 0) & (b >= 0)
        a, b = a[keep], b[keep]
    if a.size == 0:
        raise StemsegValueError("No pixels to compare (empty, or all noise).")
    return a, b


def ari(labels: Any, truth: Any, ignore_noise: bool = False) -> float:
    """Adjusted Rand index between two label maps.

    Parameters
    ----------
    labels, truth : array_like of int, same shape
        Label maps; -1 (noise) is an ordinary label unless ``ignore_noise``.
    ignore_noise : bool
        Drop pixels where either map is negative.

    Returns
    -------
    float
        1 for identical partitions (up to renaming), ~0 for chance, can be negative.
    """
    return float(adjusted_rand_score(*_pair(labels, truth, ignore_noise)[::-1]))


def ami(labels: Any, truth: Any, ignore_noise: bool = False) -> float:
    """Adjusted mutual information between two label maps (arithmetic normalisation).

    Parameters and returns as :func:`ari`.
    """
    return float(adjusted_mutual_info_score(*_pair(labels, truth, ignore_noise)[::-1]))


def confusion_matrix(labels: Any, truth: Any) -> pd.DataFrame:
    """Pixel counts of every (cluster, phase) pair.

    Parameters
    ----------
    labels, truth : array_like of int, same shape

    Returns
    -------
    pandas.DataFrame
        Rows = cluster labels (including -1 if present), columns = truth labels, values =
        number of pixels.
    """
    a, b = _pair(labels, truth, False)
    rows, cols = np.unique(a), np.unique(b)
    ia, ib = np.searchsorted(rows, a), np.searchsorted(cols, b)
    table = np.zeros((rows.size, cols.size), dtype=np.int64)
    np.add.at(table, (ia, ib), 1)
    return pd.DataFrame(table, index=pd.Index(rows, name="cluster"),
                        columns=pd.Index(cols, name="truth"))


def match_clusters(labels: Any, truth: Any) -> dict[int, int]:
    """One-to-one mapping cluster -> truth label maximising the overlapping pixels.

    Hungarian method (``scipy.optimize.linear_sum_assignment``) on the confusion matrix;
    noise (-1) is never matched. With more clusters than phases the extra clusters are
    left out, and vice versa.

    Parameters
    ----------
    labels, truth : array_like of int, same shape

    Returns
    -------
    dict of int to int
        ``{cluster: truth_label}``.
    """
    table = confusion_matrix(labels, truth)
    table = table.loc[table.index >= 0, table.columns >= 0]
    if table.empty:
        return {}
    rows, cols = linear_sum_assignment(-table.to_numpy())
    return {int(table.index[r]): int(table.columns[c]) for r, c in zip(rows, cols)}


def _truth_composition(phase: Any) -> Mapping[str, float]:
    return getattr(phase, "composition", phase)


def composition_error(table: pd.DataFrame, truth_phases: Any, mapping: Mapping[int, int],
                      min_at_pct: float = 0.0) -> pd.DataFrame:
    """Measured minus true composition for every matched cluster and element.

    Parameters
    ----------
    table : pandas.DataFrame
        Quantification in the tidy form of :func:`stemseg.quant.quantify`: columns
        ``cluster``, ``element``, ``at_pct`` and optionally ``sigma`` (at. %).
    truth_phases : sequence or mapping
        Truth per phase index: ``Phase`` objects (``.composition``) or dicts
        element -> at. %; e.g. a phantom's ``phases``.
    mapping : dict of int to int
        Cluster -> phase index, e.g. from :func:`match_clusters`.
    min_at_pct : float
        Keep only elements whose true content is at least this (at. %).

    Returns
    -------
    pandas.DataFrame
        Columns ``cluster``, ``phase``, ``element``, ``at_pct``, ``truth``, ``error``
        (at_pct - truth, at. %), ``sigma`` and ``z`` (error / sigma) when ``table`` has
        sigma. Elements in the truth but not in the table appear with at_pct NaN.
    """
    missing = {"cluster", "element", "at_pct"} - set(table.columns)
    if missing:
        raise StemsegValueError(
            f"table lacks column(s) {sorted(missing)}; pass the DataFrame of "
            "stemseg.quant.quantify."
        )
    rows = []
    for c, p in mapping.items():
        truth = _truth_composition(truth_phases[p])
        measured = table[table["cluster"] == c].set_index("element")
        for element, value in truth.items():
            if value < min_at_pct:
                continue
            got = measured["at_pct"].get(element, np.nan)
            row = dict(cluster=c, phase=p, element=element, at_pct=float(got),
                       truth=float(value), error=float(got) - float(value))
            if "sigma" in measured:
                sigma = float(measured["sigma"].get(element, np.nan))
                row.update(sigma=sigma, z=row["error"] / sigma if sigma > 0 else np.nan)
            rows.append(row)
    return pd.DataFrame(rows)


def pairwise_ari(label_sets: Iterable[Any]) -> np.ndarray:
    """ARI of every pair of label maps, in ``itertools.combinations`` order.

    Returns
    -------
    numpy.ndarray, shape (n * (n - 1) / 2,)
    """
    maps = list(label_sets)
    return np.array([ari(a, b) for a, b in combinations(maps, 2)])


def stability(fn: Callable[[int], Any], seeds: Iterable[int] = range(5)) -> np.ndarray:
    """Pairwise ARI of the labels of several runs that differ only in the seed.

    Parameters
    ----------
    fn : callable
        ``fn(seed)`` -> a label map (array), e.g.
        ``lambda s: stemseg.workflows.gmm(acq, random_state=s).labels``.
    seeds : iterable of int
        At least two seeds (default 0..4).

    Returns
    -------
    numpy.ndarray, shape (n * (n - 1) / 2,)
        ARI of every pair of runs; all 1 means the seed does not matter.
    """
    seeds = list(seeds)
    if len(seeds) < 2:
        raise StemsegValueError(f"stability needs at least two seeds; got {seeds!r}.")
    return pairwise_ari(np.asarray(fn(s)) for s in seeds)
