"""``dogiqa eval`` with a tiny real VLM: records, metrics, table, plot; resume; re-aggregation; SIGKILL."""

from __future__ import annotations

import csv
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import typer
from PIL import Image
from typer.testing import CliRunner

from dogiqa.cache import RawCache
from dogiqa.datasets import load_dataset
from dogiqa.runners.evaluation import run_eval

SRC = Path(__file__).resolve().parents[2] / "src"
N_IMAGES = 8


@pytest.fixture(scope="module")
def koniq_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A KonIQ-layout dataset of 8 generated 64x64 JPEGs of decreasing quality (more noise, lower MOS)."""
    root = tmp_path_factory.mktemp("koniq10k")
    (root / "1024x768").mkdir()
    rng = np.random.default_rng(0)
    rows = []
    for i in range(N_IMAGES):
        ramp = np.linspace(0, 255, 64)[None, :, None] * np.ones((64, 1, 3))
        img = np.clip(ramp + rng.normal(0, 5 + 12 * i, (64, 64, 3)), 0, 255).astype(np.uint8)
        img[16:48, 8:40] = (200, 40, 40)  # an object for the segmenter
        name = f"{5000 + i}.jpg"
        Image.fromarray(img).save(root / "1024x768" / name, quality=90)
        rows.append([name, 0, 0, 0, 0, 0, 0, 4.5 - 0.4 * i, 0.5, 50.0])
    with open(root / "koniq10k_scores_and_distributions.csv", "w", newline="") as f:
        writer = csv.writer(f, quoting=csv.QUOTE_NONNUMERIC)
        writer.writerow(["image_name", "c1", "c2", "c3", "c4", "c5", "c_total", "MOS", "SD", "MOS_zscore"])
        writer.writerows(rows)
    return root


def _app() -> typer.Typer:
    from dogiqa.cli import app

    return app


def _eval(args: list[str]) -> dict:
    result = CliRunner().invoke(_app(), ["eval", *args, "--json", "-q", "--bootstrap", "50"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout.strip().splitlines()[-1])


def _scores(path: Path) -> dict[str, float]:
    return {Path(r["path"]).name: r["score"] for r in map(json.loads, path.read_text().splitlines())}


def test_eval_resume_and_reaggregate_equals_fresh_run(tiny_qwen2vl_dir: Path, koniq_root: Path, tmp_path: Path) -> None:
    model = ["--model", str(tiny_qwen2vl_dir), "--segmenter", "felzenszwalb"]
    out = tmp_path / "out"
    first = _eval(["-d", "koniq", "--root", str(koniq_root), "-o", str(out), *model])
    assert first["n"] == N_IMAGES and first["scored"] == N_IMAGES and first["resumed"] == 0
    assert first["missing"] == 0 and isinstance(first["srcc"], float) and "krcc" in first
    records = out / "records-koniq-recommended-paper.jsonl"
    lines = [json.loads(x) for x in records.read_text().splitlines()]
    assert [Path(r["path"]).name for r in lines] == [f"{5000 + i}.jpg" for i in range(N_IMAGES)]
    assert all(r["error"] is None and r["regions"] and r["global_score"] is not None for r in lines)
    assert (out / "scatter-koniq-recommended-paper.png").read_bytes()[:4] == b"\x89PNG"
    table = (out / "table.md").read_text()
    assert "| recommended-paper |" in table and "| Dog-IQA (paper) | 0.819 / 0.811 |" in table

    again = _eval(["-d", "koniq", "--root", str(koniq_root), "-o", str(out), *model])
    assert again["resumed"] == N_IMAGES and again["scored"] == 0 and again["srcc"] == first["srcc"]

    # re-aggregation from the cache alone: labels only, no --root, no model loaded
    re_code = _eval(["-d", "koniq", "--labels", str(koniq_root), "-o", str(out), *model,
                     "--reaggregate", "--aggregation", "code"])  # fmt: skip
    fresh_out = tmp_path / "fresh"
    fresh = _eval(["-d", "koniq", "--root", str(koniq_root), "-o", str(fresh_out), *model, "--aggregation", "code"])
    got = _scores(out / "records-koniq-recommended-code.jsonl")
    want = _scores(fresh_out / "records-koniq-recommended-code.jsonl")
    assert set(got) == set(want) and all(got[k] == pytest.approx(want[k], abs=1e-9) for k in want)
    assert got != _scores(records)  # the aggregation did change the scores
    assert re_code["srcc"] == pytest.approx(fresh["srcc"]) and re_code["plcc"] == pytest.approx(fresh["plcc"])
    table = (out / "table.md").read_text()
    assert "| recommended-paper |" in table and "| recommended-code |" in table
    # resuming the paper run with another aggregation re-finalizes the resumed records: no mixing
    mixed = tmp_path / "resumed-code"
    resumed = _eval(["-d", "koniq", "--root", str(koniq_root), "-o", str(mixed), "--cache", str(out / "cache.sqlite"),
                     *model, "--aggregation", "code"])  # fmt: skip
    assert resumed["resumed"] == N_IMAGES and resumed["scored"] == 0
    assert _scores(mixed / "records-koniq-recommended-code.jsonl") == pytest.approx(want, abs=1e-9)


def test_reaggregate_needs_what_the_run_scored(tiny_qwen2vl_dir: Path, koniq_root: Path, tmp_path: Path) -> None:
    from dogiqa.api import DogIQA
    from dogiqa.runners.evaluation import reaggregate

    ds = load_dataset("koniq", root=koniq_root)
    cache = RawCache(tmp_path / "c.sqlite")
    request = {"model": str(tiny_qwen2vl_dir), "segmenter": "none", "aggregation": "global"}
    run_eval(ds, lambda: DogIQA(model=str(tiny_qwen2vl_dir), segmenter="none", aggregation="global"), cache, request)
    glob = reaggregate(ds, cache, request, "global")
    assert glob.failed == 0 and len(glob.records) == N_IMAGES
    local = reaggregate(ds, cache, request, "local")  # the global-only run never scored regions
    assert local.failed == N_IMAGES and "no region scores" in local.records[0].error
    with pytest.raises(ValueError, match="nothing to re-aggregate"):
        reaggregate(ds, cache, {**request, "model": "other"}, "code")


def test_c_max_from_data(tiny_qwen2vl_dir: Path, koniq_root: Path, tmp_path: Path) -> None:
    """--c-max-from-data uses the dataset's largest region count in the paper formula (checked by hand)."""
    out = tmp_path / "out"
    args = ["-d", "koniq", "--root", str(koniq_root), "-o", str(out), "--model", str(tiny_qwen2vl_dir),
            "--segmenter", "felzenszwalb", "--aggregation", "paper", "--no-plot"]  # fmt: skip
    report = _eval([*args, "--c-max-from-data"])
    records = [json.loads(x) for x in (out / "records-koniq-recommended-paper.jsonl").read_text().splitlines()]
    c_max = max(len(r["regions"]) for r in records)
    assert report["c_max"] == c_max
    for r in records:
        local = sum(g["score"] * g["weight"] for g in r["regions"]) / sum(g["weight"] for g in r["regions"])
        want = 0.5 * r["global_score"] + 0.5 * local + len(r["regions"]) * 7 / c_max
        assert r["score"] == pytest.approx(want, abs=1e-9)
    plain = _eval(args)  # from the cache, with the default c_max = 71
    assert plain["resumed"] == N_IMAGES and "c_max" not in plain


