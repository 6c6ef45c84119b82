"""The OpenAI-compatible client's contract, piece by piece, against a scripted fake server (each request gets
the next canned response): Retry-After forms, which statuses are retried / fatal / per item, the retry
budget, answer parsing (prefix echo, log-probability entries), request shape and settings validation."""

from __future__ import annotations

import email.utils
import json
import math
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from PIL import Image

import dogiqa.backends.openai_server as mod
from dogiqa.backends.base import BackendError, Prompt
from dogiqa.backends.openai_server import (
    BACKEND_FAILED,
    OpenAIServerBackend,
    build_messages,
    encode_image,
    map_logprobs,
    parse_retry_after,
)
from dogiqa.errors import ServerCapabilityError, UsageError

PROMPT = Prompt(before_image="Rate:\n", after_image="\nOnly the number.")
LEVELS = [str(k) for k in range(1, 8)]
IMG = Image.new("RGB", (32, 24), (200, 10, 10))


def answer(text: str = "5", top: list[tuple[str, float]] | None = None, sampled: bool = True) -> dict[str, Any]:
    """A chat completion whose answer is ``text`` with the top list ``top`` (token, logprob)."""
    choice: dict[str, Any] = {"index": 0, "message": {"role": "assistant", "content": text}}
    if top is not None:
        first: dict[str, Any] = {"top_logprobs": [{"token": t, "logprob": v} for t, v in top]}
        if sampled:
            first.update(token=text, logprob=top[0][1] if top else -0.1)
        choice["logprobs"] = {"content": [first]}
    return {"choices": [choice]}


class Scripted(ThreadingHTTPServer):
    """Answers each POST with the next (status, headers, body) of ``script``; the last one repeats.
    ``GET /models`` answers ``models`` (status, body)."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _ScriptHandler)
        self.script: list[tuple[int, dict[str, str], Any]] = [(200, {}, answer())]
        self.models: tuple[int, Any] = (200, {"data": [{"id": "served-a"}, {"id": "served-b"}]})
        self.requests: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        self.times: list[float] = []
        self.lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/v1"


class _ScriptHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: Scripted

    def log_message(self, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        self._send(self.server.models[0], {}, self.server.models[1])

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
        with self.server.lock:
            n = len(self.server.requests)
            self.server.requests.append(body)
            self.server.headers.append(dict(self.headers))
            self.server.times.append(time.monotonic())
            status, headers, payload = self.server.script[min(n, len(self.server.script) - 1)]
        self._send(status, headers, payload)

    def _send(self, status: int, headers: dict[str, str], payload: Any) -> None:
        data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for k, v in headers.items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)


@pytest.fixture
def srv():
    server = Scripted()
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def client(server: Scripted, **kw: Any) -> OpenAIServerBackend:
    opts = dict(concurrency=1, timeout=5.0, max_retries=3, backoff_base=0.001, backoff_max=0.002, check_server=False)
    return OpenAIServerBackend("m", server.url, **{**opts, **kw})


def one(server: Scripted, prompt: Prompt = PROMPT, candidates=LEVELS, want_text: bool = True, **kw: Any):
    with client(server, **kw) as be:
        [out] = be.run([IMG], prompt, candidates, want_text)
    return out


def error_body(message: str) -> dict[str, Any]:
    return {"error": {"message": message}}


class FakeClock:
    """The client module's clock: ``sleep`` returns at once but moves ``monotonic`` on (and is recorded)."""

    def __init__(self) -> None:
        self.slept: list[float] = []
        self.offset = 0.0

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.offset += seconds

    def monotonic(self) -> float:
        return time.monotonic() + self.offset


def record_sleeps(monkeypatch, jitter: float = 0.0) -> list[float]:
    """The client's backoff sleeps (no real waiting); ``jitter`` fixes random.random()."""
    clock = FakeClock()
    monkeypatch.setattr(mod, "time", clock)
    monkeypatch.setattr(mod.random, "random", lambda: jitter)
    return clock.slept


# -- Retry-After -----------------------------------------------------------------------------------------
def test_retry_after_seconds():
    assert parse_retry_after("0") == 0.0
    assert parse_retry_after("7") == 7.0
    assert parse_retry_after("2.5") == 2.5
    assert parse_retry_after("-3") == 0.0  # never a negative wait
    assert parse_retry_after("") is None and parse_retry_after(None) is None
    assert parse_retry_after("soon") is None and parse_retry_after("Mon, 99 Foo") is None


