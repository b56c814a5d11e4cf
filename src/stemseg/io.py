"""Read spectrum images from instrument files into an :class:`Acquisition`.

HyperSpy (through RosettaSciIO) does the parsing; this module decides which of
the signals a file holds is the EDS spectrum image, which images are
registered with it, puts the navigation axes in nm, and turns every failure
into a :class:`~stemseg.errors.StemsegError` that names the file and the fix.

Because some vendor readers crash the interpreter on corrupt input (measured:
RosettaSciIO 0.15 segfaults on 11 of 12 Bruker files with 16 flipped bytes),
``load(..., isolate=True)`` parses the file in a child process first.
"""

from __future__ import annotations

import re
import struct
import warnings
from pathlib import Path
from typing import Any

from ._blocks import is_lazy
from ._types import Acquisition, Segmentation
from .errors import (
    StemsegFileFormatError,
    StemsegFileNotFoundError,
    StemsegReaderCrash,
    StemsegValueError,
)

__all__ = ["load", "load_source", "load_segmentation", "supported_extensions", "HAADF_TITLES",
           "PHANTOM_SOURCE"]

#: The value of a notebook's ``DATA`` parameter that selects its phantom (see :func:`load_source`).
PHANTOM_SOURCE = "phantom"

#: Image titles recognised as the annular dark-field image, in order of preference.
HAADF_TITLES = ("HAADF", "ADF", "DF")
_HAADF_PATTERNS = [re.compile(rf"(^|[^A-Z]){t}([^A-Z]|$)") for t in HAADF_TITLES]


class StemsegLoadWarning(UserWarning):
    """Something about a loaded file that the user should know and may fix."""


def supported_extensions() -> list[str]:
    """File extensions (lower case, without dot) that HyperSpy can read.

    Returns
    -------
    list of str
        Sorted, from RosettaSciIO's plugin registry.
    """
    from rsciio import IO_PLUGINS

    exts = {e.lower() for plugin in IO_PLUGINS for e in plugin["file_extensions"]}
    return sorted(exts)


# --------------------------------------------------------------------------- checks


def _check_path(path: str | Path) -> Path:
    path = Path(path).expanduser()
    if not path.exists():
        raise StemsegFileNotFoundError(
            f"No such file: '{path}'. Check the path; bundled examples are listed by "
            "stemseg.data.examples()."
        )
    if path.is_dir() and path.suffix.lower() != ".zspy":  # .zspy stores are folders
        raise StemsegFileNotFoundError(
            f"'{path}' is a directory, not a file. Pass one spectrum-image file "
            "(e.g. .emd, .bcf, .pts, .hspy); `stemseg run DIR` processes a folder."
        )
    ext = path.suffix.lower().lstrip(".")
    if ext not in supported_extensions():
        raise StemsegFileFormatError(
            f"Cannot read '{path.name}': the extension '.{ext}' is not a format HyperSpy "
            "knows. Spectrum images usually come as .emd (Velox), .bcf (Bruker), .pts "
            "(JEOL), .hspy/.zspy (HyperSpy); convert the file or rename it if the "
            "extension is wrong."
        )
    if path.is_file() and path.stat().st_size == 0:
        raise StemsegFileFormatError(
            f"'{path}' is empty (0 bytes): the file was not written completely. "
            "Copy it again from the instrument PC."
        )
    if ext == "bcf":
        _check_bcf_complete(path)
    return path


