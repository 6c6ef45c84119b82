"""The Segmenter seam: image -> boolean masks (full resolution), in the segmenter's own order."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np
from PIL import Image


@runtime_checkable
class Segmenter(Protocol):
    name: str

    def segment(self, image: Image.Image) -> list[np.ndarray]:
        """Boolean HxW masks at the image's full resolution. May be empty."""
        ...
