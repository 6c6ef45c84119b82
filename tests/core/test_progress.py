"""Per-image progress and its ETA: events from the pipeline, not bursts of --chunk-size."""

from __future__ import annotations

import doctest

import numpy as np
import pytest
from PIL import Image

import dogiqa.progress
from dogiqa.api import DogIQA
from dogiqa.progress import ImageProgress, format_seconds
from dogiqa.scorers.base import CropScore


class _Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_doctest() -> None:
    assert doctest.testmod(dogiqa.progress).failed == 0


def test_eta_is_right_when_a_chunk_is_prepared_but_not_yet_scored() -> None:
    """30 images, chunks of 8: 1 s to prepare each image, 0.5 s per image to score a chunk (45 s in all)."""
    clock = _Clock()
    p = ImageProgress(30, clock=clock)
    for chunk in (8, 8):
        for _ in range(chunk):
            clock.now += 1.0
            p("prepared")
        clock.now += 0.5 * chunk
        p("scored", chunk)
    assert p.done == pytest.approx(16.0) and p.eta() == pytest.approx(14 * 1.5)  # steady state: exact
    for _ in range(3):  # 3 images of the third chunk prepared: the count moves per image
        clock.now += 1.0
        p("prepared")
    assert p.done == pytest.approx(16 + 3 * (1.0 / 1.5))
    # true time left at t = 27 s: 5 prepares (5 s) + scoring that chunk (4 s) + the last 6 images (9 s)
    assert p.eta() == pytest.approx(18.0)


def test_first_events_and_unknown_stage() -> None:
    clock = _Clock()
    p = ImageProgress(4, clock=clock)
    assert p.done == 0 and p.eta() is None and format_seconds(None) == "-:--:--"
    clock.now = 2.0
    p("prepared")
    assert p.done == pytest.approx(0.5) and p.eta() == pytest.approx(2.0 / 0.5 * 3.5)
    with pytest.raises(ValueError, match="stage"):
        p("loaded")
    assert format_seconds(3725) == "1:02:05"


class _Const:
    name, higher_is_better, score_range = "const", True, (1.0, 7.0)

    def score_crops(self, crops):
        return [CropScore(score=4.0) for _ in crops]


def test_pipeline_reports_every_image_before_its_chunk_is_yielded() -> None:
    events: list[tuple[str, int]] = []
    iqa = DogIQA(scorer=_Const(), segmenter="none", aggregation="global", chunk_size=4, staged=False)
    images = [Image.fromarray(np.full((32, 32, 3), i * 20, np.uint8)) for i in range(6)]
    seen_before_results = []
    for result in iqa.score_many(images, progress=lambda stage, n: events.append((stage, n))):
        seen_before_results.append(len(events))
        assert result.ok
    assert events == [("prepared", 1)] * 4 + [("scored", 4)] + [("prepared", 1)] * 2 + [("scored", 2)]
    assert seen_before_results[0] == 5  # the first 4 results come after their 4 prepares and 1 scored event


def test_resumed_images_are_done_but_do_not_shorten_the_eta() -> None:
    clock = _Clock()
    p = ImageProgress(10, clock=clock)
    p("resumed", 6)
    assert p.total == 4 and p.resumed == 6 and p.done == 0
    clock.now = 2.0
    p("prepared")
    clock.now = 3.0
    p("scored", 1)
    assert p.done == pytest.approx(1.0) and p.eta() == pytest.approx(3 * 3.0)  # 3 s per image, 3 left


def test_progress_bar_renders_images_and_eta() -> None:
    import io

    from rich.console import Console

    from dogiqa.progress import ProgressBar

    out = io.StringIO()
    with ProgressBar(3, "scoring", console=Console(file=out, force_terminal=False, width=100)) as bar:
        bar("resumed", 1)
        bar("prepared", 1)
        bar("scored", 1)
    assert bar.tracker.resumed == 1 and bar.tracker.counts["scored"] == 1
    assert "2/3" in out.getvalue() and "ETA" in out.getvalue()


def test_staged_pipeline_reports_every_image_too() -> None:
    """The staged pipeline (default) overlaps the stages; every image is still prepared and scored once."""
    events: list[tuple[str, int]] = []
    iqa = DogIQA(scorer=_Const(), segmenter="slic", aggregation="paper", chunk_size=2)
    images = [Image.fromarray(np.random.default_rng(i).integers(0, 256, (64, 64, 3), np.uint8)) for i in range(5)]
    results = list(iqa.score_many(images, progress=lambda stage, n: events.append((stage, n))))
    assert len(results) == 5 and all(r.ok for r in results)
    assert sum(n for s, n in events if s == "prepared") == 5 and sum(n for s, n in events if s == "scored") == 5
