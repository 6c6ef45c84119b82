"""The ``dogiqa`` command line: a thin layer over the Python API.

Exit codes: 0 every image scored; 1 at least one image failed (its error record says why); 2 bad usage or a
model/segmenter that cannot be loaded.
"""

from __future__ import annotations

import inspect
import logging
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from dogiqa.commands import options as opt
from dogiqa.presets import PRESETS

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="Training-free image quality assessment with multimodal LLMs (Dog-IQA and beyond).",
)
console = Console(stderr=True)


def _opts(**kwargs: Any) -> dict[str, Any]:
    return {k: v for k, v in kwargs.items() if v is not None}


def build_pipeline(
    preset: str,
    model: str | None = None,
    backend: str | None = None,
    segmenter: str | None = None,
    standard: str | None = None,
    levels: int | None = None,
    readout: str | None = None,
    aggregation: str | None = None,
    c_max: float | None = None,
    min_area: int | None = None,
    crop_mode: str | None = None,
    device: str | None = None,
    dtype: str | None = None,
    batch_size: int | None = None,
    chunk_size: int | None = None,
    max_pixels: int | None = None,
    trust_remote_code: bool = False,
    paper_compat: bool | None = None,
    sam2_model: str | None = None,
    small_regions: str | None = None,
    scorer: str | None = None,
    clip_model: str | None = None,
    owl3_mask: str | None = None,
    sam2_preset: str | None = None,
    keep_masks: bool = False,
    max_batch_tokens: int | None = None,
    prefix_cache: bool | None = None,
    revision: str | None = None,
    base_url: str | None = None,
    api_key_env: str | None = None,
    concurrency: int | None = None,
    timeout: float | None = None,
    max_retries: int | None = None,
    backend_options: dict[str, Any] | None = None,
    cache: Any = None,
):
    """The DogIQA pipeline the CLI options describe (shared by score, eval and show)."""
    from dogiqa.api import DogIQA

    seg_opts = _opts(model=sam2_model, small_regions=small_regions, preset=sam2_preset, device=device)
    b_opts = dict(backend_options or {})
    server = _opts(
        base_url=base_url, api_key_env=api_key_env, concurrency=concurrency, timeout=timeout, max_retries=max_retries
    )
    if backend == "openai":
        if not (base_url or b_opts.get("base_url")):
            raise ValueError("--backend openai needs --base-url (e.g. http://127.0.0.1:8000/v1) and --model")
        if chunk_size is None:  # one backend call should hold enough crops to fill the concurrency
            chunk_size = max(8, concurrency or 8)
    elif server:
        raise ValueError(f"{', '.join('--' + k.replace('_', '-') for k in server)}: only with --backend openai")
    b_opts.update(server)
    if trust_remote_code:
        b_opts["trust_remote_code"] = True
    if owl3_mask:
        b_opts["attention_mask"] = owl3_mask
    b_opts.update(_opts(max_batch_tokens=max_batch_tokens, prefix_cache=prefix_cache, revision=revision))
    return DogIQA.from_preset(
        preset,
        **_opts(
            model=model,
            backend=backend,
            segmenter=segmenter,
            standard=standard,
            levels=levels,
            readout=readout,
            aggregation=aggregation,
            min_area=min_area,
            crop_mode=crop_mode,
            device=device,
            dtype=dtype,
            batch_size=batch_size,
            chunk_size=chunk_size,
            max_pixels=max_pixels,
            invalid_as_one=paper_compat,
            scorer=scorer,
            cache=cache,
            keep_masks=keep_masks or None,
        ),
        segmenter_options=seg_opts or None,
        backend_options=b_opts or None,
        aggregation_options=_opts(c_max=c_max) or None,
        scorer_options=_opts(model=clip_model, batch_size=batch_size) or None,
    )


def pipeline_options(params: dict[str, Any]) -> dict[str, Any]:
    """The subset of a command's parameters that describe the pipeline (``build_pipeline``'s arguments)."""
    names = inspect.signature(build_pipeline).parameters
    return {k: v for k, v in params.items() if k in names}


def load_or_exit(**kwargs: Any):
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # our own progress bar is enough
    try:
        return build_pipeline(**kwargs)
    except Exception as exc:  # noqa: BLE001 - any load failure is a clean exit 2 with the reason
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from exc


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


