"""Throughput: the authors' naive loop (one generate call per crop) vs batched one-pass scoring.

Both paths use the same model, prompt and images (global view + ``--crops`` random boxes per image, like
Dog-IQA's ~7 regions). Prints a table; asserts nothing.

    python benchmarks/throughput.py                       # tiny random Qwen2-VL built on the fly (CPU)
    python benchmarks/throughput.py --model DIR --device cuda --dtype bfloat16 --images 64
    python benchmarks/throughput.py --pipeline            # also the full DogIQA pipeline (felzenszwalb)
    python benchmarks/throughput.py --random-7b --device cuda --side 1024 --crops 0   # GPU, global only
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from PIL import Image  # noqa: E402

from dogiqa.backends.base import Prompt, RawOutput  # noqa: E402
from dogiqa.backends.transformers_vlm import TransformersVLM  # noqa: E402
from dogiqa.backends.varlen_attention import set_vision_attention  # noqa: E402
from dogiqa.testing.images import make_image  # noqa: E402

SYSTEM = (
    "You are a helpful assistant to help me evaluate the quality of the image. You will be given standards "
    "about each quality level. The quality standard is list as follows:\n7: Perfect!\n6: Excellent!\n5: Good!\n"
    "4: Fair!\n3: Bad!\n2: Poor!\n1: Very Bad!\n\nThe higher the image quality, the higher the score should be.\n"
    "Please strictly follow the USER's format, otherwise the result will be invalid."
)
QUERY = (
    "Please evaluate the quality of the image and score in quality. Only tell me the number. Do not analysis the image."
)
PROMPT = Prompt(before_image=" " + SYSTEM + "\n", after_image="\n" + QUERY, system="")
LEVELS = [str(i) for i in range(1, 8)]
# phone-photo shapes (4:3 / 3:4 / 16:9 / square), scaled by --scale
SHAPES = [(4, 3), (3, 4), (16, 9), (1, 1), (4, 3), (3, 4), (9, 16), (4, 3)]


def make_images(n: int, side: int, crops: int, seed: int = 0) -> list[list[Image.Image]]:
    """Per image: [whole image, crop_1 .. crop_k] with random boxes of 10-60 % of each side."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        a, b = SHAPES[i % len(SHAPES)]
        w, h = (side, side * b // a) if a >= b else (side * a // b, side)
        img = make_image(w, h, seed=i)
        views = [img]
        for _ in range(crops):
            cw, ch = int(w * rng.uniform(0.1, 0.6)), int(h * rng.uniform(0.1, 0.6))
            x, y = rng.randint(0, w - cw), rng.randint(0, h - ch)
            views.append(img.crop((x, y, x + cw, y + ch)))
        out.append(views)
    return out


def naive(backend: TransformersVLM, images: list[list[Image.Image]]) -> tuple[float, list[RawOutput]]:
    start = time.perf_counter()
    outs = [backend.generate_one(v, PROMPT) for views in images for v in views]
    return time.perf_counter() - start, outs


def batched(backend: TransformersVLM, images: list[list[Image.Image]]) -> tuple[float, list[RawOutput]]:
    start = time.perf_counter()
    outs = backend.run([v for views in images for v in views], PROMPT, LEVELS)
    return time.perf_counter() - start, outs


def padding_waste(outs: list[RawOutput]) -> float:
    real = sum(o.meta.get("tokens", 0) for o in outs)
    padded = sum(o.meta.get("padded_tokens", 0) for o in outs)
    return 100.0 * (padded - real) / padded if padded else 0.0


def timed_rounds(backend: TransformersVLM, images: list, repeat: int) -> dict[str, tuple[float, list, float]]:
    """Best-of-``repeat`` seconds per path, paths interleaved per round (the machine's load drifts)."""
    paths = {"naive": (naive, False, True), "batched": (batched, False, True), "prefix": (batched, True, True)}
    if backend.varlen_vision:  # also the vision tower as transformers runs it without flash-attn
        paths["loop"] = (batched, False, False)
    best: dict[str, tuple[float, list, float]] = {}
    for round_no in range(repeat + 1):  # round 0 warms up
        for name, (fn, prefix, varlen) in paths.items():
            backend.prefix_cache = prefix
            set_vision_attention(backend.model, varlen)
            backend.calls = 0
            sec, outs = fn(backend, images)
            calls = backend.calls / len(images)
            if round_no and (name not in best or sec < best[name][0]):
                best[name] = (sec, outs, calls)
    backend.prefix_cache = False
    set_vision_attention(backend.model, backend.varlen_vision)
    return best


def run_pipeline(backend: TransformersVLM, args: argparse.Namespace, images: list[list[Image.Image]]) -> list[tuple]:
    """The full mix-grained pipeline through dogiqa.api.DogIQA (felzenszwalb regions), if available."""
    try:
        from dogiqa.api import DogIQA
        from dogiqa.scorers.mllm import MLLMScorer
    except ImportError as exc:
        print(f"(pipeline skipped: {exc})")
        return []
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        paths = []
        for i, views in enumerate(images):
            paths.append(Path(tmp) / f"img{i}.png")
            views[0].save(paths[-1])
        for label, readout, bs in [("int, batch 1", "int", 1), ("expected, batched", "expected", args.batch_size)]:
            backend.batch_size = bs
            scorer = MLLMScorer(backend, standard="word", readout=readout, levels=7)
            iqa = DogIQA(scorer=scorer, segmenter=args.segmenter, readout=readout, chunk_size=8)
            list(iqa.score_many(paths[:1]))
            backend.calls = 0
            start = time.perf_counter()
            results = list(iqa.score_many(paths))
            sec = time.perf_counter() - start
            regions = statistics.mean(len(r.regions) for r in results)
            seg = statistics.mean(r.timings.get("segment_s", 0.0) for r in results)
            name = f"pipeline {label} ({regions:.1f} regions/img, segment {seg:.3f} s/img)"
            rows.append((name, len(paths) / sec, backend.calls / len(paths), None))
    backend.batch_size = args.batch_size
    return rows


def build_backend(args: argparse.Namespace, tmp: str) -> TransformersVLM:
    """The backend under test: --model, a random Qwen2.5-VL-7B-sized model, or a tiny random model."""
    opts = dict(batch_size=args.batch_size, max_batch_tokens=args.max_batch_tokens)
    if args.model:
        return TransformersVLM(args.model, device=args.device, dtype=args.dtype, **opts)
    from dogiqa import testing

    if args.random_7b:
        from dogiqa.testing.tiny import random_qwen25vl_7b

        dtype = "bfloat16" if args.dtype == "auto" else args.dtype
        model, proc = random_qwen25vl_7b(Path(tmp) / "q7b", args.device, dtype, max_pixels=args.max_pixels)
        return TransformersVLM.from_objects(model, proc, "random Qwen2.5-VL-7B-size", **opts)
    build = {"qwen2vl": testing.build_tiny_qwen2vl, "qwen25vl": testing.build_tiny_qwen25vl,
             "idefics3": testing.build_tiny_idefics3}[args.tiny]  # fmt: skip
    folder = build(Path(tmp) / args.tiny, digit_scale=30.0)
    return TransformersVLM(str(folder), device=args.device, dtype=args.dtype, **opts)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", help="model folder or hub id (default: a tiny random Qwen2-VL built now)")
    ap.add_argument("--tiny", default="qwen2vl", choices=["qwen2vl", "qwen25vl", "idefics3"])
    ap.add_argument("--images", type=int, default=8)
    ap.add_argument("--crops", type=int, default=7, help="crops per image besides the global view")
    ap.add_argument("--side", type=int, default=320, help="long side of the generated images, px")
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--max-batch-tokens", type=int, default=32768)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--dtype", default="auto")
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    ap.add_argument("--repeat", type=int, default=3, help="timed rounds (best of), after one warm-up")
    ap.add_argument("--pipeline", action="store_true", help="also time the full DogIQA pipeline")
    ap.add_argument("--segmenter", default="felzenszwalb", help="segmenter of the --pipeline rows")
    ap.add_argument("--random-7b", action="store_true", help="random Qwen2.5-VL-7B-sized model (GPU)")
    ap.add_argument("--max-pixels", type=int, default=1003520, help="image processor cap (--random-7b)")
    args = ap.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    tmp = tempfile.TemporaryDirectory()
    backend = build_backend(args, tmp.name)
    images = make_images(args.images, args.side, args.crops)
    n = len(images)
    best = timed_rounds(backend, images, args.repeat)
    (t_naive, o_naive, c_naive), (t_batch, o_batch, c_batch) = best["naive"], best["batched"]
    t_pref, o_pref, c_pref = best["prefix"]
    drift = max(abs(a.logprobs[c] - b.logprobs[c]) for a, b in zip(o_batch, o_pref, strict=True) for c in LEVELS)
    agree = sum(a.text == b.text for a, b in zip(o_naive, o_batch, strict=True)) / len(o_naive)
    rows = [
        ("naive: generate per crop", n / t_naive, c_naive, 0.0),
        ("batched one-pass", n / t_batch, c_batch, padding_waste(o_batch)),
        ("batched one-pass + shared-prefix KV cache", n / t_pref, c_pref, padding_waste(o_pref)),
    ]
    if "loop" in best:
        t_loop, o_loop, c_loop = best["loop"]
        same = max(abs(a.logprobs[c] - b.logprobs[c]) for a, b in zip(o_batch, o_loop, strict=True) for c in LEVELS)
        rows.append(
            (f"batched, per-window vision attention (|diff| {same:.1e})", n / t_loop, c_loop, padding_waste(o_loop))
        )
    if args.pipeline:
        rows += run_pipeline(backend, args, images)
    print(f"model {backend.model_id} on {args.device} ({backend.dtype}), {torch.get_num_threads()} thread(s)")
    print(f"{n} images x (1 global + {args.crops} crops), long side {args.side} px, batch {args.batch_size}")
    print(f"{'path':58s} {'images/s':>9s} {'calls/img':>9s} {'pad %':>6s}")
    for name, ips, calls, pad in rows:
        print(f"{name:58s} {ips:9.2f} {calls:9.2f} {'' if pad is None else f'{pad:6.1f}'}")
    print(
        f"speed-up batched / naive: {t_naive / t_batch:.2f}x, with prefix cache {t_naive / t_pref:.2f}x; "
        f"greedy token agreement {agree:.0%}"
    )
    print(f"speed-up prefix cache / batched: {t_batch / t_pref:.2f}x; max |logprob diff| {drift:.1e}")
    if args.device.startswith("cuda"):
        print(f"peak GPU memory: {torch.cuda.max_memory_allocated() / 2**30:.2f} GiB")
    tmp.cleanup()


if __name__ == "__main__":
    main()
