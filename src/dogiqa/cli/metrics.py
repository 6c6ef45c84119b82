"""``dogiqa metrics PREDICTIONS --dataset NAME --labels PATH [--json]``: metrics of a predictions file."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer


def metrics(
    predictions: Path = typer.Argument(
        ...,
        help="Predictions: our records (.jsonl), the authors' results "
        "JSON [{name, score}], or CSV (name/path + score columns).",
    ),
    dataset: str = typer.Option(..., "--dataset", "-d", help="koniq, spaq, livec, agiqa, kadid, generic, meta-info."),
    labels: Path = typer.Option(..., "--labels", "-l", help="The label file, or the folder holding it."),
    json_out: bool = typer.Option(False, "--json", help="Print one JSON object instead of a table."),
    missing: str = typer.Option(
        "drop",
        "--missing",
        help="Labelled images without a prediction: 'drop' them or "
        "score them 1 ('paper', like the authors' code). Reported either way.",
    ),
    field: str = typer.Option("score", "--field", help="Which score to evaluate: score, global_score, local_score."),
    bootstrap: int = typer.Option(1000, "--bootstrap", help="Bootstrap resamples for the 95% CIs (0: none)."),
    seed: int = typer.Option(0, "--seed", help="Bootstrap seed."),
    lower_is_better: bool = typer.Option(
        False,
        "--lower-is-better",
        help="Predictions are lower-is-better (NIQE, BRISQUE, PIQE): negate them before correlating.",
    ),
    decimals: int = typer.Option(4, "--decimals", help="Round printed numbers (-1: full precision)."),
) -> None:
    """Compute SRCC, PLCC (raw, as the paper), KRCC, logistic PLCC/RMSE and bootstrap CIs of predictions."""
    from dogiqa.datasets import DatasetError, load_dataset
    from dogiqa.evaluate import (
        PredictionsError,
        clean_json,
        evaluate_predictions,
        format_metrics,
        no_match_hint,
        read_predictions,
    )

    if missing not in ("drop", "paper"):
        raise typer.BadParameter("use 'drop' or 'paper'", param_hint="--missing")
    try:
        ds = load_dataset(dataset, labels=labels)
        preds = read_predictions(predictions, field=field)
    except (DatasetError, PredictionsError, ValueError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    report = evaluate_predictions(
        preds, ds, missing=missing, n_boot=bootstrap, seed=seed, pred_higher_is_better=not lower_is_better
    )
    report["predictions"] = str(predictions)
    report = clean_json(report, None if decimals < 0 else decimals)
    if json_out:
        typer.echo(json.dumps(report))
    else:
        typer.echo(format_metrics(report))
    if report["n"] == 0:  # nothing was evaluated: an error, with what to try
        typer.echo(f"error: no prediction was evaluated: {no_match_hint(preds, ds, field, labels)}", err=True)
        raise typer.Exit(1)


def format_report(report: dict[str, Any]) -> str:
    """A short human-readable summary of an :func:`evaluate_predictions` report."""
    from dogiqa.evaluate import format_metrics

    return format_metrics(report)
