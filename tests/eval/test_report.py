"""Table-2-shaped summary (Markdown, CSV) and the scatter plot."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import numpy as np
from PIL import Image

from dogiqa.report.plots import scatter_plot
from dogiqa.report.table import SummaryTable, table_from_metrics_files


def test_table_shape_and_order() -> None:
    t = SummaryTable()
    t.add("ours (paper preset)", "spaq", 0.9012, 0.8968)
    t.add("ours (paper preset)", "koniq", 0.81949, 0.8111)
    t.add("ours (code preset)", "koniq", 0.8, None)
    t.add("ours (code preset)", "mydata", 0.5, 0.6)
    md = t.to_markdown().splitlines()
    assert md[0] == "| method | KonIQ | SPAQ | mydata |"  # the paper's column order, then others
    assert md[1] == "| --- | --- | --- | --- |"
    assert md[2] == "| ours (paper preset) | 0.819 / 0.811 | 0.901 / 0.897 | - |"
    assert md[3] == "| ours (code preset) | 0.800 / - | - | 0.500 / 0.600 |"
    rows = list(csv.reader(io.StringIO(t.to_csv())))
    assert rows[0] == ["method", "KonIQ", "SPAQ", "mydata"] and rows[1][2] == "0.901 / 0.897"
    split = list(csv.DictReader(io.StringIO(t.to_csv(split=True))))
    assert float(split[0]["koniq_srcc"]) == 0.81949 and split[1]["spaq_plcc"] == ""


def test_paper_rows_and_files(tmp_path: Path) -> None:
    reports = []
    for method, ds, s, p in (("global only", "livec", 0.7041, 0.7029), ("full", "livec", 0.75, 0.74)):
        f = tmp_path / method / "metrics.json"
        f.parent.mkdir()
        f.write_text(json.dumps({"dataset": ds, "srcc": s, "plcc": p, "method": method}))
        reports.append(f)
    t = table_from_metrics_files(reports)
    t.add_paper(["Dog-IQA"])
    md, cs = t.write(tmp_path / "out" / "table2")
    text = md.read_text()
    assert "| global only | 0.704 / 0.703 |" in text and "| Dog-IQA (paper) | 0.756 / 0.752 |" in text
    assert "KonIQ" not in text  # paper rows only for the datasets in the table
    assert cs.read_text().splitlines()[0] == "method,LIVEC"


def test_scatter_plot_png(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    mos = rng.uniform(0, 100, 120)
    preds = np.clip(np.round(mos / 15 + rng.normal(0, 0.7, 120)), 1, 7)
    out = scatter_plot(preds, mos, tmp_path / "plots" / "livec.png", title="LIVEC", jitter=0.15)
    with Image.open(out) as im:
        assert im.format == "PNG" and im.size == (600, 504)
        pixels = np.asarray(im.convert("RGB")).reshape(-1, 3)
        assert len(np.unique(pixels, axis=0)) > 10  # something was drawn
    # constant predictions: no curve, still a plot
    scatter_plot(np.ones(10), np.arange(10.0), tmp_path / "flat.png")
    assert (tmp_path / "flat.png").stat().st_size > 1000
