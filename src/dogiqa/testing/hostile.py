"""A generated corpus of hostile and unusual inputs (tests and ``benchmarks/hostile_corpus.py``).

``build_corpus(folder)`` writes one entry per kind and returns the kinds with what a run must do with each:
``scored`` (decodes to a valid image), ``error`` (an error record naming the file; ``hint`` is a fragment of
the reason) or ``skipped`` (not an image extension / a linked folder; counted in the summary). Everything is
small (the whole corpus is a few MB and builds in about a second); "huge" images are crafted headers.
"""

from __future__ import annotations

import io
import os
import socket
import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, features


@dataclass(frozen=True)
class Kind:
    """One kind of input: ``path`` is relative to the corpus folder (bytes-safe ``str``)."""

    name: str
    category: str
    path: str
    expect: str  # scored | error | skipped
    hint: str = ""


def _noise(w: int = 48, h: int = 32, seed: int = 0) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8))


def _encoded(img: Image.Image, fmt: str, **params: object) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **params)
    return buf.getvalue()


def _png_header_only(width: int, height: int) -> bytes:
    """A PNG that claims ``width`` x ``height`` (8-bit gray) but holds one tiny IDAT: a decompression bomb."""

    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


def _dds_unknown_fourcc() -> bytes:
    data = bytearray(_encoded(_noise(16, 16), "DDS"))
    data[80:84] = struct.pack("<I", 4)  # DDPF_FOURCC
    data[84:88] = b"ZZZZ"  # no such pixel format: NotImplementedError inside Image.open
    return bytes(data)


def _exif_rotated(orientation: int) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = orientation
    return _encoded(_noise(40, 20, orientation), "JPEG", exif=exif.tobytes())


def _tiff(arr: np.ndarray, mode: str | None = None) -> bytes:
    return _encoded(Image.fromarray(arr, mode) if mode else Image.fromarray(arr), "TIFF")


def _animated(fmt: str) -> bytes:
    frames = [_noise(24, 24, s).convert("P") for s in range(3)]
    buf = io.BytesIO()
    frames[0].save(buf, fmt, save_all=True, append_images=frames[1:], duration=50, loop=0)
    return buf.getvalue()


def _cut(data: bytes, frac: float = 0.5) -> bytes:
    return data[: max(1, int(len(data) * frac))]


def _flip_middle(data: bytes) -> bytes:
    out = bytearray(data)
    start = len(out) // 3
    for i in range(start, min(len(out), start + 64)):
        out[i] ^= 0xFF
    return bytes(out)