def _check_bcf_complete(path: Path) -> None:
    """Refuse a truncated Bruker file before the reader sees it.

    A .bcf file is an AidAim SFS container: a 0x118-byte header followed by
    ``n_chunks`` chunks of ``chunksize`` bytes, both stored in the header (the
    layout RosettaSciIO's ``SFS_reader`` reads). Measured: a .bcf cut to half
    its size loads without error as an all-zero map, and cut to 70 % it
    crashes the reader, so the size is checked first.
    """
    with open(path, "rb") as fh:
        head = fh.read(0x14C)
    if len(head) < 0x14C or head[:8] != b"AAMVHFSS":
        return  # not an SFS container: let the reader report what it is
    (chunksize,) = struct.unpack_from("<I", head, 0x128)
    (n_chunks,) = struct.unpack_from("<I", head, 0x148)
    expected = 0x118 + chunksize * n_chunks
    actual = path.stat().st_size
    if actual < expected:
        raise StemsegFileFormatError(
            f"'{path}' is truncated: the Bruker container declares {expected} bytes but "
            f"the file has {actual}. The copy is incomplete: copy it again from the "
            "instrument PC or export it again from Esprit."
        )


# --------------------------------------------------------------------------- parsing


def _read_signals(path: Path, lazy: bool, reader_options: dict) -> list:
    """hs.load, always returning a list, with reader errors translated."""
    import hyperspy.api as hs

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            signals = hs.load(str(path), lazy=lazy, **reader_options)
    except TypeError as exc:
        if not reader_options:  # not an option problem: the content does not fit the reader
            raise StemsegFileFormatError(
                f"Could not read '{path}' as a {path.suffix} file ({exc}): its content does "
                f"not match its extension, or it is corrupt. If it was renamed, give it its "
                "real extension (e.g. .emd for Velox, .bcf for Bruker, .pts for JEOL, "
                ".hspy/.zspy for HyperSpy); otherwise copy or export it again."
            ) from exc
        # an unknown reader option
        raise StemsegValueError(
            f"Could not read '{path.name}' with reader options {sorted(reader_options)}: "
            f"{exc}. Check the option names for this format in the RosettaSciIO docs "
            "(e.g. Velox: rebin_energy, sum_frames, SI_dtype; Bruker: downsample, "
            "cutoff_at_kV)."
        ) from exc
    except Exception as exc:  # noqa: BLE001 - any reader failure means a bad file
        raise StemsegFileFormatError(
            f"Could not read '{path}': the file looks corrupt or truncated "
            f"({type(exc).__name__}: {exc}). Copy it again from the instrument, or "
            "export it again from the vendor software."
        ) from exc
    return signals if isinstance(signals, list) else [signals]


def _title(signal) -> str:
    return str(signal.metadata.get_item("General.title", default=""))


def _is_eds_spectrum_image(signal) -> bool:
    signal_type = str(signal.metadata.get_item("Signal.signal_type", default=""))
    return (
        signal_type.startswith("EDS")
        and signal.axes_manager.signal_dimension == 1
        and signal.axes_manager.navigation_dimension == 2
    )


def _describe(signals: list) -> str:
    parts = []
    for s in signals:
        kind = s.metadata.get_item("Signal.signal_type", default="") or type(s).__name__
        parts.append(f"{_title(s) or '?'} ({kind}, shape {tuple(s.data.shape)})")
    return "; ".join(parts) or "nothing"


def _pick_eds(signals: list, path: Path):
    candidates = [s for s in signals if _is_eds_spectrum_image(s)]
    if not candidates:
        raise StemsegFileFormatError(
            f"'{path.name}' holds no EDS spectrum image (a map with an X-ray spectrum "
            f"at every pixel); it contains: {_describe(signals)}. Export the spectrum "
            "image from the vendor software, or load a file that has one."
        )
    # the map with the most pixels; a single spectrum or an EELS cube is never chosen
    return max(candidates, key=lambda s: s.axes_manager.navigation_size)


def _registered_images(signals: list, nav_shape: tuple[int, ...]) -> dict[str, Any]:
    images: dict[str, Any] = {}
    for s in signals:
        if s.axes_manager.signal_dimension != 2 or s.axes_manager.navigation_dimension:
            continue
        if tuple(s.data.shape) != tuple(nav_shape):
            continue  # another shape (e.g. Bruker downsample=) is never paired
        title = _title(s) or f"image{len(images)}"
        while title in images:
            title += "'"
        images[title] = s
    return images


