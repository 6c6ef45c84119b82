"""Acting on scores: keep the records whose final score lies in a range (``dogiqa select``).

RESULTS is a ``.jsonl`` or ``.parquet`` file of records or a Ray output folder (Parquet parts). Records are
taken once per input (a successful record wins over a failed one, a later one over an earlier); records
without a score (failed inputs) are never kept. The output, by its suffix: ``.txt`` one kept key per line,
``.jsonl`` the kept records, ``.parquet`` the kept rows with every column (pass-through columns included).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from dogiqa.atomic import atomic_write_text
from dogiqa.errors import UsageError
from dogiqa.results import ImageResult, display_text

OUTPUT_SUFFIXES = (".txt", ".jsonl", ".parquet")


@dataclass
class Selection:
    total: int
    kept: int
    failed: int
    output: Path


def read_any(results: str | Path) -> list[ImageResult]:
    """Every record of a JSONL/Parquet file or a Ray output folder, one per input."""
    path = Path(results)
    if path.is_dir():
        from dogiqa.runners.ray import read_results

        return read_results(path)
    if not path.is_file():
        raise UsageError(f"{path}: no such results file or folder", setting="RESULTS")
    suffix = path.suffix.lower()
    if suffix in (".parquet", ".pq"):
        import pyarrow.parquet as pq

        from dogiqa.sinks import row_to_result

        try:
            rows = pq.read_table(path).to_pylist()
        except (OSError, ValueError) as exc:
            raise UsageError(f"{path}: cannot read the Parquet results: {exc}", setting="RESULTS") from exc
        records = [row_to_result(r) for r in rows]
    elif suffix == ".jsonl":
        from dogiqa.sinks import read_records

        records = read_records(path)
    else:
        raise UsageError(f"{path}: results must be .jsonl, .parquet or a Ray output folder", setting="RESULTS")
    return once_per_input(records)


def once_per_input(records: Iterable[ImageResult]) -> list[ImageResult]:
    """One record per input identity, in first-seen order: a successful one wins, then the later one."""
    best: dict[str, ImageResult] = {}
    for r in records:
        old = best.get(r.ident)
        if old is None or r.ok or not old.ok:
            best[r.ident] = r
    return list(best.values())


def select(
    results: str | Path, output: str | Path, min_score: float | None = None, max_score: float | None = None
) -> Selection:
    """Write the records with ``min_score <= score <= max_score`` (bounds inclusive, None = open)."""
    out = Path(output)
    if out.suffix.lower() not in OUTPUT_SUFFIXES:
        raise UsageError(f"output {out}: use a .txt (keys), .jsonl or .parquet file name", setting="--output")
    if min_score is None and max_score is None:
        raise UsageError("give --min-score and/or --max-score", setting="--min-score")
    if min_score is not None and max_score is not None and min_score > max_score:
        raise UsageError(f"--min-score {min_score} is above --max-score {max_score}", setting="--min-score")
    records = read_any(results)
    kept = [r for r in records if _inside(r.score, min_score, max_score)]
    _write(out, kept)
    return Selection(len(records), len(kept), sum(not r.ok for r in records), out)


def _inside(score: float | None, lo: float | None, hi: float | None) -> bool:
    if score is None or score != score:  # no score or NaN
        return False
    return (lo is None or score >= lo) and (hi is None or score <= hi)


def _write(out: Path, kept: list[ImageResult]) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    suffix = out.suffix.lower()
    if suffix == ".parquet":
        from dogiqa.sinks import write_parquet

        write_parquet(out, kept)
        return
    if suffix == ".txt":
        text = "".join(display_text(r.key if r.key is not None else r.path) + "\n" for r in kept)
    else:
        text = "".join(r.to_json() + "\n" for r in kept)
    atomic_write_text(out, text)
