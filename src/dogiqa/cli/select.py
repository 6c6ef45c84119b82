"""``dogiqa select RESULTS --min-score X [--max-score Y] -o OUT``: keep the records whose score is in range."""

from __future__ import annotations

from pathlib import Path

import typer

from dogiqa.cli.common import console


def select_command(
    results: Path = typer.Argument(
        ..., metavar="RESULTS", help="Records: FILE.jsonl | FILE.parquet | a Ray output DIR.", show_default=False
    ),
    min_score: float = typer.Option(None, "--min-score", help="Keep score >= X.", metavar="X", show_default=False),
    max_score: float = typer.Option(None, "--max-score", help="Keep score <= X.", metavar="X", show_default=False),
    output: Path = typer.Option(
        ..., "--output", "-o", help="FILE.txt (keys) | FILE.jsonl | FILE.parquet.", metavar="FILE",
        show_default=False,
    ),
) -> None:
    """Keep the inputs whose final score lies in a range: their keys, records or rows."""
    from dogiqa.select import select

    sel = select(results, output, min_score, max_score)
    console.print(f"{sel.kept} of {sel.total} inputs kept ({sel.failed} without a score) -> {sel.output}")
