"""Load test of the HTTP service (`dogiqa serve`) with the tiny Qwen2-VL model; prints figures, asserts nothing.

Starts the service on 127.0.0.1 (a free port) in a child process, runs C concurrent clients x R requests each
over a pool of distinct images, and compares every returned record with the record `dogiqa score` wrote for
the same image and configuration. Prints lost requests, records different from the CLI's, p50/p99 latency,
throughput, the same load with batching off (max batch 1) and the sequential CLI's throughput on the same
images. Bounded: every phase stops after --time-limit seconds; the whole run stops by itself.

    OMP_NUM_THREADS=1 python benchmarks/serve_load.py [--clients 16] [--requests 200] [--images 32]
        [--segmenter none] [--max-batch 8] [--max-wait-ms 10] [--time-limit 300]
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import multiprocessing as mp
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
REF_CHUNK = 8  # the CLI reference run's --chunk-size; the service is configured the same way
sys.path[:0] = [str(ROOT / "src")]


def pipeline_flags(model: Path, segmenter: str) -> list[str]:
    return ["--model", str(model), "--segmenter", segmenter, "--device", "cpu", "--dtype", "float32"]


def _serve(model: str, segmenter: str, max_batch: int, max_wait_ms: float, conn) -> None:
    """The child process: the service on 127.0.0.1, port chosen by the kernel and sent back to the parent."""
    import torch

    from dogiqa.api import DogIQA
    from dogiqa.serve import ServeSettings
    from dogiqa.serve.server import bind, build_server

    torch.set_num_threads(1)
    settings = ServeSettings(host="127.0.0.1", port=0, max_batch=max_batch, max_wait_ms=max_wait_ms, max_queue=256)
    sock = bind(settings.host, settings.port)
    conn.send(sock.getsockname()[1])

    def factory():
        return DogIQA.from_preset(
            "recommended", model=model, segmenter=segmenter, device="cpu", dtype="float32", chunk_size=REF_CHUNK
        )

    server, _ = build_server(factory, settings, log_level="warning")
    server.run(sockets=[sock])


class Service:
    def __init__(self, model: Path, segmenter: str, max_batch: int, max_wait_ms: float):
        ctx = mp.get_context("spawn")
        parent, child = ctx.Pipe()
        self.proc = ctx.Process(target=_serve, args=(str(model), segmenter, max_batch, max_wait_ms, child))
        self.proc.start()
        if not parent.poll(120):
            raise RuntimeError("the service did not start")
        self.url = f"http://127.0.0.1:{parent.recv()}"
        deadline = time.monotonic() + 120
        while True:
            try:
                if httpx.get(f"{self.url}/healthz", timeout=5).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline or not self.proc.is_alive():
                raise RuntimeError("the service did not become ready")
            time.sleep(0.1)

    def stats(self) -> dict:
        return httpx.get(f"{self.url}/v1/config", timeout=10).json()["batching"]

    def stop(self) -> None:
        self.proc.terminate()  # SIGTERM: graceful shutdown
        self.proc.join(60)
        if self.proc.is_alive():
            self.proc.kill()


async def load(url: str, images: list[tuple[str, bytes]], clients: int, requests: int, time_limit: float) -> dict:
    latencies: list[float] = []
    records: list[tuple[str, dict]] = []
    failures: list[str] = []
    retried: list[str] = []
    stop_at = time.monotonic() + time_limit
    sent = 0

    async def client(c: int, http: httpx.AsyncClient) -> None:
        nonlocal sent
        for r in range(requests):
            if time.monotonic() > stop_at:
                return
            name, data = images[(c * requests + r) % len(images)]
            sent += 1
            start = time.perf_counter()
            try:
                resp = await http.post(f"{url}/v1/score?name={name}", content=data)
            except (httpx.ReadError, httpx.RemoteProtocolError) as exc:  # a dropped kept-alive connection
                retried.append(f"{name}: {type(exc).__name__}")
                try:
                    resp = await http.post(f"{url}/v1/score?name={name}", content=data)
                except httpx.HTTPError as again:
                    failures.append(f"{name}: {type(again).__name__} after a retry")
                    continue
            except httpx.HTTPError as exc:
                failures.append(f"{name}: {type(exc).__name__}")
                continue
            latencies.append(time.perf_counter() - start)
            if resp.status_code == 200:
                records.append((name, resp.json()))
            else:
                failures.append(f"{name}: HTTP {resp.status_code}")

    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(timeout=120, limits=limits) as http:
        start = time.perf_counter()
        await asyncio.gather(*(client(c, http) for c in range(clients)))
        seconds = time.perf_counter() - start
    return {"sent": sent, "records": records, "failures": failures, "retried": retried, "latencies": latencies,
            "seconds": seconds}  # fmt: skip


def compare(records: list[tuple[str, dict]], reference: dict[str, dict]) -> tuple[int, int, float]:
    """(records different from the CLI's beyond 1e-6, records bit-identical to it, largest |difference|)."""
    different = identical = 0
    worst = 0.0
    for name, got in records:
        want = reference[name]
        pairs = [(got["score"], want["score"]), (got["global_score"], want["global_score"])]
        pairs += [(a["score"], b["score"]) for a, b in zip(got["regions"], want["regions"], strict=False)]
        same_shape = len(got["regions"]) == len(want["regions"]) and got["config"] == want["config"]
        diffs = [abs(a - b) for a, b in pairs if a is not None and b is not None]
        worst = max([worst, *diffs])
        if not same_shape or any(d > 1e-6 for d in diffs) or any((a is None) != (b is None) for a, b in pairs):
            different += 1
        elif all(a == b for a, b in pairs):
            identical += 1
    return different, identical, worst


def percentile(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1] if len(values) > 1 else values[0]


def run_cli(folder: Path, model: Path, segmenter: str, out: Path, chunk_size: int) -> float:
    """`dogiqa score` over the folder; returns the scoring seconds it reports (model loading excluded)."""
    cmd = [sys.executable, "-m", "dogiqa.cli", "score", str(folder), *pipeline_flags(model, segmenter)]
    cmd += ["--chunk-size", str(chunk_size), "-o", str(out), "--quiet"]
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "HF_HUB_OFFLINE": "1"}
    res = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=900)
    found = re.search(r"(\d+) scored, (\d+) failed.*?([\d.]+) s", res.stdout + res.stderr)
    if res.returncode != 0 or not found:
        raise RuntimeError(f"dogiqa score failed ({res.returncode}): {res.stderr[-2000:]}")
    return float(found.group(3))


