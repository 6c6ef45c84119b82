"""The pipeline's glue, checked with a model whose answers are known in advance (round(8 * brightness)).

Images are made of grey blocks aligned to Qwen2-VL's 28-pixel merged tokens, so every crop's value
t = 8 * mean brightness is exact, and the expected scores below are computed by hand from t.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from brightness_vlm import HalvesSegmenter, grey, t_of
from brightness_vlm import two_tone as halves_image
from PIL import Image

from dogiqa.api import DogIQA
from dogiqa.backends import load_backend
from dogiqa.scorers.mllm import MLLMScorer

DARK, BRIGHT = 40, 200  # t = 1.255 -> "1", t = 6.275 -> "6"
W = H = 112


def hand_expected(t: float, levels: int) -> float:
    w = [math.exp(-((k - t) ** 2)) for k in range(1, levels + 1)]
    return sum(k * x for k, x in enumerate(w, start=1)) / sum(w)


def two_tone(left: int = DARK, right: int = BRIGHT) -> Image.Image:
    return halves_image(left, right, (W, H))


class TriangleSegmenter:
    """One mask: the lower-left triangle (its box is the whole image; the complement is the other triangle)."""

    name = "triangle"

    def segment(self, image: Image.Image) -> list[np.ndarray]:
        yy, xx = np.mgrid[: image.height, : image.width]
        return [xx <= yy]


class Recording:
    """A backend wrapper that records each call's prompt and image sizes (the Backend protocol)."""

    def __init__(self, inner):
        self.inner, self.model_id, self.calls = inner, inner.model_id, []

    def check_candidates(self, candidates):
        return self.inner.check_candidates(candidates)

    def run(self, images, prompt, candidates, want_text=True):
        self.calls.append((prompt, [im.size for im in images], list(candidates)))
        return self.inner.run(images, prompt, candidates, want_text=want_text)


@pytest.fixture(scope="module")
def backend(brightness_qwen2vl_dir):
    return load_backend(str(brightness_qwen2vl_dir), "transformers", device="cpu")


def pipeline(backend, segmenter=None, levels=7, readout="int", aggregation="paper", invalid_as_one=False, **kw):
    scorer = MLLMScorer(backend, "word", readout, levels, invalid_as_one=invalid_as_one,
                        paper_whitespace=kw.pop("paper_whitespace", False))  # fmt: skip
    return DogIQA(scorer=scorer, segmenter=segmenter or HalvesSegmenter(), aggregation=aggregation, **kw)


def test_regions_get_their_own_levels_and_the_paper_formula(backend):
    r = pipeline(backend).score(two_tone())
    assert r.error is None
    assert (r.global_raw, [g.raw for g in r.regions]) == ("4", ["1", "6"])  # t: 3.76, 1.25, 6.27
    assert [g.box for g in r.regions] == [(0, 0, 56, 112), (56, 0, 112, 112)]
    assert r.local_score == pytest.approx((1 * 6272 + 6 * 6272) / 12544)
    assert r.score == pytest.approx(0.5 * 4 + 0.5 * 3.5 + 2 * 7 / 71)  # the paper: 0.5 s_g + 0.5 S_l + N K / c_max


def test_the_authors_code_aggregation_and_c_max(backend):
    code = pipeline(backend, aggregation="code").score(two_tone())
    assert code.score == pytest.approx(3.5 + 0.1 * 2 + 0.5 * 4)
    c10 = pipeline(backend, aggregation_options={"c_max": 10}).score(two_tone())
    assert c10.score == pytest.approx(0.5 * 4 + 0.5 * 3.5 + 2 * 7 / 10)


@pytest.mark.parametrize("levels", [3, 5, 7, 9])
def test_levels_reach_readout_prompt_and_aggregation(backend, levels):
    rec = Recording(backend)
    white = two_tone(DARK, 255)  # right half: t = 8 -> "8", a level only for K = 9
    r = pipeline(rec, levels=levels).score(white)
    assert (r.global_raw, [g.raw for g in r.regions]) == ("5", ["1", "8"])  # global t = 8 * 147.5 / 255 = 4.63
    if levels == 9:
        assert r.regions[1].score == 8 and r.invalid == 0
        assert r.score == pytest.approx(0.5 * 5 + 0.5 * (1 + 8) / 2 + 2 * 9 / 71)
    elif levels > 3:
        assert r.regions[1].score is None and r.invalid == 1 and f"1..{levels}" in r.regions[1].error
        assert r.local_score == 1.0  # the invalid region is left out of S_local, but still counted in N
        assert r.score == pytest.approx(0.5 * 5 + 0.5 * 1 + 2 * levels / 71)
    else:  # "5" is not a level of K = 3 either: no global score, no final score
        assert r.global_score is None and r.invalid == 2 and r.score is None
    assert all(cands == [str(k) for k in range(1, levels + 1)] for _, _, cands in rec.calls)
    assert all(f"{levels}: " in p.before_image and f"{levels + 1}: " not in p.before_image for p, _, _ in rec.calls)
    expected = pipeline(backend, levels=levels, readout="expected").score(white)
    assert expected.global_score == pytest.approx(hand_expected(t_of(147.5), levels), abs=2e-3)
    assert expected.regions[1].score == pytest.approx(hand_expected(8.0, levels), abs=2e-3)
    assert len(expected.global_probs) == levels


