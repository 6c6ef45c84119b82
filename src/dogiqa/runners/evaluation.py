"""Evaluation runs (``dogiqa eval``): score a whole labelled dataset, resumably; metrics, a table and a plot.

Files in ``--output-dir`` (``<tag>`` = ``<dataset>-<method>``, e.g. ``livec-recommended-paper``):

- ``records-<tag>.jsonl``: one result record per image, in label order (rewritten as the run goes);
- ``metrics-<tag>.json``: the :func:`dogiqa.evaluate.evaluate_predictions` report (+ run facts);
- ``scatter-<tag>.png``: predictions vs MOS with the fitted logistic;
- ``table.md`` / ``table.csv``: every ``metrics-*.json`` of the folder as a Table-2-shaped summary, with
  the paper's Dog-IQA row for comparison;
- ``cache.sqlite`` (unless ``--cache`` says otherwise): raw model outputs per region and finished images.

Resume: each finished image's record is committed to the cache under the run key (the request minus the
options that cannot change a region's score: aggregation, c_max, device, batch and chunk sizes). A killed run
restarts where it stopped; a partly scored batch reuses the raw outputs already cached.
Re-aggregation (``--reaggregate --aggregation code``) recomputes final scores from the cached records
alone: no model, no images needed.

A finished run asked again (same options, same images, same labels) is not recomputed: the metrics file
carries a fingerprint of everything its numbers depend on (:func:`fingerprint`) and the size of the records
file written with it; when both still hold and every image is finished in the cache, :func:`reuse_finished`
returns the saved report without reading a record (no re-aggregation, no bootstrap, no rewrite).
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dogiqa.aggregate import Aggregation, get_aggregation
from dogiqa.atomic import atomic_write_text
from dogiqa.cache import RawCache, run_key
from dogiqa.datasets import DatasetError, LabelledDataset
from dogiqa.evaluate import clean_json, evaluate_predictions
from dogiqa.progress import ProgressHook
from dogiqa.results import ImageResult

# Request options that never change a region's score: left out of the run key.
NOT_IN_RUN_KEY = (
    "aggregation", "c_max", "device", "batch_size", "chunk_size", "max_batch_tokens", "prefix_cache", "preset",
    "trust_remote_code", "api_key_env", "concurrency", "timeout", "max_retries",
    "staged", "load_workers", "preprocess_workers", "segment_workers", "segment_processes", "max_in_flight",
)  # fmt: skip


def run_request(config: Any) -> dict[str, Any]:
    """What identifies a run's model outputs: the configuration's settings by keyword (the run key leaves out
    ``NOT_IN_RUN_KEY``)."""
    from dogiqa.config import build_config, redact_urls

    return redact_urls({k: v for k, v in build_config(config).flat().items() if k not in NOT_IN_RUN_KEY})


@dataclass
class EvalRun:
    """What an evaluation produced."""

    report: dict[str, Any]
    records: list[ImageResult]
    files: dict[str, Path] = field(default_factory=dict)
    resumed: int = 0
    scored: int = 0
    failed: int = 0
    extra: dict[str, Any] = field(default_factory=dict)
    reused: bool = False  # the saved metrics of an identical finished run (nothing recomputed)


def subset(ds: LabelledDataset, limit: int | None) -> LabelledDataset:
    """The first ``limit`` items (and only their labels), for smoke runs."""
    if not limit or limit >= len(ds.items):
        return ds
    items = ds.items[:limit]
    labels = {it.name: ds.labels[it.name] for it in items}
    return LabelledDataset(ds.name, ds.root, items, [], ds.higher_is_better, ds.mos_range, ds.label_file, labels)


def slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-") or "run"


def run_eval(
    ds: LabelledDataset,
    pipeline: Callable[[], Any],
    cache: RawCache,
    request: dict[str, Any],
    *,
    resume: bool = True,
    aggregation: str | Aggregation | None = None,
    on_progress: Callable[[int, int], None] | None = None,
    records_path: Path | None = None,
    progress: ProgressHook | None = None,
    hashes: list[str | None] | None = None,
) -> EvalRun:
    """Score every item of ``ds`` not already finished under the request's run key.

    ``pipeline()`` builds the DogIQA pipeline (called only when something is left to score). Each finished
    image is committed to the cache at once; ``on_progress(done, total)`` is called after each image;
    ``progress`` gets ``("resumed", n)`` and then the pipeline's per-image events (:mod:`dogiqa.progress`).
    Resumed records are re-finalized with ``aggregation`` (the run key ignores the aggregation, so a run
    resumed with another one must not mix the two). ``hashes``: the items' content hashes, when the caller
    already has them (:meth:`RawCache.file_hashes`).
    """
    key = run_key(request, exclude=NOT_IN_RUN_KEY)
    if hashes is None:
        hashes = cache.file_hashes([it.path for it in ds.items])  # unchanged files are not read again
    done = cache.done(key) if resume else set()
    finished = cache.get_images(key, [h for h in hashes if h in done])
    meta = cache.run_config(key) or {}
    records: list[ImageResult | None] = [None] * len(ds.items)
    todo: list[int] = []
    for i, h in enumerate(hashes):
        cached = finished.get(h) if h is not None else None
        if cached is not None:
            rec = ImageResult.from_dict(json.loads(cached))
            rec.path = str(ds.items[i].path)
            records[i] = refinalize(rec, aggregation, meta) if aggregation is not None else rec
        else:
            todo.append(i)
    run = EvalRun({}, [], resumed=len(ds.items) - len(todo))
    total = len(ds.items)
    if on_progress:
        on_progress(run.resumed, total)
    if progress:
        progress("resumed", run.resumed)
    # streamed while scoring (a killed run keeps its records); nothing left to score: only the final file below
    writer = _RecordWriter(records_path, [r for r in records if r is not None]) if records_path and todo else None
    try:
        if todo:
            iqa = pipeline()
            cache.register_run(
                key,
                {
                    "request": request,
                    "config": getattr(iqa, "config", {}),
                    "higher_is_better": getattr(iqa.scorer, "higher_is_better", True),
                },
            )
            paths = [ds.items[i].path for i in todo]
            results = iqa.score_many(paths, progress=progress) if progress else iqa.score_many(paths)
            for n, (i, result) in enumerate(zip(todo, results, strict=True), start=1):
                records[i] = result
                if result.ok and hashes[i] is not None:
                    cache.put_image(key, hashes[i], result.to_json(), str(ds.items[i].path))
                run.scored += int(result.ok)
                if writer:
                    writer.write(result)
                if on_progress:
                    on_progress(run.resumed + n, total)
    finally:
        if writer:
            writer.close()
    run.records = [r for r in records if r is not None]
    run.failed = sum(not r.ok for r in run.records)
    if records_path:  # the final file, in label order
        write_records(records_path, run.records)
    return run


def fingerprint(ds: LabelledDataset, hashes: list[str | None], request: dict[str, Any], **options: Any) -> str:
    """A digest of everything a finished evaluation's numbers depend on: the run key (model, prompt,
    segmentation...), the images' content hashes in label order, the labels, and ``options`` (aggregation,
    c_max, missing policy, bootstrap, method, cache file...)."""
    from dogiqa import __version__

    h = hashlib.sha256()
    head = {"version": __version__, "key": run_key(request, exclude=NOT_IN_RUN_KEY), "dataset": ds.name,
            "options": options, "higher_is_better": ds.higher_is_better}  # fmt: skip
    h.update(json.dumps(head, sort_keys=True, default=str).encode())
    for item, digest in zip(ds.items, hashes, strict=True):
        h.update(f"\n{item.name}\t{item.path}\t{digest}".encode("utf-8", "surrogateescape"))
    for name, mos in ds.labels.items():
        h.update(f"\n{name}\t{mos!r}".encode("utf-8", "surrogateescape"))
    return h.hexdigest()


def reuse_finished(
    ds: LabelledDataset, cache: RawCache, request: dict[str, Any], hashes: list[str | None], digest: str,
    records_path: Path, metrics_path: Path, plot_path: Path | None,
) -> EvalRun | None:  # fmt: skip
    """The saved result of this exact evaluation, when nothing it depends on changed; else None.

    Holds when every image is finished in the cache under the run key, the metrics file carries ``digest``
    and the records file still has the size written with it (and the plot exists, when one is asked for)."""
    if not ds.items or any(h is None for h in hashes) or not metrics_path.is_file() or not records_path.is_file():
        return None
    try:
        report = json.loads(metrics_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    saved = report.get("fingerprint") if isinstance(report, dict) else None
    if not isinstance(saved, dict) or saved.get("digest") != digest:
        return None
    if saved.get("records_bytes") != records_path.stat().st_size or (plot_path and not plot_path.is_file()):
        return None
    done = cache.done(run_key(request, exclude=NOT_IN_RUN_KEY))
    if not all(h in done for h in hashes):
        return None
    report.update(resumed=len(ds.items), scored=0, reused=True)  # this run's counts (the file keeps its own)
    run = EvalRun(report, [], resumed=len(ds.items), failed=int(report.get("failed") or 0), reused=True)
    run.files = {"records": records_path, "metrics": metrics_path}
    if plot_path:
        run.files["plot"] = plot_path
    return run


def reaggregate(
    ds: LabelledDataset, cache: RawCache, request: dict[str, Any], aggregation: str, c_max: float | None = None
) -> EvalRun:
    """Recompute final scores for another aggregation from the records cached under the request's run key.

    No model and no image is needed: records are matched to labels by file name.
    """
    key = run_key(request, exclude=NOT_IN_RUN_KEY)
    meta = cache.run_config(key)
    if meta is None:
        raise DatasetError(
            "nothing to re-aggregate: no finished images in the cache for these options (run `dogiqa eval` "
            "with the same model, standard, readout and segmenter options first, or pass the same --cache)"
        )
    agg = get_aggregation(aggregation).with_weights(c_max=c_max)
    by_name: dict[str, ImageResult] = {}
    for _, _, text in cache.images(key):
        rec = ImageResult.from_dict(json.loads(text))
        name = ds.match(rec.path)
        if name is not None:
            by_name[name] = rec
    records = [refinalize(by_name[name], agg, meta) for name in ds.labels if name in by_name]
    return EvalRun({}, records, resumed=len(records), failed=sum(not r.ok for r in records))


def refinalize(rec: ImageResult, aggregation: str | Aggregation, meta: dict[str, Any]) -> ImageResult:
    """Recompute a record's final score for ``aggregation`` from its global and region scores."""
    from dogiqa.api import finalize

    agg = get_aggregation(aggregation)
    levels = int(rec.config.get("levels") or meta.get("config", {}).get("levels") or 7)
    sign = 1.0 if meta.get("higher_is_better", True) else -1.0
    finalize(rec, agg, levels, _global_variance(rec), count_sign=sign)
    rec.config = {**rec.config, "aggregation": agg.name}
    if rec.score is None and rec.error is None:
        needs = "global score" if agg.uses_global and rec.global_score is None else "region scores"
        rec.error = f"{rec.path}: cannot aggregate with {agg.name!r}: the cached run has no {needs}"
    return rec


