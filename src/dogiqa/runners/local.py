"""The local runner: many images through one DogIQA pipeline, with a progress bar and streaming output."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from dogiqa.api import DogIQA, Source
from dogiqa.progress import ProgressHook
from dogiqa.results import ImageResult
from dogiqa.sinks import ResultWriter


@dataclass
class RunSummary:
    total: int = 0
    scored: int = 0
    failed: int = 0
    invalid_answers: int = 0
    seconds: float = 0.0
    failures: list[tuple[str, str]] = field(default_factory=list)

    def add(self, result: ImageResult) -> None:
        self.total += 1
        self.invalid_answers += result.invalid
        if result.ok:
            self.scored += 1
        else:
            self.failed += 1
            self.failures.append((result.path, result.error or ""))


def run_local(
    iqa: DogIQA,
    sources: Iterable[Source],
    output: str | Path | None = None,
    on_result: Callable[[ImageResult], None] | None = None,
    progress: ProgressHook | None = None,
) -> RunSummary:
    """Score every source; write each record to ``output`` (.jsonl/.csv) as soon as it is ready.

    ``progress`` gets the pipeline's per-image work events (see :mod:`dogiqa.progress`)."""
    summary = RunSummary()
    start = time.perf_counter()
    writer = ResultWriter(output) if output else None
    try:
        for result in iqa.score_many(sources, progress=progress):
            summary.add(result)
            if writer:
                writer.write(result)
            if on_result:
                on_result(result)
    finally:
        if writer:
            writer.close()
    summary.seconds = time.perf_counter() - start
    return summary
