"""Staged == serial on tiny real models (float32): a tiny Qwen2-VL scorer with Felzenszwalb (in a thread and
in a worker process) and with a tiny SAM 2; the backend's prepare/run_prepared split gives run's outputs."""

from __future__ import annotations

import pytest

from dogiqa.api import DogIQA
from dogiqa.backends import load_backend
from dogiqa.pipeline import PipelineOptions, StagedPipeline
from dogiqa.scorers.mllm import MLLMScorer
from dogiqa.testing.images import make_image


@pytest.fixture(scope="module")
def scorer(tiny_qwen2vl_dir):
    backend = load_backend(str(tiny_qwen2vl_dir), device="cpu", dtype="float32", batch_size=4)
    return MLLMScorer(backend, readout="expected")


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    folder = tmp_path_factory.mktemp("photos")
    paths = []
    for i, (w, h) in enumerate([(96, 72), (72, 96), (128, 72), (80, 80), (96, 72)]):
        paths.append(folder / f"p{i}.png")
        make_image(w, h, seed=i).save(paths[-1])
    paths.insert(2, folder / "missing.png")
    return paths


def assert_same(serial, staged):
    assert [r.path for r in staged] == [r.path for r in serial]
    assert [r.error for r in staged] == [r.error for r in serial]
    for a, b in zip(serial, staged, strict=True):
        if a.ok:
            assert len(a.regions) == len(b.regions) >= 1
            assert b.score == pytest.approx(a.score, abs=1e-6)
            assert b.global_score == pytest.approx(a.global_score, abs=1e-6)
            assert [r.score for r in b.regions] == pytest.approx([r.score for r in a.regions], abs=1e-6)


@pytest.mark.parametrize("processes", [0, 1])
def test_staged_equals_serial_with_felzenszwalb(scorer, photos, processes):
    from dogiqa.segmenters.classical import FelzenszwalbSegmenter

    seg = FelzenszwalbSegmenter(scale=100, min_size_fraction=0.05)
    iqa = DogIQA(scorer=scorer, segmenter=seg, aggregation="paper", min_area=200, chunk_size=2)
    serial = list(iqa.score_many(photos))
    assert sum(len(r.regions) for r in serial) > len(photos)  # real regions, not only whole images
    with StagedPipeline(iqa, PipelineOptions(segment_processes=processes)) as pipe:
        assert pipe.options.segment_processes == processes
        assert_same(serial, list(pipe.run(photos)))


def test_staged_equals_serial_with_tiny_sam2(scorer, photos, tmp_path):
    from dogiqa.registry import SEGMENTERS
    from dogiqa.testing.sam2_tiny import build_sam2

    seg = SEGMENTERS.build_accepting("sam2", model=str(build_sam2(tmp_path / "sam2")), points_per_side=4)
    iqa = DogIQA(scorer=scorer, segmenter=seg, aggregation="paper", min_area=200, chunk_size=2)
    sources = photos[:3]
    serial = list(iqa.score_many(sources))
    with StagedPipeline(iqa, PipelineOptions(segment_workers=2)) as pipe:
        assert_same(serial, list(pipe.run(sources)))


def test_prepare_then_run_prepared_equals_run(scorer):
    backend = scorer.backend
    imgs = [make_image(w, h, seed=w) for w, h in [(64, 48), (48, 64), (96, 64), (64, 64), (40, 30)]]
    prompt = scorer.prompt_for("local")
    direct = backend.run(imgs, prompt, scorer.candidates)
    split = backend.run_prepared(backend.prepare(imgs, prompt, scorer.candidates))
    for a, b in zip(direct, split, strict=True):
        assert a.text == b.text and a.error is None and b.error is None
        assert list(b.logprobs.values()) == pytest.approx(list(a.logprobs.values()), abs=1e-6)


def test_automatic_worker_processes_take_over_after_the_first_images(scorer, photos, monkeypatch):
    """segment_processes=None (the default): threads only, unless the program allows worker processes (the
    dogiqa command); then they start once ``processes_after`` images are segmented. Scores never change."""
    import multiprocessing
    import os

    from dogiqa import pipeline
    from dogiqa.segmenters.classical import FelzenszwalbSegmenter

    seg = FelzenszwalbSegmenter(scale=100, min_size_fraction=0.05)
    iqa = DogIQA(scorer=scorer, segmenter=seg, aggregation="paper", min_area=200, chunk_size=2, staged=False)
    serial = list(iqa.score_many(photos))

    def run(after: int) -> tuple[list, set]:
        before = set(multiprocessing.active_children())
        with StagedPipeline(iqa, PipelineOptions(processes_after=after)) as pipe:
            out = list(pipe.run(photos))
            return out, set(multiprocessing.active_children()) - before

    monkeypatch.setattr(pipeline, "_WORKERS_ALLOWED", False)
    out, started = run(after=2)
    assert_same(serial, out) and not started
    pipeline.allow_worker_processes()
    out, started = run(after=100)  # fewer images than that: never worth starting them
    assert_same(serial, out) and not started
    out, started = run(after=2)
    assert_same(serial, out)
    assert bool(started) == ((os.cpu_count() or 1) >= 2)
