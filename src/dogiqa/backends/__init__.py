"""Backends: Hugging Face VLMs (generic), native mPLUG-Owl3, OpenAI-compatible servers."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from dogiqa.backends.base import Backend, BackendError, Prompt, RawOutput
from dogiqa.registry import BACKENDS

__all__ = ["Backend", "BackendError", "Prompt", "RawOutput", "load_backend", "detect_backend"]


def detect_backend(model: str) -> str:
    """``mplug_owl3`` for mPLUG-Owl3 checkpoints (by folder config or hub id), else ``transformers``."""
    config = Path(model) / "config.json"
    if config.is_file():
        try:
            model_type = json.loads(config.read_text()).get("model_type", "")
        except (OSError, ValueError):
            model_type = ""
        return "mplug_owl3" if model_type == "mplugowl3" else "transformers"
    return "mplug_owl3" if "mplug-owl3" in model.lower() else "transformers"


def load_backend(model: str, backend: str = "auto", **kwargs: Any) -> Backend:
    """Build a backend by name; ``auto`` picks the native mPLUG-Owl3 one for its checkpoints."""
    name = detect_backend(model) if backend == "auto" else backend
    return BACKENDS.build_accepting(name, model=model, **kwargs)
