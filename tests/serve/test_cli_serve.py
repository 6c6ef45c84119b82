"""`dogiqa score --backend openai ...` end to end against the local test server with faults injected."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from dogiqa.cli import app
from dogiqa.testing.images import make_image

runner = CliRunner()


def image_folder(tmp_path):
    folder = tmp_path / "imgs"
    folder.mkdir()
    for i, (w, h) in enumerate([(96, 64), (64, 96), (80, 80)]):
        make_image(w, h, seed=20 + i).save(folder / f"img{i}.png")
    (folder / "broken.jpg").write_bytes(b"not an image")
    return folder


def test_score_with_server_backend_through_faults(chat_server, tmp_path):
    folder = image_folder(tmp_path)
    chat_server.all_faults = ["500", "drop"]
    out = tmp_path / "out.jsonl"
    args = ["score", str(folder), "--backend", "openai", "--base-url", chat_server.url, "--model", "tiny-vlm"]
    args += ["--segmenter", "felzenszwalb", "--timeout", "2", "--max-retries", "3", "--concurrency", "4"]
    res = runner.invoke(app, [*args, "--output", str(out), "--quiet"])
    assert res.exit_code == 1, res.output  # the broken file fails, the rest is scored
    records = {r["path"]: r for r in map(json.loads, out.read_text().splitlines())}
    assert len(records) == 4
    ok = [r for p, r in records.items() if not p.endswith("broken.jpg")]
    assert all(r["error"] is None and r["score"] is not None and r["regions"] for r in ok)
    assert all(r["config"]["model"] == f"openai:{chat_server.url}:tiny-vlm" for r in ok)
    assert min(chat_server.by_image.values()) >= 3  # each distinct request: two faults, then the answer


def test_server_backend_needs_a_base_url(tmp_path):
    folder = image_folder(tmp_path)
    res = runner.invoke(app, ["score", str(folder), "--backend", "openai", "--model", "m", "--quiet"])
    assert res.exit_code == 2 and "--base-url" in res.output
    res = runner.invoke(app, ["score", str(folder), "--concurrency", "4", "--quiet"])
    assert res.exit_code == 2 and "--backend openai" in res.output
