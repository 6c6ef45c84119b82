"""Every number `dogiqa metrics` reports for the LIVEC reference, recomputed independently (scipy, by hand),
and the paper / code aggregations for K = 3, 5, 7, 9 against the spec's formulas."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy import io as sio
from scipy import optimize, stats
from typer.testing import CliRunner

from dogiqa.aggregate import aggregate
from dogiqa.api import finalize
from dogiqa.cli import app
from dogiqa.results import ImageResult, RegionRecord

from shared_data import shared_path

N_BOOT = 1000  # the README's setting


def livec_pairs(reference_json, labels_dir) -> tuple[np.ndarray, np.ndarray]:
    """(prediction, MOS) per LIVEC image, joined by file name, read with scipy.io only."""
    images = sio.loadmat(labels_dir / "AllImages_release.mat")["AllImages_release"]
    names = [str(np.ravel(x)[0]) for x in np.ravel(images)]
    mos = np.ravel(sio.loadmat(labels_dir / "AllMOS_release.mat")["AllMOS_release"]).astype(float)
    preds = {r["name"]: float(r["score"]) for r in json.loads(reference_json.read_text())}
    assert len(names) == len(mos) == 1169 and set(preds) == set(names)
    return np.array([preds[n] for n in names]), mos


@pytest.fixture(scope="module")
def livec():
    reference_json = shared_path("reference", "livec-global-only-dogiqa.json")
    labels = shared_path("iqa-labels", "livec")
    res = CliRunner().invoke(app, ["metrics", str(reference_json), "--dataset", "livec", "--labels", str(labels),
                                   "--json", "--decimals", "-1", "--bootstrap", str(N_BOOT)])  # fmt: skip
    assert res.exit_code == 0, res.output
    return json.loads(res.stdout), *livec_pairs(reference_json, labels)


def logistic(x, b1, b2, b3, b4):
    return b2 + (b1 - b2) / (1 + np.exp(-(x - b3) / abs(b4)))


def test_correlations_and_the_readme_figures(livec):
    report, p, t = livec
    assert report["n"] == 1169 and report["missing"] == 0
    assert report["srcc"] == pytest.approx(stats.spearmanr(p, t).statistic, abs=1e-12)
    assert report["plcc"] == pytest.approx(stats.pearsonr(p, t).statistic, abs=1e-12)
    assert report["krcc"] == pytest.approx(stats.kendalltau(p, t).statistic, abs=1e-12)
    figures = {k: round(report[k], 4) for k in ("srcc", "plcc", "krcc", "plcc_logistic", "rmse_logistic")}
    readme = {"srcc": 0.7041, "plcc": 0.7029, "krcc": 0.5736, "plcc_logistic": 0.7145, "rmse_logistic": 14.1885}
    assert figures == readme


def test_logistic_plcc_and_rmse_by_an_independent_fit(livec):
    report, p, t = livec
    # least squares from another start (residuals by hand, scipy's trust-region solver)
    fit = optimize.least_squares(lambda b: logistic(p, *b) - t, x0=[90, 10, 3.0, 1.0], method="trf", max_nfev=20000)
    mapped = logistic(p, *fit.x)
    assert report["plcc_logistic"] == pytest.approx(np.corrcoef(mapped, t)[0, 1], abs=1e-4)
    assert report["rmse_logistic"] == pytest.approx(np.sqrt(np.mean((mapped - t) ** 2)), abs=1e-3)
    assert report["plcc_logistic"] != pytest.approx(report["plcc"], abs=1e-3)  # the fit is really applied
    # predictions take few values: no map beats the per-value MOS means (a lower bound on the RMSE)
    group_rmse = np.sqrt(sum(((t[p == v] - t[p == v].mean()) ** 2).sum() for v in np.unique(p)) / t.size)
    assert group_rmse <= report["rmse_logistic"] < np.std(t)


def test_bootstrap_cis_by_resampling_again(livec):
    report, p, t = livec
    idx = np.random.default_rng(0).integers(0, p.size, size=(N_BOOT, p.size))  # the documented seeded scheme
    by_metric = {
        "srcc": [stats.spearmanr(p[i], t[i]).statistic for i in idx],
        "plcc": [stats.pearsonr(p[i], t[i]).statistic for i in idx],
        "krcc": [stats.kendalltau(p[i], t[i]).statistic for i in idx],
    }
    for name, values in by_metric.items():
        lo, hi = np.percentile(values, [2.5, 97.5])
        assert report["ci"][name] == pytest.approx([lo, hi], abs=1e-9), name
        assert lo < report[name] < hi
    assert [round(x, 4) for x in report["ci"]["srcc"]] == [0.6735, 0.7352]  # README
    # scipy's own percentile bootstrap (other resamples) lands close
    sp = stats.bootstrap((p, t), lambda a, b: stats.spearmanr(a, b).statistic, paired=True, vectorized=False,
                         n_resamples=N_BOOT, method="percentile", random_state=1).confidence_interval  # fmt: skip
    assert report["ci"]["srcc"] == pytest.approx([sp.low, sp.high], abs=0.015)


@pytest.mark.parametrize("levels", [3, 5, 7, 9])
def test_aggregations_for_every_k(levels):
    s_g, scores, areas = levels - 0.5, [1.0, float(levels), None, 2.0], [300.0, 100.0, 50.0, 600.0]
    s_local = (1 * 300 + levels * 100 + 2 * 600) / 1000  # the unscored region is left out, but counted
    paper = aggregate(s_g, scores, areas, "paper", levels)
    assert paper.score == pytest.approx((s_g + s_local) / 2 + 4 * levels / 71)  # spec §4, c_max = 71 (SPAQ)
    assert paper.local_score == pytest.approx(s_local)
    code = aggregate(s_g, scores, areas, "code", levels)
    assert code.score == pytest.approx(s_local + 0.1 * 4 + 0.5 * s_g)  # eval.py defaults
    mean = aggregate(s_g, scores, areas, "mean", levels)
    assert mean.score == pytest.approx((1 + levels + 2) / 3)
    assert aggregate(s_g, scores, areas, "global", levels).score == s_g
    # the same through re-aggregation of a stored record
    regions = [RegionRecord(index=i, kind="mask", box=(0, 0, 1, 1), weight=a, pixels=int(a), score=s)
               for i, (s, a) in enumerate(zip(scores, areas, strict=True))]  # fmt: skip
    record = finalize(ImageResult(path="x", global_score=s_g, regions=regions), "paper", levels)
    assert record.score == pytest.approx(paper.score)


def test_uncertainty_of_every_aggregation_by_hand():
    """The records' ``uncertainty``: independent regions, Var(sum c_i x_i) = sum c_i^2 Var(x_i)."""
    s_g, g_var = 4.0, 0.3
    scores, areas, variances = [2.0, 5.0, None], [100.0, 300.0, 50.0], [0.4, 0.9, 2.0]
    w = [100 / 400, 300 / 400]  # the unscored region is left out
    paper = aggregate(s_g, scores, areas, "paper", 7, g_var, variances)
    assert paper.std == pytest.approx(np.sqrt(0.25 * g_var + 0.25 * (w[0] ** 2 * 0.4 + w[1] ** 2 * 0.9)))
    code = aggregate(s_g, scores, areas, "code", 7, g_var, variances)
    assert code.std == pytest.approx(np.sqrt(0.25 * g_var + (w[0] ** 2 * 0.4 + w[1] ** 2 * 0.9)))
    mean = aggregate(s_g, scores, areas, "mean", 7, g_var, variances)
    assert mean.std == pytest.approx(np.sqrt((0.4 + 0.9) / 4))  # plain mean of two regions
    assert aggregate(s_g, scores, areas, "global", 7, g_var, variances).std == pytest.approx(np.sqrt(g_var))
    assert aggregate(s_g, scores, areas, "paper", 7, None, variances).std is None
