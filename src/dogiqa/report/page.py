"""The report's HTML page: a header people read first (configuration, counts, score histogram, colour scale),
then a table of every image (quality-map thumbnail, scores, one error line) that sorts and filters in place.

The page embeds its thumbnails; the full-size pictures are the PNG files beside it (the report is a folder).
State lives in the URL fragment, so a view can be shared and tested: ``index.html#sort=score:asc&q=blur&
status=failed``. After the scripts ran, ``<body>`` carries ``data-ready``, ``data-images-ok`` (thumbnails
decoded), ``data-shown`` (rows passing the filter) and ``data-sorted``.
"""

from __future__ import annotations

import html
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dogiqa.report.quality_map import DEFAULT_CMAP, ScoreScale
from dogiqa.results import ImageResult

CONFIG_KEYS = ("model", "preset", "scorer", "segmenter", "readout", "aggregation", "standard", "levels", "crop_mode")

# (key, title, numeric) of the table's columns
COLUMNS = [
    ("index", "#", True),
    ("map", "quality map", False),
    ("file", "file", False),
    ("score", "score", True),
    ("global", "global", True),
    ("local", "local", True),
    ("regions", "regions", True),
    ("unscored", "regions without score", True),
    ("error", "error", False),
]


@dataclass
class Row:
    """One image of the page (everything the table and the header need; no pixels but the thumbnail)."""

    index: int
    path: str
    score: float | None
    global_score: float | None
    local_score: float | None
    regions: int
    invalid: int
    not_scorable: int
    failed_crops: int
    error: str | None
    png: str | None = None
    thumb: str | None = None

    @property
    def status(self) -> str:
        return "failed" if self.error and self.score is None else "scored"


def one_line_error(path: str, error: str | None) -> str | None:
    """The error as one line, without the file name the row already shows and without repeated parts."""
    if not error:
        return None
    text = " ".join(str(error).split())
    for prefix in (f"{path}: ", f"{Path(path).name}: "):
        while text.startswith(prefix):
            text = text[len(prefix) :]
    parts = list(dict.fromkeys(p.strip() for p in text.split("; ") if p.strip()))
    return "; ".join(parts) or None


def row_of(index: int, result: ImageResult, png: str | None, thumb: str | None, error: str | None) -> Row:
    return Row(
        index=index,
        path=result.path,
        score=result.score,
        global_score=result.global_score,
        local_score=result.local_score,
        regions=len(result.regions),
        invalid=int(result.invalid or 0),
        not_scorable=int(getattr(result, "not_scorable", 0) or 0),
        failed_crops=int(getattr(result, "failed_crops", 0) or 0),
        error=one_line_error(result.path, error),
        png=png,
        thumb=thumb,
    )


def summarize_config(configs: Iterable[Mapping[str, Any]], extra: Mapping[str, Any] | None = None) -> dict[str, str]:
    """``{key: value}`` of the run's configuration; a key with several values across images lists them all."""
    seen: dict[str, list[str]] = {}
    for config in list(configs) + ([extra] if extra else []):
        for key, value in config.items():
            if value is None or value == "":
                continue
            values = seen.setdefault(key, [])
            if str(value) not in values:
                values.append(str(value))
    ordered = [k for k in CONFIG_KEYS if k in seen] + [k for k in seen if k not in CONFIG_KEYS]
    return {k: ", ".join(seen[k]) for k in ordered}


def counts(rows: Sequence[Row]) -> dict[str, int]:
    """Images, scored, failed, and the regions without a score by cause."""
    return {
        "images": len(rows),
        "scored": sum(r.status == "scored" for r in rows),
        "failed": sum(r.status == "failed" for r in rows),
        "invalid answers": sum(r.invalid for r in rows),
        "not scorable": sum(r.not_scorable for r in rows),
        "failed crops": sum(r.failed_crops for r in rows),
    }


