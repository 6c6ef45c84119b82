"""Resume without re-reading, and flat memory, on generated collections. Prints figures, asserts nothing.

    python benchmarks/resume_memory.py resume --images 11125     # finished eval run, then resumed (CLI)
    python benchmarks/resume_memory.py memory --images 20000     # RSS after 1,000 images vs peak

``resume``: a KonIQ-layout dataset of small generated JPEGs; ``dogiqa eval`` (PIQE, global) scores it once,
then the same command is run again and timed end to end (process start, listing, memo look-up, the saved
metrics reused, files), wall and the child's CPU seconds; the same for ``dogiqa score DIR -o FILE`` and
``score --resume``. For comparison it also times hashing every file (what a resume did before the memo) and
the memo look-up alone, in this process.

``memory``: ``run_local`` (the staged pipeline) scores every image with PIQE into a JSONL file; the resident
set size is sampled every 10 ms; printed: RSS after 1,000 images, the peak up to then and the peak over the run.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"
sys.path.insert(0, str(SRC))
PAGE = os.sysconf("SC_PAGE_SIZE")


def write_jpegs(folder: Path, n: int, size: tuple[int, int] = (64, 48)) -> list[Path]:
    """n distinct small JPEGs (a gradient plus a per-image block)."""
    import numpy as np
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    base = np.linspace(0, 255, size[0], dtype=np.float32)[None, :, None] * np.ones((size[1], 1, 3), np.float32)
    paths = []
    for i in range(n):
        arr = base.copy()
        arr[(i % 5) * 8 : (i % 5) * 8 + 8, (i % 7) * 8 : (i % 7) * 8 + 8] = (i * 37 % 256, i * 11 % 256, i % 256)
        paths.append(folder / f"{i:06d}.jpg")
        Image.fromarray(arr.astype(np.uint8)).save(paths[-1], quality=85)
    return paths


def resume(args: argparse.Namespace) -> dict:
    from dogiqa.cache import RawCache, image_hash

    tmp = Path(tempfile.mkdtemp(prefix="dogiqa-resume-"))
    root = tmp / "koniq10k"
    t0 = time.perf_counter()
    paths = write_jpegs(root / "1024x768", args.images)
    with open(root / "koniq10k_scores_and_distributions.csv", "w", newline="") as f:
        w = csv.writer(f, quoting=csv.QUOTE_NONNUMERIC)
        w.writerow(["image_name", "c1", "c2", "c3", "c4", "c5", "c_total", "MOS", "SD", "MOS_zscore"])
        w.writerows([p.name, 0, 0, 0, 0, 0, 0, 1 + (i % 40) / 10, 0.5, 50.0] for i, p in enumerate(paths))
    gen_s = time.perf_counter() - t0
    cmd = [sys.executable, "-c", "from dogiqa.cli import app; app()", "eval", "--dataset", "koniq", "--root", str(root),
           "--output-dir", str(tmp / "out"), "--scorer", "piqe", "--aggregation", "global", "--quiet",
           "--no-plot"]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")])}
    first, first_s, _ = _timed(cmd, env)
    second, resume_s, resume_cpu = _timed(cmd, env)
    score = [*cmd[:3], "score", str(root / "1024x768"), "-o", str(tmp / "scores.jsonl"), "--scorer", "piqe",
             "--segmenter", "none", "--aggregation", "global", "--quiet"]  # fmt: skip
    score_first, score_first_s, _ = _timed(score, env)
    score_again, score_resume_s, score_resume_cpu = _timed([*score, "--resume"], env)
    cache = RawCache(tmp / "out" / "cache.sqlite")
    t0 = time.perf_counter()
    cache.file_hashes(paths)
    memo_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    for p in paths:
        image_hash(p)
    rehash_s = time.perf_counter() - t0
    size = sum(p.stat().st_size for p in paths)
    return {
        "images": args.images,
        "generate_s": round(gen_s, 1),
        "first_run_s": round(first_s, 1),
        "first_run_tail": first.stdout.strip().splitlines()[-3:],
        "resume_run_s": round(resume_s, 2),
        "resume_run_cpu_s": round(resume_cpu, 2),
        "resume_run_tail": second.stdout.strip().splitlines()[-5:],
        "resume_exit_code": second.returncode,
        "score_first_s": round(score_first_s, 1),
        "score_first_exit_code": score_first.returncode,
        "score_resume_s": round(score_resume_s, 2),
        "score_resume_cpu_s": round(score_resume_cpu, 2),
        "score_resume_tail": (score_again.stdout + score_again.stderr).strip().splitlines()[-2:],
        "score_resume_exit_code": score_again.returncode,
        "memo_lookup_s": round(memo_s, 3),
        "hash_every_file_s": round(rehash_s, 3),
        "bytes_hashed": size,
        "load_avg_1min": round(os.getloadavg()[0], 2),
        "workdir": str(tmp),
    }


def _timed(cmd: list[str], env: dict[str, str]) -> tuple[subprocess.CompletedProcess, float, float]:
    """Run a command; its result, wall seconds and CPU seconds (user + system of the child)."""
    before = os.times()
    t0 = time.perf_counter()
    done = subprocess.run(cmd, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    after = os.times()
    return done, wall, (after.children_user - before.children_user) + (after.children_system - before.children_system)


def _rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * PAGE


def memory(args: argparse.Namespace) -> dict:
    from dogiqa.api import DogIQA
    from dogiqa.runners.local import run_local

    tmp = Path(tempfile.mkdtemp(prefix="dogiqa-memory-"))
    paths = write_jpegs(tmp / "images", args.images)
    iqa = DogIQA(scorer="piqe", segmenter="none", aggregation="global")
    peak = [_rss()]
    stop = threading.Event()

    def sample() -> None:
        while not stop.wait(0.01):
            peak[0] = max(peak[0], _rss())

    threading.Thread(target=sample, daemon=True).start()
    marks: dict[str, float] = {}
    count = [0]

    def on_result(_result: object) -> None:
        count[0] += 1
        if count[0] == args.mark:
            marks["rss_after_mark_mb"] = _rss() / 2**20
            marks["peak_after_mark_mb"] = max(peak[0], _rss()) / 2**20

    t0 = time.perf_counter()
    summary = run_local(iqa, (str(p) for p in paths), tmp / "out.jsonl", on_result=on_result)
    seconds = time.perf_counter() - t0
    stop.set()
    peak_mb = max(peak[0], _rss()) / 2**20
    return {
        "images": args.images,
        "scored": summary.scored,
        "failed": summary.failed,
        "seconds": round(seconds, 1),
        "mark": args.mark,
        **{k: round(v, 1) for k, v in marks.items()},
        "peak_rss_mb": round(peak_mb, 1),
        "peak_minus_rss_after_mark_mb": round(peak_mb - marks.get("rss_after_mark_mb", 0.0), 1),
        "load_avg_1min": round(os.getloadavg()[0], 2),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("what", choices=["resume", "memory"])
    ap.add_argument("--images", type=int, default=0, help="default: 11125 (resume) or 20000 (memory)")
    ap.add_argument("--mark", type=int, default=1000, help="memory: the reference point, in images")
    args = ap.parse_args()
    args.images = args.images or (11125 if args.what == "resume" else 20000)
    out = resume(args) if args.what == "resume" else memory(args)
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
