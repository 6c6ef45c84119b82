"""Helpers shared by the evaluation tests (a plain module: pytest conftest modules clash by name)."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
from PIL import Image


def write_image(path: Path, value: int = 128, size: tuple[int, int] = (8, 6)) -> Path:
    """A tiny solid-colour image in the format its suffix names."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fmt = {".jpg": "JPEG", ".jpeg": "JPEG", ".png": "PNG", ".bmp": "BMP"}[path.suffix.lower()]
    Image.new("RGB", size, (value, 255 - value, value // 2)).save(path, format=fmt)
    return path


def write_csv(path: Path, header: list[str], rows: list[list[object]], quote_all: bool = False) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f, quoting=csv.QUOTE_NONNUMERIC if quote_all else csv.QUOTE_MINIMAL)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def mos_values(n: int, lo: float, hi: float, seed: int = 0) -> list[float]:
    return [round(float(v), 4) for v in np.random.default_rng(seed).uniform(lo, hi, n)]
