"""The result sinks' contracts, read back from the files with the standard csv/json/pyarrow readers: every
field lands in its own column, appends and resumes keep what they should, Parquet keeps every record field."""

from __future__ import annotations

import csv
import datetime
import json
import os
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from dogiqa.errors import UsageError
from dogiqa.results import ImageResult, RegionRecord
from dogiqa.sinks import (
    OutputExistsError,
    ParquetResultWriter,
    ResultWriter,
    open_writer,
    prepare_output,
    read_records,
    result_to_row,
    results_table,
    row_to_result,
    write_parquet,
)

ODD = os.fsdecode(b"/imgs/caf\xe9.png")  # not UTF-8: written as path + path_bytes
CSV_HEADER = [
    "path",
    "score",
    "global_score",
    "local_score",
    "n_regions",
    "invalid",
    "uncertainty",
    "error",
    "failed_crops",
    "not_scorable",
    "path_bytes",
]  # fmt: skip  (README: one summary row per image)


def full_record(path: str = "/imgs/a.png", **over) -> ImageResult:
    """A record with every serialised field set to a distinct value (a swapped or dropped field shows)."""
    regions = [
        RegionRecord(0, "mask", (0, 1, 5, 9), 0.25, 40, score=2.0, raw="2", probs=[0.1, 0.9], entropy=0.3,
                     variance=0.09),
        RegionRecord(1, "complement", (0, 0, 10, 10), 0.75, 60, error="backend: timeout"),
    ]  # fmt: skip
    base = dict(path=path, score=3.75, key="k-a", source="shard-0.tar", global_score=4.5, local_score=2.25,
                regions=regions, invalid=2, failed_crops=1, not_scorable=3, width=640, height=480, n_masks=5,
                global_raw="good", global_probs=[0.2, 0.3, 0.5], global_error=None, uncertainty=0.125,
                error=None, timings={"segment": 0.5, "score": 1.25}, config={"levels": 7, "model": "m"},
                columns={"caption": "a dog", "score": 99, "in_x": 7})  # fmt: skip
    base.update(over)
    return ImageResult(**base)


def write_all(path, records, append: bool = False) -> None:
    with ResultWriter(path, append=True) if append else ResultWriter(path) as w:  # the default replaces
        for r in records:
            w.write(r)