def _pick_haadf(images: dict[str, Any], haadf: str | None, path: Path):
    if haadf is not None:
        if haadf not in images:
            raise StemsegValueError(
                f"haadf={haadf!r}: '{path.name}' has no registered image with that title. "
                f"Registered images: {sorted(images) or 'none'}."
            )
        return images[haadf]
    for pattern in _HAADF_PATTERNS:
        for title, image in images.items():
            if pattern.search(title.upper()):
                return image
    if images:
        warnings.warn(
            f"'{path.name}': no image titled HAADF/ADF/DF; acq.haadf is None. Registered "
            f"images: {sorted(images)}. If one of them is the HAADF image, choose it with "
            f"stemseg.io.load(..., haadf={sorted(images)[0]!r}).",
            StemsegLoadWarning,
            stacklevel=3,
        )
    return None


# --------------------------------------------------------------------------- units


def _to_nm(signal) -> None:
    """Navigation axes in nm (in place); names y, x."""
    axes = signal.axes_manager.navigation_axes  # (x, y) in HyperSpy order
    for axis, name in zip(axes, ("x", "y")):
        if str(axis.units) not in ("", "<undefined>", "None", "px", "pixels"):
            try:
                axis.convert_to_units("nm")
            except Exception:  # noqa: BLE001 - unit unknown to pint: keep as it is
                warnings.warn(
                    f"navigation axis '{axis.name}' has units {axis.units!r} that cannot "
                    "be converted to nm; left as is.",
                    StemsegLoadWarning,
                    stacklevel=4,
                )
        axis.name = name


def _energy_to_keV(signal) -> None:
    axis = signal.axes_manager.signal_axes[0]
    if str(axis.units) == "eV":
        axis.convert_to_units("keV")
    elif str(axis.units) != "keV":
        warnings.warn(
            f"the energy axis has units {axis.units!r}, not keV: the spectrum looks "
            "uncalibrated. Set it with eds.axes_manager[-1].scale/offset/units "
            "(or eds.calibrate) before quantification.",
            StemsegLoadWarning,
            stacklevel=4,
        )


def _image_to_nm(image) -> None:
    for axis, name in zip(image.axes_manager.signal_axes, ("x", "y")):
        if str(axis.units) not in ("", "<undefined>", "None"):
            try:
                axis.convert_to_units("nm")
            except Exception:  # noqa: BLE001
                pass
        axis.name = name


# --------------------------------------------------------------------------- assembly


def _assemble(signals: list, path: Path, haadf: str | None) -> Acquisition:
    eds = _pick_eds(signals, path)
    nav_shape = tuple(eds.data.shape[:-1])
    images = _registered_images(signals, nav_shape)
    chosen = _pick_haadf(images, haadf, path)
    _to_nm(eds)
    _energy_to_keV(eds)
    for image in images.values():
        _image_to_nm(image)
    if not is_lazy(eds) and not eds.data.any():
        warnings.warn(
            f"'{path.name}': the EDS spectrum image holds no counts at all. The file may "
            "be incomplete (copy it again), or the map was recorded with the beam blanked.",
            StemsegLoadWarning,
            stacklevel=3,
        )
    return Acquisition(eds=eds, haadf=chosen, images=images, source=path)


