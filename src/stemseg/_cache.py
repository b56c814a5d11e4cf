"""Where stemseg's on-disk caches live: numba's compiled kernels, per user.

numba writes the machine code of a cached function (``.nbi`` index and ``.nbc`` data
files) next to its source, in the ``__pycache__`` of the installed package, unless its
cache directory ``numba.config.CACHE_DIR`` (environment variable ``NUMBA_CACHE_DIR``) is
set; that directory is read when a function's cache is created -- at import for functions
decorated with ``cache=True`` (pynndescent, HyperSpy, RosettaSciIO), at
:func:`stemseg.reduce.enable_umap_cache` for umap-learn's kernels -- by numba's first
locator, ``_UserProvidedCacheLocator`` (``numba/core/caching.py``).
:func:`configure_numba_cache_dir` sets it, before stemseg imports any of these packages
(``import stemseg`` calls it), to ``numba`` under :func:`cache_dir`:

* ``$STEMSEG_CACHE_DIR/numba`` when ``STEMSEG_CACHE_DIR`` is set,
* else ``platformdirs.user_cache_dir("stemseg")/numba`` (``~/.cache/stemseg/numba`` on
  Linux, ``~/Library/Caches/stemseg/numba`` on macOS,
  ``%LOCALAPPDATA%\\stemseg\\Cache\\numba`` on Windows),

so nothing is written into the installed environment or the repository. A
``NUMBA_CACHE_DIR`` the user set (or a ``cache_dir`` in ``.numba_config.yaml``) is left as
it is; ``STEMSEG_NUMBA_CACHE=0`` leaves numba's configuration untouched altogether. The
directory is also exported as ``NUMBA_CACHE_DIR`` so that numba's configuration reloads
and worker processes (joblib, dask) use the same folder. When it cannot be created (a
read-only home), a private temporary folder of this process is used instead. numba keys
the entries by CPU and source file, so a stale or foreign entry is recompiled, never
reused; deleting the folder is always safe.
"""

from __future__ import annotations

import os
import re
import sys
import tempfile
from collections.abc import Mapping

__all__ = ["cache_dir", "numba_cache_enabled", "configure_numba_cache_dir"]

_OFF = ("0", "false", "no", "off")


def cache_dir(environ: Mapping[str, str] | None = None) -> str:
    """stemseg's per-user cache folder (not created here).

    Parameters
    ----------
    environ : mapping, optional
        Environment to read (default ``os.environ``).

    Returns
    -------
    str
        ``$STEMSEG_CACHE_DIR`` when set, else ``platformdirs.user_cache_dir("stemseg")``
        (``$XDG_CACHE_HOME/stemseg`` or ``~/.cache/stemseg`` without platformdirs).
    """
    env = os.environ if environ is None else environ
    path = env.get("STEMSEG_CACHE_DIR", "").strip()
    if path:
        return os.path.abspath(os.path.expanduser(path))
    try:
        import platformdirs
    except ImportError:  # pragma: no cover -- platformdirs is in the lock
        base = env.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
        return os.path.join(base, "stemseg")
    return platformdirs.user_cache_dir("stemseg", appauthor=False)


def numba_cache_enabled(environ: Mapping[str, str] | None = None) -> bool:
    """False when ``STEMSEG_NUMBA_CACHE`` is ``0``, ``false``, ``no`` or ``off``."""
    env = os.environ if environ is None else environ
    return env.get("STEMSEG_NUMBA_CACHE", "1").strip().lower() not in _OFF


def _usable(path: str) -> bool:
    try:
        os.makedirs(path, exist_ok=True)
        tempfile.TemporaryFile(dir=path).close()
    except OSError:
        return False
    return True


def _yaml_sets_cache_dir() -> bool:
    """Whether numba's optional ``.numba_config.yaml`` (working directory) sets cache_dir."""
    try:
        with open(".numba_config.yaml", encoding="utf-8") as f:
            text = f.read()
    except (OSError, UnicodeDecodeError):
        return False
    return re.search(r"^\s*cache_dir\s*:", text, re.MULTILINE | re.IGNORECASE) is not None


def configure_numba_cache_dir() -> str | None:
    """Point numba's cache directory at ``cache_dir()/numba`` (see the module notes).

    Idempotent and cheap (numba is not imported). Call it before the first import of a
    package whose numba functions should cache there.

    Returns
    -------
    str or None
        The cache directory numba uses from now on; None when ``STEMSEG_NUMBA_CACHE=0``
        (numba left to its own choice) or when ``.numba_config.yaml`` chooses it.
    """
    if not numba_cache_enabled():
        return None
    chosen = os.environ.get("NUMBA_CACHE_DIR", "")
    if chosen:  # the user's choice, or an earlier call's
        return chosen
    config = sys.modules.get("numba.core.config")
    if config is not None and getattr(config, "CACHE_DIR", ""):
        return config.CACHE_DIR  # set by hand or in .numba_config.yaml
    if config is None and _yaml_sets_cache_dir():
        return None  # numba will read it from .numba_config.yaml when imported
    path = os.path.join(cache_dir(), "numba")
    if not _usable(path):
        path = tempfile.mkdtemp(prefix="stemseg-numba-")
    os.environ["NUMBA_CACHE_DIR"] = path
    if config is not None:  # numba already imported: it read the environment already
        config.CACHE_DIR = path
    return path
