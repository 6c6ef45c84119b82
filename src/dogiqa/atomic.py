"""Atomic file writes: a file we write appears whole or not at all.

The content goes to a temporary file in the same folder (so the rename stays on one filesystem), is flushed
and fsync-ed, then ``os.replace``-d over the target; the folder is fsync-ed too where the OS allows it. A
kill at any moment leaves either the old file or the new one, plus at worst a ``.NAME.*.tmp`` file that the
next write does not read. Readers of files from older runs use :func:`read_json` to skip empty or corrupt
files with a warning instead of crashing.

>>> from dogiqa.atomic import atomic_write_text  # doctest: +SKIP
>>> atomic_write_text("metrics.json", '{"srcc": 0.8}')  # doctest: +SKIP
"""

from __future__ import annotations

import json
import os
import tempfile
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any


@contextmanager
def atomic_open(path: str | Path, mode: str = "w", encoding: str | None = "utf-8", **kwargs: Any) -> Iterator[IO]:
    """Open a temporary file beside ``path`` for writing; on a clean exit it replaces ``path`` atomically,
    on an exception it is removed and ``path`` is left as it was. ``mode``: "w" (text) or "wb"."""
    if mode not in ("w", "wb"):
        raise ValueError(f"atomic_open writes whole files: mode 'w' or 'wb', not {mode!r}")
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        os.chmod(tmp, _mode_for(target))
        with os.fdopen(fd, mode, encoding=None if "b" in mode else encoding, **kwargs) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_dir(target.parent)


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically; returns the path."""
    with atomic_open(path, "wb") as fh:
        fh.write(data)
    return Path(path)


def atomic_write_text(path: str | Path, text: str, encoding: str = "utf-8") -> Path:
    """Write ``text`` to ``path`` atomically; returns the path."""
    with atomic_open(path, "w", encoding=encoding, newline="") as fh:
        fh.write(text)
    return Path(path)


def atomic_save_image(image: Any, path: str | Path, format: str | None = None, **params: Any) -> Path:
    """``PIL.Image.save`` atomically (the format from ``path``'s extension unless given)."""
    target = Path(path)
    fmt = format or _image_format(target)
    with atomic_open(target, "wb") as fh:
        image.save(fh, format=fmt, **params)
    return target


def atomic_savefig(figure: Any, path: str | Path, **kwargs: Any) -> Path:
    """``matplotlib Figure.savefig`` atomically."""
    target = Path(path)
    kwargs.setdefault("format", target.suffix.lstrip(".").lower() or "png")
    with atomic_open(target, "wb") as fh:
        figure.savefig(fh, **kwargs)
    return target


def read_json(path: str | Path, what: str = "file") -> Any | None:
    """JSON from ``path``, or None with a warning when the file is empty or not valid JSON (a leftover of a
    run killed by an older version). Missing files raise FileNotFoundError as usual."""
    target = Path(path)
    text = target.read_text(encoding="utf-8", errors="replace")
    if not text.strip():
        warnings.warn(f"{target}: empty {what} (left by an interrupted run?); skipped", stacklevel=2)
        return None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        warnings.warn(f"{target}: corrupt {what} ({exc}); skipped", stacklevel=2)
        return None


def _image_format(path: Path) -> str:
    from PIL import Image

    Image.init()
    fmt = Image.registered_extensions().get(path.suffix.lower())
    if fmt is None:
        raise ValueError(f"{path}: unknown image extension; pass format=")
    return fmt


def _mode_for(target: Path) -> int:
    """The existing file's permissions, else what a plain ``open`` would give (0666 less the umask)."""
    try:
        return target.stat().st_mode & 0o7777
    except OSError:
        umask = os.umask(0)
        os.umask(umask)
        return 0o666 & ~umask


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # some filesystems refuse fsync on folders
    finally:
        os.close(fd)
