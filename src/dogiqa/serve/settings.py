"""The service's own settings (network, security, caps, batching) and the checks made before it listens."""

from __future__ import annotations

import ipaddress
import os
from dataclasses import asdict, dataclass
from typing import Any

from dogiqa.errors import UsageError

DEFAULT_TOKEN_ENV = "DOGIQA_TOKEN"


@dataclass
class ServeSettings:
    """How ``dogiqa serve`` listens and admits work. The pipeline itself is configured separately.

    ``token``: the bearer token clients must send (None: no authentication, allowed on loopback only unless
    ``insecure``). ``max_body_bytes`` caps one request's body; ``max_pixels`` one image's decoded size;
    ``max_files`` the images of one batch request. ``max_batch`` images are scored together, waiting at most
    ``max_wait_ms`` for a batch to fill; at most ``max_queue`` images wait, beyond that a request gets 429.
    """

    host: str = "127.0.0.1"
    port: int = 8080
    token: str | None = None
    insecure: bool = False
    max_body_bytes: int = 20 * 1024 * 1024
    max_pixels: int = 40_000_000
    max_files: int = 32
    max_batch: int = 8
    max_wait_ms: float = 10.0
    max_queue: int = 64
    shutdown_timeout_s: float = 30.0

    def __post_init__(self) -> None:
        for name in ("max_body_bytes", "max_pixels", "max_files", "max_batch", "max_queue"):
            if int(getattr(self, name)) < 1:
                raise UsageError(f"{name} must be at least 1, not {getattr(self, name)}", setting=name)
        if self.max_wait_ms < 0:
            raise UsageError(f"max_wait_ms must be >= 0, not {self.max_wait_ms}", setting="max_wait_ms")
        if self.max_files > self.max_queue:
            raise UsageError(f"max_files ({self.max_files}) cannot exceed max_queue ({self.max_queue})", "max_files")
        if not 0 <= int(self.port) <= 65535:
            raise UsageError(f"port must be 0..65535, not {self.port}", setting="port")

    def public(self) -> dict[str, Any]:
        """The settings a client may see (never the token)."""
        out = asdict(self)
        out.pop("token")
        out["auth"] = self.token is not None
        return out


def is_loopback(host: str) -> bool:
    """True only for addresses that cannot be reached from another machine (names other than localhost are
    treated as reachable: they may resolve anywhere)."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def token_from_env(name: str | None, required: bool = False) -> str | None:
    """The token held by environment variable ``name``. A variable named explicitly (``required``) must be
    set and non-empty; the default variable may be absent (no authentication)."""
    var = name or DEFAULT_TOKEN_ENV
    value = os.environ.get(var, "").strip()
    if value:
        if len(value) < 16:
            raise UsageError(f"the token in ${var} is too short: use at least 16 characters", setting="--token-env")
        return value
    if required:
        raise UsageError(f"--token-env {var}: the environment variable {var} is not set or empty", "--token-env")
    return None


def check_exposure(settings: ServeSettings) -> None:
    """Refuse to listen on a reachable address without a token unless ``insecure`` says so explicitly."""
    if settings.token is None and not settings.insecure and not is_loopback(settings.host):
        raise UsageError(
            f"refusing to listen on {settings.host} without a token: set ${DEFAULT_TOKEN_ENV} (or --token-env VAR) "
            "to a secret, or pass --insecure to serve without authentication",
            setting="--host",
        )
