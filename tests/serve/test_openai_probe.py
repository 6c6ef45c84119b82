"""First contact: a server that cannot serve the chosen readout stops the run with one message (exit 2)."""

from __future__ import annotations

import socket
import time

import pytest
from chat_server import ChatServer
from PIL import Image
from typer.testing import CliRunner

from dogiqa.api import DogIQA
from dogiqa.errors import EXIT_USAGE, ServerCapabilityError, UsageError

PROBE_ITEM = 528  # the probe's mid-grey image, as the fake server numbers it


def pipeline(url: str, readout: str = "expected", model: str = "tiny-vlm", **backend_options) -> DogIQA:
    opts = {"base_url": url, "backoff_base": 0.01, "backoff_max": 0.02, **backend_options}
    return DogIQA.from_preset("global", model=model, backend="openai", readout=readout, backend_options=opts)


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_a_capable_server_passes_with_one_or_two_requests(chat_server):
    iqa = pipeline(chat_server.url)
    assert chat_server.total_requests() == 1 and chat_server.probes == 1
    assert iqa.score(Image.new("RGB", (40, 30), (10, 200, 30))).score is not None
    chat_server.reset()
    pipeline(chat_server.url, readout="qalign")  # plain request, then one with the answer prefix
    assert chat_server.total_requests() == 2
    assert chat_server.bodies[PROBE_ITEM]["continue_final_message"] is True


def test_no_logprobs_stops_logit_readouts_only(chat_server):
    chat_server.logprobs_supported = False
    for readout in ("expected", "qalign", "qbench"):
        with pytest.raises(ServerCapabilityError) as info:
            pipeline(chat_server.url, readout=readout)
        msg = str(info.value)
        assert "returns no log-probabilities" in msg and "--readout int" in msg and readout in msg
        assert chat_server.url in msg and info.value.setting == "--readout"
    iqa = pipeline(chat_server.url, readout="int")  # the int readout reads the text
    assert iqa.score(Image.new("RGB", (40, 30), (10, 200, 30))).score is not None


def test_rejected_continue_final_message_stops_prefix_readouts(chat_server):
    chat_server.reject_continue = True
    for readout in ("qalign", "qbench"):
        with pytest.raises(ServerCapabilityError, match="continue_final_message") as info:
            pipeline(chat_server.url, readout=readout)
        assert "HTTP 422" in str(info.value) and "Unexpected field" in str(info.value)
    pipeline(chat_server.url, readout="expected")  # no answer prefix: fine


def test_unknown_model_names_the_served_ones(chat_server):
    with pytest.raises(ServerCapabilityError) as info:
        pipeline(chat_server.url, model="no-such-model")
    msg = str(info.value)
    assert "HTTP 404" in msg and "'no-such-model'" in msg and "it serves: tiny-vlm" in msg
    assert info.value.setting == "--model"


def test_a_refused_key_is_one_message(chat_server, monkeypatch):
    monkeypatch.setenv("DOGIQA_PROBE_KEY", "sk-probe-8d7f6e5c")
    chat_server.faults[PROBE_ITEM] = ["401"]
    with pytest.raises(ServerCapabilityError, match="API key") as info:
        pipeline(chat_server.url, api_key_env="DOGIQA_PROBE_KEY")
    assert "sk-probe-8d7f6e5c" not in str(info.value) and "$DOGIQA_PROBE_KEY" in str(info.value)


def test_an_unhealthy_server_is_retried_then_reported(chat_server):
    chat_server.faults[PROBE_ITEM] = ["503", "503"]
    pipeline(chat_server.url, max_retries=2)  # recovers within the retries
    chat_server.faults[PROBE_ITEM] = ["503"] * 10
    chat_server.reset()
    with pytest.raises(ServerCapabilityError, match="HTTP 503.*2 time"):
        pipeline(chat_server.url, max_retries=1)


