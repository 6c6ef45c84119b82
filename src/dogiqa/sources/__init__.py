"""Where images come from: files and folders, WebDataset shards, Parquet/Arrow tables, Hugging Face datasets.

Each source yields :class:`Item` s with a stable ``key`` (file: resolved path; shard: the sample key; table:
key column or row number) and ``source`` (the shard or table; None for loose files), the image (a path, bytes
or a decoded image) and pass-through columns.

A source SPEC (a ``dogiqa score`` argument) is one of: an image file or folder; a ``.csv`` listing of paths;
a dataset recipe ``NAME:ROOT``; WebDataset shards ``DIR/data-{000..099}.tar`` or ``'DIR/*.tar'``; a Parquet
or Arrow file (``.parquet``, ``.arrow``, ``.feather``); a ``save_to_disk`` folder or ``hf:PATH[:SPLIT]``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image

from dogiqa.sources.base import Item, SourceError, dedupe, describe, file_item, item_ident, resolved
from dogiqa.sources.files import iter_files
from dogiqa.sources.shards import expand_shards, is_shard_spec, iter_shard, shard_keys
from dogiqa.sources.tables import (
    TablePart,
    is_table_spec,
    iter_table_part,
    part_keys,
    pick_columns,
    table_parts,
    table_schema,
)

__all__ = [
    "Item",
    "SourceError",
    "SourceOptions",
    "Unit",
    "as_items",
    "check_sources",
    "dedupe",
    "describe",
    "file_item",
    "from_dataset",
    "item_ident",
    "open_sources",
    "plan_units",
    "read_unit",
]


@dataclass(frozen=True)
class SourceOptions:
    """How to read containers: the image column (or shard member extension), key column, columns to keep,
    and the split of a Hugging Face dataset."""

    image_column: str | None = None
    key_column: str | None = None
    keep_columns: tuple[str, ...] = ()
    split: str | None = None


@dataclass
class Unit:
    """A piece of work for a Ray actor: a batch of files, one shard, one table part or a dataset row range.
    ``keys`` are the keys of its items (planned without decoding); ``skip`` those already done."""

    kind: str  # files | shard | table | hf
    ref: str  # shard/table path or dataset spec ("" for files)
    files: list[str] = dataclasses.field(default_factory=list)
    group: int | None = None
    start: int = 0
    stop: int | None = None
    keys: list[str] = dataclasses.field(default_factory=list)
    skip: list[str] = dataclasses.field(default_factory=list)
    source: str | None = None

    def idents(self) -> list[str]:
        return [item_ident(self.source, k) for k in self.keys]


# -- specs -> items --------------------------------------------------------------------------------------
def open_sources(
    specs: Iterable[str | Path], options: SourceOptions | None = None, skipped: list[tuple[Path, str]] | None = None
) -> Iterator[Item]:
    """Every item of every spec, in order; repeated keys handled by :func:`dedupe`; files a folder walk
    passes over (not an image extension) are appended to ``skipped``."""
    opts = options or SourceOptions()
    for spec in specs:
        yield from dedupe(_open_one(str(spec), opts, skipped))


def _open_one(spec: str, opts: SourceOptions, skipped: list[tuple[Path, str]] | None) -> Iterator[Item]:
    from dogiqa.sources import hf

    if is_shard_spec(spec):
        for shard in expand_shards(spec):
            yield from iter_shard(shard, opts.image_column, opts.keep_columns)
    elif is_table_spec(spec) and Path(spec).is_file():
        cols = _table_columns(spec, opts)
        for part in table_parts(spec):
            yield from iter_table_part(part, cols)
    elif hf.is_hf_spec(spec):
        ds = hf.load(spec, opts.split)
        yield from hf.iter_dataset(ds, _hf_source(spec, opts), opts.image_column, opts.key_column, opts.keep_columns)
    else:  # loose files have no columns to keep
        yield from iter_files(spec, skipped)


def check_sources(specs: Iterable[str | Path], options: SourceOptions | None = None) -> bool:
    """Open every container's schema and expand every shard pattern, so a bad column or pattern is reported
    (SourceError) before any model loads. True when every spec is loose files (their count is cheap)."""
    from dogiqa.sources import hf

    opts = options or SourceOptions()
    loose = True
    for spec in map(str, specs):
        if is_shard_spec(spec):
            expand_shards(spec)
        elif is_table_spec(spec) and Path(spec).is_file():
            _table_columns(spec, opts)
        elif hf.is_hf_spec(spec):
            hf.dataset_columns(hf.load(spec, opts.split), spec, opts.image_column, opts.key_column, opts.keep_columns)
        else:
            continue
        loose = False
    return loose


def _table_columns(path: str, opts: SourceOptions) -> Any:
    return pick_columns(table_schema(path), path, opts.image_column, opts.key_column, opts.keep_columns)


def _hf_source(spec: str, opts: SourceOptions) -> str:
    from dogiqa.sources import hf

    path, split = hf.parse_spec(spec)
    split = split or opts.split
    return f"hf:{resolved(path)}" + (f":{split}" if split else "")


# -- Python objects -> items -----------------------------------------------------------------------------
def as_items(objs: Any) -> Iterator[Item]:
    """Items from what ``DogIQA.score_many`` accepts: a ``datasets.Dataset``; or an iterable of Items, paths,
    bytes, PIL images, Hugging Face image dicts ``{bytes, path}`` or row dicts (the image under ``image``,
    ``img``, ``jpg``, ``png``, ``bytes`` or ``path``; the key under ``__key__``, ``key`` or ``id``)."""
    if _is_hf_dataset(objs):
        yield from from_dataset(objs)
        return
    for i, obj in enumerate(objs):
        yield _as_item(obj, i)


def from_dataset(ds: Any, image_column: str | None = None, key_column: str | None = None,
                 keep_columns: Sequence[str] = ()) -> Iterator[Item]:  # fmt: skip
    """Items of a ``datasets.Dataset`` (decoded or ``Image(decode=False)``), read as Arrow batches."""
    from dogiqa.sources import hf

    return hf.iter_dataset(ds, None, image_column, key_column, tuple(keep_columns))


def _is_hf_dataset(obj: Any) -> bool:
    return type(obj).__module__.startswith("datasets.") and hasattr(obj, "features") and hasattr(obj, "data")


def _as_item(obj: Any, index: int) -> Item:
    if isinstance(obj, Item):
        return obj
    if isinstance(obj, str | Path):
        return file_item(obj)
    if isinstance(obj, bytes | bytearray | memoryview):
        return Item(str(index), bytes(obj), f"<bytes #{index}>")
    if isinstance(obj, Image.Image):
        name = getattr(obj, "filename", "") or ""
        return Item(str(Path(name).resolve()) if name else str(index), obj, name or f"<image #{index}>")
    if isinstance(obj, dict):
        return _dict_item(obj, index)
    return Item(str(index), None, f"<input #{index}>",
                error=f"<input #{index}>: cannot score a {type(obj).__name__} ({describe(obj)}); "
                "give a path, bytes, a PIL image or a dict with an image")  # fmt: skip


_ROW_IMAGE_KEYS = ("image", "img", "jpg", "jpeg", "png", "webp", "bytes", "path")
_ROW_KEY_KEYS = ("__key__", "key", "id")


def _dict_item(row: dict[str, Any], index: int) -> Item:
    if "bytes" in row and set(row) <= {"bytes", "path"}:  # a Hugging Face image struct on its own
        row = {"image": row}
    name = next((k for k in _ROW_IMAGE_KEYS if row.get(k) is not None), None)
    key_name = next((k for k in _ROW_KEY_KEYS if row.get(k) is not None), None)
    if name is None:
        fields = ", ".join(map(str, row)) or "none"
        key = str(row[key_name]) if key_name else str(index)
        return Item(key, None, f"<row #{index}>", error=f"<row #{index}>: no image in the row (fields: {fields})")
    value = row[name]
    if isinstance(value, dict):  # {bytes, path}
        value = value.get("bytes") or value.get("path")
    item = _as_item(value, index)
    return dataclasses.replace(item, key=str(row[key_name])) if key_name else item


# -- Ray units -------------------------------------------------------------------------------------------
def plan_units(specs: Iterable[str | Path], options: SourceOptions | None = None, files_per_unit: int = 64
               ) -> list[Unit]:  # fmt: skip
    """The work of a run in units, each with the keys of its items (read from tar headers, key columns or
    file names; no image is decoded)."""
    from dogiqa.sources import hf

    opts = options or SourceOptions()
    units: list[Unit] = []
    loose: list[str] = []

    def flush_files() -> None:
        by_key: dict[str, str] = {}
        for path in loose:
            by_key.setdefault(file_item(path).key, path)  # a file named twice: once, under its first name
        keys, paths = list(by_key), list(by_key.values())
        for i in range(0, len(paths), files_per_unit):
            units.append(Unit("files", "", files=paths[i : i + files_per_unit], keys=keys[i : i + files_per_unit]))
        loose.clear()

    for spec in map(str, specs):
        if is_shard_spec(spec):
            for shard in expand_shards(spec):
                units.append(Unit("shard", shard, keys=shard_keys(shard), source=resolved(shard)))
        elif is_table_spec(spec) and Path(spec).is_file():
            cols = _table_columns(spec, opts)
            for part in table_parts(spec):
                src = None if cols.paths and cols.key is None else resolved(spec)
                units.append(Unit("table", spec, group=part.group, start=part.first_row,
                                  keys=part_keys(part, cols), source=src))  # fmt: skip
        elif hf.is_hf_spec(spec):
            ds = hf.load(spec, opts.split)
            cols = hf.dataset_columns(ds, spec, opts.image_column, opts.key_column, opts.keep_columns)
            source = _hf_source(spec, opts)
            for start in range(0, len(ds), 1000):
                stop = min(len(ds), start + 1000)
                keys = [str(k) for k in ds.select_columns([cols.key])[start:stop][cols.key]] if cols.key else [
                    str(i) for i in range(start, stop)]  # fmt: skip
                units.append(Unit("hf", spec, start=start, stop=stop, keys=keys, source=source))
        else:
            loose.extend(str(it.image) for it in iter_files(spec))
    flush_files()
    return units


def read_unit(unit: Unit, options: SourceOptions | None = None) -> Iterator[Item]:
    """The items of a unit whose keys are not in ``unit.skip``."""
    from dogiqa.sources import hf

    opts = options or SourceOptions()
    skip = set(unit.skip)
    if unit.kind == "files":
        items: Iterable[Item] = (file_item(p) for p in unit.files)
    elif unit.kind == "shard":
        items = iter_shard(unit.ref, opts.image_column, opts.keep_columns, skip)
    elif unit.kind == "table":
        cols = _table_columns(unit.ref, opts)
        items = iter_table_part(TablePart(unit.ref, unit.group, unit.start), cols, skip)
    elif unit.kind == "hf":
        ds = hf.load(unit.ref, opts.split)
        items = hf.iter_dataset(ds, unit.source, opts.image_column, opts.key_column, opts.keep_columns,
                                unit.start, unit.stop, skip)  # fmt: skip
    else:
        raise ValueError(f"unknown unit kind {unit.kind!r}")
    return (it for it in dedupe(items) if it.key not in skip)
