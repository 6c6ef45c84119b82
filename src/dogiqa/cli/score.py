"""``dogiqa score``: score images; one record per image (global score, regions, final score)."""

from __future__ import annotations

import logging
from functools import partial
from pathlib import Path
from typing import Any

import typer
from rich.markup import escape as esc
from rich.table import Table

from dogiqa.cli import options as opt
from dogiqa.cli.common import check_choice, check_range, check_suffix, console, fmt, load_pipeline, progress_bar
from dogiqa.config import PipelineConfig
from dogiqa.errors import UsageError
from dogiqa.results import display_text

RECORD_SUFFIXES = (".jsonl", ".csv", ".parquet")
TABLE_ROWS = 50  # rows of the per-image table printed at the end (the output file has them all)
ENGINES = ("local", "ray")


@opt.pipeline_command()
def score(
    cfg: PipelineConfig,
    paths: list[Path] = typer.Argument(
        ...,
        metavar="PATH",
        help="Images, folders, .tar shards, .parquet/.arrow, hf:DATASET.",
        show_default=False,
    ),
    output: Path = typer.Option(
        None,
        "--output",
        "-o",
        help="FILE.jsonl | .csv | .parquet (ray: DIR).",
        rich_help_panel=opt.IO,
        metavar="FILE",
        show_default=False,
    ),
    image_column: str = typer.Option(
        None, "--image-column", help="Tables: image column; shards: member ext.", rich_help_panel=opt.IO,
        metavar="NAME", show_default=False,
    ),  # fmt: skip
    key_column: str = typer.Option(
        None, "--key-column", help="Tables: key column (else id/key or row).", rich_help_panel=opt.IO,
        metavar="NAME", show_default=False,
    ),  # fmt: skip
    keep_columns: str = typer.Option(
        None, "--keep-columns", help="Columns (shard members) copied to records.", rich_help_panel=opt.IO,
        metavar="A,B", show_default=False,
    ),  # fmt: skip
    report: Path = typer.Option(
        None,
        "--report",
        help="Overlay PNGs + HTML page into DIR.",
        rich_help_panel=opt.IO,
        metavar="DIR",
        show_default=False,
    ),
    resume: bool = typer.Option(
        False, "--resume", help="Continue --output; retry failed.", rich_help_panel=opt.IO
    ),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing --output.", rich_help_panel=opt.IO),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="List skipped files.", rich_help_panel=opt.IO),
    quiet: bool = opt.QUIET,
    engine: str = typer.Option(
        "local", "--engine", help="local | ray (Ray Data).", rich_help_panel=opt.CLUSTER, metavar="NAME"
    ),
    address: str = typer.Option(
        None,
        "--address",
        help="local | auto | ray://HOST:10001.",
        rich_help_panel=opt.CLUSTER,
        metavar="ADDR",
        show_default=False,
    ),
    num_workers: int = typer.Option(
        None,
        "--num-workers",
        help="Actors, one pipeline each (2).",
        rich_help_panel=opt.CLUSTER,
        metavar="N",
        show_default=False,
    ),
    gpus_per_worker: float = typer.Option(
        None,
        "--gpus-per-worker",
        help="GPUs per actor (0).",
        rich_help_panel=opt.CLUSTER,
        metavar="X",
        show_default=False,
    ),
    jsonl: bool = typer.Option(None, "--jsonl", help="Also write DIR/results.jsonl.", rich_help_panel=opt.CLUSTER),
    retry_failed: bool = typer.Option(
        None, "--retry-failed", help="Score inputs with a failed record again.", rich_help_panel=opt.CLUSTER
    ),
) -> None:
    """Score images; one record per image (global score, regions, final score).

    Exit codes: 0 all scored; 1 some failed (error records); 2 usage error; 3 internal error (log named).
    """
    from dogiqa.sources import SourceOptions, check_sources

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")
    check_choice("--engine", engine, ENGINES)
    keep = tuple(c.strip() for c in (keep_columns or "").split(",") if c.strip())
    sources = SourceOptions(image_column=image_column, key_column=key_column, keep_columns=keep)
    ray_opts = {"address": address, "num_workers": num_workers, "gpus_per_worker": gpus_per_worker, "jsonl": jsonl,
                "retry_failed": retry_failed}  # fmt: skip
    if engine == "ray":
        _check_ray(output, report, num_workers, gpus_per_worker)
        check_sources(paths, sources)
        ray_opts["source_options"] = sources
        _score_ray(cfg, paths, output, {k: v for k, v in ray_opts.items() if v is not None}, quiet)
    given = [k for k, v in ray_opts.items() if v is not None]
    if given:
        flag = "--" + given[0].replace("_", "-")
        raise UsageError(f"{flag}: only with --engine ray", setting=flag)
    check_suffix("--output", output, RECORD_SUFFIXES)
    if report is not None and report.exists() and not report.is_dir():
        raise UsageError(f"--report: {report} is a file; give a folder", setting="--report")
    loose = check_sources(paths, sources)  # a bad column or shard pattern: exit 2 before the model loads
    _check_output(output, resume, overwrite)  # before any model loads
    _score_local(cfg, paths, output, report, quiet, {"resume": resume, "overwrite": overwrite}, verbose, sources,
                 loose)  # fmt: skip


