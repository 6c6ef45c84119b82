"""What the commands share: the console, the progress bar, building the pipeline, output checks."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from dogiqa.config import PipelineConfig
from dogiqa.errors import UsageError

console = Console(stderr=True)


def load_pipeline(cfg: PipelineConfig, **runtime: Any) -> Any:
    """``DogIQA.from_config(cfg)``; a model or segmenter that cannot be loaded is a usage error (exit 2)."""
    from transformers.utils import logging as hf_logging

    from dogiqa.api import DogIQA

    hf_logging.disable_progress_bar()  # our own progress bar is enough
    try:
        return DogIQA.from_config(cfg, **runtime)
    except UsageError:
        raise
    except Exception as exc:  # noqa: BLE001 - any load failure is a clean exit 2 with the reason
        raise UsageError(f"cannot build the pipeline: {exc}") from exc


def progress_bar(disable: bool = False) -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        console=console,
        disable=disable,
    )


def check_choice(flag: str, value: str, choices: tuple[str, ...]) -> str:
    if value not in choices:
        raise UsageError(f"{flag}: unknown value {value!r}; choose one of: {', '.join(choices)}", setting=flag)
    return value


def check_suffix(flag: str, path: Path | None, suffixes: tuple[str, ...]) -> None:
    """A file option whose format is chosen by its suffix."""
    if path is not None and path.suffix.lower() not in suffixes:
        raise UsageError(
            f"{flag}: {path.name!r} has an unknown suffix; use one of: {', '.join(suffixes)}", setting=flag
        )


def check_range(flag: str, value: float | None, low: float, high: float | None = None) -> None:
    if value is not None and (value < low or (high is not None and value > high)):
        bound = f">= {low}" if high is None else f"in {low}..{high}"
        raise UsageError(f"{flag}: must be {bound}, not {value}", setting=flag)


def fmt(x: float | None) -> str:
    return "-" if x is None else f"{x:.3f}"
