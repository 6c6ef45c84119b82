"""Image loading and validation: every failure is an ImageLoadError naming the file and the problem."""

from __future__ import annotations

import hashlib
import io
import warnings
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

IMAGE_EXTENSIONS = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".gif", ".ppm", ".pgm"}
DEFAULT_MAX_PIXELS = 100_000_000  # ~ a 12,000 x 8,000 photo; larger counts as a decompression bomb


class ImageLoadError(Exception):
    """An image could not be read. ``path`` names the file, the message says what is wrong."""

    def __init__(self, path: str | Path, reason: str):
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{path}: {reason}")


def expand_paths(paths: Iterable[str | Path]) -> Iterator[Path]:
    """Files as given; folders expanded recursively to their image files (sorted). Missing paths and folders
    without images are yielded as they are, so that loading reports them as per-image errors."""
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            files = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)
            yield from files or [path]  # an empty folder comes back as itself: load_image reports it
        else:
            yield path


def _to_rgb(img: Image.Image) -> Image.Image:
    if img.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        arr = np.asarray(img, dtype=np.float64)
        top = 65535.0 if img.mode.startswith("I") and arr.max() > 255 else max(float(arr.max()), 1.0)
        arr = np.clip(arr / top * 255.0 + 0.5, 0, 255).astype(np.uint8)
        img = Image.fromarray(arr, "L")
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return img.convert("RGB")


def load_image(source: str | Path | bytes | Image.Image, max_pixels: int | None = DEFAULT_MAX_PIXELS) -> Image.Image:
    """Open an image as 8-bit RGB: EXIF orientation applied; grayscale, palette, alpha (over white) and 16-bit
    converted; images over ``max_pixels`` refused (None disables the cap)."""
    if isinstance(source, Image.Image):
        name, img = "<image>", source
    else:
        name = "<bytes>" if isinstance(source, bytes) else str(source)
        img = _open(source, name)
    w, h = img.size
    if w == 0 or h == 0:
        raise ImageLoadError(name, f"image has zero size ({w}x{h})")
    if max_pixels is not None and w * h > max_pixels:
        raise ImageLoadError(
            name,
            f"image has {w * h:,} pixels, over the cap of {max_pixels:,} "
            "(possible decompression bomb; raise --max-pixels to allow it)",
        )
    try:
        img.load()
        img = ImageOps.exif_transpose(img) or img
        return _to_rgb(img)
    except ImageLoadError:
        raise
    except (OSError, ValueError, SyntaxError) as exc:
        raise ImageLoadError(name, f"truncated or corrupt image data ({exc})") from exc


def _open(source: str | Path | bytes, name: str) -> Image.Image:
    if isinstance(source, bytes):
        data = source
    else:
        path = Path(source)
        if not path.exists():
            raise ImageLoadError(name, "file not found")
        if path.is_dir():
            raise ImageLoadError(
                name, f"folder contains no image files (looked for {', '.join(sorted(IMAGE_EXTENSIONS))})"
            )
        data = path.read_bytes()
    if not data:
        raise ImageLoadError(name, "file is empty (0 bytes)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # our own cap applies
            return Image.open(io.BytesIO(data))
    except UnidentifiedImageError as exc:
        raise ImageLoadError(name, "not an image file (unknown or unsupported format)") from exc
    except Image.DecompressionBombError as exc:
        raise ImageLoadError(name, f"image too large: {exc}") from exc
    except (OSError, ValueError, SyntaxError) as exc:
        raise ImageLoadError(name, f"cannot read image ({exc})") from exc


def content_hash(img: Image.Image) -> str:
    """A hash of the decoded RGB pixels and size (stable across file names and encoders' metadata)."""
    h = hashlib.sha256(f"{img.size[0]}x{img.size[1]}".encode())
    h.update(np.asarray(img.convert("RGB")).tobytes())
    return h.hexdigest()[:32]