def test_invalid_answer_is_an_error_or_scores_one_with_the_paper_fallback(backend):
    black = two_tone(0, BRIGHT)  # left half answers "0"
    strict = pipeline(backend).score(black)
    assert strict.regions[0].raw == "0" and strict.regions[0].score is None and strict.invalid == 1
    assert "'0'" in strict.regions[0].error
    assert strict.local_score == 6.0
    paper = pipeline(backend, invalid_as_one=True).score(black)
    assert paper.regions[0].score == 1.0 and paper.invalid == 1 and paper.regions[0].error is None
    assert paper.local_score == pytest.approx(3.5)
    dark = pipeline(backend, aggregation="global", invalid_as_one=True).score(grey(0))
    assert (dark.global_raw, dark.global_score, dark.invalid, dark.score) == ("0", 1.0, 1, 1.0)


def test_a_crop_without_any_valid_answer_leaves_no_final_score(backend):
    r = pipeline(backend, aggregation="global").score(grey(0))
    assert r.score is None and r.global_score is None and r.invalid == 1
    assert r.error and "invalid" in r.error


def test_brighter_images_score_higher_by_the_hand_formula(backend):
    iqa = pipeline(backend, readout="expected", aggregation="global")
    greys = [30, 70, 110, 150, 190, 230]
    scores = [r.score for r in iqa.score_many([grey(v) for v in greys])]
    assert scores == sorted(scores) and len(set(scores)) == len(scores)
    for v, s in zip(greys, scores, strict=True):
        assert s == pytest.approx(hand_expected(t_of(v), 7), abs=2e-3), v


def test_crop_mode_mask_blacks_out_the_outside(backend):
    image = grey(BRIGHT)
    bbox = pipeline(backend, segmenter=TriangleSegmenter()).score(image)
    mask = pipeline(backend, segmenter=TriangleSegmenter(), crop_mode="mask").score(image)
    assert [r.raw for r in bbox.regions] == ["6", "6"]  # the box of each triangle is the whole image
    assert [r.box for r in mask.regions] == [r.box for r in bbox.regions]
    for r in mask.regions:  # about half of each box is blacked out: t ~ 3.1
        assert r.raw in ("3", "4") and r.score < 6
    assert bbox.config["crop_mode"] == "bbox" and mask.config["crop_mode"] == "mask"


def test_global_and_local_calls_get_their_own_prompts(backend):
    rec = Recording(backend)
    r = pipeline(rec, paper_whitespace=True).score(two_tone())
    assert r.error is None
    by_indent = {}
    for prompt, sizes, _ in rec.calls:
        indent = len(prompt.after_image) - len(prompt.after_image.lstrip(" \n")) - 1
        by_indent.setdefault(indent, []).extend(sizes)
    assert by_indent == {20: [(W, H)], 24: [(56, 112), (56, 112)]}  # the authors' 20 / 24 spaces


def test_min_area_decides_which_regions_are_scored(backend):
    small = pipeline(backend, min_area=6272).score(two_tone())
    big = pipeline(backend, min_area=6273).score(two_tone())
    assert len(small.regions) == 2
    assert [g.kind for g in big.regions] == ["whole"] and big.regions[0].raw == "4"


def test_pixel_cap_rejects_large_images_per_image(backend, tmp_path):
    grey(BRIGHT, (112, 112)).save(tmp_path / "big.png")
    grey(BRIGHT, (56, 56)).save(tmp_path / "ok.png")
    capped = pipeline(backend, aggregation="global", max_pixels=56 * 56)
    big, ok = capped.score_many([tmp_path / "big.png", tmp_path / "ok.png"])
    assert big.score is None and "big.png" in big.error and ok.score == 6.0
    assert pipeline(backend, aggregation="global", max_pixels=112 * 112).score(tmp_path / "big.png").score == 6.0


def test_chunking_keeps_order_and_per_image_answers(backend):
    greys = [30, 230, 90, 160, 10]
    want = [str(round(t_of(v))) for v in greys]
    for chunk in (1, 2, 8):
        rs = list(pipeline(backend, aggregation="global", chunk_size=chunk).score_many([grey(v) for v in greys]))
        assert [r.global_raw for r in rs] == want


def test_cached_answers_are_reused_not_asked_again(backend, tmp_path):
    from dogiqa.cache import RawCache

    rec = Recording(backend)
    with RawCache(tmp_path / "cache.sqlite") as cache:
        iqa = DogIQA(scorer=MLLMScorer(rec, "word", "int", 7, cache=cache), segmenter=HalvesSegmenter())
        first = iqa.score(two_tone())
        asked = sum(len(sizes) for _, sizes, _ in rec.calls)
        assert asked == 3 and cache.count_raw() == 3  # the global view and two regions
        again = iqa.score(two_tone())
        assert sum(len(sizes) for _, sizes, _ in rec.calls) == asked  # nothing asked twice
        other = iqa.score(two_tone(DARK, 255))  # a new image: asked
    assert (again.global_raw, [r.raw for r in again.regions]) == ("4", ["1", "6"])
    assert again.score == first.score and again.error is None
    assert [r.raw for r in other.regions] == ["1", "8"]
