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
counts those levels (``meta["absent_levels"]`` names them). When the server sends no log-probabilities for a
request, ``logprobs`` is None, ``meta["logprobs_missing"]`` is True and the text (``int`` readout) still works.

Answer prefix. ``Prompt.answer_prefix`` is sent as a trailing assistant message with the vLLM/SGLang
extension fields ``continue_final_message: true, add_generation_prompt: false`` in the request body (what the
openai client's ``extra_body`` would add), so the model continues the prefix instead of opening a new turn.
A server that echoes the prefix in its answer (llama.cpp) has it removed from the text.

First contact (``probe``, called when a scorer is built). One small request checks that the server is
reachable, serves the model, returns log-probabilities when the readout needs them and accepts
``continue_final_message`` when the prompt has an answer prefix; otherwise :class:`ServerCapabilityError`
(a ``UsageError``: exit 2) says what is wrong, before any image is scored.

Failures during a run. 429 (honouring ``Retry-After`` up to ``max_retry_after``), 408, 5xx, connection
errors, timeouts and malformed JSON are retried up to ``max_retries`` times with exponential backoff and
jitter, while the crop's retry budget (``max_retry_time``) lasts; then the item gets ``RawOutput(error=...)``
with ``meta["backend_error"] = True`` (a failed call, not an answer). Other 4xx are not retried: 401/403/404
(bad key, unknown model or path: every request would fail) raise :class:`BackendError`; other 4xx (e.g. 400,
413: about this request) give a per-item error.

Bounds. Every request ends within ``deadline`` seconds however slowly the server sends (headers and body), a
response body larger than ``max_response_bytes`` is refused, so a crop takes at most about
``max_retry_time + deadline`` seconds.

Secrets. The API key (from ``$api_key_env``) and any user-info in ``base_url`` are sent but never recorded:
``base_url``/``model_id`` (records, cache keys, metrics) drop the user-info, and server text copied into
errors or answers is truncated and has the key and any ``Bearer``/``Basic`` credential replaced by ``***``.
"""

from __future__ import annotations

import base64
import email.utils
import io
import json
import logging
import math
import os
import random
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import httpx
from PIL import Image

from dogiqa.backends.base import BackendError, Prompt, RawOutput
from dogiqa.backends.http_client import Redactor, ResponseTooLarge, arm, deadline, read_capped, split_userinfo
from dogiqa.errors import ServerCapabilityError, UsageError

RETRY_STATUS = {408, 429}
FATAL_STATUS = {401, 403, 404}
BACKEND_FAILED = "backend call failed"  # starts every per-item error of a failed call (not an invalid answer)
DEFAULT_MAX_RESPONSE_BYTES = 8 * 2**20
NO_LOGPROBS_HINT = "use --readout int, or serve with vLLM, SGLang or llama.cpp"
_SPACE_MARKERS = "Ġ▁"
_MIME = {"JPEG": "image/jpeg", "PNG": "image/png", "WEBP": "image/webp"}
_TEXT_LIMIT = 200  # characters of server-sent text kept in answers and messages
log = logging.getLogger(__name__)


class _Retry(Exception):
    """A retryable failure of one attempt; ``retry_after`` is the server's hint in seconds; ``kind`` is
    ``status`` (408/429/5xx), ``timeout``, ``connect`` (refused, unknown host), ``transport`` (dropped) or
    ``malformed``."""

    def __init__(self, reason: str, retry_after: float | None = None, kind: str = "status"):
        super().__init__(reason)
        self.retry_after = retry_after
        self.kind = kind


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


def _server_text(data: bytes, fallback: str) -> str:
    """The ``error.message`` of a JSON error body, else the body's text (untrimmed; callers redact)."""
    try:
        err = json.loads(data).get("error")
        msg = err.get("message") if isinstance(err, dict) else err
        if msg:
            return str(msg)
    except (ValueError, AttributeError, RecursionError):
        pass
    return data[:4096].decode("utf-8", "replace").strip() or fallback


def _positive(name: str, value: float | None, setting: str, allow_zero: bool = False) -> None:
    if value is not None and (value < 0 or (value == 0 and not allow_zero) or math.isnan(value)):
        raise UsageError(f"{setting} must be {'>= 0' if allow_zero else '> 0'}, not {value}", setting=setting)


class OpenAIServerBackend:
    """Scores images through an OpenAI-compatible ``/chat/completions`` endpoint.

    ``base_url`` ends with the API root, e.g. ``http://127.0.0.1:8000/v1``. The API key is read from the
    environment variable ``api_key_env`` (no ``Authorization`` header when it is unset, as local servers
    need none). ``concurrency`` bounds the requests in flight (across threads sharing this backend);
    ``timeout`` bounds each connect/read/write; ``deadline`` (default: ``timeout``) bounds a whole request;
    ``max_response_bytes`` bounds a response body; ``max_retries`` counts retries after the first attempt,
    ``max_retry_after`` caps the wait a server may ask for and ``max_retry_time`` the time after a crop's
    first attempt within which retries may start. ``check_server=False`` skips the first-contact probe.
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
        max_retry_after: float = 30.0,
        deadline: float | None = None,
        max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
        max_retry_time: float = 120.0,
        check_server: bool = True,
    ):
        if concurrency < 1:
            raise UsageError(f"concurrency must be >= 1, not {concurrency}", setting="--concurrency")
        if max_retries < 0:
            raise UsageError(f"max_retries must be >= 0, not {max_retries}", setting="--max-retries")
        if image_format.upper() not in _MIME:
            raise UsageError(f"image_format must be one of {sorted(_MIME)}, not {image_format!r}")
        if max_response_bytes < 1024:
            raise UsageError(f"max_response_bytes must be >= 1024, not {max_response_bytes}", "--max-response-bytes")
        _positive("timeout", timeout, "--timeout")
        _positive("deadline", deadline, "--deadline")
        _positive("max_retry_after", max_retry_after, "--max-retry-after", allow_zero=True)
        _positive("max_retry_time", max_retry_time, "--max-retry-time", allow_zero=True)
        clean_url, self._auth, self._url_secrets = split_userinfo(base_url.rstrip("/"))
        if self._auth is not None:
            log.warning(
                "--base-url carries credentials (user-info); they are sent as HTTP basic auth but never recorded. "
                "Put an API key in $%s instead.",
                api_key_env,
            )
        self.model = model
        self.base_url = clean_url
        self.api_key_env = api_key_env
        self.concurrency = concurrency
        self.timeout = timeout
        self.deadline = timeout if deadline is None else deadline
        self.max_retries = max_retries
        self.max_image_side = max_image_side
        self.image_format = image_format.upper()
        self.top_logprobs = top_logprobs
        self.jpeg_quality = jpeg_quality
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self.max_retry_after = max_retry_after
        self.max_response_bytes = max_response_bytes
        self.max_retry_time = max_retry_time
        self.check_server = check_server
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
                headers = {"Content-Type": "application/json", "Accept-Encoding": "identity"}
                key = os.environ.get(self.api_key_env)
                if key:
                    headers["Authorization"] = f"Bearer {key}"
                limits = httpx.Limits(max_connections=self.concurrency, max_keepalive_connections=self.concurrency)
                self._client = httpx.Client(headers=headers, timeout=self.timeout, limits=limits, auth=self._auth)
                if not arm(self._client):
                    log.warning("httpx internals changed: only response bodies are bounded by the deadline")
            return self._client

    def _scrub(self, text: str, limit: int | None = None) -> str:
        """``text`` without the API key, URL credentials or any Bearer/Basic credential (truncated to limit)."""
        return Redactor([os.environ.get(self.api_key_env), *self._url_secrets])(text, limit)

    # -- first contact -----------------------------------------------------------------------------------
    def probe(self, prompt: Prompt, candidates: Sequence[str], readout: str = "expected") -> None:
        """Check that the server can serve ``readout`` with ``prompt``; ServerCapabilityError if not.

        One request without the answer prefix (reachable? model served? log-probabilities returned when the
        readout needs them?), then, when ``prompt`` has an answer prefix, one with it
        (``continue_final_message`` accepted?).
        """
        if not self.check_server:
            return
        choice = self._probe_request(replace(prompt, answer_prefix=""), list(candidates), prefix=False)
        if readout != "int" and candidates and choice.get("logprobs") is None:
            raise ServerCapabilityError(
                f"the server at {self.base_url} returns no log-probabilities, which readout {readout!r} needs: "
                + NO_LOGPROBS_HINT,
                setting="--readout",
            )
        top = _top_entries(choice.get("logprobs"))
        if top is not None and all(v is None for v in map_logprobs(top, candidates)[0].values()):
            log.warning(
                "%s: none of the answer tokens %s is among the top %d log-probabilities of a test request; "
                "check --model (answers may be invalid)",
                self.base_url,
                list(candidates),
                len(top),
            )
        if prompt.answer_prefix:
            self._probe_request(prompt, list(candidates), prefix=True)

    def _probe_request(self, prompt: Prompt, candidates: list[str], prefix: bool) -> dict[str, Any]:
        """The first choice of one test request; transient failures are retried like a crop's (refused
        connections and unknown hosts are not: they fail at once)."""
        url = self.base_url + "/chat/completions"
        body = self._body(Image.new("RGB", (64, 64), (128, 128, 128)), prompt, candidates)
        give_up_at = time.monotonic() + self.max_retry_time
        for attempt in range(self.max_retries + 1):
            retry_after = None
            try:
                status, headers, data = self._exchange("POST", url, body)
            except _Retry as exc:
                failure = ServerCapabilityError(self._unreachable(url, exc), setting="--base-url")
                if exc.kind == "connect":
                    raise failure from None
            except ResponseTooLarge as exc:
                raise ServerCapabilityError(f"the server at {self.base_url}: {exc}", "--max-response-bytes") from None
            else:
                if status == 200:
                    choice, failure = self._probe_choice(url, data)
                    if choice is not None:
                        return choice
                elif status in RETRY_STATUS or status >= 500:
                    failure = self._refusal(status, data, prefix, attempt + 1)
                    retry_after = parse_retry_after(headers.get("retry-after"))
                else:
                    raise self._refusal(status, data, prefix, attempt + 1)
            delay = self._delay(attempt, retry_after)
            if attempt == self.max_retries or time.monotonic() + delay > give_up_at:
                break
            time.sleep(delay)
        raise failure

    def _probe_choice(self, url: str, data: bytes) -> tuple[dict[str, Any] | None, ServerCapabilityError]:
        try:
            choice = json.loads(data)["choices"][0]
            if isinstance(choice.get("message"), dict):
                return choice, ServerCapabilityError("")
            reason = "TypeError: no message"
        except (ValueError, KeyError, IndexError, TypeError, AttributeError, RecursionError) as exc:
            reason = type(exc).__name__
        shown = self._scrub(repr(data[:120]), _TEXT_LIMIT)
        msg = f"{url} does not answer like an OpenAI chat-completions endpoint ({reason}: {shown}); check --base-url"
        return None, ServerCapabilityError(msg, setting="--base-url")

    def _unreachable(self, url: str, exc: _Retry) -> str:
        cause = str(exc)
        if exc.kind == "connect":
            low = cause.lower()
            if "refused" in low:
                cause = "connection refused (is the server running, on this host and port?); " + cause
            elif "name or service" in low or "name resolution" in low or "nodename" in low or "getaddrinfo" in low:
                cause = "the host name does not resolve (DNS); " + cause
        return self._scrub(f"cannot reach the server at {url}: {cause}")

    def _refusal(self, status: int, data: bytes, prefix: bool, attempts: int) -> ServerCapabilityError:
        text = self._scrub(_server_text(data, f"HTTP {status}"), _TEXT_LIMIT)
        where = f"the server at {self.base_url} answered HTTP {status} ({text})"
        if status >= 500 or status in RETRY_STATUS:
            return ServerCapabilityError(f"{where} to a first request, {attempts} time(s); is it healthy?")
        if status in (401, 403):
            msg = f"{where}: the API key is missing or refused; put it in ${self.api_key_env} (--api-key-env)"
            return ServerCapabilityError(msg, setting="--api-key-env")
        if prefix:
            return ServerCapabilityError(
                f"{where} to a request that continues an answer prefix (continue_final_message, needed by the "
                "qalign/qbench readouts): use --readout expected or int, or serve with vLLM, SGLang or llama.cpp",
                setting="--readout",
            )
        served = self._served_models()
        hint = f"; it serves: {', '.join(served)}" if served else ""
        return ServerCapabilityError(
            f"{where} for model {self.model!r}: check --model and --base-url (the API root, e.g. .../v1){hint}",
            setting="--model",
        )

    def _served_models(self) -> list[str]:
        """Model ids from ``GET /models`` (best effort, for messages)."""
        try:
            status, _, data = self._exchange("GET", self.base_url + "/models")
            ids = [str(m.get("id")) for m in json.loads(data).get("data", []) if isinstance(m, dict)]
        except Exception:  # noqa: BLE001 - only a hint
            return []
        return [self._scrub(i, 80) for i in ids[:10]] if status == 200 else []

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

    def _failed(self, message: str, attempts: int, candidates: list[str]) -> RawOutput:
        """A per-item error for a call that failed (marked as such: not an invalid answer)."""
        return RawOutput(
            error=self._scrub(f"{BACKEND_FAILED}: {message}"),
            meta={"attempts": attempts, "absent": len(candidates), "backend_error": True},
        )

    def _guarded(self, image: Image.Image, prompt: Prompt, candidates: list[str], want_text: bool) -> RawOutput:
        """One item; anything unexpected becomes this item's error (BackendError still stops the run)."""
        try:
            return self._one(image, prompt, candidates, want_text)
        except BackendError:
            raise
        except Exception as exc:  # noqa: BLE001 - one bad item never kills the batch
            return self._failed(f"{self.base_url}: {type(exc).__name__}: {exc}", 0, candidates)

    def _one(self, image: Image.Image, prompt: Prompt, candidates: list[str], want_text: bool) -> RawOutput:
        try:
            body = self._body(image, prompt, candidates)
        except (OSError, ValueError) as exc:
            return RawOutput(error=f"could not encode the image for the request: {exc}")
        url = self.base_url + "/chat/completions"
        reason = ""
        start = time.monotonic()
        give_up_at = start + self.max_retry_time
        attempts = 0
        for attempt in range(self.max_retries + 1):
            attempts = attempt + 1
            try:
                out = self._attempt(url, body, candidates, want_text, prompt.answer_prefix)
                out.meta.update(attempts=attempts, latency_s=round(time.monotonic() - start, 4))
                return out
            except ResponseTooLarge as exc:
                return self._failed(f"{url}: {exc} (not retried; see --max-response-bytes)", attempts, candidates)
            except _Retry as retry:
                reason = str(retry)
                if attempt == self.max_retries:
                    break
                delay = self._delay(attempt, retry.retry_after)
                if time.monotonic() + delay > give_up_at:
                    reason += f" (a retry in {delay:.1f} s would pass the {self.max_retry_time:g} s retry budget)"
                    break
                time.sleep(delay)
        plural = "s" if attempts != 1 else ""
        return self._failed(
            f"{url}: gave up after {attempts} attempt{plural}; last failure: {reason}", attempts, candidates
        )

    def _delay(self, attempt: int, retry_after: float | None) -> float:
        """Exponential backoff with jitter (50-100 % of the step); at least the server's Retry-After (capped)."""
        step = min(self.backoff_max, self.backoff_base * (2**attempt))
        delay = step * (0.5 + 0.5 * random.random())
        if retry_after is not None:
            delay = max(delay, min(retry_after, self.max_retry_after))
        return delay

    def _exchange(self, method: str, url: str, body: dict[str, Any] | None = None) -> tuple[int, httpx.Headers, bytes]:
        """One HTTP exchange within the deadline and the body cap: (status, headers, body)."""
        try:
            with self._slots, deadline(self.deadline):
                with self._http().stream(method, url, json=body) as resp:
                    return resp.status_code, resp.headers, read_capped(resp, self.max_response_bytes)
        except httpx.TimeoutException as exc:
            raise _Retry(
                f"timeout: no complete answer within {self.deadline:g} s ({type(exc).__name__})", kind="timeout"
            ) from exc
        except httpx.ConnectError as exc:  # refused, unknown host: the server is not there
            raise _Retry(f"connection error: {type(exc).__name__}: {exc}", kind="connect") from exc
        except httpx.RequestError as exc:  # reset/dropped connections, bad encoding, redirects
            raise _Retry(f"connection error: {type(exc).__name__}: {exc}", kind="transport") from exc

    def _attempt(
        self, url: str, body: dict[str, Any], candidates: list[str], want_text: bool, prefix: str = ""
    ) -> RawOutput:
        status, headers, data = self._exchange("POST", url, body)
        if status in RETRY_STATUS or status >= 500:
            text = self._scrub(_server_text(data, "no reason given"), _TEXT_LIMIT)
            raise _Retry(f"HTTP {status}: {text}", parse_retry_after(headers.get("retry-after")))
        if status in FATAL_STATUS:
            text = self._scrub(_server_text(data, "no reason given"), _TEXT_LIMIT)
            raise BackendError(
                f"{url} answered HTTP {status} for model {self.model!r}: {text} "
                f"(check --base-url, --model and the API key in ${self.api_key_env}); not retried"
            )
        if status != 200:
            text = self._scrub(_server_text(data, "no reason given"), _TEXT_LIMIT)
            return RawOutput(
                error=f"{BACKEND_FAILED}: {url}: HTTP {status} (not retried): {text}",
                meta={"http_status": status, "absent": len(candidates), "backend_error": True},
            )
        return self._parse(data, candidates, want_text, prefix)

    def _parse(self, data: bytes, candidates: list[str], want_text: bool, prefix: str = "") -> RawOutput:
        try:
            choice = json.loads(data)["choices"][0]
            content = choice["message"].get("content")
        except (ValueError, KeyError, IndexError, TypeError, AttributeError, RecursionError) as exc:
            shown = self._scrub(repr(data[:120]), _TEXT_LIMIT)
            raise _Retry(f"malformed response ({type(exc).__name__}): {shown}", kind="malformed") from exc
        text = None
        if want_text and isinstance(content, str):
            if prefix and content.startswith(prefix):  # llama.cpp echoes the continued prefix
                content = content[len(prefix) :]
            text = self._scrub(content, _TEXT_LIMIT)
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
