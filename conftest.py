"""Suite-wide collection rules: how `make test` spreads the work over two pytest-xdist workers.

`make test` runs ``pytest -n 2 --dist loadgroup --no-loadscope-reorder``. Here every test
gets an ``xdist_group``, so that a worker always runs a whole group:

* by default a group is a test file -- above all a notebook's nbval cells, which must run in
  order in one kernel;
* the long, independent runs are a group each, so that they spread over both workers: each
  notebook in the browser (``tests/test_browser.py``), each notebook on a bundled file
  (``tests/test_notebooks_real.py``) and each seed of the seed sweeps.

Groups are handed out in collection order, and the longest go first (``_LONG_FIRST``): a
long group started last would leave the other worker idle at the end. The book test
(``tests/test_book.py``) goes last (``_LAST``): it renders the notebooks that the browser
tests executed and saved, and waits for those still running on the other worker; last in
the queue, it starts only when every browser group has been handed out, so it never waits
for one queued behind itself.

Each notebook is executed once. With Chromium present (always in CI, ``.ci/run`` installs
it) the browser test runs every notebook top to bottom in JupyterLab and fails on any error
output -- which is what nbval's lax mode checks, assert cells included -- so nbval's own
run of the same notebooks is deselected (the reason is printed in the header). Without
Chromium the browser test is skipped and nbval runs the notebooks.
"""

from __future__ import annotations

import os
import shutil

import pytest

#: files whose groups are scheduled first, longest first (measured per worker on 2 cores)
_LONG_FIRST = (
    "tests/test_browser.py",
    "tests/test_notebooks_real.py",
    "notebooks/",
    "tests/test_seed_sweep_hdbscan.py",
    "tests/test_seed_sweep_gmm.py",
    "tests/test_acceptance_independent.py",
    "tests/test_streaming.py",
    "tests/test_cli.py",
    "tests/test_validate.py",
    "tests/test_release.py",      # runs notebook 01 once (~20 s)
)
#: files whose groups are scheduled after all others
_LAST = ("tests/test_book.py",)
#: files whose parametrized tests are each a group of their own
_ONE_GROUP_PER_TEST = (
    "tests/test_browser.py",
    "tests/test_notebooks_real.py",
    "tests/test_seed_sweep_hdbscan.py",
    "tests/test_seed_sweep_gmm.py",
)


def _browser_runs_notebooks(items: list[pytest.Item]) -> bool:
    """True when the browser test was collected and can run (Chromium is installed)."""
    has_browser = shutil.which("chromium") or shutil.which("chromium-browser")
    return bool(has_browser) and any(
        i.nodeid.startswith("tests/test_browser.py::test_notebook_runs") for i in items)


def _is_nbval(item: pytest.Item) -> bool:
    return item.nodeid.startswith("notebooks/") and ".ipynb::" in item.nodeid


def _rank(item: pytest.Item) -> int:
    for i, prefix in enumerate(_LONG_FIRST):
        if item.nodeid.startswith(prefix):
            return i
    if item.nodeid.startswith(_LAST):
        return len(_LONG_FIRST) + 1
    return len(_LONG_FIRST)


@pytest.hookimpl(tryfirst=True)   # before xdist turns the groups into node-id suffixes
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if _browser_runs_notebooks(items) and os.environ.get("STEMSEG_NBVAL_TOO") != "1":
        dropped = [i for i in items if _is_nbval(i)]
        if dropped:
            items[:] = [i for i in items if not _is_nbval(i)]
            config.hook.pytest_deselected(items=dropped)
            config._stemseg_nbval_deselected = len(dropped)  # for the header
    for item in items:
        if item.get_closest_marker("xdist_group") is not None:
            continue
        path = item.nodeid.split("::", 1)[0]
        group = item.nodeid if path in _ONE_GROUP_PER_TEST else path
        item.add_marker(pytest.mark.xdist_group(group))
    items.sort(key=_rank)   # stable: the order within a rank is kept


def pytest_report_header(config: pytest.Config) -> str | None:
    if shutil.which("chromium") or shutil.which("chromium-browser"):
        return ("notebooks: executed in JupyterLab by tests/test_browser.py (Chromium found); "
                "nbval's run of the same notebooks is deselected (STEMSEG_NBVAL_TOO=1 keeps "
                "it)")
    return "notebooks: executed by nbval (no Chromium, so tests/test_browser.py is skipped)"