@pytest.mark.parametrize("zone", ["GMT", "+0000", "-0000", ""])
def test_retry_after_http_date_in_the_future(zone):
    """An HTTP date is a moment (RFC 9110 dates are GMT; one without a zone is read as UTC)."""
    when = time.time() + 120
    text = email.utils.formatdate(when, usegmt=True).replace(" GMT", f" {zone}".rstrip())
    assert parse_retry_after(text) == pytest.approx(120, abs=5)


def test_retry_after_http_date_in_another_zone():
    when = time.time() + 600
    # the same moment written in UTC+02:00
    local = time.strftime("%a, %d %b %Y %H:%M:%S +0200", time.gmtime(when + 7200))
    assert parse_retry_after(local) == pytest.approx(600, abs=5)
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0  # past: retry now


def test_retry_after_sets_the_wait_for_408_429_and_503(srv, monkeypatch):
    slept = record_sleeps(monkeypatch)
    srv.script = [
        (408, {"Retry-After": "2"}, error_body("timeout")),
        (429, {"Retry-After": "3"}, error_body("slow down")),
        (503, {"Retry-After": "4"}, error_body("busy")),
        (200, {}, answer("6")),
    ]
    out = one(srv, max_retry_after=10.0)
    assert out.error is None and out.text == "6" and out.meta["attempts"] == 4
    assert slept == [2.0, 3.0, 4.0]


def test_retry_after_is_capped_and_never_shortens_the_backoff(srv, monkeypatch):
    slept = record_sleeps(monkeypatch, jitter=1.0)
    srv.script = [
        (429, {"Retry-After": "100"}, error_body("slow")),
        (429, {"Retry-After": "0"}, error_body("slow")),
        (200, {}, answer("6")),
    ]
    out = one(srv, max_retry_after=1.5, backoff_base=0.4, backoff_max=10.0)
    assert out.error is None
    assert slept == pytest.approx([1.5, 0.8])  # capped at max_retry_after; then the backoff step 0.4 * 2


def test_backoff_without_jitter_floor_is_half_the_step(srv, monkeypatch):
    slept = record_sleeps(monkeypatch, jitter=0.0)
    srv.script = [(500, {}, error_body("x"))] * 4 + [(200, {}, answer("2"))]
    out = one(srv, max_retries=4, backoff_base=1.0, backoff_max=5.0)
    assert out.error is None and out.text == "2"
    assert slept == pytest.approx([0.5, 1.0, 2.0, 2.5])  # 1, 2, 4, 8->5 seconds, times 50 %


# -- statuses ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("status", [408, 429, 500, 502, 503, 504])
def test_retryable_statuses(srv, status):
    srv.script = [(status, {}, error_body("try later")), (200, {}, answer("3"))]
    out = one(srv)
    assert out.error is None and out.text == "3" and len(srv.requests) == 2 and out.meta["attempts"] == 2


@pytest.mark.parametrize("status", [401, 403, 404, 408, 500])
def test_a_status_without_a_body_says_no_reason_was_given(srv, status):
    srv.script = [(status, {}, b"")]
    try:
        out = one(srv, max_retries=0)
        msg = out.error
    except BackendError as exc:
        msg = str(exc)
    assert f"HTTP {status}" in msg and "no reason given" in msg


@pytest.mark.parametrize("status", [401, 403, 404])
def test_fatal_statuses_stop_the_run(srv, status):
    srv.script = [(status, {}, error_body("nope: who are you"))]
    with client(srv) as be, pytest.raises(BackendError) as info:
        be.run([IMG], PROMPT, LEVELS)
    msg = str(info.value)
    assert f"HTTP {status}" in msg and "nope: who are you" in msg and "'m'" in msg and "not retried" in msg
    assert "$OPENAI_API_KEY" in msg  # where the key comes from
    assert len(srv.requests) == 1


@pytest.mark.parametrize("status", [400, 405, 413, 422])
def test_other_4xx_are_per_item_and_not_retried(srv, status):
    srv.script = [(status, {}, error_body("about this request"))]
    out = one(srv)
    assert out.error.startswith(BACKEND_FAILED) and f"HTTP {status}" in out.error
    assert "about this request" in out.error and "not retried" in out.error
    assert out.meta["backend_error"] is True and out.meta["http_status"] == status
    assert out.meta["absent"] == len(LEVELS) and out.text is None and out.logprobs is None
    assert len(srv.requests) == 1


