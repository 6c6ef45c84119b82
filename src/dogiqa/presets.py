"""Named pipeline presets: configurations (data), the single source of truth for defaults.

Each preset is a partial configuration (the YAML/dump shape of :class:`dogiqa.config.PipelineConfig`) over
the built-in defaults, plus a one-line description; :func:`get_preset_config` validates it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from dogiqa.config import DEFAULT_MODEL, PAPER_MODEL, PAPER_SAM2, PipelineConfig, build_config
from dogiqa.errors import UsageError

__all__ = ["DEFAULT_MODEL", "PAPER_MODEL", "PAPER_SAM2", "PRESETS", "Preset", "get_preset_config", "list_presets"]


@dataclass(frozen=True)
class Preset:
    name: str
    description: str
    settings: dict[str, Any]  # partial nested configuration over the defaults

    @property
    def config(self) -> PipelineConfig:
        return build_config({**self.settings, "preset": self.name}, "yaml")


_PAPER: dict[str, Any] = {
    "model": {"id": PAPER_MODEL},
    "prompt": {"standard": "word", "levels": 7, "readout": "int", "paper_whitespace": True, "invalid_as_one": True},
    "segmentation": {"segmenter": "sam2"},  # SAM2's own defaults: the paper's checkpoint and generator
    "regions": {"crop_mode": "bbox", "min_area": 1000},
    "aggregation": {"method": "paper"},
    "runtime": {"dtype": "float16"},
}

_PRESETS = [
    Preset(
        "paper",
        "Dog-IQA as published: mPLUG-Owl3-7B, word standard K=7, one generated integer per crop (invalid "
        "answers score 1), SAM2 regions, the paper's aggregation",
        _PAPER,
    ),
    Preset(
        "paper-code",
        "as 'paper' with the aggregation of the authors' eval.py (S_local + 0.1 N + 0.5 s_g)",
        {**_PAPER, "aggregation": {"method": "code"}},
    ),
    Preset(
        "recommended",
        "our default: a current VLM, word standard K=7, expected level from the level-token probabilities, "
        "SAM2 regions (Felzenszwalb when SAM2 is unavailable, recorded), the paper's aggregation",
        {
            "model": {"id": DEFAULT_MODEL},
            "prompt": {"standard": "word", "levels": 7, "readout": "expected"},
            "segmentation": {"segmenter": "auto"},
            "aggregation": {"method": "paper"},
        },
    ),
    Preset(
        "global",
        "global score only (no segmentation): expected level, K=7; fastest",
        {
            "model": {"id": DEFAULT_MODEL},
            "prompt": {"standard": "word", "levels": 7, "readout": "expected"},
            "segmentation": {"segmenter": "none"},
            "aggregation": {"method": "global"},
        },
    ),
    Preset(
        "qalign",
        "Q-Align's prompt and closed-set softmax over five level words, global only",
        {
            "model": {"id": DEFAULT_MODEL},
            "prompt": {"readout": "qalign"},
            "segmentation": {"segmenter": "none"},
            "aggregation": {"method": "global"},
        },
    ),
]
PRESETS: dict[str, Preset] = {p.name: p for p in _PRESETS}


def list_presets() -> list[str]:
    return list(PRESETS)


def get_preset_config(name: str) -> PipelineConfig:
    """The configuration of a named preset."""
    if name not in PRESETS:
        raise UsageError(f"unknown preset {name!r}; choose one of: {', '.join(PRESETS)}", setting="--preset")
    return PRESETS[name].config
