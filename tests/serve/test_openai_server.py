"""The OpenAI-compatible server backend against a real local HTTP server with injected faults."""

from __future__ import annotations

import math
import pickle
import threading
import time

import pytest
from chat_server import ChatServer, distribution, item_image, level_of
from PIL import Image

from dogiqa.backends.base import Backend, BackendError, Prompt
from dogiqa.backends.openai_server import (
    OpenAIServerBackend,
    encode_image,
    map_logprobs,
    parse_retry_after,
)

PROMPT = Prompt(before_image="Rate this image:\n", after_image="\nOnly tell me the number.", system="sys")
LEVELS = [str(k) for k in range(1, 8)]


def backend(server: ChatServer, **kw) -> OpenAIServerBackend:
    opts = dict(concurrency=4, timeout=2.0, max_retries=3, backoff_base=0.01, backoff_max=0.05)
    opts.update(kw)
    return OpenAIServerBackend("tiny-vlm", server.url, **opts)


def expected_logprobs(item: int, top_n: int) -> dict[str, float | None]:
    """What the backend must report: variants of a level summed (logsumexp), levels outside the top-N None."""
    top = distribution(item)[:top_n]
    out: dict[str, float | None] = {}
    for level in LEVELS:
        lps = [v for t, v in top if t.strip() == level]
        out[level] = math.log(sum(math.exp(v) for v in lps)) if lps else None
    return out


def assert_item(out, item: int, top_n: int = 20) -> None:
    assert out.error is None, out.error
    assert out.text == str(level_of(item))
    exp = expected_logprobs(item, top_n)
    assert out.logprobs.keys() == exp.keys()
    for level, value in exp.items():
        if value is None:
            assert out.logprobs[level] is None
        else:
            assert out.logprobs[level] == pytest.approx(value, abs=1e-9)
    assert out.meta["absent"] == sum(v is None for v in exp.values())


def test_protocol_and_model_id(chat_server):
    be = backend(chat_server)
    assert isinstance(be, Backend)
    assert be.model_id == f"openai:{chat_server.url}:tiny-vlm"
    assert be.check_candidates(["not one token", "x"]) is None  # documented no-op


def test_scores_follow_the_server_distribution(chat_server):
    items = list(range(10))
    with backend(chat_server) as be:
        outs = be.run([item_image(i) for i in items], PROMPT, LEVELS)
    assert len(outs) == len(items)
    for item, out in zip(items, outs, strict=True):
        assert_item(out, item)
        # the peak level has a " k" variant: its probability is the sum of both tokens
        peak = str(level_of(item))
        plain = dict(distribution(item))[peak]
        assert out.logprobs[peak] > plain
    assert all(chat_server.counts[i] == 1 for i in items)


def test_levels_outside_the_top_list_are_absent(chat_server):
    with backend(chat_server, top_logprobs=3) as be:
        outs = be.run([item_image(i) for i in (0, 3, 6)], PROMPT, LEVELS)
    for item, out in zip((0, 3, 6), outs, strict=True):
        assert_item(out, item, top_n=3)
        assert out.meta["absent"] >= 4
        assert set(out.meta["absent_levels"]) == {k for k, v in out.logprobs.items() if v is None}


def test_request_shape(chat_server, monkeypatch):
    monkeypatch.setenv("DOGIQA_TEST_KEY", "sekret")
    prompt = Prompt(before_image="B", after_image="A", system=None, answer_prefix="The quality is")
    big = item_image(5, size=(3000, 1000))
    with backend(chat_server, api_key_env="DOGIQA_TEST_KEY", max_image_side=600, top_logprobs=5) as be:
        (out,) = be.run([big], prompt, LEVELS)
    assert out.error is None
    body = chat_server.bodies[5]
    assert body["model"] == "tiny-vlm"
    assert (body["temperature"], body["max_tokens"], body["logprobs"], body["top_logprobs"]) == (
        0,
        1,
        True,
        5,
    )
    roles = [m["role"] for m in body["messages"]]
    assert roles == ["user", "assistant"]  # system None: the server's default template
    parts = body["messages"][0]["content"]
    assert [p["type"] for p in parts] == ["text", "image_url", "text"]
    assert (parts[0]["text"], parts[2]["text"]) == ("B", "A")
    assert parts[1]["image_url"]["url"].startswith("data:image/jpeg;base64,")
    assert body["messages"][1]["content"] == "The quality is"
    assert body["continue_final_message"] is True and body["add_generation_prompt"] is False
    assert chat_server.sizes[5] == (600, 200)
    assert chat_server.headers_seen[5]["Authorization"] == "Bearer sekret"


