"""Backend for OpenAI-compatible chat-completions servers (vLLM, SGLang, llama.cpp server, Ollama).

One request per image: the user turn is ``[text before_image, image as a data URL, text after_image]``,
temperature 0, one output token, ``logprobs`` with ``top_logprobs`` so that the ``expected`` readout works
from the returned log-probabilities and the ``int`` readout from the returned text.

Log-probabilities. The server returns the top-N tokens at the answer position. Each returned token is
normalised (decoded from ``bytes`` when given, surrounding whitespace and the BPE/SentencePiece space markers
``Ġ``/``▁`` stripped) and matched exactly (case-sensitive) against the normalised candidates. Several variants
of one candidate (``"3"`` and ``" 3"``) are different tokens with disjoint probability mass, so they are
combined with logsumexp. A candidate that is not in the top list gets ``None``: its probability is below the
N-th token's, and the readout renormalises over the levels that are present. ``RawOutput.meta["absent"]``
counts those levels (``meta["absent_levels"]`` names them). When the server sends no log-probabilities at
all, ``logprobs`` is None, ``meta["logprobs_missing"]`` is True and the text (``int`` readout) still works.

Answer prefix. ``Prompt.answer_prefix`` is sent as a trailing assistant message with the vLLM/SGLang
extension fields ``continue_final_message: true, add_generation_prompt: false`` in the request body (what the
openai client's ``extra_body`` would add), so the model continues the prefix instead of opening a new turn.
Servers without that extension (OpenAI itself) ignore the fields or reject the request.

Failures. 429 (honouring ``Retry-After``), 408, 5xx, connection errors, timeouts and malformed JSON are
retried up to ``max_retries`` times with exponential backoff and jitter; when retries are exhausted the item
gets ``RawOutput(error=...)``. Other 4xx are not retried: 401/403/404 (bad key, unknown model or path: every
request would fail) raise :class:`BackendError`; other 4xx (e.g. 400, 413: about this request) give a
per-item error.
"""

from __future__ import annotations

import base64
import email.utils
import io
import math
import os
import random
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

import httpx
from PIL import Image

from dogiqa.backends.base import BackendError, Prompt, RawOutput

RETRY_STATUS = {408, 429}
FATAL_STATUS = {401, 403, 404}
_SPACE_MARKERS = "Ġ▁"
_MIME = {"JPEG": "image/jpeg", "PNG": "image/png", "WEBP": "image/webp"}


class _Retry(Exception):
    """A retryable failure of one attempt; ``retry_after`` is the server's hint in seconds."""

    def __init__(self, reason: str, retry_after: float | None = None):
        super().__init__(reason)
        self.retry_after = retry_after


def encode_image(image: Image.Image, max_side: int | None, fmt: str = "JPEG", quality: int = 90) -> str:
    """The image as a ``data:`` URL, downscaled so its longer side is at most ``max_side`` (None: keep)."""
    fmt = fmt.upper()
    if fmt not in _MIME:
        raise ValueError(f"image_format must be one of {sorted(_MIME)}, not {fmt!r}")
    img = image
    if max_side and max(img.size) > max_side:
        scale = max_side / max(img.size)
        size = (max(1, round(img.width * scale)), max(1, round(img.height * scale)))
        img = img.resize(size, Image.Resampling.LANCZOS)
    if img.mode not in ("RGB", "L") or (fmt == "JPEG" and img.mode != "RGB"):
        img = img.convert("RGB")
    buf = io.BytesIO()
    if fmt == "PNG":
        img.save(buf, format="PNG", compress_level=1)
    else:
        img.save(buf, format=fmt, quality=quality)
    return f"data:{_MIME[fmt]};base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def build_messages(prompt: Prompt, image_url: str) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Chat messages for one image, plus the extra body fields that the answer prefix needs."""
    messages: list[dict[str, Any]] = []
    if prompt.system is not None:
        messages.append({"role": "system", "content": prompt.system})
    parts: list[dict[str, Any]] = []
    if prompt.before_image:
        parts.append({"type": "text", "text": prompt.before_image})
    parts.append({"type": "image_url", "image_url": {"url": image_url}})
    if prompt.after_image:
        parts.append({"type": "text", "text": prompt.after_image})
    messages.append({"role": "user", "content": parts})
    extra: dict[str, Any] = {}
    if prompt.answer_prefix:
        messages.append({"role": "assistant", "content": prompt.answer_prefix})
        extra = {"continue_final_message": True, "add_generation_prompt": False}
    return messages, extra


def _normalise(token: str) -> str:
    return token.strip().lstrip(_SPACE_MARKERS).strip()


def _entry_text(entry: dict[str, Any]) -> str:
    raw = entry.get("bytes")
    if isinstance(raw, list) and raw:
        try:
            return bytes(raw).decode("utf-8")
        except (ValueError, UnicodeDecodeError):
            pass
    return str(entry.get("token", ""))


