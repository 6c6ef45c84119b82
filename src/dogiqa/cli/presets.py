"""``dogiqa presets``: the named configurations, with full model ids."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from dogiqa.presets import PRESETS


def presets_command() -> None:
    """List the pipeline presets (dogiqa config --preset NAME shows one in full)."""
    table = Table("preset", "model", "method", "description", show_lines=True)
    for name, preset in PRESETS.items():
        cfg = preset.config
        method = (
            f"{cfg.prompt.standard} K={cfg.prompt.levels or '-'}, {cfg.prompt.readout}\n"
            f"{cfg.segmentation.segmenter} regions\n{cfg.aggregation.method} aggregation"
        )
        model = cfg.model.id if cfg.model.scorer == "mllm" else cfg.model.scorer
        table.add_row(name, model, method, preset.description)
    # never truncate: model ids are copied from here
    table.columns[1].no_wrap = True
    table.columns[1].overflow = "fold"
    Console().print(table)
