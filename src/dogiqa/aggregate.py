"""Aggregation: global score + area-weighted local scores -> final score (spec §4).

All presets are one formula ``S = g * s_g + l * S_local + n * N * unit`` with S_local the area-weighted
(or plain) mean of the region scores and N the number of regions:

- ``paper``: g = l = 0.5, n = 1, unit = K / c_max (the paper's text; c_max = 71, the largest region count
  measured on SPAQ; pass the dataset's own value when known).
- ``code``: g = 0.5, l = 1, n = 0.1, unit = 1 (the authors' eval.py defaults, lambda1 = 0.1, lambda2 = 0.5).
- ``global``: the global score alone. ``local``: S_local alone. ``mean``: like ``local`` with a plain mean
  (the paper's "simple mean" ablation).

Regions without a score (invalid answers, crops a scorer cannot score) are left out of S_local and counted.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace

DEFAULT_C_MAX = 71


@dataclass(frozen=True)
class Aggregation:
    name: str
    global_weight: float
    local_weight: float
    count_weight: float = 0.0
    count_unit: str = "one"  # "one" | "levels_over_cmax"
    c_max: float = DEFAULT_C_MAX
    area_weighted: bool = True

    def with_weights(self, **changes: float | bool | str) -> Aggregation:
        return replace(self, **{k: v for k, v in changes.items() if v is not None})

    @property
    def uses_global(self) -> bool:
        return self.global_weight != 0

    @property
    def uses_local(self) -> bool:
        return self.local_weight != 0 or self.count_weight != 0


AGGREGATIONS = {
    "paper": Aggregation("paper", 0.5, 0.5, 1.0, "levels_over_cmax"),
    "code": Aggregation("code", 0.5, 1.0, 0.1, "one"),
    "global": Aggregation("global", 1.0, 0.0),
    "local": Aggregation("local", 0.0, 1.0),
    "mean": Aggregation("mean", 0.0, 1.0, area_weighted=False),
}


def get_aggregation(name: str | Aggregation) -> Aggregation:
    if isinstance(name, Aggregation):
        return name
    if name not in AGGREGATIONS:
        raise ValueError(f"unknown aggregation {name!r}; choose one of {', '.join(AGGREGATIONS)}")
    return AGGREGATIONS[name]


@dataclass
class Aggregate:
    score: float | None
    local_score: float | None
    std: float | None  # propagated uncertainty (independent regions), when variances are known


def local_score(scores: Sequence[float | None], weights: Sequence[float], area_weighted: bool = True) -> float | None:
    """Weighted mean of the scored regions: sum(a_i s_i) / sum(a_i); None when no region has a score."""
    pairs = [(s, w if area_weighted else 1.0) for s, w in zip(scores, weights, strict=True) if s is not None]
    total = sum(w for _, w in pairs)
    if not pairs or total <= 0:
        return None
    return sum(s * w for s, w in pairs) / total


def aggregate(
    global_score: float | None,
    scores: Sequence[float | None],
    weights: Sequence[float],
    aggregation: str | Aggregation = "code",
    levels: int = 7,
    global_variance: float | None = None,
    variances: Sequence[float | None] | None = None,
    count_sign: float = 1.0,
) -> Aggregate:
    """The final score of one image. ``count_sign`` = -1 turns the count bonus around for lower-is-better
    scorers. The result's score is None when a term the preset needs is missing."""
    agg = get_aggregation(aggregation)
    s_local = local_score(scores, weights, agg.area_weighted)
    if (agg.uses_global and global_score is None) or (agg.local_weight != 0 and s_local is None):
        return Aggregate(None, s_local, None)
    unit = levels / agg.c_max if agg.count_unit == "levels_over_cmax" else 1.0
    total = agg.count_weight * len(scores) * unit * count_sign
    if agg.uses_global:
        total += agg.global_weight * global_score
    if agg.local_weight != 0:
        total += agg.local_weight * s_local
    return Aggregate(total, s_local, _propagated_std(agg, scores, weights, global_variance, variances))


def _propagated_std(
    agg: Aggregation,
    scores: Sequence[float | None],
    weights: Sequence[float],
    global_variance: float | None,
    variances: Sequence[float | None] | None,
) -> float | None:
    var = 0.0
    if agg.uses_global:
        if global_variance is None:
            return None
        var += agg.global_weight**2 * global_variance
    if agg.local_weight != 0:
        if variances is None:
            return None
        used = [
            (w if agg.area_weighted else 1.0, v)
            for s, w, v in zip(scores, weights, variances, strict=True)
            if s is not None
        ]
        if any(v is None for _, v in used):
            return None
        total = sum(w for w, _ in used)
        var += agg.local_weight**2 * sum((w / total) ** 2 * v for w, v in used)
    return math.sqrt(var)
