"""Hugging Face ``datasets``: a ``Dataset`` object, a folder written by ``save_to_disk``, or local files that
``datasets.load_dataset`` reads (``hf:PATH`` or ``hf:PATH:SPLIT``). Rows are read as Arrow batches, so an
``Image`` column is never decoded by ``datasets`` (``decode=False`` or not) and memory stays flat."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from dogiqa.sources.base import Item, SourceError
from dogiqa.sources.tables import BATCH_ROWS, Columns, pick_columns, rows_to_items

PREFIX = "hf:"


def _datasets() -> Any:
    try:
        import datasets
    except ImportError as exc:  # pragma: no cover - the extra is installed in CI
        raise SourceError("Hugging Face datasets need the extra: pip install 'dogiqa[datasets]'") from exc
    return datasets


def is_saved_dataset(path: Path) -> bool:
    """A folder written by ``Dataset.save_to_disk`` or ``DatasetDict.save_to_disk``."""
    return path.is_dir() and ((path / "state.json").is_file() or (path / "dataset_dict.json").is_file())


def is_hf_spec(spec: str) -> bool:
    return spec.startswith(PREFIX) or is_saved_dataset(Path(spec))


def parse_spec(spec: str) -> tuple[str, str | None]:
    """(path, split) of ``hf:PATH[:SPLIT]`` or a saved folder."""
    body = spec[len(PREFIX) :] if spec.startswith(PREFIX) else spec
    if not Path(body).exists() and ":" in body:
        body, split = body.rsplit(":", 1)
        return body, split or None
    return body, None


def load(spec: str, split: str | None = None) -> Any:
    """The ``datasets.Dataset`` a spec names (one split of a DatasetDict: SPLIT, else train, else the only)."""
    datasets = _datasets()
    path, spec_split = parse_spec(spec)
    split = spec_split or split
    if not Path(path).exists():
        raise SourceError(f"{spec}: no such dataset folder or file", setting="SOURCES")
    try:
        ds = datasets.load_from_disk(path) if is_saved_dataset(Path(path)) else datasets.load_dataset(path)
    except Exception as exc:  # noqa: BLE001 - datasets raises many kinds; all mean "cannot open"
        raise SourceError(f"{spec}: cannot load the dataset: {type(exc).__name__}: {exc}", setting="SOURCES") from exc
    if isinstance(ds, datasets.DatasetDict):
        names = list(ds)
        chosen = split or ("train" if "train" in names else names[0] if len(names) == 1 else None)
        if chosen not in names:
            raise SourceError(f"{spec}: choose a split as hf:PATH:SPLIT (splits: {', '.join(names)})",
                              setting="SOURCES")  # fmt: skip
        ds = ds[chosen]
    return ds


def dataset_columns(
    ds: Any, where: str, image_column: str | None, key_column: str | None, keep_columns: Sequence[str]
) -> Columns:
    datasets = _datasets()
    if image_column is None:
        images = [n for n, f in ds.features.items() if isinstance(f, datasets.Image)]
        image_column = images[0] if images else None
    return pick_columns(ds.data.schema, where, image_column, key_column, keep_columns)


def iter_dataset(
    ds: Any,
    source: str | None = None,
    image_column: str | None = None,
    key_column: str | None = None,
    keep_columns: Sequence[str] = (),
    start: int = 0,
    stop: int | None = None,
    skip: set[str] | None = None,
) -> Iterator[Item]:
    """Items of rows ``start:stop`` of a ``datasets.Dataset`` (key: key column or row number)."""
    cols = dataset_columns(ds, source or "<dataset>", image_column, key_column, keep_columns)
    stop = len(ds) if stop is None else min(stop, len(ds))
    part = ds.select_columns(cols.read)
    if start or stop < len(ds):
        part = part.select(range(start, stop))
    batches = part.with_format("arrow").iter(batch_size=BATCH_ROWS)
    base = Path(parse_spec(source)[0]) if source else None
    yield from rows_to_items(batches, cols, source, base, first_row=start, skip=skip)