def data_c_max(run: EvalRun, aggregation: str | Aggregation, meta: dict[str, Any]) -> int | None:
    """Re-finalize every record with c_max = the largest region count among them (the paper's definition:
    the dataset's largest mask count); returns that c_max (None when no record has regions)."""
    counts = [len(r.regions) for r in run.records if r.regions]
    if not counts:
        return None
    agg = get_aggregation(aggregation).with_weights(c_max=float(max(counts)))
    for rec in run.records:
        if rec.ok:
            refinalize(rec, agg, meta)
    run.extra["c_max"] = max(counts)
    run.failed = sum(not r.ok for r in run.records)
    return max(counts)


def _global_variance(rec: ImageResult) -> float | None:
    """The variance of the global answer's level distribution (as the readout computed it), if known."""
    probs = rec.global_probs
    if not probs:
        return None
    values = [0.0, 1.0] if rec.config.get("readout") == "qbench" else [float(i + 1) for i in range(len(probs))]
    mean = sum(p * v for p, v in zip(probs, values, strict=True))
    return sum(p * (v - mean) ** 2 for p, v in zip(probs, values, strict=True))


class _RecordWriter:
    """Streams records to JSONL as they finish (resumed ones first), so a killed run leaves a usable file."""

    def __init__(self, path: Path, first: list[ImageResult]):
        path.parent.mkdir(parents=True, exist_ok=True)
        self._fh = open(path, "w", encoding="utf-8")
        for rec in first:
            self.write(rec)

    def write(self, rec: ImageResult) -> None:
        self._fh.write(rec.to_json() + "\n")
        self._fh.flush()

    def close(self) -> None:
        self._fh.close()


