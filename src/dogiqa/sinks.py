"""Result sinks: JSONL (one record per line, flushed as it goes), CSV (one summary row per image) and Parquet
(one row per image, pass-through columns included).

An existing output is never overwritten by accident (:func:`prepare_output`): ``overwrite`` replaces it,
``resume`` continues it (finished records kept once, failed ones dropped to be retried, a torn last line from a
killed run repaired), otherwise :class:`OutputExistsError` (a usage error, exit 2).
"""

from __future__ import annotations

import csv
import io
import json
import os
from dataclasses import fields
from pathlib import Path
from typing import IO, Any

from dogiqa.atomic import atomic_open, atomic_write_text
from dogiqa.errors import UsageError
from dogiqa.results import FLAT_FIELDS, TRANSIENT, ImageResult, flat_row, path_from_fields


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


# -- Parquet ---------------------------------------------------------------------------------------------
# One column per ImageResult field (``regions``, ``timings`` and ``config`` as JSON strings) plus one column
# per pass-through value (``--keep-columns``; a name that clashes with a field gets the prefix ``in_``).
JSON_COLUMNS = ("regions", "timings", "config")
PASS_PREFIX = "in_"


def arrow_schema() -> Any:
    """The Parquet schema of the record fields."""
    import pyarrow as pa

    types = {
        "score": pa.float64(),
        "global_score": pa.float64(),
        "local_score": pa.float64(),
        "invalid": pa.int64(),
        "failed_crops": pa.int64(),
        "not_scorable": pa.int64(),
        "width": pa.int64(),
        "height": pa.int64(),
        "n_masks": pa.int64(),
        "global_probs": pa.list_(pa.float64()),
        "uncertainty": pa.float64(),
    }
    names = [f.name for f in fields(ImageResult) if f.name not in (*TRANSIENT, "columns")] + ["path_bytes"]
    return pa.schema([(n, types.get(n, pa.string())) for n in names])


def _record_names() -> set[str]:
    """Column names of record fields (``path_bytes``: ``results.path_fields``)."""
    return {f.name for f in fields(ImageResult)} | {"path_bytes"}


def result_to_row(result: ImageResult) -> dict[str, Any]:
    """A Parquet row: the record with nested fields as JSON strings, pass-through columns at the top level."""
    row = result.to_dict()
    for name in JSON_COLUMNS:
        row[name] = json.dumps(row[name], ensure_ascii=False, default=str)
    names = _record_names()
    for name, value in row.pop("columns").items():
        row[PASS_PREFIX + name if name in names or name.startswith(PASS_PREFIX) else name] = value
    return row


def row_to_result(row: dict[str, Any]) -> ImageResult:
    """Inverse of :func:`result_to_row`."""
    names = _record_names() - {*TRANSIENT, "columns"}
    data = {k: v for k, v in row.items() if k in names}
    for name in JSON_COLUMNS:
        if isinstance(data.get(name), str):
            data[name] = json.loads(data[name])
    columns = {(k[len(PASS_PREFIX) :] if k.startswith(PASS_PREFIX) else k): v for k, v in row.items() if k not in names}
    return ImageResult.from_dict({**data, "columns": columns})


def results_table(results: list[ImageResult], extra_types: dict[str, Any] | None = None) -> Any:
    """An Arrow table of records; pass-through columns typed by ``extra_types`` (updated with new ones)."""
    import pyarrow as pa

    rows = [result_to_row(r) for r in results]
    table = pa.Table.from_pylist([{n: row.get(n) for n in arrow_schema().names} for row in rows], arrow_schema())
    types = extra_types if extra_types is not None else {}
    extras = list(dict.fromkeys(k for row in rows for k in row if k not in table.schema.names))
    for name in list(types) + [n for n in extras if n not in types]:
        values = [row.get(name) for row in rows]
        table = table.append_column(name, _pass_array(values, types, name))
    return table


def _pass_array(values: list[Any], types: dict[str, Any], name: str) -> Any:
    """A pass-through column: typed as first seen; values that do not fit that type are written as text."""
    import pyarrow as pa

    want = types.get(name)
    array = _typed_array(values, want)
    if array is None or pa.types.is_null(array.type):
        text = [None if v is None else v if isinstance(v, str) else json.dumps(v, default=str) for v in values]
        array = pa.array(text, type=pa.string())
        if want is not None and not pa.types.is_string(want):
            # keep the file's schema: values that fit it are kept, each misfit value is lost (null)
            fitting = [v if _typed_array([v], want) is not None else None for v in values]
            array = pa.array(fitting, type=want)
    types.setdefault(name, array.type)
    return array


def _typed_array(values: list[Any], want: Any) -> Any:
    """``pa.array(values, type=want)``, or None when a value does not fit that type."""
    import pyarrow as pa

    try:
        return pa.array(values, type=want)
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError, OverflowError):
        return None


def write_parquet(path: str | Path, results: list[ImageResult]) -> Path:
    """Write records to one Parquet file, atomically (a temporary name, then renamed)."""
    import pyarrow.parquet as pq

    table = results_table(results)
    with atomic_open(path, "wb") as fh:
        pq.write_table(table, fh)
    return Path(path)


class ParquetResultWriter:
    """Records to one ``.parquet`` file, in row groups of ``rows`` records; the file appears (renamed from a
    temporary name) only when the run closes it, so a killed run never leaves a half-written file."""

    def __init__(self, path: str | Path, rows: int = 1000):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.tmp = self.path.with_name("." + self.path.name + ".tmp")
        self.rows, self.buffer = max(1, rows), []  # type: ignore[var-annotated]
        self.types: dict[str, Any] = {}
        self._writer: Any = None

    def write(self, result: ImageResult) -> None:
        self.buffer.append(result)
        if len(self.buffer) >= self.rows:
            self._flush()

    def _flush(self) -> None:
        import pyarrow.parquet as pq

        if not self.buffer and self._writer is not None:
            return
        first = self._writer is None
        table = results_table(self.buffer, self.types)
        if first:
            self._writer = pq.ParquetWriter(self.tmp, table.schema)
            self.schema = table.schema
        else:
            table = table.select([n for n in self.schema.names])
        self._writer.write_table(table)
        self.buffer = []

    def close(self) -> None:
        self._flush()
        self._writer.close()
        os.replace(self.tmp, self.path)

    def __enter__(self) -> ParquetResultWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_writer(path: str | Path, append: bool = False) -> ResultWriter | ParquetResultWriter:
    """The writer for an output file by its suffix: ``.parquet`` or ``.jsonl``/``.csv``."""
    if Path(path).suffix.lower() in (".parquet", ".pq"):
        if append:
            raise ValueError(f"output {path}: a Parquet output cannot be continued; write a new file")
        return ParquetResultWriter(path)
    return ResultWriter(path, append=append)
