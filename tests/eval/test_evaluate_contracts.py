"""Contracts of dogiqa.evaluate function by function, each value from scipy, numpy or a hand computation:
tied ranks, the logistic mapping and its units, CIs per statistic and level, the report's counts and
orientation, the printed summary, JSON cleaning and every predictions-file form."""

from __future__ import annotations

import json
import math
import re
import warnings

import numpy as np
import pytest
from scipy import optimize, stats

from dogiqa.datasets.base import LabelItem, LabelledDataset
from dogiqa.evaluate import (
    KRCC,
    PLCC,
    SRCC,
    LogisticPLCC,
    LogisticRMSE,
    PredictionsError,
    align,
    bootstrap_ci,
    clean_json,
    compute_metrics,
    evaluate_predictions,
    fit_logistic,
    format_metrics,
    krcc,
    logistic4,
    no_match_hint,
    plcc,
    plcc_logistic,
    read_predictions,
    rmse_logistic,
    srcc,
    undefined_reason,
)


def curve_data(n: int = 40, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Predictions on 1..7 and MOS on 0..100 tied to them by a logistic curve plus noise."""
    rng = np.random.default_rng(seed)
    p = rng.uniform(1, 7, n)
    t = 10 + 80 / (1 + np.exp(-(p - 4) / 0.8)) + rng.normal(0, 4, n)
    return p, t


def independent_fit(p: np.ndarray, t: np.ndarray) -> np.ndarray:
    """The logistic mapping by scipy's least_squares from another start (residuals written here)."""

    def curve(b, x):
        return b[1] + (b[0] - b[1]) / (1 + np.exp(-(x - b[2]) / abs(b[3])))

    fit = optimize.least_squares(lambda b: curve(b, p) - t, x0=[t.max(), t.min(), np.median(p), 1.0],
                                 method="trf", max_nfev=20000)  # fmt: skip
    return curve(fit.x, p)


def boot_reference(p, t, fn, n_boot: int, seed: int, level: float) -> list[float]:
    """Percentile CI over the documented seeded resamples, each computed with scipy; undefined ones dropped."""
    idx = np.random.default_rng(seed).integers(0, p.size, size=(n_boot, p.size))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        vals = np.array([fn(p[i], t[i]).statistic if np.ptp(p[i]) and np.ptp(t[i]) else np.nan for i in idx])
    vals = vals[np.isfinite(vals)]
    a = (1 - level) / 2
    return list(np.quantile(vals, [a, 1 - a]))


def dataset(labels: dict[str, float], higher_is_better: bool = True, missing=()) -> LabelledDataset:
    return LabelledDataset("toy", None, [LabelItem(n, None, m) for n, m in labels.items()],
                           missing=list(missing), higher_is_better=higher_is_better)  # fmt: skip


# ---------------------------------------------------------------- correlations


def test_ties_are_averaged_and_kendall_is_tau_b():
    # ranks of (1, 1, 2) are (1.5, 1.5, 3): Pearson of the ranks with (1, 2, 3) = 1.5 / sqrt(1.5 * 2)
    assert srcc([1, 1, 2], [1, 2, 3]) == pytest.approx(1.5 / math.sqrt(3.0))
    # pairs: one tied in x only, two concordant -> tau-b = 2 / sqrt((3 - 1) * 3)
    assert krcc([1, 1, 2], [1, 2, 3]) == pytest.approx(2 / math.sqrt(6.0))
    # Pearson by hand: x = (1, 2, 4), y = (1, 3, 2): centred (-4/3, -1/3, 5/3) and (-1, 1, 0)
    assert plcc([1, 2, 4], [1, 3, 2]) == pytest.approx(1 / math.sqrt(42 / 9 * 2))


def test_undefined_inputs_give_nan():
    assert math.isnan(plcc([1, 2, 3], [4, 4, 4])) and math.isnan(plcc([1], [1]))
    assert math.isnan(krcc([1], [1])) and math.isnan(srcc([], []))
    assert math.isnan(srcc([1, 2, 3], [2, 2, 2]))
    # two points are defined for the raw functions (the report asks for 3: undefined_reason)
    assert krcc([1, 2], [2, 1]) == pytest.approx(-1.0) and plcc([1, 2], [5, 7]) == pytest.approx(1.0)
    assert srcc([1, 2], [7, 5]) == pytest.approx(-1.0)


# ---------------------------------------------------------------- the logistic mapping


def test_logistic4_by_hand():
    x = np.array([0.0, 1.0, 2.0])
    want = [8 / (1 + math.e**2) + 2, 6.0, 8 / (1 + math.e**-2) + 2]
    assert logistic4(x, 10, 2, 1, 0.5) == pytest.approx(want)
    assert logistic4(x, 10, 2, 1, -0.5) == pytest.approx(want)  # the scale's sign does not matter
    assert logistic4([-1.0, 1.0, 3.0], 10, 2, 1, 0.0) == pytest.approx([2.0, 6.0, 10.0])  # a step, no error


def test_fit_follows_rising_and_falling_curves():
    x = np.linspace(1, 9, 30)
    for true in ((90.0, 10.0, 5.0, 1.0), (10.0, 90.0, 5.0, 1.0)):  # rising, then falling
        y = logistic4(x, *true)
        params = fit_logistic(x, y)
        assert params is not None and len(params) == 4 and all(isinstance(v, float) for v in params)
        assert np.abs(logistic4(x, *params) - y).max() < 0.05
    assert fit_logistic([1, 2, 3], [1, 3, 2]) is None  # fewer than 4 points: no fit
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert fit_logistic([1, 2, 3, math.nan, 5], [1, 2, 3, 4, 5]) is None  # a failed fit is None, not a crash
    four = np.array([2.0, 4.0, 6.0, 8.0])
    assert plcc_logistic(four, logistic4(four, 90.0, 10.0, 5.0, 1.0)) == pytest.approx(1.0, abs=1e-6)
    assert math.isnan(plcc_logistic([1, 2, 3], [1, 3, 2])) and math.isnan(rmse_logistic([1, 2, 3], [1, 3, 2]))


def test_logistic_metrics_against_an_independent_fit_and_in_target_units():
    p, t = curve_data()
    mapped = independent_fit(p, t)
    assert plcc_logistic(p, t) == pytest.approx(stats.pearsonr(mapped, t).statistic, abs=1e-5)
    assert rmse_logistic(p, t) == pytest.approx(np.sqrt(np.mean((mapped - t) ** 2)), abs=1e-3)
    assert plcc_logistic(p, t) > plcc(p, t) + 0.01  # the curve is really fitted
    # RMSE is in the target's units, PLCC does not depend on them
    assert rmse_logistic(p, 10 * t) == pytest.approx(10 * rmse_logistic(p, t), rel=1e-3)
    assert plcc_logistic(p, 10 * t + 5) == pytest.approx(plcc_logistic(p, t), abs=1e-6)


# ---------------------------------------------------------------- bootstrap CIs


def test_each_ci_is_the_percentile_interval_of_its_own_statistic():
    p, t = curve_data(30, seed=1)
    p = np.round(p)  # ties, as with integer levels
    ci = bootstrap_ci(p, t, metrics=("srcc", "plcc", "krcc"), n_boot=150, seed=4)
    assert set(ci) == {"srcc", "plcc", "krcc"}
    for name, fn in (("srcc", stats.spearmanr), ("plcc", stats.pearsonr), ("krcc", stats.kendalltau)):
        assert list(ci[name]) == pytest.approx(boot_reference(p, t, fn, 150, 4, 0.95), abs=1e-9), name
    half = bootstrap_ci(p, t, metrics=("plcc",), n_boot=150, seed=4, level=0.5)
    assert set(half) == {"plcc"}
    assert list(half["plcc"]) == pytest.approx(boot_reference(p, t, stats.pearsonr, 150, 4, 0.5), abs=1e-9)
    assert half["plcc"][1] - half["plcc"][0] < ci["plcc"][1] - ci["plcc"][0]


def test_ci_defaults_are_the_documented_1000_resamples_seed_0_and_95_percent():
    p, t = curve_data(15, seed=7)
    got = bootstrap_ci(p, t, metrics=("plcc",))["plcc"]
    assert list(got) == pytest.approx(boot_reference(p, t, stats.pearsonr, 1000, 0, 0.95), abs=1e-9)
    report = compute_metrics(p, t)
    assert report["bootstrap"] == {"n": 1000, "seed": 0, "level": 0.95} and report["ci"]["plcc"] == list(got)


def test_ci_of_a_logistic_metric_and_undefined_resamples():
    p, t = curve_data(12, seed=2)
    ci = bootstrap_ci(p, t, metrics=("rmse_logistic",), n_boot=20, seed=0)
    idx = np.random.default_rng(0).integers(0, p.size, size=(20, p.size))
    ref = np.array([rmse_logistic(p[i], t[i]) for i in idx])
    ref = ref[np.isfinite(ref)]
    assert list(ci["rmse_logistic"]) == pytest.approx(list(np.quantile(ref, [0.025, 0.975])), abs=1e-9)
    # many resamples of (1, 1, 1, 2) are constant: those are left out, not counted as NaN
    few = bootstrap_ci([1, 1, 1, 2], [1, 2, 3, 4], metrics=("plcc", "srcc"), n_boot=200, seed=5)
    assert list(few["plcc"]) == pytest.approx(boot_reference(np.array([1.0, 1, 1, 2]), np.array([1.0, 2, 3, 4]),
                                                             stats.pearsonr, 200, 5, 0.95), abs=1e-9)  # fmt: skip
    const = bootstrap_ci([2, 2, 2, 2], [1, 2, 3, 4], n_boot=50)
    assert all(math.isnan(lo) and math.isnan(hi) for lo, hi in const.values()) and set(const) == {
        "srcc",
        "plcc",
        "krcc",
    }
    for tiny in (bootstrap_ci([1, 2], [1, 2]), bootstrap_ci([1, 2, 3], [1, 3, 2], n_boot=0)):
        assert all(math.isnan(v) for pair in tiny.values() for v in pair)
    three = np.array([1.0, 2.0, 3.0]), np.array([1.0, 3.0, 2.0])
    got = bootstrap_ci(*three, metrics=("srcc",), n_boot=40, seed=1)["srcc"]
    assert list(got) == pytest.approx(boot_reference(*three, stats.spearmanr, 40, 1, 0.95), abs=1e-9)
    p, t = curve_data(10, seed=6)
    [i] = np.random.default_rng(3).integers(0, 10, size=(1, 10))
    assert bootstrap_ci(p, t, metrics=("plcc",), n_boot=1, seed=3)["plcc"] == pytest.approx(
        (stats.pearsonr(p[i], t[i]).statistic,) * 2
    )  # one resample: both ends are its value


# ---------------------------------------------------------------- compute_metrics / the report


def test_compute_metrics_reports_every_number_independently():
    p, t = curve_data(36, seed=3)
    out = compute_metrics(p, t, n_boot=120, seed=9, level=0.9)
    assert out["srcc"] == pytest.approx(stats.spearmanr(p, t).statistic, abs=1e-12)
    assert out["plcc"] == pytest.approx(stats.pearsonr(p, t).statistic, abs=1e-12)
    assert out["krcc"] == pytest.approx(stats.kendalltau(p, t).statistic, abs=1e-12)
    mapped = independent_fit(p, t)
    assert out["plcc_logistic"] == pytest.approx(stats.pearsonr(mapped, t).statistic, abs=1e-5)
    assert out["rmse_logistic"] == pytest.approx(np.sqrt(np.mean((mapped - t) ** 2)), abs=1e-3)
    params = out["logistic_params"]
    assert len(params) == 4 and np.abs(logistic4(p, *params) - mapped).max() < 0.05
    assert out["bootstrap"] == {"n": 120, "seed": 9, "level": 0.9} and out["reason"] is None
    for name, fn in (("srcc", stats.spearmanr), ("plcc", stats.pearsonr), ("krcc", stats.kendalltau)):
        assert out["ci"][name] == pytest.approx(boot_reference(p, t, fn, 120, 9, 0.9), abs=1e-9), name
    assert compute_metrics(p, t, n_boot=120, seed=10)["ci"] != out["ci"]


def test_undefined_report_keeps_its_bootstrap_settings():
    out = compute_metrics([1, 2], [2, 1], n_boot=77, seed=4, level=0.8)
    assert out["bootstrap"] == {"n": 0, "seed": 4, "level": 0.8} and out["logistic_params"] is None
    assert undefined_reason([1, 2, 3], [5, 5, 5]) == "constant labels (all 3 are 5)"
    assert undefined_reason([2.5] * 4, [1, 2, 3, 4]) == "constant predictions (all 4 are 2.5)"
    assert undefined_reason([1, 2, 3], [1, 2, 2]) is None


def test_align_matches_by_name_keeps_the_first_duplicate_and_label_order():
    ds = dataset({"c.jpg": 3.0, "a.jpg": 1.0, "b.jpg": 2.0, "d.jpg": 4.0})
    a = align({"/x/a.jpg": 5.0, "b.jpg": math.nan, "y/a.jpg": 9.0, "c.JPG": 7.0, "q.jpg": 1.0}, ds)
    assert a["names"] == ["c.jpg", "a.jpg"] and list(a["preds"]) == [7.0, 5.0] and list(a["target"]) == [3.0, 1.0]
    assert a["missing"] == ["b.jpg", "d.jpg"] and a["unmatched"] == ["q.jpg"] and a["duplicates"] == ["y/a.jpg"]
    paper = align({"a.jpg": 5.0, "b.jpg": math.inf}, ds, missing="paper")
    assert paper["names"] == ["c.jpg", "a.jpg", "b.jpg", "d.jpg"] and list(paper["preds"]) == [1.0, 5.0, 1.0, 1.0]


def test_report_counts_orientation_and_settings():
    labels = {f"{i}.png": float(i) for i in range(8)}
    # DMOS-like labels (lower is better) and predictions that fall as the label rises: they agree
    preds = {f"{i}.png": 10.0 - i * i for i in range(6)} | {f"extra{i}.png": 1.0 for i in range(4)}
    ds = dataset(labels, higher_is_better=False, missing=["6.png"])
    rep = evaluate_predictions(preds, ds, n_boot=60, seed=2, max_listed=2)
    assert rep["srcc"] == pytest.approx(1.0) and rep["krcc"] == pytest.approx(1.0) and rep["plcc"] > 0.9
    assert rep["dataset"] == "toy" and rep["n"] == 6 and rep["n_labels"] == 8 and rep["missing_on_disk"] == 1
    assert rep["missing"] == 2 and rep["missing_names"] == ["6.png", "7.png"]
    assert rep["unmatched"] == 4 and rep["unmatched_names"] == ["extra0.png", "extra1.png"]  # listed up to 2
    assert rep["negated"] is False and rep["duplicates"] == 0
    p = np.array([10.0 - i * i for i in range(6)])
    t = -np.arange(6.0)
    assert rep["ci"]["plcc"] == pytest.approx(boot_reference(p, t, stats.pearsonr, 60, 2, 0.95), abs=1e-9)
    assert rep["bootstrap"]["n"] == 60 and rep["bootstrap"]["seed"] == 2
    assert rep["higher_is_better"] == {"srcc": True, "plcc": True, "krcc": True, "plcc_logistic": True,
                                       "rmse_logistic": False}  # fmt: skip
    both = evaluate_predictions(preds, dataset(labels), pred_higher_is_better=False, n_boot=0)
    assert both["srcc"] == pytest.approx(1.0) and both["negated"] is True


# ---------------------------------------------------------------- metric classes


@pytest.mark.parametrize("cls, fn", [(SRCC, srcc), (PLCC, plcc), (KRCC, krcc), (LogisticPLCC, plcc_logistic),
                                     (LogisticRMSE, rmse_logistic)])  # fmt: skip
def test_metric_class_batch_value_and_running_value(cls, fn):
    p, t = curve_data(24, seed=5)
    m = cls()
    assert m.higher_is_better is fn.higher_is_better
    assert m(p[:12], t[:12]) == pytest.approx(fn(p[:12], t[:12]))  # this batch alone
    assert m(p[12:], t[12:]) == pytest.approx(fn(p[12:], t[12:]))
    assert m.compute() == pytest.approx(fn(p, t))  # everything seen
    with pytest.raises(ValueError, match="differ in length"):
        m.update([1, 2], [1])


# ---------------------------------------------------------------- printed summary and JSON


def _rows(text: str) -> dict[str, str]:
    pattern = r"^  (PLCC \(logistic\)|RMSE \(logistic\)|SRCC|PLCC|KRCC) +(.*)$"
    return {m.group(1): m.group(2) for m in map(re.compile(pattern).match, text.splitlines()) if m}


def test_summary_puts_each_value_and_ci_on_its_row():
    report = {"dataset": "toy", "n": 5, "n_labels": 14, "srcc": 0.11, "plcc": 0.22, "krcc": 0.33,
              "plcc_logistic": 0.44, "rmse_logistic": 5.5, "missing": 9, "missing_policy": "drop",
              "missing_names": [f"m{i}.jpg" for i in range(9)] + ["late.jpg", "later.jpg"], "unmatched": 7,
              "ci": {"srcc": [0.01, 0.21], "plcc": [0.02, 0.32], "krcc": None}, "reason": None}  # fmt: skip
    text = format_metrics(report)
    assert _rows(text) == {"SRCC": "0.11  [0.01, 0.21]", "PLCC": "0.22  [0.02, 0.32]", "KRCC": "0.33",
                           "PLCC (logistic)": "0.44", "RMSE (logistic)": "5.5"}  # fmt: skip
    assert "n = 5 of 14" in text and "toy" in text
    assert re.search(r"missing predictions: 9 \(policy drop\).*unmatched predictions: 7", text)
    listed = text.split("first missing: ")[1].splitlines()[0]
    assert listed.split(", ") == [f"m{i}.jpg" for i in range(9)] + ["late.jpg"]  # the first 10
    assert "negated" not in text


def test_summary_of_a_failed_fit():
    report = {"dataset": "toy", "n": 4, "n_labels": 4, "srcc": 0.5, "plcc": 0.4, "krcc": 0.3,
              "plcc_logistic": None, "rmse_logistic": None, "missing": 0, "missing_policy": "paper",
              "unmatched": 0, "ci": {}, "reason": None}  # fmt: skip
    rows = _rows(format_metrics(report))
    assert rows["PLCC (logistic)"] == rows["RMSE (logistic)"] == "undefined (the logistic fit failed)"
    assert rows["SRCC"] == "0.5" and "first missing" not in format_metrics(report)


def test_clean_json_is_strict_json():
    data = {"a": math.nan, "b": [math.inf, -math.inf, (np.float32(0.5), np.int64(3))], "c": np.float64(1 / 3),
            "d": "text", "e": True, "f": None, "g": {"h": 2.71828}}  # fmt: skip
    full = clean_json(data)
    assert full == {"a": None, "b": [None, None, [0.5, 3]], "c": 1 / 3, "d": "text", "e": True, "f": None,
                    "g": {"h": 2.71828}}  # fmt: skip
    assert type(full["b"][2][1]) is int and type(full["c"]) is float
    json.dumps(full, allow_nan=False)
    assert clean_json(data, 2)["c"] == 0.33 and clean_json(data, 2)["g"] == {"h": 2.72}
    assert clean_json(data, 0)["g"]["h"] == 3.0 and clean_json(data, -1)["c"] == 1 / 3


# ---------------------------------------------------------------- predictions files


def test_csv_and_tsv_predictions(tmp_path):
    tsv = tmp_path / "p.tsv"
    tsv.write_text("image_name\tscore\n1.jpg\t2.5\n2.jpg\tnan\n", encoding="utf-8")
    assert read_predictions(tsv) == {"1.jpg": 2.5, "2.jpg": None}
    bom = tmp_path / "p.csv"
    bom.write_text("\ufeff File ,global_score\nx.jpg,3\n", encoding="utf-8")  # a spreadsheet export
    assert read_predictions(bom, field="global_score") == {"x.jpg": 3.0}
    with pytest.raises(PredictionsError, match="need a name column") as err:
        read_predictions(bom)  # no 'score' column
    assert "global_score" in str(err.value)
    ours = tmp_path / "ours.csv"
    ours.write_text("path,score,path_bytes\n/d/caf\\xe9.png,4,/d/caf%E9.png\n/d/b.png,1,\n", encoding="utf-8")
    assert read_predictions(ours) == {"/d/caf\udce9.png": 4.0, "/d/b.png": 1.0}
    other = tmp_path / "name.csv"  # a 'name' column is taken as written, whatever else the file holds
    other.write_text("name,score,path_bytes\nq.png,2,%41.png\n", encoding="utf-8")
    assert read_predictions(other) == {"q.png": 2.0}


def test_json_and_jsonl_predictions(tmp_path, monkeypatch):
    jsonl = tmp_path / "r.JSONL"
    lines = [
        {"path": "/d/caf\\xe9.png", "path_bytes": "/d/caf%E9.png", "score": 2.0, "local_score": 1.5},
        {"path": "/d/b.png", "error": "broken"},
        {"image": "c.png", "score": "3.5", "local_score": None},
    ]
    jsonl.write_text("\n\n".join(json.dumps(x) for x in lines) + "\n", encoding="utf-8")  # blank lines too
    assert read_predictions(jsonl) == {"/d/caf\udce9.png": 2.0, "/d/b.png": None, "c.png": 3.5}
    assert read_predictions(jsonl, field="local_score") == {"/d/caf\udce9.png": 1.5, "/d/b.png": None,
                                                            "c.png": None}  # fmt: skip
    with pytest.raises(PredictionsError, match=r"record 1 \(/d/caf.*\) has no 'global_score' field"):
        read_predictions(jsonl, field="global_score")
    mapping = tmp_path / "m.json"
    mapping.write_text(json.dumps({"a.jpg": None, "b.jpg": "", "c.jpg": "Infinity", "d.jpg": 1}))
    assert read_predictions(mapping) == {"a.jpg": None, "b.jpg": None, "c.jpg": None, "d.jpg": 1.0}
    monkeypatch.setenv("HOME", str(tmp_path))
    assert read_predictions("~/m.json")["d.jpg"] == 1.0
    for bad, words in (([{"name": "a", "score": 1}, 3], "record 2 is not an object"), (5, "expected a list")):
        mapping.write_text(json.dumps(bad))
        with pytest.raises(PredictionsError, match=words):
            read_predictions(mapping)


# ---------------------------------------------------------------- the zero-match hint


def test_no_match_hints():
    ds = dataset({f"{i}.jpg": float(i) for i in range(5)})
    assert "holds no predictions" in no_match_hint({}, ds)
    empty = no_match_hint({"0.jpg": None, "1.jpg": None}, ds)
    assert "2 predictions match labels of 'toy'" in empty and "--field global_score" in empty
    assert "'score'" in empty
    assert "1 predictions match labels of 'toy' but none has a finite score" in no_match_hint({"0.jpg": math.nan}, ds)
    far = no_match_hint({f"/deep/dir/z{i}.png": 1.0 for i in range(5)}, ds)
    assert "none of the 5 prediction names" in far and "/deep" not in far
    assert far.count(".png'") == 3 and "'0.jpg', '1.jpg', '2.jpg'" in far  # three examples of each side
    assert "--dataset" not in far  # no label file given: nothing to try


def test_no_match_hint_suggests_only_a_reader_that_matches(tmp_path):
    labels = tmp_path / "labels.csv"
    labels.write_text("name,mos\nq1.jpg,1\nq2.jpg,2\nq3.jpg,3\n", encoding="utf-8")
    ds = dataset({"q1.jpg": 1.0, "q2.jpg": 2.0, "q3.jpg": 3.0})
    assert "--dataset" not in no_match_hint({"z.png": 1.0}, ds, labels=labels)  # no reader matches z.png
    hint = no_match_hint({"/x/q1.jpg": 1.0, "q2.jpg": 2.0, "z.png": 3.0}, dataset({"other.jpg": 1.0}), labels=labels)
    assert re.search(r"; with --dataset [\w-]+ the same labels match 2 of them$", hint), hint
