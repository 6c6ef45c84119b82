"""The Python API: ``DogIQA`` scores images (global + mix-grained regions) with any Scorer."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image

from dogiqa.aggregate import Aggregation, aggregate, get_aggregation
from dogiqa.config import PipelineConfig, coerce_config, resolve_config
from dogiqa.errors import UsageError
from dogiqa.io import ImageLoadError, content_hash, load_image, one_line
from dogiqa.pipeline import PipelineOptions, StagedPipeline
from dogiqa.progress import ProgressHook
from dogiqa.regions import Region, crop_region, regions_from_masks
from dogiqa.registry import SCORERS, SEGMENTERS
from dogiqa.results import ImageResult, RegionRecord
from dogiqa.scorers.base import Crop, CropScore, Scorer
from dogiqa.segmenters.base import Segmenter
from dogiqa.sources import Item, as_items

Source = str | Path | bytes | Image.Image | dict[str, Any] | Item


@dataclass
class _Job:
    """One image on its way through the stages (``image``: the decoded image, until it is scored)."""

    result: ImageResult
    regions: list[Region] = field(default_factory=list)
    crops: list[Crop] = field(default_factory=list)
    image: Image.Image | None = None
    key: str = ""

    @property
    def failed(self) -> bool:
        return self.result.error is not None

    def fail(self, message: str) -> None:
        """This image's error record; what it held is dropped."""
        self.result.error = message
        self.crops, self.regions, self.image = [], [], None
        self.result.masks = self.result.image = None


