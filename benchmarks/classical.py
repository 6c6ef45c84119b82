"""Time NIQE, BRISQUE and PIQE on one 1024x768 image; prints a table, asserts nothing.

Run on one core: ``OMP_NUM_THREADS=1 taskset -c 0 python benchmarks/classical.py [image] [--repeats N]``.
Without an image a synthetic 1024x768 texture is used. "min cpu s" (process time) is the least disturbed
by other load on the machine.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
from PIL import Image

from dogiqa.scorers.brisque import brisque
from dogiqa.scorers.niqe import niqe
from dogiqa.scorers.piqe import piqe


def synthetic(width: int = 1024, height: int = 768) -> Image.Image:
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:height, 0:width]
    base = 128 + 60 * np.sin(x / 9.0) * np.cos(y / 13.0) + rng.normal(0, 10, (height, width))
    rgb = np.stack([base, 0.9 * base + 10, 0.8 * base + 20], axis=-1)
    return Image.fromarray(np.clip(rgb, 0, 255).astype(np.uint8))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("image", nargs="?", help="image file (default: synthetic 1024x768)")
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    img = Image.open(args.image).convert("RGB") if args.image else synthetic()
    print(f"image {img.size[0]}x{img.size[1]}, {args.repeats} repeats after one warm-up")
    print(f"{'method':8s} {'score':>10s} {'median s':>9s} {'min s':>7s} {'min cpu s':>9s}")
    for name, fn in (("niqe", niqe), ("brisque", brisque), ("piqe", piqe)):
        score = fn(img)  # warm-up (parameter loading, caches)
        times, cpu = [], []
        for _ in range(args.repeats):
            t, c = time.perf_counter(), time.process_time()
            fn(img)
            times.append(time.perf_counter() - t)
            cpu.append(time.process_time() - c)
        print(f"{name:8s} {score:10.4f} {statistics.median(times):9.3f} {min(times):7.3f} {min(cpu):9.3f}")


if __name__ == "__main__":
    main()