# ---------------------------------------------------------------- pictures drawn as inline SVG


def histogram_svg(values: Sequence[float], bins: int = 20, width: int = 360, height: int = 120) -> str:
    """An inline SVG histogram of the final scores (axis ends and the tallest bar labelled)."""
    finite = [v for v in values if v is not None and math.isfinite(v)]
    if not finite:
        return '<svg class="hist" width="0" height="0"></svg>'
    lo, hi = min(finite), max(finite)
    span = hi - lo or 1.0
    counts_ = [0] * bins
    for v in finite:
        counts_[min(int((v - lo) / span * bins), bins - 1)] += 1
    top, base, bar_w = 14, height - 18, width / bins
    peak = max(counts_)
    bars = []
    for i, c in enumerate(counts_):
        h = (base - top) * c / peak
        x0, x1 = lo + span * i / bins, lo + span * (i + 1) / bins
        bars.append(
            f'<rect x="{i * bar_w:.1f}" y="{base - h:.1f}" width="{bar_w - 1:.1f}" height="{h:.1f}">'
            f"<title>{x0:.3g} to {x1:.3g}: {c} images</title></rect>"
        )
    labels = (
        f'<text x="0" y="{height - 4}">{lo:.3g}</text>'
        f'<text x="{width}" y="{height - 4}" text-anchor="end">{hi:.3g}</text>'
        f'<text x="{width / 2}" y="{height - 4}" text-anchor="middle">final score</text>'
        f'<text x="0" y="10">{peak} images</text>'
    )
    return (
        f'<svg class="hist" role="img" aria-label="histogram of final scores" width="{width}" '
        f'height="{height}" viewBox="0 0 {width} {height}">{"".join(bars)}{labels}</svg>'
    )


def colour_scale_svg(scale: ScoreScale, cmap: str = DEFAULT_CMAP, width: int = 360, height: int = 44) -> str:
    """The quality map's colour scale as an inline SVG gradient, worst on the left."""
    from matplotlib import colormaps

    ramp = colormaps[cmap]
    stops = "".join(
        f'<stop offset="{t:.2f}" stop-color="rgb({",".join(str(int(round(c * 255))) for c in ramp(t)[:3])})"/>'
        for t in [i / 10 for i in range(11)]
    )
    worst, best = (scale.lo, scale.hi) if scale.higher_is_better else (scale.hi, scale.lo)
    return (
        f'<svg class="scale" role="img" aria-label="colour scale" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}"><defs><linearGradient id="ramp">{stops}</linearGradient></defs>'
        f'<rect x="0" y="0" width="{width}" height="20" fill="url(#ramp)" stroke="#333"/>'
        f'<text x="0" y="36">{worst:.3g} (worse)</text>'
        f'<text x="{width}" y="36" text-anchor="end">{best:.3g} (better)</text>'
        f'<text x="{width / 2}" y="36" text-anchor="middle">region {html.escape(scale.label)}</text></svg>'
    )