class DogIQA:
    """Dog-IQA pipeline: segment -> regions -> score crops -> aggregate, built from one configuration.

    >>> iqa = DogIQA.from_preset("recommended", model="path/to/local/vlm", segmenter="felzenszwalb")  # doctest: +SKIP
    >>> iqa = DogIQA(model="path/to/local/vlm", readout="expected")  # keywords over the defaults  # doctest: +SKIP
    >>> iqa.score("photo.jpg").score  # doctest: +SKIP

    Keyword settings are those of :class:`dogiqa.config.PipelineConfig` (``model=``, ``segmenter=``,
    ``crop_mode=`` ...). ``scorer``, ``segmenter`` and ``aggregation`` also accept objects (then the
    configuration does not describe them). ``cache`` (raw model outputs) and ``keep_masks`` (for reports) never
    change a score and are not part of the configuration. A keyword set to None leaves the setting as it is;
    to set one to None (``max_pixels``: no cap) pass ``config={"runtime": {"max_pixels": None}}`` or use
    ``PipelineConfig``. Each record's ``config`` holds what ran (``model``,
    ``segmenter`` ... as resolved) and the full configuration under ``pipeline``:
    ``DogIQA.from_config(record["config"])`` rebuilds the pipeline.
    """

    def __init__(
        self,
        model: str | None = None,
        *,
        config: PipelineConfig | Mapping[str, Any] | None = None,
        scorer: Scorer | str | None = None,
        segmenter: Segmenter | str | None = None,
        aggregation: str | Aggregation | None = None,
        cache: Any = None,
        keep_masks: bool = False,
        scorer_options: dict[str, Any] | None = None,
        aggregation_options: dict[str, Any] | None = None,
        **settings: Any,
    ):
        objects = {k: v for k, v in (("scorer", scorer), ("segmenter", segmenter)) if v is not None}
        objects = {k: v for k, v in objects.items() if not isinstance(v, str)}
        agg_obj = aggregation if isinstance(aggregation, Aggregation) else None
        settings.update(_legacy_options(scorer_options, aggregation_options))
        settings.update(model=model, aggregation=None if agg_obj else aggregation)
        settings.update({k: v for k, v in (("scorer", scorer), ("segmenter", segmenter)) if isinstance(v, str)})
        base = coerce_config(config) if config is not None else PipelineConfig()
        cfg = base.replace("keyword", **settings)
        self.pipeline_config = cfg
        a, r = cfg.aggregation, cfg.regions
        self.aggregation = (agg_obj or get_aggregation(a.method)).with_weights(c_max=a.c_max)
        self.min_area, self.crop_mode, self.max_pixels = r.min_area, r.crop_mode, cfg.runtime.max_pixels
        self.max_file_bytes = cfg.runtime.max_file_bytes
        self.chunk_size, self.keep_masks = cfg.effective_chunk_size, keep_masks
        rt = cfg.runtime
        self.staged = rt.staged is not False
        self.pipeline_options = PipelineOptions(
            rt.load_workers, rt.segment_workers, rt.segment_processes, rt.max_in_flight
        )
        self._pipeline: StagedPipeline | None = None
        self.scorer: Scorer = objects.get("scorer") or _build_scorer(cfg, cache)
        # the segmenter after the scorer: a missing model is reported before any segmenter download
        self.segmenter: Segmenter = objects.get("segmenter") or _build_segmenter(cfg)
        self.levels = int(getattr(self.scorer, "levels", cfg.prompt.levels or 7))
        self.config = {
            "scorer": getattr(self.scorer, "name", type(self.scorer).__name__),
            "model": getattr(getattr(self.scorer, "backend", None), "model_id", None),
            "standard": getattr(getattr(self.scorer, "standard", None), "name", None),
            "levels": self.levels,
            "readout": getattr(getattr(self.scorer, "readout", None), "name", None),
            "segmenter": getattr(self.segmenter, "name", type(self.segmenter).__name__),
            "aggregation": self.aggregation.name,
            "min_area": self.min_area,
            "crop_mode": self.crop_mode,
            "pipeline": cfg.public_dict(),  # no URL credentials in records
        }

    @classmethod
    def from_config(
        cls, config: PipelineConfig | Mapping[str, Any], *, cache: Any = None, keep_masks: bool = False
    ) -> DogIQA:
        """The pipeline a configuration describes: a :class:`PipelineConfig`, its dump (``to_dict``, a YAML
        file's content), a record's ``config``, or keyword settings with an optional ``preset``."""
        return cls(config=coerce_config(config), cache=cache, keep_masks=keep_masks)

    @classmethod
    def from_preset(cls, name: str = "recommended", **overrides: Any) -> DogIQA:
        """A pipeline from a named preset (``dogiqa.presets.PRESETS``); keyword settings override it (None
        leaves a setting as the preset has it). ``scorer``/``segmenter`` objects, ``cache`` and ``keep_masks``
        pass through."""
        passthrough = {k: overrides.pop(k) for k in ("cache", "keep_masks") if k in overrides}
        for key in ("scorer", "segmenter", "aggregation"):
            if overrides.get(key) is not None and not isinstance(overrides[key], str):
                passthrough[key] = overrides.pop(key)
        legacy = _legacy_options(overrides.pop("scorer_options", None), overrides.pop("aggregation_options", None))
        config = resolve_config(name, None, {**overrides, **legacy}, style="keyword")
        return cls(config=config, **passthrough)

    # -- one image ---------------------------------------------------------------------------------------
    def score(self, source: Source) -> ImageResult:
        """Score one image (path, bytes or PIL image). Errors are recorded in the result, never raised."""
        return next(self.score_many_serial([source]))

    # -- many images -------------------------------------------------------------------------------------
    def score_many(self, sources: Iterable[Source] | Any, progress: ProgressHook | None = None
                   ) -> Iterator[ImageResult]:  # fmt: skip
        """Stream results in input order, through the staged pipeline (``dogiqa.pipeline``: loading,
        segmentation, the scorer's preprocessing and the model overlap) unless ``staged=False``. Crops of
        ``chunk_size`` consecutive images go to the scorer together, in both paths (same scores).

        ``progress(stage, n)`` hears of work as it completes, before the results are yielded:
        ``("prepared", 1)`` per image loaded and segmented, ``("scored", n)`` when ``n`` images' crops are
        scored (:class:`dogiqa.progress.ImageProgress` turns that into per-image progress and an ETA).

        ``sources``: paths, bytes, PIL images, row dicts, :class:`dogiqa.sources.Item` s, or a
        ``datasets.Dataset``; every record gets a stable ``key`` (see :func:`dogiqa.sources.as_items`)."""
        self._progress = progress
        items = as_items(sources)
        if self.staged:
            yield from self.staged_pipeline().run(items)
        else:
            yield from self.score_many_serial(items)

    def score_many_serial(self, sources: Iterable[Source] | Any) -> Iterator[ImageResult]:
        """The one-thread path: each chunk is loaded, segmented, scored and finished before the next."""
        chunk: list[Item] = []
        for source in as_items(sources):
            chunk.append(source)
            if len(chunk) >= self.chunk_size:
                yield from self._score_chunk(chunk)
                chunk = []
        if chunk:
            yield from self._score_chunk(chunk)

    def _report(self, stage: str, n: int = 1) -> None:
        """Tell the caller's ``progress`` hook (if any) that a stage finished for ``n`` images."""
        hook = getattr(self, "_progress", None)
        if hook is not None:
            hook(stage, n)

    def staged_pipeline(self) -> StagedPipeline:
        """The staged pipeline of this DogIQA (built once; its worker processes, if any, are kept)."""
        if self._pipeline is None:
            self._pipeline = StagedPipeline(self, self.pipeline_options)
        return self._pipeline

    def close(self) -> None:
        """Stop the staged pipeline's worker processes (if any); the models stay loaded."""
        if self._pipeline is not None:
            self._pipeline.close()
            self._pipeline = None

    # -- the stages (dogiqa.pipeline runs them concurrently) ----------------------------------------------
    def _score_chunk(self, sources: list[Item]) -> list[ImageResult]:
        jobs = [self._prepare(s) for s in sources]
        self._score_jobs(jobs)
        return [j.result for j in jobs]

    def _prepare(self, source: Source) -> _Job:
        """Load, segment and crop one image; any exception becomes the image's error record."""
        return self._segment(self._load(source))

    def _load(self, source: Source) -> _Job:
        """Decode and validate the image; its content key and its global crop."""
        item = source if isinstance(source, Item) else next(as_items([source]))
        path = item.path
        job = _Job(ImageResult(path=path, key=item.key, source=item.source, columns=item.columns, config=self.config))
        if item.error is not None or item.image is None:
            job.fail(item.error or f"{path}: no image")
            return job
        t0 = time.perf_counter()
        try:
            image = load_image(item.image, self.max_pixels, self.max_file_bytes)
            job.result.width, job.result.height = image.size
            job.image, job.key = image, content_hash(image)
            if self.aggregation.uses_global:
                whole = (0, 0, image.width, image.height)  # same key as a whole-image region: asked once per prompt
                job.crops.append(Crop(image, key=f"{job.key}:{whole}:bbox", call="global"))
            if self.keep_masks:
                job.result.image = image  # the report draws on it: one decode per image
        except ImageLoadError as exc:
            job.fail(f"{path}: loading failed: {exc.reason}")
        except Exception as exc:  # noqa: BLE001 - decoders fail in many ways
            job.fail(stage_error(path, "loading", exc))
        job.result.timings["load_s"] = time.perf_counter() - t0
        if job.failed or not self.aggregation.uses_local:  # nothing to segment: ready for the scorer
            self._report("prepared")
        return job

    def _segment(self, job: _Job, masks_of: Callable[[Image.Image], Sequence[Any]] | None = None) -> _Job:
        """Masks -> regions -> region crops, when the aggregation uses regions (``masks_of``: instead of
        the segmenter's ``segment``, e.g. in a worker process)."""
        t0 = time.perf_counter()
        segmenting = not job.failed and self.aggregation.uses_local and job.image is not None
        if segmenting:
            image, path, stage = job.image, job.result.path, "segmentation"
            try:
                masks = (masks_of or self.segmenter.segment)(image)
                job.result.n_masks = len(masks)
                job.regions = regions_from_masks(masks, image.height, image.width, self.min_area)
                if self.keep_masks:
                    job.result.masks = [r.mask for r in job.regions]
                stage = "cropping"
                for region in job.regions:
                    crop = crop_region(image, region, self.crop_mode)  # type: ignore[arg-type]
                    job.crops.append(Crop(crop, key=f"{job.key}:{region.box}:{self.crop_mode}", call="local"))
            except ImageLoadError as exc:
                job.fail(f"{path}: {stage} failed: {exc.reason}")
            except Exception as exc:  # noqa: BLE001 - segmenters and crops fail in many ways
                job.fail(stage_error(path, stage, exc))
        job.result.timings["segment_s"] = time.perf_counter() - t0
        if segmenting:
            self._report("prepared")
        return job

    def _score_jobs(self, jobs: Sequence[_Job], prepared: Any = None) -> None:
        """Score the crops of the live jobs in one scorer call (``prepared``: the scorer's
        ``prepare_crops`` of them, from the pipeline), then finish each; a failure stays with its image."""
        live = [j for j in jobs if not j.failed]
        start = time.perf_counter()
        scores = self._score_together([c for j in live for c in j.crops], prepared)
        elapsed = time.perf_counter() - start
        offset = 0
        for job in live:
            n = len(job.crops)
            job_scores = scores[offset : offset + n] if scores is not None else self._score_alone(job)
            offset += n
            job.image, job.crops = None, []  # the pixels are not needed any more
            if job_scores is None:
                continue
            job.result.timings["score_s"] = elapsed / max(1, len(live))
            try:
                self._finish(job, job_scores)
            except Exception as exc:  # noqa: BLE001 - one image's aggregation must not stop the chunk
                job.result.error = stage_error(job.result.path, "aggregation", exc)
        self._report("scored", len(jobs))

    def _score_together(self, crops: list[Crop], prepared: Any = None) -> list[CropScore] | None:
        """One scorer call for all crops; None (each image retried alone) when it raises or miscounts."""
        try:
            if prepared is not None:
                scores = self.scorer.score_prepared(prepared)  # type: ignore[attr-defined]
            else:
                scores = self.scorer.score_crops(crops)
        except Exception:  # noqa: BLE001 - isolate the failing image, keep the others
            return None
        return scores if isinstance(scores, list) and len(scores) == len(crops) else None

    def _score_alone(self, job: _Job) -> list[CropScore] | None:
        try:
            scores = self.scorer.score_crops(job.crops)
            if len(scores) != len(job.crops):
                raise RuntimeError(f"the scorer returned {len(scores)} scores for {len(job.crops)} crops")
            return scores
        except Exception as exc:  # noqa: BLE001
            job.result.error = stage_error(job.result.path, "scoring", exc)
            return None

    def _finish(self, job: _Job, scores: list[CropScore]) -> None:
        result = job.result
        global_var = None
        if self.aggregation.uses_global:
            g = scores[0]
            result.global_score, result.global_raw, result.global_probs = g.score, g.raw, g.probs
            global_var = g.variance
            result.global_error = g.error
        local = scores[1:] if self.aggregation.uses_global else scores
        for i, (region, s) in enumerate(zip(job.regions, local, strict=True)):
            result.regions.append(
                RegionRecord(
                    index=i,
                    kind=region.kind,
                    box=region.box,
                    weight=region.weight,
                    pixels=region.pixels,
                    score=s.score,
                    raw=s.raw,
                    probs=s.probs,
                    entropy=s.entropy,
                    variance=s.variance,
                    error=s.error,
                )
            )
        failures = [(s.failure, s.error) for s in scores if s.failure]
        result.invalid += sum(k == "invalid_answer" for k, _ in failures)
        result.failed_crops += sum(k == "call_failed" for k, _ in failures)
        result.not_scorable += sum(k == "not_scorable" for k, _ in failures)
        finalize(
            result,
            self.aggregation,
            self.levels,
            global_var,
            count_sign=1.0 if getattr(self.scorer, "higher_is_better", True) else -1.0,
        )
        if result.score is None and result.error is None:
            result.error = f"{result.path}: no final score: {_why_no_score(failures)}"


