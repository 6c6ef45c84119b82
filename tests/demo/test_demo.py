"""``make demo``'s driver: offline and without weights it still ends with records and a report (PIQE);
with a model folder it uses the VLM; ``dogiqa score`` itself never falls back."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from dogiqa.demo import FALLBACK_OPTIONS, score_command, vlm_unavailable

REPO = Path(__file__).resolve().parents[2]


def _demo(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": os.pathsep.join([str(REPO / "src"), str(REPO / "tests")])}
    cmd = [sys.executable, "-m", "dogiqa.demo", "--images", "imgs", "--out", "out", "--photos", "coffee", *args]
    return subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)


def _records(tmp_path: Path) -> list[dict]:
    return [json.loads(line) for line in (tmp_path / "out" / "scores.jsonl").read_text().splitlines()]


def test_offline_without_weights_falls_back_to_piqe_and_exits_0(tmp_path: Path) -> None:
    res = _demo(tmp_path, "--model", str(tmp_path / "no-such-model"))
    assert res.returncode == 0, res.stdout + res.stderr
    lines = [line for line in res.stdout.splitlines() if "no VLM could be loaded" in line]
    assert len(lines) == 1 and "no-such-model" in lines[0] and "PIQE" in lines[0]
    assert "make demo MODEL=" in res.stdout and "--preset recommended" in res.stdout  # how to use a VLM
    records = _records(tmp_path)
    assert len(records) == 3 and all(r["score"] is not None and r["config"]["scorer"] == "piqe" for r in records)
    assert all(r["config"]["segmenter"] == "slic" and len(r["regions"]) > 1 for r in records)  # mix-grained
    page = (tmp_path / "out" / "report" / "index.html").read_text()
    assert page.count('data-status="scored"') == 3 and len(list((tmp_path / "out" / "report").glob("*.png"))) == 3


def test_with_a_model_folder_the_vlm_scores(tmp_path: Path, tiny_qwen2vl_dir: Path) -> None:
    res = _demo(tmp_path, "--model", str(tiny_qwen2vl_dir), "--", "--segmenter", "none", "--quiet")
    assert res.returncode == 0, res.stdout + res.stderr
    assert "no VLM could be loaded" not in res.stdout
    records = _records(tmp_path)
    assert len(records) == 3 and all(r["config"]["scorer"] == "mllm" for r in records)
    assert all(r["config"]["model"] == str(tiny_qwen2vl_dir) for r in records)


def test_vlm_availability_checks(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    (tmp_path / "empty").mkdir()
    assert "config.json" in vlm_unavailable(str(tmp_path / "empty"))
    (tmp_path / "empty" / "config.json").write_text("{}")
    assert vlm_unavailable(str(tmp_path / "empty")) is None
    assert "cannot be reached" in vlm_unavailable("nobody/no-such-model-xyz")
    assert "not a folder" in vlm_unavailable("./missing-folder")


def test_score_never_falls_back(tmp_path: Path) -> None:
    """The fallback is the demo's: ``dogiqa score`` with an unloadable model exits 2 and scores nothing."""
    from PIL import Image

    Image.new("RGB", (64, 48), (90, 120, 150)).save(tmp_path / "a.png")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(REPO / "src")}
    cmd = [sys.executable, "-m", "dogiqa.cli", *score_command(tmp_path / "a.png", tmp_path / "out", [])[1:]]
    res = subprocess.run(cmd + ["--model", str(tmp_path / "nope")], env=env, capture_output=True, text=True)
    assert res.returncode == 2, res.stdout + res.stderr
    records = tmp_path / "out" / "scores.jsonl"
    assert not records.exists() or "piqe" not in records.read_text()
    assert "no VLM could be loaded" not in res.stdout + res.stderr and "piqe" in FALLBACK_OPTIONS