def test_not_a_chat_completions_endpoint(chat_server):
    chat_server.faults[PROBE_ITEM] = ["empty"]  # once: retried like any malformed answer
    pipeline(chat_server.url)
    chat_server.faults[PROBE_ITEM] = ["empty"] * 10
    chat_server.reset()
    with pytest.raises(ServerCapabilityError, match="does not answer like an OpenAI chat-completions endpoint"):
        pipeline(chat_server.url, max_retries=2)
    assert chat_server.counts[PROBE_ITEM] == 3


def test_a_dropped_first_connection_is_retried(chat_server):
    chat_server.faults[PROBE_ITEM] = ["drop", "500"]
    pipeline(chat_server.url)
    assert chat_server.counts[PROBE_ITEM] == 3 and chat_server.probes == 3


def test_connection_refused_is_one_message_fast():
    url = f"http://127.0.0.1:{closed_port()}/v1"
    start = time.monotonic()
    with pytest.raises(ServerCapabilityError) as info:
        pipeline(url, max_retries=5)
    assert time.monotonic() - start < 10  # not retried: 5 retries with backoff would take longer
    assert f"cannot reach the server at {url}/chat/completions: connection refused" in str(info.value)
    assert isinstance(info.value, UsageError) and info.value.exit_code == EXIT_USAGE


def test_dns_failure_is_one_message():
    with pytest.raises(ServerCapabilityError, match="cannot reach the server at http://no-such-host.invalid"):
        pipeline("http://no-such-host.invalid:8000/v1", max_retries=5, timeout=5.0)


def test_the_probe_can_be_skipped():
    iqa = pipeline(f"http://127.0.0.1:{closed_port()}/v1", check_server=False, max_retries=0)
    result = iqa.score(Image.new("RGB", (40, 30)))
    assert result.score is None and "backend call failed" in (result.global_error or result.error or "")


@pytest.mark.parametrize("userinfo", ["", "dogiqa:sk-cli-55aa66bb@"])
def test_cli_exits_2_with_one_message(sample_images_dir, userinfo):
    from dogiqa.cli import app

    url = f"http://{userinfo}127.0.0.1:{closed_port()}/v1"
    args = ["score", str(sample_images_dir), "--backend", "openai", "--base-url", url, "--model", "m", "--quiet"]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == EXIT_USAGE, res.output
    assert "cannot reach the server at http://127.0.0.1:" in res.output and "connection refused" in res.output
    assert "invalid" not in res.output and "sk-cli-55aa66bb" not in res.output
    assert res.output.count("cannot reach") == 1


def test_fake_server_capability_switches_are_real(chat_server: ChatServer):
    """The switches the tests above rely on change what the fake server sends."""
    from dogiqa.backends.base import Prompt
    from dogiqa.backends.openai_server import OpenAIServerBackend

    be = OpenAIServerBackend("tiny-vlm", chat_server.url, check_server=False, max_retries=0)
    chat_server.logprobs_supported = False
    (out,) = be.run([Image.new("RGB", (8, 8))], Prompt("a", "b"), ["1", "2"])
    assert out.logprobs is None and out.meta["logprobs_missing"] is True
    chat_server.reject_continue = True
    (out,) = be.run([Image.new("RGB", (8, 8))], Prompt("a", "b", answer_prefix="The"), ["1", "2"])
    assert "HTTP 422" in out.error
    be.close()


def test_ray_runner_checks_the_server_once_before_starting_ray(sample_images_dir, tmp_path, monkeypatch):
    from dogiqa.cli import app
    from dogiqa.runners import ray as ray_runner

    monkeypatch.setattr(ray_runner, "_require_ray", lambda: pytest.fail("Ray was started"))
    url = f"http://127.0.0.1:{closed_port()}/v1"
    config = {"preset": "global", "backend": "openai", "model": "m", "base_url": url}
    with pytest.raises(ServerCapabilityError, match="cannot reach"):
        ray_runner.run_ray(sample_images_dir, tmp_path / "out", config)
    args = ["score", str(sample_images_dir), "--engine", "ray", "--backend", "openai", "--base-url", url]
    res = CliRunner().invoke(app, [*args, "--model", "m", "-o", str(tmp_path / "out"), "--quiet"])
    assert res.exit_code == EXIT_USAGE and res.output.count("cannot reach the server") == 1, res.output
