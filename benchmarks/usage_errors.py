"""Wall time of every bad invocation in ``dogiqa.testing.usage_errors`` as a fresh ``python -m dogiqa.cli``
process: a usage error must be reported within 3 s (goal), before any model, segmenter or image loads.

    OMP_NUM_THREADS=1 python benchmarks/usage_errors.py [--repeat 1]

Prints one line per case (exit code, seconds, the error line) and the min / median / max.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from dogiqa.testing.usage_errors import bad_calls, prepare

SRC = Path(__file__).resolve().parents[1] / "src"


def run(args: list[str]) -> tuple[int, float, str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")])}
    env.setdefault("HF_HUB_OFFLINE", "1")
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "dogiqa.cli", *args], capture_output=True, text=True, env=env,
                          timeout=120)  # fmt: skip
    seconds = time.perf_counter() - start
    lines = (proc.stderr + proc.stdout).strip().splitlines()
    return proc.returncode, seconds, lines[-1] if lines else ""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=1, help="runs per case (the fastest is kept)")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="dogiqa-usage-"))
    prepare(tmp)
    baseline = min(run(["--help"])[1] for _ in range(args.repeat))
    print(f"python -m dogiqa.cli --help: {baseline:.2f} s (interpreter + CLI import)")
    times = []
    for case in bad_calls(tmp):
        results = [run(case.args) for _ in range(args.repeat)]
        code, seconds, line = min(results, key=lambda r: r[1])
        times.append(seconds)
        print(f"{code} {seconds:5.2f} s  {case.kind:<14} {line[:90]}")
    print(f"{len(times)} cases: min {min(times):.2f} s, median {statistics.median(times):.2f} s, "
          f"max {max(times):.2f} s; over 3 s: {sum(t > 3 for t in times)}")  # fmt: skip


if __name__ == "__main__":
    main()
