"""The server client's retry policy, backoff, downscale and CLI options, seen from the server's side."""

from __future__ import annotations

import json

import pytest
from chat_server import ChatServer, _Handler, item_image, level_of
from typer.testing import CliRunner

from dogiqa.backends.base import BackendError, Prompt
from dogiqa.backends.openai_server import OpenAIServerBackend
from dogiqa.cli import app

PROMPT = Prompt(before_image="Rate:\n", after_image="\nOnly the number.")
LEVELS = [str(k) for k in range(1, 8)]


class _AnyStatus(_Handler):
    """Also answers other 3-digit faults (e.g. "408", "403") with that status and a message."""

    def _respond(self, item, body, fault):
        if fault and fault.isdigit() and fault != "429":  # the base server's 429 sends Retry-After
            return self._json(int(fault), {"error": {"message": f"injected status {fault}"}})
        return super()._respond(item, body, fault)


@pytest.fixture
def server():
    srv = ChatServer()
    srv.RequestHandlerClass = _AnyStatus
    srv.start()
    try:
        yield srv
    finally:
        srv.stop()


def client(server: ChatServer, **kw) -> OpenAIServerBackend:
    opts = dict(concurrency=2, timeout=5.0, max_retries=3, backoff_base=0.001, backoff_max=0.004)
    return OpenAIServerBackend("tiny-vlm", server.url, **{**opts, **kw})


@pytest.mark.parametrize("status", ["408", "429", "500", "503"])
def test_transient_statuses_are_retried(server, status):
    server.retry_after = "0"
    server.faults[3] = [status, status]
    with client(server) as be:
        [out] = be.run([item_image(3)], PROMPT, LEVELS)
    assert out.error is None and out.text == str(level_of(3)) and out.meta["attempts"] == 3
    assert server.counts[3] == 3


def test_exhausted_408_is_a_per_item_error_naming_it(server):
    server.faults[5] = ["408"] * 10
    with client(server, max_retries=2) as be:
        ok, bad = be.run([item_image(6), item_image(5)], PROMPT, LEVELS)
    assert ok.error is None
    assert "HTTP 408" in bad.error and "3 attempts" in bad.error and server.counts[5] == 3
    assert bad.meta["attempts"] == 3 and bad.meta["absent"] == len(LEVELS)  # no level has a log-prob


@pytest.mark.parametrize("status", ["401", "403", "404"])
def test_auth_and_not_found_are_fatal_with_the_servers_message(server, status):
    server.faults[7] = [status]
    with client(server) as be, pytest.raises(BackendError) as err:
        be.run([item_image(7)], PROMPT, LEVELS)
    assert f"HTTP {status}" in str(err.value) and f"injected status {status}" in str(err.value)
    assert "{" not in str(err.value)  # the server's message itself, not the JSON around it
    assert server.counts[7] == 1  # never retried


def test_unknown_model_names_the_model(server):
    with OpenAIServerBackend("no-such-model", server.url) as be, pytest.raises(BackendError) as err:
        be.run([item_image(1)], PROMPT, LEVELS)
    assert "no-such-model" in str(err.value) and "does not exist" in str(err.value)


def test_other_4xx_is_per_item_and_not_retried(server):
    server.faults[2] = ["413"]
    with client(server) as be:
        [out] = be.run([item_image(2)], PROMPT, LEVELS)
    assert "HTTP 413" in out.error and server.counts[2] == 1


def sleeps_with(monkeypatch, jitter: float | None) -> list[float]:
    """Record the client's backoff sleeps (no real waiting); ``jitter`` fixes random.random()."""
    import dogiqa.backends.openai_server as mod

    slept: list[float] = []
    real_sleep = mod.time.sleep
    monkeypatch.setattr(mod.time, "sleep", lambda s: slept.append(s) if s > 0 else real_sleep(0))
    if jitter is not None:
        monkeypatch.setattr(mod.random, "random", lambda: jitter)
    return slept