def stage_error(path: str, stage: str, exc: BaseException) -> str:
    """The one-line error of an image: ``<file>: <stage> failed: <exception type>: <cause>``."""
    return f"{path}: {stage} failed: {type(exc).__name__}: {one_line(str(exc))}"


def _why_no_score(failures: list[tuple[str | None, str | None]]) -> str:
    """The crops without a score, by cause, with the first cause of each."""
    parts = []
    for kind, label in (
        ("call_failed", "backend/scorer call failed"),
        ("invalid_answer", "invalid answer (not a level)"),
        ("not_scorable", "not scorable"),
    ):
        causes = [e for k, e in failures if k == kind]
        if causes:
            parts.append(f"{len(causes)} crop(s) {label}, e.g. {one_line(causes[0] or '-')}")
    return "; ".join(parts) or "the aggregation gave no score"


def _legacy_options(scorer_options: dict[str, Any] | None, aggregation_options: dict[str, Any] | None) -> dict:
    """The old ``scorer_options``/``aggregation_options`` dicts as configuration keywords."""
    names = {"model": "clip_model", "batch_size": "batch_size", "device": "device", "c_max": "c_max"}
    out: dict[str, Any] = {}
    for kw, opts in (("scorer_options", scorer_options), ("aggregation_options", aggregation_options)):
        for key, value in (opts or {}).items():
            if key not in names:
                raise UsageError(f"{kw}: unknown option {key!r}; use {', '.join(names)}", setting=f"{kw}=")
            out[names[key]] = value
    return out


