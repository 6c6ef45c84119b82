"""WebDataset tar shards, read as a stream with Python's ``tarfile`` (nothing is extracted to disk).

A sample is the run of consecutive members sharing a key (the member name up to the first dot of its base
name, as WebDataset defines it); its image is the member whose extension is ``image_ext`` (default: the first
image extension found). A member that cannot be decoded is that sample's error record; a truncated or corrupt
shard yields every sample read before the damage, then one error record naming the shard.
"""

from __future__ import annotations

import glob
import re
import tarfile
from collections.abc import Iterable, Iterator
from pathlib import Path

from dogiqa.sources.base import Item, SourceError, resolved

SHARD_SUFFIXES = (".tar", ".tar.gz", ".tgz")
IMAGE_EXTS = ("jpg", "jpeg", "png", "webp", "ppm", "pgm", "bmp", "tif", "tiff", "gif", "jxl", "avif", "jfif")
_KEY_EXT = re.compile(r"^((?:.*/|)[^.]+)[.]([^/]*)$")
TEXT_EXTS = ("txt", "json", "cls", "caption", "url", "key")


def is_shard_spec(spec: str) -> bool:
    """A tar shard, a glob of them or a brace range (``data-{000..099}.tar``)."""
    return spec.lower().endswith(SHARD_SUFFIXES)


def expand_shards(spec: str) -> list[str]:
    """Brace ranges, then globs; a pattern that matches nothing is an error (a single missing shard is not:
    it becomes an error record)."""
    try:
        from braceexpand import braceexpand
    except ImportError:  # pragma: no cover - installed with webdataset
        names = [spec]
    else:
        names = list(braceexpand(spec))
    out: list[str] = []
    for name in names:
        if glob.has_magic(name):
            found = sorted(glob.glob(name))
            if not found:
                raise SourceError(f"{name}: no shard matches this pattern", setting="SOURCES")
            out.extend(found)
        else:
            out.append(name)
    return out


def split_member(name: str) -> tuple[str | None, str]:
    """(sample key, extension) of a member name, WebDataset's rule; (None, "") when it has no extension."""
    m = _KEY_EXT.match(name)
    return (m.group(1), m.group(2).lower()) if m else (None, "")


def _pick_image(exts: Iterable[str], image_ext: str | None) -> str | None:
    exts = list(exts)
    if image_ext:
        return image_ext.lower().lstrip(".") if image_ext.lower().lstrip(".") in exts else None
    for ext in exts:
        if ext.rsplit(".", 1)[-1] in IMAGE_EXTS:
            return ext
    return None


def _sample_item(
    shard: str, source: str, key: str, members: dict[str, bytes], image_ext: str | None, keep: tuple[str, ...]
) -> Item:
    path = f"{shard}#{key}"
    columns = {c: _text(members.get(c.lower())) for c in keep}
    ext = _pick_image(members, image_ext)
    if ext is None:
        want = f"a .{image_ext} member" if image_ext else "an image member"
        found = ", ".join(sorted(members)) or "none"
        return Item(key, None, path, source, columns, error=f"{path}: the sample lacks {want} (members: {found})")
    return Item(key, members[ext], f"{path}.{ext}", source, columns)


def _text(data: bytes | None) -> str | None:
    if data is None:
        return None
    return data.decode("utf-8", errors="replace")


def iter_shard(
    shard: str | Path, image_ext: str | None = None, keep_columns: Iterable[str] = (), skip: set[str] | None = None
) -> Iterator[Item]:
    """The samples of one shard in order (samples whose key is in ``skip`` are passed over unread)."""
    shard = str(shard)
    keep = tuple(keep_columns)
    source = resolved(shard)  # the record's source: the same shard however it was named
    for key, members, error in _samples(shard, read=True, skip=skip or set()):
        if error is not None:
            yield Item(key, None, shard, source, error=error)
        elif members is not None:
            yield _sample_item(shard, source, key, members, image_ext, keep)


def _check_end(shard: str, tar: tarfile.TarFile) -> None:
    """An uncompressed tar ends with two zero blocks after its last member; a file cut short has not (a
    compressed one is checked by its decompressor)."""
    if shard.lower().endswith(".tar") and Path(shard).stat().st_size - tar.offset < 2 * tarfile.BLOCKSIZE:
        raise tarfile.ReadError("the file ends without the end-of-archive blocks: it was cut short")


def shard_keys(shard: str | Path) -> list[str]:
    """The keys of every item ``iter_shard`` yields (including an error record's), from the tar headers only:
    a resumed run plans from them without decoding anything."""
    return [key for key, _, _ in _samples(str(shard), read=False, skip=set())]


def _samples(shard: str, read: bool, skip: set[str]) -> Iterator[tuple[str, dict[str, bytes] | None, str | None]]:
    """(key, members or None when not read, error) per sample; a damaged shard ends with one error."""
    if not Path(shard).is_file():
        yield "", None, f"{shard}: shard not found"
        return
    key: str | None = None
    members: dict[str, bytes] | None = None
    try:
        with tarfile.open(shard, mode="r|*") as tar:
            for info in tar:
                k, ext = split_member(info.name)
                if not info.isfile() or k is None:
                    continue
                if k != key:
                    if key is not None:
                        yield key, members, None
                    key = k
                    members = {} if read and k not in skip else None
                if members is not None:
                    fh = tar.extractfile(info)
                    members[ext] = data = fh.read() if fh else b""
                    if len(data) < info.size:
                        raise tarfile.ReadError(f"member {info.name} is cut short")
            _check_end(shard, tar)
    except (tarfile.TarError, EOFError, OSError, ValueError) as exc:
        where = f"in sample {key!r}" if key is not None else "before the first sample"
        yield key or "", None, f"{shard}: truncated or corrupt shard {where} ({exc})"
        return
    if key is not None:
        yield key, members, None
