"""A varied generated image corpus for conformance checks of the classical scorers (seeded, no downloads).

Distortions: Gaussian blur, additive noise, JPEG at quality 2-30, grey-level quantisation, flat and
saturated patches; sizes from 32 px to 2000 px. ``brisque_corpus(n)`` is deterministic for a given ``n``.
"""

from __future__ import annotations

import io
from collections.abc import Iterator

import numpy as np
from PIL import Image, ImageFilter

DISTORTIONS = ("clean", "blur", "noise", "jpeg", "quantise", "flat", "saturate")


def base_image(width: int, height: int, seed: int) -> Image.Image:
    """A textured RGB scene: smooth gradients, sinusoidal texture, a few rectangles and mild noise."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float64)
    fx, fy = rng.uniform(3, 25, 2)
    tex = 60 * np.sin(xx / fx + rng.uniform(0, 6)) * np.cos(yy / fy)
    rgb = np.stack([80 + 100 * xx / max(width - 1, 1), 60 + 120 * yy / max(height - 1, 1), np.full_like(xx, 120)], -1)
    rgb += tex[..., None] * rng.uniform(0.4, 1.0, 3)
    for _ in range(3):
        x0, y0 = rng.integers(0, max(width - 4, 1)), rng.integers(0, max(height - 4, 1))
        x1, y1 = x0 + rng.integers(2, max(width // 3, 3)), y0 + rng.integers(2, max(height // 3, 3))
        rgb[y0:y1, x0:x1] = rng.integers(0, 256, 3)
    rgb += rng.normal(0, 3, rgb.shape)
    return Image.fromarray(np.clip(rgb, 0, 255).astype(np.uint8), "RGB")


def distort(img: Image.Image, kind: str, rng: np.random.Generator) -> Image.Image:
    """One distortion of ``img`` (kinds in DISTORTIONS), its strength drawn from ``rng``."""
    arr = np.asarray(img).astype(np.float64)
    if kind == "blur":
        return img.filter(ImageFilter.GaussianBlur(float(rng.uniform(0.5, 6))))
    if kind == "noise":
        return Image.fromarray(np.clip(arr + rng.normal(0, rng.uniform(2, 40), arr.shape), 0, 255).astype(np.uint8))
    if kind == "jpeg":
        buf = io.BytesIO()
        img.save(buf, "JPEG", quality=int(rng.integers(2, 31)))
        return Image.open(buf).convert("RGB")
    if kind == "quantise":
        step = float(rng.choice([8, 16, 32, 64, 128]))
        return Image.fromarray(np.clip(np.round(arr / step) * step, 0, 255).astype(np.uint8))
    h, w = arr.shape[:2]
    y0, x0 = int(rng.integers(0, h // 2 + 1)), int(rng.integers(0, w // 2 + 1))
    y1, x1 = y0 + max(h // 2, 1), x0 + max(w // 2, 1)
    if kind == "flat":
        arr[y0:y1, x0:x1] = rng.integers(0, 256, 3)
    elif kind == "saturate":
        arr = np.clip(arr * rng.uniform(1.5, 3.0), 0, 255)
        arr[y0:y1, x0:x1] = float(rng.choice([0, 255]))
    return Image.fromarray(arr.astype(np.uint8))


def brisque_corpus(
    n: int = 36, seed: int = 0, sizes: tuple[int, ...] = (32, 33, 48, 64, 97, 160, 256)
) -> Iterator[tuple[str, Image.Image]]:
    """``n`` (name, image) pairs cycling through DISTORTIONS; sides drawn from ``sizes`` (each side separately)."""
    rng = np.random.default_rng(seed)
    for i in range(n):
        kind = DISTORTIONS[i % len(DISTORTIONS)]
        w, h = (int(rng.choice(sizes)) for _ in range(2))
        img = distort(base_image(w, h, seed * 100003 + i), kind, rng)
        yield f"{i:03d}-{kind}-{w}x{h}", img
