"""Side by side, same images and model: (a) the authors' loop, (b) the serial batched pipeline, (c) the staged one.

(a) one image at a time: load, segment, then one ``generate`` call per crop (``int`` readout, as the authors);
(b) ``DogIQA`` serial: chunks of images, stages one after another in one thread, crops batched across images;
(c) ``dogiqa.pipeline.StagedPipeline``: load | segment | preprocess | score overlapping (same chunks as (b)),
    with its defaults; for segmenters that hold the GIL (felzenszwalb, slic) also ``staged_procs``: the same
    with one segmentation worker process per CPU core (``--segment-processes N``).
The ``cpu bound`` line is the best any overlap can reach on this machine: CPU cores / CPU seconds per image of
(b) (its process time: all the work, done once). A goal above it needs less work, not more overlap.
Images are generated phone-photo shapes written to files (decoding is part of the work). Modes are
interleaved in ``--repeat`` timed rounds after a warm-up round; the table shows the median images/s and the
load average around the rounds (the machine is shared). Prints figures, asserts nothing.

    python benchmarks/pipeline.py                          # tiny Qwen2-VL, felzenszwalb + tiny SAM 2, CPU
    python benchmarks/pipeline.py --json
    python benchmarks/pipeline.py --random-7b --device cuda --side 1024 --sam2 hiera-large   # recommended size
    python benchmarks/pipeline.py --family owl3 --size 7b --device cuda --readout int --sam2 hiera-large
    python benchmarks/pipeline.py --random-7b --device cuda --side 1024 --segmenters none --modes serial staged

On CUDA it also samples GPU utilisation (nvidia-smi) and estimates MFU: 2 x parameters x tokens (language
model) + 2 x vision parameters x patches (vision tower), over the mode's seconds and the card's bf16 dense
peak; attention's quadratic term and SAM 2 are not counted, so it is a lower bound.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

SHAPES = [(4, 3), (3, 4), (16, 9), (1, 1), (4, 3), (3, 4), (9, 16), (4, 3)]  # phone-photo aspect ratios
MODES = ("authors", "serial", "staged", "staged_procs")
PEAK_BF16 = {"H200": 989e12, "H100": 989e12, "A100": 312e12, "L40S": 362e12, "A10": 125e12}


# -- inputs ------------------------------------------------------------------------------------------------
def write_images(folder: Path, n: int, side: int) -> list[Path]:
    from segmentation import synthetic_photo  # benchmarks/segmentation.py

    paths = []
    for i in range(n):
        a, b = SHAPES[i % len(SHAPES)]
        w, h = (side, side * b // a) if a >= b else (side * a // b, side)
        paths.append(folder / f"img{i:04d}.jpg")
        synthetic_photo(w, h, seed=i).save(paths[-1], quality=92)
    return paths


def build_backend(args: argparse.Namespace, tmp: Path) -> Any:
    """A tiny model (CPU) or random weights of the real 7B sizes (GPU), as the other benchmarks build them."""
    from dogiqa import testing

    dtype = args.dtype if args.dtype != "auto" else ("bfloat16" if args.device.startswith("cuda") else "float32")
    if args.family == "qwen":
        from dogiqa.backends.transformers_vlm import TransformersVLM

        opts = dict(batch_size=args.batch_size, max_batch_tokens=args.max_batch_tokens)
        if args.size == "7b":
            from dogiqa.testing.tiny import random_qwen25vl_7b

            model, proc = random_qwen25vl_7b(
                tmp / "q7b", args.device, dtype, max_pixels=args.max_pixels, layers=args.layers
            )
            return TransformersVLM.from_objects(model, proc, "random Qwen2.5-VL-7B-size", **opts)
        folder = testing.build_tiny_qwen2vl(tmp / "qwen", digit_scale=30.0)
        return TransformersVLM(str(folder), device=args.device, dtype=dtype, **opts)
    from dogiqa.backends.mplug_owl3.backend import MplugOwl3Backend

    if args.size == "7b":
        import torch
        from transformers import AutoTokenizer

        from dogiqa.backends.mplug_owl3.modeling import MplugOwl3Model
        from dogiqa.testing.tiny_owl3 import write_owl3_tokenizer

        write_owl3_tokenizer(tmp / "owl3tok")
        previous = torch.get_default_dtype()
        torch.set_default_dtype(getattr(torch, dtype))  # allocate directly in bf16 (7B in float32: 32 GB)
        try:
            with torch.device(args.device):
                model = MplugOwl3Model(owl3_7b_config(args.layers)).eval()
        finally:
            torch.set_default_dtype(previous)
        tok = AutoTokenizer.from_pretrained(str(tmp / "owl3tok"))
        return MplugOwl3Backend.from_objects(model, tok, "random mPLUG-Owl3-7B-size", batch_size=args.batch_size)
    from dogiqa.testing.tiny_owl3 import build_tiny_mplug_owl3

    folder = build_tiny_mplug_owl3(tmp / "owl3", digit_scale=30.0)
    return MplugOwl3Backend(str(folder), device=args.device, dtype=dtype, batch_size=args.batch_size)


def owl3_7b_config(layers: int | None) -> Any:
    """mPLUG-Owl3-7B's configuration (the class defaults); ``layers``: only that many decoder layers (the
    first with hyper attention) and vision layers, for a CPU check of the GPU benchmark."""
    from dogiqa.backends.mplug_owl3.configuration import DEFAULT_VISION, MplugOwl3Config

    if not layers:
        return MplugOwl3Config()
    vision = dict(DEFAULT_VISION, num_hidden_layers=layers)
    return MplugOwl3Config(num_hidden_layers=layers, max_window_layers=layers, hyper_layers=[1], vision_config=vision)


def build_segmenter(name: str, args: argparse.Namespace, tmp: Path) -> Any:
    from dogiqa.registry import SEGMENTERS

    if name != "sam2":
        return SEGMENTERS.build_accepting(name)
    from dogiqa.testing.sam2_tiny import build_sam2, hiera_large_config

    folder = Path(args.work_dir or tmp) / f"sam2-{args.sam2}"
    if not (folder / "config.json").exists():
        build_sam2(folder, hiera_large_config() if args.sam2 == "hiera-large" else None, biased=True)
    points = args.sam2_points or (4 if args.sam2 == "tiny" else 8)
    dtype = "bfloat16" if args.device.startswith("cuda") else "float32"
    return SEGMENTERS.build_accepting(
        "sam2", model=str(folder), device=args.device, dtype=dtype, points_per_side=points
    )


# -- the three ways --------------------------------------------------------------------------------------
class AuthorsScorer:
    """The authors' scoring: one ``generate`` (one new token) per crop, the integer read from the text."""

    name = "authors"
    higher_is_better = True

    def __init__(self, inner: Any):
        self.inner, self.backend = inner, inner.backend
        self.score_range, self.levels = inner.score_range, inner.levels

    def score_crops(self, crops: list) -> list:
        gen = getattr(self.backend, "generate_one", None)
        out = []
        for crop in crops:
            prompt = self.inner.prompt_for(crop.call)
            raw = gen(crop.image, prompt) if gen else self.backend.run([crop.image], prompt, self.inner.candidates)[0]
            out.append(self.inner.read(raw))
        return out


