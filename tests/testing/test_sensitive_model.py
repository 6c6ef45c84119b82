"""The image-sensitive tiny Qwen2-VL: its answers are the hand formula round(8 * brightness)."""

from __future__ import annotations

import math

import pytest
from PIL import Image

from dogiqa.backends import load_backend
from dogiqa.standards import get_standard

GREYS = [0, 20, 60, 100, 128, 180, 230, 255]


@pytest.fixture(scope="module")
def backend(brightness_qwen2vl_dir):
    return load_backend(str(brightness_qwen2vl_dir), "transformers", device="cpu")


def grey(v: int, size=(64, 48)) -> Image.Image:
    return Image.new("RGB", size, (v, v, v))


def hand_probs(t: float, levels: int, tau: float = 1.0) -> list[float]:
    """softmax_k(-tau (k - t)^2), written out independently of dogiqa.testing.sensitive."""
    w = [math.exp(-tau * (k - t) ** 2) for k in range(1, levels + 1)]
    return [x / sum(w) for x in w]


def probs_of(raw, cands) -> list[float]:
    e = [math.exp(raw.logprobs[c]) for c in cands]
    return [x / sum(e) for x in e]


@pytest.mark.parametrize("levels", [5, 7, 9])
def test_level_probabilities_follow_brightness_by_hand(backend, levels):
    cands = get_standard("word", levels).level_tokens
    prompt = get_standard("word", levels).prompt("global")
    outs = backend.run([grey(v) for v in GREYS], prompt, cands, want_text=True)
    for v, raw in zip(GREYS, outs, strict=True):
        t = 8 * v / 255
        assert probs_of(raw, cands) == pytest.approx(hand_probs(t, levels), abs=2e-3), v
        assert raw.text == str(min(9, math.floor(t + 0.5))), v  # greedy: the digit nearest t, 0..9


def test_answers_tell_images_apart_and_some_are_invalid(backend):
    cands = [str(i) for i in range(1, 8)]
    outs = backend.run([grey(v) for v in (0, 100, 255)], get_standard("word", 7).prompt("local"), cands)
    assert [o.text for o in outs] == ["0", "3", "8"]  # 0 and 8 are not levels of K = 7


def test_colour_counts_through_mean_brightness(backend):
    red, cyan = Image.new("RGB", (56, 56), (255, 0, 0)), Image.new("RGB", (56, 56), (0, 255, 255))
    outs = backend.run([red, cyan], get_standard("word", 7).prompt("global"), ["1", "2", "3", "4", "5", "6", "7"])
    assert [o.text for o in outs] == ["3", "5"]  # 8 * 85 / 255 = 2.67; 8 * 170 / 255 = 5.33


def test_quality_words_read_the_same_brightness(backend):
    words = [" bad", " poor", " fair", " good", " excellent"]
    prompt = get_standard("word", 7).prompt("global")
    dark, bright = backend.run([grey(40), grey(240)], prompt, words)
    assert max(words, key=dark.logprobs.get) == " bad"  # t * 5 / 8 = 0.78
    assert max(words, key=bright.logprobs.get) == " excellent"  # 4.7


@pytest.fixture(scope="module")
def idefics3(tmp_path_factory):
    from dogiqa.testing.sensitive import build_brightness_idefics3

    folder = build_brightness_idefics3(tmp_path_factory.mktemp("brightness-idefics3"))
    return load_backend(str(folder), "transformers", device="cpu")


def test_idefics3_variant_answers_by_brightness_through_its_tiles(idefics3):
    cands = [str(k) for k in range(1, 8)]
    sizes = [(64, 48), (300, 120), (112, 112)]  # 3x3 tiles + global view, 1x3 + global, one tile
    images = [grey(v, sizes[i % 3]) for i, v in enumerate(GREYS)]
    outs = idefics3.run(images, get_standard("word", 7).prompt("global"), cands, want_text=True)
    for v, raw in zip(GREYS, outs, strict=True):
        t = 8 * v / 255
        assert raw.text == str(min(9, math.floor(t + 0.5))), v
        assert probs_of(raw, cands) == pytest.approx(hand_probs(t, 7), abs=2e-3), v
