"""Running the service under uvicorn: checks before listening, graceful shutdown, exit codes."""

from __future__ import annotations

import socket
import sys
from collections.abc import Callable
from typing import Any

from dogiqa.errors import UsageError
from dogiqa.serve.settings import ServeSettings, check_exposure


def bind(host: str, port: int) -> socket.socket:
    """A listening socket, or a UsageError that says why not (address in use, unknown host)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
        family, _, _, _, addr = infos[0]
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(addr)
    except OSError as exc:
        raise UsageError(f"cannot listen on {host}:{port}: {exc.strerror or exc}", setting="--port") from exc
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def build_server(factory: Callable[[], Any], settings: ServeSettings, log_level: str = "info"):
    """The uvicorn server for the app, and a list that receives the load error if the pipeline fails."""
    import uvicorn

    from dogiqa.serve.app import create_app

    failures: list[str] = []
    holder: dict[str, Any] = {}

    def load_failed(message: str) -> None:
        failures.append(message)
        holder["server"].should_exit = True  # nothing to serve: stop, the caller exits 2

    app = create_app(factory, settings, on_load_failure=load_failed)
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_level=log_level,
        timeout_graceful_shutdown=settings.shutdown_timeout_s,
        server_header=False,
        proxy_headers=False,
    )
    holder["server"] = server = uvicorn.Server(config)
    return server, failures


def run_server(factory: Callable[[], Any], settings: ServeSettings, log_level: str = "info") -> None:
    """Serve until SIGINT/SIGTERM (the requests in flight are finished first). Raises ``UsageError`` (exit 2)
    when the address is refused or unavailable, or when the pipeline cannot be loaded."""
    check_exposure(settings)
    sock = bind(settings.host, settings.port)
    host, port = sock.getsockname()[:2]
    shown = f"[{host}]" if ":" in host else host
    auth = "bearer token required" if settings.token else "no token"
    print(
        f"dogiqa serve: listening on http://{shown}:{port} ({auth}); loading the pipeline", file=sys.stderr, flush=True
    )
    server, failures = build_server(factory, settings, log_level)
    try:
        server.run(sockets=[sock])
    finally:
        sock.close()
    if failures:
        raise UsageError(f"the pipeline cannot be loaded: {failures[0]}")
