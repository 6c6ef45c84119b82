"""Run ``dogiqa score`` over the generated hostile corpus and print how each kind of input was handled.

    OMP_NUM_THREADS=1 timeout 900 python benchmarks/hostile_corpus.py [--keep DIR]

The corpus (``dogiqa.testing.hostile``) is written to a temporary folder; the CLI scores it with a tiny random
Qwen2-VL (the real transformers path, processor limits included), plus the character devices and a FIFO passed
by name. Prints one line per kind (expected, got, the record's error) and a tally per category; exits 1 when a
kind was not handled as expected. Asserts nothing else; the figures go to RESULTS.md.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from dogiqa.results import ImageResult
from dogiqa.testing import build_tiny_qwen2vl
from dogiqa.testing.hostile import DEVICE_PATHS, build_corpus


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", type=Path, help="write the corpus and outputs here instead of a temp folder")
    args = parser.parse_args()
    work = args.keep or Path(tempfile.mkdtemp(prefix="dogiqa-hostile-"))
    corpus = work / "corpus"
    kinds = build_corpus(corpus)
    model = build_tiny_qwen2vl(work / "tiny-qwen2vl", seed=0, digit_scale=30.0)
    fifo = work / "by-name.fifo"
    os.mkfifo(fifo)
    out = work / "out.jsonl"
    named = [*DEVICE_PATHS, str(fifo), str(work / "missing.png")]
    cmd = [sys.executable, "-m", "dogiqa.cli", "score", str(corpus), *named, "--model", str(model), "--segmenter",
           "none", "--aggregation", "global", "-o", str(out), "--overwrite", "--verbose", "-q"]  # fmt: skip
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=900)
    seconds = time.perf_counter() - start
    records = {}
    with open(out, encoding="utf-8") as fh:
        for line in fh:
            rec = ImageResult.from_dict(json.loads(line))
            records[rec.path] = rec
    log = proc.stdout + proc.stderr
    print(f"$ {' '.join(cmd[1:4])} ... -> exit {proc.returncode} in {seconds:.1f} s; {len(records)} records")
    summary = [line for line in log.splitlines() if " scored, " in line]
    print(summary[-1] if summary else "(no summary line)")
    tally: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    bad = 0
    for kind in kinds:
        path = str(corpus / kind.path)
        rec = records.get(path)
        if kind.expect in ("skipped", "none"):
            got = "record" if rec else ("skipped" if kind.expect == "skipped" and _listed(log, kind.path) else "none")
        else:
            got = "missing" if rec is None else ("scored" if rec.ok else "error")
        ok = got == kind.expect or (kind.expect == "scored" and got == "error" and "processor" in (rec.error or ""))
        bad += not ok
        tally[kind.category][f"{kind.expect}->{got}"] += 1
        detail = "" if rec is None or rec.ok else (rec.error or "").split(": ", 1)[-1][:110]
        print(f"{'ok ' if ok else 'BAD'} {kind.category:9s} {kind.name:28s} {kind.expect:8s} {got:8s} {detail}")
    for name in named:
        rec = records.get(name)
        print(f"{'ok ' if rec and not rec.ok else 'BAD'} by-name   {name:28s} error    "
              f"{'error' if rec and not rec.ok else 'missing'} {(rec.error or '')[:110] if rec else ''}")  # fmt: skip
        bad += not (rec and not rec.ok)
    print(f"\n{len(kinds)} corpus kinds + {len(named)} paths by name; per category:")
    for category, counts in sorted(tally.items()):
        print(f"  {category:9s} " + ", ".join(f"{k}: {v}" for k, v in sorted(counts.items())))
    print(f"{bad} kinds not handled as expected; exit code {proc.returncode} (1: some inputs failed)")
    return 1 if bad else 0


def _listed(log: str, rel: str) -> bool:
    """Whether ``--verbose`` listed the skipped path (its last component appears in a 'skipped' line)."""
    leaf = Path(rel).name
    return any("skipped" in line and leaf in line for line in log.splitlines())


if __name__ == "__main__":
    raise SystemExit(main())
