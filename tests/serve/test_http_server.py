"""The service under a real uvicorn on 127.0.0.1: scoring over the network, graceful shutdown, startup checks."""

from __future__ import annotations

import threading
import time

import httpx
import pytest
from http_helpers import Gated, image_bytes, real_server

from dogiqa.errors import EXIT_USAGE, UsageError
from dogiqa.serve import ServeSettings, check_exposure, is_loopback, token_from_env
from dogiqa.serve.server import bind, run_server

TOKEN = "a-long-enough-test-token"


def test_real_uvicorn_scores_with_a_token(serve_iqa):
    with real_server(lambda: serve_iqa, token=TOKEN) as (url, _):
        with httpx.Client(base_url=url, timeout=60) as c:
            deadline = time.monotonic() + 60
            while c.get("/healthz").status_code != 200:
                assert time.monotonic() < deadline
                time.sleep(0.05)
            denied = c.post("/v1/score", content=image_bytes())
            ok = c.post("/v1/score?name=a.png", content=image_bytes(), headers={"Authorization": f"Bearer {TOKEN}"})
            page = c.get("/")
    assert denied.status_code == 401
    assert ok.status_code == 200 and ok.json()["path"] == "a.png" and ok.json()["score"] is not None
    assert "server" not in {k.lower() for k in ok.headers}  # no software banner
    assert page.status_code == 200 and '<input id="file"' in page.text


def test_graceful_shutdown_finishes_requests_in_flight(serve_iqa):
    gated = Gated(serve_iqa)
    responses: list[httpx.Response] = []

    def client(i: int, url: str) -> None:
        responses.append(httpx.post(f"{url}/v1/score?name={i}.png", content=image_bytes(seed=i), timeout=60))

    with real_server(lambda: gated, max_batch=2, max_wait_ms=0) as (url, server):
        while httpx.get(f"{url}/healthz").status_code != 200:
            time.sleep(0.05)
        threads = [threading.Thread(target=client, args=(i, url)) for i in range(3)]
        for t in threads:
            t.start()
        assert gated.started.wait(30)
        deadline = time.monotonic() + 60
        batcher = server.config.app.state.service.batcher
        while sum(gated.batches) + batcher.waiting < 3:  # all three are with the model or in the queue
            assert time.monotonic() < deadline
            time.sleep(0.01)
        server.should_exit = True  # what SIGTERM / Ctrl-C do
        time.sleep(0.5)
        with pytest.raises(httpx.ConnectError):
            httpx.get(f"{url}/healthz", timeout=5)  # no longer listening
        gated.gate.set()  # the model finishes its batch only now
        for t in threads:
            t.join(60)
    assert sorted(r.status_code for r in responses) == [200, 200, 200]
    assert sorted(r.json()["path"] for r in responses) == ["0.png", "1.png", "2.png"]
    assert sum(gated.batches) == 3


def test_run_server_raises_a_usage_error_when_the_pipeline_cannot_load():
    def factory():
        raise OSError("model folder /nowhere does not exist")

    with pytest.raises(UsageError, match="cannot be loaded: OSError: model folder /nowhere") as err:
        run_server(factory, ServeSettings(port=0), log_level="critical")
    assert err.value.exit_code == EXIT_USAGE


def test_exposure_rules():
    assert is_loopback("127.0.0.1") and is_loopback("localhost") and is_loopback("::1") and is_loopback("[::1]")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.5") and not is_loopback("example.org")
    check_exposure(ServeSettings(host="127.0.0.1"))
    check_exposure(ServeSettings(host="0.0.0.0", token=TOKEN))
    check_exposure(ServeSettings(host="0.0.0.0", insecure=True))
    with pytest.raises(UsageError, match="without a token") as err:
        check_exposure(ServeSettings(host="0.0.0.0"))
    assert err.value.setting == "--host"
    with pytest.raises(UsageError, match="without a token"):
        run_server(lambda: None, ServeSettings(host="::"))  # refused before listening or loading


def test_token_from_the_environment(monkeypatch):
    monkeypatch.delenv("DOGIQA_TOKEN", raising=False)
    assert token_from_env(None) is None  # the default variable may be absent: no authentication
    with pytest.raises(UsageError, match="MY_TOKEN is not set"):
        token_from_env("MY_TOKEN", required=True)
    monkeypatch.setenv("MY_TOKEN", "short")
    with pytest.raises(UsageError, match="too short"):
        token_from_env("MY_TOKEN", required=True)
    monkeypatch.setenv("MY_TOKEN", f"  {TOKEN}\n")
    assert token_from_env("MY_TOKEN", required=True) == TOKEN
    monkeypatch.setenv("DOGIQA_TOKEN", TOKEN)
    assert token_from_env(None) == TOKEN


def test_bad_settings_and_a_taken_port_are_usage_errors():
    with pytest.raises(UsageError, match="max_batch"):
        ServeSettings(max_batch=0)
    with pytest.raises(UsageError, match="max_files"):
        ServeSettings(max_files=10, max_queue=5)
    taken = bind("127.0.0.1", 0)
    try:
        with pytest.raises(UsageError, match="cannot listen on 127.0.0.1"):
            bind("127.0.0.1", taken.getsockname()[1])
    finally:
        taken.close()
