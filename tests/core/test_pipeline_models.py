"""The whole pipeline on tiny real VLMs: two architectures, and batched == one image at a time."""

import numpy as np
import pytest
from PIL import Image

from dogiqa.api import DogIQA
from dogiqa.backends import load_backend
from dogiqa.scorers.mllm import MLLMScorer


class Quadrants:
    """Three quadrant masks (the fourth is left to the complement region)."""

    name = "quadrants"

    def segment(self, image):
        w, h = image.size
        masks = []
        for y, x in ((0, 0), (0, 1), (1, 0)):
            m = np.zeros((h, w), bool)
            m[y * h // 2 : (y + 1) * h // 2, x * w // 2 : (x + 1) * w // 2] = True
            masks.append(m)
        return masks


def images(n=4):
    rng = np.random.default_rng(1)
    sizes = [(120, 90), (64, 96), (200, 150), (90, 90)]
    return [Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8)) for w, h in sizes[:n]]


@pytest.fixture(scope="module")
def qwen_backend(tiny_qwen2vl_dir):
    return load_backend(str(tiny_qwen2vl_dir), device="cpu", dtype="float32")


def test_batched_pipeline_equals_one_image_at_a_time(qwen_backend):
    imgs = images()
    scorer = MLLMScorer(qwen_backend, readout="expected")
    batched = list(DogIQA(scorer=scorer, segmenter=Quadrants(), aggregation="code", chunk_size=4).score_many(imgs))
    single = [DogIQA(scorer=scorer, segmenter=Quadrants(), aggregation="code", chunk_size=1).score(im) for im in imgs]
    for b, s in zip(batched, single, strict=True):
        assert b.ok and s.ok
        assert len(b.regions) == len(s.regions) == 4
        assert b.score == pytest.approx(s.score, abs=1e-4)
        for rb, rs in zip(b.regions, s.regions, strict=True):
            assert rb.score == pytest.approx(rs.score, abs=1e-4)


def test_int_and_expected_agree_on_the_argmax(qwen_backend):
    img = images(1)[0]
    exp = DogIQA(scorer=MLLMScorer(qwen_backend, readout="expected"), aggregation="global").score(img)
    got = DogIQA(scorer=MLLMScorer(qwen_backend, readout="int"), aggregation="global").score(img)
    if got.global_score is not None:
        assert got.global_score == float(np.argmax(exp.global_probs) + 1)
    assert exp.uncertainty is not None and exp.uncertainty > 0


def test_idefics3_through_the_pipeline(tiny_idefics3_dir):
    iqa = DogIQA(
        model=str(tiny_idefics3_dir),
        segmenter="none",
        aggregation="global",
        readout="expected",
        device="cpu",
        dtype="float32",
    )
    r = iqa.score(Image.new("RGB", (40, 30), (120, 60, 200)))
    assert r.ok and 1 <= r.score <= 7 and len(r.global_probs) == 7


def test_identical_crops_are_asked_once_and_prompts_grouped(qwen_backend):
    from dogiqa.scorers.base import Crop

    calls = []
    real_run = qwen_backend.run

    def counting_run(images, prompt, candidates, want_text=True):
        calls.append(len(images))
        return real_run(images, prompt, candidates, want_text)

    qwen_backend.run = counting_run
    try:
        img = images(1)[0]
        scorer = MLLMScorer(qwen_backend, readout="expected")
        crops = [Crop(img, key="a", call="global"), Crop(img, key="a", call="local"), Crop(img, key="b")]
        out = scorer.score_crops(crops)
    finally:
        del qwen_backend.run
    assert calls == [2]  # one call (same prompt for global and local), the twin crop asked once
    assert out[0].score == out[1].score and out[0].probs == out[1].probs
