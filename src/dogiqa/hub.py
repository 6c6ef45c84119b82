"""Loading weights by hub id or local folder, offline-first, with one clear error when neither works."""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from dogiqa.errors import RemoteCodeError


class ModelNotAvailableError(OSError):
    """A model is neither a local folder nor in the Hugging Face cache, and the hub cannot be reached."""


def hub_reachable(timeout: float = 3.0) -> bool:
    """False when offline mode is set or the hub's host does not answer within ``timeout`` (instead of
    huggingface_hub's ~30 s of retries)."""
    if os.environ.get("HF_HUB_OFFLINE", "0").lower() in ("1", "true", "yes", "on"):
        return False
    url = urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co"))
    try:
        socket.create_connection((url.hostname or "huggingface.co", url.port or 443), timeout=timeout).close()
    except OSError:
        return False
    return True


def offline_help(name: str, option: str = "--model") -> str:
    """How to get ``name`` onto this machine and pass it as a folder."""
    local = f"./models/{name.rstrip('/').split('/')[-1]}"
    return (
        f"cannot load {name!r}: it is not a local folder, not in the Hugging Face cache, and the hub cannot be "
        f"reached (no network, HF_HUB_OFFLINE set, or a wrong id). Download it once on a machine with network, "
        f"e.g. `hf download {name} --local-dir {local}`, then pass that folder: `{option} {local}`."
    )


def from_pretrained(loader: Any, name: str, option: str = "--model", **kwargs: Any) -> Any:
    """``loader.from_pretrained``: a local folder as it is; a hub id from the local cache first, then from the
    hub when it is reachable; otherwise ModelNotAvailableError saying how to pass a folder.

    ``trust_remote_code`` is passed explicitly (False unless given): transformers then never asks on stdin,
    and a model that needs its own code raises RemoteCodeError naming ``--trust-remote-code``."""
    kwargs.setdefault("trust_remote_code", False)
    try:
        return _from_pretrained(loader, name, option, **kwargs)
    except ValueError as exc:
        raise_if_remote_code(exc, name)
        raise


def raise_if_remote_code(exc: BaseException, name: str) -> None:
    """Turn transformers' "contains custom code ... trust_remote_code=True" refusal into RemoteCodeError."""
    if "trust_remote_code" in str(exc):
        raise RemoteCodeError(name) from exc


def _from_pretrained(loader: Any, name: str, option: str, **kwargs: Any) -> Any:
    folder = Path(name).expanduser()
    if folder.exists():
        try:
            return loader.from_pretrained(str(folder), **kwargs)
        except OSError as exc:
            what = getattr(loader, "__name__", "model")
            raise ModelNotAvailableError(f"folder {name!r} has no loadable {what} files ({exc})") from exc
    try:
        return loader.from_pretrained(name, local_files_only=True, **kwargs)
    except OSError as cached_miss:
        if not hub_reachable():
            raise ModelNotAvailableError(offline_help(name, option)) from cached_miss
    try:
        return loader.from_pretrained(name, **kwargs)
    except OSError as exc:
        raise ModelNotAvailableError(offline_help(name, option) + f" ({type(exc).__name__}: {exc})") from exc
