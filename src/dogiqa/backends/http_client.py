"""A bounded HTTP client for talking to servers we did not write.

- **Overall deadline.** httpx timeouts apply to each socket operation, so a server that sends one byte per
  second never trips them. ``deadline(seconds)`` sets a per-thread deadline that every connect, read and write
  of the armed client clamps its own timeout to: the whole exchange (headers included) ends by the deadline.
- **Body cap.** ``read_capped`` streams a response body and stops at a byte limit (a declared
  ``Content-Length`` above it is refused before reading anything).
- **Redaction.** ``split_userinfo`` takes credentials out of a URL; ``Redactor`` removes secrets (and any
  ``Bearer``/``Basic`` credential) from text that ends up in records, logs and messages.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

import httpcore
import httpx

_STATE = threading.local()
_CREDENTIAL = re.compile(r"\b(Bearer|Basic)\s+[A-Za-z0-9._~+/=-]+", re.IGNORECASE)


class DeadlineExceeded(httpx.TimeoutException):
    """The overall deadline of the current request passed (raised between body chunks)."""


class ResponseTooLarge(Exception):
    """A response body is larger than the cap; ``size`` is the declared or read size so far."""

    def __init__(self, cap: int, size: int, declared: bool):
        if declared:
            super().__init__(f"the response declares {size} bytes, over the cap of {cap} bytes")
        else:
            super().__init__(f"the response is longer than the cap of {cap} bytes")
        self.cap, self.size = cap, size


@contextmanager
def deadline(seconds: float | None) -> Iterator[None]:
    """Every socket operation of an armed client on this thread ends within ``seconds`` from now."""
    previous = getattr(_STATE, "at", None)
    _STATE.at = None if seconds is None else time.monotonic() + seconds
    try:
        yield
    finally:
        _STATE.at = previous


def time_left() -> float | None:
    """Seconds until this thread's deadline (None: no deadline)."""
    at = getattr(_STATE, "at", None)
    return None if at is None else at - time.monotonic()


def _clamp(timeout: float | None, exc: type[Exception]) -> float | None:
    left = time_left()
    if left is None:
        return timeout
    if left <= 0:
        raise exc("the request deadline passed")
    return left if timeout is None else min(timeout, left)


class _DeadlineStream(httpcore.NetworkStream):
    def __init__(self, inner: httpcore.NetworkStream):
        self._inner = inner

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._inner.read(max_bytes, _clamp(timeout, httpcore.ReadTimeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._inner.write(buffer, _clamp(timeout, httpcore.WriteTimeout))

    def close(self) -> None:
        self._inner.close()

    def start_tls(self, ssl_context: Any, server_hostname: str | None = None, timeout: float | None = None):
        inner = self._inner.start_tls(ssl_context, server_hostname, _clamp(timeout, httpcore.ConnectTimeout))
        return _DeadlineStream(inner)

    def get_extra_info(self, info: str) -> Any:
        return self._inner.get_extra_info(info)


class _DeadlineBackend(httpcore.NetworkBackend):
    def __init__(self, inner: httpcore.NetworkBackend | None = None):
        self._inner = inner or httpcore.SyncBackend()

    def connect_tcp(self, host: str, port: int, timeout: float | None = None, **kw: Any) -> httpcore.NetworkStream:
        stream = self._inner.connect_tcp(host, port, _clamp(timeout, httpcore.ConnectTimeout), **kw)
        return _DeadlineStream(stream)

    def connect_unix_socket(self, path: str, timeout: float | None = None, **kw: Any) -> httpcore.NetworkStream:
        stream = self._inner.connect_unix_socket(path, _clamp(timeout, httpcore.ConnectTimeout), **kw)
        return _DeadlineStream(stream)

    def sleep(self, seconds: float) -> None:
        self._inner.sleep(seconds)


def arm(client: httpx.Client) -> bool:
    """Make every transport of ``client`` honour ``deadline``; False when httpx's internals differ from the
    ones this was written for (then only the body reads are bounded, by ``read_capped``)."""
    transports = [getattr(client, "_transport", None), *getattr(client, "_mounts", {}).values()]
    armed = False
    for transport in transports:
        pool = getattr(transport, "_pool", None)
        if pool is not None and hasattr(pool, "_network_backend"):
            if not isinstance(pool._network_backend, _DeadlineBackend):
                pool._network_backend = _DeadlineBackend(pool._network_backend)
            armed = True
    return armed


def read_capped(resp: httpx.Response, cap: int) -> bytes:
    """The body of a streamed response, at most ``cap`` bytes (ResponseTooLarge beyond), by the deadline."""
    declared = resp.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > cap:
        raise ResponseTooLarge(cap, int(declared), declared=True)
    chunks, size = [], 0
    for chunk in resp.iter_bytes():
        size += len(chunk)
        if size > cap:
            raise ResponseTooLarge(cap, size, declared=False)
        chunks.append(chunk)
        left = time_left()
        if left is not None and left <= 0:
            raise DeadlineExceeded("the request deadline passed while reading the body")
    return b"".join(chunks)


def split_userinfo(url: str) -> tuple[str, httpx.BasicAuth | None, list[str]]:
    """``url`` without user-info, the basic auth it carried (None: none), and the secret strings it held."""
    parsed = httpx.URL(url)
    if not parsed.userinfo:
        return url, None, []
    clean = str(parsed.copy_with(userinfo=b""))
    secrets = [s for s in (parsed.userinfo.decode("ascii", "replace"), parsed.password, parsed.username) if s]
    return clean, httpx.BasicAuth(parsed.username, parsed.password), secrets


class Redactor:
    """Removes the given secrets, and any ``Bearer``/``Basic`` credential, from text; truncates it."""

    def __init__(self, secrets: Iterable[str | None] = ()):
        # longest first, so that "user:key" is removed whole before "key"; very short strings are not secrets
        self.secrets = sorted({s for s in secrets if s and len(s) >= 4}, key=len, reverse=True)

    def __call__(self, text: str, limit: int | None = 300) -> str:
        for secret in self.secrets:
            text = text.replace(secret, "***")
        text = _CREDENTIAL.sub(lambda m: m.group(1) + " ***", text)
        if limit is not None and len(text) > limit:
            text = text[:limit] + "..."
        return text
