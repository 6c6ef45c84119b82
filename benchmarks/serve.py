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
    ap.add_argument("--images", type=int, default=24, help="images for the runner comparison")
    args = ap.parse_args()
    bench_server(args.requests, args.concurrency, args.delay, args.side)
    if args.ray:
        bench_runners(args.images)


def bench_runners(n_images: int) -> None:
    raise SystemExit("the runner comparison needs dogiqa.runners.ray (not written yet)")


if __name__ == "__main__":
    main()
