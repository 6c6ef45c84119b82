"""Throughput of the serving paths; prints figures, asserts nothing.

1. Requests/s the OpenAI-compatible server backend sustains against the local test server
   (tests/serve/chat_server.py, same process) with N requests in flight, with and without a simulated
   per-request model latency.
2. With --ray: images/s of the local runner vs the Ray Data runner with the tiny Qwen2-VL fixture.

    python benchmarks/serve.py [--requests 256] [--concurrency 1 4 16 64] [--delay 0 0.02] [--ray]
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "src"), str(ROOT / "tests" / "serve")]

from chat_server import ChatServer, item_image  # noqa: E402

from dogiqa.backends.base import Prompt  # noqa: E402
from dogiqa.backends.openai_server import OpenAIServerBackend  # noqa: E402

PROMPT = Prompt(before_image="Rate:\n", after_image="\nOnly tell me the number.")
LEVELS = [str(k) for k in range(1, 8)]


def _serve(delay: float, conn) -> None:
    server = ChatServer()
    server.delay = delay
    conn.send(server.url)
    server.serve_forever(poll_interval=0.05)


@contextmanager
def server_process(delay: float) -> Iterator[str]:
    """The test server in a child process (its own GIL), yielding its base URL."""
    parent, child = mp.Pipe()
    proc = mp.get_context("fork").Process(target=_serve, args=(delay, child), daemon=True)
    proc.start()
    try:
        yield parent.recv()
    finally:
        proc.terminate()
        proc.join(5)


def bench_server(requests: int, concurrency: list[int], delays: list[float], side: int) -> None:
    images = [item_image(i, size=(side, side)) for i in range(requests)]
    print(f"server backend: {requests} requests of a {side}x{side} JPEG crop, test server in a child process")
    print(f"{'delay_ms':>8} {'N':>4} {'req/s':>8} {'p50_ms':>8} {'max_inflight':>12} {'errors':>6}")
    for delay in delays:
        for n in concurrency:
            with server_process(delay) as url:
                with OpenAIServerBackend("tiny-vlm", url, concurrency=n, timeout=30) as be:
                    be.run(images[: min(n, 8)], PROMPT, LEVELS)  # warm the connection pool
                    start = time.perf_counter()
                    outs = be.run(images, PROMPT, LEVELS)
                    wall = time.perf_counter() - start
                    stats = httpx.get(url.removesuffix("/v1") + "/stats").json()
                lat = sorted(o.meta.get("latency_s", 0.0) for o in outs)
                errors = sum(o.error is not None for o in outs)
                print(
                    f"{delay * 1000:>8.0f} {n:>4} {requests / wall:>8.1f} {lat[len(lat) // 2] * 1000:>8.1f}"
                    f" {stats['max_inflight']:>12} {errors:>6}"
                )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests", type=int, default=256)
    ap.add_argument("--concurrency", type=int, nargs="+", default=[1, 4, 16, 64])
    ap.add_argument("--delay", type=float, nargs="+", default=[0.0, 0.02])
    ap.add_argument("--side", type=int, default=256)
    ap.add_argument("--ray", action="store_true", help="also compare the local and Ray runners")
    ap.add_argument("--images", type=int, default=48, help="images for the runner comparison")
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2], help="Ray actor counts to compare")
    ap.add_argument("--no-server", action="store_true", help="skip the server backend benchmark")
    args = ap.parse_args()
    if not args.no_server:
        bench_server(args.requests, args.concurrency, args.delay, args.side)
    if args.ray:
        bench_runners(args.images, args.workers)


def bench_runners(n_images: int, workers: list[int]) -> None:
    """Local runner vs Ray runner on the tiny Qwen2-VL (felzenszwalb regions), wall time from a cold start."""
    import os
    import tempfile

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    import torch

    from dogiqa.api import DogIQA
    from dogiqa.runners.local import run_local
    from dogiqa.runners.ray import run_ray
    from dogiqa.testing import build_tiny_qwen2vl
    from dogiqa.testing.images import make_image

    torch.set_num_threads(1)
    tmp = Path(tempfile.mkdtemp(prefix="dogiqa-bench-"))
    model = build_tiny_qwen2vl(tmp / "model", seed=0, digit_scale=30.0)
    folder = tmp / "images"
    folder.mkdir()
    for i in range(n_images):
        make_image(160, 120, seed=i).save(folder / f"{i:04d}.png")
    paths = sorted(str(p) for p in folder.iterdir())
    kwargs = dict(
        preset="recommended", model=str(model), segmenter="felzenszwalb", device="cpu", dtype="float32", chunk_size=4
    )
    print(f"\nrunners: {n_images} images 160x120, tiny Qwen2-VL, felzenszwalb regions, chunk 4, 1 torch thread")
    print(f"{'runner':>18} {'wall_s':>8} {'img/s':>7} {'first_s':>8} {'steady img/s':>13}")
    stamps: list[float] = []

    def line(name: str, start: float) -> None:
        wall = stamps[-1] - start
        first, rest = stamps[0] - start, stamps[-1] - stamps[0]
        steady = (len(stamps) - 1) / rest if rest > 0 else float("nan")
        print(f"{name:>18} {wall:>8.1f} {len(stamps) / wall:>7.2f} {first:>8.1f} {steady:>13.2f}")

    start = time.perf_counter()
    run_local(DogIQA.from_preset(**kwargs), paths, on_result=lambda r: stamps.append(time.perf_counter()))
    line("local", start)
    for n in workers:
        stamps.clear()
        start = time.perf_counter()
        run_ray(
            paths,
            tmp / f"ray{n}",
            kwargs,
            num_workers=n,
            batch_size=4,
            ray_init_kwargs={"num_cpus": max(2, n)},
            on_result=lambda r: stamps.append(time.perf_counter()),
        )
        line(f"ray {n} worker(s)", start)


if __name__ == "__main__":
    main()