def test_an_error_body_that_is_not_json_is_quoted_as_text(srv):
    srv.script = [(400, {}, b"plain words from a proxy")]
    assert "plain words from a proxy" in one(srv).error
    srv.script = [(400, {}, b"")]
    assert "no reason given" in one(srv).error
    srv.script = [(400, {}, {"error": "a bare string"})]
    assert "a bare string" in one(srv).error


def test_gave_up_message_counts_attempts(srv):
    srv.script = [(500, {}, error_body("kaput"))]
    out = one(srv, max_retries=2)
    assert "gave up after 3 attempts" in out.error and "HTTP 500: kaput" in out.error
    assert out.meta == {"attempts": 3, "absent": len(LEVELS), "backend_error": True}
    out = one(srv, max_retries=0)
    assert "gave up after 1 attempt;" in out.error and out.meta["attempts"] == 1


def test_the_retry_budget_stops_retries_that_would_start_too_late(srv, monkeypatch):
    slept = record_sleeps(monkeypatch, jitter=1.0)
    srv.script = [(503, {}, error_body("busy"))]
    out = one(srv, max_retries=10, backoff_base=1.0, backoff_max=100.0, max_retry_time=5.0)
    # waits of 1, 2 (3 s in all) fit; the next (4 s, at 3 + 4 > 5) would pass the budget
    assert slept == pytest.approx([1.0, 2.0])
    assert len(srv.requests) == 3 and "retry budget" in out.error and "5 s" in out.error
    srv.requests.clear()
    out = one(srv, max_retries=10, max_retry_time=0.0)  # no budget: one attempt
    assert len(srv.requests) == 1 and "gave up after 1 attempt" in out.error


def test_malformed_answers_are_retried(srv):
    srv.script = [(200, {}, b"{not json"), (200, {}, {"choices": []}), (200, {}, {"choices": [{}]}),
                  (200, {}, answer("4"))]  # fmt: skip
    out = one(srv)
    assert out.error is None and out.text == "4" and out.meta["attempts"] == 4


# -- parsing answers --------------------------------------------------------------------------------------
def test_log_probabilities_are_mapped_to_the_candidates(srv):
    top = [("5", math.log(0.5)), (" 5", math.log(0.1)), ("Ġ4", math.log(0.2)), ("▁3", math.log(0.1)), ("x", -3.0)]
    srv.script = [(200, {}, answer("5", top))]
    out = one(srv)
    assert out.text == "5" and out.error is None
    assert out.logprobs["5"] == pytest.approx(math.log(0.6))  # the two variants of "5" add up
    assert out.logprobs["4"] == pytest.approx(math.log(0.2))
    assert out.logprobs["3"] == pytest.approx(math.log(0.1))
    assert [k for k, v in out.logprobs.items() if v is None] == ["1", "2", "6", "7"]
    assert out.meta["absent"] == 4 and out.meta["absent_levels"] == ["1", "2", "6", "7"]
    assert out.meta["top_n"] == 6  # five listed plus the sampled token
    body = srv.requests[0]
    assert body["logprobs"] is True and body["top_logprobs"] == 20 and body["max_tokens"] == 1


def test_the_sampled_token_counts_when_the_top_list_leaves_it_out(srv):
    srv.script = [(200, {}, answer("6", [], sampled=True))]
    out = one(srv)
    assert out.logprobs["6"] == pytest.approx(-0.1) and out.meta["absent"] == 6


def test_no_logprobs_in_the_answer_keeps_the_text(srv):
    srv.script = [(200, {}, answer("7"))]
    out = one(srv)
    assert out.text == "7" and out.logprobs is None and out.error is None
    assert out.meta["logprobs_missing"] is True and out.meta["absent"] == len(LEVELS)


def test_want_text_false_and_non_text_content(srv):
    srv.script = [(200, {}, answer("5", [("5", -0.1)]))]
    out = one(srv, want_text=False)
    assert out.text is None and out.logprobs["5"] == pytest.approx(-0.1)
    srv.script = [(200, {}, {"choices": [{"message": {"content": None}}]})]
    assert one(srv).text is None


