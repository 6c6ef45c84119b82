"""Every CLI option, defined once.

How to add a pipeline setting (a value that changes how images are scored):
1. add a field to its group in ``dogiqa/config.py`` (type, default, range, one-line description);
2. add one entry to ``PIPELINE`` below, keyed by the field's keyword (``crop_mode``), with its help panel.
Every command decorated with ``@pipeline_command`` (score, show, eval, config) then has the flag
``--crop-mode``, validated through the configuration before anything loads, and ``--config`` files accept it.
A command-only option (``--output``, ``--engine``) is a plain parameter of that command, defined here once
when two commands share it; validate it before importing anything heavy and raise ``UsageError`` naming it.
"""

from __future__ import annotations

import functools
import inspect
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Any

import typer
from typer.core import TyperArgument, TyperCommand

from dogiqa.config import KEYWORDS, choices_of, flag_of, resolve_config

# help panels
IO = "Input / output"
MODEL = "Model"
METHOD = "Method"
SEGMENTATION = "Segmentation"
PERFORMANCE = "Performance"
SERVER = "Server (--backend openai)"
CLUSTER = "Cluster (--engine ray)"


def _choices(keyword: str) -> str:
    return "|".join(choices_of(KEYWORDS[keyword]))


def option(keyword: str, help: str, panel: str, *extra: str, metavar: str = "X"):
    """A pipeline option for a configuration field (its flag comes from the configuration); ``{choices}`` in
    the help lists the accepted values."""
    names = [str(flag_of(KEYWORDS[keyword])), *extra]
    help = help.replace("{choices}", _choices(keyword) if "{choices}" in help else "")
    return typer.Option(None, *names, help=help, rich_help_panel=panel, metavar=metavar, show_default=False)


def switch(decls: str, help: str, panel: str):
    """An on/off pipeline option (unset: the preset's value)."""
    return typer.Option(None, decls, help=help, rich_help_panel=panel, show_default=False)


# keyword -> (option, Python type). The order is the order in --help.
PIPELINE: dict[str, tuple[Any, Any]] = {
    "model": (option("model", "VLM: hub id or local folder.", MODEL, "-m", metavar="ID"), str),
    "backend": (option("backend", "{choices}", MODEL, metavar="NAME"), str),
    "scorer": (option("scorer", "{choices}", MODEL, metavar="NAME"), str),
    "revision": (option("revision", "Model revision on the hub.", MODEL, metavar="REV"), str),
    "trust_remote_code": (switch("--trust-remote-code", "Run a hub model's own code.", MODEL), bool),
    "clip_model": (option("clip_model", "CLIP id or folder (clipiqa).", MODEL, metavar="ID"), str),
    "owl3_mask": (option("owl3_mask", "mPLUG-Owl3 mask: {choices}", MODEL, metavar="NAME"), str),
    "standard": (option("standard", "word|number|sentence|FILE.yaml", METHOD, metavar="NAME"), str),
    "levels": (option("levels", "Levels K of the standard.", METHOD, metavar="K"), int),
    "readout": (option("readout", "{choices}", METHOD, metavar="NAME"), str),
    "aggregation": (option("aggregation", "{choices}", METHOD, metavar="NAME"), str),
    "c_max": (option("c_max", "Paper formula c_max (71).", METHOD), float),
    "invalid_as_one": (switch("--paper-compat/--no-paper-compat", "Invalid answers score 1.", METHOD), bool),
    "min_area": (option("min_area", "Smallest region (pixels).", METHOD, metavar="PX"), int),
    "crop_mode": (option("crop_mode", "Region crop: {choices}", METHOD, metavar="NAME"), str),
    "segmenter": (option("segmenter", "{choices}", SEGMENTATION, metavar="NAME"), str),
    "sam2_model": (option("sam2_model", "SAM2 hub id or folder.", SEGMENTATION, metavar="ID"), str),
    "sam2_preset": (option("sam2_preset", "SAM2 parameters: {choices}", SEGMENTATION, metavar="NAME"), str),
    "small_regions": (option("small_regions", "SAM2 small regions: {choices}", SEGMENTATION, metavar="NAME"), str),
    "device": (option("device", "cpu|cuda|cuda:N|mps|auto", PERFORMANCE, metavar="DEV"), str),
    "dtype": (option("dtype", "{choices}", PERFORMANCE, metavar="NAME"), str),
    "batch_size": (option("batch_size", "Crops per forward pass.", PERFORMANCE, metavar="N"), int),
    "chunk_size": (option("chunk_size", "Images per batch (8).", PERFORMANCE, metavar="N"), int),
    "max_batch_tokens": (option("max_batch_tokens", "Tokens per forward pass.", PERFORMANCE, metavar="N"), int),
    "prefix_cache": (switch("--prefix-cache/--no-prefix-cache", "Reuse prompt KV cache.", PERFORMANCE), bool),
    "max_pixels": (option("max_pixels", "Refuse larger images.", PERFORMANCE, metavar="N"), int),
    "max_file_bytes": (option("max_file_bytes", "Refuse larger files.", PERFORMANCE, metavar="BYTES"), int),
    "staged": (switch("--staged/--serial", "Overlap the stages (on).", PERFORMANCE), bool),
    "load_workers": (option("load_workers", "Decoding threads (2).", PERFORMANCE, metavar="N"), int),
    "preprocess_workers": (option("preprocess_workers", "Processor threads.", PERFORMANCE, metavar="N"), int),
    "segment_workers": (option("segment_workers", "Segmentation threads.", PERFORMANCE, metavar="N"), int),
    "segment_processes": (
        option("segment_processes", "Felzenszwalb processes.", PERFORMANCE, metavar="N"),
        int,
    ),
    "max_in_flight": (option("max_in_flight", "Images held at once.", PERFORMANCE, metavar="N"), int),
    "base_url": (option("base_url", "API root: http://HOST:PORT/v1", SERVER, metavar="URL"), str),
    "api_key_env": (option("api_key_env", "Variable holding the API key.", SERVER, metavar="VAR"), str),
    "concurrency": (option("concurrency", "Requests in flight (8).", SERVER, metavar="N"), int),
    "timeout": (option("timeout", "Seconds per connect/read (60).", SERVER, metavar="S"), float),
    "deadline": (option("deadline", "Seconds per whole request (timeout).", SERVER, metavar="S"), float),
    "max_retries": (option("max_retries", "Retries on 429/5xx (5).", SERVER, metavar="N"), int),
    "max_retry_after": (option("max_retry_after", "Longest Retry-After wait (30).", SERVER, metavar="S"), float),
    "max_retry_time": (option("max_retry_time", "Retry budget per crop (120).", SERVER, metavar="S"), float),
    "max_response_bytes": (option("max_response_bytes", "Largest response (8 MiB).", SERVER, metavar="N"), int),
}

