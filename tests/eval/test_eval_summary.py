"""``dogiqa eval``'s summary for a user: the metrics file and its fields, the printed line and file list, the
missing-image messages, --method/--limit/--cache/--no-plot/--json/--missing/--no-resume, and the exit codes.

The classical NIQE scorer (no model weights) keeps each run to about a second; the expected correlations are
computed with scipy from the records the run wrote and the labels written here.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from scipy import stats
from typer.testing import CliRunner

from dogiqa.cli import app

NIQE = ["--scorer", "niqe", "--segmenter", "none", "--aggregation", "global", "-q", "--bootstrap", "20"]
MOS = {"n0.png": 5.0, "n1.png": 3.5, "n2.png": 4.0, "n3.png": 1.0}


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A generic dataset: four 96x96 images of increasing noise and their MOS (labels.csv: name,mos)."""
    folder = tmp_path_factory.mktemp("generic")
    rng = np.random.default_rng(2)
    for i, name in enumerate(MOS):
        ramp = np.linspace(30, 220, 96)[None, :, None] * np.ones((96, 1, 3))
        arr = np.clip(ramp + rng.normal(0, 4 + 20 * i, (96, 96, 3)), 0, 255).astype(np.uint8)
        arr[20:70, 15:60] = (200, 40, 40)  # an object for the segmenter
        Image.fromarray(arr).save(folder / name)
    (folder / "labels.csv").write_text("name,mos\n" + "".join(f"{k},{v}\n" for k, v in MOS.items()))
    return folder


def run(root: Path, out: Path, *args: str, code: int = 0):
    res = CliRunner().invoke(app, ["eval", "-d", "generic", "--root", str(root), "-o", str(out), *NIQE, *args])
    assert res.exit_code == code, res.output
    return res


def scores(path: Path) -> dict[str, float | None]:
    return {Path(r["path"]).name: r["score"] for r in map(json.loads, path.read_text().splitlines())}


def test_metrics_file_line_and_files(root: Path, tmp_path: Path):
    out = tmp_path / "out"
    res = run(root, out, "--json")
    tag = "generic-niqe-global"  # PRESET-AGGREGATION, the scorer's name for a classical scorer
    records, metrics = out / f"records-{tag}.jsonl", out / f"metrics-{tag}.json"
    got = scores(records)
    assert list(got) == list(MOS)  # label order
    names = list(MOS)
    want_srcc = stats.spearmanr([-got[n] for n in names], [MOS[n] for n in names]).statistic  # NIQE: lower is better
    want_plcc = stats.pearsonr([-got[n] for n in names], [MOS[n] for n in names])[0]
    report = json.loads(metrics.read_text())
    assert report["srcc"] == pytest.approx(want_srcc, abs=1e-9) and report["plcc"] == pytest.approx(want_plcc)
    assert report["n"] == 4 and report["missing"] == 0 and report["dataset"] == "generic"
    assert report["method"] == "niqe-global" and report["negated"] is True
    assert (report["resumed"], report["scored"], report["failed"], report["failures"]) == (0, 4, 0, [])
    assert report["invalid_answers"] == 0 and report["config"]["scorer"] == "niqe"
    assert report["config"]["pipeline"]["aggregation"]["method"] == "global"
    assert json.loads(res.stdout.strip().splitlines()[-1]) == report  # --json: the same report on stdout
    text = " ".join(res.output.split())
    line = (f"generic (niqe-global): SRCC {report['srcc']:.4f} PLCC {report['plcc']:.4f} n=4 missing=0 resumed=0 "
            "scored=4 failed=0")  # fmt: skip
    assert line in text
    compact = re.sub(r"\s+", "", res.output)
    for kind, path in (("records", records), ("metrics", metrics), ("plot", out / f"scatter-{tag}.png"),
                       ("table_md", out / "table.md"), ("table_csv", out / "table.csv")):  # fmt: skip
        assert f"{kind}:{path}" in compact and path.is_file(), kind  # (rich wraps long paths)
    assert (out / "cache.sqlite").is_file()
    assert "| niqe-global |" in (out / "table.md").read_text()


def test_resume_and_no_resume(root: Path, tmp_path: Path):
    out = tmp_path / "out"
    first = run(root, out, "--json")
    again = json.loads(run(root, out, "--json").stdout.strip().splitlines()[-1])
    assert (again["resumed"], again["scored"]) == (4, 0)
    assert again["srcc"] == json.loads(first.stdout.strip().splitlines()[-1])["srcc"]
    redo = json.loads(run(root, out, "--json", "--no-resume").stdout.strip().splitlines()[-1])
    assert (redo["resumed"], redo["scored"]) == (0, 4)


def test_method_limit_cache_and_no_plot(root: Path, tmp_path: Path):
    out, cache = tmp_path / "out", tmp_path / "elsewhere" / "c.sqlite"
    cache.parent.mkdir()
    res = run(root, out, "--method", "my run", "--limit", "2", "--cache", str(cache), "--no-plot")
    assert list(scores(out / "records-generic-my-run.jsonl")) == ["n0.png", "n1.png"]
    report = json.loads((out / "metrics-generic-my-run.json").read_text())
    assert report["n"] == 2 and report["n_labels"] == 2 and report["method"] == "my run"
    assert report["srcc"] is None and report["reason"]  # two pairs: undefined, and why
    assert cache.is_file() and not (out / "cache.sqlite").exists()
    assert not list(out.glob("scatter-*")) and "plot:" not in res.output
    text = " ".join(res.output.split())
    assert "generic (my run): SRCC - PLCC - n=2" in text and f"SRCC/PLCC undefined: {report['reason']}" in text
    assert "| my run |" in (out / "table.md").read_text()