def _check_output(output: Path | None, resume: bool, overwrite: bool) -> None:
    from dogiqa.sinks import OutputExistsError

    flag = "--resume" if resume else "--overwrite"
    if (resume or overwrite) and output is None:
        raise UsageError(f"{flag}: only with --output FILE", setting=flag)
    if resume and overwrite:
        raise UsageError("--resume and --overwrite contradict each other: pick one", setting="--resume")
    if output is not None and not (resume or overwrite) and output.exists() and output.stat().st_size > 0:
        raise OutputExistsError(output)


def _check_ray(output: Path | None, report: Path | None, num_workers: int | None, gpus: float | None) -> None:
    if output is None or output.suffix.lower() in RECORD_SUFFIXES:  # a .parquet FILE is the local engine's
        raise UsageError("--output: --engine ray writes Parquet parts into a directory: give --output DIR")
    if report is not None:
        raise UsageError("--report: only with --engine local", setting="--report")
    check_range("--num-workers", num_workers, 1)
    check_range("--gpus-per-worker", gpus, 0)


def _score_local(
    cfg: PipelineConfig,
    paths: list[Path],
    output: Path | None,
    report: Path | None,
    quiet: bool,
    output_mode: dict[str, bool],
    verbose: bool,
    options: Any,
    loose: bool,
) -> None:
    from dogiqa.progress import ProgressBar
    from dogiqa.runners.local import run_local
    from dogiqa.sources import open_sources

    skipped: list[tuple[Path, str]] = []
    items = open_sources(paths, options, skipped)
    sources = list(items) if loose else items  # loose files are counted for the progress bar; collections stream
    writer = None
    if report is not None:
        from dogiqa.report.html import ReportWriter

        writer = ReportWriter(
            report,
            max_pixels=cfg.runtime.max_pixels,
            max_file_bytes=cfg.runtime.max_file_bytes,
            config={"preset": cfg.preset} if cfg.preset else None,
        )
    table = Table("image", "score", "global", "regions", "invalid", "error")
    total = len(sources) if isinstance(sources, list) else 0  # collections stream: no total
    with ProgressBar(total, console=console, disable=quiet) as bar:  # moves per image, honest ETA

        def on_result(r):
            if table.row_count < TABLE_ROWS:
                row = [esc(Path(r.path).name), fmt(r.score), fmt(r.global_score), str(len(r.regions)), str(r.invalid)]
                table.add_row(*row, esc((r.error or "")[:80]))
            if writer:
                writer.add(r)  # quality map PNG with the true mask shapes
                r.masks = None  # never hold every image's masks

        build = partial(load_pipeline, cfg, keep_masks=report is not None)  # only if anything is left to score
        summary = run_local(build, sources, output, on_result=on_result, progress=bar, **output_mode)
    summary.skipped = [(str(p), why) for p, why in skipped]
    if not quiet:
        console.print(table)
        if summary.total > TABLE_ROWS:
            where = f"; all in {esc(str(output))}" if output else ""
            console.print(f"(the first {TABLE_ROWS} of {summary.total} images{where})")
    if verbose:
        for path, why in summary.skipped:
            console.print(f"skipped: {esc(why)}: {esc(display_text(path))}", highlight=False, soft_wrap=True)
    if writer:
        console.print(f"report -> {esc(str(writer.close()))}")
    console.print(esc(summary.line() + (f" -> {output}" if output else "")), highlight=False)
    for _, err in summary.failures:
        console.print(f"[red]failed[/red] {esc(err)}", highlight=False)
    raise typer.Exit(1 if summary.failed else 0)


def _score_ray(cfg: PipelineConfig, paths: list[Path], output: Path, ray_opts: dict, quiet: bool) -> None:
    """``score --engine ray``: actors build the pipeline from the configuration; Parquet parts in ``output``."""
    from dogiqa.runners.ray import RayRunnerError, run_ray

    try:
        with progress_bar(disable=quiet) as bar:
            task = bar.add_task("scoring (ray)", total=None)
            summary = run_ray([str(p) for p in paths], output, cfg, on_result=lambda r: bar.advance(task),
                              **ray_opts)  # fmt: skip
    except RayRunnerError as exc:
        raise UsageError(str(exc)) from exc
    console.print(
        f"{summary.scored} scored, {summary.failed} failed, {summary.skipped} already done, "
        f"{summary.invalid_answers} invalid answers, {summary.seconds:.1f} s -> {output}"
    )
    for _, err in summary.failures:
        console.print(f"[red]failed[/red] {esc(err)}")
    raise typer.Exit(1 if summary.failed else 0)