def write_records(path: Path, records: list[ImageResult]) -> None:
    atomic_write_text(path, "".join(r.to_json() + "\n" for r in records))


def summarize(
    run: EvalRun,
    ds: LabelledDataset,
    out_dir: Path,
    method: str,
    *,
    missing: str = "drop",
    n_boot: int = 1000,
    seed: int = 0,
    plot: bool = True,
    digest: str | None = None,
) -> EvalRun:
    """Metrics JSON, scatter plot and the folder's summary table for a finished run (``digest``: its
    :func:`fingerprint`, saved with the size of its records file so that the same run asked again is reused)."""
    tag = slug(f"{ds.name}-{method}")
    if run.reused:
        write_table(out_dir, run)
        return run
    config = run.records[0].config if run.records else {}
    sign = 1.0 if scorer_higher_is_better(config.get("scorer")) else -1.0  # NIQE & co: correlate -score
    preds = {r.path: None if r.score is None else sign * r.score for r in run.records}
    report = evaluate_predictions(preds, ds, missing=missing, n_boot=n_boot, seed=seed)  # type: ignore[arg-type]
    failures = [r.error for r in run.records if r.error]
    report.update(
        method=method,
        resumed=run.resumed,
        scored=run.scored,
        failed=run.failed,
        failures=failures[:20],
        invalid_answers=sum(r.invalid for r in run.records),
        negated=sign < 0,
        config=config,
        **run.extra,
    )
    records_file = run.files.get("records")
    if digest and records_file is not None and Path(records_file).is_file():
        report["fingerprint"] = {"digest": digest, "records_bytes": Path(records_file).stat().st_size}
    run.report = clean_json(report)
    out_dir.mkdir(parents=True, exist_ok=True)
    metrics_path = out_dir / f"metrics-{tag}.json"
    atomic_write_text(metrics_path, json.dumps(run.report, indent=2) + "\n")
    run.files["metrics"] = metrics_path
    if plot:
        run.files["plot"] = _plot(run, ds, out_dir / f"scatter-{tag}.png", f"{ds.name}: {method}")
    write_table(out_dir, run)
    return run