def test_resumed_run_does_not_load_the_model(tiny_qwen2vl_dir: Path, koniq_root: Path, tmp_path: Path) -> None:
    from dogiqa.api import DogIQA

    ds = load_dataset("koniq", root=koniq_root)
    cache = RawCache(tmp_path / "c.sqlite")
    request = {"model": str(tiny_qwen2vl_dir), "segmenter": "none", "aggregation": "global"}
    built = []

    def pipeline() -> DogIQA:
        built.append(1)
        return DogIQA(model=str(tiny_qwen2vl_dir), segmenter="none", aggregation="global", cache=cache)

    run = run_eval(ds, pipeline, cache, request)
    assert run.scored == N_IMAGES and built == [1]
    assert cache.count_raw() == N_IMAGES  # one global answer per image stored raw

    def no_model() -> DogIQA:
        raise AssertionError("the model was loaded although every image was finished")

    resumed = run_eval(ds, no_model, cache, {**request, "aggregation": "paper", "device": "cpu"})
    assert resumed.resumed == N_IMAGES and [r.score for r in resumed.records] == [r.score for r in run.records]
    fresh = run_eval(ds, pipeline, cache, {**request, "readout": "int"})  # another readout: a new run
    assert fresh.scored == N_IMAGES and built == [1, 1]


