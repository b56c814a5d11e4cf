"""Small helpers that do with HyperSpy's public API what its private attributes would.

HyperSpy's ``signal._deepcopy_with_new_data`` is private and may change without notice;
the package uses these instead (and :func:`stemseg._blocks.is_lazy` for ``signal._lazy``).
Only NumPy and (lazily) HyperSpy
are imported, so every layer may use this module (see DESIGN.md, "Dependency rules").
"""

from __future__ import annotations

from typing import Any

__all__ = ["with_data", "length_factor_nm"]

#: nm per unit of the length units found in instrument files (lower case)
_NM_PER_UNIT = {"nm": 1.0, "µm": 1e3, "um": 1e3, "μm": 1e3, "mm": 1e6, "m": 1e9,
                "å": 0.1, "a": 0.1, "angstrom": 0.1, "pm": 1e-3}


def with_data(signal: Any, data: Any) -> Any:
    """A new signal of ``signal``'s class, axes and metadata that holds ``data``.

    ``data`` is used as it is, not copied, so nothing is duplicated in memory; the axes,
    ``metadata`` and ``original_metadata`` are copies (changing them leaves ``signal``
    alone). Built from public API only (``axes_manager.as_dictionary``,
    ``metadata.as_dictionary``); the counterpart of HyperSpy's private
    ``_deepcopy_with_new_data``.

    Parameters
    ----------
    signal : hyperspy.signal.BaseSignal
        The template (not modified).
    data : numpy.ndarray or dask.array.Array
        Same shape as ``signal.data``; a dask array for a lazy template, a NumPy array for
        one in memory (the class is kept as it is).

    Returns
    -------
    hyperspy.signal.BaseSignal
        Same class as ``signal``.

    Raises
    ------
    ValueError
        ``data`` has another shape than ``signal.data``.

    Examples
    --------
    >>> import numpy as np
    >>> import hyperspy.api as hs
    >>> s = hs.signals.Signal1D(np.arange(6).reshape(2, 3))
    >>> s.axes_manager[-1].scale = 0.5
    >>> t = with_data(s, s.data * 2.0)
    >>> type(t).__name__, t.axes_manager[-1].scale, t.data.tolist()
    ('Signal1D', 0.5, [[0.0, 2.0, 4.0], [6.0, 8.0, 10.0]])
    """
    if tuple(data.shape) != tuple(signal.data.shape):
        raise ValueError(f"data of shape {tuple(data.shape)} cannot replace data of shape "
                         f"{tuple(signal.data.shape)}; pass an array of the same shape.")
    axes = list(signal.axes_manager.as_dictionary().values())  # array order
    return type(signal)(data, axes=axes, metadata=signal.metadata.as_dictionary(),
                        original_metadata=signal.original_metadata.as_dictionary())


def length_factor_nm(units: Any) -> float | None:
    """nm per unit of a length unit (``"nm"``, ``"µm"``, ``"Å"``...); None if not a length.

    Examples
    --------
    >>> length_factor_nm("µm"), length_factor_nm("nm"), length_factor_nm("keV")
    (1000.0, 1.0, None)
    """
    return _NM_PER_UNIT.get(str(units or "").strip().lower())