def test_system_turn_and_no_logprobs_without_candidates(chat_server, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with backend(chat_server) as be:
        (out,) = be.run([item_image(2)], PROMPT, [])
    body = chat_server.bodies[2]
    assert body["messages"][0] == {"role": "system", "content": "sys"}
    assert "logprobs" not in body and "continue_final_message" not in body
    assert "Authorization" not in chat_server.headers_seen[2]
    assert out.text == str(level_of(2)) and out.logprobs is None


def test_faults_are_retried_without_loss_or_duplication(chat_server):
    chat_server.slow_s = 3.0
    faults = {
        1: ["500"],
        2: ["503", "500"],
        3: ["429"],
        4: ["malformed"],
        5: ["drop"],
        6: ["slow"],
        7: ["empty", "drop", "500"],
    }
    chat_server.faults.update(faults)
    items = list(range(12))
    with backend(chat_server, timeout=1.0) as be:
        outs = be.run([item_image(i) for i in items], PROMPT, LEVELS)
    assert len(outs) == len(items)
    for item, out in zip(items, outs, strict=True):
        assert_item(out, item)
        assert chat_server.counts[item] == 1 + len(faults.get(item, []))
        assert out.meta["attempts"] == chat_server.counts[item]


def test_retry_after_is_honoured(chat_server):
    chat_server.retry_after = "0.5"
    chat_server.faults[9] = ["429", "429"]
    with backend(chat_server) as be:
        (out,) = be.run([item_image(9)], PROMPT, LEVELS)
    assert_item(out, 9)
    t = chat_server.times[9]
    assert len(t) == 3
    assert t[1] - t[0] >= 0.45 and t[2] - t[1] >= 0.45  # backoff alone would be ~0.01 s


def test_retry_after_http_date():
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0  # in the past
    assert parse_retry_after("3") == 3.0
    assert parse_retry_after("soon") is None and parse_retry_after(None) is None


def test_exhausted_retries_give_a_per_item_error(chat_server):
    chat_server.faults[1] = ["500"] * 10
    chat_server.faults[2] = ["slow"] * 10
    chat_server.slow_s = 3.0
    with backend(chat_server, max_retries=2, timeout=1.0) as be:
        outs = be.run([item_image(i) for i in (0, 1, 2, 3)], PROMPT, LEVELS)
    assert_item(outs[0], 0)
    assert_item(outs[3], 3)
    assert outs[1].error and "3 attempts" in outs[1].error and "HTTP 500" in outs[1].error
    assert outs[1].logprobs is None and outs[1].text is None
    assert outs[2].error and "timeout" in outs[2].error
    assert chat_server.counts[1] == 3 and chat_server.counts[2] == 3


def test_other_4xx_is_a_per_item_error_not_retried(chat_server):
    chat_server.faults[4] = ["400"]
    with backend(chat_server) as be:
        outs = be.run([item_image(i) for i in (3, 4)], PROMPT, LEVELS)
    assert_item(outs[0], 3)
    assert "HTTP 400" in outs[1].error and "not retried" in outs[1].error and "injected 400" in outs[1].error
    assert chat_server.counts[4] == 1


def test_auth_and_unknown_model_raise(chat_server):
    chat_server.faults[4] = ["401"]
    with backend(chat_server) as be, pytest.raises(BackendError, match="HTTP 401"):
        be.run([item_image(4)], PROMPT, LEVELS)
    assert chat_server.counts[4] == 1
    wrong = OpenAIServerBackend("no-such-model", chat_server.url, backoff_base=0.01)
    with pytest.raises(BackendError, match="no-such-model"):
        wrong.run([item_image(1)], PROMPT, LEVELS)
    wrong.close()


def test_missing_logprobs_keeps_the_text(chat_server):
    chat_server.faults[5] = ["nologprobs"]
    with backend(chat_server) as be:
        (out,) = be.run([item_image(5)], PROMPT, LEVELS)
    assert out.error is None and out.text == str(level_of(5))
    assert out.logprobs is None
    assert out.meta["logprobs_missing"] is True and out.meta["absent"] == len(LEVELS)
    assert chat_server.counts[5] == 1


@pytest.mark.parametrize("concurrency", [1, 4])
def test_concurrency_is_bounded(chat_server, concurrency):
    chat_server.delay = 0.03
    be = backend(chat_server, concurrency=concurrency)
    images = [item_image(i) for i in range(16)]
    results: list = []
    # two threads share the backend: the bound holds across run() calls
    threads = [threading.Thread(target=lambda: results.append(be.run(images, PROMPT, LEVELS))) for _ in range(2)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - start
    be.close()
    assert len(results) == 2 and all(o.error is None for r in results for o in r)
    assert chat_server.max_inflight <= concurrency
    if concurrency > 1:
        assert chat_server.max_inflight >= 2
    else:
        assert elapsed >= 32 * 0.03  # serialised
    assert all(chat_server.counts[i] == 2 for i in range(16))


def test_map_logprobs_variants_and_markers():
    top = [
        {"token": "Ġ3", "logprob": math.log(0.2)},
        {"token": "3", "logprob": math.log(0.3)},
        {"token": "x", "logprob": math.log(0.1), "bytes": list(b" 4")},  # bytes win over token
        {"token": "3", "logprob": math.log(0.3)},  # duplicate entry is counted once
        {"token": "5", "logprob": float("nan")},
    ]
    out, absent = map_logprobs(top, ["3", "4", "5"])
    assert out["3"] == pytest.approx(math.log(0.5))
    assert out["4"] == pytest.approx(math.log(0.1))
    assert out["5"] is None and absent == ["5"]


def test_encode_image_resizes_and_converts():
    import base64
    import io

    url = encode_image(Image.new("RGBA", (400, 1000), (1, 2, 3, 4)), max_side=100, fmt="PNG")
    assert url.startswith("data:image/png;base64,")
    img = Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1])))
    assert img.size == (40, 100)
    small = encode_image(Image.new("L", (30, 20)), max_side=100)
    assert Image.open(io.BytesIO(base64.b64decode(small.split(",", 1)[1]))).size == (30, 20)
    with pytest.raises(ValueError, match="image_format"):
        encode_image(Image.new("RGB", (3, 3)), 10, fmt="BMP")


