"""dogiqa: training-free image quality assessment with multimodal LLMs (Dog-IQA and beyond)."""

from __future__ import annotations

from typing import TYPE_CHECKING

__version__ = "0.1.0"

if TYPE_CHECKING:
    from dogiqa.api import DogIQA


def __getattr__(name: str):  # lazy: `import dogiqa` stays light
    if name == "DogIQA":
        from dogiqa.api import DogIQA

        return DogIQA
    raise AttributeError(name)


__all__ = ["DogIQA", "__version__"]
