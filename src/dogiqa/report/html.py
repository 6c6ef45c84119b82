"""A run's report, written as a folder: one picture per image (PNG, the quality map by default) and one HTML
page, ``index.html``, with the run's configuration, counts, a score histogram and a sortable, filterable table
whose quality-map thumbnails are embedded (the page shows them alone; click one for the PNG beside it)."""

from __future__ import annotations

import base64
import io
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from PIL import Image

from dogiqa.atomic import atomic_save_image, atomic_write_text
from dogiqa.io import DEFAULT_MAX_FILE_BYTES, DEFAULT_MAX_PIXELS, ImageLoadError, load_image
from dogiqa.report.page import Row, build_page, row_of, safe_png_name, summarize_config
from dogiqa.report.quality_map import DEFAULT_CMAP, STYLES, ScoreScale, render, render_quality_map, score_scale
from dogiqa.results import ImageResult, display_text

THUMB_SIZE = 240
PAGE_NAME = "index.html"
_safe_name = safe_png_name  # the old private name


def _thumbnail_uri(image: Image.Image) -> str:
    thumb = image.copy()
    thumb.thumbnail((THUMB_SIZE, THUMB_SIZE))
    buf = io.BytesIO()
    thumb.save(buf, format="JPEG", quality=85)  # JPEG keeps a page of thousands of images small
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _load(source: Image.Image | str | Path, max_pixels: int | None, max_file_bytes: int | None) -> Image.Image:
    if isinstance(source, Image.Image):
        return source.convert("RGB")
    return load_image(source, max_pixels, max_file_bytes)  # the same caps as the run


class ReportWriter:
    """Streaming report: ``add`` writes an image's picture at once and keeps only its table row (so a run of
    thousands of images never holds their masks); ``close`` writes the HTML page.

    ``style``: ``quality`` (regions coloured by score on ``cmap``, with a colour bar) or ``regions`` (the
    paper's Figure 5: regions tinted by identity). ``config``: extra header entries (e.g. ``{"preset": ...}``);
    the rest of the header comes from the records' own ``config``. ``max_pixels``/``max_file_bytes``: the
    run's caps, for images the report must re-open.
    """

    def __init__(
        self,
        out_dir: str | Path,
        title: str = "dogiqa report",
        max_pixels: int | None = DEFAULT_MAX_PIXELS,
        max_file_bytes: int | None = DEFAULT_MAX_FILE_BYTES,
        *,
        style: str = "quality",
        cmap: str = DEFAULT_CMAP,
        config: Mapping[str, Any] | None = None,
    ):
        if style not in STYLES:
            raise ValueError(f"unknown report style {style!r}; choose one of {', '.join(STYLES)}")
        self.max_pixels, self.max_file_bytes = max_pixels, max_file_bytes
        self.out = Path(out_dir)
        self.out.mkdir(parents=True, exist_ok=True)
        self.title, self.style, self.cmap = title, style, cmap
        self.extra_config = dict(config or {})
        self.rows: list[Row] = []
        self.configs: list[dict[str, Any]] = []
        self.scale: ScoreScale | None = None

    def add(self, result: ImageResult, source: Image.Image | str | Path | None = None) -> Path | None:
        """Picture of ``result`` drawn on ``source`` (default: the run's decoded image, else ``result.path``);
        returns the PNG's path, or None when the image could not be loaded or drawn (the row then says why)."""
        index = len(self.rows)
        png = thumb = None
        error = result.error
        if result.config and result.config not in self.configs:
            self.configs.append(dict(result.config))
        source = source if source is not None else result.image  # the run's decoded image: no second decode
        try:
            if result.error and not result.regions and source is None:  # failed before scoring: nothing to draw
                raise ImageLoadError(result.path, "not decoded by the run")
            image = _load(result.path if source is None else source, self.max_pixels, self.max_file_bytes)
            scale = self._scale(result)
            picture = render(image, result, self.style, cmap=self.cmap, scale=scale)
            png = safe_png_name(index, result.path)
            atomic_save_image(picture, self.out / png, format="PNG")
            small = render_quality_map(image, result, cmap=self.cmap, scale=scale, labels=False, colorbar=False)
            thumb = _thumbnail_uri(small if self.style == "quality" else picture)
        except (ImageLoadError, OSError, ValueError) as exc:
            png = None
            if not result.error:  # a failed image's own error already says why: one line, not two
                error = f"report: {exc}"
        finally:
            result.image = None  # never hold every image
        self.rows.append(row_of(index, result, png, thumb, error))
        return self.out / png if png else None

    def _scale(self, result: ImageResult) -> ScoreScale:
        """One colour scale for the whole page: fixed by the first drawn record's configuration."""
        if self.scale is None:
            self.scale = score_scale(result.config, [r.score for r in result.regions if r.score is not None])
        return self.scale

    def close(self) -> Path:
        page = self.out / PAGE_NAME
        config = summarize_config(self.configs, self.extra_config)
        text = build_page(self.title, self.rows, config, self.scale, self.cmap)
        atomic_write_text(page, display_text(text))  # names that are not UTF-8
        return page


def write_report(
    results: Sequence[ImageResult],
    images_or_paths: Sequence[Image.Image | str | Path],
    out_dir: str | Path,
    title: str = "dogiqa report",
    style: str = "quality",
) -> Path:
    """Write ``out_dir/NNNN_<name>.png`` pictures and ``out_dir/index.html``; returns the page's path.

    ``images_or_paths[i]`` is the image of ``results[i]`` (a PIL image or a file). An image that cannot be
    loaded or drawn gets a table row with the error instead of a picture; the report is still written."""
    if len(results) != len(images_or_paths):
        raise ValueError(f"{len(results)} results but {len(images_or_paths)} images")
    writer = ReportWriter(out_dir, title, style=style)
    for result, source in zip(results, images_or_paths, strict=True):
        writer.add(result, source)
    return writer.close()
