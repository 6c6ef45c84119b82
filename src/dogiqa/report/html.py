"""A run's report: one overlay PNG per image and one self-contained HTML page (thumbnails embedded, a table
sortable by score, no external assets)."""

from __future__ import annotations

import base64
import html
import io
import re
from collections.abc import Sequence
from pathlib import Path

from PIL import Image

from dogiqa.atomic import atomic_save_image, atomic_write_text
from dogiqa.io import DEFAULT_MAX_FILE_BYTES, DEFAULT_MAX_PIXELS, ImageLoadError, load_image
from dogiqa.report.overlay import render_overlay
from dogiqa.results import ImageResult, display_text

THUMB_SIZE = 256
PAGE_NAME = "index.html"

_SCRIPT = """
function sortBy(col, numeric) {
  const body = document.querySelector('#results tbody');
  const th = document.querySelectorAll('#results th')[col];
  const dir = th.dataset.dir === 'desc' ? 'asc' : 'desc';
  document.querySelectorAll('#results th').forEach(h => delete h.dataset.dir);
  th.dataset.dir = dir;
  const key = r => r.children[col].dataset.v;
  const rows = Array.from(body.rows).sort((a, b) => {
    let x = key(a), y = key(b);
    if (numeric) { x = x === '' ? -Infinity : +x; y = y === '' ? -Infinity : +y; }
    const c = x < y ? -1 : x > y ? 1 : 0;
    return dir === 'asc' ? c : -c;
  });
  rows.forEach(r => body.appendChild(r));
}
"""

_STYLE = """
body { font-family: sans-serif; margin: 1.5em; }
table { border-collapse: collapse; }
th, td { border: 1px solid #ccc; padding: 4px 8px; text-align: left; vertical-align: middle; }
th { cursor: pointer; background: #f0f0f0; }
th[data-dir=asc]::after { content: " \\25B2"; } th[data-dir=desc]::after { content: " \\25BC"; }
td.err { color: #b00; }
img { display: block; }
"""

# (title, numeric) of the table's columns
COLUMNS = [
    ("#", True),
    ("image", False),
    ("file", False),
    ("score", True),
    ("global", True),
    ("local", True),
    ("regions", True),
    ("error", False),
]


def _safe_name(index: int, path: str) -> str:
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", Path(path).stem or "image")[:80]
    return f"{index:04d}_{stem}.png"


def _thumbnail_uri(image: Image.Image) -> str:
    thumb = image.copy()
    thumb.thumbnail((THUMB_SIZE, THUMB_SIZE))
    buf = io.BytesIO()
    thumb.save(buf, format="JPEG", quality=85)  # JPEG keeps a page of thousands of images small
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _cell(value: float | int | str | None, text: str | None = None, cls: str = "") -> str:
    v = "" if value is None else str(value)
    shown = text if text is not None else ("-" if value is None else html.escape(str(value)))
    attr = f' class="{cls}"' if cls else ""
    return f'<td data-v="{html.escape(v, quote=True)}"{attr}>{shown}</td>'


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def _row(index: int, result: ImageResult, png: str | None, thumb: str | None, error: str | None) -> str:
    img = (
        f'<a href="{html.escape(png, quote=True)}"><img src="{thumb}" alt="overlay {index}"></a>'
        if png and thumb
        else ""
    )
    cells = [
        _cell(index),
        _cell(None, img),
        _cell(result.path, html.escape(result.path)),
        _cell(result.score, _num(result.score)),
        _cell(result.global_score, _num(result.global_score)),
        _cell(result.local_score, _num(result.local_score)),
        _cell(len(result.regions)),
        _cell(error or "", html.escape(error or ""), "err" if error else ""),
    ]
    return "<tr>" + "".join(cells) + "</tr>"


def _load(source: Image.Image | str | Path, max_pixels: int | None, max_file_bytes: int | None) -> Image.Image:
    if isinstance(source, Image.Image):
        return source.convert("RGB")
    return load_image(source, max_pixels, max_file_bytes)  # the same caps as the run


class ReportWriter:
    """Streaming report: ``add`` writes an image's overlay PNG at once and keeps only its table row (so a
    run of thousands of images never holds their masks); ``close`` writes the HTML page."""

    def __init__(
        self,
        out_dir: str | Path,
        title: str = "dogiqa report",
        max_pixels: int | None = DEFAULT_MAX_PIXELS,
        max_file_bytes: int | None = DEFAULT_MAX_FILE_BYTES,
    ):
        self.max_pixels, self.max_file_bytes = max_pixels, max_file_bytes
        self.out = Path(out_dir)
        self.out.mkdir(parents=True, exist_ok=True)
        self.title = title
        self.rows: list[str] = []

    def add(self, result: ImageResult, source: Image.Image | str | Path | None = None) -> Path | None:
        """Overlay for ``result`` drawn on ``source`` (default: ``result.path``); returns the PNG's path, or
        None when the image could not be loaded or drawn (the row then shows why)."""
        index = len(self.rows)
        png = thumb = None
        error = result.error
        source = source if source is not None else result.image  # the run's decoded image: no second decode
        try:
            if source is None and result.error and result.width is None:  # the run refused or could not read it
                raise ImageLoadError(result.path, "not decoded by the run")
            image = _load(result.path if source is None else source, self.max_pixels, self.max_file_bytes)
            overlay = render_overlay(image, result)
            png = _safe_name(index, result.path)
            atomic_save_image(overlay, self.out / png, format="PNG")
            thumb = _thumbnail_uri(overlay)
        except (ImageLoadError, OSError, ValueError) as exc:
            png = None
            if not (result.error and result.width is None):  # a failed load already says why in the row
                error = f"report: {exc}" if not error else f"{error}; report: {exc}"
        finally:
            result.image = None  # never hold every image
        self.rows.append(_row(index, result, png, thumb, error))
        return self.out / png if png else None

    def close(self) -> Path:
        page = self.out / PAGE_NAME
        atomic_write_text(page, display_text(_page(self.title, self.rows)))  # names that are not UTF-8
        return page


def write_report(
    results: Sequence[ImageResult],
    images_or_paths: Sequence[Image.Image | str | Path],
    out_dir: str | Path,
    title: str = "dogiqa report",
) -> Path:
    """Write ``out_dir/NNNN_<name>.png`` overlays and ``out_dir/index.html``; returns the page's path.

    ``images_or_paths[i]`` is the image of ``results[i]`` (a PIL image or a file). An image that cannot be
    loaded or drawn gets a table row with the error instead of a PNG; the report is still written."""
    if len(results) != len(images_or_paths):
        raise ValueError(f"{len(results)} results but {len(images_or_paths)} images")
    writer = ReportWriter(out_dir, title)
    for result, source in zip(results, images_or_paths, strict=True):
        writer.add(result, source)
    return writer.close()


def _page(title: str, rows: list[str]) -> str:
    head = "".join(
        f'<th onclick="sortBy({i}, {str(num).lower()})">{html.escape(name)}</th>'
        for i, (name, num) in enumerate(COLUMNS)
    )
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{html.escape(title)}</title><style>{_STYLE}</style></head>\n<body>"
        f"<h1>{html.escape(title)}</h1><p>{len(rows)} images. Click a column title to sort.</p>\n"
        f'<table id="results"><thead><tr>{head}</tr></thead>\n<tbody>\n'
        + "\n".join(rows)
        + f"\n</tbody></table>\n<script>{_SCRIPT}</script>\n</body></html>\n"
    )
