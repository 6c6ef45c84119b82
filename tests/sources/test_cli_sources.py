"""The command line on collections: sources by syntax, column options, Parquet output, select, Ray resume."""

from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.parquet as pq
from typer.testing import CliRunner

from dogiqa.cli import app
from dogiqa.testing.collections import image_rows

PIQE = ["--preset", "global", "--scorer", "piqe", "--segmenter", "none", "--aggregation", "global", "--quiet"]


def invoke(*args: str):
    return CliRunner().invoke(app, [*map(str, args)])


def test_score_shards_to_parquet_then_select(shards, tmp_path):
    out = tmp_path / "scores.parquet"
    pattern = shards[0].parent / "data-{000000..000002}.tar"
    res = invoke("score", pattern, *PIQE, "--keep-columns", "txt", "-o", out)
    assert res.exit_code == 1, res.output  # sample 3 is corrupt
    assert "9 scored, 1 failed" in res.output
    rows = pq.read_table(out).to_pylist()
    assert [r["key"] for r in rows] == [f"{i:08d}" for i in range(10)]
    assert rows[5]["txt"] == "caption 5" and rows[3]["error"] and rows[0]["source"] == str(shards[0])
    scores = sorted(r["score"] for r in rows if r["score"] is not None)
    cut = scores[4]
    res = invoke("select", out, "--min-score", cut, "-o", tmp_path / "kept.txt")
    assert res.exit_code == 0, res.output
    kept = (tmp_path / "kept.txt").read_text().split()
    assert len(kept) == 5 and all(r["score"] >= cut for r in rows if r["key"] in kept)


def test_table_columns_and_usage_errors(tmp_path):
    table = tmp_path / "t.parquet"
    pq.write_table(pa.Table.from_pylist(image_rows(4, corrupt=[1])), table)
    out = tmp_path / "s.jsonl"
    res = invoke("score", table, *PIQE, "--image-column", "image", "--key-column", "url",
                 "--keep-columns", "caption", "-o", out)  # fmt: skip
    assert res.exit_code == 1, res.output
    recs = [json.loads(line) for line in out.read_text().splitlines()]
    assert recs[2]["key"] == "https://example.org/2.png" and recs[2]["columns"] == {"caption": "caption 2"}
    assert all(len(line) < 5000 for line in out.read_text().splitlines())  # never image bytes in a record
    res = invoke("score", table, *PIQE, "--image-column", "picture")
    assert res.exit_code == 2 and "--image-column" in res.output and "picture" in res.output
    assert "Traceback" not in res.output


def test_ray_rerun_of_a_finished_job_starts_nothing(tmp_path, monkeypatch):
    """Every input has a record (a failed one too): the rerun reports them done; Ray never starts."""
    from dogiqa.results import ImageResult
    from dogiqa.runners import ray as ray_runner
    from dogiqa.sources import open_sources

    table = tmp_path / "t.parquet"
    pq.write_table(pa.Table.from_pylist(image_rows(3)), table)
    out = tmp_path / "out"
    out.mkdir()
    records = [ImageResult(path=it.path, key=it.key, source=it.source, score=1.0) for it in open_sources([table])]
    records[0].score, records[0].error = None, "x: broken"
    ray_runner._write_part(out, "old", 0, records)

    calls: list = []
    monkeypatch.setattr(ray_runner, "_run_units", lambda todo, *a, **k: calls.append(todo))
    res = invoke("score", table, *PIQE, "--engine", "ray", "-o", out)
    assert res.exit_code == 0, res.output
    assert "0 scored" in res.output and "3 already done" in res.output and calls == []
    res = invoke("score", table, *PIQE, "--engine", "ray", "-o", out, "--retry-failed")
    assert res.exit_code == 0 and "2 already done" in res.output, res.output
    [[unit]] = calls  # only the failed row is to do: the two finished keys are skipped inside its unit
    assert sorted(unit.skip) == ["img-00001", "img-00002"]
