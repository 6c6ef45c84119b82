"""Named pipeline presets: data, the single source of truth for defaults (model, standard, readout, ...)."""

from __future__ import annotations

from typing import Any

DEFAULT_MODEL = "Qwen/Qwen2.5-VL-7B-Instruct"
PAPER_MODEL = "mPLUG/mPLUG-Owl3-7B-240728"
PAPER_SAM2 = "facebook/sam2-hiera-large"

_PAPER: dict[str, Any] = {
    "description": "Dog-IQA as published: mPLUG-Owl3-7B, word standard K=7, one generated integer per crop "
    "(invalid answers score 1), SAM2 regions, the paper's aggregation formula",
    "model": PAPER_MODEL,
    "standard": "word",
    "levels": 7,
    "readout": "int",
    "segmenter": "sam2",
    "segmenter_options": {"model": PAPER_SAM2, "preset": "paper", "small_regions": "skip"},
    "aggregation": "paper",
    "paper_whitespace": True,
    "invalid_as_one": True,
    "crop_mode": "bbox",
    "min_area": 1000,
    "dtype": "float16",
}

PRESETS: dict[str, dict[str, Any]] = {
    "paper": _PAPER,
    "paper-code": {
        **_PAPER,
        "description": "as 'paper' but with the aggregation of the authors' eval.py (S_local + 0.1 N + 0.5 s_g)",
        "aggregation": "code",
    },
    "recommended": {
        "description": "our default: a current VLM, word standard K=7, expected level from the level-token "
        "probabilities (one forward pass), SAM2 regions (Felzenszwalb when SAM2 weights are unavailable, "
        "recorded in each result), the paper's aggregation",
        "model": DEFAULT_MODEL,
        "standard": "word",
        "levels": 7,
        "readout": "expected",
        "segmenter": "auto",
        "segmenter_options": {"model": PAPER_SAM2, "preset": "paper", "small_regions": "skip"},
        "aggregation": "paper",
    },
    "global": {
        "description": "global score only (no segmentation): expected level, K=7; fastest",
        "model": DEFAULT_MODEL,
        "standard": "word",
        "levels": 7,
        "readout": "expected",
        "segmenter": "none",
        "aggregation": "global",
    },
    "qalign": {
        "description": "Q-Align's prompt and closed-set softmax over five level words, global only",
        "model": DEFAULT_MODEL,
        "readout": "qalign",
        "segmenter": "none",
        "aggregation": "global",
    },
}


def list_presets() -> list[str]:
    return list(PRESETS)


def get_preset(name: str) -> dict[str, Any]:
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}")
    return {k: (dict(v) if isinstance(v, dict) else v) for k, v in PRESETS[name].items() if k != "description"}