def csv_rows(path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


# ------------------------------------------------------------------------------------------ JSONL / CSV


def test_csv_row_puts_each_value_in_its_own_column(tmp_path):
    out = tmp_path / "deep" / "er" / "r.csv"  # missing folders are created
    failed = ImageResult(path="/imgs/b.png", error="b.png: loading failed", invalid=0)
    write_all(out, [full_record(), failed])
    with open(out, newline="", encoding="utf-8") as fh:
        assert next(csv.reader(fh)) == CSV_HEADER
    row, bad = csv_rows(out)
    assert row == {"path": "/imgs/a.png", "score": "3.75", "global_score": "4.5", "local_score": "2.25",
                   "n_regions": "2", "invalid": "2", "uncertainty": "0.125", "error": "", "failed_crops": "1",
                   "not_scorable": "3", "path_bytes": ""}  # fmt: skip
    assert bad["path"] == "/imgs/b.png" and bad["error"] == "b.png: loading failed" and bad["score"] == ""


def test_csv_keeps_non_utf8_names_reversible(tmp_path):
    out = tmp_path / "r.csv"
    write_all(out, [full_record(path=ODD, score=None, error=f"{ODD}: loading failed")])
    [row] = csv_rows(out)
    assert row["path"] == "/imgs/caf\\xe9.png" and row["path_bytes"] == "/imgs/caf%E9.png"
    assert row["error"] == "/imgs/caf\\xe9.png: loading failed"  # shown, the file stays UTF-8


def test_jsonl_line_is_the_full_record_and_flushed_per_write(tmp_path):
    out = tmp_path / "r.jsonl"
    rec = full_record()
    w = ResultWriter(out)
    w.write(rec)
    # visible before close: a killed run keeps every finished record
    [line] = out.read_text(encoding="utf-8").splitlines()
    data = json.loads(line)
    assert data["score"] == 3.75 and data["global_score"] == 4.5 and data["local_score"] == 2.25
    assert data["regions"][0]["box"] == [0, 1, 5, 9] and data["regions"][1]["error"] == "backend: timeout"
    assert data["columns"] == {"caption": "a dog", "score": 99, "in_x": 7} and data["timings"]["score"] == 1.25
    assert "masks" not in data and "image" not in data
    w.write(full_record(path="/imgs/z.png", score=1.0))
    w.close()
    back = read_records(out)
    assert [r.path for r in back] == ["/imgs/a.png", "/imgs/z.png"] and back[1].score == 1.0
    assert back[0].to_dict() == rec.to_dict()


@pytest.mark.parametrize("name", ["R.CSV", "R.JSONL"])
def test_suffix_is_case_insensitive(tmp_path, name):
    write_all(tmp_path / name, [full_record()])
    text = (tmp_path / name).read_text(encoding="utf-8")
    assert text.startswith("path,") if name.endswith("CSV") else json.loads(text)["score"] == 3.75


@pytest.mark.parametrize("name", ["r.txt", "r.json", "r"])
def test_other_suffixes_are_refused(tmp_path, name):
    with pytest.raises(ValueError, match=r"\.jsonl or \.csv"):
        ResultWriter(tmp_path / name)
    assert not (tmp_path / name).exists()


@pytest.mark.parametrize("suffix", [".csv", ".jsonl"])
def test_append_continues_and_plain_open_replaces(tmp_path, suffix):
    out = tmp_path / f"r{suffix}"
    write_all(out, [full_record(path="a.png", score=1.0)])
    write_all(out, [full_record(path="b.png", score=2.0)], append=True)
    if suffix == ".csv":
        rows = csv_rows(out)  # one header only
        assert [(r["path"], r["score"]) for r in rows] == [("a.png", "1.0"), ("b.png", "2.0")]
    else:
        assert [(r.path, r.score) for r in read_records(out)] == [("a.png", 1.0), ("b.png", 2.0)]
    write_all(out, [full_record(path="c.png", score=3.0)])  # no append: a new file
    if suffix == ".csv":
        assert [r["path"] for r in csv_rows(out)] == ["c.png"]
    else:
        assert [r.path for r in read_records(out)] == ["c.png"]


def test_append_to_a_missing_or_empty_csv_writes_the_header(tmp_path):
    for out in (tmp_path / "new.csv", tmp_path / "empty.csv"):
        if out.name == "empty.csv":
            out.write_bytes(b"")
        write_all(out, [full_record(path="a.png")], append=True)
        assert [r["path"] for r in csv_rows(out)] == ["a.png"]


def test_read_records_skips_blank_and_torn_lines(tmp_path):
    out = tmp_path / "r.jsonl"
    good = [full_record(path="a.png"), full_record(path=ODD, score=2.5)]
    torn = '{"path": "c.png", "sc'
    # a torn line mid-file too (a killed run, then more records appended by hand), and a line of the wrong shape
    lines = ["", good[0].to_json(), torn, "   ", '{"path": "d.png", "regions": 5}', good[1].to_json(), torn]
    out.write_text("\n".join(lines), encoding="utf-8")
    back = read_records(out)
    assert [r.path for r in back] == ["a.png", ODD] and back[1].score == 2.5
    assert back[0].regions[0].box == (0, 1, 5, 9)  # tuples again


# ------------------------------------------------------------------------------------------ prepare_output


def test_prepare_output_without_a_file_or_with_an_empty_one(tmp_path):
    out = tmp_path / "r.jsonl"
    assert prepare_output(out) == set() and prepare_output(out, resume=True) == set()
    assert not out.exists()
    out.write_bytes(b"")
    assert prepare_output(out) == set()  # an empty file holds nothing to lose


def test_existing_output_is_refused_with_a_usage_error(tmp_path):
    out = tmp_path / "r.jsonl"
    write_all(out, [full_record()])
    before = out.read_bytes()
    with pytest.raises(OutputExistsError) as err:
        prepare_output(out)
    assert isinstance(err.value, UsageError) and err.value.exit_code == 2 and err.value.setting == "--output"
    assert str(out) in str(err.value) and "--resume" in str(err.value) and "--overwrite" in str(err.value)
    assert prepare_output(out, overwrite=True) == set()
    assert out.read_bytes() == before  # overwrite: replaced by the writer, not here


def test_resume_and_overwrite_contradict_even_without_a_file(tmp_path):
    with pytest.raises(UsageError, match="contradict") as err:
        prepare_output(tmp_path / "none.jsonl", resume=True, overwrite=True)
    assert err.value.setting == "--resume"


def test_resume_jsonl_keeps_first_success_per_name_in_order(tmp_path):
    out = tmp_path / "r.jsonl"
    lines = [
        full_record(path="a.png", score=1.0).to_json(),
        ImageResult(path="b.png", error="b.png: broken").to_json(),
        json.dumps([1, 2]),  # not a record
        '{"path": "e.png", "sco',  # torn mid-file (an older killed run continued without --resume)
        json.dumps({"score": 3.0}),  # no path
        full_record(path=ODD, score=2.0).to_json(),
        full_record(path="a.png", score=9.0).to_json(),  # a repeat: the first one stays
        full_record(path="b.png", score=4.0).to_json(),  # b.png succeeded later
        '{"path": "c.png", "score": 5',  # torn
    ]
    out.write_text("\n".join(lines), encoding="utf-8")
    assert prepare_output(out, resume=True) == {"a.png", ODD, "b.png"}
    kept = out.read_text(encoding="utf-8")
    assert kept.endswith("\n") and kept.splitlines() == [lines[0], lines[5], lines[7]]
    assert [(r.path, r.score) for r in read_records(out)] == [("a.png", 1.0), (ODD, 2.0), ("b.png", 4.0)]


def test_resume_csv_keeps_rows_and_header(tmp_path):
    out = tmp_path / "r.csv"
    write_all(out, [
        full_record(path="a.png", score=1.5),
        ImageResult(path="b.png", error="b.png: broken"),
        full_record(path=ODD, score=2.5),
        full_record(path="a.png", score=9.0),
        full_record(path="d.png", score=4.0),
    ])  # fmt: skip
    with out.open("a", encoding="utf-8", newline="") as fh:
        fh.write(",7.0,,,0,0,,,0,0,\n")  # a row without a path
        fh.write("e.png,5.0,5.0,")  # torn last row
    assert prepare_output(out, resume=True) == {"a.png", ODD, "d.png"}
    rows = csv_rows(out)
    assert [(r["path"], r["score"]) for r in rows] == [("a.png", "1.5"), ("/imgs/caf\\xe9.png", "2.5"),
                                                      ("d.png", "4.0")]  # fmt: skip
    assert rows[0]["global_score"] == "4.5" and rows[0]["n_regions"] == "2" and rows[1]["path_bytes"]
    # the run goes on appending rows under the same single header
    write_all(out, [ImageResult(path="b.png", score=2.0)], append=True)
    assert [r["path"] for r in csv_rows(out)][-1] == "b.png" and len(csv_rows(out)) == 4


@pytest.mark.parametrize("suffix", [".jsonl", ".csv"])
def test_resume_after_a_kill_inside_a_multibyte_character(tmp_path, suffix):
    out = tmp_path / f"r{suffix}"
    write_all(out, [full_record(path="a.png"), full_record(path="/imgs/d\u00f6g.png")])
    data = out.read_bytes()
    cut = data.rindex("\u00f6".encode()) + 1  # killed between the two bytes of "ö"
    out.write_bytes(data[:cut])
    assert prepare_output(out, resume=True) == {"a.png"}
    out.read_bytes().decode("utf-8")  # the repaired file is valid UTF-8 again


def test_resume_csv_with_a_column_added_by_hand(tmp_path):
    out = tmp_path / "r.csv"
    out.write_text("path,score,note\r\na.png,1.5,checked\r\nb.png,2.5,\r\n", encoding="utf-8")
    assert prepare_output(out, resume=True) == {"a.png", "b.png"}
    with open(out, newline="", encoding="utf-8") as fh:
        assert next(csv.reader(fh)) == CSV_HEADER  # back to the writer's columns: appended rows line up
    assert [(r["path"], r["score"]) for r in csv_rows(out)] == [("a.png", "1.5"), ("b.png", "2.5")]


def test_resume_csv_keeps_names_with_line_breaks_exact(tmp_path):
    out = tmp_path / "r.csv"
    names = ["cr\rreturn.png", "new\nline.png", "crlf\r\n.png"]
    write_all(out, [full_record(path=n) for n in names])
    assert prepare_output(out, resume=True) == set(names)
    with open(out, newline="", encoding="utf-8") as fh:
        assert [r["path"] for r in csv.DictReader(fh)] == names


# ------------------------------------------------------------------------------------------ Parquet


def test_parquet_row_keeps_every_record_field(tmp_path):
    rec, odd = full_record(), full_record(path=ODD, score=None, error="broken \udce9", regions=[])
    out = write_parquet(tmp_path / "sub" / "r.parquet", [rec, odd])
    assert out == tmp_path / "sub" / "r.parquet"
    table = pq.read_table(out)
    serialised = set(rec.to_dict()) - {"columns"}
    assert serialised <= set(table.schema.names)
    first, second = table.to_pylist()
    want = rec.to_dict()
    for name in serialised - {"regions", "timings", "config"}:
        assert first[name] == want[name], name
    assert json.loads(first["regions"]) == json.loads(json.dumps(want["regions"]))  # nested fields as JSON
    assert json.loads(first["timings"]) == {"segment": 0.5, "score": 1.25}
    assert json.loads(first["config"]) == {"levels": 7, "model": "m"}
    # pass-through columns at the top level; one clashing with a field or the prefix gets "in_"
    assert first["caption"] == "a dog" and first["in_score"] == 99 and first["in_in_x"] == 7
    assert first["score"] == 3.75
    assert second["path_bytes"] == "/imgs/caf%E9.png" and second["score"] is None
    back = [row_to_result(r) for r in table.to_pylist()]
    assert back[0].to_dict() == rec.to_dict() and back[1].path == ODD and back[1].error == odd.to_dict()["error"]


def test_parquet_nested_fields_are_readable_json(tmp_path):
    rec = full_record(config={"model": Path("/models/d\u00f6g"), "levels": 5}, timings={"score": 0.5})
    row = pq.read_table(write_parquet(tmp_path / "r.parquet", [rec])).to_pylist()[0]
    assert json.loads(row["config"]) == {"model": "/models/d\u00f6g", "levels": 5}  # any value as its text
    assert "d\u00f6g" in row["config"]  # readable text, not \\u escapes


def test_parquet_column_types():
    schema = results_table([full_record()]).schema
    for name in ("score", "global_score", "local_score", "uncertainty"):
        assert schema.field(name).type == pa.float64(), name
    for name in ("invalid", "failed_crops", "not_scorable", "width", "height", "n_masks"):
        assert schema.field(name).type == pa.int64(), name
    assert schema.field("global_probs").type == pa.list_(pa.float64())
    for name in ("path", "key", "source", "regions", "timings", "config", "error", "path_bytes"):
        assert schema.field(name).type == pa.string(), name
    assert not {"masks", "image", "columns"} & set(schema.names)


def test_result_row_round_trip_of_prefixed_names():
    rec = ImageResult(path="p", key="p", columns={"in_score": 1, "path_bytes": "x", "plain": [1, 2]})
    row = result_to_row(rec)
    assert row["in_in_score"] == 1 and row["in_path_bytes"] == "x" and row["plain"] == [1, 2]
    assert row_to_result(row).columns == {"in_score": 1, "path_bytes": "x", "plain": [1, 2]}


def test_pass_through_types_follow_the_first_value():
    recs = [ImageResult(path=str(i), key=str(i), columns={"n": n, "mixed": m})
            for i, (n, m) in enumerate([(None, 1), (2, "two"), (3, None)])]  # fmt: skip
    types: dict = {}
    table = results_table(recs, types)
    assert table.column("n").to_pylist() == [None, 2, 3] and pa.types.is_integer(types["n"])
    # values that do not share one type are kept as text
    assert table.column("mixed").to_pylist() == ["1", "two", None] and types["mixed"] == pa.string()
    # a later batch keeps the first types: a known column absent here is null, a misfit value is lost
    later = results_table([ImageResult(path="x", key="x", columns={"n": "three"})], types)
    assert later.column("n").type == types["n"] and later.column("n").to_pylist() == [None]
    assert later.column("mixed").to_pylist() == [None]


def test_parquet_writer_row_groups_schema_and_temp_name(tmp_path):
    out = tmp_path / "o" / "p" / "s.parquet"  # missing folders are created
    w = ParquetResultWriter(out, rows=2)
    for i in range(5):
        cols = {"n": i} if i < 3 else {"n": i, "late": "x"}  # a column first seen in a later group
        w.write(ImageResult(path=f"{i}.png", key=str(i), score=float(i), columns=cols))
    hidden = [p.name for p in out.parent.iterdir()]  # row groups so far go to a hidden temporary file
    assert not out.exists() and len(hidden) == 1 and hidden[0].startswith(".s.parquet")
    w.close()
    assert [p.name for p in out.parent.iterdir()] == ["s.parquet"]  # renamed: nothing left behind
    f = pq.ParquetFile(out)
    assert f.metadata.num_row_groups == 3 and f.metadata.num_rows == 5
    rows = f.read().to_pylist()
    assert [r["score"] for r in rows] == [0.0, 1.0, 2.0, 3.0, 4.0] and [r["n"] for r in rows] == [0, 1, 2, 3, 4]
    assert "late" not in f.schema_arrow.names  # the file keeps its first schema


def test_parquet_writer_keeps_the_first_type_of_a_column(tmp_path):
    out = tmp_path / "s.parquet"
    with ParquetResultWriter(out, rows=2) as w:
        for i, n in enumerate([1, 2, "three", 4]):  # text in a later group of an integer column
            w.write(ImageResult(path=f"{i}.png", key=str(i), score=float(i), columns={"n": n}))
    table = pq.read_table(out)
    assert pa.types.is_integer(table.schema.field("n").type)
    assert table.column("n").to_pylist() == [1, 2, None, 4] and table.column("score").to_pylist() == [0, 1, 2, 3]


def test_parquet_writer_keeps_values_after_an_empty_first_group(tmp_path):
    out = tmp_path / "s.parquet"
    when = datetime.datetime(2024, 1, 2, 3, 4, 5)
    with ParquetResultWriter(out, rows=2) as w:
        w.write(ImageResult(path="a.png", columns={"n": None, "when": when}))
        w.write(ImageResult(path="b.png", columns={"n": None, "when": "unknown"}))  # mixed: all as text
        w.write(ImageResult(path="c.png", columns={"n": 5, "when": "later"}))
    table = pq.read_table(out)
    assert table.column("n").to_pylist() == [None, None, "5"]  # no type seen first: text, the value kept
    first, *rest = table.column("when").to_pylist()
    assert json.loads(first) == str(when) and rest == ["unknown", "later"]


def test_parquet_writer_even_groups_and_no_records(tmp_path):
    with ParquetResultWriter(tmp_path / "four.parquet", rows=2) as w:
        for i in range(4):
            w.write(ImageResult(path=f"{i}.png", score=float(i)))
    assert pq.ParquetFile(tmp_path / "four.parquet").metadata.num_row_groups == 2
    with ParquetResultWriter(tmp_path / "none.parquet"):
        pass
    empty = pq.read_table(tmp_path / "none.parquet")
    assert empty.num_rows == 0 and {"path", "score", "regions"} <= set(empty.schema.names)
    with ParquetResultWriter(tmp_path / "one.parquet", rows=0) as w:  # at least one record per group
        w.write(ImageResult(path="a.png", score=1.0))
        w.write(ImageResult(path="b.png", score=2.0))
    assert pq.ParquetFile(tmp_path / "one.parquet").metadata.num_row_groups == 2


@pytest.mark.parametrize("name", ["s.parquet", "s.PQ", "s.Parquet"])
def test_open_writer_by_suffix(tmp_path, name):
    w = open_writer(tmp_path / name)
    assert isinstance(w, ParquetResultWriter)
    w.write(full_record())
    w.write(full_record(path=ODD, score=1.0))
    w.close()
    back = [row_to_result(row) for row in pq.read_table(tmp_path / name).to_pylist()]
    assert [r.to_dict() for r in back] == [full_record().to_dict(), full_record(path=ODD, score=1.0).to_dict()]
    with pytest.raises(ValueError, match="cannot be continued"):
        open_writer(tmp_path / name, append=True)


def test_open_writer_text_formats_honour_append(tmp_path):
    out = tmp_path / "r.jsonl"
    write_all(out, [full_record(path="a.png")])
    w = open_writer(out, append=True)
    assert isinstance(w, ResultWriter)
    w.write(full_record(path="b.png"))
    w.close()
    assert [r.path for r in read_records(out)] == ["a.png", "b.png"]
    with open_writer(out) as w:
        w.write(full_record(path="c.png"))
    assert [r.path for r in read_records(out)] == ["c.png"]