def map_logprobs(top: Sequence[dict[str, Any]], candidates: Sequence[str]) -> tuple[dict[str, float | None], list[str]]:
    """Candidate -> logsumexp of the log-probs of its token variants in ``top`` (None when absent)."""
    by_norm: dict[str, list[str]] = {}
    for cand in candidates:
        by_norm.setdefault(_normalise(cand), []).append(cand)
    found: dict[str, list[float]] = {c: [] for c in candidates}
    seen: set[str] = set()
    for entry in top:
        text = _entry_text(entry)
        lp = entry.get("logprob")
        if text in seen or not isinstance(lp, int | float) or math.isnan(lp):
            continue
        seen.add(text)
        for cand in by_norm.get(_normalise(text), []):
            found[cand].append(float(lp))
    out: dict[str, float | None] = {}
    for cand, lps in found.items():
        if not lps:
            out[cand] = None
            continue
        m = max(lps)
        out[cand] = m if m == -math.inf else m + math.log(sum(math.exp(v - m) for v in lps))
    absent = [c for c, v in out.items() if v is None]
    return out, absent


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a ``Retry-After`` header (delta-seconds or an HTTP date); None when absent or invalid."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def _error_message(resp: httpx.Response) -> str:
    try:
        err = resp.json().get("error")
        msg = err.get("message") if isinstance(err, dict) else err
        if msg:
            return str(msg)[:300]
    except (ValueError, AttributeError):
        pass
    return resp.text[:300].strip() or resp.reason_phrase


