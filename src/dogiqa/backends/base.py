"""The Backend seam: a batch of (image, prompt) in, per item the answer token's log-probabilities and text out.

A backend knows nothing about regions, readouts or aggregation.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from PIL import Image


@dataclass(frozen=True)
class Prompt:
    """A single-image user turn: ``before_image + <image> + after_image``.

    ``system`` is the chat system turn (None: the model's default template; "" an empty system turn).
    ``answer_prefix`` is text that starts the assistant turn (Q-Align's "The quality of the image is").
    """

    before_image: str
    after_image: str
    system: str | None = None
    answer_prefix: str = ""

    @property
    def text(self) -> str:
        """The prompt with a generic ``<image>`` marker, for display and cache keys."""
        return self.before_image + "<image>" + self.after_image + "|" + (self.system or "") + "|" + self.answer_prefix


@dataclass
class RawOutput:
    """What the model said for one (image, prompt).

    ``text``: the greedy next token, decoded (the paper's one-token generation), when asked for.
    ``logprobs``: candidate string -> log-probability of that single token at the answer position
    (log-softmax over the full vocabulary). ``error``: why this item has no output.
    """

    text: str | None = None
    logprobs: dict[str, float] | None = None
    error: str | None = None
    meta: dict = field(default_factory=dict)


class BackendError(RuntimeError):
    """A backend cannot serve a request (bad model folder, candidate not a single token, server refusal)."""


@runtime_checkable
class Backend(Protocol):
    """Scores batches of (image, prompt). ``model_id`` identifies model + revision (cache keys)."""

    model_id: str

    def check_candidates(self, candidates: Sequence[str]) -> None:
        """Raise BackendError when a candidate is not exactly one token of this model's vocabulary."""
        ...

    def run(
        self,
        images: Sequence[Image.Image],
        prompt: Prompt,
        candidates: Sequence[str],
        want_text: bool = True,
    ) -> list[RawOutput]:
        """One next-token step per image with the same prompt; one RawOutput per image, in order."""
        ...
