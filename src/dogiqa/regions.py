"""Masks -> regions -> crops, with Dog-IQA's rules exactly (spec §1 step 3-4)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
from PIL import Image

DEFAULT_MIN_AREA = 1000
CropMode = Literal["bbox", "mask"]


@dataclass
class Region:
    """A region to score. ``box`` = (x0, y0, x1, y1), exclusive ends. ``weight`` is the aggregation weight:
    the mask's area, or for the complement H*W minus the kept areas (not its true pixel count)."""

    kind: str  # "mask" | "complement" | "whole"
    box: tuple[int, int, int, int]
    weight: float
    pixels: int
    mask: np.ndarray | None = None


def mask_box(mask: np.ndarray) -> tuple[int, int, int, int]:
    """Bounding box (x0, y0, x1, y1) of a boolean mask's pixels; the whole frame when the mask is empty."""
    rows = np.flatnonzero(mask.any(axis=1))
    cols = np.flatnonzero(mask.any(axis=0))
    if rows.size == 0:
        return 0, 0, mask.shape[1], mask.shape[0]
    return int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1


def regions_from_masks(
    masks: Sequence[np.ndarray],
    height: int,
    width: int,
    min_area: int = DEFAULT_MIN_AREA,
    areas: Sequence[int] | None = None,
) -> list[Region]:
    """Dog-IQA's regions: masks with area >= ``min_area`` in the given order, then the complement region
    (NOT of their union) when ``H*W - sum(kept areas) >= min_area``; with no mask kept, the whole image."""
    kept: list[Region] = []
    union = np.zeros((height, width), dtype=bool)
    for i, mask in enumerate(masks):
        mask = np.asarray(mask, dtype=bool)
        if mask.shape != (height, width):
            raise ValueError(f"mask {i} has shape {mask.shape}, expected {(height, width)}")
        area = int(areas[i]) if areas is not None else int(mask.sum())
        if area < min_area:
            continue
        kept.append(Region("mask", mask_box(mask), float(area), int(mask.sum()), mask))
        union |= mask
    if not kept:
        whole = np.ones((height, width), dtype=bool)
        return [Region("whole", (0, 0, width, height), float(height * width), height * width, whole)]
    rest = height * width - sum(r.weight for r in kept)
    if rest >= min_area:
        comp = ~union
        kept.append(Region("complement", mask_box(comp), float(rest), int(comp.sum()), comp))
    return kept


def crop_region(image: Image.Image, region: Region, mode: CropMode = "bbox") -> Image.Image:
    """The region's bounding box cut from the original pixels; ``mask`` mode blacks out pixels outside the mask
    first (the paper's "mask" ablation)."""
    x0, y0, x1, y1 = region.box
    if mode == "bbox" or region.mask is None:
        return image.crop((x0, y0, x1, y1))
    if mode != "mask":
        raise ValueError(f"crop mode must be 'bbox' or 'mask', not {mode!r}")
    arr = np.asarray(image.convert("RGB"))[y0:y1, x0:x1].copy()
    arr[~region.mask[y0:y1, x0:x1]] = 0
    return Image.fromarray(arr)
