"""``dogiqa eval``: score a labelled dataset (resumably) and report metrics, a table and a plot.

The files it writes and how resume and re-aggregation work: :mod:`dogiqa.runners.evaluation`.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import typer
from rich.markup import escape as esc

from dogiqa.cli import options as opt
from dogiqa.cli.common import check_choice, check_range, console, load_pipeline
from dogiqa.config import PipelineConfig
from dogiqa.errors import UsageError

DATA = "Dataset"


@opt.pipeline_command()
def eval_command(
    cfg: PipelineConfig,
    dataset: str = typer.Option(
        ..., "--dataset", "-d", help="koniq|spaq|livec|agiqa|kadid|generic.", rich_help_panel=DATA, metavar="NAME"
    ),
    root: Path = typer.Option(
        None,
        "--root",
        help="Dataset folder (images, labels).",
        rich_help_panel=DATA,
        metavar="DIR",
        show_default=False,
    ),
    labels: Path = typer.Option(
        None,
        "--labels",
        "-l",
        help="Label file or its folder.",
        rich_help_panel=DATA,
        metavar="PATH",
        show_default=False,
    ),
    limit: int = typer.Option(None, "--limit", help="Only the first N images.", rich_help_panel=DATA, metavar="N"),
    output_dir: Path = typer.Option(
        Path("dogiqa-eval"), "--output-dir", "-o", help="Where results go.", rich_help_panel=opt.IO, metavar="DIR"
    ),
    method: str = typer.Option(
        None, "--method", help="Table row (default PRESET-AGGREGATION).", rich_help_panel=opt.IO, metavar="NAME"
    ),
    cache_path: Path = typer.Option(
        None,
        "--cache",
        help="Cache (default OUTPUT_DIR/cache.sqlite).",
        rich_help_panel=opt.IO,
        metavar="FILE",
        show_default=False,
    ),
    resume: bool = typer.Option(True, "--resume/--no-resume", help="Skip finished images.", rich_help_panel=opt.IO),
    reaggregate_only: bool = typer.Option(
        False, "--reaggregate", help="Re-aggregate cached records; no model.", rich_help_panel=opt.METHOD
    ),
    c_max_from_data: bool = typer.Option(
        False, "--c-max-from-data", help="c_max = the dataset's most regions.", rich_help_panel=opt.METHOD
    ),
    missing: str = typer.Option(
        "drop", "--missing", help="Unscored images: drop | paper (1).", rich_help_panel=opt.IO, metavar="HOW"
    ),
    bootstrap: int = typer.Option(1000, "--bootstrap", help="Resamples for 95% CIs.", rich_help_panel=opt.IO),
    no_plot: bool = typer.Option(False, "--no-plot", help="No scatter plot.", rich_help_panel=opt.IO),
    json_out: bool = typer.Option(False, "--json", help="Metrics as JSON on stdout.", rich_help_panel=opt.IO),
    quiet: bool = opt.QUIET,
) -> None:
    """Evaluate a pipeline on a labelled dataset: records, metrics (SRCC/PLCC/...), table and plot."""
    check_choice("--missing", missing, ("drop", "paper"))
    check_range("--limit", limit, 1)
    check_range("--bootstrap", bootstrap, 0)
    if root is None and not reaggregate_only:
        raise UsageError("--root: give the dataset folder", setting="--root")
    from dogiqa.cache import CacheError, RawCache, run_key
    from dogiqa.datasets import DatasetError, load_dataset
    from dogiqa.runners import evaluation as ev

    try:
        ds = ev.subset(load_dataset(dataset, root=None if reaggregate_only else root, labels=labels or root), limit)
    except (DatasetError, ValueError) as exc:
        raise UsageError(str(exc)) from None
    for name in ds.missing[:10]:
        console.print(f"[yellow]missing image[/yellow] {esc(f'{name} (listed in {ds.label_file}, not under {root})')}")
    if len(ds.missing) > 10:
        console.print(f"[yellow]... {len(ds.missing)} labelled images missing on disk in all[/yellow]")
    request = ev.run_request(cfg)
    agg_name, c_max = cfg.aggregation.method, cfg.aggregation.c_max
    scorer = cfg.model.scorer
    label = method or f"{scorer if scorer != 'mllm' else cfg.preset or 'custom'}-{agg_name}"
    output_dir.mkdir(parents=True, exist_ok=True)
    try:
        cache = RawCache(cache_path or output_dir / "cache.sqlite")
    except CacheError as exc:
        raise UsageError(str(exc)) from None
    tag = ev.slug(f"{ds.name}-{label}")
    records_path = output_dir / f"records-{tag}.jsonl"
    try:
        run, hashes, digest = None, None, None
        if not reaggregate_only:  # an identical finished run asked again: its saved metrics (nothing recomputed)
            hashes = cache.file_hashes([it.path for it in ds.items])  # unchanged files are not read again
            digest = ev.fingerprint(
                ds, hashes, request, aggregation=agg_name, c_max=c_max, c_max_from_data=c_max_from_data,
                missing=missing, bootstrap=bootstrap, method=label, cache=str(cache.path),
            )  # fmt: skip
            if resume:
                plot_path = None if no_plot else output_dir / f"scatter-{tag}.png"
                metrics_path = output_dir / f"metrics-{tag}.json"
                run = ev.reuse_finished(ds, cache, request, hashes, digest, records_path, metrics_path, plot_path)
        if run is not None:
            pass
        elif reaggregate_only:
            run = ev.reaggregate(ds, cache, request, agg_name, c_max)
            ev.write_records(output_dir / f"records-{tag}.jsonl", run.records)
        else:
            from dogiqa.aggregate import get_aggregation
            from dogiqa.progress import ProgressBar

            with ProgressBar(len(ds.items), f"eval {ds.name}", console=console, disable=quiet) as bar:
                run = ev.run_eval(
                    ds,
                    lambda: load_pipeline(cfg, cache=cache),
                    cache,
                    request,
                    resume=resume,
                    aggregation=get_aggregation(agg_name).with_weights(c_max=c_max),
                    records_path=records_path,
                    progress=bar,
                    hashes=hashes,
                )
        run.files["records"] = records_path
        if c_max_from_data and not run.reused:
            from dogiqa.aggregate import get_aggregation

            meta = cache.run_config(run_key(request, exclude=ev.NOT_IN_RUN_KEY)) or {}
            used = ev.data_c_max(run, get_aggregation(agg_name), meta)
            ev.write_records(run.files["records"], run.records)
            console.print(f"c_max from the data: {used}")
        ev.summarize(run, ds, output_dir, label, missing=missing, n_boot=bootstrap, plot=not no_plot, digest=digest)
    except DatasetError as exc:
        raise UsageError(str(exc)) from None
    finally:
        cache.close()
    r = run.report
    console.print(
        f"{ds.name} ({label}): SRCC {_f(r.get('srcc'))}  PLCC {_f(r.get('plcc'))}  n={r['n']}  "
        f"missing={r['missing']}  resumed={run.resumed} scored={run.scored} failed={run.failed}"
    )
    if run.reused:
        console.print("  finished earlier with the same options, images and labels: saved metrics reused")
    if r.get("reason"):
        console.print(f"  SRCC/PLCC undefined: {esc(str(r['reason']))}", highlight=False)
    for kind, path in run.files.items():
        if path is not None:
            console.print(f"  {kind}: {esc(str(path))}")
    if json_out:
        sys.stdout.write(json.dumps(run.report) + "\n")
    raise typer.Exit(1 if run.failed else 0)


def _f(x: float | None) -> str:
    return "-" if x is None else f"{x:.4f}"
