"""Mutation testing of the pipeline's glue modules with mutmut 3 (a benchmark: not run in CI).

For each group of modules (api, scorers/mllm, readout, aggregate, evaluate, sinks, CLI/config, openai client)
a fixed-seed sample of mutmut's mutants is run against a targeted test selection (mutmut then runs, per
mutant, only the selected tests that call the mutated function). The tree is copied to a scratch folder
first, so the checkout is never touched. Prints a table and writes a JSON report with every survivor's diff.

    OMP_NUM_THREADS=1 python benchmarks/mutation.py --sample 40 --out /tmp/mutation.json
    python benchmarks/mutation.py --source /work/main --groups aggregate,readout --sample 0   # 0: all mutants

Kill rate = (killed + timed out) / sampled mutants; "no tests" (no selected test calls the function) and
"suspicious" count as not killed.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

# group -> (source globs under src/dogiqa, test paths); missing paths are ignored (the tree moves). Selections
# are broad (folders): mutmut records which selected tests call each function and runs only those per mutant.
_CORE = ["tests/core", "tests/mplug_owl3/test_paper_preset_e2e.py"]
GROUPS: dict[str, tuple[list[str], list[str]]] = {
    "api": (["api.py"], [*_CORE, "tests/eval/test_eval_command.py"]),
    "mllm": (["scorers/mllm.py"], [*_CORE, "tests/scorers", "tests/testing"]),
    "readout": (["readout.py"], [*_CORE, "tests/scorers", "tests/backends"]),
    "aggregate": (["aggregate.py"], [*_CORE, "tests/eval/test_reported_numbers.py"]),
    "evaluate": (["evaluate.py"], ["tests/eval"]),
    "sinks": (["sinks.py"], [*_CORE, "tests/sources/test_outputs.py", "tests/sources/test_cli_sources.py"]),
    "cli": (["cli/*.py", "config.py"],
            ["tests/core", "tests/eval/test_eval_command.py", "tests/eval/test_metrics.py",
             "tests/sources/test_cli_sources.py", "tests/serve/test_cli_serve.py", "tests/eval/test_eval_summary.py"]),
    "openai": (["backends/openai_server.py"],
               ["tests/serve/test_openai_server.py", "tests/serve/test_client_policy.py",
                "tests/serve/test_openai_contract.py",
                "tests/serve/test_openai_hardening.py", "tests/serve/test_openai_probe.py",
                "tests/serve/test_server_options.py", "tests/serve/test_llama_server.py"]),
}  # fmt: skip
STATUS = re.compile(r"^\s*(\S+): (.+)$")


def copy_tree(source: Path, dest: Path) -> None:
    """The files git knows in ``source`` (tracked + untracked, not ignored), copied to ``dest``."""
    listed = subprocess.run(
        ["git", "-C", str(source), "ls-files", "-co", "--exclude-standard"],
        check=True, capture_output=True, text=True,
    ).stdout.split("\n")  # fmt: skip
    for rel in filter(None, listed):
        src = source / rel
        if src.is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel)


def module_name(rel: str) -> str:
    return "dogiqa." + rel.removesuffix(".py").replace("/", ".")


def group_files(repo: Path, globs: list[str]) -> list[str]:
    pkg = repo / "src" / "dogiqa"
    found = sorted({p.relative_to(pkg).as_posix() for g in globs for p in pkg.glob(g) if p.name != "__init__.py"})
    return [f for f in found if mutant_names(repo, f)]


def mutant_names(repo: Path, rel: str) -> list[str]:
    from mutmut.mutation.file_mutation import mutate_file_contents

    path = repo / "src" / "dogiqa" / rel
    mutated = mutate_file_contents(str(path), path.read_text())
    return [f"{module_name(rel)}.{n}" for n in mutated.mutant_names]


def write_config(repo: Path, files: list[str], tests: list[str]) -> None:
    """A [tool.mutmut] section in the copy's pyproject.toml (replacing any earlier one)."""
    pyproject = repo / "pyproject.toml"
    text = pyproject.read_text().split("\n[tool.mutmut]\n")[0]
    section = {
        "source_paths": ["src"],
        "only_mutate": [f"src/dogiqa/{f}" for f in files],
        "also_copy": ["tests"],
        "pytest_add_cli_args_test_selection": tests,
        "pytest_add_cli_args": ["-p", "no:cacheprovider"],
    }
    lines = [f"{k} = {json.dumps(v)}" for k, v in section.items()]
    pyproject.write_text(text.rstrip("\n") + "\n\n[tool.mutmut]\n" + "\n".join(lines) + "\n")


