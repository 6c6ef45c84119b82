"""Quality map: every region filled with the colour of its score on a perceptually uniform colour map, with a
colour bar, so the bad parts of an image stand out at a glance (worst = the map's dark end).

The paper's Figure-5 style (regions tinted by identity) stays available as ``style="regions"``
(:func:`dogiqa.report.overlay.render_overlay`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from dogiqa.report.overlay import _corner_panel, _label, _outline, _region_mask, _sizes
from dogiqa.results import ImageResult

STYLES = ("quality", "regions")
DEFAULT_CMAP = "viridis"
FILL_ALPHA = 0.6
NO_SCORE_GREY = (128, 128, 128)


@dataclass(frozen=True)
class ScoreScale:
    """The value range of a scorer's region scores and its direction (what "good" is)."""

    lo: float
    hi: float
    higher_is_better: bool = True
    label: str = "score"

    def quality(self, value: float) -> float:
        """0 (worst) .. 1 (best) for ``value``, clipped to the range."""
        t = (value - self.lo) / (self.hi - self.lo) if self.hi > self.lo else 0.5
        t = min(max(t, 0.0), 1.0)
        return t if self.higher_is_better else 1.0 - t


def score_scale(config: Mapping[str, Any] | None, values: Sequence[float] = ()) -> ScoreScale:
    """The scale of region scores for a record's ``config`` (scorer, readout, levels).

    MLLM readouts: ``int``/``expected`` 1..levels, ``qalign`` 1..5, ``qbench`` 0..1; classical and CLIP scorers
    their declared ``score_range`` (an open end, as NIQE's, becomes the largest of ``values``).
    """
    config = config or {}
    scorer = config.get("scorer") or "mllm"
    if scorer == "mllm":
        readout = config.get("readout") or "expected"
        if readout == "qbench":
            return ScoreScale(0.0, 1.0, True, "P(good)")
        if readout == "qalign":
            return ScoreScale(1.0, 5.0, True, "level")
        return ScoreScale(1.0, float(config.get("levels") or 7), True, "level")
    from dogiqa.registry import SCORERS

    try:
        cls = SCORERS.resolve(scorer)
        lo, hi = (float(v) for v in cls.score_range)
        better = bool(cls.higher_is_better)
    except (KeyError, ValueError, AttributeError, ImportError):
        lo, hi, better = math.inf, -math.inf, True
    finite = [v for v in values if v is not None and math.isfinite(v)]
    if not math.isfinite(lo):
        lo = min(finite, default=0.0)
    if not math.isfinite(hi):
        hi = max(finite, default=lo + 1.0)
    return ScoreScale(lo, hi if hi > lo else lo + 1.0, better, scorer)


def colour_of(scale: ScoreScale, value: float | None, cmap: str = DEFAULT_CMAP) -> tuple[int, int, int]:
    """RGB of a score on the colour map (grey when there is no score)."""
    if value is None or not math.isfinite(value):
        return NO_SCORE_GREY
    r, g, b, _ = _cmap(cmap)(scale.quality(value))
    return int(round(r * 255)), int(round(g * 255)), int(round(b * 255))


def _cmap(name: str):
    from matplotlib import colormaps

    return colormaps[name]


def _fill(arr: np.ndarray, where: np.ndarray, colour: tuple[int, int, int], alpha: float) -> None:
    pixels = arr[where].astype(np.float32)
    arr[where] = (pixels * (1 - alpha) + np.array(colour, np.float32) * alpha).astype(np.uint8)


def _region_areas(result: ImageResult, masks, height: int, width: int) -> list[tuple[Any, np.ndarray]]:
    """(region, pixel mask) in painting order: the complement / whole image first, then the masks."""
    covered = np.zeros((height, width), dtype=bool)
    shapes = []
    for i, region in enumerate(result.regions):
        if region.kind == "mask":
            mask = _region_mask(region, i, masks, height, width)
            covered |= mask
            shapes.append((region, mask))
    rest = [(r, np.ones((height, width), dtype=bool)) for r in result.regions if r.kind != "mask"]
    for region, mask in rest:
        if region.kind == "complement":
            mask &= ~covered
    return rest + shapes