def _files() -> list[tuple[str, str, str, Callable[[], bytes], str, str]]:
    """(name, category, relative path, bytes factory, expect, hint) of the corpus's regular files."""
    n = _noise
    f: list[tuple[str, str, str, Callable[[], bytes], str, str]] = [
        # formats that must be scored (folder walks included: Pillow's own extension list)
        ("png", "format", "fmt/rgb.png", lambda: _encoded(n(), "PNG"), "scored", ""),
        ("jpeg", "format", "fmt/rgb.jpg", lambda: _encoded(n(), "JPEG"), "scored", ""),
        ("jpeg-upper-ext", "format", "fmt/UPPER.JPG", lambda: _encoded(n(), "JPEG"), "scored", ""),
        ("jfif", "format", "fmt/photo.jfif", lambda: _encoded(n(), "JPEG"), "scored", ""),
        ("jpe", "format", "fmt/photo.jpe", lambda: _encoded(n(), "JPEG"), "scored", ""),
        ("gif-animated", "format", "fmt/anim.gif", lambda: _animated("GIF"), "scored", ""),
        ("apng-animated", "format", "fmt/anim.apng", lambda: _animated("PNG"), "scored", ""),
        ("bmp", "format", "fmt/rgb.bmp", lambda: _encoded(n(), "BMP"), "scored", ""),
        ("dib", "format", "fmt/rgb.dib", lambda: _encoded(n(), "DIB"), "scored", ""),
        ("tiff", "format", "fmt/rgb.tif", lambda: _encoded(n(), "TIFF"), "scored", ""),
        ("tiff-multipage", "format", "fmt/pages.tiff", lambda: _animated("TIFF"), "scored", ""),
        ("webp", "format", "fmt/rgb.webp", lambda: _encoded(n(), "WEBP"), "scored", ""),
        ("webp-lossless-alpha", "format", "fmt/alpha.webp", lambda: _encoded(n().convert("RGBA"), "WEBP",
                                                                           lossless=True), "scored", ""),
        ("tga", "format", "fmt/rgb.tga", lambda: _encoded(n(), "TGA"), "scored", ""),
        ("ico", "format", "fmt/icon.ico", lambda: _encoded(n(32, 32), "ICO"), "scored", ""),
        ("pbm", "format", "fmt/bits.pbm", lambda: _encoded(n().convert("1"), "PPM"), "scored", ""),
        ("pgm", "format", "fmt/gray.pgm", lambda: _encoded(n().convert("L"), "PPM"), "scored", ""),
        ("ppm", "format", "fmt/rgb.ppm", lambda: _encoded(n(), "PPM"), "scored", ""),
        ("pgm-maxval-1023", "format", "fmt/deep.pgm", lambda: b"P5\n2 2\n1023\n" + bytes(8), "scored", ""),
        ("qoi", "format", "fmt/rgb.qoi", lambda: _encoded(n(), "QOI"), "scored", ""),
        ("pcx", "format", "fmt/rgb.pcx", lambda: _encoded(n(), "PCX"), "scored", ""),
        ("sgi", "format", "fmt/rgb.sgi", lambda: _encoded(n(), "SGI"), "scored", ""),
        ("dds", "format", "fmt/rgb.dds", lambda: _encoded(n(), "DDS"), "scored", ""),
        ("im", "format", "fmt/rgb.im", lambda: _encoded(n(), "IM"), "scored", ""),
        ("xbm", "format", "fmt/bits.xbm", lambda: _encoded(n().convert("1"), "XBM"), "scored", ""),
        ("msp", "format", "fmt/bits.msp", lambda: _encoded(n().convert("1"), "MSP"), "scored", ""),
        ("mpo", "format", "fmt/multi.mpo", lambda: _encoded(n(), "MPO"), "scored", ""),
        # pixel modes
        ("mode-1", "mode", "mode/one.png", lambda: _encoded(n().convert("1"), "PNG"), "scored", ""),
        ("mode-L", "mode", "mode/l.png", lambda: _encoded(n().convert("L"), "PNG"), "scored", ""),
        ("mode-P", "mode", "mode/p.png", lambda: _encoded(n().convert("P"), "PNG"), "scored", ""),
        ("mode-P-transparency", "mode", "mode/p_trns.gif",
         lambda: _encoded(n().convert("P"), "GIF", transparency=0), "scored", ""),
        ("mode-LA", "mode", "mode/la.png", lambda: _encoded(n().convert("LA"), "PNG"), "scored", ""),
        ("mode-RGBA", "mode", "mode/rgba.png", lambda: _encoded(n().convert("RGBA"), "PNG"), "scored", ""),
        ("mode-CMYK-jpeg", "mode", "mode/cmyk.jpg", lambda: _encoded(n().convert("CMYK"), "JPEG"), "scored", ""),
        ("mode-CMYK-tiff", "mode", "mode/cmyk.tif", lambda: _encoded(n().convert("CMYK"), "TIFF"), "scored", ""),
        ("mode-LAB-tiff", "mode", "mode/lab.tif", lambda: _encoded(n().convert("LAB"), "TIFF"), "scored", ""),
        ("mode-YCbCr-tiff", "mode", "mode/ycbcr.tif", lambda: _encoded(n().convert("YCbCr"), "TIFF"), "scored", ""),
        ("mode-I;16-png", "mode", "mode/i16.png",
         lambda: _encoded(Image.fromarray(np.full((8, 8), 40000, np.uint16)), "PNG"), "scored", ""),
        ("mode-I;16-low-values", "mode", "mode/i16_low.png",
         lambda: _encoded(Image.fromarray(np.full((8, 8), 200, np.uint16)), "PNG"), "scored", ""),
        ("mode-I;16B-tiff", "mode", "mode/i16b.tif", lambda: _tiff(np.full((8, 8), 1000, ">u2")), "scored", ""),
        ("mode-I-tiff", "mode", "mode/i32.tif", lambda: _tiff(np.full((8, 8), 30000, np.int32)), "scored", ""),
        ("mode-F-unit", "mode", "mode/f01.tif", lambda: _tiff(np.full((8, 8), 0.5, np.float32)), "scored", ""),
        ("mode-F-255", "mode", "mode/f255.tif", lambda: _tiff(np.full((8, 8), 100.0, np.float32)), "scored", ""),
        # geometry
        ("1x1", "geometry", "geo/one_pixel.png", lambda: _encoded(n(1, 1), "PNG"), "scored", ""),
        ("aspect-1x300", "geometry", "geo/thin.png", lambda: _encoded(n(1, 300), "PNG"), "scored", ""),
        ("aspect-5000x1", "geometry", "geo/wide.png", lambda: _encoded(n(5000, 1), "PNG"), "scored", ""),
        *[
            (f"exif-orientation-{o}", "geometry", f"geo/exif_{o}.jpg", (lambda o=o: _exif_rotated(o)), "scored", "")
            for o in range(2, 9)
        ],
        # broken or hostile content: an error record each
        ("zero-bytes", "content", "bad/empty.png", lambda: b"", "error", "0 bytes"),
        ("text-named-jpg", "content", "bad/notes.jpg", lambda: b"hello, I am text\n", "error", "not an image"),
        ("html-named-png", "content", "bad/page.png", lambda: b"<!DOCTYPE html><html></html>", "error",
         "not an image"),
        ("random-bytes", "content", "bad/noise.webp", lambda: os.urandom(4096), "error", "not an image"),
        ("appledouble", "content", "bad/._photo.jpg", lambda: b"\x00\x05\x16\x07" + bytes(80), "error", ""),
        ("truncated-png", "content", "bad/cut.png", lambda: _cut(_encoded(n(), "PNG")), "error", ""),
        ("truncated-jpeg", "content", "bad/cut.jpg", lambda: _cut(_encoded(n(), "JPEG")), "error", ""),
        ("truncated-gif", "content", "bad/cut.gif", lambda: _cut(_encoded(n(), "GIF")), "error", ""),
        ("truncated-webp", "content", "bad/cut.webp", lambda: _cut(_encoded(n(), "WEBP")), "error", ""),
        ("truncated-tiff", "content", "bad/cut.tif", lambda: _cut(_encoded(n(), "TIFF")), "error", ""),
        ("truncated-bmp", "content", "bad/cut.bmp", lambda: _cut(_encoded(n(), "BMP")), "error", ""),
        ("truncated-dds", "content", "bad/cut.dds", lambda: _cut(_encoded(n(), "DDS")), "error", ""),
        ("truncated-qoi", "content", "bad/cut.qoi", lambda: _cut(_encoded(n(), "QOI")), "error", ""),
        ("header-only-png", "content", "bad/header.png", lambda: _encoded(n(), "PNG")[:40], "error", ""),
        ("corrupt-png-crc", "content", "bad/crc.png", lambda: _flip_middle(_encoded(n(), "PNG")), "error", ""),
        ("corrupt-gif", "content", "bad/flip.gif", lambda: _flip_middle(_encoded(n(), "GIF")), "error", ""),
        ("dds-unknown-pixel-format", "content", "bad/unknown.dds", _dds_unknown_fourcc, "error",
         "NotImplementedError"),
        ("decompression-bomb", "content", "bad/bomb.png", lambda: _png_header_only(60000, 60000), "error",
         "too large"),
        ("over-pixel-cap", "content", "bad/big.png", lambda: _png_header_only(12000, 10000), "error",
         "over the cap"),
        ("float-nan", "content", "bad/nan.tif",
         lambda: _tiff(np.where(np.eye(8) > 0, np.nan, 0.5).astype(np.float32)), "error", "NaN"),
        ("float-inf", "content", "bad/inf.tif", lambda: _tiff(np.full((8, 8), np.inf, np.float32)), "error", "NaN"),
        ("float-negative", "content", "bad/neg.tif", lambda: _tiff(np.full((8, 8), -3.0, np.float32)), "error",
         "outside"),
        ("int32-out-of-range", "content", "bad/i32.tif", lambda: _tiff(np.full((8, 8), -7, np.int32)), "error",
         "outside"),
        ("eps-without-ghostscript", "content", "bad/vector.eps", lambda: _encoded(n(), "EPS"), "error", ""),
        ("hdf5-stub", "content", "bad/data.h5", lambda: b"\x89HDF\r\n\x1a\n" + bytes(64), "error", ""),
        ("grib-stub", "content", "bad/data.grib", lambda: b"GRIB" + bytes(64), "error", ""),
        ("bufr-stub", "content", "bad/data.bufr", lambda: b"BUFR" + bytes(64), "error", ""),
        # not image extensions: skipped and counted
        ("text-file", "skip", "skip/readme.txt", lambda: b"notes", "skipped", ""),
        ("json-sidecar", "skip", "skip/meta.json", lambda: b"{}", "skipped", ""),
        ("xmp-sidecar", "skip", "skip/photo.xmp", lambda: b"<x/>", "skipped", ""),
        ("no-extension", "skip", "skip/README", lambda: b"x", "skipped", ""),
        ("ds-store", "skip", "skip/.DS_Store", lambda: bytes(16), "skipped", ""),
        ("double-extension", "skip", "skip/photo.jpg.txt", lambda: _encoded(n(), "JPEG"), "skipped", ""),
        ("pdf", "skip", "skip/doc.pdf", lambda: _encoded(n(), "PDF"), "skipped", ""),
        # names (valid images under names a filesystem allows)
        ("name-latin1-bytes", "name", os.fsdecode(b"names/caf\xe9.png"), lambda: _encoded(n(), "PNG"), "scored", ""),
        ("name-invalid-utf8", "name", os.fsdecode(b"names/\xff\xfe\x80.png"), lambda: _encoded(n(), "PNG"),
         "scored", ""),
        ("name-newline", "name", "names/line\nbreak.png", lambda: _encoded(n(), "PNG"), "scored", ""),
        ("name-tab", "name", "names/tab\there.png", lambda: _encoded(n(), "PNG"), "scored", ""),
        ("name-very-long", "name", "names/" + "x" * 250 + ".png", lambda: _encoded(n(), "PNG"), "scored", ""),
        ("name-emoji", "name", "names/\U0001f436 dog.png", lambda: _encoded(n(), "PNG"), "scored", ""),
        ("name-csv-quotes", "name", 'names/a,"b";c.png', lambda: _encoded(n(), "PNG"), "scored", ""),
        ("name-percent", "name", "names/%41%ZZ.png", lambda: _encoded(n(), "PNG"), "scored", ""),
        ("name-backslash", "name", "names/back\\x41slash.png", lambda: _encoded(n(), "PNG"), "scored", ""),
        ("name-leading-dash", "name", "names/-rf.png", lambda: _encoded(n(), "PNG"), "scored", ""),
        ("folder-named-like-image", "fs", "fs/album.jpg/inside.png", lambda: _encoded(n(), "PNG"), "scored", ""),
        ("oversized-file", "fs", "fs/huge.png", lambda: b"", "error", "file-size cap"),  # made sparse below
    ]
    if features.check("avif"):
        f += [
            ("avif", "format", "fmt/rgb.avif", lambda: _encoded(n(), "AVIF"), "scored", ""),
            ("truncated-avif", "content", "bad/cut.avif", lambda: _cut(_encoded(n(), "AVIF"), 0.9), "error", ""),
        ]
    if features.check("jpg_2000"):
        f += [
            ("jp2", "format", "fmt/rgb.jp2", lambda: _encoded(n(), "JPEG2000"), "scored", ""),
            ("j2k", "format", "fmt/rgb.j2k", lambda: _encoded(n(), "JPEG2000"), "scored", ""),
            ("truncated-jp2", "content", "bad/cut.jp2", lambda: _cut(_encoded(n(), "JPEG2000")), "error", ""),
        ]
    return f


