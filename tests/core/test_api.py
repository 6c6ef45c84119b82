"""Pipeline logic with simple, exact scorers (the model path is tested with tiny real VLMs elsewhere)."""

import numpy as np
import pytest
from PIL import Image

from dogiqa.api import DogIQA, finalize
from dogiqa.results import ImageResult
from dogiqa.scorers.base import CropScore


class BrightnessScorer:
    """Mean brightness / 255 * 6 + 1: a real (if naive) quality value in 1..7."""

    name = "brightness"
    higher_is_better = True
    score_range = (1.0, 7.0)

    def __init__(self, fail_on_dark=False):
        self.calls = []
        self.fail_on_dark = fail_on_dark

    def score_crops(self, crops):
        self.calls.append(len(crops))
        if self.fail_on_dark and any(np.asarray(c.image).mean() < 5 for c in crops):
            raise RuntimeError("dark crop")  # fault injection: a whole batch fails
        return [CropScore(score=float(np.asarray(c.image).mean()) / 255 * 6 + 1) for c in crops]


class HalfMask:
    name = "half"

    def segment(self, image):
        w, h = image.size
        m = np.zeros((h, w), bool)
        m[:, : w // 2] = True
        return [m]


def split_image(w=100, h=50):
    arr = np.zeros((h, w, 3), np.uint8)
    arr[:, : w // 2] = 255  # left half white, right half black
    return Image.fromarray(arr)


def test_score_with_regions_and_code_aggregation():
    iqa = DogIQA(scorer=BrightnessScorer(), segmenter=HalfMask(), aggregation="code")
    r = iqa.score(split_image())
    assert r.ok and [x.kind for x in r.regions] == ["mask", "complement"]
    assert [x.score for x in r.regions] == [7.0, 1.0]
    assert r.global_score == pytest.approx(4.0)
    assert r.local_score == pytest.approx(4.0)
    assert r.score == pytest.approx(4.0 + 0.1 * 2 + 0.5 * 4.0)
    assert r.n_masks == 1 and r.width == 100 and r.height == 50


def test_global_only_skips_segmentation_and_local_skips_global():
    class Boom:
        name = "boom"

        def segment(self, image):
            raise AssertionError("must not segment")

    r = DogIQA(scorer=BrightnessScorer(), segmenter=Boom(), aggregation="global").score(split_image())
    assert r.ok and r.regions == [] and r.score == pytest.approx(4.0)
    r = DogIQA(scorer=BrightnessScorer(), segmenter=HalfMask(), aggregation="local").score(split_image())
    assert r.global_score is None and r.score == pytest.approx(4.0)


def test_crops_of_a_chunk_go_together_and_order_is_kept(tmp_path):
    paths = []
    for i, v in enumerate([0, 100, 200]):
        p = tmp_path / f"{i}.png"
        Image.new("RGB", (60, 40), (v, v, v)).save(p)
        paths.append(p)
    scorer = BrightnessScorer()
    iqa = DogIQA(scorer=scorer, segmenter="none", aggregation="code", chunk_size=2)
    out = list(iqa.score_many(paths))
    assert [r.path for r in out] == [str(p) for p in paths]
    assert scorer.calls == [4, 2]  # (global + whole) x 2 images, then 1 image
    assert out[0].score < out[1].score < out[2].score


def test_bad_images_are_recorded_and_others_scored(tmp_path):
    good = tmp_path / "good.png"
    Image.new("RGB", (30, 30), (50, 50, 50)).save(good)
    corrupt = tmp_path / "bad.jpg"
    corrupt.write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    out = list(DogIQA(scorer=BrightnessScorer(), aggregation="global").score_many([corrupt, good, tmp_path / "x"]))
    assert [r.ok for r in out] == [False, True, False]
    assert str(corrupt) in out[0].error and "file not found" in out[2].error


def test_a_failing_batch_is_isolated_per_image():
    dark = Image.new("RGB", (30, 30), (0, 0, 0))
    light = Image.new("RGB", (30, 30), (200, 200, 200))
    out = list(DogIQA(scorer=BrightnessScorer(fail_on_dark=True), aggregation="global").score_many([light, dark]))
    assert out[0].ok and out[0].score > 1
    assert not out[1].ok and "scoring failed" in out[1].error and "dark crop" in out[1].error


def test_invalid_answers_are_counted_and_explained():
    class Picky(BrightnessScorer):
        def score_crops(self, crops):
            err = "answer '?' is not a level 1..7"
            return [CropScore(score=None, raw="?", error=err, extra={"invalid": True}) for _ in crops]

    r = DogIQA(scorer=Picky(), aggregation="code").score(split_image())
    assert r.score is None and r.invalid == 2 and "no final score" in r.error
    assert r.failed_crops == 0 and "2 crop(s) invalid answer" in r.error
    assert r.global_error == "answer '?' is not a level 1..7"


def test_backend_failures_are_not_invalid_answers():
    class Down(BrightnessScorer):
        def score_crops(self, crops):
            return [CropScore(score=None, error="http://x/v1: HTTP 500 (not retried): boom") for _ in crops]

    r = DogIQA(scorer=Down(), aggregation="code").score(split_image())
    assert r.score is None and r.invalid == 0 and r.failed_crops == 2
    assert "2 crop(s) backend/scorer call failed" in r.error and "HTTP 500" in r.error


def test_reaggregation_from_a_record_equals_a_fresh_run():
    iqa_code = DogIQA(scorer=BrightnessScorer(), segmenter=HalfMask(), aggregation="code")
    iqa_paper = DogIQA(scorer=BrightnessScorer(), segmenter=HalfMask(), aggregation="paper")
    rec = ImageResult.from_dict(iqa_code.score(split_image()).to_dict())
    again = finalize(rec, "paper", levels=7)
    assert again.score == pytest.approx(iqa_paper.score(split_image()).score)


def test_presets_and_overrides():
    with pytest.raises(ValueError, match="unknown preset"):
        DogIQA.from_preset("nope")
    iqa = DogIQA.from_preset(
        "paper-code", scorer=BrightnessScorer(), segmenter="felzenszwalb", segmenter_options={"work_side": 64}
    )
    assert iqa.aggregation.name == "code" and iqa.segmenter.name == "felzenszwalb"
    assert iqa.config["min_area"] == 1000


def test_classical_scorer_mix_grained_with_an_unscorable_region():
    class BigAndSmall:
        name = "big-and-small"

        def segment(self, image):
            big = np.zeros((200, 300), bool)
            big[:, :200] = True
            small = np.zeros((200, 300), bool)
            small[:40, 250:290] = True  # 1600 px, but under NIQE's 96x96 minimum
            return [big, small]

    rng = np.random.default_rng(0)
    img = Image.fromarray(rng.integers(0, 255, (200, 300, 3), dtype=np.uint8))
    r = DogIQA(scorer="niqe", segmenter=BigAndSmall(), aggregation="local").score(img)
    assert [x.kind for x in r.regions] == ["mask", "mask", "complement"]
    assert r.regions[1].score is None and "not scorable" in r.regions[1].error
    assert r.not_scorable == 1 and r.invalid == 0 and r.failed_crops == 0
    scored = [x for x in r.regions if x.score is not None]
    expected = sum(x.score * x.weight for x in scored) / sum(x.weight for x in scored)
    assert r.score == pytest.approx(expected)