def render_quality_map(
    image: Image.Image,
    result: ImageResult,
    masks: list[np.ndarray] | None = None,
    *,
    cmap: str = DEFAULT_CMAP,
    scale: ScoreScale | None = None,
    labels: bool = True,
    colorbar: bool = True,
    alpha: float = FILL_ALPHA,
) -> Image.Image:
    """``image`` with each region filled by the colour of its score (``cmap``: a perceptually uniform matplotlib
    map; the worst score takes its dark end), outlined, labelled with its score (``labels``), and a colour bar
    on the right (``colorbar``). Regions without a score (not scorable, invalid answer) are grey."""
    base = image.convert("RGB")
    width, height = base.size
    masks = masks if masks is not None else result.masks
    scale = scale or score_scale(result.config, [r.score for r in result.regions if r.score is not None])
    arr = np.array(base)
    font_size, line = _sizes(width, height)
    areas = _region_areas(result, masks, height, width)
    for region, mask in areas:
        colour = colour_of(scale, region.score, cmap)
        _fill(arr, mask, colour, alpha)
        if region.kind == "mask":
            arr[_outline(mask, max(line, 1))] = (255, 255, 255)
    out = Image.fromarray(arr)
    if labels:
        _draw_labels(out, result, areas, scale, cmap, (font_size, line))
    if colorbar:
        out = _with_colorbar(out, scale, cmap, font_size)
    return out


def _draw_labels(out: Image.Image, result: ImageResult, areas, scale: ScoreScale, cmap: str, sizes) -> None:
    """Each mask region's score at its box corner and the final / global / local panel (Figure 5's)."""
    font_size, line = sizes
    draw = ImageDraw.Draw(out)
    font = ImageFont.load_default(size=font_size)
    taken: list[tuple[int, int, int, int]] = []
    for region, mask in areas:
        if region.kind != "mask" or not mask.any():
            continue
        text = "n/a" if region.score is None else f"{region.score:.2f}"
        x0, y0 = int(region.box[0]), int(region.box[1])
        _label(draw, (x0 + line + 2, y0 + line + 2), text, font, colour_of(scale, region.score, cmap), taken=taken)
    _corner_panel(draw, result, font)


def colorbar_image(
    scale: ScoreScale, height: int, cmap: str = DEFAULT_CMAP, font_size: int = 14, width: int | None = None
) -> Image.Image:
    """A vertical colour bar (best at the top) with the range's ends and middle labelled, on white."""
    font = ImageFont.load_default(size=font_size)
    bar_w = max(12, font_size)
    pad = max(4, font_size // 2)
    ticks = [scale.hi, (scale.lo + scale.hi) / 2, scale.lo]
    texts = [f"{v:.3g}" for v in ticks]
    probe = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    text_w = max(probe.textbbox((0, 0), t, font=font)[2] for t in texts + ["worse", "better"])
    width = width or bar_w + 3 * pad + text_w
    img = Image.new("RGB", (width, height), (255, 255, 255))
    top, bottom = 2 * pad + font_size + font_size // 2, height - 2 * pad - font_size - font_size // 2
    span = max(bottom - top, 2)
    ramp = np.linspace(1.0, 0.0, span)  # quality: best at the top
    rgb = (_cmap(cmap)(ramp)[:, :3] * 255).astype(np.uint8)
    img.paste(Image.fromarray(np.repeat(rgb[:, None, :], bar_w, axis=1)), (pad, top))
    draw = ImageDraw.Draw(img)
    draw.rectangle((pad, top, pad + bar_w - 1, top + span - 1), outline=(0, 0, 0))
    # values at the positions their quality puts them (lower-is-better scales put lo at the top)
    for value, text in zip(ticks, texts, strict=True):
        y = top + int(round((1.0 - scale.quality(value)) * (span - 1)))
        draw.line((pad + bar_w, y, pad + bar_w + pad // 2, y), fill=(0, 0, 0))
        draw.text((pad + bar_w + pad, y - font_size // 2), text, font=font, fill=(0, 0, 0))
    draw.text((pad, pad // 2), "better", font=font, fill=(0, 0, 0))
    draw.text((pad, bottom + pad // 2), "worse", font=font, fill=(0, 0, 0))
    return img


def _with_colorbar(out: Image.Image, scale: ScoreScale, cmap: str, font_size: int) -> Image.Image:
    bar = colorbar_image(scale, out.size[1], cmap, font_size)
    both = Image.new("RGB", (out.size[0] + bar.size[0], out.size[1]), (255, 255, 255))
    both.paste(out, (0, 0))
    both.paste(bar, (out.size[0], 0))
    return both


def render(image: Image.Image, result: ImageResult, style: str = "quality", **kwargs: Any) -> Image.Image:
    """The report picture of ``result`` in ``style``: ``quality`` (the quality map) or ``regions`` (Figure 5)."""
    if style == "quality":
        return render_quality_map(image, result, **kwargs)
    if style == "regions":
        from dogiqa.report.overlay import render_overlay

        return render_overlay(image, result, kwargs.get("masks"))
    raise ValueError(f"unknown overlay style {style!r}; choose one of {', '.join(STYLES)}")