def _read_isolated(path: Path, lazy: bool, reader_options: dict) -> list | None:
    """Parse ``path`` in a fresh interpreter; a crash there becomes StemsegReaderCrash.

    A plain subprocess (``python -m stemseg._isolated_read``) is used rather
    than multiprocessing, so that it works the same from a script, a notebook
    kernel or standard input (multiprocessing re-imports ``__main__``).
    """
    import pickle
    import signal as signals_module
    import subprocess
    import sys

    from hyperspy.io import dict2signal

    request = pickle.dumps((str(path), lazy, dict(reader_options)))
    result = subprocess.run(
        [sys.executable, "-m", "stemseg._isolated_read"],
        input=request,
        capture_output=True,
    )
    if result.returncode == 0:
        dictionaries = pickle.loads(result.stdout)
        return None if dictionaries is None else [dict2signal(d) for d in dictionaries]
    if result.returncode == 3:  # the child raised a StemsegError: re-raise it here
        raise pickle.loads(result.stdout)
    if result.returncode < 0:
        try:
            name = signals_module.Signals(-result.returncode).name
        except ValueError:
            name = f"signal {-result.returncode}"
        raise StemsegReaderCrash(
            f"The reader crashed ({name}) while parsing '{path}'. The file is most likely "
            "corrupt: copy it again from the instrument or export it again. Your session "
            "was not affected."
        )
    tail = result.stderr.decode(errors="replace").strip().splitlines()[-3:]
    raise StemsegFileFormatError(
        f"Parsing '{path}' in a child process failed (exit status {result.returncode}): "
        f"{' '.join(tail)}. Try stemseg.io.load(..., isolate=False) to see the full error."
    )


def load(
    path: str | Path,
    *,
    lazy: bool = False,
    haadf: str | None = None,
    isolate: bool = False,
    **reader_options: Any,
) -> Acquisition:
    """Load an EDS spectrum image and its registered images.

    Parameters
    ----------
    path : str or pathlib.Path
        A file HyperSpy can read (.emd, .bcf, .pts, .hspy, .zspy, ...). It is
        opened read-only and never modified.
    lazy : bool, default False
        Open the data as dask arrays (HyperSpy lazy signals) for maps larger
        than memory.
    haadf : str, optional
        Title of the registered image to use as the HAADF image, when the file
        does not title it HAADF/ADF/DF (e.g. ``haadf="a"``).
    isolate : bool, default False
        Parse the file in a child process first, so that a crash of the
        reader becomes a :class:`~stemseg.errors.StemsegReaderCrash` instead of
        killing the caller. With ``lazy=True`` the child only validates the
        file; the data are then read lazily by the caller.
    **reader_options
        Passed to :func:`hyperspy.api.load`, e.g. Velox ``rebin_energy``,
        ``sum_frames``, ``SI_dtype``; Bruker ``downsample``, ``cutoff_at_kV``.
        These are the levers for memory.

    Returns
    -------
    Acquisition
        ``eds``: the EDS spectrum image with the largest map in the file,
        navigation axes (y, x) in nm, energy axis in keV, metadata kept;
        ``images``: every 2-D image of the map's shape, by title;
        ``haadf``: the one titled HAADF/ADF/DF (else None with a warning
        listing the candidates); ``source``: the path.

    Raises
    ------
    StemsegFileNotFoundError
        The path does not exist or is a directory.
    StemsegFileFormatError
        Unknown extension, empty, corrupt or truncated file, or no EDS
        spectrum image in it.
    StemsegReaderCrash
        With ``isolate=True``: the reader crashed on the file.
    StemsegValueError
        Unknown reader option, or ``haadf`` names no registered image.

    Notes
    -----
    ``Sample.elements`` may be empty and ``Sample.xray_lines`` absent (Velox
    files): the file still loads; the steps that need elements say how to set
    them (``acq.eds.add_elements([...])``).
    """
    path = _check_path(path)
    signals = None
    if isolate:
        signals = _read_isolated(path, lazy, reader_options)
    if signals is None:
        signals = _read_signals(path, lazy, reader_options)
    if len(signals) == 1 and signals[0].metadata.has_item("Phantom.format"):
        # a phantom written by `stemseg simulate`: bring back its HAADF image and truth
        from .simulate import load as load_phantom

        return load_phantom(path, lazy=lazy)
    if len(signals) == 1 and signals[0].metadata.has_item("Segmentation.format"):
        raise StemsegFileFormatError(
            f"'{path.name}' holds a segmentation (cluster mean spectra and label maps), not "
            "a spectrum image; read it with stemseg.io.load_segmentation(path)."
        )
    return _assemble(signals, path, haadf)


