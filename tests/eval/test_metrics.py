"""Metrics against scipy and hand-made cases; the paper protocol; prediction readers; the reference test."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import typer
from scipy import stats
from typer.testing import CliRunner

from dogiqa.cli.metrics import metrics
from dogiqa.datasets.base import LabelItem, LabelledDataset
from dogiqa.evaluate import (
    KRCC,
    PLCC,
    SRCC,
    LogisticRMSE,
    PredictionsError,
    bootstrap_ci,
    evaluate_predictions,
    fit_logistic,
    krcc,
    logistic4,
    plcc,
    plcc_logistic,
    read_predictions,
    rmse_logistic,
    srcc,
)
from dogiqa.results import ImageResult


def _data(n: int = 200, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    target = rng.uniform(1, 5, n)
    preds = np.round(target + rng.normal(0, 0.8, n))  # integer predictions with many ties, like the paper's
    return preds, target


def test_against_scipy() -> None:
    p, t = _data()
    assert srcc(p, t) == pytest.approx(stats.spearmanr(p, t).statistic, abs=1e-12)
    assert plcc(p, t) == pytest.approx(stats.pearsonr(p, t).statistic, abs=1e-12)
    assert krcc(p, t) == pytest.approx(stats.kendalltau(p, t).statistic, abs=1e-12)


def test_hand_made_cases() -> None:
    x = [1.0, 2.0, 3.0, 4.0, 5.0]
    assert srcc(x, [v**3 for v in x]) == pytest.approx(1.0)  # monotone: rank-perfect...
    assert plcc(x, [v**3 for v in x]) < 0.99  # ...but not linear
    assert srcc(x, x[::-1]) == pytest.approx(-1.0)
    # Kendall: pairs of [1,2,3] vs [1,3,2] -> 2 concordant, 1 discordant -> tau = 1/3
    assert krcc([1, 2, 3], [1, 3, 2]) == pytest.approx(1 / 3)
    # Spearman by hand: d = (0, 1, -1, 0) -> 1 - 6*2 / (4*15) = 0.8
    assert srcc([1, 2, 3, 4], [10, 20, 40, 30]) == pytest.approx(0.8)
    assert math.isnan(plcc([1, 1, 1], [1, 2, 3]))  # constant predictions: undefined, not an exception
    assert math.isnan(srcc([1], [2]))
    with pytest.raises(ValueError, match="differ in length"):
        srcc([1, 2], [1, 2, 3])


def test_logistic_fit_recovers_a_logistic() -> None:
    x = np.linspace(0, 10, 60)
    true = (80.0, 10.0, 5.0, 1.2)
    y = logistic4(x, *true)
    params = fit_logistic(x, y)
    assert params is not None
    assert np.allclose(logistic4(x, *params), y, atol=1e-3)
    assert plcc_logistic(x, y) == pytest.approx(1.0, abs=1e-6)
    assert rmse_logistic(x, y) == pytest.approx(0.0, abs=1e-3)
    assert plcc(x, y) < 0.99  # the raw PLCC is hurt by the curve; the fit removes that


def test_logistic_on_decreasing_and_noisy_data() -> None:
    p, t = _data(300, seed=3)
    assert plcc_logistic(p, t) >= plcc(p, t) - 1e-6  # the fit can only help (a line is nearly inside it)
    assert plcc_logistic(-p, t) == pytest.approx(plcc_logistic(p, t), abs=1e-3)  # falling curve fits too
    rmse = rmse_logistic(p, t)
    assert 0 < rmse < np.std(t)
    assert fit_logistic([1, 1, 1, 1], [1, 2, 3, 4]) is None


def test_bootstrap_ci_is_seeded_and_sensible() -> None:
    p, t = _data(400)
    a = bootstrap_ci(p, t, n_boot=200, seed=7)
    b = bootstrap_ci(p, t, n_boot=200, seed=7)
    c = bootstrap_ci(p, t, n_boot=200, seed=8)
    assert a == b and a != c
    for name, fn in (("srcc", srcc), ("plcc", plcc), ("krcc", krcc)):
        lo, hi = a[name]
        assert lo < fn(p, t) < hi and hi - lo < 0.2
    # the vectorised SRCC/PLCC resampling equals computing each resample with scipy
    idx = np.random.default_rng(7).integers(0, p.size, size=(200, p.size))
    ref = [stats.spearmanr(p[i], t[i]).statistic for i in idx]
    assert a["srcc"][0] == pytest.approx(np.quantile(ref, 0.025), abs=1e-9)
    small = bootstrap_ci(p[:40], t[:40], n_boot=200, seed=7)
    assert small["srcc"][1] - small["srcc"][0] > a["srcc"][1] - a["srcc"][0]


def test_metric_classes_accumulate() -> None:
    p, t = _data(90)
    for cls, fn in ((SRCC, srcc), (PLCC, plcc), (KRCC, krcc), (LogisticRMSE, rmse_logistic)):
        m = cls()
        batch = m(p[:30], t[:30])
        assert batch == pytest.approx(fn(p[:30], t[:30]))
        m.update(p[30:], t[30:])
        assert m.compute() == pytest.approx(fn(p, t))
        m.reset()
        m.update(p[:10], t[:10])
        assert m.compute() == pytest.approx(fn(p[:10], t[:10]))
    assert SRCC.higher_is_better and PLCC.higher_is_better and not LogisticRMSE.higher_is_better
    assert srcc.higher_is_better and not rmse_logistic.higher_is_better


def _toy_dataset() -> LabelledDataset:
    labels = {"a.jpg": 1.0, "b.jpg": 2.0, "c.jpg": 3.0, "d.jpg": 4.0, "e.jpg": 5.0}
    return LabelledDataset("toy", None, [LabelItem(n, None, m) for n, m in labels.items()], mos_range=(1, 5))


def test_missing_policies() -> None:
    ds = _toy_dataset()
    preds = {"/x/a.jpg": 2.0, "b.JPG": 1.0, "c.jpg": 4.0, "d.jpg": None, "zzz.jpg": 3.0}
    drop = evaluate_predictions(preds, ds, missing="drop", n_boot=50)
    assert drop["n"] == 3 and drop["missing"] == 2 and drop["missing_names"] == ["d.jpg", "e.jpg"]
    assert drop["unmatched"] == 1 and drop["unmatched_names"] == ["zzz.jpg"]
    assert drop["srcc"] == pytest.approx(srcc([2, 1, 4], [1, 2, 3]))
    paper = evaluate_predictions(preds, ds, missing="paper", n_boot=50)
    assert paper["n"] == 5 and paper["missing"] == 2 and paper["missing_policy"] == "paper"
    assert paper["srcc"] == pytest.approx(srcc([2, 1, 4, 1, 1], [1, 2, 3, 4, 5]))
    assert paper["plcc"] == pytest.approx(plcc([2, 1, 4, 1, 1], [1, 2, 3, 4, 5]))
    with pytest.raises(ValueError, match="drop"):
        evaluate_predictions(preds, ds, missing="zero")


def test_lower_is_better_predictions_and_duplicates() -> None:
    ds = _toy_dataset()
    preds = {"a.jpg": 5, "b.jpg": 4, "c.jpg": 3.5, "d.jpg": 2, "e.jpg": 1, "x/e.jpg": 9}
    rep = evaluate_predictions(preds, ds, pred_higher_is_better=False, n_boot=0)
    assert rep["srcc"] == pytest.approx(1.0) and rep["duplicates"] == 1
    assert set(rep["higher_is_better"]) >= {"srcc", "plcc", "krcc", "plcc_logistic", "rmse_logistic"}


def test_prediction_readers(tmp_path: Path) -> None:
    ok = ImageResult(path="/data/Images/a.jpg", score=3.25, global_score=3.0)
    bad = ImageResult(path="/data/Images/b.jpg", error="ImageLoadError: truncated")
    jsonl = tmp_path / "records.jsonl"
    jsonl.write_text(ok.to_json() + "\n" + bad.to_json() + "\n" + '{"path": "c.jpg", "sco', encoding="utf-8")
    with pytest.warns(UserWarning, match="line 3"):
        assert read_predictions(jsonl) == {"/data/Images/a.jpg": 3.25, "/data/Images/b.jpg": None}
    with pytest.warns(UserWarning):
        assert read_predictions(jsonl, field="global_score")["/data/Images/a.jpg"] == 3.0
    authors = tmp_path / "results.json"
    authors.write_text(json.dumps([{"name": "a.jpg", "score": 5}, {"name": "b.jpg", "score": 1}]))
    assert read_predictions(authors) == {"a.jpg": 5.0, "b.jpg": 1.0}
    mapping = tmp_path / "map.json"
    mapping.write_text(json.dumps({"a.jpg": 2}))
    assert read_predictions(mapping) == {"a.jpg": 2.0}
    table = tmp_path / "scores.csv"
    table.write_text("path,score,error\n/x/a.jpg,4.5,\n/x/b.jpg,,oops\n", encoding="utf-8")
    assert read_predictions(table) == {"/x/a.jpg": 4.5, "/x/b.jpg": None}


def test_prediction_reader_errors(tmp_path: Path) -> None:
    with pytest.raises(PredictionsError, match="not found"):
        read_predictions(tmp_path / "none.json")
    bad = tmp_path / "bad.json"
    bad.write_text("[{")
    with pytest.raises(PredictionsError, match="bad.json: not valid JSON"):
        read_predictions(bad)
    bad.write_text(json.dumps([{"name": "a.jpg", "score": "five"}]))
    with pytest.raises(PredictionsError, match="score of a.jpg is not a number"):
        read_predictions(bad)
    bad.write_text(json.dumps([{"score": 1}]))
    with pytest.raises(PredictionsError, match="none of the name keys"):
        read_predictions(bad)
    other = tmp_path / "x.parquet"
    other.write_bytes(b"")
    with pytest.raises(PredictionsError, match="unknown predictions format"):
        read_predictions(other)


def _app() -> typer.Typer:
    app = typer.Typer()
    app.command()(metrics)

    @app.callback()
    def main() -> None:  # a callback keeps "metrics" a named sub-command, as in dogiqa's CLI
        pass

    return app


@pytest.mark.parametrize("policy", ["drop", "paper"])
def test_reference_livec(reference_json: Path, policy: str) -> None:
    """The authors' own LIVE Challenge output gives the published SRCC 0.7041 / PLCC 0.7029 (spec §5)."""
    labels = reference_json.parents[1] / "iqa-labels" / "livec"
    args = ["metrics", str(reference_json), "--dataset", "livec", "--labels", str(labels), "--json"]
    result = CliRunner().invoke(_app(), [*args, "--missing", policy, "--bootstrap", "200"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert f"{report['srcc']:.4f}" == "0.7041" and f"{report['plcc']:.4f}" == "0.7029"
    assert report["n"] == 1169 and report["missing"] == 0 and report["missing_policy"] == policy
    assert report["ci"]["srcc"][0] < 0.7041 < report["ci"]["srcc"][1]
    for key in ("krcc", "plcc_logistic", "rmse_logistic"):
        assert isinstance(report[key], float)


def test_metrics_command_table_and_errors(tmp_path: Path) -> None:
    labels = tmp_path / "labels.csv"
    labels.write_text("name,mos\na.jpg,1\nb.jpg,2\nc.jpg,3\nd.jpg,4\n")
    preds = tmp_path / "p.json"
    preds.write_text(json.dumps([{"name": f"{n}.jpg", "score": s} for n, s in zip("abc", (1, 3, 2), strict=True)]))
    runner = CliRunner()
    out = runner.invoke(_app(), ["metrics", str(preds), "-d", "generic", "-l", str(labels), "--bootstrap", "0"])
    assert out.exit_code == 0, out.output
    assert "n = 3 of 4" in out.output and "missing predictions: 1" in out.output and "d.jpg" in out.output
    js = runner.invoke(
        _app(),
        [
            "metrics",
            str(preds),
            "-d",
            "generic",
            "-l",
            str(labels),
            "--json",
            "--missing",
            "paper",
            "--decimals",
            "-1",
        ],
    )
    report = json.loads(js.output)
    assert report["n"] == 4 and report["srcc"] == pytest.approx(srcc([1, 3, 2, 1], [1, 2, 3, 4]), abs=1e-12)
    missing = runner.invoke(_app(), ["metrics", str(preds), "-d", "livec", "-l", str(tmp_path / "nope")])
    assert missing.exit_code == 2 and "AllImages_release.mat" in missing.output
    wrong = runner.invoke(_app(), ["metrics", str(preds), "-d", "generic", "-l", str(labels), "--missing", "x"])
    assert wrong.exit_code != 0
