"""`dogiqa serve` from the command line: refusals before anything loads, and a real process stopped by SIGTERM."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
from http_helpers import cli_flags, image_bytes
from typer.testing import CliRunner

from dogiqa.cli import app

ROOT = Path(__file__).resolve().parents[2]
runner = CliRunner()


def test_refuses_a_reachable_address_without_a_token(monkeypatch):
    monkeypatch.delenv("DOGIQA_TOKEN", raising=False)
    res = runner.invoke(app, ["serve", "--host", "0.0.0.0", "--model", "some-org/some-model"])
    assert res.exit_code == 2 and "without a token" in res.output and "--insecure" in res.output


def test_a_named_token_variable_must_be_set(monkeypatch):
    monkeypatch.delenv("NO_SUCH_TOKEN_VAR", raising=False)
    res = runner.invoke(app, ["serve", "--token-env", "NO_SUCH_TOKEN_VAR", "--model", "some-org/some-model"])
    assert res.exit_code == 2 and "NO_SUCH_TOKEN_VAR is not set" in res.output


def test_bad_service_options_are_usage_errors():
    res = runner.invoke(app, ["serve", "--max-batch", "0", "--port", "0", "--model", "some-org/some-model"])
    assert res.exit_code == 2 and "max_batch" in res.output
    res = runner.invoke(app, ["serve", "--readout", "nonsense"])
    assert res.exit_code == 2 and "readout" in res.output


def test_help_lists_the_service_and_pipeline_options():
    res = runner.invoke(app, ["serve", "--help"], terminal_width=100)
    assert res.exit_code == 0
    for flag in ("--host", "--port", "--token-env", "--insecure", "--max-batch", "--max-wait-ms", "--max-queue",
                 "--max-body-mb", "--config", "--model", "--segmenter"):  # fmt: skip
        assert flag in res.output, flag


def _start(args: list[str], env: dict[str, str]) -> tuple[subprocess.Popen, str, list[str]]:
    cmd = [sys.executable, "-m", "dogiqa.cli", "serve", "--host", "127.0.0.1", "--port", "0", *args]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, cwd=ROOT)
    lines: list[str] = []
    found = threading.Event()

    def read() -> None:
        for line in proc.stdout:
            lines.append(line)
            if "listening on" in line:
                found.set()

    threading.Thread(target=read, daemon=True).start()
    assert found.wait(120), "".join(lines)
    url = re.search(r"listening on (http://\S+)", "".join(lines)).group(1)
    return proc, url, lines


def _env(**extra: str) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT / "src"), "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", **extra}


def test_serve_process_scores_and_sigterm_finishes_the_request_in_flight(tiny_qwen2vl_dir: Path):
    token = "process-test-token-1234"
    args = [*cli_flags(tiny_qwen2vl_dir), "--max-batch", "8", "--max-wait-ms", "1500", "--token-env", "MY_TOKEN"]
    proc, url, lines = _start(args, _env(MY_TOKEN=token))
    try:
        auth = {"Authorization": f"Bearer {token}"}
        deadline = time.monotonic() + 120
        while httpx.get(f"{url}/healthz").status_code != 200:
            assert time.monotonic() < deadline and proc.poll() is None, "".join(lines)
            time.sleep(0.1)
        assert httpx.post(f"{url}/v1/score", content=image_bytes(), timeout=60).status_code == 401
        box: list[httpx.Response] = []
        client = threading.Thread(
            target=lambda: box.append(httpx.post(f"{url}/v1/score?name=a.png", content=image_bytes(), headers=auth,
                                                 timeout=120)))  # fmt: skip
        client.start()
        time.sleep(0.5)  # the request waits up to 1.5 s in the queue for company
        proc.send_signal(signal.SIGTERM)
        client.join(120)
        assert proc.wait(120) == -signal.SIGTERM, "".join(lines)  # uvicorn exits by the signal it finished on
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert box and box[0].status_code == 200 and box[0].json()["path"] == "a.png" and box[0].json()["score"] is not None


def test_a_model_that_cannot_load_exits_2(tmp_path: Path):
    folder = tmp_path / "no-model-here"
    folder.mkdir()  # exists (the configuration is valid) but holds no model: loading fails after listening
    proc, _, lines = _start(["--model", str(folder), "--segmenter", "none"], _env())
    try:
        code = proc.wait(120)
    finally:
        if proc.poll() is None:
            proc.kill()
    time.sleep(0.2)
    assert code == 2, "".join(lines)
    assert "no-model-here" in "".join(lines)
