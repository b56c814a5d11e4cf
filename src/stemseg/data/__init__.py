"""Bundled example files and the papers' reference values.

The package never writes into this folder. Provenance and licence of each file
are in ``README.md`` next to this module.
"""

from __future__ import annotations

import json
from functools import lru_cache
from importlib.resources import files
from pathlib import Path
from typing import Any

from ..errors import StemsegValueError

__all__ = ["example", "examples", "paper_values", "EXAMPLES"]

#: Short name -> (file name, one-line description).
EXAMPLES: dict[str, tuple[str, str]] = {
    "bruker_tem_CuOPdTi_64x64": (
        "bruker_tem_CuOPdTi_64x64.bcf",
        "Bruker TEM hypermap, 200 kV, 64x64 px, ~6 counts/px, Cu O Pd Ti, with HAADF",
    ),
    "bruker_sem_mineral_30x30": (
        "bruker_sem_mineral_30x30.bcf",
        "Bruker SEM hypermap, 20 kV, 30x30 px, ~20,000 counts/px, 16 elements, backscatter image",
    ),
    "velox_eels_eds_FeCoO": (
        "velox_eels_eds_FeCoO.emd",
        "Velox EMD, 300 kV, EDS 128x128 px (~0.7 counts/px, nearly all in the zero peak: "
        "almost no X-rays; Fe Co O listed) + EELS, images, maps",
    ),
    "velox_si_16x16_CCaOCu": (
        "velox_si_16x16_CCaOCu.emd",
        "Velox EMD v11, 300 kV, EDS 16x16 px (~164 counts/px, 0.6 above 0.25 keV), C Ca O Cu, "
        "HAADF, element maps",
    ),
}


def _folder() -> Path:
    return Path(str(files(__name__)))


def examples() -> dict[str, str]:
    """Names of the bundled example files with a one-line description.

    Returns
    -------
    dict of str to str
    """
    return {name: text for name, (_, text) in EXAMPLES.items()}


def example(name: str) -> Path:
    """Path of a bundled example file.

    Parameters
    ----------
    name : str
        A key of :data:`EXAMPLES` (the file name, with or without extension,
        is accepted too).

    Returns
    -------
    pathlib.Path
        The file inside the installed package. Treat it as read-only: load it
        with :func:`stemseg.io.load`, write results elsewhere.

    Raises
    ------
    StemsegValueError
        Unknown name; the message lists the valid ones.
    """
    key = Path(name).stem if Path(name).suffix in (".bcf", ".emd") else name
    if key not in EXAMPLES:
        raise StemsegValueError(
            f"Unknown example {name!r}. Valid names: {', '.join(EXAMPLES)}."
        )
    return _folder() / EXAMPLES[key][0]


@lru_cache(maxsize=1)
def _paper_values() -> dict[str, Any]:
    return json.loads((_folder() / "paper_values.json").read_text(encoding="utf-8"))


def paper_values() -> dict[str, Any]:
    """The published numbers of the two papers (Eggeman et al. 2025; Ter-Petrosyan et al. 2024).

    Returns
    -------
    dict
        A fresh copy of ``paper_values.json`` (compositions in at. % as
        ``[value, sigma]``), safe to modify.
    """
    return json.loads(json.dumps(_paper_values()))
