"""Where global-only scoring spends its time: processor (CPU), vision tower and the whole forward, per image.

Random weights of Qwen2.5-VL-7B's size (throughput does not depend on weight values), generated phone photos.
For each batch size: the processor's seconds per image (one thread), then on the device the vision tower alone
and the full forward (vision + language model, last-token logits), timed with synchronisation, and the
achieved TFLOP/s of each (2 x parameters x tokens or patches; attention's quadratic term not counted).

    python benchmarks/gpu_breakdown.py --device cuda --side 1024 --batch 8 16 32
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))


def _sync(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize()


def timed(fn, device: str, repeat: int) -> float:
    """Median seconds of ``fn()`` over ``repeat`` runs after one warm-up."""
    fn()
    _sync(device)
    runs = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        _sync(device)
        runs.append(time.perf_counter() - start)
    return statistics.median(runs)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--dtype", default="bfloat16")
    ap.add_argument("--side", type=int, default=1024)
    ap.add_argument("--batch", type=int, nargs="+", default=[8, 16, 32])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--max-pixels", type=int, default=1003520)
    ap.add_argument("--layers", type=int, help="keep only N layers (same code and widths; a CPU dry run)")
    args = ap.parse_args()

    import torch
    from PIL import Image
    from pipeline import FlopCounter, write_images

    from dogiqa.backends.transformers_vlm import TransformersVLM
    from dogiqa.scorers.mllm import MLLMScorer
    from dogiqa.testing.tiny import random_qwen25vl_7b

    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        paths = write_images(tmp, max(args.batch), args.side)
        images = [Image.open(p).convert("RGB") for p in paths]
        model, proc = random_qwen25vl_7b(
            tmp / "q7b", args.device, args.dtype, max_pixels=args.max_pixels, layers=args.layers
        )
    backend = TransformersVLM.from_objects(model, proc, "random Qwen2.5-VL-7B-size")
    sizes = FlopCounter(backend)  # the benchmark's own split of the parameters: vision tower / language model
    vision_params, llm_params = sizes.vision_params, sizes.llm_params
    visual = model.model.visual if hasattr(model, "model") else model.visual
    text = backend.render(MLLMScorer(backend).prompt_for("global"))  # the scorer's own global prompt
    report = {"device": torch.cuda.get_device_name() if args.device.startswith("cuda") else args.device,
              "side": args.side, "vision_params": vision_params, "llm_params": llm_params, "rows": []}  # fmt: skip
    for n in args.batch:
        batch = images[:n]
        start = time.perf_counter()
        inputs = backend._encode(text, batch)  # processor + copy to the device, as the backend does
        pre_s = (time.perf_counter() - start) / n
        patches, tokens = int(inputs["pixel_values"].shape[0]), int(inputs["input_ids"].numel())

        def vision(inputs=inputs, visual=visual):
            with torch.inference_mode():
                visual(inputs["pixel_values"], grid_thw=inputs["image_grid_thw"])

        def full(inputs=inputs):
            with torch.inference_mode():
                model(**inputs, use_cache=False, logits_to_keep=1)

        vision_s, full_s = timed(vision, args.device, args.repeat), timed(full, args.device, args.repeat)
        row = {
            "batch": n,
            "tokens_per_image": tokens // n,
            "patches_per_image": patches // n,
            "processor_s_per_image": round(pre_s, 4),
            "vision_s_per_image": round(vision_s / n, 4),
            "forward_s_per_image": round(full_s / n, 4),
            "images_per_s_forward": round(n / full_s, 2),
            "vision_tflops": round(2 * vision_params * patches / vision_s / 1e12, 1),
            "llm_tflops": round(2 * llm_params * tokens / max(full_s - vision_s, 1e-9) / 1e12, 1),
        }
        if args.device.startswith("cuda"):
            row["peak_gib"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
        report["rows"].append(row)
        print(json.dumps(row), flush=True)
    print(json.dumps(report))


if __name__ == "__main__":
    main()