def serial_run(iqa: Any, paths: list[Path]) -> list:
    run = getattr(iqa, "score_many_serial", None) or iqa.score_many  # (b): the one-thread path
    return list(run(paths))


def make_modes(backend: Any, segmenter: Any, args: argparse.Namespace) -> dict[str, Any]:
    from dogiqa.api import DogIQA
    from dogiqa.pipeline import PipelineOptions, StagedPipeline
    from dogiqa.scorers.mllm import MLLMScorer

    agg = "global" if segmenter.name == "none" else args.aggregation
    common = dict(segmenter=segmenter, aggregation=agg, min_area=args.min_area)
    # as the paper preset: an answer that is not a digit scores 1 (random weights often answer other tokens)
    authors = DogIQA(scorer=AuthorsScorer(MLLMScorer(backend, readout="int", invalid_as_one=True)), chunk_size=1,
                     **common)  # fmt: skip
    scorer = MLLMScorer(backend, readout=args.readout, invalid_as_one=args.readout == "int")
    iqa = DogIQA(scorer=scorer, chunk_size=args.chunk_size, **common)
    opts = PipelineOptions(
        load_workers=args.load_workers,
        segment_workers=args.segment_workers,
        segment_processes=args.segment_processes,
        max_in_flight=args.max_in_flight,
    )
    staged = StagedPipeline(iqa, opts)
    pipes = [staged]
    modes = {
        "authors": lambda paths: serial_run(authors, paths),
        "serial": lambda paths: serial_run(iqa, paths),
        "staged": lambda paths: list(staged.run(paths)),
    }
    if getattr(segmenter, "parallel", "thread") == "process" and not args.segment_processes:
        procs = StagedPipeline(iqa, replace(opts, segment_processes=os.cpu_count() or 1))
        pipes.append(procs)
        modes["staged_procs"] = lambda paths: list(procs.run(paths))
    chosen = {m: modes[m] for m in args.modes if m in modes}
    return {"modes": chosen, "pipes": pipes, "options": staged.options}


