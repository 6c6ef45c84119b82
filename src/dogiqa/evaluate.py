"""Correlation metrics for IQA, the paper's evaluation protocol, and prediction-file readers.

Functional core + thin stateful classes (torchmetrics style); every metric carries ``higher_is_better``.

>>> round(srcc([1, 2, 3, 4], [10, 20, 40, 30]), 4)
0.8
>>> m = PLCC(); m.update([1, 2], [1, 2]); m.update([3], [4]); round(m.compute(), 4)
0.982

The paper (spec §5) reports SRCC and PLCC on the raw scores, with no logistic fit;
:func:`evaluate_predictions` returns those as ``srcc``/``plcc`` and adds KRCC, PLCC and RMSE after the usual
4-parameter logistic fit, and seeded bootstrap 95 % confidence intervals.
"""

from __future__ import annotations

import csv
import json
import math
import warnings
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np  # scipy is imported in the functions that use it: scipy.stats takes ~1 s to import

from dogiqa.datasets.base import LabelledDataset
from dogiqa.results import path_from_fields

ArrayLike = Sequence[float] | np.ndarray
MissingPolicy = Literal["drop", "paper"]
PAPER_MISSING_SCORE = 1.0  # the authors' code counts an image without a prediction as score 1


class PredictionsError(ValueError):
    """A predictions file cannot be read; the message names the file and what is wrong."""


# ---------------------------------------------------------------- functional metrics