def test_backend_pickles_for_workers(chat_server):
    be = backend(chat_server)
    clone = pickle.loads(pickle.dumps(be))
    (out,) = clone.run([item_image(3)], PROMPT, LEVELS)
    assert_item(out, 3)
    clone.close()


def test_pipeline_through_faults_equals_a_clean_run(chat_server, sample_images_dir):
    """DogIQA (as `dogiqa score --backend openai` builds it) gives the same records through injected faults."""
    from dogiqa.api import DogIQA
    from dogiqa.io import expand_paths

    paths = list(expand_paths([sample_images_dir]))
    opts = {"base_url": chat_server.url, "timeout": 2.0, "backoff_base": 0.01, "backoff_max": 0.02}
    iqa = DogIQA.from_preset(
        "recommended", model="tiny-vlm", backend="openai", segmenter="felzenszwalb", backend_options=opts
    )
    assert iqa.config["model"] == f"openai:{chat_server.url}:tiny-vlm"
    assert chat_server.total_requests() == 1  # the first-contact probe
    chat_server.reset()
    clean = [r.to_dict() for r in iqa.score_many(paths)]
    clean_counts = dict(chat_server.by_image)
    chat_server.all_faults = ["500", "429", "drop", "malformed"]
    chat_server.retry_after = "0"
    chat_server.reset()
    faulty = [r.to_dict() for r in iqa.score_many(paths)]
    # each distinct request: four faults, then answers (identical crops, e.g. a mask region and the
    # complement with the same bounding box, are asked as often as in the clean run)
    assert dict(chat_server.by_image) == {k: n + 4 for k, n in clean_counts.items()}
    for a, b in zip(clean, faulty, strict=True):
        a.pop("timings"), b.pop("timings")
        assert a == b and a["error"] is None and a["score"] is not None and a["regions"]
