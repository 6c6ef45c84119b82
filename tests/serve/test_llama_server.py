"""The server backend against a real OpenAI-compatible server: llama.cpp's ``llama-server``.

``../shared/peers/llama-server`` holds a CPU build of the server, a tiny Qwen2-VL as a Hugging Face folder and
the same weights as GGUF + mmproj. The server is started once per session on 127.0.0.1 (a free port, web UI
and slot endpoints off, no ``LLAMA_*`` settings from the environment) and stopped (its process group) at the
end whatever happens. Scores through the server are compared with the transformers backend on the folder:
``int`` answers identical, ``expected`` scores within 0.05 per image (the server decodes and resizes the JPEG
the client sends with its own code, so the vision tower sees slightly different pixels).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from PIL import Image

from dogiqa.api import DogIQA
from dogiqa.backends.base import Prompt
from dogiqa.backends.openai_server import OpenAIServerBackend

from shared_data import SHARED

PEER = SHARED / "peers" / "llama-server"
EXPECTED_TOLERANCE = 0.05


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start(log: Path) -> tuple[subprocess.Popen, str]:
    port = _free_port()
    cmd = [
        str(PEER / "bin" / "llama-server"),
        *("-m", str(PEER / "model.gguf"), "--mmproj", str(PEER / "mmproj.gguf")),
        *("--host", "127.0.0.1", "--port", str(port)),  # loopback only
        *("-c", "4096", "-np", "1", "-t", "1", "--threads-http", "2"),
        *("--no-webui", "--no-slots", "--no-warmup"),
    ]
    env = {k: v for k, v in os.environ.items() if not k.startswith("LLAMA_")}
    proc = subprocess.Popen(
        cmd, stdout=log.open("wb"), stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env, start_new_session=True
    )
    return proc, f"http://127.0.0.1:{port}"


def _healthy(proc: subprocess.Popen, root: str, wait_s: float = 60.0) -> bool:
    end = time.monotonic() + wait_s
    while time.monotonic() < end and proc.poll() is None:
        try:
            if httpx.get(root + "/health", timeout=2.0).status_code == 200:
                return True
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    return False


def _stop(proc: subprocess.Popen) -> None:
    for sig, wait in ((signal.SIGTERM, 10), (signal.SIGKILL, 10)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            break
        try:
            proc.wait(timeout=wait)
            break
        except subprocess.TimeoutExpired:
            continue


@pytest.fixture(scope="session")
def llama_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The API root (``http://127.0.0.1:PORT/v1``) of a running llama-server."""
    if not SHARED.is_dir():
        pytest.skip(f"{SHARED} is absent: the llama-server build and models live in ../shared beside the checkout")
    for name in ("bin/llama-server", "model.gguf", "mmproj.gguf", "model-hf/config.json"):
        assert (PEER / name).is_file(), f"{PEER / name} is missing from ../shared"
    log = tmp_path_factory.mktemp("llama-server") / "server.log"
    for _ in range(3):  # the free port may be taken between choosing and binding it
        proc, root = _start(log)
        try:
            if _healthy(proc, root):
                yield root + "/v1"
                return
        finally:
            _stop(proc)
    pytest.fail(f"llama-server did not become healthy; its log:\n{log.read_text(errors='replace')[-3000:]}")


def _records(iqa: DogIQA, paths: list[Path]) -> list[dict]:
    out = [r.to_dict() for r in iqa.score_many(paths)]
    assert all(r["error"] is None and r["score"] is not None for r in out), [r["error"] for r in out]
    return out


@pytest.fixture(scope="module")
def sample_paths(sample_images_dir: Path) -> list[Path]:
    return sorted(p for p in sample_images_dir.iterdir() if p.is_file())


@pytest.fixture(scope="module")
def local_backend(llama_server):
    """The transformers backend on the same weights (loaded once for both readouts)."""
    from dogiqa.backends import load_backend

    return load_backend(str(PEER / "model-hf"), "transformers", device="cpu")


@pytest.mark.parametrize("readout", ["int", "expected"])
def test_server_scores_match_the_transformers_backend(llama_server, local_backend, sample_paths, readout):
    from dogiqa.scorers.mllm import MLLMScorer

    scorer = MLLMScorer(local_backend, standard="word", levels=7, readout=readout)
    local = DogIQA.from_preset("recommended", scorer=scorer, segmenter="felzenszwalb")
    served = DogIQA.from_preset("recommended", model="tiny-qwen2vl", backend="openai", readout=readout,
                                segmenter="felzenszwalb", backend_options={"base_url": llama_server})  # fmt: skip
    assert served.config["model"] == f"openai:{llama_server}:tiny-qwen2vl"
    assert (local.config["readout"], local.config["aggregation"]) == (readout, served.config["aggregation"])
    a, b = _records(local, sample_paths), _records(served, sample_paths)
    assert sum(len(r["regions"]) for r in a) >= len(a)  # regions were scored, not only the global crop
    for x, y in zip(a, b, strict=True):
        assert [r["box"] for r in x["regions"]] == [r["box"] for r in y["regions"]]
        answers = (x["global_raw"], [r["raw"] for r in x["regions"]])
        assert answers == (y["global_raw"], [r["raw"] for r in y["regions"]])  # the greedy digits
        if readout == "int":
            assert (x["score"], x["global_score"]) == (y["score"], y["global_score"])
        else:
            assert abs(x["score"] - y["score"]) <= EXPECTED_TOLERANCE
            assert abs(x["global_score"] - y["global_score"]) <= EXPECTED_TOLERANCE
            assert x["score"] != y["score"]  # two implementations, really: not one answer copied


def test_probe_accepts_what_llama_server_serves(llama_server, caplog):
    for readout in ("int", "expected", "qalign", "qbench"):
        iqa = DogIQA.from_preset("global", model="any-name", backend="openai", readout=readout,
                                 backend_options={"base_url": llama_server})  # fmt: skip
        assert iqa.config["readout"] == readout


def test_an_echoed_answer_prefix_is_removed(llama_server):
    """llama.cpp returns the continued prefix in the message text ("The quality is6"): the text is the answer."""
    prompt = Prompt("Rate:", "", answer_prefix="The quality is")
    with OpenAIServerBackend("m", llama_server, check_server=False) as be:
        (out,) = be.run([Image.new("RGB", (64, 64), (90, 140, 200))], prompt, [str(k) for k in range(1, 8)])
    assert out.error is None and out.text is not None
    assert not out.text.startswith("The") and out.text.strip() in {str(k) for k in range(10)}
    assert out.meta["absent"] < 7


def test_cli_scores_through_llama_server(llama_server, sample_images_dir, tmp_path):
    from typer.testing import CliRunner

    from dogiqa.cli import app

    out = tmp_path / "scores.jsonl"
    args = ["score", str(sample_images_dir), "--backend", "openai", "--base-url", llama_server, "--model", "m",
            "--preset", "global", "-o", str(out), "--quiet"]  # fmt: skip
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(records) == 4 and all(r["score"] is not None for r in records)
