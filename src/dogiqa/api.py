"""The Python API: ``DogIQA`` scores images (global + mix-grained regions) with any Scorer."""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image

from dogiqa.aggregate import Aggregation, aggregate, get_aggregation
from dogiqa.io import DEFAULT_MAX_FILE_BYTES, DEFAULT_MAX_PIXELS, ImageLoadError, content_hash, load_image, one_line
from dogiqa.presets import DEFAULT_MODEL, get_preset
from dogiqa.progress import ProgressHook
from dogiqa.regions import DEFAULT_MIN_AREA, Region, crop_region, regions_from_masks
from dogiqa.registry import SCORERS, SEGMENTERS
from dogiqa.results import ImageResult, RegionRecord
from dogiqa.scorers.base import Crop, CropScore, Scorer
from dogiqa.segmenters.base import Segmenter

Source = str | Path | Image.Image


@dataclass
class _Job:
    """One image on its way through the pipeline."""

    result: ImageResult
    regions: list[Region] = field(default_factory=list)
    crops: list[Crop] = field(default_factory=list)


class DogIQA:
    """Dog-IQA pipeline: segment -> regions -> score crops -> aggregate.

    >>> iqa = DogIQA(model="path/to/local/vlm", segmenter="felzenszwalb", readout="expected")  # doctest: +SKIP
    >>> iqa.score("photo.jpg").score  # doctest: +SKIP
    """

    def __init__(
        self,
        model: str | None = None,
        *,
        scorer: Scorer | str = "mllm",
        segmenter: Segmenter | str = "none",
        aggregation: str | Aggregation = "paper",
        standard: str = "word",
        levels: int | None = 7,
        readout: str = "expected",
        backend: str = "auto",
        device: str | None = None,
        dtype: str | None = None,
        batch_size: int | None = None,
        min_area: int = DEFAULT_MIN_AREA,
        crop_mode: str = "bbox",
        paper_whitespace: bool = False,
        invalid_as_one: bool = False,
        max_pixels: int | None = DEFAULT_MAX_PIXELS,
        max_file_bytes: int | None = DEFAULT_MAX_FILE_BYTES,
        chunk_size: int = 8,
        cache: Any = None,
        keep_masks: bool = False,
        segmenter_options: dict[str, Any] | None = None,
        backend_options: dict[str, Any] | None = None,
        scorer_options: dict[str, Any] | None = None,
        aggregation_options: dict[str, Any] | None = None,
    ):
        self.aggregation = get_aggregation(aggregation).with_weights(**(aggregation_options or {}))
        self.min_area, self.crop_mode, self.max_pixels = min_area, crop_mode, max_pixels
        self.max_file_bytes = max_file_bytes
        self.chunk_size, self.keep_masks = max(1, chunk_size), keep_masks
        if isinstance(scorer, str) and scorer != "mllm":
            scorer = SCORERS.build_accepting(scorer, **{"device": device, **(scorer_options or {})})
        elif isinstance(scorer, str):
            scorer = _mllm_scorer(
                model or DEFAULT_MODEL,
                backend,
                dict(device=device, dtype=dtype, batch_size=batch_size, **(backend_options or {})),
                dict(standard=standard, readout=readout, levels=levels, paper_whitespace=paper_whitespace,
                     invalid_as_one=invalid_as_one, cache=cache),
            )  # fmt: skip
        self.scorer = scorer
        # the segmenter after the scorer: a missing model is reported before any segmenter download
        self.segmenter = (
            SEGMENTERS.build_accepting(segmenter, **(segmenter_options or {}))
            if isinstance(segmenter, str)
            else segmenter
        )
        self.levels = int(getattr(scorer, "levels", levels or 7))
        self.config = {
            "scorer": getattr(scorer, "name", type(scorer).__name__),
            "model": getattr(getattr(scorer, "backend", None), "model_id", None),
            "standard": getattr(getattr(scorer, "standard", None), "name", None),
            "levels": self.levels,
            "readout": getattr(getattr(scorer, "readout", None), "name", None),
            "segmenter": getattr(self.segmenter, "name", type(self.segmenter).__name__),
            "aggregation": self.aggregation.name,
            "min_area": min_area,
            "crop_mode": crop_mode,
        }

    @classmethod
    def from_preset(cls, name: str = "recommended", **overrides: Any) -> DogIQA:
        """A pipeline from a named preset (``dogiqa.presets.PRESETS``); keyword arguments override it."""
        config = get_preset(name)
        seg_opts = config.pop("segmenter_options", {})
        if overrides.get("segmenter") not in (None, config.get("segmenter")):
            seg_opts = {}  # the preset's options belong to the preset's segmenter
        seg_opts.update(overrides.pop("segmenter_options", None) or {})
        config.update({k: v for k, v in overrides.items() if v is not None})
        config["segmenter_options"] = seg_opts
        return cls(**config)

    # -- one image ---------------------------------------------------------------------------------------
    def score(self, source: Source) -> ImageResult:
        """Score one image (path or PIL image). Errors are recorded in the result, never raised."""
        return next(self.score_many([source]))

    # -- many images -------------------------------------------------------------------------------------
    def score_many(self, sources: Iterable[Source], progress: ProgressHook | None = None) -> Iterator[ImageResult]:
        """Stream results in input order; crops of ``chunk_size`` images go to the scorer together.

        ``progress(stage, n)`` hears of work as it completes, before the chunk's results are yielded:
        ``("prepared", 1)`` per image loaded and segmented, ``("scored", n)`` when a chunk's crops are scored
        (:class:`dogiqa.progress.ImageProgress` turns that into per-image progress and an ETA).
        """
        self._progress = progress
        chunk: list[Source] = []
        for source in sources:
            chunk.append(source)
            if len(chunk) >= self.chunk_size:
                yield from self._score_chunk(chunk)
                chunk = []
        if chunk:
            yield from self._score_chunk(chunk)

    def _report(self, stage: str, n: int = 1) -> None:
        hook = getattr(self, "_progress", None)
        if hook is not None:
            hook(stage, n)

    def _score_chunk(self, sources: list[Source]) -> list[ImageResult]:
        """Score a chunk's crops in one scorer call; any failure is confined to the image it belongs to."""
        jobs = []
        for source in sources:
            jobs.append(self._prepare(source))
            self._report("prepared")
        live = [j for j in jobs if j.result.error is None]
        start = time.perf_counter()
        scores = self._score_together([c for j in live for c in j.crops])
        elapsed = time.perf_counter() - start
        offset = 0
        for job in live:
            n = len(job.crops)
            job_scores = scores[offset : offset + n] if scores is not None else self._score_alone(job)
            offset += n
            if job_scores is None:
                continue
            job.result.timings["score_s"] = elapsed / max(1, len(live))
            try:
                self._finish(job, job_scores)
            except Exception as exc:  # noqa: BLE001 - one image's aggregation must not stop the chunk
                job.result.error = stage_error(job.result.path, "aggregation", exc)
        self._report("scored", len(jobs))
        return [j.result for j in jobs]

    def _score_together(self, crops: list[Crop]) -> list[CropScore] | None:
        """One scorer call for all crops; None (each image retried alone) when it raises or miscounts."""
        try:
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

    def _prepare(self, source: Source) -> _Job:
        """Load, segment and crop one image; any exception becomes the image's error record."""
        path = str(source) if not isinstance(source, Image.Image) else getattr(source, "filename", "") or "<image>"
        job = _Job(ImageResult(path=path, config=self.config))
        stage = "loading"
        try:
            t0 = time.perf_counter()
            image = load_image(source, self.max_pixels, self.max_file_bytes)
            job.result.width, job.result.height = image.size
            key = content_hash(image)
            t1 = time.perf_counter()
            if self.aggregation.uses_global:
                whole = (0, 0, image.width, image.height)  # same key as a whole-image region: asked once per prompt
                job.crops.append(Crop(image, key=f"{key}:{whole}:bbox", call="global"))
            if self.aggregation.uses_local:
                stage = "segmentation"
                masks = self.segmenter.segment(image)
                job.result.n_masks = len(masks)
                job.regions = regions_from_masks(masks, image.height, image.width, self.min_area)
                if self.keep_masks:
                    job.result.masks = [r.mask for r in job.regions]
                stage = "cropping"
                for region in job.regions:
                    crop = crop_region(image, region, self.crop_mode)  # type: ignore[arg-type]
                    job.crops.append(Crop(crop, key=f"{key}:{region.box}:{self.crop_mode}", call="local"))
            if self.keep_masks:
                job.result.image = image  # the report draws on it: one decode per image
            job.result.timings.update(load_s=t1 - t0, segment_s=time.perf_counter() - t1)
        except ImageLoadError as exc:
            job.result.error = f"{path}: {stage} failed: {exc.reason}"
        except Exception as exc:  # noqa: BLE001 - decoders, segmenters and crops fail in many ways
            job.result.error = stage_error(path, stage, exc)
        if job.result.error is not None:
            job.crops, job.regions, job.result.masks, job.result.image = [], [], None, None
        return job

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


def _mllm_scorer(model: str, backend: str, backend_kwargs: dict[str, Any], scorer_kwargs: dict[str, Any]) -> Scorer:
    """The MLLM scorer: a backend loaded once, wrapped with a standard and a readout."""
    from dogiqa.backends import load_backend
    from dogiqa.scorers.mllm import MLLMScorer

    return MLLMScorer(load_backend(model, backend, **backend_kwargs), **scorer_kwargs)


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
