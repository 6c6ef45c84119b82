"""The HTTP API contract, in process: every status code, token enforcement, caps, queue overflow."""

from __future__ import annotations

import asyncio
import io
import threading

import httpx
import numpy as np
import pytest
from http_helpers import Gated, client_for, image_bytes
from PIL import Image

from dogiqa.api import DogIQA
from dogiqa.results import ImageResult
from dogiqa.serve import ServeSettings, create_app
from dogiqa.testing.images import make_image

TOKEN = "s3cret-token-for-tests"
RECORD_KEYS = set(ImageResult(path="x").to_dict())  # the schema every sink writes


def run(coro):
    return asyncio.run(coro)


def app_for(iqa, **settings):
    return create_app(lambda: iqa, ServeSettings(**settings))


def test_score_returns_the_pipelines_record_for_raw_and_multipart(serve_iqa):
    data = image_bytes(120, 90, seed=1)
    want = serve_iqa.score(Image.open(io.BytesIO(data))).to_dict()

    async def go():
        async with client_for(app_for(serve_iqa)) as c:
            raw = await c.post("/v1/score?name=cat.png", content=data, headers={"Content-Type": "image/png"})
            form = await c.post("/v1/score", files={"file": ("dir/dog.png", data, "image/png")})
            octet = await c.post("/v1/score", content=data)  # no content type: bytes as they are
            return raw, form, octet

    raw, form, octet = run(go())
    for response, name in ((raw, "cat.png"), (form, "dog.png"), (octet, "upload")):
        assert response.status_code == 200, response.text
        got = response.json()
        assert set(got) == RECORD_KEYS  # the CLI's record schema, nothing else unless asked
        assert got["path"] == name
        assert got["score"] == pytest.approx(want["score"], abs=1e-6) and got["score"] is not None
        assert [r["box"] for r in got["regions"]] == [list(r["box"]) for r in want["regions"]]
        assert got["config"] == want["config"] and (got["width"], got["height"]) == (120, 90)


def test_healthz_and_503_while_loading_then_ready():
    gate = threading.Event()
    iqa = DogIQA(scorer="niqe", segmenter="none", aggregation="global")

    def factory():
        assert gate.wait(30)
        return iqa

    async def go():
        app = create_app(factory, ServeSettings())
        async with client_for(app, ready=False) as c:
            loading = await c.get("/healthz")
            score = await c.post("/v1/score", content=image_bytes())
            config = await c.get("/v1/config")
            gate.set()
            for _ in range(500):
                ready = await c.get("/healthz")
                if ready.status_code == 200:
                    break
                await asyncio.sleep(0.01)
            after = await c.post("/v1/score", content=image_bytes(200, 200))  # NIQE needs 192+ pixels
            return loading, score, config, ready, after

    loading, score, config, ready, after = run(go())
    assert loading.status_code == 503 and loading.json() == {"status": "loading"}
    assert score.status_code == 503 and score.headers["Retry-After"] and "loading" in score.json()["error"]["message"]
    assert config.status_code == 503
    assert ready.status_code == 200 and ready.json() == {"status": "ready"}
    assert after.status_code == 200 and after.json()["score"] is not None


def test_load_failure_is_reported_and_signalled():
    failures = []

    def factory():
        raise FileNotFoundError("no model at /nowhere")

    async def go():
        app = create_app(factory, ServeSettings(), on_load_failure=failures.append)
        async with client_for(app, ready=False) as c:
            for _ in range(500):
                if failures:
                    break
                await asyncio.sleep(0.01)
            return await c.get("/healthz"), await c.post("/v1/score", content=image_bytes())

    health, score = run(go())
    assert failures and "no model at /nowhere" in failures[0]
    assert health.status_code == 503 and health.json() == {"status": "failed"}
    assert score.status_code == 503 and "failed to load" in score.json()["error"]["message"]


def test_bad_images_are_400_and_non_image_bodies_415(serve_iqa):
    async def go():
        async with client_for(app_for(serve_iqa)) as c:
            return (
                await c.post("/v1/score?name=x.jpg", content=b"not an image", headers={"Content-Type": "image/jpeg"}),
                await c.post("/v1/score", content=b""),
                await c.post("/v1/score", content=image_bytes(fmt="PNG")[:60], headers={"Content-Type": "image/png"}),
                await c.post("/v1/score", data={"note": "no file"}, files={"other": ("", b"", "text/plain")}),
                await c.post("/v1/score", json={"url": "http://127.0.0.1:1/cat.jpg"}),
            )  # fmt: skip

    garbage, empty, truncated, nofile, url = run(go())
    assert garbage.status_code == 400 and garbage.json()["error"]["message"].startswith("x.jpg: not an image")
    assert empty.status_code == 400 and "empty" in empty.json()["error"]["message"]
    assert truncated.status_code == 400 and truncated.json()["error"]["status"] == 400
    assert nofile.status_code == 400
    assert url.status_code == 415 and "URLs are never fetched" in url.json()["error"]["message"]


