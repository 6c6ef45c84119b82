"""Generated collections (shards, tables, datasets) and a small Ray cluster for the source tests."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="module")
def piqe():
    """A fast classical pipeline (PIQE on the whole image): the sources, not the model, are under test."""
    from dogiqa.api import DogIQA

    # the settings the Ray tests give their actors, so records (config included) compare equal
    return DogIQA.from_config(dict(preset="global", scorer="piqe", segmenter="none", aggregation="global"))



@pytest.fixture
def shards(tmp_path: Path) -> list[Path]:
    """3 shards of 4, 4 and 2 samples; sample 3 holds garbage instead of an image."""
    from dogiqa.testing.collections import write_shards

    return write_shards(tmp_path / "shards", 10, 4, corrupt=[3])
