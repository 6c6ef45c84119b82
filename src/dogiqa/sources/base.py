"""The item every source yields: a stable key, where it came from, the image, and pass-through columns."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image

from dogiqa.errors import UsageError

ImageData = str | Path | bytes | Image.Image


class SourceError(UsageError):
    """A collection cannot be opened at all (missing file, no image column, unknown syntax): exit 2."""


@dataclass
class Item:
    """One image of a collection.

    ``key`` is stable across runs (file: resolved path; shard sample: its WebDataset key; table row: the key
    column or the row number); ``source`` names the container (shard or table file; None for loose files and
    in-memory inputs), so ``(source, key)`` identifies the item. ``path`` is the human-readable name used in
    records and error messages. ``image`` is None when ``error`` says why the item could not be read.
    """

    key: str
    image: ImageData | None
    path: str
    source: str | None = None
    columns: dict[str, Any] = field(default_factory=dict)
    error: str | None = None

    @property
    def ident(self) -> str:
        return item_ident(self.source, self.key)


def item_ident(source: str | None, key: str) -> str:
    """One string per item: the key alone for loose files, ``source#key`` inside a container."""
    return key if not source else f"{source}#{key}"


def resolved(path: str | Path) -> str:
    """The absolute, symlink-free name of a file (so ``imgs/a.png`` and ``/abs/imgs/a.png`` are one input)."""
    try:
        return str(Path(path).resolve())
    except (OSError, RuntimeError):  # a symlink loop: keep the name, loading reports the problem
        return str(Path(path).absolute())


def file_item(path: str | Path) -> Item:
    """A loose image file: key = resolved path."""
    return Item(key=resolved(path), image=Path(path), path=str(path))


def dedupe(items: Iterable[Item]) -> Iterator[Item]:
    """A loose file named twice is scored once; a key repeated inside a shard or table becomes an error record
    for the repeat (the first one is scored)."""
    seen: dict[str, str] = {}
    for item in items:
        ident = item.ident
        if ident in seen and item.source is None:
            continue
        if ident in seen and item.error is None:
            yield Item(
                key=item.key,
                image=None,
                path=item.path,
                source=item.source,
                columns=item.columns,
                error=f"{item.path}: duplicate key {item.key!r} (already scored from {seen[ident]}); "
                "each item needs a unique key (--key-column)",
            )
            continue
        seen.setdefault(ident, item.path)
        yield item


def describe(obj: object) -> str:
    """A short description of an input for error messages (never the repr of bytes)."""
    if isinstance(obj, bytes | bytearray | memoryview):
        return f"<{len(obj)} bytes>"
    if isinstance(obj, Image.Image):
        return f"<{obj.mode} image {obj.width}x{obj.height}>"
    text = repr(obj)
    return text if len(text) <= 80 else text[:77] + "..."