def report(label: str, result: dict, reference: dict, stats: dict) -> float:
    ok = len(result["records"])
    lost = result["sent"] - ok
    different, identical, worst = compare(result["records"], reference)
    lat = sorted(result["latencies"])
    rate = ok / result["seconds"]
    print(f"{label}: {result['sent']} sent, {ok} scored, {lost} lost, {different} different from the CLI "
          f"({identical} bit-identical, max |diff| {worst:.2e}); {result['seconds']:.1f} s, {rate:.1f} images/s; "
          f"latency p50 {percentile(lat, 50) * 1000:.0f} ms, p99 {percentile(lat, 99) * 1000:.0f} ms; "
          f"batches {stats}")  # fmt: skip
    for failure in result["failures"][:5]:
        print(f"  failed: {failure}")
    if result["retried"]:
        print(f"  {len(result['retried'])} requests retried once after a dropped connection: {result['retried'][:5]}")
    return rate


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--clients", type=int, default=16)
    ap.add_argument("--requests", type=int, default=200, help="requests per client")
    ap.add_argument("--images", type=int, default=32, help="distinct images the requests cycle over")
    ap.add_argument("--segmenter", default="none", help="none (global score only) | felzenszwalb")
    ap.add_argument("--max-batch", type=int, default=8)
    ap.add_argument("--max-wait-ms", type=float, default=10.0)
    ap.add_argument("--time-limit", type=float, default=300.0, help="seconds per load phase")
    ap.add_argument("--skip-unbatched", action="store_true", help="do not run the max-batch-1 phase")
    args = ap.parse_args()

    from dogiqa.testing import build_tiny_qwen2vl
    from dogiqa.testing.images import make_image

    with tempfile.TemporaryDirectory(prefix="serve-load-") as tmp:
        tmp = Path(tmp)
        model = build_tiny_qwen2vl(tmp / "tiny-qwen2vl", seed=0, digit_scale=30.0)
        folder = tmp / "images"
        folder.mkdir()
        images = []
        for i in range(args.images):
            buf = io.BytesIO()
            make_image(64 + 8 * (i % 8), 48 + 8 * (i // 8 % 8), seed=100 + i).save(buf, "PNG")
            (folder / f"img{i:03d}.png").write_bytes(buf.getvalue())
            images.append((f"img{i:03d}.png", buf.getvalue()))
        print(f"load average before: {os.getloadavg()}; {os.cpu_count()} CPUs; "
              f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')}")  # fmt: skip
        cli_out = tmp / "cli.jsonl"
        cli_seq = run_cli(folder, model, args.segmenter, tmp / "cli1.jsonl", chunk_size=1)
        cli_chunked = run_cli(folder, model, args.segmenter, cli_out, chunk_size=REF_CHUNK)
        reference = {Path(r["path"]).name: r for r in map(json.loads, cli_out.read_text().splitlines())}
        print(f"CLI (dogiqa score, {args.images} images, model loading excluded): chunk 1 {cli_seq:.2f} s = "
              f"{args.images / cli_seq:.1f} images/s; chunk 8 {cli_chunked:.2f} s = "
              f"{args.images / cli_chunked:.1f} images/s")  # fmt: skip

        phases = [("batched", args.max_batch)] + ([] if args.skip_unbatched else [("unbatched", 1)])
        rates = {}
        for label, max_batch in phases:
            service = Service(model, args.segmenter, max_batch, args.max_wait_ms)
            try:
                result = asyncio.run(load(service.url, images, args.clients, args.requests, args.time_limit))
                stats = service.stats()
            finally:
                service.stop()
            name = f"service {label} (max batch {max_batch}, {args.clients} clients x {args.requests})"
            rates[label] = report(name, result, reference, stats)
            print(f"  load average after: {os.getloadavg()}")
        print(f"service batched vs sequential CLI (chunk 1): x{rates['batched'] / (args.images / cli_seq):.2f}")
        if "unbatched" in rates:
            print(f"batching gain (max batch {args.max_batch} vs 1, same load): "
                  f"x{rates['batched'] / rates['unbatched']:.2f}")  # fmt: skip


if __name__ == "__main__":
    main()
