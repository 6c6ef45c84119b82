"""mPLUG-Owl3 (the Dog-IQA paper's model), native on transformers 5: no remote code, no torchvision.

``is_mplug_owl3(model)`` tells whether a hub id or local folder names an mPLUG-Owl3 checkpoint, so that a
``load_backend`` can pick :class:`dogiqa.backends.mplug_owl3.backend.MplugOwl3Backend` automatically.
"""

from __future__ import annotations

import json
from pathlib import Path

MODEL_TYPE = "mplugowl3"


def is_mplug_owl3(model: str) -> bool:
    """True for a folder whose config.json has model_type "mplugowl3", or a hub id with "mplug-owl3"."""
    path = Path(model).expanduser()
    if path.is_dir():
        config = path / "config.json"
        try:
            return json.loads(config.read_text(encoding="utf-8")).get("model_type") == MODEL_TYPE
        except (OSError, ValueError, AttributeError):
            return False
    return "mplug-owl3" in str(model).lower()


__all__ = ["MODEL_TYPE", "is_mplug_owl3"]
