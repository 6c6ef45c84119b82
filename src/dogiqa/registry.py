"""Name -> implementation registries with lazy imports, so optional parts load only when used."""

from __future__ import annotations

import importlib
import inspect
from typing import Any


class Registry:
    """Maps a name to ``"module:attribute"``; ``build(name, **kwargs)`` imports and calls it."""

    def __init__(self, kind: str, entries: dict[str, str]):
        self.kind = kind
        self._entries = dict(entries)

    def names(self) -> list[str]:
        return sorted(self._entries)

    def register(self, name: str, target: str) -> None:
        self._entries[name] = target

    def resolve(self, name: str) -> Any:
        if name not in self._entries:
            raise ValueError(f"unknown {self.kind} {name!r}; choose one of: {', '.join(self.names())}")
        module, _, attr = self._entries[name].partition(":")
        return getattr(importlib.import_module(module), attr)

    def build(self, name: str, **kwargs: Any) -> Any:
        return self.resolve(name)(**kwargs)

    def build_accepting(self, name: str, **kwargs: Any) -> Any:
        """Like ``build``, passing only the non-None options the implementation accepts."""
        target = self.resolve(name)
        params = inspect.signature(target).parameters
        takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
        return target(**{k: v for k, v in kwargs.items() if v is not None and (takes_any or k in params)})


SEGMENTERS = Registry(
    "segmenter",
    {
        "none": "dogiqa.segmenters.classical:NoSegmenter",
        "felzenszwalb": "dogiqa.segmenters.classical:FelzenszwalbSegmenter",
        "slic": "dogiqa.segmenters.classical:SlicSegmenter",
        "sam2": "dogiqa.segmenters.sam2:Sam2Segmenter",
        "auto": "dogiqa.segmenters:auto_segmenter",
    },
)

BACKENDS = Registry(
    "backend",
    {
        "transformers": "dogiqa.backends.transformers_vlm:TransformersVLM",
        "mplug_owl3": "dogiqa.backends.mplug_owl3.backend:MplugOwl3Backend",
        "openai": "dogiqa.backends.openai_server:OpenAIServerBackend",
    },
)

SCORERS = Registry(
    "scorer",
    {
        "mllm": "dogiqa.scorers.mllm:MLLMScorer",
        "niqe": "dogiqa.scorers.niqe:NIQEScorer",
        "brisque": "dogiqa.scorers.brisque:BRISQUEScorer",
        "piqe": "dogiqa.scorers.piqe:PIQEScorer",
        "clipiqa": "dogiqa.scorers.clipiqa:CLIPIQAScorer",
    },
)
