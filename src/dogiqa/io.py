"""Image loading and validation: every failure is an ImageLoadError naming the file and the problem.

Reading a file (``read_file``): the path is ``stat``-ed first and anything that is not a regular file (FIFO,
character or block device, socket) is refused before it is opened, so a FIFO never blocks and ``/dev/zero`` is
never read; a file over ``max_file_bytes`` is refused by its size, and the read itself is bounded too.

Decoding (``decode_image``): any exception Pillow raises while identifying or decoding (OSError, ValueError,
SyntaxError, RuntimeError, NotImplementedError, DecompressionBombError, MemoryError...) becomes an
ImageLoadError. Pixel conversion to 8-bit RGB (``to_rgb``):

- 16-bit modes (``I;16*``) are scaled by their bit depth: value / 257 (65535 -> 255, 257 -> 1), never by the
  image's own maximum; 32-bit integer ``I`` images are read on the same 0..65535 scale (Pillow opens 16-bit
  PNG/PGM and PGM with any maxval > 255 this way) and refused when a value lies outside it.
- float ``F`` images: NaN or infinite values are refused; values in [0, 1] are scaled by 255, values up to 255
  are taken as 8-bit, values up to 65535 as 16-bit (/ 257); negative values or values over 65535 are refused.
- alpha (RGBA, LA, PA, palette transparency) is composited over white; everything else is ``convert("RGB")``
  (CMYK, YCbCr, LAB, HSV, 1-bit, palette).
"""

from __future__ import annotations

import errno
import hashlib
import io
import os
import stat
import warnings
from collections.abc import Iterable, Iterator
from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

DEFAULT_MAX_PIXELS = 100_000_000  # ~ a 12,000 x 8,000 photo; larger counts as a decompression bomb
DEFAULT_MAX_FILE_BYTES = 256 * 1024 * 1024  # larger files are refused without being read
SKIP_NOT_IMAGE = "not an image extension"
SKIP_LINKED_FOLDER = "symbolic link to a folder (not followed)"


class ImageLoadError(Exception):
    """An image could not be read. ``path`` names the file, the message says what is wrong."""

    def __init__(self, path: str | Path, reason: str):
        self.path = str(path)
        self.reason = one_line(reason)
        super().__init__(f"{path}: {self.reason}")


def one_line(text: str) -> str:
    """``text`` on one line (causes from libraries may hold newlines)."""
    return " ".join(str(text).split())


@lru_cache(maxsize=1)
def image_extensions() -> frozenset[str]:
    """Lower-case extensions (with the dot) of every format this Pillow build can open."""
    Image.init()
    openable = set(Image.OPEN) | {"MPO"}  # MPO files are opened by the JPEG plugin; PDF/PALM are save-only
    return frozenset(ext.lower() for ext, fmt in Image.registered_extensions().items() if fmt in openable)


# ---------------------------------------------------------------- folder walk


def expand_paths(paths: Iterable[str | Path], skipped: list[tuple[Path, str]] | None = None) -> Iterator[Path]:
    """Files as given (always attempted); folders walked recursively (sorted, symlinked folders not followed).

    A walk yields every entry whose extension Pillow can open (regular or not: loading refuses non-regular
    files with a reason), and every broken symlink or symlink loop (loading reports it). Everything else is
    appended to ``skipped`` as ``(path, reason)``. A folder that yields nothing comes back as itself so that
    loading reports it (empty, or unreadable)."""
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            found = sorted(_walk(path, skipped if skipped is not None else []), key=str)
            yield from found or [path]
        else:
            yield path


def _walk(folder: Path, skipped: list[tuple[Path, str]]) -> Iterator[Path]:
    try:
        entries = list(os.scandir(folder))
    except OSError:
        yield folder  # unreadable folder: loading says why
        return
    exts = image_extensions()
    for entry in entries:
        path = Path(entry.path)
        try:
            if entry.is_dir(follow_symlinks=False):
                yield from _walk(path, skipped)
                continue
            if entry.is_symlink():
                try:
                    target = os.stat(path)
                except OSError:
                    yield path  # broken link or loop: an error record
                    continue
                if stat.S_ISDIR(target.st_mode):
                    skipped.append((path, SKIP_LINKED_FOLDER))
                    continue
        except OSError:
            yield path
            continue
        if path.suffix.lower() in exts:
            yield path
        else:
            skipped.append((path, SKIP_NOT_IMAGE))