def test_token_is_enforced_on_the_api_not_on_health_or_page(serve_iqa):
    async def go():
        async with client_for(app_for(serve_iqa, token=TOKEN)) as c:
            auth = {"Authorization": f"Bearer {TOKEN}"}
            return {
                "none": await c.post("/v1/score", content=image_bytes()),
                "wrong": await c.post("/v1/score", content=image_bytes(), headers={"Authorization": "Bearer nope"}),
                "basic": await c.get("/v1/config", headers={"Authorization": f"Basic {TOKEN}"}),
                "config": await c.get("/v1/config"),
                "batch": await c.post("/v1/score/batch", files=[("files", ("a.png", image_bytes(), "image/png"))]),
                "overlay": await c.post("/v1/overlay", content=image_bytes()),
                "ok": await c.post("/v1/score", content=image_bytes(), headers=auth),
                "config_ok": await c.get("/v1/config", headers=auth),
                "health": await c.get("/healthz"),
                "page": await c.get("/"),
            }

    r = run(go())
    for key in ("none", "wrong", "basic", "config", "batch", "overlay"):
        assert r[key].status_code == 401, key
        assert r[key].headers["WWW-Authenticate"] == "Bearer" and r[key].json()["error"]["status"] == 401
    assert r["ok"].status_code == 200 and r["config_ok"].status_code == 200
    assert TOKEN not in r["config_ok"].text and r["config_ok"].json()["service"]["auth"] is True
    assert r["health"].status_code == 200 and r["page"].status_code == 200


def test_body_pixel_and_file_count_caps_are_413(serve_iqa):
    big = image_bytes(400, 300, seed=2, fmt="BMP")  # 360 kB uncompressed
    bomb = io.BytesIO()
    Image.new("L", (6000, 6000)).save(bomb, "PNG")  # 36 MP of zeros: a few kB on the wire

    async def chunks():
        for i in range(0, len(big), 4096):
            yield big[i : i + 4096]

    async def go():
        app = app_for(serve_iqa, max_body_bytes=100_000, max_pixels=1_000_000, max_files=2)
        async with client_for(app) as c:
            many = [("files", (f"{i}.png", image_bytes(seed=i), "image/png")) for i in range(3)]
            return (
                await c.post("/v1/score", content=big, headers={"Content-Type": "image/bmp"}),
                await c.post("/v1/score", content=chunks(), headers={"Content-Type": "image/bmp"}),  # no length
                await c.post("/v1/score", content=bomb.getvalue(), headers={"Content-Type": "image/png"}),
                await c.post("/v1/score/batch", files=many),
                await c.post("/v1/score", content=image_bytes(), headers={"Content-Type": "image/png"}),
            )

    sized, streamed, pixels, files, fine = run(go())
    assert len(bomb.getvalue()) < 100_000
    for response in (sized, streamed, pixels, files):
        assert response.status_code == 413, response.text
        assert response.json()["error"]["status"] == 413
    assert "36,000,000 pixels" in pixels.json()["error"]["message"]
    assert "3 images" in files.json()["error"]["message"]
    assert fine.status_code == 200


def test_full_queue_is_429_with_retry_after_and_queued_work_still_finishes(serve_iqa):
    gated = Gated(serve_iqa)

    async def go():
        app = create_app(lambda: gated, ServeSettings(max_batch=1, max_wait_ms=0, max_queue=1, max_files=1))
        async with client_for(app) as c:
            first = asyncio.create_task(c.post("/v1/score", content=image_bytes(seed=1)))
            while not gated.started.is_set():  # the worker holds the first image
                await asyncio.sleep(0.01)
            second = asyncio.create_task(c.post("/v1/score", content=image_bytes(seed=2)))  # waits in the queue
            while app.state.service.batcher.waiting < 1:
                await asyncio.sleep(0.01)
            third = await c.post("/v1/score", content=image_bytes(seed=3))
            batch = await c.post("/v1/score/batch", files=[("files", ("b.png", image_bytes(), "image/png"))])
            gated.gate.set()
            return third, batch, await first, await second

    third, batch, first, second = run(go())
    assert third.status_code == 429 and int(third.headers["Retry-After"]) >= 1
    assert "queue is full" in third.json()["error"]["message"]
    assert batch.status_code == 429
    assert first.status_code == 200 and second.status_code == 200
    assert first.json()["score"] != second.json()["score"]  # each caller got its own record
    assert gated.batches == [1, 1]


