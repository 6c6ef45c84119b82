"""The HTML report in a real browser (Debian's chromium, headless): the DOM after the page's scripts ran has
the table, decoded thumbnails, sorting and filtering (driven through the URL fragment, as a user shares a view).
"""

from __future__ import annotations

from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from dogiqa.report.html import write_report
from dogiqa.results import ImageResult, RegionRecord
from dogiqa.testing.browser import dump_dom, find_chromium

pytestmark = pytest.mark.skipif(find_chromium() is None, reason="chromium not installed (apt-get install chromium)")


class _Dom(HTMLParser):
    """Body attributes and the table rows (attributes + cell data-v values) of a dumped DOM."""

    def __init__(self) -> None:
        super().__init__()
        self.body: dict[str, str | None] = {}
        self.rows: list[dict] = []
        self._in_body = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "body":
            self.body = a
        elif tag == "tbody":
            self._in_body = True
        elif tag == "tr" and self._in_body:
            self.rows.append({"attrs": a, "cells": []})
        elif tag == "td" and self.rows:
            self.rows[-1]["cells"].append(a.get("data-v"))

    def handle_endtag(self, tag: str) -> None:
        if tag == "tbody":
            self._in_body = False


def _image(seed: int) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (60, 80, 3), dtype=np.uint8))


def _result(name: str, score: float | None, error: str | None = None) -> ImageResult:
    regions = (
        []
        if score is None
        else [
            RegionRecord(0, "mask", (0, 0, 40, 30), 1200.0, 1200, score=score),
            RegionRecord(1, "mask", (40, 30, 80, 60), 1200.0, 1200, score=None, error="not scorable: too small"),
            RegionRecord(2, "complement", (0, 0, 80, 60), 2400.0, 2400, score=score + 1),
        ]
    )
    config = {
        "scorer": "mllm",
        "model": "tiny-vlm",
        "readout": "expected",
        "levels": 7,
        "segmenter": "slic",
        "aggregation": "paper",
    }
    return ImageResult(path=name, score=score, global_score=score, regions=regions, error=error, config=config)


@pytest.fixture(scope="module")
def page(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("report")
    results = [
        _result("photos/beach.jpg", 5.5),
        _result("photos/beach-blur.jpg", 2.25),
        _result("photos/dog.png", 6.75),
        _result("photos/dog-blur.png", 3.0),
        _result("photos/gone.png", None, error="photos/gone.png: file not found"),
    ]
    images: list = [_image(i) for i in range(4)] + [out / "gone.png"]
    return write_report(results, images, out, title="browser check")


def _dom(page: Path, fragment: str = "") -> _Dom:
    dom = _Dom()
    dom.feed(dump_dom(page.as_uri() + fragment))
    return dom


def test_table_and_thumbnails_render(page: Path) -> None:
    dom = _dom(page)
    assert dom.body.get("data-ready") == "1"
    assert len(dom.rows) == 5
    assert dom.body.get("data-images-ok") == "4"  # every scored image's thumbnail decoded in the browser
    assert dom.body.get("data-shown") == "5"
    failed = [r for r in dom.rows if r["attrs"]["data-status"] == "failed"]
    assert len(failed) == 1 and failed[0]["cells"][-1] == "file not found"  # one line, no doubled path


def test_sorting_by_score_both_ways(page: Path) -> None:
    asc = _dom(page, "#sort=score:asc")
    assert asc.body.get("data-sorted") == "score:asc"
    scores = [r["cells"][3] for r in asc.rows]
    assert scores == ["2.25", "3.0", "5.5", "6.75", ""]  # no score last
    desc = _dom(page, "#sort=score:desc")
    assert [r["cells"][3] for r in desc.rows] == ["6.75", "5.5", "3.0", "2.25", ""]


def test_filtering_by_text_and_status(page: Path) -> None:
    blur = _dom(page, "#q=blur")
    shown = [r["cells"][2] for r in blur.rows if "hidden" not in r["attrs"]]
    assert blur.body.get("data-shown") == "2" and shown == ["photos/beach-blur.jpg", "photos/dog-blur.png"]
    failed = _dom(page, "#status=failed")
    assert failed.body.get("data-shown") == "1"
    assert [r["cells"][2] for r in failed.rows if "hidden" not in r["attrs"]] == ["photos/gone.png"]
