"""A pure-Python stand-in for a VLM backend whose answers follow an image's brightness (no model, instant).

For a crop of mean brightness ``y`` (mean over R, G, B of value / 255) the model's value is ``t = 8 y``. It
answers the nearest digit 0..9 (``0`` and ``8``/``9`` are invalid for K = 7) and gives each candidate token
the log-probability ``-(k - t)**2`` (k: the candidate's level; a word's level is its Q-Align rank), so the
``expected`` readout is ``expected_level(t, K)`` of ``dogiqa.testing.sensitive``: the same contract as the
tiny brightness Qwen2-VL, computable by hand, and every call is recorded.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from PIL import Image

from dogiqa.backends.base import BackendError, Prompt, RawOutput

WORD_LEVEL = {"bad": 1, "poor": 2, "fair": 3, "good": 4, "excellent": 5}


def brightness(image: Image.Image) -> float:
    return float(np.asarray(image.convert("RGB"), dtype=np.float64).mean()) / 255


def t_of(value: float) -> float:
    """The model's value for a uniform grey of ``value`` (0..255)."""
    return 8 * value / 255


def level_of(candidate: str) -> int:
    text = candidate.strip()
    return int(text) if text.isdigit() else WORD_LEVEL[text.lower()]


class FakeVLM:
    """The Backend protocol. ``reject``: candidate strings it refuses (not one token); ``error_below``: crops
    darker than this brightness get a per-crop error output; ``raise_below``: a call with such a crop raises."""

    def __init__(self, model_id: str = "fake/bright-vlm", reject: Sequence[str] = (), error_below: float = -1.0,
                 raise_below: float = -1.0):  # fmt: skip
        self.model_id, self.reject = model_id, set(reject)
        self.error_below, self.raise_below = error_below, raise_below
        self.calls: list[tuple[Prompt, list[float], list[str]]] = []  # (prompt, crop brightnesses, candidates)
        self.checked: list[list[str]] = []

    def check_candidates(self, candidates: Sequence[str]) -> None:
        self.checked.append(list(candidates))
        bad = [c for c in candidates if c in self.reject]
        if bad:
            raise BackendError(f"{bad[0]!r} is not one token")

    def answer(self, image: Image.Image, candidates: Sequence[str]) -> RawOutput:
        y = brightness(image)
        if y < self.error_below:
            return RawOutput(error=f"too dark to answer ({y:.3f})")
        t = 8 * y
        text = str(min(9, max(0, int(np.floor(t + 0.5)))))
        return RawOutput(text=text, logprobs={c: -((level_of(c) - t) ** 2) for c in candidates})

    def run(self, images: Sequence[Image.Image], prompt: Prompt, candidates: Sequence[str], want_text: bool = True
            ) -> list[RawOutput]:  # fmt: skip
        ys = [brightness(im) for im in images]
        self.calls.append((prompt, ys, list(candidates)))
        if any(y < self.raise_below for y in ys):
            raise RuntimeError("the batch failed")
        return [self.answer(im, candidates) for im in images]

    @property
    def asked(self) -> int:
        """Crops sent to the model so far."""
        return sum(len(ys) for _, ys, _ in self.calls)


class PreparingFakeVLM(FakeVLM):
    """The same model with the optional ``prepare``/``run_prepared`` split (the pipeline's CPU half)."""

    def __init__(self, **kw: object):
        super().__init__(**kw)  # type: ignore[arg-type]
        self.prepared: list[tuple[Prompt, list[str], bool]] = []

    def prepare(self, images: Sequence[Image.Image], prompt: Prompt, candidates: Sequence[str],
                want_text: bool = True) -> tuple:  # fmt: skip
        self.prepared.append((prompt, list(candidates), want_text))
        return (list(images), prompt, list(candidates))

    def run_prepared(self, ready: tuple) -> list[RawOutput]:
        images, prompt, candidates = ready
        return self.run(images, prompt, candidates)


def grey(value: int, size: tuple[int, int] = (112, 112)) -> Image.Image:
    return Image.new("RGB", size, (value, value, value))


def two_tone(left: int, right: int, size: tuple[int, int] = (112, 112)) -> Image.Image:
    w, h = size
    arr = np.empty((h, w, 3), np.uint8)
    arr[:, : w // 2], arr[:, w // 2 :] = left, right
    return Image.fromarray(arr)


class HalvesSegmenter:
    """Two masks: the left and the right half (in that order)."""

    name = "halves"

    def segment(self, image: Image.Image) -> list[np.ndarray]:
        left = np.zeros((image.height, image.width), bool)
        left[:, : image.width // 2] = True
        return [left, ~left]


class DictStore:
    """A RawStore in memory that records what was looked up and stored."""

    def __init__(self) -> None:
        self.data: dict[str, RawOutput] = {}
        self.looked_up: list[list[str]] = []

    def get_many(self, keys: Sequence[str]) -> dict[str, RawOutput]:
        self.looked_up.append(list(keys))
        return {k: self.data[k] for k in keys if k in self.data}

    def put_many(self, items: dict[str, RawOutput]) -> None:
        self.data.update(items)