class OpenAIServerBackend:
    """Scores images through an OpenAI-compatible ``/chat/completions`` endpoint.

    ``base_url`` ends with the API root, e.g. ``http://127.0.0.1:8000/v1``. The API key is read from the
    environment variable ``api_key_env`` (no ``Authorization`` header when it is unset, as local servers
    need none). ``concurrency`` bounds the requests in flight (across threads sharing this backend);
    ``timeout`` is per request (connect/read/write); ``max_retries`` counts retries after the first attempt.
    """

    def __init__(
        self,
        model: str,
        base_url: str,
        api_key_env: str = "OPENAI_API_KEY",
        concurrency: int = 8,
        timeout: float = 60.0,
        max_retries: int = 5,
        max_image_side: int | None = 1536,
        image_format: str = "JPEG",
        top_logprobs: int = 20,
        jpeg_quality: int = 90,
        backoff_base: float = 0.5,
        backoff_max: float = 30.0,
        max_retry_after: float = 120.0,
    ):
        if concurrency < 1:
            raise ValueError(f"concurrency must be >= 1, not {concurrency}")
        if max_retries < 0:
            raise ValueError(f"max_retries must be >= 0, not {max_retries}")
        if image_format.upper() not in _MIME:
            raise ValueError(f"image_format must be one of {sorted(_MIME)}, not {image_format!r}")
        self.model = model
        self.base_url = base_url.rstrip("/")
        self.api_key_env = api_key_env
        self.concurrency = concurrency
        self.timeout = timeout
        self.max_retries = max_retries
        self.max_image_side = max_image_side
        self.image_format = image_format.upper()
        self.top_logprobs = top_logprobs
        self.jpeg_quality = jpeg_quality
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self.max_retry_after = max_retry_after
        self.model_id = f"openai:{self.base_url}:{model}"
        self._client: httpx.Client | None = None
        self._slots = threading.BoundedSemaphore(concurrency)
        self._lock = threading.Lock()

    # -- lifecycle ---------------------------------------------------------------------------------------
    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        for key in ("_client", "_slots", "_lock"):
            state.pop(key)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._client = None
        self._slots = threading.BoundedSemaphore(self.concurrency)
        self._lock = threading.Lock()

    def close(self) -> None:
        with self._lock:
            if self._client is not None:
                self._client.close()
                self._client = None

    def __enter__(self) -> OpenAIServerBackend:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _http(self) -> httpx.Client:
        with self._lock:
            if self._client is None:
                headers = {"Content-Type": "application/json"}
                key = os.environ.get(self.api_key_env)
                if key:
                    headers["Authorization"] = f"Bearer {key}"
                limits = httpx.Limits(max_connections=self.concurrency, max_keepalive_connections=self.concurrency)
                self._client = httpx.Client(headers=headers, timeout=self.timeout, limits=limits)
            return self._client

    # -- Backend protocol --------------------------------------------------------------------------------
    def check_candidates(self, candidates: Sequence[str]) -> None:
        """No-op: the server's tokenizer is not visible from here.

        A candidate that is not a single token simply never appears among the top log-probabilities and is
        reported as absent (``meta["absent"]``) instead.
        """
        return None

    def run(
        self,
        images: Sequence[Image.Image],
        prompt: Prompt,
        candidates: Sequence[str],
        want_text: bool = True,
    ) -> list[RawOutput]:
        """One request per image, up to ``concurrency`` at a time; results in input order."""
        if not images:
            return []
        workers = min(self.concurrency, len(images))
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="dogiqa-openai") as pool:
            futures = [pool.submit(self._guarded, img, prompt, list(candidates), want_text) for img in images]
            try:
                return [f.result() for f in futures]
            except BackendError:
                for f in futures:
                    f.cancel()
                raise

    # -- one item ----------------------------------------------------------------------------------------
    def _body(self, image: Image.Image, prompt: Prompt, candidates: list[str]) -> dict[str, Any]:
        url = encode_image(image, self.max_image_side, self.image_format, self.jpeg_quality)
        messages, extra = build_messages(prompt, url)
        body: dict[str, Any] = {"model": self.model, "messages": messages, "temperature": 0, "max_tokens": 1}
        if candidates and self.top_logprobs > 0:
            body.update(logprobs=True, top_logprobs=self.top_logprobs)
        body.update(extra)
        return body

    def _guarded(self, image: Image.Image, prompt: Prompt, candidates: list[str], want_text: bool) -> RawOutput:
        """One item; anything unexpected becomes this item's error (BackendError still stops the run)."""
        try:
            return self._one(image, prompt, candidates, want_text)
        except BackendError:
            raise
        except Exception as exc:  # noqa: BLE001 - one bad item never kills the batch
            return RawOutput(error=f"{self.base_url}: request failed: {type(exc).__name__}: {exc}")

    def _one(self, image: Image.Image, prompt: Prompt, candidates: list[str], want_text: bool) -> RawOutput:
        try:
            body = self._body(image, prompt, candidates)
        except (OSError, ValueError) as exc:
            return RawOutput(error=f"could not encode the image for the request: {exc}")
        url = self.base_url + "/chat/completions"
        reason = ""
        start = time.perf_counter()
        for attempt in range(self.max_retries + 1):
            try:
                out = self._attempt(url, body, candidates, want_text)
                out.meta.update(attempts=attempt + 1, latency_s=round(time.perf_counter() - start, 4))
                return out
            except _Retry as retry:
                reason = str(retry)
                if attempt < self.max_retries:
                    time.sleep(self._delay(attempt, retry.retry_after))
        return RawOutput(
            error=f"{url}: gave up after {self.max_retries + 1} attempts; last failure: {reason}",
            meta={"attempts": self.max_retries + 1, "absent": len(candidates)},
        )

    def _delay(self, attempt: int, retry_after: float | None) -> float:
        """Exponential backoff with jitter (50-100 % of the step); at least the server's Retry-After."""
        step = min(self.backoff_max, self.backoff_base * (2**attempt))
        delay = step * (0.5 + 0.5 * random.random())
        if retry_after is not None:
            delay = max(delay, min(retry_after, self.max_retry_after))
        return delay

    def _attempt(self, url: str, body: dict[str, Any], candidates: list[str], want_text: bool) -> RawOutput:
        try:
            with self._slots:
                resp = self._http().post(url, json=body)
        except httpx.TimeoutException as exc:
            raise _Retry(f"timeout after {self.timeout} s ({type(exc).__name__})") from exc
        except httpx.RequestError as exc:  # connection refused/reset/dropped, bad encoding, redirects
            raise _Retry(f"connection error: {type(exc).__name__}: {exc}") from exc
        status = resp.status_code
        if status in RETRY_STATUS or status >= 500:
            raise _Retry(f"HTTP {status}: {_error_message(resp)}", parse_retry_after(resp.headers.get("retry-after")))
        if status in FATAL_STATUS:
            raise BackendError(
                f"{url} answered HTTP {status} for model {self.model!r}: {_error_message(resp)} "
                f"(check --base-url, --model and the API key in ${self.api_key_env}); not retried"
            )
        if status != 200:
            return RawOutput(
                error=f"{url}: HTTP {status} (not retried): {_error_message(resp)}",
                meta={"http_status": status, "absent": len(candidates)},
            )
        return self._parse(resp, candidates, want_text)

    def _parse(self, resp: httpx.Response, candidates: list[str], want_text: bool) -> RawOutput:
        try:
            data = resp.json()
            choice = data["choices"][0]
            content = choice["message"].get("content")
        except (ValueError, KeyError, IndexError, TypeError, AttributeError) as exc:
            raise _Retry(f"malformed response ({type(exc).__name__}): {resp.text[:120]!r}") from exc
        text = content if want_text and isinstance(content, str) else None
        if not candidates:
            return RawOutput(text=text)
        top = _top_entries(choice.get("logprobs"))
        if top is None:
            return RawOutput(text=text, meta={"logprobs_missing": True, "absent": len(candidates)})
        logprobs, absent = map_logprobs(top, candidates)
        return RawOutput(
            text=text,
            logprobs=logprobs,  # type: ignore[arg-type]  # None marks absent levels
            meta={"absent": len(absent), "absent_levels": absent, "top_n": len(top)},
        )


def _top_entries(logprobs: Any) -> list[dict[str, Any]] | None:
    """The first position's top-logprob entries (plus the sampled token), or None when not returned."""
    if not isinstance(logprobs, dict):
        return None
    content = logprobs.get("content")
    if not isinstance(content, list) or not content or not isinstance(content[0], dict):
        return None
    first = content[0]
    top = [e for e in first.get("top_logprobs") or [] if isinstance(e, dict)]
    if "token" in first and "logprob" in first:
        top.append({k: first[k] for k in ("token", "logprob", "bytes") if k in first})
    return top or None