def _pair(preds: ArrayLike, target: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    p, t = np.asarray(preds, dtype=float).ravel(), np.asarray(target, dtype=float).ravel()
    if p.shape != t.shape:
        raise ValueError(f"preds and target differ in length: {p.size} vs {t.size}")
    return p, t


def _quiet(fn: Callable[[], Any]) -> Any:
    """Run a scipy statistic, turning its constant-input warnings into a NaN result."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fn()


def srcc(preds: ArrayLike, target: ArrayLike) -> float:
    """Spearman rank-order correlation (scipy's, ties averaged). NaN for fewer than 2 or constant values."""
    from scipy import stats
    p, t = _pair(preds, target)
    return float(_quiet(lambda: stats.spearmanr(p, t)[0])) if p.size > 1 else math.nan


def plcc(preds: ArrayLike, target: ArrayLike) -> float:
    """Pearson linear correlation on the raw scores (no fit), as the paper reports it."""
    from scipy import stats
    p, t = _pair(preds, target)
    if p.size < 2 or np.ptp(p) == 0 or np.ptp(t) == 0:
        return math.nan
    return float(_quiet(lambda: stats.pearsonr(p, t)[0]))


def krcc(preds: ArrayLike, target: ArrayLike) -> float:
    """Kendall rank correlation (tau-b, scipy's default)."""
    from scipy import stats
    p, t = _pair(preds, target)
    return float(_quiet(lambda: stats.kendalltau(p, t)[0])) if p.size > 1 else math.nan


srcc.higher_is_better = True  # type: ignore[attr-defined]
plcc.higher_is_better = True  # type: ignore[attr-defined]
krcc.higher_is_better = True  # type: ignore[attr-defined]


def logistic4(x: ArrayLike, b1: float, b2: float, b3: float, b4: float) -> np.ndarray:
    """The 4-parameter logistic of IQA practice: ``(b1 - b2) / (1 + exp(-(x - b3) / |b4|)) + b2``."""
    z = -(np.asarray(x, dtype=float) - b3) / max(abs(b4), 1e-12)
    return (b1 - b2) / (1.0 + np.exp(np.clip(z, -500, 500))) + b2


def fit_logistic(preds: ArrayLike, target: ArrayLike) -> tuple[float, float, float, float] | None:
    """Least-squares fit of :func:`logistic4` mapping predictions onto the target scale (None if it fails)."""
    from scipy import optimize, stats
    p, t = _pair(preds, target)
    if p.size < 4 or np.ptp(p) == 0:
        return None
    spread = np.std(p) or 1.0
    sign = 1.0 if _quiet(lambda: stats.pearsonr(p, t)[0]) >= 0 else -1.0
    hi, lo = (t.max(), t.min()) if sign > 0 else (t.min(), t.max())
    try:
        params, _ = _quiet(
            lambda: optimize.curve_fit(logistic4, p, t, p0=[hi, lo, float(np.mean(p)), spread], maxfev=20000)
        )
    except (RuntimeError, ValueError, optimize.OptimizeWarning):
        return None
    return tuple(float(v) for v in params)  # type: ignore[return-value]


def plcc_logistic(preds: ArrayLike, target: ArrayLike) -> float:
    """PLCC between the logistic-mapped predictions and the target."""
    p, t = _pair(preds, target)
    params = fit_logistic(p, t)
    return math.nan if params is None else plcc(logistic4(p, *params), t)


def rmse_logistic(preds: ArrayLike, target: ArrayLike) -> float:
    """RMSE between the logistic-mapped predictions and the target (in the target's units)."""
    p, t = _pair(preds, target)
    params = fit_logistic(p, t)
    return math.nan if params is None else float(np.sqrt(np.mean((logistic4(p, *params) - t) ** 2)))


plcc_logistic.higher_is_better = True  # type: ignore[attr-defined]
rmse_logistic.higher_is_better = False  # type: ignore[attr-defined]

METRICS: dict[str, Callable[[ArrayLike, ArrayLike], float]] = {
    "srcc": srcc,
    "plcc": plcc,
    "krcc": krcc,
    "plcc_logistic": plcc_logistic,
    "rmse_logistic": rmse_logistic,
}
HIGHER_IS_BETTER = {name: fn.higher_is_better for name, fn in METRICS.items()}  # type: ignore[attr-defined]


def _rowwise_pearson(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = a - a.mean(axis=1, keepdims=True)
    b = b - b.mean(axis=1, keepdims=True)
    den = np.sqrt((a * a).sum(axis=1) * (b * b).sum(axis=1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, (a * b).sum(axis=1) / den, np.nan)


def bootstrap_ci(
    preds: ArrayLike,
    target: ArrayLike,
    metrics: Sequence[str] = ("srcc", "plcc", "krcc"),
    n_boot: int = 1000,
    level: float = 0.95,
    seed: int = 0,
) -> dict[str, tuple[float, float]]:
    """Percentile bootstrap confidence intervals (resampling images with replacement, seeded)."""
    from scipy import stats
    p, t = _pair(preds, target)
    if p.size < 3 or n_boot < 1:
        return {m: (math.nan, math.nan) for m in metrics}
    idx = np.random.default_rng(seed).integers(0, p.size, size=(n_boot, p.size))
    values: dict[str, np.ndarray] = {}
    for m in metrics:
        if m == "plcc":
            values[m] = _rowwise_pearson(p[idx], t[idx])
        elif m == "srcc":
            values[m] = _rowwise_pearson(stats.rankdata(p[idx], axis=1), stats.rankdata(t[idx], axis=1))
        else:
            values[m] = np.array([METRICS[m](p[i], t[i]) for i in idx])
    alpha = (1.0 - level) / 2.0
    out = {}
    for m, v in values.items():
        v = v[np.isfinite(v)]
        out[m] = (
            (float(np.quantile(v, alpha)), float(np.quantile(v, 1 - alpha))) if v.size else (math.nan,) * 2
        )
    return out


# ---------------------------------------------------------------- stateful classes


class Metric:
    """Accumulate (preds, target) with :meth:`update`; :meth:`compute` the metric over everything seen."""

    name = ""
    higher_is_better = True

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self._preds: list[float] = []
        self._target: list[float] = []

    def update(self, preds: ArrayLike, target: ArrayLike) -> None:
        p, t = _pair(preds, target)
        self._preds.extend(p.tolist())
        self._target.extend(t.tolist())

    def compute(self) -> float:
        return METRICS[self.name](self._preds, self._target)

    def __call__(self, preds: ArrayLike, target: ArrayLike) -> float:
        """Accumulate and return the metric of this batch alone (torchmetrics' ``forward``)."""
        self.update(preds, target)
        return METRICS[self.name](preds, target)


class SRCC(Metric):
    name, higher_is_better = "srcc", True


class PLCC(Metric):
    name, higher_is_better = "plcc", True


class KRCC(Metric):
    name, higher_is_better = "krcc", True


class LogisticPLCC(Metric):
    name, higher_is_better = "plcc_logistic", True


class LogisticRMSE(Metric):
    name, higher_is_better = "rmse_logistic", False


# ---------------------------------------------------------------- the protocol


def align(
    preds: Mapping[str, float | None], dataset: LabelledDataset, missing: MissingPolicy = "drop"
) -> dict[str, Any]:
    """Match predictions to labels by file name (see :mod:`dogiqa.datasets.base`).

    Returns names, pred and target arrays, the missing names (labels without a usable prediction), the
    unmatched prediction keys and the duplicates (two predictions for one label: the first is kept).
    """
    if missing not in ("drop", "paper"):
        raise ValueError(f"missing policy must be 'drop' or 'paper', not {missing!r}")
    matched: dict[str, float | None] = {}
    unmatched, duplicates = [], []
    for key, score in preds.items():
        name = dataset.match(key)
        if name is None:
            unmatched.append(key)
        elif name in matched:
            duplicates.append(key)
        else:
            matched[name] = score
    names, p, t, missing_names = [], [], [], []
    for name, mos in dataset.labels.items():
        score = matched.get(name)
        usable = score is not None and math.isfinite(float(score))
        if not usable:
            missing_names.append(name)
            if missing == "drop":
                continue
            score = PAPER_MISSING_SCORE
        names.append(name)
        p.append(float(score))
        t.append(float(mos))
    return {
        "names": names,
        "preds": np.asarray(p, dtype=float),
        "target": np.asarray(t, dtype=float),
        "missing": missing_names,
        "unmatched": unmatched,
        "duplicates": duplicates,
    }


MIN_PAIRS = 3  # fewer matched pairs: correlations are undefined (two points always correlate +-1)


def undefined_reason(preds: ArrayLike, target: ArrayLike) -> str | None:
    """Why the correlations of these pairs are undefined (None when they are defined)."""
    p, t = _pair(preds, target)
    if p.size < MIN_PAIRS:
        return f"fewer than {MIN_PAIRS} matched pairs (n = {p.size})"
    if np.ptp(p) == 0:
        return f"constant predictions (all {p.size} are {p[0]:g})"
    if np.ptp(t) == 0:
        return f"constant labels (all {t.size} are {t[0]:g})"
    return None


def compute_metrics(
    preds: ArrayLike, target: ArrayLike, n_boot: int = 1000, seed: int = 0, level: float = 0.95
) -> dict[str, Any]:
    """All metrics of the protocol, the logistic parameters and bootstrap CIs, for aligned arrays.

    When the correlations are undefined (:func:`undefined_reason`) every metric is NaN (``null`` in JSON),
    no CI is computed and ``reason`` says why; otherwise ``reason`` is None.
    """
    p, t = _pair(preds, target)
    reason = undefined_reason(p, t)
    if reason is not None:
        out: dict[str, Any] = {name: math.nan for name in METRICS}
        out.update(logistic_params=None, ci={m: None for m in ("srcc", "plcc", "krcc")}, reason=reason)
        out["bootstrap"] = {"n": 0, "seed": seed, "level": level}
        return out
    out = {name: fn(p, t) for name, fn in METRICS.items() if not name.endswith("_logistic")}
    params = fit_logistic(p, t)
    out["plcc_logistic"] = math.nan if params is None else plcc(logistic4(p, *params), t)
    out["rmse_logistic"] = (
        math.nan if params is None else float(np.sqrt(np.mean((logistic4(p, *params) - t) ** 2)))
    )
    out["logistic_params"] = None if params is None else list(params)
    out["ci"] = {k: list(v) for k, v in bootstrap_ci(p, t, n_boot=n_boot, level=level, seed=seed).items()}
    out["bootstrap"] = {"n": n_boot, "seed": seed, "level": level}
    out["reason"] = None
    return out


def evaluate_predictions(
    preds: Mapping[str, float | None],
    dataset: LabelledDataset,
    missing: MissingPolicy = "drop",
    n_boot: int = 1000,
    seed: int = 0,
    pred_higher_is_better: bool = True,
    max_listed: int = 100,
) -> dict[str, Any]:
    """Evaluate ``{file name or path: score}`` against a dataset's labels.

    ``missing``: "drop" leaves labelled images without a prediction out; "paper" scores them 1 (the
    authors' code). Either way the count and names are reported. Predictions for lower-is-better scorers
    (NIQE, BRISQUE...) are negated when ``pred_higher_is_better`` is False, so correlations are positive.
    """
    a = align(preds, dataset, missing)
    p = a["preds"] if pred_higher_is_better else -a["preds"]
    t = a["target"] if dataset.higher_is_better else -a["target"]
    report: dict[str, Any] = {
        "dataset": dataset.name,
        "n": int(p.size),
        "n_labels": len(dataset.labels),
        "missing": len(a["missing"]),
        "missing_policy": missing,
        "missing_names": a["missing"][:max_listed],
        "unmatched": len(a["unmatched"]),
        "unmatched_names": a["unmatched"][:max_listed],
        "duplicates": len(a["duplicates"]),
        "missing_on_disk": len(dataset.missing),
    }
    report.update(compute_metrics(p, t, n_boot=n_boot, seed=seed))
    report["higher_is_better"] = dict(HIGHER_IS_BETTER)
    report["negated"] = not pred_higher_is_better
    report["sign_convention"] = SIGN_CONVENTION
    return report


SIGN_CONVENTION = (
    "correlations of the higher-is-better orientation: lower-is-better scores (NIQE, BRISQUE, PIQE) and "
    "labels (DMOS) are negated first, so a method that agrees with people has positive SRCC/PLCC"
)


def no_match_hint(
    preds: Mapping[str, float | None], dataset: LabelledDataset, field: str = "score", labels: Path | str | None = None
) -> str:
    """Why no prediction could be evaluated against ``dataset``, and what to try instead (one paragraph).

    Looks at what the predictions are: none at all, all empty (failed records or a missing ``field``), or
    names that match no label; in the last case every other dataset reader is tried on ``labels`` and the
    one matching most names is suggested.
    """
    if not preds:
        return "the predictions file holds no predictions"
    matched = [k for k in preds if dataset.match(k) is not None]
    if matched and all(preds[k] is None for k in matched):
        other = "score" if field != "score" else "global_score"
        return (
            f"{len(matched)} predictions match labels of {dataset.name!r}, but none has a usable {field!r} "
            f"(failed records, or records without that field): try --field {other}"
        )
    if matched:
        return f"{len(matched)} predictions match labels of {dataset.name!r} but none has a finite score"
    hint = (
        f"none of the {len(preds)} prediction names matches a label of {dataset.name!r} "
        f"(predictions like {_examples(preds)}; labels like {_examples(dataset.labels)})"
    )
    best = _best_dataset(preds, dataset.name, labels) if labels is not None else None
    if best is not None:
        hint += f"; with --dataset {best[0]} the same labels match {best[1]} of them"
    return hint


def _examples(names: Mapping[str, Any], k: int = 3) -> str:
    return ", ".join(repr(Path(str(n)).name) for n in list(names)[:k])


def _best_dataset(preds: Mapping[str, Any], current: str, labels: Path | str) -> tuple[str, int] | None:
    """The other dataset reader under which ``labels`` matches most prediction names (None if none does)."""
    from dogiqa.datasets import list_datasets, load_dataset

    best: tuple[str, int] | None = None
    for name in list_datasets():
        if name == current:
            continue
        try:
            ds = load_dataset(name, labels=labels)
        except Exception:  # noqa: BLE001 - a reader that cannot read these labels is simply not a candidate
            continue
        hits = sum(ds.match(k) is not None for k in preds)
        if hits and (best is None or hits > best[1]):
            best = (name, hits)
    return best


def format_metrics(report: Mapping[str, Any]) -> str:
    """A short human-readable summary of an :func:`evaluate_predictions` report (undefined values say why)."""
    ci = report.get("ci") or {}
    reason = report.get("reason")

    def cell(key: str) -> str:
        value = report.get(key)
        if value is None:
            return f"undefined: {reason}" if reason else "undefined (the logistic fit failed)"
        lo_hi = ci.get(key)
        span = f"  [{lo_hi[0]}, {lo_hi[1]}]" if lo_hi and None not in lo_hi else ""
        return f"{value}{span}"

    lines = [
        f"dataset {report['dataset']}: n = {report['n']} of {report['n_labels']} labelled images",
        f"  SRCC             {cell('srcc')}",
        f"  PLCC             {cell('plcc')}",
        f"  KRCC             {cell('krcc')}",
        f"  PLCC (logistic)  {cell('plcc_logistic')}",
        f"  RMSE (logistic)  {cell('rmse_logistic')}",
        f"  missing predictions: {report['missing']} (policy {report['missing_policy']});"
        f" unmatched predictions: {report['unmatched']}",
    ]
    if report.get("missing"):
        lines.append(f"  first missing: {', '.join(report['missing_names'][:10])}")
    if report.get("negated"):
        lines.append("  sign: the scores were negated (lower is better), so agreement shows as a positive SRCC")
    return "\n".join(lines)


def clean_json(value: Any, decimals: int | None = None) -> Any:
    """NaN/inf -> None (strict JSON), numpy scalars -> Python, floats rounded when ``decimals`` is given."""
    if isinstance(value, dict):
        return {k: clean_json(v, decimals) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [clean_json(v, decimals) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float):
        if not math.isfinite(value):
            return None
        return round(value, decimals) if decimals is not None and decimals >= 0 else value
    return value


# ---------------------------------------------------------------- prediction files

NAME_KEYS = ("name", "path", "image", "image_name", "filename", "file")


def read_predictions(path: Path | str, field: str = "score") -> dict[str, float | None]:
    """Read ``{image name or path: score}`` from a predictions file.

    Formats: our JSONL records (one ``ImageResult`` JSON per line; ``field`` picks ``score``,
    ``global_score`` or ``local_score``; records with an error give None), the authors' results JSON
    (``[{"name": ..., "score": ...}]``), a JSON list of our records or a ``{name: score}`` object, and CSV
    with a header holding a name column (``name``/``path``/``image``...) and the ``field`` column.
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise PredictionsError(f"predictions file not found: {path}")
    suffix = path.suffix.lower()
    try:
        if suffix == ".jsonl":
            return _from_records(path, _jsonl(path), field)
        if suffix == ".json":
            return _from_json(path, json.loads(path.read_text(encoding="utf-8")), field)
        if suffix in (".csv", ".tsv"):
            return _from_csv(path, field, "\t" if suffix == ".tsv" else ",")
    except json.JSONDecodeError as exc:
        raise PredictionsError(f"{path}: not valid JSON ({exc})") from None
    raise PredictionsError(f"{path}: unknown predictions format {suffix!r}; use .jsonl, .json or .csv")


def _jsonl(path: Path) -> list[dict]:
    out = []
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                # a run killed mid-write leaves a partial last line: skip it, say so
                warnings.warn(f"{path}: line {lineno} is not valid JSON; skipped", stacklevel=3)
    return out


def _from_json(path: Path, data: Any, field: str) -> dict[str, float | None]:
    if isinstance(data, dict):
        return {str(k): _number(path, k, v) for k, v in data.items()}
    if isinstance(data, list):
        return _from_records(path, data, field)
    raise PredictionsError(f"{path}: expected a list of records or a {{name: score}} object")


def _from_records(path: Path, records: list, field: str) -> dict[str, float | None]:
    out: dict[str, float | None] = {}
    for i, rec in enumerate(records):
        if not isinstance(rec, dict):
            raise PredictionsError(f"{path}: record {i + 1} is not an object")
        key = next((rec[k] for k in NAME_KEYS if rec.get(k)), None)
        if rec.get("path_bytes"):  # a file name that is not UTF-8 (dogiqa.results.path_fields)
            key = path_from_fields(str(rec.get("path", "")), rec["path_bytes"])
        if key is None:
            raise PredictionsError(f"{path}: record {i + 1} has none of the name keys {list(NAME_KEYS)}")
        if field not in rec and not rec.get("error"):
            raise PredictionsError(f"{path}: record {i + 1} ({key}) has no {field!r} field")
        out[str(key)] = None if rec.get("error") else _number(path, key, rec.get(field))
    return out


def _from_csv(path: Path, field: str, delimiter: str) -> dict[str, float | None]:
    with open(path, newline="", encoding="utf-8-sig") as f:
        reader = csv.DictReader(f, delimiter=delimiter)
        cols = reader.fieldnames or []
        name_col = next((c for c in cols if c.strip().lower() in NAME_KEYS), None)
        if name_col is None or field not in cols:
            raise PredictionsError(
                f"{path}: need a name column ({'/'.join(NAME_KEYS)}) and {field!r}; got {cols}"
            )
        return {_csv_name(row, name_col): _number(path, row[name_col], row[field]) for row in reader}


def _csv_name(row: dict[str, str], name_col: str) -> str:
    """The row's name; our own CSV's ``path_bytes`` column restores a file name that is not UTF-8."""
    return path_from_fields(row[name_col], row.get("path_bytes")) if name_col == "path" else row[name_col]


def _number(path: Path, key: object, value: object) -> float | None:
    if value is None or value == "":
        return None
    try:
        out = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise PredictionsError(f"{path}: score of {key} is not a number: {value!r}") from None
    return out if math.isfinite(out) else None
