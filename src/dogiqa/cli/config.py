"""``dogiqa config``: print the resolved configuration (preset + --config file + options) as YAML."""

from __future__ import annotations

import typer

from dogiqa.cli import options as opt
from dogiqa.config import PipelineConfig


@opt.pipeline_command()
def config_command(cfg: PipelineConfig) -> None:
    """Print the configuration that score/eval/show would run, as YAML (a valid --config file)."""
    typer.echo(cfg.to_yaml(), nl=False)