def run_group(repo: Path, name: str, sample: int, seed: int, max_children: int, timeout: int) -> dict:
    globs, test_paths = GROUPS[name]
    files = group_files(repo, globs)
    tests = [t for t in test_paths if (repo / t).exists()]
    names = [n for f in files for n in mutant_names(repo, f)]
    chosen = sorted(random.Random(seed).sample(names, sample)) if 0 < sample < len(names) else names
    write_config(repo, files, tests)
    shutil.rmtree(repo / "mutants", ignore_errors=True)
    for sub in ("src", "tests"):  # exist before Python starts, so these PYTHONPATH entries are live
        (repo / "mutants" / sub).mkdir(parents=True)
    env = dict(os.environ, PYTHONPATH=f"{repo / 'mutants' / 'src'}{os.pathsep}{repo / 'mutants' / 'tests'}")
    env["DOGIQA_TEST_MODEL_CACHE"] = str(repo.parent / "model-cache")  # tiny models built once, not per mutant
    env.pop("DOGIQA_FAIL_ON_SKIP", None)
    mutmut = [sys.executable, "-m", "mutmut"]
    start = time.perf_counter()
    run = subprocess.run([*mutmut, "run", "--max-children", str(max_children), *chosen], cwd=repo, env=env,
                         capture_output=True, text=True, timeout=timeout)  # fmt: skip
    seconds = time.perf_counter() - start
    listing = subprocess.run([*mutmut, "results", "--all", "true"], cwd=repo, env=env, capture_output=True, text=True)
    status = {m.group(1): m.group(2) for m in map(STATUS.match, listing.stdout.splitlines()) if m}
    counts: dict[str, int] = {}
    for n in chosen:
        counts[status.get(n, "not run")] = counts.get(status.get(n, "not run"), 0) + 1
    survivors = {}
    for n in chosen:
        if status.get(n) in ("survived", "no tests", "suspicious"):
            shown = subprocess.run([*mutmut, "show", n], cwd=repo, env=env, capture_output=True, text=True)
            survivors[n] = {"status": status.get(n, "not run"), "diff": shown.stdout[-1500:]}
    killed = counts.get("killed", 0) + counts.get("timeout", 0)
    return {
        "group": name, "files": files, "tests": tests, "mutants_total": len(names), "sampled": len(chosen),
        "counts": counts, "killed": killed, "kill_rate": killed / max(1, len(chosen)), "seconds": round(seconds, 1),
        "mutmut_exit": run.returncode, "mutmut_tail": run.stdout[-600:] + run.stderr[-600:], "survivors": survivors,
    }  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--source", type=Path, default=REPO, help="checkout to measure (default: this one)")
    ap.add_argument("--groups", default=",".join(GROUPS), help=f"comma-separated subset of {', '.join(GROUPS)}")
    ap.add_argument("--sample", type=int, default=40, help="mutants per group, fixed seed (0: all)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--work", type=Path, default=Path("/tmp/dogiqa-mutation"), help="scratch folder (wiped)")
    ap.add_argument("--max-children", type=int, default=1, help="mutants run in parallel")
    ap.add_argument("--timeout", type=int, default=3600, help="seconds per group")
    ap.add_argument("--out", type=Path, help="JSON report with the survivors' diffs")
    args = ap.parse_args()

    source = args.source.resolve()
    shutil.rmtree(args.work, ignore_errors=True)
    repo = args.work / "repo"
    copy_tree(source, repo)
    (args.work / "model-cache").mkdir()
    shared = (source.parent / "shared").resolve()
    for link in (args.work / "shared", repo / "shared"):  # tests look for REPO/../shared (REPO = repo/mutants)
        link.symlink_to(shared)
    commit = subprocess.run(["git", "-C", str(source), "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    results = []
    for name in args.groups.split(","):
        res = run_group(repo, name, args.sample, args.seed, args.max_children, args.timeout)
        results.append(res)
        print(f"{name:10s} {res['killed']:4d}/{res['sampled']:<4d} killed ({res['kill_rate']:.1%}) of "
              f"{res['mutants_total']} mutants; {res['counts']}; {res['seconds']:.0f} s", flush=True)  # fmt: skip
        killed, sampled = sum(r["killed"] for r in results), sum(r["sampled"] for r in results)
        if args.out:  # after every group, so a long run reports what it has
            summary = {"source": str(source), "commit": commit.stdout.strip(), "sample": args.sample,
                       "seed": args.seed, "killed": killed, "sampled": sampled, "groups": results}  # fmt: skip
            args.out.write_text(json.dumps(summary, indent=1))
    print(f"{'total':10s} {killed:4d}/{sampled:<4d} killed ({killed / max(1, sampled):.1%})  source {source} "
          f"@ {commit.stdout.strip()}")  # fmt: skip


if __name__ == "__main__":
    main()