# -- measurement -----------------------------------------------------------------------------------------
class FlopCounter:
    """Counts tokens through the language model and patches through the vision tower (forward hooks)."""

    def __init__(self, backend: Any):
        model = backend.model
        named = list(model.named_parameters())
        self.vision_params = sum(p.numel() for n, p in named if "visual" in n or "vision" in n)
        self.llm_params = sum(p.numel() for n, p in named) - self.vision_params
        self.tokens = self.patches = 0
        self._hook = model.register_forward_pre_hook(self._count, with_kwargs=True)

    def _count(self, module: Any, args: tuple, kwargs: dict) -> None:
        ids = kwargs.get("input_ids", args[0] if args else None)
        pix = kwargs.get("pixel_values", args[2] if len(args) > 2 else None)
        if ids is not None:
            self.tokens += int(ids.numel())
        if pix is not None:  # Qwen: (patches, dim); mPLUG-Owl3: (crops, 3, H, W) -> patches of 14 px
            self.patches += int(pix.shape[0]) if pix.dim() == 2 else int(pix.shape[0] * (pix.shape[-1] // 14) ** 2)

    def flops(self) -> float:
        return 2.0 * (self.llm_params * self.tokens + self.vision_params * self.patches)

    def reset(self) -> None:
        self.tokens = self.patches = 0


class GpuSampler:
    """Mean GPU utilisation (%) from ``nvidia-smi`` sampled every 100 ms while active."""

    def __init__(self) -> None:
        self.samples: list[float] = []
        self.proc: subprocess.Popen | None = None

    def __enter__(self) -> GpuSampler:
        if shutil.which("nvidia-smi"):
            cmd = ["nvidia-smi", "--query-gpu=utilization.gpu", "--format=csv,noheader,nounits", "-lms", "100"]
            self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
            threading.Thread(target=self._read, daemon=True).start()
        return self

    def _read(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        for line in self.proc.stdout:
            try:
                self.samples.append(float(line.split(",")[0]))
            except ValueError:
                pass

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait()

    @property
    def mean(self) -> float | None:
        return round(statistics.mean(self.samples), 1) if self.samples else None


def timed(fn: Any, paths: list[Path], cuda: bool) -> tuple[float, float, list]:
    """Wall seconds, CPU seconds of this process (all its threads; not worker processes) and the records."""
    import torch

    if cuda:
        torch.cuda.synchronize()
    start, cpu = time.perf_counter(), time.process_time()
    out = fn(paths)
    if cuda:
        torch.cuda.synchronize()
    return time.perf_counter() - start, time.process_time() - cpu, out


def segment_cpu_s(segmenter: Any, paths: list[Path]) -> float:
    """CPU seconds per image of the segmenter alone (decoded images, this process, after the warm-up)."""
    from PIL import Image

    images = [Image.open(p).convert("RGB") for p in paths]
    start = time.process_time()
    for image in images:
        segmenter.segment(image)
    return (time.process_time() - start) / len(images)


def bench_segmenter(name: str, backend: Any, paths: list[Path], args: argparse.Namespace, tmp: Path) -> dict:
    cuda = args.device.startswith("cuda")
    segmenter = build_segmenter(name, args, tmp)
    built = make_modes(backend, segmenter, args)
    modes = built["modes"]
    counter = FlopCounter(backend) if args.peak_flops else None
    for fn in modes.values():  # warm-up round (kernels, caches, worker start-up)
        fn(paths[: max(2, args.chunk_size)])
    seg_cpu = segment_cpu_s(segmenter, paths) if not cuda and name != "none" else None
    seconds: dict[str, list[float]] = {m: [] for m in modes}
    cpu: dict[str, list[float]] = {m: [] for m in modes}
    util: dict[str, list[float]] = {m: [] for m in modes}
    mfu: dict[str, list[float]] = {m: [] for m in modes}
    loads, outputs = [os.getloadavg()[0]], {}
    for _ in range(args.repeat):
        for mode, fn in modes.items():
            if counter:
                counter.reset()
            with GpuSampler() if cuda else _null() as sampler:
                sec, cpu_s, outputs[mode] = timed(fn, paths, cuda)
            seconds[mode].append(sec)
            cpu[mode].append(cpu_s)
            print(f"[{name}] {mode}: {len(paths) / sec:.3f} images/s (load {os.getloadavg()[0]:.1f})", file=sys.stderr)
            if cuda and sampler.mean is not None:
                util[mode].append(sampler.mean)
            if counter and args.peak_flops:
                mfu[mode].append(100.0 * counter.flops() / sec / args.peak_flops)
        loads.append(os.getloadavg()[0])
    for pipe in built["pipes"]:
        pipe.close()
    n = len(paths)
    rows = {}
    for mode in modes:
        med = statistics.median(seconds[mode])
        recs = outputs[mode]
        rows[mode] = {
            "images_per_s": round(n / med, 3),
            "s_per_image": round(med / n, 4),
            "runs_s": [round(s, 3) for s in seconds[mode]],
            "main_process_cpu_s_per_image": round(statistics.median(cpu[mode]) / n, 4),
            "regions_per_image": round(statistics.mean(len(r.regions) for r in recs), 2),
            "failed": sum(not r.ok for r in recs),
            "gpu_util_pct": round(statistics.median(util[mode]), 1) if util[mode] else None,
            "mfu_pct": round(statistics.median(mfu[mode]), 2) if mfu[mode] else None,
        }
    out: dict[str, Any] = {"segmenter": name, "images": n, "modes": rows, "load_avg_1min": [round(x, 2) for x in loads]}
    out["options"] = {k: v for k, v in vars(built["options"]).items()}
    staged_runs = [outputs[m] for m in ("staged", "staged_procs") if m in outputs]
    if "serial" in outputs and staged_runs:
        diffs = [abs(a.score - b.score) for run in staged_runs for a, b in zip(outputs["serial"], run, strict=True)
                 if a.ok]  # fmt: skip
        out["max_abs_score_diff_serial_staged"] = max(diffs) if diffs else None
    for fast in ("staged", "staged_procs"):
        for mode in ("authors", "serial"):
            if mode in rows and fast in rows:
                out[f"{fast}_over_{mode}"] = round(rows[fast]["images_per_s"] / rows[mode]["images_per_s"], 2)
    if seg_cpu is not None:  # the part of every mode's work that no pipeline can avoid
        out["segmenter_cpu_s_per_image"] = round(seg_cpu, 4)
    if "serial" in rows and not cuda:  # the serial path does all the work once, in this process
        cores = os.cpu_count() or 1
        out["cpu_bound_images_per_s"] = round(cores / rows["serial"]["main_process_cpu_s_per_image"], 2)
        if "authors" in rows:  # the most (c)/(a) can be here, from CPU seconds (does not depend on the load)
            cpu_a, cpu_b = (rows[m]["main_process_cpu_s_per_image"] for m in ("authors", "serial"))
            out["max_staged_over_authors"] = round(cores * cpu_a / cpu_b, 2)
    return out


class _null:
    mean = None

    def __enter__(self) -> _null:
        return self

    def __exit__(self, *exc: object) -> None:
        return None


def print_table(report: dict) -> None:
    print(f"{report['model']} on {report['device']}, {report['threads']} torch thread(s), {report['cpus']} CPUs")
    for seg in report["results"]:
        print(f"\nsegmenter {seg['segmenter']}: {seg['images']} images, long side {report['side']} px; "
              f"load average {seg['load_avg_1min']}; staged options {seg['options']}")  # fmt: skip
        head = ["images/s", "s/image", "regions", "failed", "GPU %", "MFU %"]
        print(f"{'mode':13s} " + " ".join(f"{h:>{w}s}" for h, w in zip(head, [9, 8, 8, 6, 6, 6], strict=True)))
        for mode, r in seg["modes"].items():
            util = "" if r["gpu_util_pct"] is None else f"{r['gpu_util_pct']:.0f}"
            mfu = "" if r["mfu_pct"] is None else f"{r['mfu_pct']:.1f}"
            print(f"{mode:13s} {r['images_per_s']:9.2f} {r['s_per_image']:8.3f} {r['regions_per_image']:8.2f} "
                  f"{r['failed']:6d} {util:>6s} {mfu:>6s}")  # fmt: skip
        if seg.get("segmenter_cpu_s_per_image"):
            print(f"segmenter alone: {seg['segmenter_cpu_s_per_image']:.3f} CPU s per image")
        if seg.get("cpu_bound_images_per_s"):
            most = seg.get("max_staged_over_authors")
            most_text = f"; at most {most:.2f}x the authors' loop" if most else ""
            bound = seg["cpu_bound_images_per_s"]
            print(f"cpu bound (cores / serial CPU s per image): {bound:.2f} images/s{most_text}")
        pairs = [(f, m) for f in MODES[2:] for m in MODES[:2] if f"{f}_over_{m}" in seg]
        ratios = [f"{f}/{m} {seg[f'{f}_over_{m}']:.2f}x" for f, m in pairs]
        if ratios:
            print("speed-up: " + ", ".join(ratios), end="")
        if seg.get("max_abs_score_diff_serial_staged") is not None:
            print(f"; max |score diff| serial vs staged {seg['max_abs_score_diff_serial_staged']:.1e}", end="")
        print()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--family", choices=["qwen", "owl3"], default="qwen")
    ap.add_argument("--size", choices=["tiny", "7b"], default="tiny", help="tiny (CPU) or random 7B-size (GPU)")
    ap.add_argument("--random-7b", action="store_true", help="= --family qwen --size 7b (Qwen2.5-VL-7B size)")
    ap.add_argument("--layers", type=int, help="7b: keep only N layers (same code and widths; a CPU dry run)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--dtype", default="auto")
    ap.add_argument("--images", type=int, default=16)
    ap.add_argument("--side", type=int, default=320, help="long side of the generated photos, px")
    ap.add_argument("--segmenters", nargs="+", default=["felzenszwalb", "sam2"])
    ap.add_argument("--sam2", choices=["tiny", "hiera-large"], default="tiny")
    ap.add_argument("--sam2-points", type=int, default=0, help="points per side (default 4 tiny, 8 hiera-large)")
    ap.add_argument("--modes", nargs="+", choices=MODES, default=list(MODES))
    ap.add_argument("--readout", default="expected", help="readout of (b) and (c); (a) is always int")
    ap.add_argument("--aggregation", default="paper")
    ap.add_argument("--min-area", type=int, default=1000)
    ap.add_argument("--chunk-size", type=int, default=8, help="images per scoring chunk, (b) and (c)")
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--max-batch-tokens", type=int, default=32768)
    ap.add_argument("--max-pixels", type=int, default=1003520, help="Qwen image processor cap (7B)")
    ap.add_argument("--load-workers", type=int)
    ap.add_argument("--segment-workers", type=int)
    ap.add_argument("--segment-processes", type=int, default=0, help="felzenszwalb/slic worker processes (0)")
    ap.add_argument("--max-in-flight", type=int)
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    ap.add_argument("--repeat", type=int, default=3, help="timed rounds (median), after one warm-up round")
    ap.add_argument("--peak-flops", type=float, default=0.0, help="bf16 dense peak, FLOP/s (default: by GPU name)")
    ap.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    ap.add_argument("--work-dir", help="keep built models here (SAM 2 folders) for later runs")
    ap.add_argument("--print", dest="print_file", help="only print the table of a saved --json report")
    args = ap.parse_args()
    if args.print_file:
        text = Path(args.print_file).read_text().strip()
        print_table(json.loads(text)) if text else print(f"{args.print_file}: no report (the run failed or timed out)")
        return
    if args.random_7b:
        args.family, args.size = "qwen", "7b"

    import torch

    torch.set_num_threads(args.threads)
    report: dict[str, Any] = {"device": args.device, "threads": torch.get_num_threads(), "cpus": os.cpu_count(),
                              "side": args.side, "argv": sys.argv[1:]}  # fmt: skip
    if args.device.startswith("cuda"):
        name = torch.cuda.get_device_name()
        report["gpu"] = name
        if not args.peak_flops:
            args.peak_flops = next((v for k, v in PEAK_BF16.items() if k in name), 0.0)
        report["peak_flops"] = args.peak_flops
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        paths = write_images(tmp, args.images, args.side)
        backend = build_backend(args, tmp)
        report["model"] = backend.model_id
        report["results"] = [bench_segmenter(seg, backend, paths, args, tmp) for seg in args.segmenters]
        if args.device.startswith("cuda"):
            report["peak_gpu_gib"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
    if args.json:
        print(json.dumps(report))
    else:
        print_table(report)


if __name__ == "__main__":
    main()
