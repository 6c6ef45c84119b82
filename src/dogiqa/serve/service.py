"""The loaded pipeline behind the HTTP routes: loading in the background, decoding uploads, batched scoring."""

from __future__ import annotations

import io
import logging
import re
import threading
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from PIL import Image

from dogiqa.io import ImageLoadError, decode_image
from dogiqa.results import ImageResult
from dogiqa.serve.batching import Batcher
from dogiqa.serve.settings import ServeSettings

log = logging.getLogger("dogiqa.serve")
OVERLAY_MAX_SIDE = 2048  # overlays are drawn at full size, then shrunk to this for the response


class BadImage(Exception):
    """An upload that is not a readable image (HTTP 400; a per-image error record in a batch)."""

    def __init__(self, name: str, reason: str):
        super().__init__(f"{name}: {reason}")
        self.name = name

    def record(self) -> dict[str, Any]:
        return ImageResult(path=self.name, error=str(self)).to_dict()


class TooLarge(Exception):
    """An image over the pixel cap (HTTP 413)."""


@dataclass
class Upload:
    """One decoded upload: the name recorded as the record's ``path`` and the 8-bit RGB image."""

    name: str
    image: Image.Image

    @classmethod
    def decode(cls, data: bytes, name: str | None, max_pixels: int) -> Upload:
        """Decode with the CLI's loader (EXIF rotation, alpha over white, 16-bit) after a header-only size
        check, so an image over ``max_pixels`` is refused before its pixels are decompressed."""
        name = clean_name(name)
        size = _header_size(data, name)
        if size is not None and size[0] * size[1] > max_pixels:
            raise TooLarge(f"{name}: image has {size[0] * size[1]:,} pixels, over the cap of {max_pixels:,}")
        try:
            image = decode_image(data, name, max_pixels)
        except ImageLoadError as exc:
            raise BadImage(name, exc.reason) from exc
        return cls(name, image)


def clean_name(name: str | None) -> str:
    """A client's file name as a harmless label: the last path part, printable characters, at most 200."""
    base = re.split(r"[\\/]", name or "")[-1]
    base = "".join(ch for ch in base if ch.isprintable()).strip()[:200]
    return base or "upload"


def _header_size(data: bytes, name: str) -> tuple[int, int] | None:
    if not data:
        raise BadImage(name, "empty body (0 bytes)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as img:
                return img.size
    except Image.DecompressionBombError as exc:
        raise TooLarge(f"{name}: {exc}") from exc
    except Exception:  # noqa: BLE001 - the loader reports what is wrong
        return None


class Service:
    """Builds the pipeline once (in a background thread) and scores uploads through a ``Batcher``."""

    def __init__(self, factory: Callable[[], Any], settings: ServeSettings, on_load_failure=None):
        self.factory, self.settings, self.on_load_failure = factory, settings, on_load_failure
        self.state = "loading"
        self.error: str | None = None
        self.iqa: Any = None
        self.batcher: Batcher | None = None
        self._loader: threading.Thread | None = None

    def start_loading(self) -> None:
        self._loader = threading.Thread(target=self._load, name="dogiqa-loader", daemon=True)
        self._loader.start()

    def _load(self) -> None:
        start = time.perf_counter()
        try:
            iqa = self.factory()
        except Exception as exc:  # noqa: BLE001 - reported by /healthz and the server's exit code
            self.error, self.state = f"{type(exc).__name__}: {exc}", "failed"
            log.error("the pipeline failed to load: %s", self.error)
            if self.on_load_failure:
                self.on_load_failure(self.error)
            return
        s = self.settings
        self.iqa = iqa
        self.batcher = Batcher(self._score_batch, s.max_batch, s.max_wait_ms, s.max_queue)
        self.state = "ready"
        brief = {k: v for k, v in dict(iqa.config).items() if k != "pipeline"}
        log.info("pipeline ready in %.1f s: %s", time.perf_counter() - start, brief)

    def _score_batch(self, uploads: list[Upload]) -> list[tuple[ImageResult, int]]:
        """Runs in the batcher's thread: one ``score_many`` call for the whole batch."""
        from dogiqa.sources import Item

        results = list(self.iqa.score_many([Item(u.name, u.image, u.name) for u in uploads]))  # records named
        for upload, result in zip(uploads, results, strict=True):
            result.path = upload.name
            if result.error:
                result.error = result.error.replace("<image>", upload.name, 1)
        return [(r, len(uploads)) for r in results]

    def batch_stats(self) -> dict[str, Any]:
        return self.batcher.stats.as_dict() if self.batcher else {}

    def close(self, timeout: float | None = None) -> None:
        """Score what is queued, then stop (the server stops taking requests first)."""
        if self.batcher is not None:
            if not self.batcher.close(timeout):
                log.warning("shutdown: the batcher did not finish within %s s", timeout)


def overlay_png(image: Image.Image, result: ImageResult) -> bytes:
    """The result's region overlay as PNG bytes (at most OVERLAY_MAX_SIDE pixels on the long side)."""
    from dogiqa.report.overlay import render_overlay

    out = render_overlay(image, result)
    out.thumbnail((OVERLAY_MAX_SIDE, OVERLAY_MAX_SIDE))
    buf = io.BytesIO()
    out.save(buf, format="PNG")
    return buf.getvalue()
