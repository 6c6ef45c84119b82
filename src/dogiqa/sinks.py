"""Result sinks: JSONL (one record per line, flushed as it goes) and CSV (one summary row per image).

An existing output is never overwritten by accident (:func:`prepare_output`): ``overwrite`` replaces it,
``resume`` continues it (finished records kept once, failed ones dropped to be retried, a torn last line from a
killed run repaired), otherwise :class:`OutputExistsError` (a usage error, exit 2).
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import IO

from dogiqa.atomic import atomic_write_text
from dogiqa.errors import UsageError
from dogiqa.results import FLAT_FIELDS, ImageResult, flat_row, path_from_fields


class OutputExistsError(UsageError):
    """The output file exists and neither ``--resume`` nor ``--overwrite`` was given."""

    def __init__(self, path: Path):
        super().__init__(
            f"output {path} already exists: pass --resume to continue it (finished images are kept, failed "
            "ones retried) or --overwrite to replace it",
            setting="--output",
        )


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


def prepare_output(path: str | Path, resume: bool = False, overwrite: bool = False) -> set[str]:
    """Get ``path`` ready for a run and return the paths already scored (empty unless resuming).

    Resuming rewrites the file (atomically) with one successful record per path, in their order: failed
    records and unreadable lines (a torn last line) are dropped, so those images are scored again."""
    out = Path(path)
    if resume and overwrite:
        raise UsageError("--resume and --overwrite contradict each other: pick one", setting="--resume")
    if not out.exists() or out.stat().st_size == 0:
        return set()
    if overwrite:
        return set()
    if not resume:
        raise OutputExistsError(out)
    kept, done = _finished_lines(out)
    atomic_write_text(out, kept)
    return done


def _finished_lines(path: Path) -> tuple[str, set[str]]:
    """(text of the successful, first-per-path records, their paths) of a JSONL or CSV output."""
    text = path.read_bytes().decode("utf-8", errors="replace")
    done: set[str] = set()
    if path.suffix.lower() == ".csv":
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=FLAT_FIELDS, extrasaction="ignore")
        writer.writeheader()
        complete = text if text.endswith("\n") else text[: text.rfind("\n") + 1]  # a torn last row
        for row in csv.DictReader(io.StringIO(complete, newline="")):
            name = path_from_fields(row.get("path") or "", row.get("path_bytes") or None)
            if name and not row.get("error") and name not in done:
                done.add(name)
                writer.writerow(row)
        return buf.getvalue(), done
    lines = []
    for line in text.splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue  # a torn line
        if not isinstance(record, dict) or record.get("error") or "path" not in record:
            continue
        name = path_from_fields(record["path"], record.get("path_bytes"))
        if name not in done:
            done.add(name)
            lines.append(line + "\n")
    return "".join(lines), done
