"""The Scorer seam: a quality value for each crop, shared by the MLLM path and the classical baselines."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from PIL import Image


@dataclass
class Crop:
    """One image region to score. ``key`` identifies its pixels (image hash + box + crop mode) for caching.

    ``call`` says whether it is the whole image ("global") or a region crop ("local"); some prompts differ.
    """

    image: Image.Image
    key: str = ""
    call: str = "local"


@dataclass
class CropScore:
    """The score of one crop. ``score`` is None when the crop is not scorable (``error`` says why)
    or the model's answer was invalid (``raw`` keeps the answer)."""

    score: float | None
    raw: str | None = None
    probs: list[float] | None = None
    entropy: float | None = None
    variance: float | None = None
    error: str | None = None
    extra: dict = field(default_factory=dict)

    @property
    def valid(self) -> bool:
        return self.score is not None

    @property
    def failure(self) -> str | None:
        """Why the crop has no (valid) score: ``invalid_answer`` (the model's reply is not a level; set by
        readouts as ``extra["invalid"]``, also when ``invalid_as_one`` scored it 1), ``not_scorable`` (a
        classical metric cannot score it), ``call_failed`` (the backend or scorer call failed), else None."""
        if self.extra.get("invalid"):
            return "invalid_answer"
        if self.score is not None:
            return None
        if self.extra.get("not_scorable") or (self.error or "").startswith("not scorable"):
            return "not_scorable"
        return "call_failed"


@runtime_checkable
class Scorer(Protocol):
    """Scores crops. ``higher_is_better`` and ``score_range`` describe the values."""

    name: str
    higher_is_better: bool
    score_range: tuple[float, float]

    def score_crops(self, crops: Sequence[Crop]) -> list[CropScore]:
        """One CropScore per crop, in order. Never raises for a single bad crop: it records the error."""
        ...
