"""The local runner: many images through one DogIQA pipeline, with a progress bar and streaming output."""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dogiqa.api import DogIQA, Source
from dogiqa.config import PipelineConfig
from dogiqa.progress import ProgressHook
from dogiqa.results import ImageResult
from dogiqa.sinks import open_writer, prepare_output


@dataclass
class RunSummary:
    """Counts of a run, by cause: images scored / failed; crops whose backend call failed, invalid model
    answers (a reply that is not a level), crops a classical metric cannot score; inputs skipped by the walk."""

    total: int = 0
    scored: int = 0
    failed: int = 0
    invalid_answers: int = 0
    failed_crops: int = 0
    not_scorable: int = 0
    resumed: int = 0
    seconds: float = 0.0
    failures: list[tuple[str, str]] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)

    def add(self, result: ImageResult) -> None:
        self.total += 1
        self.invalid_answers += result.invalid
        self.failed_crops += result.failed_crops
        self.not_scorable += result.not_scorable
        if result.ok:
            self.scored += 1
        else:
            self.failed += 1
            self.failures.append((result.path, result.error or ""))


    def line(self) -> str:
        """The one-line summary the CLI prints (each cause counted on its own)."""
        parts = [f"{self.scored} scored", f"{self.failed} failed"]
        if self.resumed:
            parts.append(f"{self.resumed} already done (resumed)")
        parts += [f"{n} {what}" for n, what in (
            (self.failed_crops, "crops whose backend call failed"),
            (self.invalid_answers, "invalid answers"),
            (self.not_scorable, "crops not scorable"),
        ) if n]  # fmt: skip
        reasons: dict[str, int] = {}
        for _, reason in self.skipped:
            reasons[reason] = reasons.get(reason, 0) + 1
        parts += [f"{n} skipped: {reason}" for reason, n in sorted(reasons.items())]
        return ", ".join(parts) + f", {self.seconds:.1f} s"


def run_local(
    iqa: DogIQA | PipelineConfig | Mapping[str, Any] | Callable[[], DogIQA],
    sources: Iterable[Source],
    output: str | Path | None = None,
    on_result: Callable[[ImageResult], None] | None = None,
    resume: bool = False,
    overwrite: bool = False,
    progress: ProgressHook | None = None,
) -> RunSummary:
    """Score every source; write each record to ``output`` (.jsonl/.csv as soon as it is ready; .parquet
    when the run ends).

    ``iqa``: a pipeline, a configuration (any form ``DogIQA.from_config`` takes) or a function returning a
    pipeline; the last two are built only when something is left to score (a finished run resumed loads no
    model). An existing ``output`` is continued with ``resume`` (images with a finished record are skipped
    and counted in ``summary.resumed``) or replaced with ``overwrite``; otherwise OutputExistsError (exit 2).
    ``progress`` gets the pipeline's per-image work events (see :mod:`dogiqa.progress`)."""
    summary = RunSummary()
    start = time.perf_counter()
    done = prepare_output(output, resume, overwrite) if output else set()
    if done:
        given = list(sources)
        sources = [s for s in given if getattr(s, "path", str(s)) not in done]
        summary.resumed = len(given) - len(sources)
        if progress:
            progress("resumed", summary.resumed)
    pending = iter(sources)
    first = next(pending, _NOTHING)
    if first is _NOTHING and not isinstance(iqa, DogIQA):
        summary.seconds = time.perf_counter() - start
        return summary  # nothing left to score: no pipeline built, the output left as it is
    pipeline = _build(iqa)  # before the output is opened: a model that fails to load leaves no file behind
    writer = open_writer(output, append=resume) if output else None
    try:
        todo = itertools.chain([first], pending) if first is not _NOTHING else ()
        for result in pipeline.score_many(todo, progress=progress):
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


_NOTHING = object()


def _build(iqa: DogIQA | PipelineConfig | Mapping[str, Any] | Callable[[], DogIQA]) -> DogIQA:
    if isinstance(iqa, DogIQA):
        return iqa
    if callable(iqa):  # a builder (configurations and mappings are not callable)
        return iqa()
    return DogIQA.from_config(iqa)
