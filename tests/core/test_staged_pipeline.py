"""The staged pipeline (dogiqa.pipeline): same scores as the serial path, input order, per-image isolation in
every stage, a bounded number of images in flight. Instrumented, never timed."""

from __future__ import annotations

import os
import threading
import time

import numpy as np
import pytest
from PIL import Image

from dogiqa import api as api_mod
from dogiqa.api import DogIQA
from dogiqa.pipeline import PipelineOptions, StagedPipeline
from dogiqa.scorers.base import CropScore


class MeanScorer:
    """Mean brightness mapped to 1..7; records which crops it saw; can fail on marked crops."""

    name = "mean"
    higher_is_better = True
    score_range = (1.0, 7.0)

    def __init__(self, poison: int | None = None):
        self.poison = poison  # crops whose width equals this make score_crops raise

    def score_crops(self, crops):
        if self.poison is not None and any(c.image.width == self.poison for c in crops):
            raise RuntimeError("poisoned crop")
        return [CropScore(score=float(np.asarray(c.image).mean()) / 255 * 6 + 1) for c in crops]


class PreparingScorer(MeanScorer):
    """A scorer with the two-stage interface; its CPU half fails when a ``prep_poison`` crop is in the batch."""

    def __init__(self, poison: int | None = None, prep_poison: int | None = None):
        super().__init__(poison)
        self.prep_poison = prep_poison

    def prepare_crops(self, crops):
        if self.prep_poison is not None and any(c.image.width == self.prep_poison for c in crops):
            raise RuntimeError("poisoned preprocessing")
        return list(crops)

    def score_prepared(self, prepared):
        return self.score_crops(prepared)