# ---------------------------------------------------------------- reading one file

_KINDS = {
    stat.S_IFIFO: "a FIFO (named pipe)",
    stat.S_IFCHR: "a character device",
    stat.S_IFBLK: "a block device",
    stat.S_IFSOCK: "a socket",
}


def read_file(path: str | Path, max_file_bytes: int | None = DEFAULT_MAX_FILE_BYTES) -> bytes:
    """The bytes of a regular file, refusing (before any read) folders, FIFOs, devices, sockets, broken links
    and files over ``max_file_bytes`` (None: no cap)."""
    name = str(path)
    try:
        st = os.stat(path)
    except OSError as exc:
        raise ImageLoadError(name, _stat_reason(path, exc)) from None
    if stat.S_ISDIR(st.st_mode):
        raise ImageLoadError(name, _folder_reason(path))
    if not stat.S_ISREG(st.st_mode):
        kind = _KINDS.get(stat.S_IFMT(st.st_mode), "not a regular file")
        raise ImageLoadError(name, f"not a regular file ({kind}); refused without reading it")
    _check_size(name, st.st_size, max_file_bytes)
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        raise ImageLoadError(name, _stat_reason(path, exc)) from None
    with os.fdopen(fd, "rb") as fh:
        if not stat.S_ISREG(os.fstat(fd).st_mode):  # replaced between stat and open
            raise ImageLoadError(name, "not a regular file; refused without reading it")
        try:
            data = fh.read(max_file_bytes + 1 if max_file_bytes is not None else -1)
        except OSError as exc:
            raise ImageLoadError(name, f"read failed: {exc.strerror or exc}") from None
    _check_size(name, len(data), max_file_bytes)
    return data


def _check_size(name: str, size: int, cap: int | None) -> None:
    if size == 0:
        raise ImageLoadError(name, "file is empty (0 bytes)")
    if cap is not None and size > cap:
        raise ImageLoadError(
            name, f"file is {size:,} bytes, over the file-size cap of {cap:,} (raise --max-file-size to allow it)"
        )


def _stat_reason(path: str | Path, exc: OSError) -> str:
    if exc.errno == errno.ELOOP:
        return "symbolic link loop (the link resolves back to itself)"
    if exc.errno == errno.ENOENT:
        if os.path.islink(path):
            return f"broken symbolic link (its target {os.readlink(path)!r} does not exist)"
        return "file not found"
    if exc.errno in (errno.EACCES, errno.EPERM):
        return "permission denied"
    if exc.errno == errno.ENAMETOOLONG:
        return "file name too long for this filesystem"
    return f"cannot access the file: {exc.strerror or exc}"


def _folder_reason(path: str | Path) -> str:
    try:
        with os.scandir(path) as it:
            n = sum(1 for _ in it)
    except OSError as exc:
        return f"cannot list the folder: {exc.strerror or exc}"
    return f"folder contains no image files ({n} other entries; image extensions are those Pillow can open)"


# ---------------------------------------------------------------- decoding


def load_image(
    source: str | Path | bytes | Image.Image,
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
    max_file_bytes: int | None = DEFAULT_MAX_FILE_BYTES,
) -> Image.Image:
    """Open an image as 8-bit RGB: EXIF orientation applied; modes converted as described in the module
    docstring; files over ``max_file_bytes`` and images over ``max_pixels`` refused (None disables a cap)."""
    if isinstance(source, Image.Image):
        return decode_image(source, "<image>", max_pixels)
    if isinstance(source, bytes):
        return decode_image(source, "<bytes>", max_pixels, max_file_bytes)
    return decode_image(read_file(source, max_file_bytes), str(source), max_pixels)


