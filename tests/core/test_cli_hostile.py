"""``dogiqa score`` on hostile inputs: exit codes 0/1/2/3, --resume/--overwrite, kill -9 then resume."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from dogiqa.cli import app
from dogiqa.results import ImageResult

REPO = Path(__file__).resolve().parents[2]
FAST = ["--scorer", "niqe", "--segmenter", "none", "--aggregation", "global", "-q"]  # no model: seconds


def _images(folder: Path, n: int) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    paths = []
    for i in range(n):
        arr = np.clip(rng.normal(128, 10 + 6 * i, (112, 112, 3)), 0, 255).astype(np.uint8)
        path = folder / f"img{i:02d}.png"
        Image.fromarray(arr).save(path)
        paths.append(path)
    return paths


def _run(*args: str):
    return CliRunner().invoke(app, ["score", *args, *FAST])


def _records(path: Path) -> list[ImageResult]:
    return [ImageResult.from_dict(json.loads(line)) for line in path.read_text(encoding="utf-8").splitlines()]


def test_exit_0_and_1(tmp_path):
    _images(tmp_path / "ok", 2)
    res = _run(str(tmp_path / "ok"), "-o", str(tmp_path / "a.jsonl"))
    assert res.exit_code == 0, res.output
    (tmp_path / "ok" / "empty.png").write_bytes(b"")
    (tmp_path / "ok" / "notes.txt").write_text("x")
    res = _run(str(tmp_path / "ok"), "-o", str(tmp_path / "b.jsonl"), "--verbose")
    assert res.exit_code == 1, res.output
    text = " ".join(res.output.split())
    assert "2 scored, 1 failed" in text and "1 skipped: not an image extension" in text
    assert "notes.txt" in text  # --verbose lists the skipped files
    assert len(_records(tmp_path / "b.jsonl")) == 3


def test_exit_2_existing_output_needs_resume_or_overwrite(tmp_path):
    _images(tmp_path / "ok", 1)
    out = tmp_path / "r.jsonl"
    out.write_text("keep me\n")
    res = _run(str(tmp_path / "ok"), "-o", str(out))
    assert res.exit_code == 2
    assert "--resume" in res.output and "--overwrite" in res.output and "Traceback" not in res.output
    assert out.read_text() == "keep me\n"
    res = _run(str(tmp_path / "ok"), "-o", str(out), "--overwrite")
    assert res.exit_code == 0 and len(_records(out)) == 1
    res = _run(str(tmp_path / "ok"), "-o", str(out), "--resume", "--overwrite")
    assert res.exit_code == 2


def test_exit_3_internal_error_keeps_finished_records(tmp_path, monkeypatch):
    import dogiqa.runners.local as local

    _images(tmp_path / "ok", 3)
    real_add = local.RunSummary.add
    calls = []

    def buggy_add(self, result):
        calls.append(result)
        if len(calls) == 3:
            raise KeyError("a bug in our own code")
        return real_add(self, result)

    monkeypatch.setattr(local.RunSummary, "add", buggy_add)
    monkeypatch.setenv("DOGIQA_LOG_DIR", str(tmp_path / "logs"))
    out = tmp_path / "r.jsonl"
    res = _run(str(tmp_path / "ok"), "-o", str(out), "--chunk-size", "1")
    assert res.exit_code == 3, res.output
    text = " ".join(res.output.split())
    assert "internal error" in text and "KeyError" in text and "Traceback" not in res.output
    logs = list((tmp_path / "logs").glob("dogiqa-internal-error-*.log"))
    assert len(logs) == 1 and "".join(str(logs[0]).split()) in "".join(res.output.split())
    assert "a bug in our own code" in logs[0].read_text()
    assert [Path(r.path).name for r in _records(out)] == ["img00.png", "img01.png"]  # finished ones kept


def test_max_file_size(tmp_path):
    paths = _images(tmp_path / "ok", 1)
    size = paths[0].stat().st_size
    res = _run(str(paths[0]), "--max-file-size", str(size - 1), "-o", str(tmp_path / "r.jsonl"))
    assert res.exit_code == 1 and "file-size cap" in _records(tmp_path / "r.jsonl")[0].error
    res = _run(str(paths[0]), "--max-file-size", "0")
    assert res.exit_code == 2


SLOW_HOOK = """
import time
import dogiqa.api
_real = dogiqa.api.load_image
def _slow(*a, **k):
    time.sleep(0.25)
    return _real(*a, **k)
