"""The tiny brightness Qwen2-VL (``dogiqa.testing.sensitive``: a real architecture with hand-set weights)
behind a recorder that notes every call, with optional injected faults.

For a crop of mean brightness ``y`` (mean over R, G, B of value / 255) the model's value is ``t = 8 y``: its
greedy answer is the nearest digit 0..9 (``0`` and ``8``/``9`` are invalid for K = 7), the level-token
softmax is ``level_probs(t, K)`` and the ``expected`` readout ``expected_level(t, K)``; the quality words
(bad .. excellent = 1..5) read ``t * 5 / 8`` the same way. Expected values in the tests come from those
formulas (hand computation), never from running the model. The model is built once per test process.
"""

from __future__ import annotations

import functools
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from dogiqa.backends.base import BackendError, Prompt, RawOutput


def brightness(image: Image.Image) -> float:
    return float(np.asarray(image.convert("RGB"), dtype=np.float64).mean()) / 255


def t_of(value: float) -> float:
    """The model's value for a uniform grey of ``value`` (0..255)."""
    return 8 * value / 255


def tw_of(value: float) -> float:
    """The value the quality words (bad .. excellent = 1..5) are read against, for a uniform grey."""
    return t_of(value) * 5 / 8


def approx(expected: Any) -> Any:
    """``pytest.approx`` at the model's precision: it reproduces the formulas to about 1e-5."""
    import pytest

    return pytest.approx(expected, abs=1e-4)


@functools.cache
def brightness_backend() -> Any:
    """The real tiny brightness Qwen2-VL, loaded once (float32, CPU)."""
    # the root conftest's model cache, read from the environment: ``import conftest`` may find a sub-folder's
    MODEL_CACHE = os.environ.get("DOGIQA_TEST_MODEL_CACHE")  # noqa: N806
    from dogiqa.backends.transformers_vlm import TransformersVLM
    from dogiqa.testing.sensitive import build_brightness_qwen2vl

    root = Path(MODEL_CACHE) if MODEL_CACHE else Path(tempfile.mkdtemp(prefix="dogiqa-brightness-"))
    folder = root / "brightness-qwen2vl-recorded"
    if not (folder / "config.json").is_file():
        build_brightness_qwen2vl(folder)
    return TransformersVLM(str(folder), device="cpu", dtype="float32", prefix_cache=False)


class BrightnessVLM:
    """The Backend protocol over the real brightness model, recording each call. Injected faults: ``reject``:
    candidate strings refused (as if not one token); ``error_below``: crops darker than this brightness get a
    per-crop error output; ``raise_below``: a call with such a crop raises."""

    def __init__(self, model_id: str = "tiny/brightness-qwen2vl", reject: Sequence[str] = (), error_below: float = -1.0,
                 raise_below: float = -1.0):  # fmt: skip
        self.model_id, self.reject = model_id, set(reject)
        self.error_below, self.raise_below = error_below, raise_below
        self.calls: list[tuple[Prompt, list[float], list[str]]] = []  # (prompt, crop brightnesses, candidates)
        self.checked: list[list[str]] = []
        self.model = brightness_backend()

    def check_candidates(self, candidates: Sequence[str]) -> None:
        self.checked.append(list(candidates))
        bad = [c for c in candidates if c in self.reject]
        if bad:
            raise BackendError(f"{bad[0]!r} is not one token")
        self.model.check_candidates(candidates)

    def _called(self, ys: list[float], prompt: Prompt, candidates: Sequence[str]) -> None:
        self.calls.append((prompt, ys, list(candidates)))
        if any(y < self.raise_below for y in ys):
            raise RuntimeError("the batch failed")

    def _errors(self, ys: list[float], outs: list[RawOutput]) -> list[RawOutput]:
        return [RawOutput(error=f"too dark to answer ({y:.3f})") if y < self.error_below else o
                for y, o in zip(ys, outs, strict=True)]  # fmt: skip

    def run(self, images: Sequence[Image.Image], prompt: Prompt, candidates: Sequence[str], want_text: bool = True
            ) -> list[RawOutput]:  # fmt: skip
        ys = [brightness(im) for im in images]
        self._called(ys, prompt, candidates)
        return self._errors(ys, self.model.run(list(images), prompt, list(candidates), want_text))

    @property
    def asked(self) -> int:
        """Crops sent to the model so far."""
        return sum(len(ys) for _, ys, _ in self.calls)


class PreparingBrightnessVLM(BrightnessVLM):
    """The same model with the optional ``prepare``/``run_prepared`` split (the pipeline's CPU half)."""

    def __init__(self, **kw: Any):
        super().__init__(**kw)
        self.prepared: list[tuple[Prompt, list[str], bool]] = []

    def prepare(self, images: Sequence[Image.Image], prompt: Prompt, candidates: Sequence[str],
                want_text: bool = True) -> tuple:  # fmt: skip
        self.prepared.append((prompt, list(candidates), want_text))
        ys = [brightness(im) for im in images]
        return ys, prompt, list(candidates), self.model.prepare(list(images), prompt, list(candidates), want_text)

    def run_prepared(self, ready: tuple) -> list[RawOutput]:
        ys, prompt, candidates, prepared = ready
        self._called(ys, prompt, candidates)
        return self._errors(ys, self.model.run_prepared(prepared))


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
