"""The stemseg exception family.

Every error that stemseg raises on purpose is a :class:`StemsegError`.  Each
subclass also subclasses the matching built-in exception, so code that already
catches ``ValueError`` or ``FileNotFoundError`` keeps working (the pattern used
by kikuchipy and scikit-learn).  Messages say what was wrong *and* what to do.
"""

from __future__ import annotations

__all__ = [
    "StemsegError",
    "StemsegValueError",
    "StemsegFileNotFoundError",
    "StemsegFileFormatError",
    "StemsegReaderCrash",
    "StemsegDependencyError",
    "StemsegFileExistsError",
    "StemsegSparseDataWarning",
]


class StemsegError(Exception):
    """Base class of every error raised deliberately by stemseg."""


class StemsegValueError(StemsegError, ValueError):
    """A parameter or the data has a value stemseg cannot work with."""


class StemsegFileNotFoundError(StemsegError, FileNotFoundError):
    """A path given to stemseg does not exist, or is not a file."""


class StemsegFileFormatError(StemsegError, ValueError):
    """A file exists but cannot be read as a spectrum image.

    Raised for unknown extensions, corrupt or truncated files, and files that
    hold no EDS spectrum image.
    """


class StemsegReaderCrash(StemsegFileFormatError):
    """The file reader crashed (for example a segfault) in an isolated process."""


class StemsegDependencyError(StemsegError, ImportError):
    """An optional dependency needed for the requested feature is missing."""


class StemsegFileExistsError(StemsegError, FileExistsError):
    """An output path exists and overwriting was not requested."""


class StemsegSparseDataWarning(UserWarning):
    """The map has too few counts per pixel, or too few pixels for the clusters asked for,
    for the step to find chemistry, not noise.

    The message gives the counts (or pixels) and what to do (bin more, pick fewer
    clusters). Silence it deliberately with
    ``warnings.filterwarnings("ignore", category=StemsegSparseDataWarning)``.
    """
