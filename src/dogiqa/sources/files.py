"""Loose image files: files as given, folders walked (``dogiqa.io.expand_paths``), CSV listings of paths and
dataset recipes ``NAME:ROOT`` (every labelled image of a known dataset found on disk)."""

from __future__ import annotations

import csv
from collections.abc import Iterator
from pathlib import Path

from dogiqa.sources.base import Item, SourceError, file_item

PATH_COLUMNS = ("path", "image", "file", "filename", "image_path")


def iter_files(spec: str | Path, skipped: list[tuple[Path, str]] | None = None) -> Iterator[Item]:
    """Items of a file, a folder (recursive), a ``.csv`` listing or a dataset recipe; files a folder walk
    passes over are appended to ``skipped`` as (path, reason)."""
    from dogiqa.io import expand_paths

    recipe = dataset_recipe(str(spec))
    if recipe is not None:
        yield from (file_item(p) for p in recipe)
        return
    path = Path(spec)
    if path.is_file() and path.suffix.lower() == ".csv":
        for name in csv_paths(path):
            if name:
                yield file_item(name if Path(name).is_absolute() else path.parent / name)
        return
    yield from (file_item(p) for p in expand_paths([path], skipped))


def dataset_recipe(item: str) -> list[str] | None:
    """The image paths of ``NAME:ROOT`` when NAME is a known dataset (and ROOT not an existing file)."""
    name, sep, root = item.partition(":")
    if not sep or not root or Path(item).exists():
        return None
    from dogiqa.datasets import DatasetError, canonical_name, list_datasets, load_dataset

    if canonical_name(name) not in list_datasets():
        return None
    try:
        dataset = load_dataset(name, root=root)
    except DatasetError as exc:
        raise SourceError(f"dataset recipe {item!r}: {exc}", setting="SOURCES") from exc
    return [str(it.path) for it in dataset.items if it.path is not None]


def pick_path_column(columns: list[str], listing: Path) -> str:
    if not columns:
        raise SourceError(f"{listing}: the listing has no columns", setting="SOURCES")
    lower = {c.lower(): c for c in columns}
    return next((lower[c] for c in PATH_COLUMNS if c in lower), columns[0])


def csv_paths(listing: Path) -> list[str]:
    with listing.open(newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        column = pick_path_column(list(reader.fieldnames or []), listing)
        return [(row.get(column) or "").strip() for row in reader]