def test_an_echoed_answer_prefix_is_removed(srv):
    prompt = Prompt("Q", "", answer_prefix="The quality of the image is")
    srv.script = [(200, {}, answer("The quality of the image is good"))]
    assert one(srv, prompt).text == " good"
    srv.script = [(200, {}, answer(" good"))]  # not echoed: kept as is
    assert one(srv, prompt).text == " good"
    srv.script = [(200, {}, answer("The quality of the image is good"))]
    assert one(srv).text == "The quality of the image is good"  # no prefix asked: nothing removed


def test_no_candidates_asks_for_no_logprobs(srv):
    srv.script = [(200, {}, answer("5", [("5", -0.1)]))]
    out = one(srv, candidates=[])
    assert out.text == "5" and out.logprobs is None
    assert "logprobs" not in srv.requests[0] and "top_logprobs" not in srv.requests[0]
    one(srv, top_logprobs=0)
    assert "logprobs" not in srv.requests[1]


def test_map_logprobs_edge_cases():
    lp = math.log(0.25)
    top = [{"token": "\u2581 7 ", "logprob": lp}, {"token": "7", "logprob": -math.inf}, {"token": "2", "logprob": "x"},
           {"token": "?", "bytes": [0xFF], "logprob": -1.0}, {"token": "3", "bytes": [], "logprob": -2.0}]  # fmt: skip
    out, absent = map_logprobs(top, ["7", " 7", "2", "3"])
    assert out["7"] == pytest.approx(lp) and out[" 7"] == pytest.approx(lp)  # both spellings of one level
    assert out["2"] is None and out["3"] == pytest.approx(-2.0) and absent == ["2"]
    out, _ = map_logprobs([{"token": "1", "logprob": -math.inf}], ["1"])
    assert out["1"] == -math.inf
    out, absent = map_logprobs([], ["1", "2"])
    assert out == {"1": None, "2": None} and absent == ["1", "2"]
    out, _ = map_logprobs([{"token": "4", "logprob": -1}], ["4"])  # an int log-prob is a number too
    assert out["4"] == -1.0


# -- request shape ----------------------------------------------------------------------------------------
def test_messages_for_every_prompt_part():
    msgs, extra = build_messages(Prompt("before", "after", system="sys", answer_prefix="The"), "data:x")
    assert msgs == [
        {"role": "system", "content": "sys"},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "before"},
                {"type": "image_url", "image_url": {"url": "data:x"}},
                {"type": "text", "text": "after"},
            ],
        },  # fmt: skip
        {"role": "assistant", "content": "The"},
    ]
    assert extra == {"continue_final_message": True, "add_generation_prompt": False}
    msgs, extra = build_messages(Prompt("", "", system=""), "data:y")
    assert msgs == [{"role": "system", "content": ""},
                    {"role": "user", "content": [{"type": "image_url", "image_url": {"url": "data:y"}}]}]  # fmt: skip
    assert extra == {}


def test_request_headers(srv, monkeypatch):
    monkeypatch.setenv("DOGIQA_CONTRACT_KEY", "sk-contract-123456")
    one(srv, api_key_env="DOGIQA_CONTRACT_KEY")
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    one(srv)
    with_key, without = srv.headers
    assert with_key["Authorization"] == "Bearer sk-contract-123456"
    assert "Authorization" not in without
    assert with_key["Accept-Encoding"] == "identity"
    assert srv.requests[0]["model"] == "m" and srv.requests[0]["temperature"] == 0


def test_image_formats_and_sizes():
    import base64
    import io

    def decode(url: str) -> Image.Image:
        return Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1])))

    big = Image.new("RGB", (300, 200), (0, 255, 0))
    for fmt, mime in (("jpeg", "image/jpeg"), ("PNG", "image/png"), ("webp", "image/webp")):
        url = encode_image(big, 150, fmt)
        assert url.startswith(f"data:{mime};base64,")
        assert decode(url).size == (150, 100)
    assert decode(encode_image(big, 300)).size == (300, 200)  # at the limit: untouched
    assert decode(encode_image(big, None)).size == (300, 200)
    assert decode(encode_image(Image.new("RGB", (1000, 3)), 100)).size == (100, 1)  # never 0 pixels
    for fmt in ("JPEG", "PNG", "WEBP"):
        assert decode(encode_image(big, None, fmt)).format == fmt  # the bytes are what the MIME type says
    assert decode(encode_image(Image.new("RGBA", (4, 4)), None, "JPEG")).mode == "RGB"
    assert decode(encode_image(Image.new("L", (4, 4)), None, "PNG")).mode == "L"
    assert decode(encode_image(Image.new("P", (4, 4)), None, "PNG")).mode == "RGB"
    noisy = Image.effect_noise((128, 128), 80).convert("RGB")
    assert len(encode_image(noisy, None, quality=30)) < len(encode_image(noisy, None, quality=95))


