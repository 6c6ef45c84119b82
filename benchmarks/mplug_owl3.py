"""Benchmark our native mPLUG-Owl3 with random weights: load time, seconds per crop and per image, memory.

Randomly initialised (no checkpoint, no meta device: every weight is allocated and initialised) at a chosen
size, so it runs offline. Examples::

    python benchmarks/mplug_owl3.py --size tiny --device cpu --dtype float32
    python benchmarks/mplug_owl3.py --size 7b --device cuda --dtype bfloat16 --batch 1 4 8

"Per image" is one Dog-IQA scoring call: the image processor on a 1024x768 image (2x3 tiles + global view
= 7 crops), the vision tower on the crops and one decoder forward over the paper-length prompt.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from dogiqa.backends.mplug_owl3.configuration import MplugOwl3Config  # noqa: E402
from dogiqa.backends.mplug_owl3.modeling import MplugOwl3Model, paper_mask_and_positions  # noqa: E402
from dogiqa.backends.mplug_owl3.processing import MplugOwl3ImageProcessor, collate  # noqa: E402

SIZES = {
    "7b": {},  # the configuration defaults are mPLUG-Owl3-7B's sizes
    "tiny": dict(
        vocab_size=272,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=4,
        num_attention_heads=4,
        num_key_value_heads=2,
        hyper_layers=[1, 3],
        vision_config=dict(
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=3,
            num_attention_heads=2,
            image_size=384,
            patch_size=14,
        ),
    ),
}
IMAGE_TOKEN_ID = 3  # any id works for timing; placeholders are located through media_offset
PROMPT_BEFORE, PROMPT_AFTER, PER_CROP_TEXT = 230, 25, 7  # token counts close to the paper's prompt


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def timed(fn, device: str, repeats: int) -> tuple[float, object]:
    """Median seconds over ``repeats`` runs after one warm-up run."""
    out = fn()
    times = []
    for _ in range(repeats):
        sync(device)
        start = time.perf_counter()
        out = fn()
        sync(device)
        times.append(time.perf_counter() - start)
    return float(np.median(times)), out


def build(size: str, device: str, dtype: torch.dtype) -> tuple[MplugOwl3Model, float]:
    config = MplugOwl3Config(**SIZES[size])
    sync(device)
    start = time.perf_counter()
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)  # allocate directly in the target dtype (7B in float32 would be 32 GB)
    try:
        with torch.device(device):
            model = MplugOwl3Model(config).eval()
    finally:
        torch.set_default_dtype(previous)
    sync(device)
    return model, time.perf_counter() - start


def synthetic_item(n_crops: int, vocab: int, seed: int = 0) -> dict:
    """Token ids laid out like a processed Dog-IQA prompt with ``n_crops`` image placeholders."""
    rng = np.random.default_rng(seed)
    ids: list[int] = list(rng.integers(4, vocab, PROMPT_BEFORE))
    starts = []
    for _ in range(n_crops):
        ids += list(rng.integers(4, vocab, PER_CROP_TEXT))
        starts.append(len(ids))
        ids.append(IMAGE_TOKEN_ID)
    ids += list(rng.integers(4, vocab, PROMPT_AFTER))
    input_ids = torch.tensor(ids, dtype=torch.long)[None]
    seen = (torch.arange(len(ids))[:, None] > torch.tensor(starts)[None]).sum(1)
    media_offset = torch.stack([torch.zeros_like(seen), seen], 1)[None]
    return {"input_ids": input_ids, "media_offset": media_offset}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", choices=sorted(SIZES), default="tiny")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--dtype", choices=["float32", "float16", "bfloat16"], default="float32")
    ap.add_argument("--batch", type=int, nargs="+", default=[1, 4], help="images per forward")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: leave as is)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    dtype = getattr(torch, args.dtype)
    cuda = args.device.startswith("cuda")
    if cuda:
        torch.cuda.reset_peak_memory_stats()

    model, load_s = build(args.size, args.device, dtype)
    n_params = sum(p.numel() for p in model.parameters())
    report: dict = {
        "size": args.size,
        "device": args.device,
        "dtype": args.dtype,
        "params": n_params,
        "load_s": round(load_s, 3),
    }
    if cuda:
        report["device_name"] = torch.cuda.get_device_name()
        report["weights_gib"] = round(torch.cuda.memory_allocated() / 2**30, 2)

    tile = model.config.vision_config.image_size
    image = Image.fromarray(np.random.default_rng(0).integers(0, 256, (768, 1024, 3), dtype=np.uint8))
    processor = MplugOwl3ImageProcessor(image_size=tile)
    prep_s, (pixels, shapes) = timed(lambda: processor([image]), "cpu", args.repeats)
    report["preprocess_s_per_image"] = round(prep_s, 4)
    report["crops_per_image"] = int(pixels.shape[0])
    item = synthetic_item(int(pixels.shape[0]), model.config.vocab_size) | {"pixel_values": pixels}
    report["seq_len"] = int(item["input_ids"].shape[1])

    with torch.inference_mode():
        for batch in args.batch:
            crops = pixels.repeat((batch + pixels.shape[0] - 1) // pixels.shape[0], 1, 1, 1)[:batch]
            crops = crops.to(args.device, dtype)
            crop_s, _ = timed(lambda c=crops: model.forward_image(c), args.device, args.repeats)
            report[f"vision_s_per_crop@{batch}"] = round(crop_s / batch, 4)

            b = collate([item] * batch)
            mask, pos = paper_mask_and_positions(b["input_ids"])

            def step(b=b, mask=mask, pos=pos):
                return model(
                    b["input_ids"],
                    b["media_offset"],
                    b["pixel_values"].to(args.device, dtype),
                    attention_mask=mask * b["padding_mask"],
                    position_ids=pos,
                    pad_lengths=b["pad_lengths"],
                )

            image_s, logits = timed(step, args.device, args.repeats)
            assert torch.isfinite(logits).all()
            report[f"forward_s_per_image@{batch}"] = round(image_s / batch, 4)
            report[f"seconds_per_image@{batch}"] = round(image_s / batch + prep_s, 4)
    if cuda:
        report["peak_gib"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
    print(json.dumps(report))


if __name__ == "__main__":
    main()
