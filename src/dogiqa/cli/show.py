"""``dogiqa show``: score one image and draw its regions and scores (like the paper's Figure 5)."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape as esc
from rich.table import Table

from dogiqa.cli import options as opt
from dogiqa.cli.common import check_choice, check_suffix, console, fmt, load_pipeline
from dogiqa.config import PipelineConfig

# show scores one image: throughput and server options do not apply
EXCLUDE = ("chunk_size", "max_batch_tokens", "prefix_cache", "base_url", "api_key_env", "concurrency", "timeout",
           "max_retries", "staged", "load_workers", "preprocess_workers", "segment_workers", "segment_processes",
           "max_in_flight")  # fmt: skip


@opt.pipeline_command(exclude=EXCLUDE)
def show(
    cfg: PipelineConfig,
    image: Path = typer.Argument(..., metavar="IMAGE", help="The image to score and draw.", show_default=False),
    out: Path = typer.Option(
        None,
        "--out",
        help="PNG to write (default IMAGE_dogiqa.png).",
        rich_help_panel=opt.IO,
        metavar="FILE",
        show_default=False,
    ),
    style: str = typer.Option(
        "quality",
        "--style",
        help="quality (regions coloured by score) | regions (Figure 5).",
        rich_help_panel=opt.IO,
        metavar="NAME",
    ),
) -> None:
    """Score one image and draw its quality map (regions coloured by score), or the paper's Figure 5."""
    check_suffix("--out", out, (".png",))
    from dogiqa.atomic import atomic_save_image
    from dogiqa.report.quality_map import STYLES, render

    check_choice("--style", style, STYLES)

    iqa = load_pipeline(cfg, keep_masks=True)
    result = iqa.score(image)
    if not result.ok:
        console.print(f"[red]failed[/red] {esc(result.error or '')}")
        raise typer.Exit(1)
    out = out or image.with_name(image.stem + "_dogiqa.png")
    atomic_save_image(render(result.image, result, style), out, format="PNG")  # the image the run decoded
    table = Table("region", "kind", "box", "weight", "score", "answer")
    for r in result.regions:
        table.add_row(str(r.index), r.kind, str(r.box), f"{r.weight:.0f}", fmt(r.score), esc(repr(r.raw)))
    Console().print(table)
    Console().print(
        f"final {fmt(result.score)}  global {fmt(result.global_score)}  local {fmt(result.local_score)}  -> {out}"
    )
