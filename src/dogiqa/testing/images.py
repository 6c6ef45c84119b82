"""Small generated test images (seeded, no downloads)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

# (name, width, height): landscape, portrait, square, tiny; PNG and JPEG
SAMPLE_IMAGES = (
    ("blocks_160x120.png", 160, 120),
    ("blocks_96x128.jpg", 96, 128),
    ("blocks_200x200.png", 200, 200),
    ("blocks_64x48.jpg", 64, 48),
)


def make_image(width: int, height: int, seed: int = 0) -> Image.Image:
    """An RGB image of a few flat coloured rectangles on a gradient, plus mild noise."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width]
    base = np.stack([xx * 255 / max(width - 1, 1), yy * 255 / max(height - 1, 1), np.full_like(xx, 128.0)], -1)
    for _ in range(3):
        x0, y0 = rng.integers(0, width // 2), rng.integers(0, height // 2)
        x1, y1 = (
            x0 + rng.integers(width // 4, width // 2 + 1),
            y0 + rng.integers(height // 4, height // 2 + 1),
        )
        base[y0:y1, x0:x1] = rng.integers(0, 256, 3)
    noisy = base + rng.normal(0, 6, base.shape)
    return Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8), "RGB")


def write_sample_images(folder: str | Path) -> list[Path]:
    """Write SAMPLE_IMAGES into ``folder``; returns their paths in order."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, (name, w, h) in enumerate(SAMPLE_IMAGES):
        path = folder / name
        make_image(w, h, seed=i).save(path, quality=90) if name.endswith(".jpg") else make_image(w, h, i).save(path)
        paths.append(path)
    return paths
