"""Generated collections for tests and benchmarks: WebDataset shards and Parquet tables of small images."""

from __future__ import annotations

import io
import tarfile
import time
from collections.abc import Iterable
from pathlib import Path

from dogiqa.testing.images import make_image


def encode(seed: int, size: tuple[int, int] = (48, 40), fmt: str = "PNG") -> bytes:
    """A small generated image, encoded."""
    buf = io.BytesIO()
    make_image(size[0], size[1], seed=seed).save(buf, fmt)
    return buf.getvalue()


def sample_key(i: int) -> str:
    return f"{i:08d}"


def _add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mtime = len(data), int(time.time())
    tar.addfile(info, io.BytesIO(data))


def write_shards(
    folder: Path,
    n: int,
    per_shard: int,
    size: tuple[int, int] = (48, 40),
    corrupt: Iterable[int] = (),
    distinct: int | None = None,
    prefix: str = "data",
) -> list[Path]:
    """Shards ``prefix-000000.tar``...: sample i has ``KEY.png`` (``KEY.jpg`` for odd i), ``KEY.txt`` (a caption)
    and ``KEY.json``; samples in ``corrupt`` hold bytes that are not an image. ``distinct`` images are
    generated and reused (cheap big collections)."""
    folder.mkdir(parents=True, exist_ok=True)
    bad = set(corrupt)
    cache: dict[tuple[int, str], bytes] = {}
    shards = []
    for s, start in enumerate(range(0, n, per_shard)):
        path = folder / f"{prefix}-{s:06d}.tar"
        with tarfile.open(path, "w") as tar:
            for i in range(start, min(n, start + per_shard)):
                ext = "jpg" if i % 2 else "png"
                seed = i if distinct is None else i % distinct
                if (seed, ext) not in cache:
                    cache[(seed, ext)] = encode(seed, size, "JPEG" if ext == "jpg" else "PNG")
                key = sample_key(i)
                _add(tar, f"{key}.{ext}", b"\x00garbage" * 8 if i in bad else cache[(seed, ext)])
                _add(tar, f"{key}.txt", f"caption {i}".encode())
                _add(tar, f"{key}.json", f'{{"i": {i}}}'.encode())
        shards.append(path)
    return shards


def image_rows(n: int, corrupt: Iterable[int] = (), size: tuple[int, int] = (48, 40)) -> list[dict]:
    """Rows ``{id, image: {bytes, path}, caption, url}`` (the Hugging Face image struct); corrupt rows hold
    bytes that are not an image."""
    bad = set(corrupt)
    return [
        {
            "id": f"img-{i:05d}",
            "image": {"bytes": b"not an image" if i in bad else encode(i, size), "path": f"img-{i:05d}.png"},
            "caption": f"caption {i}",
            "url": f"https://example.org/{i}.png",
        }
        for i in range(n)
    ]