dogiqa.api.load_image = _slow
"""


def test_kill_9_then_resume_equals_a_clean_run(tmp_path):
    paths = _images(tmp_path / "imgs", 12)
    hook = tmp_path / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(SLOW_HOOK)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(hook), str(REPO / "src")]), "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "dogiqa.cli", "score", str(tmp_path / "imgs"), *FAST, "--chunk-size", "1"]
    out = tmp_path / "killed.jsonl"
    proc = subprocess.Popen([*cmd, "-o", str(out)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None:
        if out.exists() and out.read_bytes().count(b"\n") >= 4:
            break
        time.sleep(0.02)
    assert proc.poll() is None, "the run ended before it could be killed"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(30)
    data = out.read_bytes()
    done_before = data.count(b"\n")
    assert 4 <= done_before < len(paths)
    out.write_bytes(data[:-9])  # and a torn last line, as a kill in the middle of a write leaves
    plain_env = {**env, "PYTHONPATH": str(REPO / "src")}
    resumed = subprocess.run([*cmd, "-o", str(out), "--resume"], env=plain_env, capture_output=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr.decode()
    clean_out = tmp_path / "clean.jsonl"
    clean = subprocess.run([*cmd, "-o", str(clean_out)], env=plain_env, capture_output=True, timeout=300)
    assert clean.returncode == 0, clean.stderr.decode()
    got, want = _records(out), _records(clean_out)
    assert sorted(r.path for r in got) == sorted(str(p) for p in paths)  # 0 lost, 0 duplicated
    by_path = {r.path: r.score for r in want}
    for r in got:
        assert r.score == pytest.approx(by_path[r.path], rel=1e-9), r.path
    assert f"{done_before - 1} already done" in " ".join(resumed.stderr.decode().split())


def test_exit_codes_are_in_help():
    for args in ([], ["score"]):
        res = CliRunner().invoke(app, [*args, "--help"], env={"COLUMNS": "80"})
        text = " ".join(res.output.split())
        assert res.exit_code == 0 and "Exit codes: 0" in text and "3 internal error" in text


def test_resuming_a_finished_output_loads_no_model(tmp_path, tiny_qwen2vl_dir):
    """Nothing left to score: no model is built (a broken one does not matter) and the output is untouched;
    one new image: the model is needed, and its load failure is a usage error (exit 2) with the output kept."""
    import shutil

    model = tmp_path / "model"
    shutil.copytree(tiny_qwen2vl_dir, model)
    _images(tmp_path / "imgs", 2)
    out = tmp_path / "s.jsonl"
    args = ["score", str(tmp_path / "imgs"), "-o", str(out), "--model", str(model), "--segmenter", "none",
            "--aggregation", "global", "-q"]  # fmt: skip
    assert CliRunner().invoke(app, args).exit_code == 0
    before = out.read_bytes()
    for weights in model.glob("*.safetensors"):
        weights.write_bytes(b"not a safetensors file")
    res = CliRunner().invoke(app, [*args, "--resume"])
    assert res.exit_code == 0, res.output
    assert "0 scored" in res.output and "2 already done (resumed)" in " ".join(res.output.split())
    assert out.read_bytes() == before
    _images(tmp_path / "more", 3)
    shutil.copy(tmp_path / "more" / "img02.png", tmp_path / "imgs" / "img02.png")
    res = CliRunner().invoke(app, [*args, "--resume"])
    assert res.exit_code == 2 and "cannot build the pipeline" in " ".join(res.output.split())
    assert out.read_bytes() == before