class LeftHalf:
    """One mask (the left half); optionally slow for some images, failing for one width, recording order."""

    name = "lefthalf"

    def __init__(self, delay=None, fail_width: int | None = None):
        self.delay, self.fail_width = delay, fail_width
        self.finished: list[int] = []
        self._lock = threading.Lock()

    def segment(self, image):
        w, h = image.size
        if self.delay:
            time.sleep(self.delay(image))
        if w == self.fail_width:
            raise ValueError("cannot segment this one")
        mask = np.zeros((h, w), bool)
        mask[:, : w // 2] = True
        with self._lock:
            self.finished.append(int(np.asarray(image)[0, 0, 0]))
        return [mask]


def gray_images(n: int, width: int = 80, height: int = 40) -> list[Image.Image]:
    """Image i: pixel (0, 0) = i (an id), the rest a gradient that differs per image."""
    out = []
    for i in range(n):
        arr = np.full((height, width, 3), (i * 37) % 200 + 20, np.uint8)
        arr[:, : width // 3] //= 2
        arr[0, 0] = i
        out.append(Image.fromarray(arr))
    return out


def staged(iqa: DogIQA, sources, **opts) -> list:
    with StagedPipeline(iqa, PipelineOptions(**opts)) as pipe:
        return list(pipe.run(sources))


def test_order_is_kept_when_stages_finish_out_of_order(monkeypatch):
    imgs = gray_images(12)
    # the first images segment slowest, so segmentation finishes roughly in reverse order
    seg = LeftHalf(delay=lambda im: 0.02 * (12 - int(np.asarray(im)[0, 0, 0])))
    real_load = api_mod.load_image

    def slow_load(source, *caps):  # loading also finishes out of order
        time.sleep(0.01 * (int(np.asarray(source)[0, 0, 0]) % 3))
        return real_load(source, *caps)

    monkeypatch.setattr(api_mod, "load_image", slow_load)
    iqa = DogIQA(scorer=MeanScorer(), segmenter=seg, aggregation="code", chunk_size=4)
    out = staged(iqa, imgs, load_workers=3, segment_workers=4)
    assert seg.finished != sorted(seg.finished)  # the stages did finish out of order
    assert [r.width for r in out] == [80] * 12
    serial = list(DogIQA(scorer=MeanScorer(), segmenter=LeftHalf(), aggregation="code", chunk_size=4).score_many(imgs))
    assert [r.score for r in out] == [r.score for r in serial]
    assert [r.global_score for r in out] == pytest.approx([float(np.asarray(im).mean()) / 255 * 6 + 1 for im in imgs])


@pytest.mark.parametrize("stage", ["load", "segment", "preprocess", "score", "finish"])
def test_a_failing_image_is_isolated_in_every_stage(stage, tmp_path, monkeypatch):
    imgs = gray_images(7)
    bad = 3
    imgs[bad] = imgs[bad].resize((50, 40))  # width 50 marks the bad image (its global crop too)
    sources: list = list(imgs)
    # preprocess: the CPU half fails for the whole chunk, then the bad image fails alone when retried alone
    scorer = PreparingScorer(
        poison=50 if stage in ("preprocess", "score") else None, prep_poison=50 if stage == "preprocess" else None
    )
    seg = LeftHalf(fail_width=50 if stage == "segment" else None)
    if stage == "load":
        (tmp_path / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
        sources[bad] = tmp_path / "broken.png"
    iqa = DogIQA(scorer=scorer, segmenter=seg, aggregation="code", chunk_size=4)
    if stage == "finish":
        real = iqa._finish

        def finish(job, scores):
            if job.result.width == 50:
                raise ZeroDivisionError("aggregation bug")
            real(job, scores)

        monkeypatch.setattr(iqa, "_finish", finish)
    out = staged(iqa, sources, segment_workers=2)
    assert [r.ok for r in out] == [i != bad for i in range(7)]
    expected = {"load": "broken.png", "segment": "segmentation failed", "preprocess": "scoring failed",
                "score": "scoring failed", "finish": "aggregation failed"}[stage]  # fmt: skip
    assert expected in out[bad].error
    good = DogIQA(scorer=MeanScorer(), segmenter=LeftHalf(), aggregation="code", chunk_size=4)
    for i, (got, want) in enumerate(zip(out, good.score_many(imgs), strict=True)):
        if i != bad:
            assert got.score == pytest.approx(want.score, abs=1e-12) and len(got.regions) == 2


def test_images_in_flight_are_bounded_whatever_the_collection_size():
    read, yielded, ahead = [0], [0], []

    def source():
        for im in gray_images(1) * 300:
            read[0] += 1
            yield im

    iqa = DogIQA(scorer=MeanScorer(), segmenter=LeftHalf(), aggregation="code", chunk_size=4)
    with StagedPipeline(iqa, PipelineOptions(max_in_flight=10, load_workers=2, segment_workers=2)) as pipe:
        assert pipe.options.max_in_flight == 10
        for result in pipe.run(source()):
            assert result.ok
            yielded[0] += 1
            ahead.append(read[0] - yielded[0])
            time.sleep(0.0005)  # a slow consumer: the stages run as far ahead as they are allowed
        assert pipe.stats.peak <= 10 and pipe.stats.yielded == 300
    assert yielded[0] == 300 and max(ahead) <= 10


def test_the_in_flight_bound_given_to_dogiqa_is_kept_by_its_pipeline():
    """max_in_flight=3 passed to DogIQA (as --max-in-flight is) bounds score_many's read-ahead, whose own default
    would let about a dozen images through."""
    read, yielded, ahead = [0], [0], []

    def source():
        for im in gray_images(1) * 60:
            read[0] += 1
            yield im

    iqa = DogIQA(scorer=MeanScorer(), segmenter=LeftHalf(), aggregation="code", chunk_size=1, max_in_flight=3)
    for result in iqa.score_many(source()):
        assert result.ok
        yielded[0] += 1
        ahead.append(read[0] - yielded[0])
        time.sleep(0.002)  # a slow consumer: the stages run as far ahead as they are allowed
    assert yielded[0] == 60 and max(ahead) <= 3


def test_an_early_stop_ends_the_threads_and_a_failing_source_is_raised():
    iqa = DogIQA(scorer=MeanScorer(), segmenter=LeftHalf(), aggregation="code", chunk_size=2)
    before = threading.active_count()
    with StagedPipeline(iqa) as pipe:
        run = pipe.run(gray_images(1) * 50)
        assert next(run).ok
        run.close()
    assert threading.active_count() == before

    def broken():
        yield from gray_images(3)
        raise OSError("listing went away")

    got = []
    with pytest.raises(OSError, match="listing went away"):
        for r in StagedPipeline(iqa).run(broken()):
            got.append(r)
    assert len(got) == 3


def test_options_pick_processes_for_gil_bound_segmenters_only_when_asked():
    from dogiqa import pipeline
    from dogiqa.segmenters.classical import FelzenszwalbSegmenter

    assert PipelineOptions(segment_processes=0).resolved(FelzenszwalbSegmenter(), 8).segment_processes == 0
    pipeline.allow_worker_processes(False)  # automatic (None): only where the program allows them
    assert PipelineOptions().resolved(FelzenszwalbSegmenter(), 8).segment_processes == 0
    pipeline.allow_worker_processes()
    try:
        auto = PipelineOptions(processes_after=5).resolved(FelzenszwalbSegmenter(), 8)
        cores = os.cpu_count() or 1
        assert auto.segment_processes == (min(4, cores) if cores >= 2 else 0)
        assert auto.processes_after == (5 if cores >= 2 else 0)
        assert PipelineOptions().resolved(LeftHalf(), 8).segment_processes == 0  # GIL-free
    finally:
        pipeline.allow_worker_processes(False)
    assert PipelineOptions(segment_processes=1).resolved(FelzenszwalbSegmenter(), 8).processes_after == 0
    opts = PipelineOptions(segment_processes=2, max_in_flight=3).resolved(FelzenszwalbSegmenter(), 8)
    assert opts.segment_processes == 2 and opts.segment_workers >= 2 and opts.max_in_flight == 16