def test_jpeg_quality_and_format_reach_the_request(srv):
    noisy = Image.effect_noise((96, 96), 80).convert("RGB")
    sizes = {}
    for q in (20, 95):
        with client(srv, jpeg_quality=q) as be:
            be.run([noisy], PROMPT, LEVELS)
        sizes[q] = len(srv.requests[-1]["messages"][0]["content"][1]["image_url"]["url"])
    assert sizes[20] < sizes[95]
    with client(srv, image_format="png") as be:
        be.run([noisy], PROMPT, LEVELS)
    assert srv.requests[-1]["messages"][0]["content"][1]["image_url"]["url"].startswith("data:image/png;")


def unsaveable(exc: Exception) -> object:
    """A 10x10 RGB image stand-in whose ``save`` (the client's encoding) raises ``exc``."""

    class Unsaveable:
        size = (10, 10)
        width = height = 10
        mode = "RGB"

        def save(self, *a, **k):
            raise exc

    return Unsaveable()

def test_an_image_that_cannot_be_encoded_is_a_per_item_error(srv):
    with client(srv) as be:
        bad, good = be.run([unsaveable(OSError("disk on fire")), IMG], PROMPT, LEVELS)  # type: ignore[list-item]
    assert "could not encode" in bad.error and "disk on fire" in bad.error
    assert good.error is None and len(srv.requests) == 1


def test_results_keep_the_input_order(srv):
    srv.script = [(200, {}, answer(str(k))) for k in range(1, 6)]
    with client(srv, concurrency=1) as be:
        outs = be.run([IMG] * 5, PROMPT, LEVELS)
        assert [o.text for o in outs] == ["1", "2", "3", "4", "5"]
        assert be.run([], PROMPT, LEVELS) == []


# -- settings ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("kw", "setting"),
    [({"concurrency": 0}, "--concurrency"), ({"max_retries": -1}, "--max-retries"),
     ({"timeout": 0}, "--timeout"), ({"timeout": -1.0}, "--timeout"), ({"timeout": float("nan")}, "--timeout"),
     ({"deadline": 0}, "--deadline"), ({"max_retry_after": -1}, "--max-retry-after"),
     ({"max_retry_time": -0.5}, "--max-retry-time"), ({"max_response_bytes": 1000}, "--max-response-bytes")],
)  # fmt: skip
def test_bad_settings_are_usage_errors(kw, setting):
    with pytest.raises(UsageError) as info:
        OpenAIServerBackend("m", "http://127.0.0.1:9/v1", **kw)
    assert info.value.setting == setting
    assert str(next(iter(kw.values()))) in str(info.value)


def test_edge_settings_are_accepted():
    with pytest.raises(UsageError, match="image_format"):
        OpenAIServerBackend("m", "http://127.0.0.1:9/v1", image_format="bmp")
    be = OpenAIServerBackend("m", "http://127.0.0.1:9/v1/", max_retries=0, max_retry_after=0, max_retry_time=0,
                             max_response_bytes=1024, concurrency=1, timeout=3.0)  # fmt: skip
    assert be.model_id == "openai:http://127.0.0.1:9/v1:m"  # trailing slash dropped
    assert be.deadline == 3.0  # defaults to the timeout


# -- first contact ----------------------------------------------------------------------------------------
def probe(server: Scripted, readout: str = "expected", prompt: Prompt = PROMPT, **kw: Any) -> None:
    with client(server, **{"check_server": True, **kw}) as be:
        be.probe(prompt, LEVELS, readout)


def test_probe_retries_408_then_passes(srv):
    srv.script = [(408, {}, error_body("slow")), (200, {}, answer("3", [("3", -0.1)]))]
    probe(srv)
    assert len(srv.requests) == 2