def _command() -> list[str]:
    return [sys.executable, "-m", "dogiqa.cli", "eval"]


def _finished(db: Path) -> int:
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5) as con:
            return con.execute("SELECT COUNT(*) FROM images").fetchone()[0]
    except sqlite3.OperationalError:  # not created yet
        return 0


def test_sigkill_mid_run_resumes_without_loss(tiny_qwen2vl_dir: Path, koniq_root: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    args = [*_command(), "-d", "koniq", "--root", str(koniq_root), "-o", str(out), "--model", str(tiny_qwen2vl_dir),
            "--segmenter", "none", "--chunk-size", "1", "--no-plot"]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(SRC), "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(
        [*args, "-q", "--bootstrap", "10"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    db = out / "cache.sqlite"
    deadline = time.time() + 120
    while proc.poll() is None and time.time() < deadline and _finished(db) < 2:
        time.sleep(0.02)
    alive = proc.poll() is None
    os.kill(proc.pid, signal.SIGKILL)
    _, err = proc.communicate()
    assert alive, f"the run ended before it could be killed (rc {proc.returncode}): {err.decode()[-2000:]}"
    cache = RawCache(db)
    assert cache.integrity_ok()
    finished = _finished(db)
    assert 2 <= finished < N_IMAGES
    before = {p: json.loads(rec) for _, p, rec in cache.images(next(iter(cache.runs())))}
    cache.close()

    # resume in-process (the same command; a second interpreter start would only cost time)
    report = _eval(args[len(_command()) :])
    assert report["resumed"] == finished and report["scored"] == N_IMAGES - finished  # nothing recomputed
    assert report["n"] == N_IMAGES and report["missing"] == 0 and report["failed"] == 0  # nothing lost
    records = {r["path"]: r for r in map(json.loads, (out / "records-koniq-recommended-paper.jsonl").open())}
    assert len(records) == N_IMAGES
    for path, rec in before.items():  # images finished before the kill come back exactly as they were
        assert records[path]["score"] == rec["score"] and records[path]["regions"] == rec["regions"]


def test_eval_usage_errors(koniq_root: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad.sqlite"
    bad.write_bytes(b"not a database" * 100)
    runner = CliRunner()
    r = runner.invoke(
        _app(), ["eval", "-d", "koniq", "--root", str(koniq_root), "-o", str(tmp_path), "--cache", str(bad)]
    )
    assert r.exit_code == 2 and "bad.sqlite" in r.output
    r = runner.invoke(_app(), ["eval", "-d", "koniq", "--root", str(tmp_path / "nowhere"), "-o", str(tmp_path)])
    assert r.exit_code == 2 and "koniq10k_scores_and_distributions.csv" in r.output
    r = runner.invoke(_app(), ["eval", "-d", "koniq", "-o", str(tmp_path)])
    assert r.exit_code != 0 and "--root" in r.output


def test_lower_is_better_scorer_is_negated_and_gets_its_own_row(koniq_root: Path, tmp_path: Path) -> None:
    from scipy import stats

    out = tmp_path / "out"
    report = _eval(["--dataset", "koniq", "--root", str(koniq_root), "-o", str(out), "--scorer", "piqe",
                    "--segmenter", "none", "--aggregation", "global"])  # fmt: skip
    assert report["negated"] is True and report["method"] == "piqe-global"
    scores = _scores(out / "records-koniq-piqe-global.jsonl")
    mos = {f"{5000 + i}.jpg": 4.5 - 0.4 * i for i in range(N_IMAGES)}
    names = sorted(mos)
    expected = stats.spearmanr([-scores[n] for n in names], [mos[n] for n in names]).statistic
    assert report["srcc"] == pytest.approx(expected, abs=1e-4)
    table = (out / "table.md").read_text()
    assert "| piqe-global |" in table and "negated score" in table


def test_finished_run_asked_again_reuses_its_metrics(koniq_root: Path, tmp_path: Path) -> None:
    """The same finished eval again: the saved metrics come back and no output file is rewritten; any change
    the numbers depend on (an option, a label, an image, the records file) computes them again."""
    root = tmp_path / "koniq10k"
    root.mkdir()
    (root / "1024x768").symlink_to(koniq_root / "1024x768")
    labels = (koniq_root / "koniq10k_scores_and_distributions.csv").read_text()
    (root / "koniq10k_scores_and_distributions.csv").write_text(labels)
    out = tmp_path / "out"
    args = ["-d", "koniq", "--root", str(root), "-o", str(out), "--scorer", "piqe", "--aggregation", "global"]
    metrics = out / "metrics-koniq-piqe-global.json"
    records = out / "records-koniq-piqe-global.jsonl"
    first = _eval(args)
    stamps = {p: p.stat().st_mtime_ns for p in (metrics, records)}
    again = _eval(args)
    assert again["reused"] is True and again["resumed"] == N_IMAGES and again["scored"] == 0
    same = ("srcc", "plcc", "krcc", "ci", "plcc_logistic", "rmse_logistic")
    assert {k: again[k] for k in same} == {k: first[k] for k in same}
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps  # nothing rewritten
    assert "reused" not in json.loads(metrics.read_text())  # the file describes the run that computed it

    other = _eval([*args, "--missing", "paper"])  # another option the metrics depend on: computed
    assert "reused" not in other and other["resumed"] == N_IMAGES and other["missing_policy"] == "paper"
    fewer = CliRunner().invoke(_app(), ["eval", *args, "--json", "-q", "--bootstrap", "20"])
    assert fewer.exit_code == 0 and '"reused"' not in fewer.stdout  # another bootstrap count
    assert json.loads(fewer.stdout.strip().splitlines()[-1])["bootstrap"]["n"] == 20
    assert _eval(args).get("reused") is None  # back to 50 resamples: metrics-*.json now holds 20, recomputed

    # a changed label: recomputed, and the new label is used
    rows = labels.splitlines()
    rows[1] = rows[1].replace("4.5,", "1.0,")
    (root / "koniq10k_scores_and_distributions.csv").write_text("\n".join(rows) + "\n")
    changed = _eval(args)
    assert changed.get("reused") is None and changed["srcc"] != first["srcc"]
    assert _eval(args)["reused"] is True
    # a truncated records file: recomputed and rewritten whole
    records.write_text(records.read_text().splitlines()[0] + "\n")
    assert _eval(args).get("reused") is None and len(records.read_text().splitlines()) == N_IMAGES
    # --no-resume always computes
    result = CliRunner().invoke(_app(), ["eval", *args, "--json", "-q", "--bootstrap", "50", "--no-resume"])
    assert result.exit_code == 0 and json.loads(result.stdout.strip().splitlines()[-1])["scored"] == N_IMAGES