# ---------------------------------------------------------------- the page

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 1.5em; color: #222; }
header { display: flex; flex-wrap: wrap; gap: 2em; align-items: flex-start; margin-bottom: 1em; }
dl.config { display: grid; grid-template-columns: max-content auto; gap: 2px 12px; margin: 0; }
dl.config dt { font-weight: 600; } dl.config dd { margin: 0; }
.counts span { display: inline-block; margin-right: 1.2em; } .counts b { font-size: 1.2em; }
svg text { font-size: 11px; fill: #333; } svg.hist rect { fill: #4a6fa5; }
.controls { margin: 0.8em 0; } .controls input { width: 20em; }
table { border-collapse: collapse; } tr[hidden] { display: none; }
th, td { border: 1px solid #ccc; padding: 4px 8px; text-align: left; vertical-align: middle; }
th { cursor: pointer; background: #f0f0f0; user-select: none; }
th[data-dir=asc]::after { content: " \\25B2"; } th[data-dir=desc]::after { content: " \\25BC"; }
td.err { color: #b00; max-width: 40em; }
td.map img { display: block; max-width: 240px; cursor: zoom-in; transition: transform .15s; }
td.map img:hover { transform: scale(1.6); transform-origin: left center; position: relative; z-index: 2;
  box-shadow: 0 2px 12px #0006; }
#lightbox { position: fixed; inset: 0; background: #000c; display: none; align-items: center;
  justify-content: center; z-index: 10; cursor: zoom-out; }
#lightbox.open { display: flex; } #lightbox img { max-width: 95vw; max-height: 95vh; background: #fff; }
"""

_SCRIPT = """
const table = document.getElementById('results');
const body = table.tBodies[0];
const heads = Array.from(table.tHead.rows[0].cells);
const filterBox = document.getElementById('filter');
const statusBox = document.getElementById('status');

function sortBy(col, dir) {
  const th = heads[col];
  dir = dir || (th.dataset.dir === 'desc' ? 'asc' : 'desc');
  heads.forEach(h => delete h.dataset.dir);
  th.dataset.dir = dir;
  const numeric = th.dataset.numeric === '1';
  const key = r => r.cells[col].dataset.v;
  const rows = Array.from(body.rows).sort((a, b) => {
    let x = key(a), y = key(b);
    if (numeric) {  // rows without a value go last in either direction
      if (x === '' || y === '') return (x === '') - (y === '');
      x = +x; y = +y;
    }
    const c = x < y ? -1 : x > y ? 1 : 0;
    return dir === 'asc' ? c : -c;
  });
  rows.forEach(r => body.appendChild(r));
  document.body.dataset.sorted = th.dataset.key + ':' + dir;
  saveState();
}

function applyFilter() {
  const q = filterBox.value.trim().toLowerCase();
  const st = statusBox.value;
  let shown = 0;
  Array.from(body.rows).forEach(r => {
    const ok = (!q || r.dataset.search.includes(q)) && (st === 'all' || r.dataset.status === st);
    r.hidden = !ok;
    shown += ok;
  });
  document.getElementById('shown').textContent = shown;
  document.body.dataset.shown = shown;
  saveState();
}

let restoring = false;
function saveState() {
  if (restoring) return;
  const p = new URLSearchParams();
  if (document.body.dataset.sorted) p.set('sort', document.body.dataset.sorted);
  if (filterBox.value) p.set('q', filterBox.value);
  if (statusBox.value !== 'all') p.set('status', statusBox.value);
  history.replaceState(null, '', '#' + p.toString());
}

function restoreState() {
  restoring = true;
  const p = new URLSearchParams(location.hash.slice(1));
  filterBox.value = p.get('q') || '';
  statusBox.value = p.get('status') || 'all';
  const [key, dir] = (p.get('sort') || '').split(':');
  const col = heads.findIndex(h => h.dataset.key === key);
  if (col >= 0) sortBy(col, dir === 'asc' ? 'asc' : 'desc');
  applyFilter();
  restoring = false;
}

function openLightbox(src) {
  const box = document.getElementById('lightbox');
  box.querySelector('img').src = src;
  box.classList.add('open');
}

heads.forEach((h, i) => { if (h.dataset.key !== 'map') h.addEventListener('click', () => sortBy(i)); });
filterBox.addEventListener('input', applyFilter);
statusBox.addEventListener('change', applyFilter);
document.getElementById('lightbox').addEventListener('click', e => e.currentTarget.classList.remove('open'));
body.addEventListener('click', e => {
  const a = e.target.closest('a.full');
  if (a) { e.preventDefault(); openLightbox(a.href); }
});
window.addEventListener('load', () => {
  restoreState();
  const thumbs = Array.from(document.querySelectorAll('td.map img'));
  document.body.dataset.imagesOk = thumbs.filter(i => i.complete && i.naturalWidth > 0).length;
  document.body.dataset.ready = '1';
});
"""


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def _td(value: Any, shown: str, cls: str = "") -> str:
    v = "" if value is None else str(value)
    attr = f' class="{cls}"' if cls else ""
    return f'<td data-v="{html.escape(v, quote=True)}"{attr}>{shown}</td>'


def _row_html(row: Row) -> str:
    name = html.escape(row.path)
    picture = ""
    if row.thumb:
        img = f'<img src="{row.thumb}" alt="quality map of {html.escape(Path(row.path).name, quote=True)}">'
        picture = f'<a class="full" href="{html.escape(row.png or row.thumb, quote=True)}">{img}</a>'
    unscored = row.invalid + row.not_scorable + row.failed_crops
    causes = ((row.invalid, "invalid answers"), (row.not_scorable, "not scorable"), (row.failed_crops, "failed"))
    causes = ", ".join(f"{n} {label}" for n, label in causes if n)
    search = html.escape(f"{row.path} {row.error or ''}".lower(), quote=True)
    cells = [
        _td(row.index, str(row.index)),
        _td(None, picture, "map"),
        _td(row.path, name),
        _td(row.score, _num(row.score)),
        _td(row.global_score, _num(row.global_score)),
        _td(row.local_score, _num(row.local_score)),
        _td(row.regions, str(row.regions)),
        _td(unscored, f"{unscored}" + (f" ({causes})" if causes else "")),
        _td(row.error or "", html.escape(row.error or ""), "err" if row.error else ""),
    ]
    return f'<tr data-status="{row.status}" data-search="{search}">' + "".join(cells) + "</tr>"


def build_page(
    title: str, rows: Sequence[Row], config: Mapping[str, str], scale: ScoreScale | None, cmap: str = DEFAULT_CMAP
) -> str:
    """The whole HTML document."""
    conf = "".join(f"<dt>{html.escape(k)}</dt><dd>{html.escape(v)}</dd>" for k, v in config.items())
    n = counts(rows)
    count_html = "".join(f"<span><b>{v}</b> {html.escape(k)}</span>" for k, v in n.items())
    head = "".join(
        f'<th data-key="{key}" data-numeric="{int(num)}">{html.escape(name)}</th>' for key, name, num in COLUMNS
    )
    scale_svg = colour_scale_svg(scale, cmap) if scale else ""
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f'<meta name="viewport" content="width=device-width"><title>{html.escape(title)}</title>'
        f"<style>{_STYLE}</style></head>\n<body>\n<h1>{html.escape(title)}</h1>\n<header>"
        f'<section><h2>Configuration</h2><dl class="config">{conf}</dl></section>'
        f'<section><h2>Images</h2><div class="counts">{count_html}</div>'
        f"{histogram_svg([r.score for r in rows])}</section>"
        f"<section><h2>Quality map</h2>{scale_svg}<p>Each region is filled with the colour of its score; "
        "grey: no score. Click a thumbnail for the full picture with every region's score (the PNG files "
        "beside this page: keep the folder together).</p></section></header>\n"
        '<div class="controls"><label>filter <input id="filter" type="search" '
        'placeholder="file name or error text"></label> <label>show <select id="status">'
        '<option value="all">all</option><option value="scored">scored</option>'
        '<option value="failed">failed</option></select></label> '
        f'<span id="shown">{len(rows)}</span> of {len(rows)} shown; click a column title to sort.</div>\n'
        f'<table id="results"><thead><tr>{head}</tr></thead>\n<tbody>\n'
        + "\n".join(_row_html(r) for r in rows)
        + '\n</tbody></table>\n<div id="lightbox"><img alt="full picture"></div>\n'
        f"<script>{_SCRIPT}</script>\n</body></html>\n"
    )


def safe_png_name(index: int, path: str) -> str:
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", Path(path).stem or "image")[:80]
    return f"{index:04d}_{stem}.png"
