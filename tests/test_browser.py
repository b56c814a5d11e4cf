"""The notebooks as they are used: in JupyterLab, in a real (headless) browser.

A JupyterLab server is started on localhost; each notebook is opened in Debian's Chromium
driven by Playwright (the system browser through its executable path, never
``playwright install``), all cells are run, the first slider is moved one step (every notebook
must show one), and the test checks that a figure changed and that no cell produced an
error.

Without Chromium the test is skipped with the reason printed; with ``CI=true`` a missing
browser is a failure (``.ci/run`` installs it).

Right after Run All (before the slider moves) the executed notebook is read from JupyterLab's
model and saved for ``tests/test_book.py``, which renders the book from these outputs instead
of executing the notebooks a second time (see :func:`executed_dir`).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]-*.ipynb"))
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
RUN_TIMEOUT_MS = 400_000

# JavaScript run in the page: the state of the open notebook, read from JupyterLab's model.
_STATE_JS = """() => {
  const panel = window.jupyterapp.shell.currentWidget;
  if (!panel || !panel.content || !panel.content.model) return null;
  const cells = Array.from(panel.content.model.cells);
  const code = cells.filter(c => c.type === 'code');
  const errors = [];
  for (const c of code) {
    for (const o of c.outputs.toJSON()) {
      if (o.output_type === 'error') errors.push(o.ename + ': ' + o.evalue);
    }
  }
  const session = panel.sessionContext.session;
  const status = session && session.kernel ? session.kernel.status : 'none';
  return {n: code.length, done: code.filter(c => c.executionCount !== null).length,
          status: status, errors: errors};
}"""

# what a control can change: the figures, and the text/tables shown in widget Output areas
_IMAGES_JS = """() => {
  const panel = '.jp-NotebookPanel:not(.lm-mod-hidden) ';
  const imgs = Array.from(document.querySelectorAll(panel + '.jp-OutputArea-output img'))
    .map(i => i.src);
  const outs = Array.from(document.querySelectorAll(panel + '.jupyter-widgets-output-area'))
    .map(o => o.innerText);
  return imgs.concat(outs);
}"""


def executed_dir(tmp_path_factory) -> Path:
    """The folder where this run's browser tests leave the executed notebooks.

    Shared by the pytest-xdist workers of one run: their base temporary folders
    (``.../pytest-N/popen-gwK``) have this run's folder as parent. Without xdist it is the
    process's own base folder. ``<name>.ipynb`` is a notebook as JupyterLab ran it,
    ``<name>.failed`` says that its browser test ended without one.
    """
    base = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        base = base.parent
    folder = base / "executed-notebooks"
    folder.mkdir(exist_ok=True)
    return folder


_MODEL_JS = "() => window.jupyterapp.shell.currentWidget.content.model.toJSON()"


def _save_executed(page, folder: Path, notebook: str) -> None:
    """Write the open notebook, outputs included, as JupyterLab holds it (atomically)."""
    model = page.evaluate(_MODEL_JS)
    for cell in model["cells"]:        # Lab writes "attachments": null, nbformat wants none
        for key in [k for k, v in cell.items() if v is None]:
            del cell[key]
    tmp = folder / f".{notebook}.partial"
    tmp.write_text(json.dumps(model), encoding="utf-8")
    tmp.replace(folder / notebook)


# the self-checks' verdict lines ("Exercise 1: correct.") in the open notebook's outputs
_VERDICTS_JS = """() => {
  const cells = Array.from(window.jupyterapp.shell.currentWidget.content.model.cells);
  return cells.filter(c => c.type === 'code').flatMap(c => c.outputs.toJSON())
    .filter(o => o.output_type === 'stream')
    .flatMap(o => (Array.isArray(o.text) ? o.text.join('') : o.text).split('\\n'))
    .filter(line => /^Exercise \\w+: /.test(line));
}"""


def _exercise_verdicts(page) -> list[str]:
    """The verdicts of the exercises' self-check cells in the open notebook. The shipped
    notebooks hold the solutions (cells tagged ``solution``), so each must say correct."""
    return page.evaluate(_VERDICTS_JS)


def _browser_or_skip():
    if CHROMIUM is None:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("CI=true but no chromium: .ci/run should have installed it (apt-get)")
        pytest.skip("no chromium on this machine (apt-get install chromium to run this test)")
    return CHROMIUM


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    _browser_or_skip()
    if not NOTEBOOKS:
        pytest.fail("no notebooks found in notebooks/")
    # Run copies (the committed notebooks stay output-free and untouched): each notebook as
    # a student gets it (make student) with the instructor's solutions filled back in --
    # cell for cell the committed notebook (tests/test_release.py checks that), so this is
    # both the notebook's run and the release's "filled back, every self-check correct".
    import nbformat

    from stemseg import release

    work = tmp_path_factory.mktemp("lab")
    for nb in NOTEBOOKS:
        instructor = nbformat.read(nb, as_version=4)
        filled = release.fill_solutions(release.student_notebook(nb), instructor)
        nbformat.write(filled, work / nb.name)
    port = _free_port()
    env = dict(os.environ, MPLBACKEND="module://matplotlib_inline.backend_inline")
    proc = subprocess.Popen(
        [sys.executable, "-m", "jupyter", "lab", "--no-browser", f"--port={port}",
         "--ServerApp.ip=127.0.0.1", "--IdentityProvider.token=stemseg-test",
         f"--ServerApp.root_dir={work}", "--allow-root",
         "--LabApp.expose_app_in_browser=True", "--LabApp.news_url=None",
         "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"],
        stdout=subprocess.DEVNULL, stderr=open(work / "lab.log", "w"), env=env,
    )
    try:
        deadline = time.time() + 120
        while time.time() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), 1).close()
                break
            except OSError:
                time.sleep(0.5)
        else:
            pytest.fail("JupyterLab did not start: " + (work / "lab.log").read_text()[-2000:])
        yield f"http://127.0.0.1:{port}", work
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()


@pytest.fixture(scope="module")
def browser(lab):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=_browser_or_skip(), headless=True,
                                     args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


_KERNEL_JS = ("() => { const p = window.jupyterapp.shell.currentWidget; return !!(p && "
              "p.sessionContext && p.sessionContext.session && "
              "p.sessionContext.session.kernel); }")


def _start_kernel(page) -> None:
    """Wait until the notebook has a kernel, accepting the kernel dialog if Lab shows one
    (it does not when the notebook names an installed kernel)."""
    page.wait_for_function(
        f"() => !!document.querySelector('.jp-Dialog .jp-mod-accept') || ({_KERNEL_JS})()",
        timeout=120_000)
    if page.locator(".jp-Dialog .jp-mod-accept").count():
        page.click(".jp-Dialog .jp-mod-accept")
    page.wait_for_function(_KERNEL_JS, timeout=120_000)


def _wait_until_run(page, timeout_ms: int) -> dict:
    page.wait_for_function(
        # done, or stopped at an error (Run All stops at the first failing cell)
        "(js) => { const s = eval(js)(); return s && s.n > 0 && "
        "(s.done === s.n || s.errors.length > 0) && s.status === 'idle'; }",
        arg=_STATE_JS, timeout=timeout_ms, polling=1000,
    )
    return page.evaluate(_STATE_JS)


@pytest.mark.parametrize("notebook", [nb.name for nb in NOTEBOOKS])
def test_notebook_runs_and_slider_updates_figure(lab, browser, notebook, tmp_path_factory):
    url, _ = lab
    executed = executed_dir(tmp_path_factory)
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    try:
        # a fresh workspace per notebook (Lab otherwise restores the previous tabs)
        stem = Path(notebook).stem
        page.goto(f"{url}/lab/workspaces/{stem}/tree/{notebook}?token=stemseg-test&reset")
        page.wait_for_selector(".jp-NotebookPanel:not(.lm-mod-hidden)", timeout=120_000)
        page.wait_for_function(
            "() => window.jupyterapp && "
            "window.jupyterapp.commands.hasCommand('notebook:run-all-cells')",
            timeout=120_000,
        )
        _start_kernel(page)
        page.evaluate(
            "() => { window.jupyterapp.commands.execute('notebook:run-all-cells'); return 1; }")
        state = _wait_until_run(page, RUN_TIMEOUT_MS)
        assert state["errors"] == [], f"{notebook}: {state['errors']}"
        _save_executed(page, executed, notebook)    # for the book (tests/test_book.py)
        verdicts = _exercise_verdicts(page)
        assert verdicts and all(v.split(": ", 1)[1].startswith("correct") for v in verdicts), \
            f"{notebook}: not every exercise's self-check says correct: {verdicts}"

        sliders = page.locator(".widget-slider .noUi-handle")
        assert sliders.count(), f"{notebook} shows no slider"
        # move the first slider to one end of its range: a figure must change. (One step
        # is not enough everywhere: min_cluster_size + 4 px can give the same clusters,
        # hence the same figure, depending on the CPU's embedding -- seen in notebook 03.)
        # The low end, unless the slider is there: it is the cheap refit (2 PCA components
        # rather than 20, the smallest HDBSCAN cluster size rather than the largest).
        before = page.evaluate(_IMAGES_JS)
        handle = sliders.first
        handle.scroll_into_view_if_needed()
        handle.focus()
        at_min = handle.get_attribute("aria-valuenow") == handle.get_attribute("aria-valuemin")
        page.keyboard.press("End" if at_min else "Home")
        page.wait_for_function(
            "([js, before]) => { const now = eval(js)(); return now.length > 0 && "
            "JSON.stringify(now) !== JSON.stringify(before); }",
            arg=[_IMAGES_JS, before], timeout=120_000,
        )
        state = _wait_until_run(page, 120_000)
        assert state["errors"] == [], f"{notebook} after the slider: {state['errors']}"
        # errors inside widget callbacks land in Output widgets as tracebacks
        tracebacks = page.locator(
            ".jp-NotebookPanel:not(.lm-mod-hidden) .jp-OutputArea-output:has-text('Traceback')")
        assert tracebacks.count() == 0, f"{notebook}: a widget callback raised"
    finally:
        if not (executed / notebook).exists():   # the book test stops waiting for it
            (executed / f"{notebook}.failed").touch()
        try:  # free the kernel's memory before the next notebook
            page.evaluate("() => window.jupyterapp.shell.currentWidget.sessionContext"
                          ".shutdown()")
        except Exception:  # noqa: BLE001
            pass
        page.close()