def load_segmentation(path: str | Path) -> Segmentation:
    """Read a segmentation written by :meth:`stemseg._types.Segmentation.save`.

    The same as :meth:`Segmentation.load <stemseg._types.Segmentation.load>`: the file's
    signal is the cluster mean spectra, ``metadata.Segmentation`` holds the label maps,
    probabilities, parameters and timings (the layout is described under
    :meth:`~stemseg._types.Segmentation.save`). The fitted models and the pixels behind
    the spectra are not in the file.

    Parameters
    ----------
    path : str or pathlib.Path
        A ``.hspy`` file written by ``Segmentation.save``.

    Returns
    -------
    Segmentation
        Labels, weights, mean spectra and variance, sizes, noise fraction, workflow,
        parameters, timings, seed and pixel size equal to the saved ones; ``models``
        empty and ``counts`` None.

    Raises
    ------
    StemsegFileNotFoundError
        ``path`` does not exist or is a folder.
    StemsegFileFormatError
        Not a ``.hspy`` file, unreadable, or not a saved segmentation (e.g. a spectrum
        image: read those with :func:`load`).

    Examples
    --------
    >>> import tempfile, pathlib
    >>> from stemseg import io, simulate, workflows
    >>> seg = workflows.gmm(simulate.phantom("sulfide-6cation", shape=(32, 32)), 3)
    >>> path = seg.save(pathlib.Path(tempfile.mkdtemp()) / "seg.hspy")
    >>> io.load_segmentation(path).label_signal().axes_manager[0].scale
    80.0
    """
    return Segmentation.load(path)


def load_source(source: str | Path, *, phantom: str, random_state: Any = 0,
                **phantom_options: Any) -> Any:
    """The data a notebook works on, from one value: a phantom, a bundled file or a path.

    This is what a notebook's ``DATA`` parameter means, so that switching a notebook to a
    real map is one changed (or, with papermill, one injected) value.

    Parameters
    ----------
    source : str or pathlib.Path
        ``"phantom"`` (:data:`PHANTOM_SOURCE`): simulate ``phantom``; the name of a bundled
        example file (a key of :data:`stemseg.data.EXAMPLES`, e.g.
        ``"bruker_tem_CuOPdTi_64x64"``): load it; anything else: a path, loaded with
        :func:`load`.
    phantom : str
        The phantom simulated for ``source="phantom"`` (see :func:`stemseg.simulate.phantom`).
    random_state : int, optional
        Seed of the phantom (default 0); ignored for files.
    **phantom_options
        Further arguments of :func:`stemseg.simulate.phantom` (e.g. ``shape``); ignored
        for files.

    Returns
    -------
    Phantom or Acquisition
        A phantom carries its truth (``labels``, ``phases``); a file does not.

    Raises
    ------
    StemsegValueError
        ``source`` is not a string or path.
    StemsegFileNotFoundError, StemsegFileFormatError
        As :func:`load`, for a path that does not exist or cannot be read.

    Examples
    --------
    >>> from stemseg import io
    >>> acq = io.load_source("bruker_tem_CuOPdTi_64x64", phantom="sulfide-6cation")
    >>> acq.eds.data.shape[:2]
    (64, 64)
    """
    if not isinstance(source, (str, Path)):
        raise StemsegValueError(
            f"source must be 'phantom', the name of a bundled file or a path; got "
            f"{type(source).__name__} {source!r}.")
    from . import data as _data

    if str(source) == PHANTOM_SOURCE:
        from .simulate import phantom as _phantom

        return _phantom(phantom, random_state=random_state, **phantom_options)
    if isinstance(source, str) and source in _data.EXAMPLES:
        return load(_data.example(source))
    return load(source)