@pytest.mark.parametrize("jitter", [0.0, 1.0])
def test_backoff_doubles_up_to_its_cap_within_the_jitter_bounds(server, monkeypatch, jitter):
    slept = sleeps_with(monkeypatch, jitter)
    server.faults[9] = ["500"] * 5
    with client(server, max_retries=5, backoff_base=0.1, backoff_max=0.5) as be:
        [out] = be.run([item_image(9)], PROMPT, LEVELS)
    assert out.error is None and server.counts[9] == 6
    steps = [0.1, 0.2, 0.4, 0.5, 0.5]  # base * 2^attempt, capped at backoff_max
    assert slept == pytest.approx([s * (0.5 + 0.5 * jitter) for s in steps])  # jitter: 50 % .. 100 % of the step


def test_backoff_jitter_stays_within_bounds_and_varies(server, monkeypatch):
    slept = sleeps_with(monkeypatch, None)
    for item in range(20, 30):
        server.faults[item] = ["503"] * 3
    with client(server, max_retries=3, backoff_base=0.2, backoff_max=10.0) as be:
        outs = be.run([item_image(i) for i in range(20, 30)], PROMPT, LEVELS)
    assert all(o.error is None for o in outs) and len(slept) == 30
    assert all(0.1 - 1e-9 <= s <= 0.8 + 1e-9 for s in slept)
    assert len({round(s, 6) for s in slept}) > 10  # random, not a fixed fraction


def test_retry_after_sets_a_floor_on_the_wait(server, monkeypatch):
    slept = sleeps_with(monkeypatch, 0.0)
    server.retry_after = "3"
    server.faults[4] = ["429"]
    with client(server, backoff_base=0.01) as be:
        [out] = be.run([item_image(4)], PROMPT, LEVELS)
    assert out.error is None and slept == [3.0]


@pytest.mark.parametrize(("kw", "size"), [({}, (1536, 614)), ({"max_image_side": 100}, (100, 40)),
                                          ({"max_image_side": None}, (2000, 800))])  # fmt: skip
def test_images_are_downscaled_before_sending(server, kw, size):
    with client(server, **kw) as be:
        [out] = be.run([item_image(11, size=(2000, 800))], PROMPT, LEVELS)
    assert out.error is None and out.text == str(level_of(11))  # the colour (the item) survives the resize
    assert server.sizes[11] == size


def cli_score(server: ChatServer, tmp_path, *extra: str, code: int = 0) -> list[dict]:
    folder = tmp_path / "imgs"
    folder.mkdir(exist_ok=True)
    for i in (12, 13):
        item_image(i).save(folder / f"item{i}.png")
    out = tmp_path / "out.jsonl"
    args = ["score", str(folder), "--backend", "openai", "--base-url", server.url, "--model", "tiny-vlm",
            "--preset", "global", "--readout", "int", "--output", str(out), "--quiet", *extra]  # fmt: skip
    args.append("--overwrite")  # each call of a test writes the same output again
    res = CliRunner().invoke(app, args)
    assert res.exit_code == code, res.output
    return [json.loads(line) for line in out.read_text().splitlines()]


def test_cli_max_retries_reaches_the_client(server, tmp_path):
    server.faults[12] = ["500"] * 2
    recs = cli_score(server, tmp_path, "--max-retries", "1", code=1)
    by_name = {r["path"].rsplit("/", 1)[-1]: r for r in recs}
    assert "gave up after 2 attempts" in by_name["item12.png"]["global_error"] and server.counts[12] == 2
    assert by_name["item13.png"]["score"] == level_of(13)
    server.reset()
    server.faults[12] = ["500"] * 2
    recs = cli_score(server, tmp_path, "--max-retries", "2")
    assert all(r["error"] is None for r in recs) and server.counts[12] == 3


def test_cli_timeout_reaches_the_client(server, tmp_path):
    server.slow_s = 8.0  # far over the timeout; the other image answers far within it, even on a loaded machine
    server.faults[12] = ["slow", "slow", "slow"]
    recs = cli_score(server, tmp_path, "--timeout", "2", "--max-retries", "0", code=1)
    failed = [r for r in recs if r["error"]]
    assert len(failed) == 1 and "timeout" in failed[0]["global_error"] and "item12" in failed[0]["path"]


@pytest.mark.parametrize("concurrency", [1, 2])
def test_cli_concurrency_reaches_the_client(server, tmp_path, concurrency):
    server.delay = 1.5  # long enough for both requests to overlap when allowed, even on a loaded machine
    cli_score(server, tmp_path, "--concurrency", str(concurrency))
    assert server.max_inflight == concurrency  # two images: both in flight at once only when allowed
