"""The page at `/` in a real browser (Debian's chromium, headless) against a real server: pick a file, see it scored."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest
from headless import Browser, find_browser
from http_helpers import image_bytes, real_server

BROWSER = find_browser()
pytestmark = pytest.mark.skipif(BROWSER is None, reason="no chromium: apt-get install -y chromium")


@pytest.fixture
def browser(tmp_path: Path):
    b = Browser(BROWSER, tmp_path / "profile")
    try:
        yield b
    finally:
        b.close()


def test_page_scores_a_picked_image_and_shows_map_and_regions(serve_iqa, browser, tmp_path: Path):
    photo = tmp_path / "photo.png"
    photo.write_bytes(image_bytes(200, 150, seed=7))
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not a jpeg")
    with real_server(lambda: serve_iqa) as (url, _):
        deadline = time.monotonic() + 60
        while httpx.get(f"{url}/healthz").status_code != 200:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        want = httpx.post(f"{url}/v1/score", content=photo.read_bytes(), timeout=60).json()
        page = browser.open_page(url + "/")
        page.wait_for("document.getElementById('health').textContent === 'server: ready'")
        page.pick_file("#file", photo)
        done = "['scored', 'error'].includes(document.body.dataset.state) && document.body.dataset.state"
        assert page.wait_for(done) == "scored", page.eval("document.getElementById('error').textContent")
        shown = page.eval(
            """({score: document.getElementById('score').textContent,
                 global: document.getElementById('global').textContent,
                 rows: [...document.querySelectorAll('#regions tbody tr')].map(r => r.cells[4].textContent),
                 mapWidth: document.getElementById('overlay').naturalWidth,
                 mapShown: getComputedStyle(document.getElementById('overlay')).display !== 'none',
                 status: document.getElementById('status').textContent})"""
        )
        page.pick_file("#file", broken)
        page.wait_for("document.body.dataset.state === 'error'")
        error = page.eval("document.getElementById('error').textContent")
    assert shown["score"] == f"{want['score']:.3f}" and shown["global"] == f"{want['global_score']:.3f}"
    assert shown["rows"] == [f"{r['score']:.3f}" for r in want["regions"]] and len(shown["rows"]) >= 1
    assert shown["mapWidth"] == 200 and shown["mapShown"]
    assert shown["status"] == "photo.png: scored"
    assert error.startswith("400: broken.jpg: not an image")
