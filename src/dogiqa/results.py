"""One result schema for every runner and sink (JSONL, CSV, Parquet, cache, report).

File names. A path is kept as Python holds it (``os.fsdecode``: bytes that are not UTF-8 become lone
surrogates). Serialised records carry ``path`` as text that is always valid UTF-8 and, only when the name is
not valid UTF-8, ``path_bytes``: the name's exact bytes, percent-encoded (RFC 3986, ``%FF``). ``path`` then
shows each undecodable byte as ``\\xNN``. Reading a record back (``path_from_fields``) gives the same ``str``,
so ``os.fsencode`` of it is the original name. Newlines and tabs in names are kept (JSON escapes them, CSV
quotes them). Other text fields (errors, answers) are made UTF-8-safe the same way, for display only.
"""

from __future__ import annotations

import json
import os
import urllib.parse
from dataclasses import asdict, dataclass, field, fields
from typing import Any


def display_text(text: str) -> str:
    """``text`` with lone surrogates (undecodable bytes of a file name) shown as ``\\xNN``: valid UTF-8."""
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def path_fields(path: str) -> dict[str, str | None]:
    """``{"path": display form, "path_bytes": percent-encoded bytes or None}`` of a path (see module docs)."""
    shown = display_text(path)
    if shown == path:
        return {"path": path, "path_bytes": None}
    return {"path": shown, "path_bytes": urllib.parse.quote_from_bytes(os.fsencode(path), safe="/")}


def path_from_fields(path: str, path_bytes: str | None = None) -> str:
    """The path a record names: ``path_bytes`` decoded when present, else ``path`` as written."""
    if path_bytes:
        return os.fsdecode(urllib.parse.unquote_to_bytes(path_bytes))
    return path


def _safe(value: Any) -> Any:
    """Strings (in nested lists/dicts too) made UTF-8-safe for display."""
    if isinstance(value, str):
        return display_text(value)
    if isinstance(value, list | tuple):
        return [_safe(v) for v in value]
    if isinstance(value, dict):
        return {display_text(str(k)): _safe(v) for k, v in value.items()}
    return value


@dataclass
class RegionRecord:
    """One scored region. ``box`` is (x0, y0, x1, y1), exclusive ends, in full-image pixels.

    ``kind``: "mask" (a segment), "complement" (the uncovered rest) or "whole" (the fallback region).
    ``weight`` is the area weight used by aggregation; ``pixels`` the region's true pixel count.
    """

    index: int
    kind: str
    box: tuple[int, int, int, int]
    weight: float
    pixels: int
    score: float | None = None
    raw: str | None = None
    probs: list[float] | None = None
    entropy: float | None = None
    variance: float | None = None
    error: str | None = None


TRANSIENT = ("masks", "image")  # ImageResult fields held in memory only, never serialised


@dataclass
class ImageResult:
    """The result for one image. ``error`` is set (and ``score`` None) when the image could not be scored.

    Crops that have no score are counted by cause: ``invalid`` (the model's answer is not a level),
    ``failed_crops`` (the backend or scorer call failed; the crop's ``error`` says why) and ``not_scorable``
    (a classical metric cannot score the crop, e.g. too small).
    """

    path: str
    score: float | None = None
    # stable identity (dogiqa.sources): resolved file path, shard sample key, or table key/row; ``source`` names
    # the shard/table it came from (None for loose files); ``columns`` are pass-through values (--keep-columns)
    key: str | None = None
    source: str | None = None
    global_score: float | None = None
    local_score: float | None = None
    regions: list[RegionRecord] = field(default_factory=list)
    invalid: int = 0
    failed_crops: int = 0
    not_scorable: int = 0
    width: int | None = None
    height: int | None = None
    n_masks: int = 0
    global_raw: str | None = None
    global_probs: list[float] | None = None
    global_error: str | None = None
    uncertainty: float | None = None
    error: str | None = None
    timings: dict[str, float] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)
    columns: dict[str, Any] = field(default_factory=dict)
    # region masks (full resolution), kept only when the pipeline is asked to (reports); never serialised
    masks: list[Any] | None = field(default=None, repr=False, compare=False)
    # the decoded RGB image, kept with the masks so a report draws it without decoding the file again
    image: Any = field(default=None, repr=False, compare=False)

    @property
    def ok(self) -> bool:
        return self.error is None

    def to_dict(self) -> dict[str, Any]:
        """The record as JSON-ready data; every string valid UTF-8, the path reversible (module docs)."""
        out = {f.name: getattr(self, f.name) for f in fields(self) if f.name not in TRANSIENT + ("regions", "path")}
        out = {**path_fields(self.path), **_safe(out)}
        out["regions"] = [_safe(asdict(r)) for r in self.regions]
        out["timings"], out["config"] = dict(self.timings), _safe(dict(self.config))
        return out

    @property
    def ident(self) -> str:
        """One string per input: ``key`` (``source#key`` inside a shard or table); ``path`` for old records."""
        if self.key is None:
            return self.path
        return self.key if not self.source else f"{self.source}#{self.key}"

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), ensure_ascii=False, default=str)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ImageResult:
        path = path_from_fields(data.get("path", ""), data.get("path_bytes"))
        data = {k: v for k, v in data.items() if k in {f.name for f in fields(cls)}}
        data["path"] = path
        regions = [RegionRecord(**{**r, "box": tuple(r["box"])}) for r in data.pop("regions", []) or []]
        return cls(regions=regions, **data)


FLAT_FIELDS = [
    "path",
    "score",
    "global_score",
    "local_score",
    "n_regions",
    "invalid",
    "uncertainty",
    "error",
    "failed_crops",
    "not_scorable",
    "path_bytes",
]


def flat_row(result: ImageResult) -> dict[str, Any]:
    """A one-line summary of a result (CSV rows, tables); strings UTF-8-safe, the path as ``path_fields``."""
    return {
        **path_fields(result.path),
        "score": result.score,
        "global_score": result.global_score,
        "local_score": result.local_score,
        "n_regions": len(result.regions),
        "invalid": result.invalid,
        "uncertainty": result.uncertainty,
        "error": None if result.error is None else display_text(result.error),
        "failed_crops": result.failed_crops,
        "not_scorable": result.not_scorable,
    }
