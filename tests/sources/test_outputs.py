"""Parquet output from the local engine and ``select`` on every results format."""

from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from dogiqa.errors import UsageError
from dogiqa.results import ImageResult, RegionRecord
from dogiqa.runners.local import run_local
from dogiqa.select import read_any, select
from dogiqa.sinks import ParquetResultWriter, result_to_row, row_to_result
from dogiqa.sources import SourceOptions, open_sources
from dogiqa.testing.collections import image_rows


def test_row_round_trip_with_pass_through_columns():
    r = ImageResult(path="t#a", key="a", source="t", score=2.5, columns={"caption": "c", "score": 9},
                    regions=[RegionRecord(0, "mask", (0, 0, 2, 2), 4.0, 4, score=3.0)], config={"m": 1})  # fmt: skip
    row = result_to_row(r)
    assert row["caption"] == "c" and row["in_score"] == 9 and row["score"] == 2.5  # a clash gets a prefix
    assert row_to_result(row).to_dict() == r.to_dict()


def test_local_parquet_output(tmp_path, piqe):
    table = tmp_path / "t.parquet"
    pq.write_table(pa.Table.from_pylist(image_rows(6, corrupt=[1])), table, row_group_size=4)
    items = open_sources([table], SourceOptions(keep_columns=("caption", "url")))
    out = tmp_path / "out" / "scores.parquet"
    summary = run_local(piqe, items, out)
    assert (summary.scored, summary.failed) == (5, 1)
    got = pq.read_table(out)
    assert {"key", "source", "score", "error", "caption", "url"} <= set(got.schema.names)
    rows = got.to_pylist()
    assert [r["key"] for r in rows] == [f"img-{i:05d}" for i in range(6)]
    assert rows[3]["caption"] == "caption 3" and rows[1]["error"] and rows[1]["score"] is None
    assert not list(out.parent.glob(".*tmp"))


def test_parquet_writer_shows_nothing_before_close(tmp_path):
    out = tmp_path / "s.parquet"
    writer = ParquetResultWriter(out, rows=2)
    for i in range(5):
        writer.write(ImageResult(path=str(i), key=str(i), score=float(i), columns={"n": i if i else None}))
    assert not out.exists()  # a killed run leaves no half-written file under the final name
    writer.close()
    back = [row_to_result(r) for r in pq.read_table(out).to_pylist()]
    assert [r.score for r in back] == [0, 1, 2, 3, 4] and [r.columns["n"] for r in back] == [None, 1, 2, 3, 4]


@pytest.fixture
def results_jsonl(tmp_path):
    recs = [
        ImageResult(path="a", key="a", score=1.0),
        ImageResult(path="b", key="b", score=3.0, columns={"caption": "bee"}),
        ImageResult(path="c", key="c", error="c: broken"),
        ImageResult(path="d", key="d", score=5.0),
        ImageResult(path="c", key="c", score=4.0),  # a later successful record of the same input wins
    ]
    path = tmp_path / "r.jsonl"
    path.write_text("".join(r.to_json() + "\n" for r in recs))
    return path


def test_select_txt_jsonl_parquet(tmp_path, results_jsonl):
    s = select(results_jsonl, tmp_path / "kept.txt", min_score=3.0)
    assert (s.total, s.kept) == (4, 3)
    assert (tmp_path / "kept.txt").read_text().split() == ["b", "c", "d"]
    select(results_jsonl, tmp_path / "kept.jsonl", min_score=2, max_score=4)
    kept = [json.loads(line) for line in (tmp_path / "kept.jsonl").read_text().splitlines()]
    assert [k["key"] for k in kept] == ["b", "c"] and kept[0]["columns"] == {"caption": "bee"}
    select(results_jsonl, tmp_path / "kept.parquet", max_score=3)
    table = pq.read_table(tmp_path / "kept.parquet").to_pylist()
    assert [r["key"] for r in table] == ["a", "b"] and table[1]["caption"] == "bee"
    again = select(tmp_path / "kept.parquet", tmp_path / "k2.txt", min_score=2)  # Parquet in
    assert again.kept == 1 and (tmp_path / "k2.txt").read_text() == "b\n"


@pytest.mark.parametrize(
    "kwargs, words",
    [
        (dict(min_score=1), "use a .txt"),
        (dict(), "--min-score and/or --max-score"),
        (dict(min_score=3, max_score=2), "above"),
    ],
)
def test_select_usage_errors(tmp_path, results_jsonl, kwargs, words):
    out = tmp_path / ("kept.csv" if words == "use a .txt" else "kept.txt")
    with pytest.raises(UsageError, match=words):
        select(results_jsonl, out, **kwargs)
    with pytest.raises(UsageError, match="no such results"):
        read_any(tmp_path / "nothing.jsonl")
