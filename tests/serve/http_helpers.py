"""Shared pieces of the HTTP service tests: a tiny real pipeline, encoded images, in-process and real servers."""

from __future__ import annotations

import asyncio
import io
import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from dogiqa.api import DogIQA
from dogiqa.serve import ServeSettings
from dogiqa.serve.server import bind, build_server
from dogiqa.testing.images import make_image

# the pipeline options the tests give both the CLI (as flags) and the service
PIPELINE = {"preset": "recommended", "segmenter": "felzenszwalb", "device": "cpu", "dtype": "float32"}


def cli_flags(model: Path) -> list[str]:
    flags = ["--model", str(model)]
    for key, value in PIPELINE.items():
        flags += [f"--{key}", value]
    return flags


def tiny_pipeline(model: Path, **overrides: Any) -> DogIQA:
    options = {k: v for k, v in PIPELINE.items() if k != "preset"}
    return DogIQA.from_preset(PIPELINE["preset"], model=str(model), keep_masks=True, **{**options, **overrides})


@pytest.fixture(scope="session")
def serve_iqa(tiny_qwen2vl_dir: Path) -> DogIQA:
    """The tiny Qwen2-VL pipeline with Felzenszwalb regions (built once; the services under test share it)."""
    return tiny_pipeline(tiny_qwen2vl_dir)


def image_bytes(width: int = 96, height: int = 80, seed: int = 0, fmt: str = "PNG") -> bytes:
    buf = io.BytesIO()
    make_image(width, height, seed=seed).save(buf, fmt)
    return buf.getvalue()


class Gated:
    """A pipeline whose scoring waits until ``gate`` is set (to hold work in flight); counts batches."""

    def __init__(self, iqa: DogIQA):
        self.iqa, self.gate, self.batches = iqa, threading.Event(), []
        self.started = threading.Event()
        self.config = iqa.config

    def score_many(self, images: list) -> list:
        self.batches.append(len(images))
        self.started.set()
        assert self.gate.wait(60), "test gate never opened"
        return list(self.iqa.score_many(images))


@asynccontextmanager
async def client_for(app, ready: bool = True, **kwargs: Any) -> AsyncIterator[httpx.AsyncClient]:
    """An async client talking to ``app`` in process, with the app's startup and shutdown run around it."""
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test", timeout=60, **kwargs) as client:
            if ready:
                await wait_ready(client)
            yield client


async def wait_ready(client: httpx.AsyncClient, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while (await client.get("/healthz")).status_code != 200:
        assert time.monotonic() < deadline, "the service never became ready"
        await asyncio.sleep(0.02)


@contextmanager
def real_server(factory, **settings: Any) -> Iterator[tuple[str, Any]]:
    """uvicorn on 127.0.0.1 (a free port chosen by the kernel) in a thread; yields (base URL, uvicorn server)."""
    s = ServeSettings(host="127.0.0.1", port=0, **settings)
    sock = bind(s.host, s.port)
    server, _ = build_server(factory, s, log_level="warning")
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    try:
        deadline = time.monotonic() + 60
        while not server.started:
            assert time.monotonic() < deadline and thread.is_alive(), "uvicorn did not start"
            time.sleep(0.02)
        yield url, server
    finally:
        server.should_exit = True
        thread.join(60)
        sock.close()
