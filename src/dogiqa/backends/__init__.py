"""Backends: Hugging Face VLMs (generic), native mPLUG-Owl3, OpenAI-compatible servers."""

from __future__ import annotations

from typing import Any

from dogiqa.backends.base import Backend, BackendError, Prompt, RawOutput
from dogiqa.config import detect_backend  # decided without loading anything: the configuration checks it too
from dogiqa.registry import BACKENDS

__all__ = ["Backend", "BackendError", "Prompt", "RawOutput", "load_backend", "detect_backend"]


def load_backend(model: str, backend: str = "auto", **kwargs: Any) -> Backend:
    """Build a backend by name; ``auto`` picks the native mPLUG-Owl3 one for its checkpoints."""
    name = detect_backend(model, backend)
    return BACKENDS.build_accepting(name, model=model, **kwargs)