@pytest.mark.parametrize("status", [401, 403])
def test_probe_refused_key(srv, status):
    srv.script = [(status, {}, error_body("bad key"))]
    with pytest.raises(ServerCapabilityError) as info:
        probe(srv)
    assert info.value.setting == "--api-key-env" and f"HTTP {status}" in str(info.value)
    assert "API key" in str(info.value) and len(srv.requests) == 1


def test_probe_unknown_model_lists_the_served_ones(srv):
    srv.script = [(404, {}, error_body("no such model"))]
    with pytest.raises(ServerCapabilityError) as info:
        probe(srv)
    assert info.value.setting == "--model" and "it serves: served-a, served-b" in str(info.value)
    assert "no such model" in str(info.value)


def test_probe_gives_up_after_the_retries(srv):
    srv.script = [(502, {}, error_body("bad gateway"))]
    with pytest.raises(ServerCapabilityError, match=r"HTTP 502 \(bad gateway\).*3 time\(s\)"):
        probe(srv, max_retries=2)
    assert len(srv.requests) == 3


def test_probe_checks_logprobs_only_for_logit_readouts(srv):
    srv.script = [(200, {}, answer("3"))]  # no log-probabilities
    probe(srv, readout="int")
    with pytest.raises(ServerCapabilityError, match="no log-probabilities") as info:
        probe(srv, readout="expected")
    assert info.value.setting == "--readout"


def test_probe_sends_the_prefix_only_in_its_second_request(srv):
    prompt = Prompt("Q", "", answer_prefix="The quality of the image is")
    srv.script = [(200, {}, answer(" good", [(" good", -0.2)]))]
    probe(srv, readout="qalign", prompt=prompt)
    first, second = srv.requests
    assert [m["role"] for m in first["messages"]] == ["user"] and "continue_final_message" not in first
    assert second["messages"][-1] == {"role": "assistant", "content": "The quality of the image is"}
    assert second["continue_final_message"] is True


def test_probe_warns_when_no_level_is_in_the_top_list(srv, caplog):
    srv.script = [(200, {}, answer("the", [("the", -0.1), ("a", -2.0)]))]
    with caplog.at_level("WARNING"):
        probe(srv)
    assert "none of the answer tokens" in caplog.text and "--model" in caplog.text
    caplog.clear()
    srv.script = [(200, {}, answer("3", [("3", -0.1)]))]
    with caplog.at_level("WARNING"):
        probe(srv)
    assert "none of the answer tokens" not in caplog.text


def test_probe_skipped_sends_nothing(srv):
    with client(srv, check_server=False) as be:
        be.probe(PROMPT, LEVELS, "expected")
    assert srv.requests == []


# -- the documented defaults (README: 5 retries, Retry-After up to 30 s, 120 s retry budget, 8 MiB, 8 in flight)
def test_default_retries_and_backoff_growth(srv, monkeypatch):
    slept = record_sleeps(monkeypatch, jitter=1.0)
    srv.script = [(500, {}, error_body("down"))]
    with OpenAIServerBackend("m", srv.url, check_server=False) as be:
        [out] = be.run([IMG], PROMPT, LEVELS)
    assert len(srv.requests) == 6 and "gave up after 6 attempts" in out.error  # 1 + 5 retries
    assert all(b == pytest.approx(2 * a) for a, b in zip(slept, slept[1:], strict=False))  # doubling
    assert len(slept) == 5 and slept[-1] <= 30.0


def test_default_backoff_grows_to_a_30_s_cap(srv, monkeypatch):
    slept = record_sleeps(monkeypatch, jitter=1.0)
    srv.script = [(503, {}, error_body("down"))]
    with OpenAIServerBackend("m", srv.url, check_server=False, max_retries=9, max_retry_time=1000.0) as be:
        be.run([IMG], PROMPT, LEVELS)
    assert len(slept) == 9 and max(slept) == pytest.approx(30.0)
    assert slept[-3:] == pytest.approx([30.0] * 3) and slept[0] < 1.0  # doubling from well under a second


