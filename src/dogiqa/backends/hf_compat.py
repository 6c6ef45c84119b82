"""Small compatibility helpers for transformers processors (no torchvision needed).

Qwen2-VL / Qwen2.5-VL / Qwen3-VL processors declare a video-processor slot whose base class is a torchvision
dummy when torchvision is absent; loading or building them then fails. transformers derives a processor's
attributes from its ``__init__`` signature, so a subclass whose ``__init__`` has no ``video_processor``
parameter loads and runs image-only.
"""

from __future__ import annotations

import functools
import importlib
from typing import Any

# model_type -> (module, processor class) for processors that need the image-only subclass
VIDEO_SLOT_PROCESSORS: dict[str, tuple[str, str]] = {
    "qwen2_vl": ("transformers.models.qwen2_vl.processing_qwen2_vl", "Qwen2VLProcessor"),
    "qwen2_5_vl": ("transformers.models.qwen2_5_vl.processing_qwen2_5_vl", "Qwen2_5_VLProcessor"),
    "qwen3_vl": ("transformers.models.qwen3_vl.processing_qwen3_vl", "Qwen3VLProcessor"),
}


@functools.cache
def image_only_processor_class(model_type: str) -> type | None:
    """The image-only subclass of this model type's processor, or None when the stock one works."""
    if model_type not in VIDEO_SLOT_PROCESSORS:
        return None
    module, name = VIDEO_SLOT_PROCESSORS[model_type]
    base = getattr(importlib.import_module(module), name)

    def __init__(self: Any, image_processor: Any = None, tokenizer: Any = None, chat_template: Any = None, **kw: Any):
        base.__init__(self, image_processor=image_processor, tokenizer=tokenizer, chat_template=chat_template, **kw)

    # keep the real class name so processor_config.json keeps naming the real class
    return type(name, (base,), {"__init__": __init__, "__module__": __name__, "__qualname__": name})