PRESET = typer.Option(
    None,
    "--preset",
    "-p",
    help="Preset (default recommended).",
    rich_help_panel=MODEL,
    metavar="NAME",
    show_default=False,
)
CONFIG = typer.Option(
    None,
    "--config",
    help="YAML settings; options override.",
    rich_help_panel=MODEL,
    metavar="FILE",
    show_default=False,
)
QUIET = typer.Option(False, "--quiet", "-q", help="No progress bar or table.", rich_help_panel=IO)


def pipeline_command(exclude: tuple[str, ...] = ()) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Give a command every pipeline option (``--preset``, ``--config`` and ``PIPELINE`` minus ``exclude``).

    The command receives ``cfg`` (the validated :class:`dogiqa.config.PipelineConfig`) instead of them; a bad
    value stops the command with a ``UsageError`` before its body runs.
    """

    def decorate(func: Callable[..., Any]) -> Callable[..., Any]:
        hints = typing.get_type_hints(func)
        params = inspect.signature(func).parameters.values()
        own = [p.replace(annotation=hints.get(p.name, p.annotation)) for p in params]
        own = [p for p in own if p.name != "cfg"]
        kw = inspect.Parameter.KEYWORD_ONLY
        added = [
            inspect.Parameter("preset", kw, default=PRESET, annotation=str | None),
            inspect.Parameter("config_file", kw, default=CONFIG, annotation=Path | None),
        ]
        names = [k for k in PIPELINE if k not in exclude]
        added += [inspect.Parameter(k, kw, default=PIPELINE[k][0], annotation=PIPELINE[k][1] | None) for k in names]

        @functools.wraps(func)
        def wrapper(**kwargs: Any) -> Any:
            settings = {k: kwargs.pop(k) for k in names}
            cfg = resolve_config(kwargs.pop("preset"), kwargs.pop("config_file"), settings, style="flag")
            return func(cfg=cfg, **kwargs)

        params = sorted([p.replace(kind=kw) for p in own] + added, key=_panel_rank)
        wrapper.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
        del wrapper.__wrapped__  # typer must read the signature above, not the function's own
        wrapper.__annotations__ = {}
        return wrapper

    return decorate


PANEL_ORDER = (IO, MODEL, METHOD, SEGMENTATION, PERFORMANCE, SERVER, CLUSTER)


def _panel_rank(param: inspect.Parameter) -> int:
    """Help panels in PANEL_ORDER (a command's own other panels and arguments first)."""
    panel = getattr(param.default, "rich_help_panel", None)
    return PANEL_ORDER.index(panel) + 1 if panel in PANEL_ORDER else 0


class Command(TyperCommand):
    """Help without internal type names: ``PATH...`` in the usage line, no ``<bool>``/``<list[Path]>``."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for param in self.params:
            if isinstance(param, TyperArgument):
                label = (param.metavar or param.name or "ARG").upper()
                label += "..." if param.nargs != 1 and not label.endswith("...") else ""
                param._usage_display_name = lambda label=label: label  # type: ignore[method-assign]
                param.display_type_rich = lambda ctx: None  # type: ignore[method-assign]
            elif getattr(param, "is_flag", False):
                param.display_type_rich = lambda ctx: None  # type: ignore[method-assign]
            elif param.metavar is None:
                kind = param.bare_type() if hasattr(param, "bare_type") else ""
                param.metavar = {"int": "N", "float": "X", "Path": "PATH"}.get(kind, "TEXT")

    def get_help_option(self, ctx: Any) -> Any:
        return hide_type(super().get_help_option(ctx))


def hide_type(param: Any) -> Any:
    """No ``<bool>`` after --help."""
    if param is not None:
        param.display_type_rich = lambda ctx: None
    return param
