"""Scale figures for collections: a generated WebDataset scored locally and on Ray, memory over time, kill -9.

    python benchmarks/sources_scale.py --n 100000 --engines local,ray --kill-after 60 --vlm 2000

1. Writes N small images as WebDataset shards (``--per-shard`` samples each; ``--distinct`` generated images
   reused, so writing is cheap) under ``--workdir``.
2. Scores them with a classical scorer (``--scorer``, PIQE by default) with the local engine (Parquet output)
   and with Ray (``--workers`` actors), each run in a child process whose whole process tree (Ray's raylet and
   workers included) is sampled for RSS every ``--every`` seconds: samples/s, RSS at 10 % of the run and peak.
3. ``--kill-after S``: a Ray run is killed with SIGKILL (its whole process group) after S seconds and run again;
   the records are then counted: every sample exactly once (none lost, none twice).
4. ``--vlm N``: N samples with the tiny random Qwen2-VL (global preset), local engine.

Prints a table and, with ``--json``, one JSON object. Asserts nothing.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
SRC = HERE.parent / "src"


# -- the child: one run ----------------------------------------------------------------------------------
def child(args: argparse.Namespace) -> None:
    """Score the shards with one engine (run in its own process, measured from outside)."""
    from dogiqa.sources import open_sources

    spec = json.loads(args.child)
    kwargs = spec["pipeline"]
    start = time.perf_counter()
    if spec["engine"] == "local":
        from dogiqa.api import DogIQA
        from dogiqa.runners.local import run_local

        kw = dict(kwargs)
        iqa = DogIQA.from_preset(kw.pop("preset"), **kw)
        items = itertools.islice(open_sources(spec["shards"]), spec.get("limit"))
        summary = run_local(iqa, items, Path(spec["out"]) / "scores.parquet")
    else:
        from dogiqa.runners.ray import run_ray

        os.environ.setdefault("RAY_AUTH_MODE", "disabled")
        summary = run_ray(spec["shards"], spec["out"], kwargs, num_workers=spec["workers"], jsonl=True,
                          ray_init_kwargs={"num_cpus": spec["workers"]})  # fmt: skip
    skipped = getattr(summary, "skipped", 0)
    skipped = len(skipped) if isinstance(skipped, list) else skipped
    print(json.dumps({"scored": summary.scored, "failed": summary.failed, "skipped": skipped,
                      "seconds": time.perf_counter() - start}))  # fmt: skip


# -- the parent: measure children ------------------------------------------------------------------------
def tree_rss(pid: int) -> int:
    """Memory of a process and all its descendants: the sum of their PSS (shared pages, such as Ray's object
    store mapped by every worker, counted once in total), RSS where PSS cannot be read."""
    import psutil

    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0
    total = 0
    for p in procs:
        try:
            total += p.memory_full_info().pss
        except psutil.AccessDenied:
            total += p.memory_info().rss
        except psutil.NoSuchProcess:
            pass
    return total


def measure(spec: dict, every: float, kill_after: float | None = None) -> dict:
    """Run one child; sample its process tree's RSS; kill -9 its process group after ``kill_after`` s."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")])}
    env.setdefault("OMP_NUM_THREADS", "1")
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", json.dumps(spec)]
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env, start_new_session=True)
    samples: list[tuple[float, int]] = []
    killed = False
    while proc.poll() is None:
        elapsed = time.perf_counter() - t0
        samples.append((elapsed, tree_rss(proc.pid)))
        if kill_after is not None and elapsed >= kill_after:
            os.killpg(proc.pid, signal.SIGKILL)
            killed = True
            break
        time.sleep(every)
    out, _ = proc.communicate()
    wall = time.perf_counter() - t0
    if killed:
        _reap_session(proc.pid)
    result = {"wall_s": wall, "killed": killed, "rss_mb": [(round(t, 1), round(r / 2**20)) for t, r in samples]}
    lines = out.decode().strip().splitlines() if out else []
    if lines and not killed:
        result.update(json.loads(lines[-1]))
    return result


def _reap_session(sid: int) -> None:
    """Processes of the killed run that left its process group (none expected); killed too."""
    import psutil

    for p in psutil.process_iter():
        try:
            if os.getsid(p.pid) == sid:
                p.kill()
        except (psutil.Error, OSError):
            pass


