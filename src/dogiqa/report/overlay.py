"""Region overlay in the spirit of the paper's Figure 5: each region tinted and outlined with its score,
the global and final score in a corner."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont
from scipy import ndimage

from dogiqa.results import ImageResult, RegionRecord

# Distinct, colour-blind-friendly tints (Okabe-Ito plus a few), cycled over regions.
PALETTE = [
    (230, 159, 0),
    (86, 180, 233),
    (0, 158, 115),
    (240, 228, 66),
    (0, 114, 178),
    (213, 94, 0),
    (204, 121, 167),
    (120, 200, 80),
    (180, 80, 220),
    (255, 120, 120),
]
TINT_ALPHA = 0.4


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def _sizes(width: int, height: int) -> tuple[int, int]:
    """Font size and line width that scale with the image."""
    short = min(width, height)
    return max(12, short // 30), max(1, short // 250)


def _tint(arr: np.ndarray, where: np.ndarray, colour: tuple[int, int, int]) -> None:
    """Blend ``colour`` into ``arr`` (H x W x 3 uint8) where ``where`` is True, in place."""
    pixels = arr[where].astype(np.float32)
    arr[where] = (pixels * (1 - TINT_ALPHA) + np.array(colour, np.float32) * TINT_ALPHA).astype(np.uint8)


def _outline(mask: np.ndarray, width: int) -> np.ndarray:
    """The mask's boundary pixels, thickened to ``width``."""
    edge = mask & ~ndimage.binary_erosion(mask, border_value=0)
    if width > 1:
        edge = ndimage.binary_dilation(edge, iterations=width // 2) & mask
    return edge


def _box_mask(box: Sequence[int], height: int, width: int) -> np.ndarray:
    x0, y0, x1, y1 = (int(v) for v in box)
    m = np.zeros((height, width), dtype=bool)
    m[max(0, y0) : min(height, y1), max(0, x0) : min(width, x1)] = True
    return m


def _label(
    draw: ImageDraw.ImageDraw,
    xy: tuple[int, int],
    text: str,
    font,
    colour,
    margin: int = 0,
    taken: list[tuple[int, int, int, int]] | None = None,
) -> None:
    """Text on a dark box, shifted left/up as needed to stay ``margin`` pixels inside the image and moved
    down past the boxes in ``taken`` (labels already drawn), which it then joins."""
    left, top, right, bottom = draw.textbbox(xy, text, font=font)
    pad = max(2, font.size // 5)
    x = xy[0] - max(0, right + pad + margin - draw.im.size[0])
    y = xy[1] - max(0, bottom + pad + margin - draw.im.size[1])
    for _ in range(len(taken or [])):
        rect = _padded(draw.textbbox((x, y), text, font=font), pad)
        hit = next((t for t in taken or [] if _overlaps(rect, t)), None)
        if hit is None:
            break
        y = hit[3] + pad + 1
    rect = _padded(draw.textbbox((x, y), text, font=font), pad)
    draw.rectangle(rect, fill=(0, 0, 0), outline=colour)
    draw.text((x, y), text, font=font, fill=(255, 255, 255))
    if taken is not None:
        taken.append(rect)


def _padded(box, pad: int) -> tuple[int, int, int, int]:
    return int(box[0] - pad), int(box[1] - pad), int(box[2] + pad), int(box[3] + pad)


def _overlaps(a, b) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def _region_mask(region: RegionRecord, i: int, masks, height: int, width: int) -> np.ndarray:
    if masks is not None and i < len(masks) and masks[i] is not None:
        mask = np.asarray(masks[i], dtype=bool)
        if mask.shape == (height, width):
            return mask
    return _box_mask(region.box, height, width)


def render_overlay(image: Image.Image, result: ImageResult, masks: list[np.ndarray] | None = None) -> Image.Image:
    """An RGB copy of ``image`` with the result's mask regions tinted (true mask shape when ``masks`` or
    ``result.masks`` gives it, else the box), outlined and labelled with their scores, and a bottom-right
    panel with the final, global and local score (plus the complement / whole-image region's score)."""
    base = image.convert("RGB")
    width, height = base.size
    masks = masks if masks is not None else result.masks
    arr = np.array(base)
    font_size, line = _sizes(width, height)
    font = ImageFont.load_default(size=font_size)
    shapes = []
    for i, region in enumerate(result.regions):
        if region.kind != "mask":
            continue  # the complement / whole image would cover everything: reported in the panel
        colour = PALETTE[len(shapes) % len(PALETTE)]
        mask = _region_mask(region, i, masks, height, width)
        _tint(arr, mask, colour)
        arr[_outline(mask, line)] = colour
        shapes.append((region, colour))
    out = Image.fromarray(arr)
    draw = ImageDraw.Draw(out)
    taken: list[tuple[int, int, int, int]] = []
    for region, colour in shapes:
        x0, y0 = int(region.box[0]), int(region.box[1])
        _label(draw, (x0 + line + 2, y0 + line + 2), f"{_fmt(region.score)}", font, colour, taken=taken)
    _corner_panel(draw, result, font)
    return out


def _corner_panel(draw: ImageDraw.ImageDraw, result: ImageResult, font) -> None:
    lines = [f"final {_fmt(result.score)}", f"global {_fmt(result.global_score)}"]
    if result.local_score is not None:
        lines.append(f"local {_fmt(result.local_score)}")
    for region in result.regions:
        if region.kind != "mask":
            lines.append(f"{region.kind} {_fmt(region.score)}")
    if result.error:
        lines.append("error")
    width, height = draw.im.size
    _label(draw, (width - 6, height - 6), "\n".join(lines), font, (255, 255, 255), margin=6)
