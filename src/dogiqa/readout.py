"""Readouts: what the model said for a crop (text and/or level log-probabilities) -> a score.

- ``int``: the paper's: the greedy next token parsed as a level 1..K (invalid otherwise).
- ``expected``: softmax over the K level tokens' logits -> expected level, with entropy and variance.
- ``qalign``: Q-Align's prompt, closed-set softmax over excellent/good/fair/poor/bad, weights 5..1.
- ``qbench``: Q-Bench's softmax over good vs poor -> P(good) in [0, 1].
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from dogiqa.backends.base import Prompt, RawOutput
from dogiqa.scorers.base import CropScore
from dogiqa.standards import Call, Standard

QALIGN_WORDS = ["bad", "poor", "fair", "good", "excellent"]  # levels 1..5
QALIGN_QUESTION = "How would you rate the quality of this image?\n"
ANSWER_PREFIX = "The quality of the image is"
QBENCH_WORDS = ["poor", "good"]


def softmax_levels(logprobs: Sequence[float | None]) -> list[float]:
    """Renormalised probabilities over the level tokens; a level without a log-prob (None) gets 0."""
    present = [lp for lp in logprobs if lp is not None and math.isfinite(lp)]
    if not present:
        raise ValueError("no level token has a log-probability")
    top = max(present)
    exps = [0.0 if lp is None or not math.isfinite(lp) else math.exp(lp - top) for lp in logprobs]
    total = sum(exps)
    return [e / total for e in exps]


def distribution_stats(probs: Sequence[float], values: Sequence[float]) -> tuple[float, float, float]:
    """(mean, variance, entropy in nats) of a discrete distribution over ``values``."""
    mean = sum(p * v for p, v in zip(probs, values, strict=True))
    var = sum(p * (v - mean) ** 2 for p, v in zip(probs, values, strict=True))
    ent = -sum(p * math.log(p) for p in probs if p > 0)
    return mean, var, ent


def parse_level(text: str | None, levels: int) -> int | None:
    """The paper's parse: ``int(text)``; a level outside 1..K counts as invalid."""
    if text is None:
        return None
    try:
        value = int(text.strip())
    except ValueError:
        return None
    return value if 1 <= value <= levels else None


@dataclass(frozen=True)
class Readout:
    """How a crop's raw output becomes a score, and which prompt and tokens it needs."""

    name: str
    higher_is_better: bool = True

    def levels(self, standard: Standard) -> int:
        return {"qalign": 5, "qbench": 2}.get(self.name, standard.levels)

    def score_range(self, standard: Standard) -> tuple[float, float]:
        return (0.0, 1.0) if self.name == "qbench" else (1.0, float(self.levels(standard)))

    def candidate_variants(self, standard: Standard) -> list[list[str]]:
        """Candidate token strings, in level order, with fallbacks for tokenizers without a leading-space form."""
        if self.name in ("int", "expected"):
            return [standard.level_tokens]
        words = QALIGN_WORDS if self.name == "qalign" else QBENCH_WORDS
        return [[" " + w for w in words], words]

    def prompt(self, standard: Standard, call: Call, paper_whitespace: bool, spaced: bool = True) -> Prompt:
        if self.name in ("int", "expected"):
            return standard.prompt(call, paper_whitespace=paper_whitespace)
        prefix = ANSWER_PREFIX if spaced else ANSWER_PREFIX + " "
        if self.name == "qalign":
            return Prompt(QALIGN_QUESTION, "", answer_prefix=prefix)
        return Prompt("", "\nRate the quality of the image.", answer_prefix=prefix)

    def read(
        self, raw: RawOutput, standard: Standard, candidates: Sequence[str], invalid_as_one: bool = False
    ) -> CropScore:
        """Score one crop; ``candidates`` are the token strings asked for, in level order."""
        if raw.error is not None:
            return CropScore(score=None, raw=raw.text, error=raw.error)
        if self.name == "int":
            return self._read_int(raw, standard.levels, invalid_as_one)
        if not raw.logprobs:
            return CropScore(score=None, raw=raw.text, error="backend returned no log-probabilities")
        lps = [raw.logprobs.get(c) for c in candidates]
        try:
            probs = softmax_levels(lps)
        except ValueError as exc:  # no level token among the answer's log-probabilities: not a level
            return CropScore(score=None, raw=raw.text, error=str(exc), extra={"invalid": True})
        values = [0.0, 1.0] if self.name == "qbench" else [float(i) for i in range(1, len(probs) + 1)]
        mean, var, ent = distribution_stats(probs, values)
        return CropScore(score=mean, raw=raw.text, probs=probs, entropy=ent, variance=var)

    @staticmethod
    def _read_int(raw: RawOutput, levels: int, invalid_as_one: bool) -> CropScore:
        level = parse_level(raw.text, levels)
        if level is None:
            if invalid_as_one:  # the authors' fallback: any parse failure scores 1
                return CropScore(score=1.0, raw=raw.text, extra={"invalid": True})
            return CropScore(
                score=None,
                raw=raw.text,
                error=f"answer {raw.text!r} is not a level 1..{levels}",
                extra={"invalid": True},
            )
        return CropScore(score=float(level), raw=raw.text)


READOUTS = {
    "int": Readout("int"),
    "expected": Readout("expected"),
    "qalign": Readout("qalign"),
    "qbench": Readout("qbench"),
}


def get_readout(name: str) -> Readout:
    if name not in READOUTS:
        raise ValueError(f"unknown readout {name!r}; choose one of {', '.join(READOUTS)}")
    return READOUTS[name]
