"""``dogiqa serve``: score images over HTTP with one loaded pipeline (the optional extra ``serve``)."""

from __future__ import annotations

import logging

import typer

from dogiqa.cli import options as opt
from dogiqa.cli.common import load_pipeline
from dogiqa.config import PipelineConfig
from dogiqa.errors import UsageError
from dogiqa.serve.settings import DEFAULT_TOKEN_ENV, ServeSettings, check_exposure, token_from_env

PANEL = "Service"


def _opt(default, *decls: str, help: str, metavar: str | None = None):
    return typer.Option(default, *decls, help=help, rich_help_panel=PANEL, metavar=metavar)


@opt.pipeline_command()
def serve(
    cfg: PipelineConfig,
    host: str = _opt("127.0.0.1", "--host", help="Address to listen on (loopback by default).", metavar="ADDR"),
    port: int = _opt(8080, "--port", help="Port (0: any free port).", metavar="N"),
    token_env: str = _opt(None, "--token-env", help=f"Variable holding the bearer token ({DEFAULT_TOKEN_ENV}).",
                          metavar="VAR"),
    insecure: bool = _opt(False, "--insecure", help="Listen beyond loopback without a token."),
    max_batch: int = _opt(None, "--max-batch", help="Images scored together (default --chunk-size).", metavar="N"),
    max_wait_ms: float = _opt(10.0, "--max-wait-ms", help="Wait for a batch to fill (ms).", metavar="MS"),
    max_queue: int = _opt(64, "--max-queue", help="Images waiting before 429.", metavar="N"),
    max_body_mb: float = _opt(20.0, "--max-body-mb", help="Largest request body (MB).", metavar="MB"),
    max_upload_pixels: int = _opt(40_000_000, "--max-upload-pixels", help="Largest uploaded image.", metavar="N"),
    max_files: int = _opt(32, "--max-files", help="Images per batch request.", metavar="N"),
    shutdown_timeout: float = _opt(30.0, "--shutdown-timeout", help="Seconds to finish requests.", metavar="S"),
    log_level: str = _opt("info", "--log-level", help="critical|error|warning|info|debug", metavar="NAME"),
) -> None:  # fmt: skip
    """Serve scores over HTTP: POST /v1/score, a page at /, batching of concurrent requests."""
    if log_level not in ("critical", "error", "warning", "info", "debug"):
        raise UsageError(
            f"--log-level must be critical, error, warning, info or debug, not {log_level!r}", "--log-level"
        )
    settings = ServeSettings(
        host=host,
        port=port,
        token=token_from_env(token_env, required=token_env is not None),
        insecure=insecure,
        max_body_bytes=int(max_body_mb * 1024 * 1024),
        max_pixels=max_upload_pixels,
        max_files=max_files,
        max_batch=cfg.effective_chunk_size if max_batch is None else max_batch,
        max_wait_ms=max_wait_ms,
        max_queue=max_queue,
        shutdown_timeout_s=shutdown_timeout,
    )
    check_exposure(settings)  # before anything heavy is imported
    try:
        import fastapi  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError as exc:
        raise UsageError(f"dogiqa serve needs the serve extra: pip install 'dogiqa[serve]' ({exc})") from None
    from dogiqa.serve.server import run_server

    logging.basicConfig(level=log_level.upper(), format="%(levelname)s:     %(message)s")
    run_server(lambda: load_pipeline(cfg, keep_masks=True), settings, log_level=log_level)
