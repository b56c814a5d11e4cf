"""Sphinx configuration of the stemseg book (`make book`).

Offline by design: no intersphinx, no remote scripts or fonts. The notebooks are the files
in ../notebooks (docs/notebooks is a symlink); myst-nb runs them through jupyter-cache in
the build folder, so an unchanged rebuild does not execute them again.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent
ROOT = DOCS.parent
sys.path.insert(0, str(ROOT / "src"))   # autodoc imports the package of this checkout

import stemseg  # noqa: E402

project = "stemseg"
author = "stemseg developers"
copyright = "stemseg developers, GPL-3.0-or-later"
version = release = stemseg.__version__

extensions = [
    "myst_nb",
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.napoleon",
]

exclude_patterns = ["_build", "**.ipynb_checkpoints", "notebooks/*.py"]
templates_path = ["_templates"]

# --- MyST and notebooks -------------------------------------------------------------------
myst_enable_extensions = ["colon_fence", "deflist"]
myst_heading_anchors = 3          # README headings get anchors to link to

# Execution: cache mode, the cache under the build folder (STEMSEG_BOOK_CACHE overrides it;
# the book test primes it with the notebooks the browser test already ran).
nb_execution_mode = os.environ.get("STEMSEG_BOOK_EXECUTE", "cache")
nb_execution_cache_path = os.environ.get(
    "STEMSEG_BOOK_CACHE", str(ROOT / "build" / "book" / "jupyter_cache"))
nb_execution_timeout = 900
nb_execution_raise_on_error = True
nb_execution_show_tb = True
nb_merge_streams = True
# Widgets: no widget manager is loaded (it would come from a CDN). Each explorer's display
# bundle also carries its figure as a PNG, which is what the page shows.
nb_ipywidgets_js = {}
nb_mime_priority_overrides = [
    ("html", "application/vnd.jupyter.widget-view+json", None),
    ("html", "application/vnd.jupyter.widget-state+json", None),
]

# --- API reference ---------------------------------------------------------------------
autosummary_generate = True
autosummary_imported_members = False
autosummary_ignore_module_all = False   # a module page lists its __all__
autodoc_default_options = {
    "members": True,
    "show-inheritance": True,
    # scikit-learn's estimator API on the reducers (documented by scikit-learn)
    "exclude-members": "set_output, set_params, get_params, get_metadata_routing, "
                       "set_fit_request, set_transform_request, set_score_request, "
                       "set_predict_request, "
                       "fit_transform",
}
autodoc_member_order = "bysource"
autodoc_typehints = "none"           # the numpydoc sections describe the types
napoleon_google_docstring = False
napoleon_numpy_docstring = True
napoleon_use_rtype = False
napoleon_use_param = False    # types as text: "shape (n, n_clusters)" is no cross-reference

# --- HTML ------------------------------------------------------------------------------
html_theme = "sphinx_book_theme"
html_title = f"stemseg {release}"
# The launch button opens a notebook page's notebook on Binder (the README's badge assumes
# the same repository address); it is a plain link, nothing is fetched at build time.
html_theme_options = {
    "repository_url": "https://github.com/stemseg/stemseg",
    "repository_branch": "HEAD",
    "path_to_docs": "docs",
    "use_repository_button": False,
    "use_download_button": True,
    "launch_buttons": {"binderhub_url": "https://mybinder.org",
                       "notebook_interface": "jupyterlab"},
    "show_toc_level": 2,
    "home_page_in_toc": True,
}
html_static_path: list[str] = []
html_last_updated_fmt = None
# nothing fetched at build or view time
html_use_opensearch = ""


# --- generated pages: the command line's help, as the parser prints it -----------------
def _write_cli_help() -> None:
    from stemseg import cli

    os.environ["COLUMNS"] = "92"     # argparse wraps to the terminal width: a fixed one
    parser = cli.build_parser()
    out = DOCS / "_generated"
    out.mkdir(exist_ok=True)
    texts = {"stemseg": parser.format_help()}
    sub = next(a for a in parser._actions if isinstance(a, __import__("argparse")._SubParsersAction))
    for name, subparser in sub.choices.items():
        texts[f"stemseg-{name}"] = subparser.format_help()
    for name, text in texts.items():
        path = out / f"{name}.txt"
        if not path.exists() or path.read_text() != text:   # unchanged: no rebuild
            path.write_text(text)


_write_cli_help()
