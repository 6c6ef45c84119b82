"""Result sinks: JSONL (one record per line, flushed as it goes) and CSV (one summary row per image)."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import IO

from dogiqa.results import FLAT_FIELDS, ImageResult, flat_row


class ResultWriter:
    """Writes results to ``.jsonl`` (full records) or ``.csv`` (summary rows), chosen by the file suffix.

    With ``append`` an existing file is continued (a resumed run) instead of overwritten.
    """

    def __init__(self, path: str | Path, append: bool = False):
        self.path = Path(path)
        suffix = self.path.suffix.lower()
        if suffix not in (".jsonl", ".csv"):
            raise ValueError(f"output {self.path}: use a .jsonl or .csv file name")
        self.format = suffix[1:]
        self.path.parent.mkdir(parents=True, exist_ok=True)
        existed = append and self.path.exists() and self.path.stat().st_size > 0
        self._fh: IO[str] = self.path.open("a" if append else "w", encoding="utf-8", newline="")
        self._csv = csv.DictWriter(self._fh, fieldnames=FLAT_FIELDS) if self.format == "csv" else None
        if self._csv and not existed:
            self._csv.writeheader()

    def write(self, result: ImageResult) -> None:
        if self._csv:
            self._csv.writerow(flat_row(result))
        else:
            self._fh.write(result.to_json() + "\n")
        self._fh.flush()

    def close(self) -> None:
        self._fh.close()

    def __enter__(self) -> ResultWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def read_records(path: str | Path) -> list[ImageResult]:
    """Results back from a JSONL file (a torn last line from a killed run is skipped)."""
    out = []
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        try:
            out.append(ImageResult.from_dict(json.loads(line)))
        except (ValueError, TypeError):
            continue
    return out
