"""Segmenters: image -> masks. ``none``, ``felzenszwalb``, ``slic``, ``sam2`` and ``auto``."""

from __future__ import annotations

import logging
from typing import Any

from dogiqa.segmenters.base import Segmenter

log = logging.getLogger(__name__)


def auto_segmenter(**sam2_options: Any) -> Segmenter:
    """SAM2 (the paper's segmenter) when its weights can be loaded; otherwise Felzenszwalb, saying so."""
    from dogiqa.segmenters.classical import FelzenszwalbSegmenter

    try:
        from dogiqa.segmenters.sam2 import Sam2Segmenter

        return Sam2Segmenter(**sam2_options)
    except Exception as exc:  # noqa: BLE001 - any load failure falls back, visibly
        log.warning(
            "SAM2 unavailable (%s); using the Felzenszwalb segmenter instead. "
            "Pass --sam2-model DIR for SAM2 from a local folder.",
            exc,
        )
        seg = FelzenszwalbSegmenter()
        seg.name = "felzenszwalb (sam2 unavailable)"
        return seg


__all__ = ["Segmenter", "auto_segmenter"]
