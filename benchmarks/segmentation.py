"""Seconds per image and peak memory of Sam2Segmenter (paper preset) on synthetic photos.

    python benchmarks/segmentation.py --model tiny --device cpu --sizes 1024x768,4032x3024
    python benchmarks/segmentation.py --model hiera-large --device cuda --dtype bfloat16

``--model``: ``tiny`` (recipe 4.1), ``hiera-large`` (random weights, Hiera-L sizes) or a folder / hub id.
Random models are biased (recipe 4.2) unless ``--unbiased``: every candidate then passes the IoU filter,
the worst case for post-processing. Memory: CPU peak RSS above the pre-call level (sampled every 2 ms) and
tracemalloc's peak (numpy/Python); on CUDA ``torch.cuda.max_memory_allocated``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import threading
import time
import tracemalloc
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from dogiqa.segmenters.sam2 import Sam2Segmenter
from dogiqa.testing.sam2_tiny import build_sam2, hiera_large_config, tiny_sam2_config

PAGE = os.sysconf("SC_PAGE_SIZE")


def synthetic_photo(width: int, height: int, seed: int = 0) -> Image.Image:
    """Smooth gradients, a few flat shapes and mild noise: photo-like statistics, deterministic."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    img = np.stack([x / width * 200, y / height * 180, (x + y) / (width + height) * 160], axis=-1)
    for _ in range(6):
        cx, cy = rng.uniform(0, width), rng.uniform(0, height)
        r = rng.uniform(0.05, 0.25) * min(width, height)
        inside = (x - cx) ** 2 + (y - cy) ** 2 < r * r
        img[inside] = rng.uniform(0, 255, size=3)
    img += rng.normal(0, 6, size=img.shape).astype(np.float32)
    return Image.fromarray(np.clip(img, 0, 255).astype(np.uint8))


def _rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * PAGE


class PeakRss:
    """Samples the resident set size in a thread; ``peak`` is the maximum above the start level."""

    def __enter__(self):
        self.start = self.peak_abs = _rss()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def _run(self):
        while not self._stop.wait(0.002):
            self.peak_abs = max(self.peak_abs, _rss())

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak_abs = max(self.peak_abs, _rss())
        self.peak = self.peak_abs - self.start


def _model_dir(name: str, biased: bool, workdir: Path) -> str:
    if name == "tiny":
        return str(build_sam2(workdir / "tiny", tiny_sam2_config(), biased=biased))
    if name == "hiera-large":
        return str(build_sam2(workdir / "hiera_large", hiera_large_config(), biased=biased))
    return name


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def bench_size(seg: Sam2Segmenter, width: int, height: int, repeats: int, device: str) -> dict:
    image = synthetic_photo(width, height)
    seg.generate(image)  # warm-up
    times, decode_t, post_t, n_masks, n_cands = [], [], [], 0, 0
    for _ in range(repeats):
        _sync(device)
        t0 = time.perf_counter()
        decoded = seg.decode(image)
        _sync(device)
        t1 = time.perf_counter()
        records = seg.postprocess(decoded)
        _sync(device)
        t2 = time.perf_counter()
        times.append(t2 - t0)
        decode_t.append(t1 - t0)
        post_t.append(t2 - t1)
        n_masks, n_cands = len(records), len(decoded.iou)
    row = {
        "size": f"{width}x{height}",
        "s_per_image": statistics.median(times),
        "decode_s": statistics.median(decode_t),
        "postprocess_s": statistics.median(post_t),
        "candidates_after_iou": n_cands,
        "masks": n_masks,
        "naive_full_logits_mb": n_cands * width * height * 4 / 2**20,
    }
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        seg.generate(image)
        row["gpu_peak_mb"] = (torch.cuda.max_memory_allocated() - base) / 2**20
    tracemalloc.start()
    with PeakRss() as rss:
        seg.generate(image)
    _, traced = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    row["rss_peak_mb"] = rss.peak / 2**20
    row["tracemalloc_peak_mb"] = traced / 2**20
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="tiny")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--dtype", default="float32")
    ap.add_argument("--sizes", default="1024x768,4032x3024")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--small-regions", default="skip", choices=["skip", "fill"])
    ap.add_argument("--unbiased", action="store_true")
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    ap.add_argument("--json", default=None, help="also write the rows here")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = _model_dir(args.model, not args.unbiased, Path(tmp))
        t0 = time.perf_counter()
        seg = Sam2Segmenter(
            model_dir, preset="paper", small_regions=args.small_regions, device=args.device, dtype=args.dtype
        )
        load_s = time.perf_counter() - t0
    device_name = torch.cuda.get_device_name() if args.device.startswith("cuda") else "cpu"
    print(
        f"model={args.model} device={device_name} dtype={args.dtype} threads={torch.get_num_threads()} "
        f"small_regions={args.small_regions} biased={not args.unbiased} load_s={load_s:.2f}"
    )
    rows = []
    for size in args.sizes.split(","):
        width, height = (int(v) for v in size.lower().split("x"))
        row = bench_size(seg, width, height, args.repeats, args.device)
        rows.append(row)
        print(json.dumps({k: round(v, 4) if isinstance(v, float) else v for k, v in row.items()}), flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps({"args": vars(args), "device": device_name, "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