def test_default_retry_after_cap_and_retry_budget(srv, monkeypatch):
    slept = record_sleeps(monkeypatch)
    srv.script = [(429, {"Retry-After": "1000"}, error_body("later"))]
    with OpenAIServerBackend("m", srv.url, check_server=False) as be:
        [out] = be.run([IMG], PROMPT, LEVELS)
    # waits of 30 s (not 1000 s); a fourth would start after 120 s
    assert slept == [30.0, 30.0, 30.0] and len(srv.requests) == 4
    assert "120 s retry budget" in out.error


def test_default_response_cap_is_8_mib(srv):
    padding = " " * (8 * 2**20)  # a valid answer, just over the cap
    srv.script = [(200, {}, json.dumps(answer("5")).replace("{", "{" + padding, 1).encode())]
    with OpenAIServerBackend("m", srv.url, check_server=False, max_retries=0) as be:
        [out] = be.run([IMG], PROMPT, LEVELS)
    assert "8388608" in out.error and out.meta["backend_error"] is True
    srv.script = [(200, {}, json.dumps(answer("5")).replace("{", "{" + padding[:-1024], 1).encode())]
    with OpenAIServerBackend("m", srv.url, check_server=False, max_retries=0) as be:
        [out] = be.run([IMG], PROMPT, LEVELS)
    assert out.error is None and out.text == "5"


class _Gathering(_ScriptHandler):
    """Holds each request until 8 have arrived (at most 5 s), counting the requests in flight."""

    def do_POST(self) -> None:
        srv = self.server
        with srv.lock:
            srv.inflight = getattr(srv, "inflight", 0) + 1
            srv.max_inflight = max(getattr(srv, "max_inflight", 0), srv.inflight)
            srv.arrived = getattr(srv, "arrived", 0) + 1
        end = time.monotonic() + 5
        while srv.arrived < 8 and time.monotonic() < end:
            time.sleep(0.01)
        try:
            super().do_POST()
        finally:
            with srv.lock:
                srv.inflight -= 1


def test_default_concurrency_is_8(srv):
    srv.RequestHandlerClass = _Gathering
    with OpenAIServerBackend("m", srv.url, check_server=False) as be:
        outs = be.run([IMG] * 10, PROMPT, LEVELS)
    assert all(o.error is None for o in outs)
    assert srv.max_inflight == 8


def closed_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_probe_does_not_retry_a_refused_connection(monkeypatch):
    slept = record_sleeps(monkeypatch)
    url = f"http://127.0.0.1:{closed_port()}/v1"
    be = OpenAIServerBackend("m", url, max_retries=3)
    with pytest.raises(ServerCapabilityError) as info:
        be.probe(PROMPT, LEVELS, "expected")
    assert slept == [] and info.value.setting == "--base-url"  # no backoff: the server is not there
    assert "connection refused (is the server running" in str(info.value)


def test_probe_names_a_host_that_does_not_resolve(monkeypatch):
    record_sleeps(monkeypatch)
    be = OpenAIServerBackend("m", "http://no-such-host.invalid:8000/v1", max_retries=2, timeout=5.0)
    with pytest.raises(ServerCapabilityError) as info:
        be.probe(PROMPT, LEVELS, "expected")
    assert "the host name does not resolve (DNS)" in str(info.value)


def test_during_a_run_a_refused_connection_is_retried_then_a_per_item_error(monkeypatch):
    slept = record_sleeps(monkeypatch)
    be = OpenAIServerBackend("m", f"http://127.0.0.1:{closed_port()}/v1", max_retries=2, check_server=False)
    [out] = be.run([IMG], PROMPT, LEVELS)
    assert len(slept) == 2 and "gave up after 3 attempts" in out.error and "connection error" in out.error


def test_a_fatal_status_stops_the_rest_of_the_batch(srv):
    srv.script = [(401, {}, error_body("bad key"))]
    with client(srv, concurrency=1) as be, pytest.raises(BackendError):
        be.run([IMG] * 6, PROMPT, LEVELS)
    assert len(srv.requests) <= 2  # the queued images are cancelled, not sent


def test_an_unexpected_failure_is_this_items_error_only(srv):
    with client(srv) as be:
        bad, good = be.run([unsaveable(RuntimeError("unexpected")), IMG], PROMPT, LEVELS)  # type: ignore[list-item]
    assert bad.error.startswith(BACKEND_FAILED) and "RuntimeError: unexpected" in bad.error
    assert bad.meta["backend_error"] is True and bad.meta["attempts"] == 0 and bad.meta["absent"] == len(LEVELS)
    assert good.error is None and good.text == "5"