OVERSIZED_BYTES = 300 * 1024 * 1024  # over the default file-size cap; a sparse file, no disk used


def build_corpus(folder: str | Path) -> list[Kind]:
    """Write the corpus into ``folder`` (created) and return its kinds."""
    root = Path(folder)
    kinds: list[Kind] = []
    for name, category, rel, make, expect, hint in _files():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(make())
        kinds.append(Kind(name, category, rel, expect, hint))
    with open(root / "fs/huge.png", "r+b") as fh:
        fh.truncate(OVERSIZED_BYTES)
    kinds += _special(root)
    return kinds


def _special(root: Path) -> list[Kind]:
    """Symlinks, FIFOs, sockets and folders (POSIX only)."""
    fs = root / "fs"
    fs.mkdir(exist_ok=True)
    out: list[Kind] = []
    (fs / "empty_dir").mkdir(exist_ok=True)
    out.append(Kind("empty-folder", "fs", "fs/empty_dir", "none"))  # contributes nothing inside a walk
    if not hasattr(os, "symlink"):
        return out
    os.symlink("no_such_target.jpg", fs / "dangling.jpg")
    out.append(Kind("broken-symlink", "fs", "fs/dangling.jpg", "error", "broken symbolic link"))
    os.symlink("nowhere", fs / "dangling_noext")  # no image extension: still an error record
    out.append(Kind("broken-symlink-no-ext", "fs", "fs/dangling_noext", "error", "symbolic link"))
    os.symlink("loop_b.png", fs / "loop_a.png")
    os.symlink("loop_a.png", fs / "loop_b.png")
    out.append(Kind("symlink-loop-a", "fs", "fs/loop_a.png", "error", "loop"))
    out.append(Kind("symlink-loop-b", "fs", "fs/loop_b.png", "error", "loop"))
    os.symlink("self.png", fs / "self.png")
    out.append(Kind("symlink-self-loop", "fs", "fs/self.png", "error", "loop"))
    os.symlink("../fmt/rgb.png", fs / "link_to_image.png")
    out.append(Kind("symlink-to-image", "fs", "fs/link_to_image.png", "scored"))
    os.symlink("../fmt", fs / "link_to_folder")
    out.append(Kind("symlink-to-folder", "fs", "fs/link_to_folder", "skipped"))
    if hasattr(os, "mkfifo"):
        os.mkfifo(fs / "pipe.png")
        out.append(Kind("fifo-image-ext", "fs", "fs/pipe.png", "error", "FIFO"))
        os.mkfifo(fs / "pipe_noext")
        out.append(Kind("fifo-no-ext", "fs", "fs/pipe_noext", "skipped"))
    sock_path = fs / "sock.png"
    if hasattr(socket, "AF_UNIX") and len(os.fsencode(sock_path)) < 100:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.bind(os.fsdecode(sock_path))
        sock.close()  # the socket file stays
        out.append(Kind("socket-image-ext", "fs", "fs/sock.png", "error", "socket"))
    return out


DEVICE_PATHS = ("/dev/zero", "/dev/null", "/dev/urandom")  # passed by name: refused as character devices
