"""Metrics edge cases: undefined correlations say why and get no CI; 0 matches exit 1 with a hint; one sign."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from dogiqa.cli import app
from dogiqa.datasets.base import LabelItem, LabelledDataset
from dogiqa.evaluate import (
    compute_metrics,
    evaluate_predictions,
    format_metrics,
    no_match_hint,
    undefined_reason,
)

CORRELATIONS = ("srcc", "plcc", "krcc", "plcc_logistic", "rmse_logistic")


def _dataset(n: int = 6) -> LabelledDataset:
    items = [LabelItem(f"{i}.jpg", None, float(i + 1)) for i in range(n)]
    return LabelledDataset("toy", None, items, mos_range=(1, n))


def test_constant_predictions_are_undefined_with_a_reason_and_no_ci() -> None:
    out = compute_metrics([3.0] * 6, [1, 2, 3, 4, 5, 6], n_boot=200)
    assert all(np.isnan(out[k]) for k in CORRELATIONS)
    assert out["ci"] == {"srcc": None, "plcc": None, "krcc": None}
    assert "constant predictions" in out["reason"] and "3" in out["reason"]


@pytest.mark.parametrize("n", [0, 1, 2])
def test_fewer_than_three_pairs_are_undefined(n: int) -> None:
    out = compute_metrics(list(range(n)), list(range(n)), n_boot=100)
    assert out["reason"] == f"fewer than 3 matched pairs (n = {n})"
    assert all(np.isnan(out[k]) for k in CORRELATIONS) and out["ci"]["plcc"] is None


def test_constant_labels_are_undefined() -> None:
    assert "constant labels" in undefined_reason([1, 2, 3], [5, 5, 5])


def test_defined_correlations_have_no_reason_and_a_ci() -> None:
    out = compute_metrics([1, 3, 2, 4, 6, 5], [1, 2, 3, 4, 5, 6], n_boot=100)
    assert out["reason"] is None and out["srcc"] > 0.8
    lo, hi = out["ci"]["srcc"]
    assert lo <= out["srcc"] <= hi


def test_report_json_has_null_metrics_and_the_printed_summary_the_reason() -> None:
    from dogiqa.evaluate import clean_json

    rep = clean_json(evaluate_predictions({f"{i}.jpg": 4.0 for i in range(6)}, _dataset(), n_boot=100))
    assert rep["plcc"] is None and rep["ci"]["plcc"] is None and rep["reason"].startswith("constant")
    text = format_metrics(rep)
    assert text.count("undefined: constant predictions") == 5, text


def test_sign_convention_is_stated_and_lower_is_better_is_positive() -> None:
    preds = {f"{i}.jpg": float(10 - i) for i in range(6)}  # NIQE-like: lower is better, perfectly ordered
    rep = evaluate_predictions(preds, _dataset(), pred_higher_is_better=False, n_boot=0)
    assert rep["srcc"] == pytest.approx(1.0) and rep["negated"] is True
    assert "negated" in rep["sign_convention"]
    assert "negated" in format_metrics(rep)


def test_no_match_hint_names_the_field_when_records_lack_it() -> None:
    hint = no_match_hint({f"{i}.jpg": None for i in range(6)}, _dataset(), field="global_score")
    assert "--field score" in hint and "global_score" in hint


def test_no_match_hint_shows_names_of_both_sides() -> None:
    hint = no_match_hint({"zebra.png": 1.0}, _dataset())
    assert "'zebra.png'" in hint and "'0.jpg'" in hint


def _meta_info(tmp_path: Path) -> tuple[Path, Path]:
    """A pyiqa meta-info CSV of a full-reference set (the ``image`` column holds the reference names)."""
    rows = [f"ref{i}.png,dist{i}.png,{i + 1}" for i in range(6)]
    labels = tmp_path / "meta_info_toy.csv"
    labels.write_text("image,dist_name,mos\n" + "\n".join(rows) + "\n")
    preds = tmp_path / "preds.json"
    preds.write_text(json.dumps([{"name": f"dist{i}.png", "score": i * 1.5} for i in range(6)]))
    return labels, preds


def test_metrics_command_with_zero_matches_exits_1_and_suggests_the_dataset(tmp_path: Path) -> None:
    labels, preds = _meta_info(tmp_path)
    out = CliRunner().invoke(app, ["metrics", str(preds), "-d", "generic", "-l", str(labels), "--bootstrap", "0"])
    assert out.exit_code == 1, out.output
    assert "no prediction was evaluated" in out.output and "--dataset meta-info" in out.output
    assert "6 of them" in out.output
    good = CliRunner().invoke(app, ["metrics", str(preds), "-d", "meta-info", "-l", str(labels), "--bootstrap", "0"])
    assert good.exit_code == 0 and "SRCC             1.0" in good.output


def test_metrics_command_prints_the_reason_for_constant_predictions(tmp_path: Path) -> None:
    labels, preds = _meta_info(tmp_path)
    preds.write_text(json.dumps([{"name": f"dist{i}.png", "score": 2.0} for i in range(6)]))
    args = ["metrics", str(preds), "-d", "meta-info", "-l", str(labels)]
    out = CliRunner().invoke(app, args)
    assert out.exit_code == 0 and "undefined: constant predictions (all 6 are 2)" in out.output
    js = json.loads(CliRunner().invoke(app, args + ["--json"]).output)
    assert js["srcc"] is None and js["ci"]["srcc"] is None and "constant" in js["reason"]


def test_scatter_title_uses_the_tables_sign_convention() -> None:
    from dogiqa.evaluate import srcc
    from dogiqa.report.plots import scatter_title

    mos = np.arange(1.0, 21.0)
    brisque_like = 100 - 3 * mos + np.random.default_rng(0).normal(0, 2, 20)  # lower is better
    rep = evaluate_predictions(
        {f"{i}.jpg": float(v) for i, v in enumerate(brisque_like)},
        LabelledDataset("toy", None, [LabelItem(f"{i}.jpg", None, m) for i, m in enumerate(mos)], mos_range=(1, 20)),
        pred_higher_is_better=False,
        n_boot=0,
    )
    title = scatter_title(brisque_like, mos, "toy: brisque", negated=True)
    assert f"SRCC {rep['srcc']:.3f}" in title and rep["srcc"] > 0.9 and "-score" in title
    assert f"SRCC {srcc(brisque_like, mos):.3f}" not in title  # the raw (negative) value is not shown
    assert "undefined: constant predictions" in scatter_title(np.ones(5), mos[:5])