def write_table(out_dir: Path, run: EvalRun) -> None:
    """The folder's summary table from every ``metrics-*.json`` in it, with the paper's rows."""
    from dogiqa.report.table import table_from_metrics_files

    table = table_from_metrics_files(sorted(out_dir.glob("metrics-*.json")))
    table.add_paper(["Dog-IQA", *paper_rows_for(table)])  # the published rows, for the datasets in the table
    run.files["table_md"], run.files["table_csv"] = table.write(out_dir / "table")


def scorer_higher_is_better(name: str | None) -> bool:
    """The direction of a scorer by registry name (the MLLM scorer and unknown names: higher is better)."""
    from dogiqa.registry import SCORERS

    if not name or name == "mllm" or name not in SCORERS.names():
        return True
    return bool(getattr(SCORERS.resolve(name), "higher_is_better", True))


def paper_rows_for(table: Any) -> list[str]:
    """The paper's baseline rows matching the scorers in the table (``niqe-...`` -> ``NIQE``)."""
    names = {"niqe": "NIQE", "brisque": "BRISQUE", "clipiqa": "CLIP-IQA"}
    return [paper for key, paper in names.items() if any(m.startswith(key) for m in table.cells)]


def _plot(run: EvalRun, ds: LabelledDataset, path: Path, title: str) -> Path | None:
    from dogiqa.report.plots import scatter_plot

    pairs = []
    for r in run.records:
        name = ds.match(r.path)
        if name is not None and r.score is not None and math.isfinite(r.score):
            pairs.append((r.score, ds.labels[name]))
    if len(pairs) < 2:
        return None
    preds, mos = zip(*pairs, strict=True)
    negated = bool(run.report.get("negated")) if run.report else False
    return scatter_plot(preds, mos, path, title=title, ylabel=f"MOS ({ds.name})", negated=negated)
