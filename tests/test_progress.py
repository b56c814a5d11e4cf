"""The workflows' stage progress bar always ends at 100 % and is always closed."""

from __future__ import annotations

import io

import pytest
from tqdm import std as tqdm_std

from _synth import synthetic_cube
from stemseg import _progress, cluster, workflows


@pytest.fixture
def bars(monkeypatch):
    """Replace the workflows' tqdm by the text one, drawing into a StringIO; returns
    (the bars made, the text drawn)."""
    made: list[tqdm_std.tqdm] = []
    out = io.StringIO()

    class Recording(tqdm_std.tqdm):
        def __init__(self, *args, **kwargs):
            kwargs["file"] = out
            super().__init__(*args, **kwargs)
            made.append(self)

    monkeypatch.setattr(_progress, "tqdm", Recording)
    return made, out


@pytest.fixture(scope="module")
def cube():
    return synthetic_cube(shape=(24, 24), n_channels=128)[0]


def _last_drawn(out: io.StringIO) -> str:
    """The last bar line drawn before the bar was cleared (leave=False)."""
    frames = [f for f in out.getvalue().split("\r") if "|" in f]
    assert frames, out.getvalue()
    return frames[-1]


def _assert_finished(bar: tqdm_std.tqdm, n: int) -> None:
    assert bar.n == bar.total == n
    assert bar.disable  # tqdm's close() disables the bar
    assert bar not in tqdm_std.tqdm._instances


def test_gmm_bar_ends_at_100_percent_and_closes(bars, cube):
    made, out = bars
    seg = workflows.gmm(cube, n_clusters=4, random_state=0, progress=True)
    assert len(made) == 1
    _assert_finished(made[0], 5)
    last = _last_drawn(out)
    assert "100%" in last and "5/5" in last and "mean_spectra" in last
    assert set(seg.timings) >= {"preprocess", "mean_spectra", "total"}


def test_bar_closes_at_100_percent_when_the_workflow_raises(bars, cube, monkeypatch):
    made, out = bars

    def boom(*args, **kwargs):
        raise RuntimeError("cluster stage failed")

    monkeypatch.setattr(cluster, "fit_gmm", boom)
    with pytest.raises(RuntimeError, match="cluster stage failed"):
        workflows.gmm(cube, n_clusters=4, random_state=0, progress=True)
    _assert_finished(made[0], 2)  # preprocess and reduce ran
    last = _last_drawn(out)
    assert "100%" in last and "2/2" in last


def test_lazy_bar_closes_when_streaming_raises(bars, cube, monkeypatch):
    made, _ = bars
    monkeypatch.setattr(cluster, "fit_gmm", lambda *a, **k: 1 / 0)
    with pytest.raises(ZeroDivisionError):
        workflows.gmm(cube.as_lazy(), n_clusters=4, random_state=0, progress=True)
    assert len(made) == 1
    _assert_finished(made[0], 2)


def test_timer_with_a_skipped_stage_and_no_bar(bars):
    made, out = bars
    with _progress.Timer(True, "t") as timer:
        for stage in ("preprocess", "reduce", "mean_spectra"):
            timer.lap(stage)
    _assert_finished(made[0], 3)
    assert "3/3" in _last_drawn(out)
    timer.close()  # idempotent
    assert made[0].n == 3
    quiet = _progress.Timer(False, "quiet")
    quiet.lap("preprocess")
    quiet.close()
    assert made[1].disable and "quiet" not in out.getvalue()