@app.command()
def score(
    paths: list[Path] = typer.Argument(..., help="Image files and/or folders (searched recursively)."),
    preset: str = opt.PRESET,
    model: str = opt.MODEL,
    backend: str = opt.BACKEND,
    segmenter: str = opt.SEGMENTER,
    standard: str = opt.STANDARD,
    levels: int = opt.LEVELS,
    readout: str = opt.READOUT,
    aggregation: str = opt.AGGREGATION,
    c_max: float = opt.C_MAX,
    min_area: int = opt.MIN_AREA,
    crop_mode: str = opt.CROP_MODE,
    output: Path = typer.Option(None, "--output", "-o", help="Write records to FILE.jsonl or FILE.csv."),
    device: str = opt.DEVICE,
    dtype: str = opt.DTYPE,
    batch_size: int = opt.BATCH_SIZE,
    chunk_size: int = opt.CHUNK_SIZE,
    max_batch_tokens: int = opt.MAX_BATCH_TOKENS,
    prefix_cache: bool = opt.PREFIX_CACHE,
    revision: str = opt.REVISION,
    max_pixels: int = opt.MAX_PIXELS,
    trust_remote_code: bool = opt.TRUST_REMOTE_CODE,
    paper_compat: bool = opt.PAPER_COMPAT,
    scorer: str = opt.SCORER,
    clip_model: str = opt.CLIP_MODEL,
    owl3_mask: str = opt.OWL3_MASK,
    sam2_model: str = opt.SAM2_MODEL,
    small_regions: str = opt.SMALL_REGIONS,
    sam2_preset: str = opt.SAM2_PRESET,
    report: Path = typer.Option(None, help="Write a region overlay PNG per image and an HTML page here."),
    base_url: str = opt.BASE_URL,
    api_key_env: str = opt.API_KEY_ENV,
    concurrency: int = opt.CONCURRENCY,
    timeout: float = opt.TIMEOUT,
    max_retries: int = opt.MAX_RETRIES,
    engine: str = typer.Option("local", help="local | ray (Ray Data; --output is then a directory)."),
    address: str = typer.Option("local", help="--engine ray: local (start one here) | auto | ray://HOST:10001."),
    num_workers: int = typer.Option(2, help="--engine ray: actors, each holding one pipeline (model replica)."),
    gpus_per_worker: float = typer.Option(0.0, help="--engine ray: GPUs per actor (0.5: two per GPU)."),
    jsonl: bool = typer.Option(False, help="--engine ray: also write DIR/results.jsonl."),
    quiet: bool = opt.QUIET,
) -> None:
    """Score images; one record per image (global score, regions, final score)."""
    from dogiqa.io import expand_paths
    from dogiqa.runners.local import run_local

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")
    if engine not in ("local", "ray"):
        console.print(f"[red]error:[/red] --engine must be local or ray, not {engine!r}")
        raise typer.Exit(2)
    if engine == "ray":
        ray_opts = dict(address=address, num_workers=num_workers, gpus_per_worker=gpus_per_worker, jsonl=jsonl)
        _score_ray(paths, output, pipeline_options(locals()), ray_opts, quiet)
    sources = list(expand_paths(paths))
    iqa = load_or_exit(**pipeline_options(locals()), keep_masks=report is not None)
    writer = None
    if report is not None:
        from dogiqa.report.html import ReportWriter

        writer = ReportWriter(report)
    table = Table("image", "score", "global", "regions", "invalid", "error")
    with progress_bar(disable=quiet) as bar:
        task = bar.add_task("scoring", total=len(sources))

        def on_result(r):
            bar.advance(task)
            table.add_row(
                Path(r.path).name,
                _fmt(r.score),
                _fmt(r.global_score),
                str(len(r.regions)),
                str(r.invalid),
                (r.error or "")[:80],
            )
            if writer:
                writer.add(r)  # overlay PNG with the true mask shapes
                r.masks = None  # never hold every image's masks

        summary = run_local(iqa, sources, output, on_result=on_result)
    if not quiet:
        console.print(table)
    if writer:
        console.print(f"report -> {writer.close()}")
    console.print(
        f"{summary.scored} scored, {summary.failed} failed, {summary.invalid_answers} invalid answers, "
        f"{summary.seconds:.1f} s" + (f" -> {output}" if output else "")
    )
    for _, err in summary.failures:
        console.print(f"[red]failed[/red] {err}")
    raise typer.Exit(1 if summary.failed else 0)


