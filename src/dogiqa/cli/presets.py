"""``dogiqa presets``: the named configurations, with full model ids."""

from __future__ import annotations

from rich import box
from rich.console import Console
from rich.table import Table

from dogiqa.presets import PRESETS


def presets_command() -> None:
    """List the presets (dogiqa config --preset NAME prints one in full)."""
    console = Console()
    table = Table("preset", "model", "readout", "segmenter", "aggregation", box=box.SIMPLE_HEAD, pad_edge=False)
    for name, preset in PRESETS.items():
        cfg = preset.config
        model = cfg.model.id if cfg.model.scorer == "mllm" else cfg.model.scorer
        row = [name, model, cfg.prompt.readout, cfg.segmentation.segmenter, cfg.aggregation.method]
        table.add_row(*row)
    table.columns[1].no_wrap = True  # model ids are copied from here: never truncated
    table.columns[1].overflow = "fold"
    table.columns[0].no_wrap = True
    console.print(table)
    for name, preset in PRESETS.items():
        console.print(f"[bold]{name}[/bold]: {preset.description}", highlight=False)
