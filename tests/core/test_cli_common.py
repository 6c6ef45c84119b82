"""The CLI's shared checks: one-line usage errors naming the option, number formatting, pipeline loading."""

from __future__ import annotations

from pathlib import Path

import pytest

from dogiqa.cli.common import check_choice, check_range, check_suffix, fmt, load_pipeline, progress_bar
from dogiqa.config import resolve_config
from dogiqa.errors import UsageError


def test_check_choice():
    assert check_choice("--style", "quality", ("quality", "regions")) == "quality"
    with pytest.raises(UsageError) as exc:
        check_choice("--style", "rainbow", ("quality", "regions"))
    assert str(exc.value) == "--style: unknown value 'rainbow'; choose one of: quality, regions"
    assert exc.value.setting == "--style" and exc.value.exit_code == 2


def test_check_suffix():
    check_suffix("--output", None, (".jsonl",))
    check_suffix("--output", Path("x/OUT.JSONL"), (".jsonl", ".csv"))  # any case
    with pytest.raises(UsageError) as exc:
        check_suffix("--output", Path("x/out.txt"), (".jsonl", ".csv"))
    assert str(exc.value) == "--output: 'out.txt' has an unknown suffix; use one of: .jsonl, .csv"
    assert exc.value.setting == "--output"


def test_check_range():
    for value in (None, 1, 5, 1e9):
        check_range("--n", value, 1)
    for value in (0, 3, 10):
        check_range("--k", value, 0, 10)
    with pytest.raises(UsageError) as exc:
        check_range("--n", 0, 1)
    assert str(exc.value) == "--n: must be >= 1, not 0" and exc.value.setting == "--n"
    for bad in (-1, 11, 10.5):
        with pytest.raises(UsageError) as exc:
            check_range("--k", bad, 0, 10)
        assert str(exc.value) == f"--k: must be in 0..10, not {bad}"


def test_fmt():
    assert fmt(None) == "-" and fmt(3.14159) == "3.142" and fmt(2) == "2.000" and fmt(0.0) == "0.000"


def test_progress_bar_counts_and_can_be_silenced():
    bar = progress_bar()
    assert not bar.disable and progress_bar(disable=True).disable
    texts = [c.text_format for c in bar.columns if hasattr(c, "text_format")]
    assert "[bold]{task.description}" in texts and "ETA" in texts
    names = {type(c).__name__ for c in bar.columns}
    assert {"BarColumn", "MofNCompleteColumn", "TimeElapsedColumn", "TimeRemainingColumn"} <= names


def test_load_pipeline_errors_are_usage_errors(monkeypatch: pytest.MonkeyPatch):
    from dogiqa.api import DogIQA

    cfg = resolve_config("global", None, {"scorer": "niqe"})
    seen = {}

    def from_config(config, **runtime):
        seen.update(config=config, runtime=runtime)
        raise seen["raise"]

    monkeypatch.setattr(DogIQA, "from_config", from_config)
    seen["raise"] = RuntimeError("weights are corrupt")
    with pytest.raises(UsageError) as exc:
        load_pipeline(cfg, keep_masks=True)
    assert str(exc.value) == "cannot build the pipeline: weights are corrupt"
    assert seen["config"] == cfg and seen["runtime"] == {"keep_masks": True}
    seen["raise"] = UsageError("--trust-remote-code: needed", setting="--trust-remote-code")
    with pytest.raises(UsageError) as exc:
        load_pipeline(cfg)
    assert str(exc.value) == "--trust-remote-code: needed" and exc.value.setting == "--trust-remote-code"


def test_load_pipeline_builds_the_configuration():
    iqa = load_pipeline(resolve_config("global", None, {"scorer": "niqe", "min_area": 9}))
    assert iqa.config["scorer"] == "niqe" and iqa.config["min_area"] == 9
