"""One result schema for every runner and sink (JSONL, CSV, Parquet, cache, report)."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from typing import Any


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


@dataclass
class ImageResult:
    """The result for one image. ``error`` is set (and ``score`` None) when the image could not be scored."""

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

    @property
    def ok(self) -> bool:
        return self.error is None

    def to_dict(self) -> dict[str, Any]:
        out = {f.name: getattr(self, f.name) for f in fields(self) if f.name not in ("masks", "regions")}
        out["regions"] = [asdict(r) for r in self.regions]
        out["timings"], out["config"], out["columns"] = dict(self.timings), dict(self.config), dict(self.columns)
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
        data = {k: v for k, v in data.items() if k in {f.name for f in fields(cls)}}
        regions = [RegionRecord(**{**r, "box": tuple(r["box"])}) for r in data.pop("regions", []) or []]
        return cls(regions=regions, **data)


FLAT_FIELDS = ["path", "score", "global_score", "local_score", "n_regions", "invalid", "uncertainty", "error"]


def flat_row(result: ImageResult) -> dict[str, Any]:
    """A one-line summary of a result (CSV rows, tables)."""
    return {
        "path": result.path,
        "score": result.score,
        "global_score": result.global_score,
        "local_score": result.local_score,
        "n_regions": len(result.regions),
        "invalid": result.invalid,
        "uncertainty": result.uncertainty,
        "error": result.error,
    }