def rss_summary(run: dict) -> dict:
    """Memory at a quarter of the run (start-up done), its peak, and its peak over the last half."""
    rss = [r for _, r in run["rss_mb"] if r]
    if not rss:
        return {}
    return {"rss_25pct_mb": rss[len(rss) // 4], "rss_peak_mb": max(rss),
            "rss_peak_2nd_half_mb": max(rss[len(rss) // 2 :]), "rss_end_mb": rss[-1]}  # fmt: skip


def count_parts(out: Path) -> dict:
    import pyarrow.parquet as pq

    parts = sorted(out.glob("part-*.parquet"))
    rows = [r for p in parts for r in pq.read_table(p, columns=["source", "key"]).to_pylist()]
    idents = {(r["source"], r["key"]) for r in rows}
    return {"rows": len(rows), "unique": len(idents)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--per-shard", type=int, default=1000)
    ap.add_argument("--size", type=int, default=32, help="image side in pixels")
    ap.add_argument("--distinct", type=int, default=500)
    ap.add_argument("--scorer", default="piqe")
    ap.add_argument("--engines", default="local,ray")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--every", type=float, default=2.0, help="RSS sampling interval (s)")
    ap.add_argument("--kill-after", type=float, default=None, help="kill -9 a Ray run after S s, then resume")
    ap.add_argument("--vlm", type=int, default=0, help="samples scored with the tiny Qwen2-VL (0: skip)")
    ap.add_argument("--workdir", type=Path, default=Path("/tmp/dogiqa-sources-scale"))
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(args)
        return
    sys.path.insert(0, str(SRC))
    from dogiqa.testing.collections import write_shards

    work = args.workdir / f"n{args.n}-s{args.size}"
    shard_dir = work / "shards"
    if not (shard_dir / "done").exists():
        t = time.perf_counter()
        write_shards(shard_dir, args.n, args.per_shard, size=(args.size, args.size), distinct=args.distinct)
        (shard_dir / "done").write_text(f"{time.perf_counter() - t:.1f}")
    shards = [str(p) for p in sorted(shard_dir.glob("data-*.tar"))]
    pipeline = {"preset": "global", "scorer": args.scorer, "segmenter": "none", "aggregation": "global"}
    report: dict = {"n": args.n, "shards": len(shards), "size": args.size, "scorer": args.scorer,
                    "cpus": os.cpu_count(), "load_avg": os.getloadavg()[0], "runs": {}}  # fmt: skip
    for engine in args.engines.split(","):
        out = work / f"out-{engine}"
        subprocess.run(["rm", "-rf", str(out)], check=True)
        out.mkdir(parents=True)
        spec = {"engine": engine, "shards": shards, "out": str(out), "pipeline": pipeline, "workers": args.workers}
        run = measure(spec, args.every)
        run["samples_per_s"] = run.get("scored", 0) / run["wall_s"] if run.get("scored") else None
        run.update(rss_summary(run))
        if engine == "ray":
            run["records"] = count_parts(out)
        report["runs"][engine] = run
        _print_run(engine, run)
    if args.kill_after:
        report["kill_resume"] = kill_and_resume(work, shards, pipeline, args)
    if args.vlm:
        report["vlm"] = vlm_run(work, shards, args)
    if args.json:
        for run in report["runs"].values():
            run.pop("rss_mb", None)
        print(json.dumps(report, indent=1))


def kill_and_resume(work: Path, shards: list[str], pipeline: dict, args: argparse.Namespace) -> dict:
    out = work / "out-kill"
    subprocess.run(["rm", "-rf", str(out)], check=True)
    spec = {"engine": "ray", "shards": shards, "out": str(out), "pipeline": pipeline, "workers": args.workers}
    measure(spec, 1.0, kill_after=args.kill_after)
    after_kill = count_parts(out)
    second = measure(spec, args.every)
    final = count_parts(out)
    jsonl = sum(1 for _ in (out / "results.jsonl").open()) if (out / "results.jsonl").exists() else 0
    res = {
        "killed_after_s": args.kill_after,
        "records_after_kill": after_kill,
        "resumed": {k: second.get(k) for k in ("scored", "failed", "skipped")},
        "final": final,
        "jsonl_lines": jsonl,
        "lost": args.n - final["unique"],
        "duplicated": final["rows"] - final["unique"],
        "resume_wall_s": second["wall_s"],
    }
    print(f"kill -9 after {args.kill_after:.0f} s: {after_kill['unique']} records kept; resume scored "
          f"{second.get('scored')} and skipped {second.get('skipped')}; final {final['unique']} unique of "
          f"{final['rows']} rows, {jsonl} JSONL lines: lost {res['lost']}, duplicated {res['duplicated']}")
    return res


def vlm_run(work: Path, shards: list[str], args: argparse.Namespace) -> dict:
    from dogiqa.testing import build_tiny_qwen2vl

    model = work / "tiny-qwen2vl"
    if not (model / "config.json").exists():
        build_tiny_qwen2vl(model, seed=0, digit_scale=30.0)
    need = -(-args.vlm // args.per_shard)
    out = work / "out-vlm"
    subprocess.run(["rm", "-rf", str(out)], check=True)
    out.mkdir(parents=True)
    pipeline = {"preset": "global", "model": str(model), "segmenter": "none", "device": "cpu", "dtype": "float32"}
    spec = {"engine": "local", "shards": shards[:need], "out": str(out), "pipeline": pipeline, "workers": 1,
            "limit": args.vlm}
    run = measure(spec, args.every)
    run["samples_per_s"] = run.get("scored", 0) / run["wall_s"] if run.get("scored") else None
    run.update(rss_summary(run))
    run.pop("rss_mb", None)
    _print_run(f"local, tiny Qwen2-VL, {args.vlm} samples", run)
    return run


def _print_run(name: str, run: dict) -> None:
    rate = run.get("samples_per_s")
    print(f"{name}: {run.get('scored')} scored, {run.get('failed')} failed in {run['wall_s']:.1f} s "
          f"({rate or 0:.1f} samples/s incl. start-up); memory (PSS) of the process tree: "
          f"{run.get('rss_25pct_mb')} MB at 25 % of the run, peak {run.get('rss_peak_mb')} MB, end "
          f"{run.get('rss_end_mb')} MB")  # fmt: skip
    series = run.get("rss_mb") or []
    step = max(1, len(series) // 12)
    print("  RSS over time (s, MB): " + ", ".join(f"{t:.0f}:{r}" for t, r in series[::step]))


if __name__ == "__main__":
    main()
