"""Help that reads at 80 columns; `dogiqa presets` and `dogiqa config`; --config precedence."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from dogiqa.cli import app
from dogiqa.cli.options import PIPELINE
from dogiqa.config import KEYWORDS, build_config, flag_of, resolve_config
from dogiqa.presets import PRESETS

runner = CliRunner()
PANELS = ("Input / output", "Model", "Method", "Segmentation", "Performance", "Server", "Cluster")


@pytest.mark.parametrize("command", ["score", "show", "eval", "config", "metrics", "presets"])
def test_help_fits_80_columns_without_type_names(command: str):
    res = runner.invoke(app, [command, "--help"], env={"COLUMNS": "80", "TERMINAL_WIDTH": "80"})
    assert res.exit_code == 0, res.output
    lines = res.output.splitlines()
    assert max(len(line) for line in lines) <= 80
    for internal in ("<list", "<bool>", "<int>", "<str>", "<Path>", "<float>", "{PATH", "list[", "<path>"):
        assert internal not in res.output, (command, internal)
    if command == "score":
        assert len(lines) <= 100, len(lines)
        positions = [res.output.find(f"─ {panel}") for panel in PANELS]
        assert -1 not in positions and positions == sorted(positions)  # every panel, in this order
        assert "Usage: " in lines[1] and lines[1].split()[-1] == "PATH..."


def test_every_pipeline_option_is_on_one_line():
    res = runner.invoke(app, ["score", "--help"], env={"COLUMNS": "80", "TERMINAL_WIDTH": "80"})
    rows = [line for line in res.output.splitlines() if line.startswith("│ --")]
    flags = {row.split()[1] for row in rows}
    assert {str(flag_of(KEYWORDS[k])).split("/")[0] for k in PIPELINE} <= flags
    continuation = [x for x in res.output.splitlines() if x.startswith("│      ") and "[required]" not in x]
    assert continuation == [], continuation  # no option's help wraps onto a second line


def test_presets_shows_full_model_ids():
    res = runner.invoke(app, ["presets"], env={"COLUMNS": "80"})
    assert res.exit_code == 0
    for name, preset in PRESETS.items():
        assert name in res.output and preset.config.model.id in res.output


def test_config_prints_the_resolved_configuration_as_yaml(tmp_path: Path):
    run = tmp_path / "run.yaml"
    run.write_text("preset: global\nregions: {min_area: 50}\nprompt: {readout: int}\n", encoding="utf-8")
    res = runner.invoke(app, ["config", "--config", str(run), "--readout", "qalign", "--device", "cpu"])
    assert res.exit_code == 0, res.output
    printed = build_config(yaml.safe_load(res.stdout))
    assert printed == resolve_config(None, run, {"readout": "qalign", "device": "cpu"})
    assert printed.preset == "global" and printed.regions.min_area == 50 and printed.prompt.readout == "qalign"
    again = tmp_path / "again.yaml"  # the output is a valid --config file that means the same
    again.write_text(res.stdout, encoding="utf-8")
    assert runner.invoke(app, ["config", "--config", str(again)]).stdout == res.stdout
