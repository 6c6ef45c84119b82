"""`dogiqa score --preset paper` end to end on a tiny random mPLUG-Owl3 (auto-selected by its config)."""

from __future__ import annotations

import json

import numpy as np
from PIL import Image
from typer.testing import CliRunner

from dogiqa.backends import detect_backend
from dogiqa.cli import app
from dogiqa.testing.tiny_owl3 import build_tiny_mplug_owl3


def test_paper_preset_scores_a_folder(tmp_path):
    model = build_tiny_mplug_owl3(tmp_path / "owl3", seed=1, digit_scale=30.0)
    assert detect_backend(str(model)) == "mplug_owl3"
    folder = tmp_path / "imgs"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for name, (w, h) in {"a.png": (90, 60), "b.png": (40, 70)}.items():
        Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8)).save(folder / name)
    out = tmp_path / "out.jsonl"
    args = ["score", str(folder), "--model", str(model), "--preset", "paper", "--segmenter", "felzenszwalb"]
    res = CliRunner().invoke(app, [*args, "--device", "cpu", "--output", str(out), "--quiet"])
    assert res.exit_code == 0, res.output
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(records) == 2
    for record in records:
        assert record["error"] is None
        assert record["config"]["model"].startswith("mplug-owl3:")
        assert 1 <= record["global_score"] <= 7 and record["score"] is not None
