"""The server client against a hostile server: every bound holds, no secret reaches an output.

Wall-clock bounds are generous (a loaded machine must not break them); what each would be without the bound
is in the comment.
"""

from __future__ import annotations

import json
import logging
import time

import pytest
from chat_server import ChatServer, item_image, level_of

from dogiqa.backends.base import BackendError, Prompt
from dogiqa.backends.http_client import Redactor, split_userinfo
from dogiqa.backends.openai_server import BACKEND_FAILED, OpenAIServerBackend

PROMPT = Prompt(before_image="Rate this image:\n", after_image="\nOnly tell me the number.")
LEVELS = [str(k) for k in range(1, 8)]
KEY = "sk-test-Zq8vW3rT6yU1"


def backend(server: ChatServer, **kw) -> OpenAIServerBackend:
    opts = dict(concurrency=2, timeout=2.0, max_retries=0, backoff_base=0.01, backoff_max=0.05, check_server=False)
    opts.update(kw)
    return OpenAIServerBackend("tiny-vlm", server.url, **opts)


def timed(be: OpenAIServerBackend, items: list[int]):
    start = time.monotonic()
    with be:
        outs = be.run([item_image(i) for i in items], PROMPT, LEVELS)
    return outs, time.monotonic() - start


@pytest.mark.parametrize("fault", ["huge", "huge_chunked"])
def test_a_300_mb_response_is_capped(chat_server, fault):
    chat_server.faults[1] = [fault]
    (out, ok), elapsed = timed(backend(chat_server, max_response_bytes=1 << 20), [1, 2])
    assert out.error.startswith(BACKEND_FAILED) and "cap of 1048576 bytes" in out.error
    assert "not retried" in out.error and out.meta["backend_error"] is True
    assert ok.error is None and ok.text == str(level_of(2))
    assert chat_server.counts[1] == 1
    assert elapsed < 20  # reading 300 MB whole took minutes and 774 MB of memory
    # the client stopped reading: the server could not push more than the cap plus socket buffers
    assert chat_server.sent_bytes[1] < 64 << 20


def test_a_drip_cannot_extend_the_deadline(chat_server):
    """One byte per 0.2 s, status line included: each read is well within the 1 s timeout, the whole
    response (~800 bytes) would take minutes; the 2 s deadline ends it."""
    chat_server.faults[3] = ["drip"] * 10
    chat_server.drip_s = 0.2
    (out,), elapsed = timed(backend(chat_server, timeout=1.0, deadline=2.0), [3])
    assert "timeout" in out.error and "within 2 s" in out.error and out.meta["backend_error"] is True
    assert elapsed < 10
    # retried drips stay bounded too: retry budget 3 s + one 2 s deadline
    (out,), elapsed = timed(backend(chat_server, timeout=1.0, deadline=2.0, max_retries=5, max_retry_time=3.0), [3])
    assert out.error and 2 <= chat_server.counts[3] <= 4 and elapsed < 15


def test_retry_after_is_capped_and_the_retry_budget_holds(chat_server):
    chat_server.faults[4] = ["retry_forever"] * 20
    be = backend(chat_server, max_retries=10, max_retry_after=0.5, max_retry_time=2.0)
    (out,), elapsed = timed(be, [4])
    assert "HTTP 429" in out.error and "retry budget" in out.error
    assert 3 <= chat_server.counts[4] <= 6  # waits of 0.5 s (not 100000 s) until the 2 s budget is spent
    assert 1.4 <= elapsed < 10
    assert backend(chat_server)._delay(0, 100000.0) == 30.0  # the default cap


def test_malformed_and_deeply_nested_bodies_are_per_item_errors(chat_server):
    chat_server.faults[5] = ["deep"] * 5
    (out,), _ = timed(backend(chat_server, max_retries=1), [5])
    assert "malformed response" in out.error and out.meta["attempts"] == 2


