"""stemseg: unsupervised segmentation of STEM spectrum images.

See DESIGN.md for the data flow; the public modules are imported lazily so that
``import stemseg`` stays fast.
"""

from __future__ import annotations

import importlib

from ._cache import configure_numba_cache_dir as _configure_numba_cache_dir
from .errors import (
    StemsegDependencyError,
    StemsegError,
    StemsegFileExistsError,
    StemsegFileFormatError,
    StemsegFileNotFoundError,
    StemsegReaderCrash,
    StemsegValueError,
)

__version__ = "0.1.0"

# numba's compiled kernels (umap-learn, pynndescent, HyperSpy) are cached in the user's
# cache folder, never in the installed packages: set before a submodule imports them
# (see stemseg._cache; STEMSEG_NUMBA_CACHE=0 leaves numba untouched)
_configure_numba_cache_dir()

_SUBMODULES = (
    "analysis", "cli", "cluster", "data", "io", "measure", "metrics", "multimodal", "plots",
    "preprocess", "quant", "reduce", "release", "simulate", "streaming", "validate", "widgets",
    "workflows", "xray",
)

__all__ = [
    "StemsegError",
    "StemsegValueError",
    "StemsegFileNotFoundError",
    "StemsegFileFormatError",
    "StemsegReaderCrash",
    "StemsegDependencyError",
    "StemsegFileExistsError",
    "__version__",
    *_SUBMODULES,
]


def __getattr__(name: str):
    if name in _SUBMODULES:
        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module 'stemseg' has no attribute {name!r}")
