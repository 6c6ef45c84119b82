"""The per-image stages of Dog-IQA as plain functions: load, segment (+ regions and crops), score, finish.

Both executions use them: the serial one (``DogIQA._score_chunk``) and the staged one (``dogiqa.pipeline``).
Each stage turns any exception for one image into that image's error record (``job.result.error``, naming the
file and the stage); a job with an error skips the later stages.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image

from dogiqa.io import ImageLoadError, content_hash, load_image
from dogiqa.regions import Region, crop_region, regions_from_masks
from dogiqa.results import ImageResult
from dogiqa.scorers.base import Crop, CropScore

if TYPE_CHECKING:
    from dogiqa.api import DogIQA

Source = Any  # str | Path | PIL.Image.Image (see dogiqa.api.Source)


@dataclass
class Job:
    """One image on its way through the stages."""

    result: ImageResult
    image: Image.Image | None = None
    key: str = ""
    regions: list[Region] = field(default_factory=list)
    crops: list[Crop] = field(default_factory=list)

    @property
    def failed(self) -> bool:
        return self.result.error is not None


def source_name(source: Source) -> str:
    if isinstance(source, Image.Image):
        return getattr(source, "filename", "") or "<image>"
    return str(source)


def _fail(job: Job, stage: str, exc: BaseException) -> Job:
    job.result.error = f"{job.result.path}: {stage} failed: {type(exc).__name__}: {exc}"
    job.image, job.crops, job.regions = None, [], []
    return job


def load(iqa: DogIQA, source: Source) -> Job:
    """Decode and validate the image; its content key and the global crop (when the aggregation uses it)."""
    job = Job(ImageResult(path=source_name(source), config=iqa.config))
    t0 = time.perf_counter()
    try:
        image = load_image(source, iqa.max_pixels)
        job.result.width, job.result.height = image.size
        job.image, job.key = image, content_hash(image)
        if iqa.aggregation.uses_global:
            whole = (0, 0, image.width, image.height)  # same key as a whole-image region: asked once per prompt
            job.crops.append(Crop(image, key=f"{job.key}:{whole}:bbox", call="global"))
    except ImageLoadError as exc:
        job.result.error = str(exc)
    except Exception as exc:  # noqa: BLE001 - one image's failure is its record, never the run's
        _fail(job, "loading", exc)
    job.result.timings["load_s"] = time.perf_counter() - t0
    return job


def needs_segmentation(iqa: DogIQA, job: Job) -> bool:
    return not job.failed and iqa.aggregation.uses_local


def segment(iqa: DogIQA, job: Job, masks_of: Callable[[Image.Image], Sequence[np.ndarray]] | None = None) -> Job:
    """Masks -> regions -> region crops. ``masks_of`` replaces ``iqa.segmenter.segment`` (e.g. a process pool)."""
    if not needs_segmentation(iqa, job):
        job.result.timings.setdefault("segment_s", 0.0)
        return job
    t0 = time.perf_counter()
    image = job.image
    assert image is not None
    try:
        masks = (masks_of or iqa.segmenter.segment)(image)
    except Exception as exc:  # noqa: BLE001
        return _fail(job, "segmentation", exc)
    try:
        job.result.n_masks = len(masks)
        job.regions = regions_from_masks(masks, image.height, image.width, iqa.min_area)
        if iqa.keep_masks:
            job.result.masks = [r.mask for r in job.regions]
        for region in job.regions:
            crop = crop_region(image, region, iqa.crop_mode)  # type: ignore[arg-type]
            job.crops.append(Crop(crop, key=f"{job.key}:{region.box}:{iqa.crop_mode}", call="local"))
    except Exception as exc:  # noqa: BLE001
        return _fail(job, "cropping", exc)
    job.result.timings["segment_s"] = time.perf_counter() - t0
    return job


def prepare(iqa: DogIQA, source: Source) -> Job:
    """load + segment: everything before the model."""
    return segment(iqa, load(iqa, source))


# -- scoring: optionally split into the scorer's CPU preparation and its model call -----------------------
def prepare_crops(scorer: Any, crops: list[Crop]) -> Any:
    """The scorer's CPU work for these crops (``scorer.prepare_crops``), or the crops when it has none."""
    fn = getattr(scorer, "prepare_crops", None)
    return fn(crops) if fn is not None else crops


def score_prepared(scorer: Any, prepared: Any) -> list[CropScore]:
    fn = getattr(scorer, "score_prepared", None)
    return fn(prepared) if fn is not None else scorer.score_crops(prepared)


def live_crops(jobs: Sequence[Job]) -> list[Crop]:
    return [c for j in jobs if not j.failed for c in j.crops]


def score_jobs(iqa: DogIQA, jobs: Sequence[Job], prepared: Any = None) -> None:
    """Score the crops of all live jobs together (``prepared``: from :func:`prepare_crops`, else done here),
    then finish each job. If the batch fails, each image is scored alone so that only the bad one fails."""
    live = [j for j in jobs if not j.failed]
    crops = live_crops(live)
    start = time.perf_counter()
    try:
        scores: list[CropScore] | None = score_prepared(
            iqa.scorer, prepare_crops(iqa.scorer, crops) if prepared is None else prepared
        )
        if scores is not None and len(scores) != len(crops):
            raise RuntimeError(f"the scorer returned {len(scores)} scores for {len(crops)} crops")
    except Exception:  # noqa: BLE001 - isolate the failing image, keep the others
        scores = None
    elapsed = time.perf_counter() - start
    offset = 0
    for job in live:
        n = len(job.crops)
        job_scores = scores[offset : offset + n] if scores is not None else score_alone(iqa, job)
        offset += n
        if job_scores is not None:
            job.result.timings["score_s"] = elapsed / max(1, len(live))
            finish(iqa, job, job_scores)
        job.image, job.crops = None, []  # the pixels are not needed any more


def score_alone(iqa: DogIQA, job: Job) -> list[CropScore] | None:
    try:
        return iqa.scorer.score_crops(job.crops)
    except Exception as exc:  # noqa: BLE001
        _fail(job, "scoring", exc)
        return None


def finish(iqa: DogIQA, job: Job, scores: list[CropScore]) -> None:
    """Aggregate the crop scores into the record (``DogIQA._finish``); a failure is the image's error."""
    try:
        iqa._finish(job, scores)  # type: ignore[arg-type]
    except Exception as exc:  # noqa: BLE001
        _fail(job, "aggregation", exc)
