"""The VLM processor's CPU work (resize, normalise, patchify, tokenise) with 1..N threads: seconds per image.

On a GPU the processor runs on the CPU beside the model; at 1024 px it costs a sizeable part of a phone
photo's time budget, so ``preprocess_workers`` threads (each with its own processor copy) prepare batches at
once. Same inputs to the model for every thread count (asserted). Prints figures.

    OMP_NUM_THREADS=1 python benchmarks/preprocess.py --side 1024 --images 16 --workers 1 2
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", type=int, default=16)
    ap.add_argument("--side", type=int, default=1024, help="long side of the generated photos, px")
    ap.add_argument("--batch-size", type=int, default=4)
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2, 1, 2], help="thread counts, in this order")
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()

    import torch
    from PIL import Image
    from pipeline import write_images  # benchmarks/pipeline.py

    from dogiqa import testing
    from dogiqa.backends.base import Prompt
    from dogiqa.backends.transformers_vlm import TransformersVLM

    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        images = [Image.open(p).convert("RGB") for p in write_images(tmp, args.images, args.side)]
        folder = testing.build_tiny_qwen2vl(tmp / "qwen")
        prompt, levels = Prompt("Rate the quality of this image:", "", None, ""), [str(k) for k in range(1, 8)]
        rows, reference = [], None
        for workers in args.workers:
            backend = TransformersVLM(str(folder), batch_size=args.batch_size, preprocess_workers=workers)
            backend.prepare(images[:2], prompt, levels)  # warm-up (processor copies made)
            runs = []
            for _ in range(args.repeat):
                start = time.perf_counter()
                prepared = backend.prepare(images, prompt, levels)
                runs.append(time.perf_counter() - start)
            inputs = [{k: v.tolist() for k, v in enc.items()} for _, enc in prepared.batches]
            assert reference is None or inputs == reference, "the processor's output depends on the threads"
            reference = inputs
            per_image = round(statistics.median(runs) / args.images, 4)
            rows.append({"workers": workers, "s_per_image": per_image, "runs_s": [round(r, 3) for r in runs]})
    base = rows[0]["s_per_image"]
    for r in rows:
        r["speed_up"] = round(base / r["s_per_image"], 2)
    out = {"images": args.images, "side": args.side, "cpus": os.cpu_count(), "load_avg_1min": os.getloadavg()[0],
           "workers": rows}  # fmt: skip
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