@pytest.mark.parametrize("fault", ["echo_auth", "echo_auth_500", "echo_answer"])
def test_an_echoed_key_is_scrubbed(chat_server, monkeypatch, fault):
    monkeypatch.setenv("DOGIQA_TEST_KEY", KEY)
    chat_server.faults[6] = [fault]
    (out,), _ = timed(backend(chat_server, api_key_env="DOGIQA_TEST_KEY"), [6])
    assert chat_server.headers_seen[6]["Authorization"] == f"Bearer {KEY}"  # the key was sent
    shown = json.dumps([out.error, out.text, out.meta])
    assert KEY not in shown and "Zq8vW3" not in shown
    if fault == "echo_answer":
        assert out.text == "Bearer ***"
    else:
        assert "Authorization: Bearer ***" in out.error


def test_server_text_in_errors_is_truncated(chat_server):
    chat_server.faults[7] = ["long_error"]
    (out,), _ = timed(backend(chat_server), [7])
    assert "HTTP 400" in out.error and "eeee" in out.error and len(out.error) < 400


def test_a_fatal_status_names_no_key(chat_server, monkeypatch):
    monkeypatch.setenv("DOGIQA_TEST_KEY", KEY)
    chat_server.faults[2] = ["401"]
    be = backend(chat_server, api_key_env="DOGIQA_TEST_KEY")
    with pytest.raises(BackendError) as info:
        be.run([item_image(2)], PROMPT, LEVELS)
    assert "HTTP 401" in str(info.value) and KEY not in str(info.value)


def test_user_info_is_sent_but_never_recorded(chat_server, caplog, sample_images_dir, tmp_path):
    """``--base-url http://user:KEY@host``: basic auth goes to the server; records, cache, logs and
    messages show the URL without it."""
    from dogiqa.api import DogIQA
    from dogiqa.cache import RawCache
    from dogiqa.io import expand_paths

    secret_url = chat_server.url.replace("http://", f"http://dogiqa:{KEY}@")
    with caplog.at_level(logging.WARNING):
        cache = RawCache(tmp_path / "cache.sqlite")
        iqa = DogIQA.from_preset(
            "global", model="tiny-vlm", backend="openai", cache=cache, backend_options={"base_url": secret_url}
        )
    assert "user-info" in caplog.text and KEY not in caplog.text
    assert iqa.config["model"] == f"openai:{chat_server.url}:tiny-vlm"
    records = [r.to_json() for r in iqa.score_many(list(expand_paths([sample_images_dir])))]
    assert all(json.loads(r)["score"] is not None for r in records)
    sent = next(iter(chat_server.headers_seen.values()))["Authorization"]
    assert sent.startswith("Basic ")  # the credentials were used
    cache.close()
    for blob in [*records, caplog.text, (tmp_path / "cache.sqlite").read_bytes().decode("latin-1")]:
        assert KEY not in blob
    # a failing call names the URL without its user-info
    chat_server.faults.update({i: ["500"] * 5 for i in range(1024)})
    be = OpenAIServerBackend("tiny-vlm", secret_url, max_retries=0, check_server=False)
    (out,) = be.run([item_image(9)], PROMPT, LEVELS)
    assert out.error.startswith(BACKEND_FAILED) and chat_server.url in out.error and KEY not in out.error
    be.close()


def test_split_userinfo_and_redactor():
    clean, auth, secrets = split_userinfo("https://me:pa%3Ass@api.example.com:8443/v1")
    assert clean == "https://api.example.com:8443/v1" and auth is not None
    assert "pa:ss" in secrets
    assert split_userinfo("http://127.0.0.1:8000/v1") == ("http://127.0.0.1:8000/v1", None, [])
    redact = Redactor(["pa:ss", None, "abc"])  # strings under 4 characters are not treated as secrets
    assert redact("key pa:ss and abc; Authorization: Basic bWU6cGE6c3M=", limit=None) == (
        "key *** and abc; Authorization: Basic ***"
    )
    assert redact("y" * 50, limit=10) == "y" * 10 + "..."
