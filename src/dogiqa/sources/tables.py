"""Parquet and Arrow tables (and Hugging Face datasets, which are Arrow): one image per row, read in row batches.

The image column holds encoded bytes, the Hugging Face image struct ``{bytes, path}``, or file paths (a
listing; relative paths are relative to the table's folder). Without ``image_column`` it is detected: the
column a Hugging Face ``Image`` feature names, else the only binary/struct column, else a path column
(``path``, ``image``, ``file``...). The key is ``key_column`` (detected among ``__key__``, ``key``, ``id``...)
or the row number; ``keep_columns`` are copied into every record.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dogiqa.sources.base import Item, SourceError, file_item, resolved

TABLE_SUFFIXES = (".parquet", ".pq", ".arrow", ".feather", ".ipc")
IMAGE_NAMES = ("image", "img", "jpg", "jpeg", "png", "webp", "image_bytes", "bytes")
PATH_NAMES = ("path", "image", "file", "filename", "image_path", "file_name")
KEY_NAMES = ("__key__", "key", "id", "image_id", "uid", "sha256")
BATCH_ROWS = 256


def _pa() -> Any:
    try:
        import pyarrow as pa
    except ImportError as exc:  # pragma: no cover - installed with the extras
        raise SourceError("reading Parquet/Arrow needs pyarrow: pip install 'dogiqa[parquet]'") from exc
    return pa


@dataclass(frozen=True)
class Columns:
    """Which columns of a table hold the image, the key and the pass-through values."""

    image: str
    key: str | None
    keep: tuple[str, ...]
    paths: bool  # the image column holds file paths (a listing), not image data

    @property
    def read(self) -> list[str]:
        return list(dict.fromkeys([self.image, *([self.key] if self.key else []), *self.keep]))


def _is_binary(t: Any) -> bool:
    pa = _pa()
    return pa.types.is_binary(t) or pa.types.is_large_binary(t) or pa.types.is_fixed_size_binary(t)


def _is_image_struct(t: Any) -> bool:
    pa = _pa()
    return pa.types.is_struct(t) and t.get_field_index("bytes") >= 0 and _is_binary(t.field("bytes").type)


def _hf_image_columns(schema: Any) -> list[str]:
    """Columns a Hugging Face ``Image`` feature describes (schema metadata written by ``datasets``)."""
    raw = (schema.metadata or {}).get(b"huggingface")
    if not raw:
        return []
    try:
        features = json.loads(raw).get("info", {}).get("features", {})
    except (ValueError, AttributeError):
        return []
    return [n for n, f in features.items() if isinstance(f, dict) and f.get("_type") == "Image"]


def pick_columns(
    schema: Any, where: str, image_column: str | None, key_column: str | None, keep_columns: Sequence[str]
) -> Columns:
    """The columns to read, detected where not given; a missing or unusable column is a SourceError."""
    pa = _pa()
    names = list(schema.names)
    listed = ", ".join(names) or "none"
    for col, flag in [(image_column, "--image-column"), (key_column, "--key-column")]:
        if col and col not in names:
            raise SourceError(f"{flag}: {where}: no column {col!r} (columns: {listed})", setting=flag)
    for col in keep_columns:
        if col not in names:
            raise SourceError(f"--keep-columns: {where}: no column {col!r} (columns: {listed})",
                              setting="--keep-columns")  # fmt: skip
        if _is_binary(schema.field(col).type) or _is_image_struct(schema.field(col).type):
            raise SourceError(f"--keep-columns: {where}: column {col!r} holds binary data; keep text or numbers",
                              setting="--keep-columns")  # fmt: skip
    image = image_column or _detect_image(schema, names, where)
    itype = schema.field(image).type
    paths = pa.types.is_string(itype) or pa.types.is_large_string(itype)
    if not (paths or _is_binary(itype) or _is_image_struct(itype)):
        raise SourceError(f"--image-column: {where}: column {image!r} is {itype}, not image bytes, struct or paths",
                          setting="--image-column")  # fmt: skip
    key = key_column or next((n for n in KEY_NAMES if n in names and n != image and _scalar(schema, n)), None)
    return Columns(image, key, tuple(keep_columns), paths)


def _scalar(schema: Any, name: str) -> bool:
    pa = _pa()
    t = schema.field(name).type
    return pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_integer(t)


def _detect_image(schema: Any, names: list[str], where: str) -> str:
    hf = _hf_image_columns(schema)
    if hf:
        return hf[0]
    data = [n for n in names if _is_binary(schema.field(n).type) or _is_image_struct(schema.field(n).type)]
    if len(data) == 1:
        return data[0]
    preferred = [n for n in IMAGE_NAMES if n in data]
    if preferred:
        return preferred[0]
    if data:
        raise SourceError(f"--image-column: {where}: several binary columns ({', '.join(data)}); choose one",
                          setting="--image-column")  # fmt: skip
    lower = {n.lower(): n for n in names if _scalar(schema, n)}
    for name in PATH_NAMES:
        if name in lower:
            return lower[name]
    raise SourceError(f"--image-column: {where}: no image column found (columns: {', '.join(names) or 'none'})",
                      setting="--image-column")  # fmt: skip


# -- rows -> items ---------------------------------------------------------------------------------------
def rows_to_items(
    batches: Iterable[Any],
    cols: Columns,
    source: str | None,
    base_dir: Path | None,
    first_row: int = 0,
    skip: set[str] | None = None,
    label: str | None = None,
) -> Iterator[Item]:
    """Items from Arrow record batches (the columns of ``cols``), numbering rows from ``first_row``; ``label``
    names the table in records and messages (default: ``source``)."""
    row = first_row
    label = label or source or "<table>"
    for batch in batches:
        data = {name: batch.column(name).to_pylist() for name in cols.read}
        for i in range(batch.num_rows):
            r = row + i
            key_value = data[cols.key][i] if cols.key else None
            key = str(r) if key_value is None else str(key_value)
            if skip and key in skip:
                continue
            columns = {c: data[c][i] for c in cols.keep}
            yield _row_item(data[cols.image][i], key, r, label, source, base_dir, cols, columns)
        row += batch.num_rows


def _row_item(
    value: Any, key: str, row: int, label: str, source: str | None, base_dir: Path | None, cols: Columns,
    columns: dict[str, Any],
) -> Item:  # fmt: skip
    path = f"{label}#{key}"
    if isinstance(value, dict):  # the Hugging Face image struct
        value = value.get("bytes") or value.get("path")
        if isinstance(value, str) and base_dir is not None and not Path(value).is_absolute():
            value = str(base_dir / value)
    if value is None or value == b"":
        return Item(key, None, path, source, columns, error=f"{path}: row {row} has no image in {cols.image!r}")
    if cols.paths or isinstance(value, str):
        p = Path(value)
        if base_dir is not None and not p.is_absolute():
            p = base_dir / p
        if cols.key is None:  # a listing: the row is a loose file, keyed by its resolved path
            item = file_item(p)
            item.columns = columns
            return item
        return Item(key, p, str(p), source, columns)
    return Item(key, bytes(value), path, source, columns)


# -- files -----------------------------------------------------------------------------------------------
def is_table_spec(spec: str) -> bool:
    return spec.lower().endswith(TABLE_SUFFIXES)


@dataclass(frozen=True)
class TablePart:
    """A unit of work: a Parquet row group, or a whole Arrow file (``group`` None)."""

    path: str
    group: int | None
    first_row: int


def _open_arrow(path: str) -> tuple[Any, Iterator[Any]]:
    """(schema, record batches) of an Arrow IPC file or stream, memory-mapped."""
    pa = _pa()
    source = pa.memory_map(path)
    try:
        reader = pa.ipc.open_file(source)
        return reader.schema, (reader.get_batch(i) for i in range(reader.num_record_batches))
    except pa.ArrowInvalid:
        source.seek(0)
        stream = pa.ipc.open_stream(source)
        return stream.schema, iter(stream)


def table_schema(path: str) -> Any:
    try:
        if _is_parquet(path):
            import pyarrow.parquet as pq

            return pq.read_schema(path)
        return _open_arrow(path)[0]
    except (OSError, ValueError) as exc:
        raise SourceError(f"{path}: cannot read the table: {exc}", setting="SOURCES") from exc


def _is_parquet(path: str) -> bool:
    return path.lower().endswith((".parquet", ".pq"))


def table_parts(path: str) -> list[TablePart]:
    """Row groups of a Parquet file (each a unit of work); an Arrow file is one part."""
    if not _is_parquet(path):
        return [TablePart(path, None, 0)]
    import pyarrow.parquet as pq

    meta = pq.ParquetFile(path).metadata
    parts, row = [], 0
    for g in range(meta.num_row_groups):
        parts.append(TablePart(path, g, row))
        row += meta.row_group(g).num_rows
    return parts or [TablePart(path, None, 0)]


def _batches(part: TablePart, columns: list[str]) -> Iterator[Any]:
    if _is_parquet(part.path):
        import pyarrow.parquet as pq

        groups = None if part.group is None else [part.group]
        yield from pq.ParquetFile(part.path).iter_batches(BATCH_ROWS, row_groups=groups, columns=columns)
    else:
        _, batches = _open_arrow(part.path)
        for batch in batches:
            yield batch.select(columns)


def iter_table_part(part: TablePart, cols: Columns, skip: set[str] | None = None) -> Iterator[Item]:
    source = None if cols.paths and cols.key is None else resolved(part.path)
    base = Path(part.path).parent
    try:
        yield from rows_to_items(_batches(part, cols.read), cols, source, base, part.first_row, skip, part.path)
    except (OSError, ValueError) as exc:  # a damaged file after some rows: one error record
        yield Item(f"<part {part.group or 0}>", None, part.path, part.path,
                   error=f"{part.path}: cannot read rows: {exc}")  # fmt: skip


def part_keys(part: TablePart, cols: Columns) -> list[str]:
    """The keys of a part's rows (the key column alone is read), as ``iter_table_part`` gives them."""
    if cols.paths and cols.key is None:
        return [it.key for it in iter_table_part(part, cols)]  # resolved paths (no image is read)
    if cols.key is None:
        return [str(part.first_row + i) for i in range(_part_rows(part))]
    return [str(v) if v is not None else str(part.first_row + i)
            for i, v in enumerate(v for b in _batches(part, [cols.key]) for v in b.column(0).to_pylist())]  # fmt: skip


def _part_rows(part: TablePart) -> int:
    if _is_parquet(part.path):
        import pyarrow.parquet as pq

        meta = pq.ParquetFile(part.path).metadata
        return meta.num_rows if part.group is None else meta.row_group(part.group).num_rows
    return sum(b.num_rows for b in _open_arrow(part.path)[1])
