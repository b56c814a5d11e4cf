"""Progress of a workflow: seconds per stage and an optional tqdm bar that always closes.

Used by the in-memory and the streamed workflows alike (:mod:`stemseg.workflows`,
:mod:`stemseg.streaming`); imports nothing else of the package.
"""

from __future__ import annotations

import contextvars
import functools
import sys
import time
from typing import Any, Callable, TypeVar

from tqdm.auto import tqdm

__all__: list[str] = []


#: The Timer objects opened inside the current :func:`closes_timers` call (None outside).
_OPEN_TIMERS: contextvars.ContextVar[list["Timer"] | None] = contextvars.ContextVar(
    "stemseg_open_timers", default=None)


_F = TypeVar("_F", bound=Callable[..., Any])


def closes_timers(func: _F) -> _F:
    """Decorator: close (at 100 %) the :class:`Timer` bars that ``func`` opens, also
    when it raises, so no progress bar is left open behind a failed workflow."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        opened: list[Timer] = []
        token = _OPEN_TIMERS.set(opened)
        try:
            return func(*args, **kwargs)
        finally:
            _OPEN_TIMERS.reset(token)
            for timer in opened:
                timer.close()

    return wrapper  # type: ignore[return-value]


def _no_bar(progress: bool | None) -> bool:
    """Whether the stage bar is hidden: ``progress=None`` shows it only on a terminal.

    tqdm's own ``disable=None`` hides a text bar off a terminal, but ``tqdm.auto`` draws a
    widget in a Jupyter kernel, which a saved notebook keeps as a stale "0/5" line; so
    None is decided here from stderr, which is not a terminal in a kernel.
    """
    if progress is None:
        isatty = getattr(sys.stderr, "isatty", None)
        return not (callable(isatty) and isatty())
    return not progress


class Timer:
    """Seconds per stage, with an optional tqdm bar over the stages.

    The bar counts the stages (:meth:`lap`); :meth:`close` sets its total to the stages
    actually run and redraws it before closing it, so it always ends at 100 % -- also
    when a stage was skipped or the workflow stopped on an error -- and never stays
    behind half-drawn (e.g. "80 % 4/5 mean_spectra" in a saved notebook). ``close`` is
    idempotent; the timer is a context manager, and a workflow wrapped in
    :func:`closes_timers` closes every timer it opened, also when it raises.
    """

    _STAGES = ("preprocess", "reduce", "cluster", "labels_full", "mean_spectra")

    def __init__(self, progress: bool | None, name: str) -> None:
        self.timings: dict[str, float] = {}
        self._start = self._last = time.perf_counter()
        self._closed = False
        self._bar = tqdm(total=len(self._STAGES), desc=name, leave=False,
                         disable=_no_bar(progress))
        opened = _OPEN_TIMERS.get()
        if opened is not None:
            opened.append(self)

    def __enter__(self) -> Timer:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def lap(self, stage: str) -> None:
        now = time.perf_counter()
        self.timings[stage] = now - self._last
        self._last = now
        self._bar.set_postfix_str(stage, refresh=False)
        self._bar.update()

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self.timings["total"] = time.perf_counter() - self._start
        bar = self._bar
        try:
            if not bar.disable:
                n = bar.n
                if bar.total != n:  # stages skipped or stopped early: total = stages run
                    start = bar.start_t
                    bar.reset(total=n)  # (tqdm.notebook resizes its widget here)
                    bar.start_t = start
                    bar.n = n
                bar.refresh()  # draw the final 100 % (update() draws at most every 0.1 s)
        finally:
            bar.close()