def _score_ray(
    paths: list[Path], output: Path | None, pipeline: dict[str, Any], ray_opts: dict[str, Any], quiet: bool
) -> None:
    """``score --engine ray``: actors build the pipeline; records go to Parquet parts in ``output``."""
    from dogiqa.runners.ray import RayRunnerError, list_sources, run_ray

    if output is None or output.suffix.lower() in (".jsonl", ".csv"):
        console.print("[red]error:[/red] --engine ray writes Parquet into a directory: give --output DIR")
        raise typer.Exit(2)
    try:
        sources = list_sources(paths)
        if pipeline.get("backend") == "openai" and not pipeline.get("base_url"):
            raise ValueError("--backend openai needs --base-url")
        with progress_bar(disable=quiet) as bar:
            task = bar.add_task("scoring (ray)", total=len(sources))
            summary = run_ray(sources, output, pipeline, on_result=lambda r: bar.advance(task), **ray_opts)
    except (RayRunnerError, ValueError) as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from exc
    console.print(
        f"{summary.scored} scored, {summary.failed} failed, {summary.skipped} already done, "
        f"{summary.invalid_answers} invalid answers, {summary.seconds:.1f} s -> {output}"
    )
    for _, err in summary.failures:
        console.print(f"[red]failed[/red] {err}")
    raise typer.Exit(1 if summary.failed else 0)


@app.command()
def show(
    image: Path = typer.Argument(..., help="The image to score and draw."),
    out: Path = typer.Option(None, "--out", help="PNG to write (default: IMAGE_dogiqa.png beside the image)."),
    preset: str = opt.PRESET,
    model: str = opt.MODEL,
    backend: str = opt.BACKEND,
    segmenter: str = opt.SEGMENTER,
    standard: str = opt.STANDARD,
    levels: int = opt.LEVELS,
    readout: str = opt.READOUT,
    aggregation: str = opt.AGGREGATION,
    min_area: int = opt.MIN_AREA,
    device: str = opt.DEVICE,
    dtype: str = opt.DTYPE,
    scorer: str = opt.SCORER,
    sam2_model: str = opt.SAM2_MODEL,
    small_regions: str = opt.SMALL_REGIONS,
) -> None:
    """Score one image and draw its regions and scores (like the paper's Figure 5)."""
    from dogiqa.io import load_image
    from dogiqa.report.overlay import render_overlay

    iqa = load_or_exit(**pipeline_options(locals()), keep_masks=True)
    result = iqa.score(image)
    if not result.ok:
        console.print(f"[red]failed[/red] {result.error}")
        raise typer.Exit(1)
    out = out or image.with_name(image.stem + "_dogiqa.png")
    render_overlay(load_image(image, None), result).save(out)
    table = Table("region", "kind", "box", "weight", "score", "answer")
    for r in result.regions:
        table.add_row(str(r.index), r.kind, str(r.box), f"{r.weight:.0f}", _fmt(r.score), repr(r.raw))
    Console().print(table)
    Console().print(
        f"final {_fmt(result.score)}  global {_fmt(result.global_score)}  local {_fmt(result.local_score)}  -> {out}"
    )


def _fmt(x: float | None) -> str:
    return "-" if x is None else f"{x:.3f}"


@app.command("presets")
def presets_command() -> None:
    """List the pipeline presets."""
    table = Table("preset", "model", "readout", "segmenter", "aggregation", "description")
    for name, p in PRESETS.items():
        table.add_row(
            name,
            p.get("model", "-"),
            p.get("readout", "-"),
            p.get("segmenter", "-"),
            p.get("aggregation", "-"),
            p["description"],
        )
    Console().print(table)


def _register_commands() -> None:
    from dogiqa.commands.evaluate import eval_command
    from dogiqa.commands.metrics import metrics

    app.command("metrics")(metrics)
    app.command("eval")(eval_command)


_register_commands()


def main() -> None:  # pragma: no cover
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