def test_batch_endpoint_keeps_order_and_records_bad_files(serve_iqa):
    images = [image_bytes(90 + 10 * i, 70, seed=10 + i) for i in range(3)]
    want = [serve_iqa.score(Image.open(io.BytesIO(d))).score for d in images]

    async def go():
        async with client_for(app_for(serve_iqa)) as c:
            files = [("files", (f"{i}.png", d, "image/png")) for i, d in enumerate(images)]
            files.insert(1, ("files", ("broken.jpg", b"\xff\xd8 nope", "image/jpeg")))
            return (
                await c.post("/v1/score/batch", files=files),
                await c.post("/v1/score/batch", content=images[0], headers={"Content-Type": "image/png"}),
                await c.post("/v1/score/batch", data={"x": "1"}, files={"y": ("", b"", "text/plain")}),
            )

    ok, raw, empty = run(go())
    assert ok.status_code == 200
    records = ok.json()["results"]
    assert [r["path"] for r in records] == ["0.png", "broken.jpg", "1.png", "2.png"]
    assert records[1]["score"] is None and records[1]["error"].startswith("broken.jpg: ")
    assert set(records[1]) == RECORD_KEYS
    got = [r["score"] for i, r in enumerate(records) if i != 1]
    assert got == pytest.approx(want, abs=1e-6)
    assert raw.status_code == 415 and empty.status_code == 400


def test_overlay_as_png_and_inline(serve_iqa):
    data = image_bytes(160, 120, seed=4)

    async def go():
        async with client_for(app_for(serve_iqa)) as c:
            png = await c.post("/v1/overlay", content=data, headers={"Content-Type": "image/png"})
            inline = await c.post("/v1/score?overlay=true", content=data)
            return png, inline

    png, inline = run(go())
    assert png.status_code == 200 and png.headers["content-type"] == "image/png"
    drawn = Image.open(io.BytesIO(png.content))
    assert drawn.size == (160, 120)
    original = np.asarray(make_image(160, 120, seed=4), dtype=float)
    assert np.abs(np.asarray(drawn.convert("RGB"), dtype=float) - original).mean() > 1  # something was drawn
    record = inline.json()
    assert float(png.headers["X-DogIQA-Score"]) == pytest.approx(record["score"], abs=1e-6)
    import base64

    assert Image.open(io.BytesIO(base64.b64decode(record.pop("overlay_png")))).size == (160, 120)
    assert set(record) == RECORD_KEYS


def test_a_record_with_an_error_is_422_with_the_record():
    class FailingSegmenter:
        name = "failing"

        def segment(self, image):
            raise RuntimeError("segmenter exploded")

    iqa = DogIQA(scorer="niqe", segmenter=FailingSegmenter(), aggregation="paper")

    async def go():
        async with client_for(app_for(iqa)) as c:
            return await c.post("/v1/score?name=a.png", content=image_bytes())

    r = run(go())
    assert r.status_code == 422
    body = r.json()
    assert "segmenter exploded" in body["error"]["message"] and body["record"]["path"] == "a.png"
    assert body["record"]["error"].startswith("a.png: segmentation failed")


def test_config_openapi_docs_and_page(serve_iqa):
    async def go():
        async with client_for(app_for(serve_iqa, max_batch=4)) as c:
            return await c.get("/v1/config"), await c.get("/openapi.json"), await c.get("/docs"), await c.get("/")

    config, openapi, docs, page = run(go())
    assert config.json()["pipeline"] == serve_iqa.config
    assert config.json()["service"]["max_batch"] == 4 and "token" not in config.json()["service"]
    paths = openapi.json()["paths"]
    assert {"/v1/score", "/v1/score/batch", "/v1/overlay", "/v1/config", "/healthz"} <= set(paths)
    assert "multipart/form-data" in paths["/v1/score"]["post"]["requestBody"]["content"]
    assert "429" in paths["/v1/score"]["post"]["responses"]
    assert docs.status_code == 200 and "swagger" in docs.text.lower()
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert 'type="file"' in page.text and "/v1/score" in page.text
    assert "http://" not in page.text and "https://" not in page.text  # no CDN: the page is self-contained


def test_unknown_route_and_bad_query_are_json_errors(serve_iqa):
    async def go():
        async with client_for(app_for(serve_iqa)) as c:
            return await c.get("/v1/nothing"), await c.post("/v1/score?overlay=maybe", content=image_bytes())

    missing, bad = run(go())
    assert missing.status_code == 404 and missing.json()["error"]["status"] == 404
    assert bad.status_code == 422 and "overlay" in bad.json()["error"]["message"]


def test_httpx_is_the_client_used():  # the tests rely on httpx's ASGI transport
    assert hasattr(httpx, "ASGITransport")