def test_a_long_answer_is_truncated(srv):
    srv.script = [(200, {}, answer("7" * 5000))]
    out = one(srv)
    assert out.text.startswith("777") and len(out.text) < 300


def test_the_sampled_tokens_bytes_decide_its_text(srv):
    """llama.cpp and vLLM send ``bytes`` next to ``token``; the bytes are the token's real text."""
    first = {"token": "\u0120six", "logprob": math.log(0.5), "bytes": list(b" 6"), "top_logprobs": []}
    payload = {"choices": [{"message": {"content": "6"}, "logprobs": {"content": [first]}}]}
    srv.script = [(200, {}, payload)]
    out = one(srv)
    assert out.logprobs["6"] == pytest.approx(math.log(0.5)) and out.meta["absent"] == 6


def test_probe_honours_retry_after_and_its_budget(srv, monkeypatch):
    slept = record_sleeps(monkeypatch)
    srv.script = [(429, {"Retry-After": "2"}, error_body("busy")), (200, {}, answer("3", [("3", -0.1)]))]
    probe(srv, max_retry_after=10.0)
    assert slept == [2.0] and len(srv.requests) == 2
    srv.requests.clear()
    with pytest.raises(ServerCapabilityError, match="HTTP 429"):
        probe(srv, max_retry_time=0.0)  # no budget: one request, then the message
    assert len(srv.requests) == 1


def test_probe_rejects_an_answer_without_a_message(srv):
    srv.script = [(200, {}, {"choices": [{"message": "just text"}]})]
    with pytest.raises(ServerCapabilityError, match="does not answer like an OpenAI chat-completions") as info:
        probe(srv, max_retries=1)
    assert info.value.setting == "--base-url" and len(srv.requests) == 2


def test_probe_reports_an_oversized_answer(srv):
    srv.script = [(200, {}, json.dumps(answer("5")).replace("{", "{" + " " * 4096, 1).encode())]
    with pytest.raises(ServerCapabilityError, match="cap of 1024 bytes") as info:
        probe(srv, max_response_bytes=1024, max_retries=3)
    assert info.value.setting == "--max-response-bytes" and len(srv.requests) == 1


def test_latency_and_attempts_are_recorded(srv):
    out = one(srv)
    assert out.meta["attempts"] == 1 and 0 <= out.meta["latency_s"] < 60


@pytest.mark.parametrize(
    "logprobs",
    [None, {}, {"content": []}, {"content": ["x"]}, {"content": None}, {"content": [{"top_logprobs": None}]}],
)
def test_answers_without_usable_logprobs_keep_the_text(srv, logprobs):
    srv.script = [(200, {}, {"choices": [{"message": {"content": "4"}, "logprobs": logprobs}]})]
    out = one(srv)
    assert out.error is None and out.text == "4" and out.logprobs is None
    assert out.meta["logprobs_missing"] is True and out.meta["absent"] == len(LEVELS)


def test_probe_without_a_model_list_still_names_the_model(srv):
    srv.script = [(404, {}, error_body("no such model"))]
    srv.models = (500, error_body("no list"))
    with pytest.raises(ServerCapabilityError) as info:
        probe(srv)
    assert "'m'" in str(info.value) and "it serves" not in str(info.value)
    srv.models = (200, {"data": [{"id": f"model-{i}"} for i in range(15)]})
    with pytest.raises(ServerCapabilityError) as info:
        probe(srv)
    assert "model-9" in str(info.value) and "model-10" not in str(info.value)  # the first ten


def test_probe_without_candidates_needs_no_logprobs(srv):
    srv.script = [(200, {}, answer("3"))]
    with client(srv, check_server=True) as be:
        be.probe(PROMPT, [], "expected")
    assert len(srv.requests) == 1 and "logprobs" not in srv.requests[0]


def test_a_closed_backend_reopens_on_the_next_run(srv):
    be = client(srv)
    with be as entered:
        assert entered is be
        be.run([IMG], PROMPT, LEVELS)
    be.close()  # closing twice is harmless
    [out] = be.run([IMG], PROMPT, LEVELS)
    be.close()
    assert out.error is None and len(srv.requests) == 2
