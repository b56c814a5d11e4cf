"""The rendered book (``make book``): it builds with warnings as errors and every page works.

The book is built into a temporary folder, then every HTML page is opened in the headless
Chromium of ``tests/test_browser.py`` (same executable, same arguments): no page shows an
error output, every image is loaded, every internal link leads to an existing page and
anchor, nothing is fetched from the network, and the API reference documents the public
functions and classes of every module.

The notebooks are not executed a second time in a ``make test`` run: the browser test saves
each notebook as JupyterLab ran it (``test_browser.executed_dir``), and this test puts those
outputs into the book's jupyter-cache before the build, so that myst-nb finds every notebook
in the cache. It waits (bounded) for the browser tests of this run that are still going on
the other worker; ``conftest.py`` schedules this test last for that reason. Notebooks whose
browser test is not part of the run (``pytest tests/test_book.py`` alone), or ended without
an executed notebook, are executed by the build itself -- slower, but the same book.

Without Chromium the test is skipped with the reason printed; with ``CI=true`` a missing
browser is a failure, as in ``tests/test_browser.py``.
"""

from __future__ import annotations

import copy
import html
import importlib
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

from test_browser import CHROMIUM_ARGS, NOTEBOOKS, _browser_or_skip, executed_dir

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
#: how long to wait for the browser tests still running on the other worker
WAIT_S = 900
BUILD_TIMEOUT_S = 1800


def _api_modules() -> list[str]:
    """The modules whose pages the API reference must have: every public module of the
    package (found, not listed, so a new module cannot be left out) and the result types."""
    import pkgutil

    import stemseg

    return [m.name for m in pkgutil.iter_modules(stemseg.__path__)
            if not m.name.startswith("_") or m.name == "_types"]


API_MODULES = _api_modules()
_THREADS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS")


def _browser_notebooks(session: pytest.Session) -> set[str]:
    """The notebooks that this run's browser tests execute (and save for the book)."""
    names = set()
    for item in session.items:
        if item.nodeid.startswith("tests/test_browser.py::test_notebook_runs"):
            names.add(item.callspec.params["notebook"])
    return names


def _wait_for_executed(folder: Path, names: set[str]) -> dict[str, Path]:
    """Poll until each named notebook is saved or marked failed, at most WAIT_S seconds."""
    deadline = time.monotonic() + WAIT_S
    pending = set(names)
    while pending and time.monotonic() < deadline:
        for name in list(pending):
            if (folder / name).exists() or (folder / f"{name}.failed").exists():
                pending.discard(name)
        if pending:
            time.sleep(2)
    return {name: folder / name for name in names if (folder / name).exists()}


def _prime_cache(cache_dir: Path, executed: dict[str, Path]) -> list[str]:
    """Put the executed notebooks into the book's jupyter-cache; return the primed names.

    The cached notebook is the source notebook with the executed outputs copied in cell by
    cell (JupyterLab rewrites metadata such as the kernel's display name, which the cache's
    hash covers), and the cache must then match the source, or the build would execute it.
    """
    import nbformat
    from jupyter_cache import get_cache
    from jupyter_cache.base import CacheBundleIn

    cache = get_cache(str(cache_dir))
    primed = []
    for name, path in sorted(executed.items()):
        source = nbformat.read(DOCS / "notebooks" / name, as_version=4)
        ran = nbformat.reads(path.read_text(encoding="utf-8"), as_version=4)
        nb = copy.deepcopy(source)
        assert len(nb.cells) == len(ran.cells), f"{name}: the executed copy has other cells"
        for cell, done in zip(nb.cells, ran.cells):
            assert cell.source == done.source, f"{name}: a cell changed in the executed copy"
            if cell.cell_type == "code":
                cell.outputs = done.outputs
                cell.execution_count = done.execution_count
        nbformat.validate(nb)
        cache.cache_notebook_bundle(CacheBundleIn(nb, str(DOCS / "notebooks" / name)),
                                    check_validity=False, overwrite=True)
        assert cache.match_cache_notebook(source) is not None, f"{name}: cache hash mismatch"
        primed.append(name)
    return primed


@pytest.fixture(scope="module")
def book(request, tmp_path_factory):
    """Build the book (notebooks from this run's browser tests where there are some)."""
    _browser_or_skip()
    out = tmp_path_factory.mktemp("book")
    names = _browser_notebooks(request.session)
    executed = _wait_for_executed(executed_dir(tmp_path_factory), names) if names else {}
    primed = _prime_cache(out / "jupyter_cache", executed)
    env = dict(os.environ, STEMSEG_BOOK_CACHE=str(out / "jupyter_cache"))
    for var in _THREADS:          # the notebooks run as in make test / make book
        env.setdefault(var, "1")
    start = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "sphinx", "-b", "html", "-W", "--keep-going", "-q",
         str(DOCS), str(out / "html")],
        capture_output=True, text=True, env=env, timeout=BUILD_TIMEOUT_S, cwd=ROOT,
    )
    seconds = time.monotonic() - start
    print(f"book: built in {seconds:.0f} s; notebooks from the browser tests: "
          f"{', '.join(primed) or 'none'}; executed by the build: "
          f"{len(NOTEBOOKS) - len(primed)}")
    assert result.returncode == 0, (
        "the book does not build without warnings:\n" + result.stderr[-6000:])
    return out / "html"


