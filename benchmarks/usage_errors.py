"""Wall time of every bad invocation in ``dogiqa.testing.usage_errors`` as a fresh ``python -m dogiqa.cli``
process: a usage error must be reported within 3 s (goal), before any model, segmenter or image loads.

    OMP_NUM_THREADS=1 python benchmarks/usage_errors.py [--repeat 1]

Prints one line per case (exit code, wall seconds, CPU seconds of the child, the error line) and the
min / median / max. On a machine shared with other jobs the wall time includes waiting for a core; the CPU time
does not.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from dogiqa.testing.usage_errors import bad_calls, prepare

SRC = Path(__file__).resolve().parents[1] / "src"


def run(args: list[str]) -> tuple[int, float, float, str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")])}
    env.setdefault("HF_HUB_OFFLINE", "1")
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "dogiqa.cli", *args], capture_output=True, text=True, env=env,
                          timeout=120)  # fmt: skip
    seconds = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    lines = (proc.stderr + proc.stdout).strip().splitlines()
    return proc.returncode, seconds, cpu, lines[-1] if lines else ""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=1, help="runs per case (the fastest is kept)")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="dogiqa-usage-"))
    prepare(tmp)
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    _, wall, cpu, _ = min((run(["--help"]) for _ in range(args.repeat)), key=lambda r: r[1])
    print(f"python -m dogiqa.cli --help: wall {wall:.2f} s, cpu {cpu:.2f} s (interpreter + CLI import)")
    walls, cpus = [], []
    for case in bad_calls(tmp):
        code, wall, cpu, line = min((run(case.args) for _ in range(args.repeat)), key=lambda r: r[1])
        walls.append(wall)
        cpus.append(cpu)
        print(f"{code} wall {wall:5.2f} s cpu {cpu:5.2f} s  {case.kind:<14} {line[:80]}")
    for name, xs in (("wall", walls), ("cpu", cpus)):
        print(f"{len(xs)} cases, {name}: min {min(xs):.2f} s, median {statistics.median(xs):.2f} s, "
              f"max {max(xs):.2f} s; over 3 s: {sum(x > 3 for x in xs)}")  # fmt: skip


if __name__ == "__main__":
    main()