def _build_scorer(cfg: PipelineConfig, cache: Any) -> Scorer:
    """The scorer the configuration names: a classical/CLIP one, or a VLM backend loaded once + a standard and
    a readout."""
    m, rt, p = cfg.model, cfg.runtime, cfg.prompt
    if m.scorer != "mllm":
        return SCORERS.build_accepting(m.scorer, device=rt.device, model=m.clip_model, batch_size=rt.batch_size)
    from dogiqa.backends import load_backend
    from dogiqa.scorers.mllm import MLLMScorer

    backend_kwargs = {
        "device": rt.device,
        "dtype": rt.dtype,
        "batch_size": rt.batch_size,
        "max_batch_tokens": rt.max_batch_tokens,
        "prefix_cache": rt.prefix_cache,
        "preprocess_workers": rt.preprocess_workers,
        "revision": m.revision,
        "trust_remote_code": m.trust_remote_code or None,
        "attention_mask": m.owl3_mask,
        **cfg.server.model_dump(),
        **m.backend_options,
    }
    backend = load_backend(m.id, m.backend, **backend_kwargs)
    return MLLMScorer(
        backend,
        standard=p.standard,
        readout=p.readout,
        levels=p.levels,
        paper_whitespace=p.paper_whitespace,
        invalid_as_one=p.invalid_as_one,
        cache=cache,
    )


def _build_segmenter(cfg: PipelineConfig) -> Segmenter:
    s = cfg.segmentation
    options = {"model": s.sam2_model, "preset": s.sam2_preset, "small_regions": s.small_regions}
    return SEGMENTERS.build_accepting(s.segmenter, **{**options, "device": cfg.runtime.device, **s.segmenter_options})


def finalize(
    result: ImageResult,
    aggregation: str | Aggregation,
    levels: int,
    global_variance: float | None = None,
    count_sign: float = 1.0,
) -> ImageResult:
    """(Re)compute the final score of a result from its global and region scores (no model needed)."""
    regions = result.regions
    agg = aggregate(
        result.global_score,
        [r.score for r in regions],
        [r.weight for r in regions],
        aggregation,
        levels,
        global_variance,
        [r.variance for r in regions],
        count_sign,
    )
    result.score, result.local_score, result.uncertainty = agg.score, agg.local_score, agg.std
    return result