def _pages(html_dir: Path) -> list[Path]:
    return sorted(p for p in html_dir.rglob("*.html") if "_static" not in p.parts)


_IDS = re.compile(r"""\b(?:id|name)=["']([^"']+)["']""")


def _anchors(page: Path, cache: dict[Path, set[str]]) -> set[str]:
    if page not in cache:
        cache[page] = {html.unescape(a) for a in _IDS.findall(page.read_text("utf-8"))}
    return cache[page]


_PAGE_JS = """() => {
  const imgs = Array.from(document.querySelectorAll('img')).map(i => ({
    src: i.getAttribute('src') || '', ok: i.complete && i.naturalWidth > 0}));
  const errors = Array.from(document.querySelectorAll(
      '.cell_output .output.traceback, .cell_output .output.error, .output.traceback'))
    .map(e => e.innerText.slice(0, 300));
  for (const o of document.querySelectorAll('.cell_output')) {
    if (o.innerText.includes('Traceback (most recent call last)'))
      errors.push(o.innerText.slice(0, 300));
  }
  const links = Array.from(document.querySelectorAll('a[href]')).map(a => a.href);
  const figures = document.querySelectorAll('.cell_output img').length;
  return {imgs, errors, links, figures};
}"""


def test_book_pages(book):
    from playwright.sync_api import sync_playwright

    pages = _pages(book)
    names = {p.relative_to(book).as_posix() for p in pages}
    for required in ("index.html", "science.html", "quickstart.html", "own-data.html",
                     "api.html"):
        assert required in names, f"{required} missing from the book"
    for nb in NOTEBOOKS:
        assert f"notebooks/{nb.stem}.html" in names, f"{nb.name} missing from the book"

    problems: list[str] = []
    anchors: dict[Path, set[str]] = {}
    remote: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=_browser_or_skip(), headless=True,
                                    args=CHROMIUM_ARGS)
        context = browser.new_context(viewport={"width": 1300, "height": 900})

        def offline(route):              # the book must not need the network
            if not route.request.url.startswith(("file:", "data:", "about:", "blob:")):
                remote.append(route.request.url)
                return route.abort()
            return route.continue_()

        context.route("**/*", offline)
        page = context.new_page()
        for path in pages:
            rel = path.relative_to(book).as_posix()
            page.goto(path.as_uri(), wait_until="load")
            state = page.evaluate(_PAGE_JS)
            problems += [f"{rel}: error output: {e!r}" for e in state["errors"]]
            problems += [f"{rel}: image not loaded: {i['src'][:80]}"
                         for i in state["imgs"] if not i["ok"]]
            if rel.startswith("notebooks/") and state["figures"] == 0:
                problems.append(f"{rel}: no figure in the outputs")
            for href in state["links"]:
                url = urlsplit(href)
                if url.scheme != "file":
                    continue                     # external links are not followed
                target = Path(unquote(url.path))
                if target.is_dir():
                    target = target / "index.html"
                if not target.exists():
                    problems.append(f"{rel}: broken link {href}")
                elif url.fragment and target.suffix == ".html" and (
                        unquote(url.fragment) not in _anchors(target, anchors)):
                    problems.append(f"{rel}: no anchor #{url.fragment} in "
                                    f"{target.relative_to(book)}")
        browser.close()
    assert not remote, f"the book fetched from the network: {sorted(set(remote))[:10]}"
    assert not problems, "\n".join(problems[:40])


def test_api_reference_lists_the_public_functions(book):
    api = (book / "api.html").read_text("utf-8")
    missing = []
    for module in API_MODULES:
        name = f"stemseg.{module}"
        page = book / "generated" / f"{name}.html"
        assert f"generated/{name}.html" in api, f"api.html does not link {name}"
        ids = _anchors(page, {})
        mod = importlib.import_module(name)
        for public in getattr(mod, "__all__", []):
            obj = getattr(mod, public)
            if callable(obj) and getattr(obj, "__doc__", None):   # functions and classes
                if f"{name}.{public}" not in ids:
                    missing.append(f"{name}.{public}")
    assert not missing, f"not documented in the API reference: {missing}"
    # the package's front door: the workflows and the loader
    for key in ("stemseg.workflows.gmm", "stemseg.workflows.hdbscan", "stemseg.io.load"):
        assert key in _anchors(book / "generated" / f"{key.rsplit('.', 1)[0]}.html", {})