def test_missing_images_are_listed(root: Path, tmp_path: Path):
    labels = tmp_path / "labels.csv"
    absent = [f"gone{i:02d}.png" for i in range(12)]
    labels.write_text(
        "name,mos\n" + "".join(f"{k},{v}\n" for k, v in MOS.items()) + "".join(f"{a},2\n" for a in absent)
    )
    res = run(root, tmp_path / "out", "--labels", str(labels), "--json")
    text = " ".join(res.output.split())
    listed = re.findall(r"missing image (gone\d\d\.png) \(listed in (\S+), not under (\S+)\)", text)
    assert [x[0] for x in listed] == absent[:10]  # the first ten, then a count
    assert all(x[1] == str(labels) and x[2] == str(root) for x in listed)
    assert "... 12 labelled images missing on disk in all" in text
    report = json.loads(res.stdout.strip().splitlines()[-1])
    assert report["n"] == 4 and report["missing_on_disk"] == 12


def test_failed_images_exit_1_and_missing_policy(root: Path, tmp_path: Path):
    data = tmp_path / "data"
    data.mkdir()
    for name in MOS:
        (data / name).write_bytes((root / name).read_bytes())
    (data / "n3.png").write_bytes(b"")  # unreadable: a failed record
    (data / "labels.csv").write_text((root / "labels.csv").read_text())
    res = run(data, tmp_path / "out", "--json", code=1)
    report = json.loads(res.stdout.strip().splitlines()[-1])
    assert report["failed"] == 1 and report["scored"] == 3 and len(report["failures"]) == 1
    assert "n3.png" in report["failures"][0] and report["n"] == 3 and report["missing_policy"] == "drop"
    assert "failed=1" in res.output
    paper = json.loads(run(data, tmp_path / "paper", "--json", "--missing", "paper", code=1).stdout.splitlines()[-1])
    got = scores(tmp_path / "paper" / "records-generic-niqe-global.jsonl")
    names = list(MOS)
    preds = [-got[n] if got[n] is not None else 1.0 for n in names]  # the failed image scored 1 (negated scores)
    assert paper["n"] == 4 and paper["missing_policy"] == "paper"
    assert paper["srcc"] == pytest.approx(stats.spearmanr(preds, [MOS[n] for n in names]).statistic)


def test_bootstrap_and_usage_errors(root: Path, tmp_path: Path):
    res = CliRunner().invoke(app, ["eval", "-d", "generic", "--root", str(root), "-o", str(tmp_path / "o"), *NIQE,
                                   "--bootstrap", "0", "--json"])  # fmt: skip
    assert res.exit_code == 0 and json.loads(res.stdout.splitlines()[-1])["ci"]["srcc"] == [None, None]
    base = ["eval", "-d", "generic", "--root", str(root), "-o", str(tmp_path / "o2"), *NIQE]
    for args, message in ((["--limit", "0"], "--limit: must be >= 1, not 0"),
                          (["--bootstrap", "-1"], "--bootstrap: must be >= 0, not -1"),
                          (["--missing", "all"], "--missing: unknown value 'all'; choose one of: drop, paper"),
                          ):  # fmt: skip
        bad = CliRunner().invoke(app, [*base, *args])
        assert bad.exit_code == 2 and message in bad.output, args
    assert not (tmp_path / "o2").exists()  # nothing written before the checks
    no_root = CliRunner().invoke(app, ["eval", "-d", "generic", "-o", str(tmp_path / "o3"), *NIQE])
    assert no_root.exit_code == 2 and "--root: give the dataset folder" in no_root.output


def test_reaggregate_needs_no_root(root: Path, tmp_path: Path):
    out = tmp_path / "out"
    run(root, out)
    before = scores(out / "records-generic-niqe-global.jsonl")
    res = CliRunner().invoke(app, ["eval", "-d", "generic", "--labels", str(root), "-o", str(out), *NIQE,
                                   "--reaggregate", "--json"])  # fmt: skip
    assert res.exit_code == 0, res.output
    report = json.loads(res.stdout.splitlines()[-1])
    assert report["n"] == 4 and report["failed"] == 0
    assert scores(out / "records-generic-niqe-global.jsonl") == pytest.approx(before)  # from the cache alone


def test_c_max_reaches_the_aggregation(root: Path, tmp_path: Path):
    """The paper formula's count term N * K / c_max: --c-max 10 moves each final score by N * 7 * (1/10 - 1/71)."""
    regions = ["--scorer", "piqe", "--segmenter", "felzenszwalb", "--min-area", "300", "--aggregation", "paper"]

    def final(out: str, *extra: str) -> dict[str, dict]:
        args = ["eval", "-d", "generic", "--root", str(root), "-o", str(tmp_path / out), "-q", "--no-plot",
                "--bootstrap", "0", *regions, *extra]  # fmt: skip
        res = CliRunner().invoke(app, args)
        assert res.exit_code == 0, res.output
        files = list((tmp_path / out).glob("records-*.jsonl"))
        return {Path(r["path"]).name: r for r in map(json.loads, files[0].read_text().splitlines())}

    default, ten = final("a"), final("b", "--c-max", "10")
    counts = [len(r["regions"]) for r in default.values()]
    assert max(counts) >= 2
    for name, rec in default.items():
        n = len(rec["regions"])
        assert abs(ten[name]["score"] - rec["score"]) == pytest.approx(n * 7 * (1 / 10 - 1 / 71), abs=1e-9)
        assert ten[name]["global_score"] == rec["global_score"]
