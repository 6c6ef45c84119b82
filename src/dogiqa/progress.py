"""Progress per image with an honest ETA, for pipelines that batch several images together.

A pipeline reports work as it completes: ``("prepared", n)`` when ``n`` images are loaded and segmented, and
``("scored", n)`` when the crops of ``n`` images are scored; a resumed run first reports ``("resumed", n)``
for the images it does not redo (done, but taking no time: they do not shorten the ETA).
:class:`ImageProgress` turns those events into a fractional count of finished images, weighting each stage by
the time it has taken so far, so the count moves with every image (not in steps of ``--chunk-size``) and the
ETA is the average time per image so far times the images left (not a rate measured over the last burst).

>>> p = ImageProgress(total=4, clock=iter([0.0, 1.0, 2.0, 4.0, 4.0]).__next__)
>>> p("prepared", 1); p("prepared", 1); p("scored", 2)
>>> p.done, p.eta()
(2.0, 4.0)
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

ProgressHook = Callable[[str, int], None]
STAGES = ("prepared", "scored")


class ImageProgress:
    """Callable progress sink: ``progress(stage, n)``; ``done`` (images, fractional) and ``eta()`` (seconds)."""

    def __init__(self, total: int, clock: Callable[[], float] = time.perf_counter) -> None:
        self.total = max(0, int(total))
        self.clock = clock
        self.start = clock()
        self.last = self.start
        self.counts = dict.fromkeys(STAGES, 0)
        self.seconds = dict.fromkeys(STAGES, 0.0)
        self.resumed = 0
        self._lock = threading.Lock()  # a staged pipeline reports from its worker threads

    def __call__(self, stage: str, n: int = 1) -> None:
        with self._lock:
            self._count(stage, n)

    def _count(self, stage: str, n: int) -> None:
        if stage == "resumed":  # done before this run: out of the work left and of the time per image
            n = min(n, self.total)
            self.total -= n
            self.resumed += n
            return
        if stage not in self.counts:
            raise ValueError(f"unknown progress stage {stage!r}; one of resumed, {', '.join(STAGES)}")
        now = self.clock()
        self.counts[stage] += n
        self.seconds[stage] += now - self.last
        self.last = now

    @property
    def share_prepare(self) -> float:
        """The measured share of an image's time spent before scoring (0.5 until both stages were seen)."""
        per = {s: self.seconds[s] / self.counts[s] for s in STAGES if self.counts[s]}
        if len(per) < 2 or sum(per.values()) <= 0:
            return 0.5
        return per["prepared"] / (per["prepared"] + per["scored"])

    @property
    def done(self) -> float:
        """Images done, counting a prepared but not yet scored image as its prepare share."""
        p = self.share_prepare
        scored = min(self.counts["scored"], self.total)
        prepared = min(max(self.counts["prepared"], scored), self.total)
        return scored + (prepared - scored) * p

    def eta(self) -> float | None:
        """Seconds left: the elapsed time per image done, times the images left (None before any progress)."""
        done = self.done
        if done <= 0:
            return None
        return (self.last - self.start) / done * max(self.total - done, 0.0)


def format_seconds(seconds: float | None) -> str:
    """``H:MM:SS`` (``-:--:--`` when unknown)."""
    if seconds is None:
        return "-:--:--"
    s = int(round(seconds))
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}"


class ProgressBar:
    """A terminal progress bar (rich) fed by a pipeline's progress events; use it as the ``progress`` hook.

    It moves per image and shows images done, elapsed time and :meth:`ImageProgress.eta`::

        with ProgressBar(len(sources)) as bar:
            run_local(iqa, sources, progress=bar)
    """

    def __init__(self, total: int, description: str = "scoring", console=None, disable: bool = False) -> None:
        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

        self.tracker = ImageProgress(total)
        self._progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            TextColumn("{task.fields[images]}"),
            TimeElapsedColumn(),
            TextColumn("ETA {task.fields[eta]}"),
            console=console,
            disable=disable,
        )
        self._task = self._progress.add_task(description, total=max(total, 1), images=f"0/{total}", eta="-:--:--")

    def __call__(self, stage: str, n: int = 1) -> None:
        self.tracker(stage, n)
        t = self.tracker
        self._progress.update(
            self._task,
            completed=t.resumed + t.done,
            images=f"{t.resumed + min(t.counts['scored'], t.total)}/{t.resumed + t.total}",
            eta=format_seconds(t.eta()),
        )

    def __enter__(self) -> ProgressBar:
        self._progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._progress.stop()