def decode_image(
    data: bytes | Image.Image,
    name: str,
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
    max_file_bytes: int | None = None,
) -> Image.Image:
    """Decode bytes (or finish a PIL image) to 8-bit RGB; every failure is an ImageLoadError naming ``name``."""
    img = data if isinstance(data, Image.Image) else _identify(data, name, max_file_bytes)
    w, h = img.size
    if w <= 0 or h <= 0:
        fmt = f", format {img.format} without a decoder here" if img.format else ""
        raise ImageLoadError(name, f"image has zero size ({w}x{h}{fmt})")
    if max_pixels is not None and w * h > max_pixels:
        raise ImageLoadError(
            name,
            f"image has {w * h:,} pixels, over the cap of {max_pixels:,} "
            "(possible decompression bomb; raise --max-pixels to allow it)",
        )
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # Pillow's own warnings (bomb, EXIF, palette); our caps apply
            img.load()
            img = ImageOps.exif_transpose(img) or img
            return to_rgb(img, name)
    except ImageLoadError:
        raise
    except MemoryError:
        raise ImageLoadError(name, "out of memory while decoding (lower --max-pixels)") from None
    except Exception as exc:  # noqa: BLE001 - OSError (truncated), RuntimeError, NotImplementedError, ValueError...
        raise ImageLoadError(name, f"cannot decode the image data ({type(exc).__name__}: {exc})") from None


def _identify(data: bytes, name: str, max_file_bytes: int | None) -> Image.Image:
    _check_size(name, len(data), max_file_bytes)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # DecompressionBombWarning: our own cap applies
            return Image.open(io.BytesIO(data))
    except UnidentifiedImageError:
        raise ImageLoadError(name, "not an image file (unknown or unsupported format)") from None
    except Image.DecompressionBombError as exc:
        raise ImageLoadError(name, f"image too large (decompression bomb): {exc}") from None
    except MemoryError:
        raise ImageLoadError(name, "out of memory while reading the image header") from None
    except Exception as exc:  # noqa: BLE001 - NotImplementedError (DDS), SyntaxError, struct.error...
        raise ImageLoadError(name, f"cannot read image ({type(exc).__name__}: {exc})") from None


# ---------------------------------------------------------------- pixel conversion


def to_rgb(img: Image.Image, name: str = "<image>") -> Image.Image:
    """8-bit RGB from any Pillow mode (see the module docstring for the rules)."""
    if img.mode.startswith("I;16") or img.mode in ("I", "F"):
        img = Image.fromarray(_deep_to_uint8(img, name), "L")
    if img.mode in ("RGBA", "LA", "PA", "RGBa", "La") or (img.mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return img.convert("RGB")


def _deep_to_uint8(img: Image.Image, name: str) -> np.ndarray:
    arr = np.asarray(img, dtype=np.float64)
    if img.mode == "F":
        if not np.isfinite(arr).all():
            bad = int((~np.isfinite(arr)).sum())
            raise ImageLoadError(name, f"float image has {bad} NaN or infinite pixel values")
        lo, hi = float(arr.min()), float(arr.max())
        if lo < 0 or hi > 65535:
            raise ImageLoadError(name, f"float pixel values span {lo:g}..{hi:g}: outside 0..65535, no known scale")
        arr = arr * 255.0 if hi <= 1.0 else (arr if hi <= 255.0 else arr / 257.0)
    else:
        lo, hi = float(arr.min()), float(arr.max())
        if lo < 0 or hi > 65535:
            raise ImageLoadError(name, f"integer pixel values span {lo:g}..{hi:g}: outside the 16-bit range")
        arr = arr / 257.0
    return np.clip(np.floor(arr + 0.5), 0, 255).astype(np.uint8)


def content_hash(img: Image.Image) -> str:
    """A hash of the decoded RGB pixels and size (stable across file names and encoders' metadata)."""
    h = hashlib.sha256(f"{img.size[0]}x{img.size[1]}".encode())
    h.update(np.asarray(img.convert("RGB")).tobytes())
    return h.hexdigest()[:32]
