"""File names a filesystem allows (non-UTF-8 bytes, newline, tab, very long) through every sink and back."""

import csv
import json
import os

import numpy as np
import pytest
from PIL import Image

from dogiqa.api import DogIQA
from dogiqa.evaluate import read_predictions
from dogiqa.report.html import ReportWriter
from dogiqa.results import ImageResult, display_text, path_fields, path_from_fields
from dogiqa.runners.ray import result_to_row, row_to_result
from dogiqa.scorers.base import CropScore
from dogiqa.sinks import ResultWriter, read_records

NAMES = [
    b"caf\xe9.png",  # Latin-1, not UTF-8
    b"\xff\xfe\x80.png",
    b"half\xc3.png",  # a cut UTF-8 sequence
    b"line\nbreak.png",
    b"tab\there.png",
    b"cr\rreturn.png",
    b"x" * 251 + b".png",  # 255 bytes: the usual limit of one name
    "\U0001f436 d\u00f6g.png".encode(),
    b'a,"b";c.png',
    b"%41%ZZ.png",  # looks percent-encoded already
    b"back\\xe9slash.png",  # looks like the display escape
    b"-rf.png",
    b" lead and trail .png",
]


class MeanScorer:
    name = "mean"
    higher_is_better = True
    score_range = (1.0, 7.0)

    def score_crops(self, crops):
        return [CropScore(score=float(np.asarray(c.image).mean()) / 255 * 6 + 1) for c in crops]


@pytest.fixture(scope="module")
def named_files(tmp_path_factory):
    root = tmp_path_factory.mktemp("names")
    paths = []
    for i, raw in enumerate(NAMES):
        path = os.path.join(os.fsencode(root), raw)
        Image.new("RGB", (16, 16), (10 * i, 5, 5)).save(os.fsdecode(path), "PNG")
        paths.append(os.fsdecode(path))
    records = list(DogIQA(scorer=MeanScorer(), aggregation="global").score_many(paths))
    assert all(r.ok for r in records), [r.error for r in records if not r.ok]
    # a failed record too: its error message holds the undecodable name
    missing = os.fsdecode(os.path.join(os.fsencode(root), b"gone\xff.png"))
    records += list(DogIQA(scorer=MeanScorer(), aggregation="global").score_many([missing]))
    return paths + [missing], records


def test_path_fields_roundtrip_exactly():
    for raw in NAMES + [b"/data/\xe9t\xe9/x.jpg", b"plain.jpg"]:
        path = os.fsdecode(raw)
        fields = path_fields(path)
        fields["path"].encode("utf-8")  # always writable as UTF-8
        assert os.fsencode(path_from_fields(**fields)) == raw
        if fields["path_bytes"] is None:
            assert fields["path"] == path  # valid UTF-8 names are written as they are
    assert path_fields(os.fsdecode(b"caf\xe9.png")) == {"path": "caf\\xe9.png", "path_bytes": "caf%E9.png"}
    assert display_text("ok \u00e9") == "ok \u00e9"


def test_jsonl_roundtrip(named_files, tmp_path):
    paths, records = named_files
    out = tmp_path / "r.jsonl"
    with ResultWriter(out) as w:
        for r in records:
            w.write(r)
    out.read_bytes().decode("utf-8")  # the file is valid UTF-8
    back = read_records(out)
    assert [r.path for r in back] == paths
    assert all(os.path.exists(r.path) for r in back[:-1])
    assert "\\xff" in back[-1].error  # shown, not crashed
    preds = read_predictions(out)
    assert list(preds) == paths and all(v is not None for v in list(preds.values())[:-1])


def test_csv_roundtrip(named_files, tmp_path):
    paths, records = named_files
    out = tmp_path / "r.csv"
    with ResultWriter(out) as w:
        for r in records:
            w.write(r)
    with open(out, newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    assert [path_from_fields(r["path"], r["path_bytes"] or None) for r in rows] == paths
    assert list(read_predictions(out)) == paths


def test_parquet_rows_roundtrip(named_files, tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    from dogiqa.runners.ray import arrow_schema

    paths, records = named_files
    table = pa.Table.from_pylist([result_to_row(r) for r in records], schema=arrow_schema())
    pq.write_table(table, tmp_path / "part.parquet")
    back = [row_to_result(row) for row in pq.read_table(tmp_path / "part.parquet").to_pylist()]
    assert [r.path for r in back] == paths


def test_json_of_a_record_is_plain_utf8(named_files):
    _, records = named_files
    for r in records:
        text = r.to_json()
        text.encode("utf-8")
        assert ImageResult.from_dict(json.loads(text)).path == r.path


def test_report_page_with_odd_names(named_files, tmp_path):
    paths, records = named_files
    writer = ReportWriter(tmp_path / "report")
    for r in records:
        writer.add(r)
    page = writer.close().read_bytes().decode("utf-8")
    assert "caf\\xe9.png" in page
    assert len(list((tmp_path / "report").glob("*.png"))) == len(paths) - 1  # the missing file has no overlay
