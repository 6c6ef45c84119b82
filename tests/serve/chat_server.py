"""A real HTTP server on 127.0.0.1 speaking the chat-completions subset the server backend uses.

Deterministic answers: every test image is a solid colour that encodes an item id (red and green channels),
and the server's next-token distribution is a function of that id (``distribution``). Faults are injected per
item id and attempt: ``server.faults[item] = ["500", "429", ...]`` applies one fault per successive request.

Hostile faults (a server we did not write may do this): ``huge`` (declares a 300 MB body and starts sending
it), ``huge_chunked`` (the same without a length), ``drip`` (the whole response, status line included, one
byte per ``drip_s`` seconds), ``retry_forever`` (429 with ``Retry-After: 100000``), ``echo_auth`` (a 400 whose
message quotes the request's ``Authorization`` header), ``echo_auth_500`` (the same as a retryable 500),
``echo_answer`` (a 200 whose answer text is the ``Authorization`` header), ``deep`` (a 200 body of 100 000
nested brackets), ``long_error`` (a 400 with 5000 characters of text). Server-wide capability switches:
``logprobs_supported = False`` (never returns log-probabilities, like ``transformers serve``),
``reject_continue = True`` (422 for ``continue_final_message``).
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import math
import threading
import time
from collections import Counter, defaultdict
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import numpy as np
from PIL import Image

LEVELS = 7
STEP = 8


def item_image(item: int, size: tuple[int, int] = (48, 40)) -> Image.Image:
    """A solid image whose colour encodes ``item`` (0 <= item < 1024)."""
    r, g = item % 32, item // 32
    return Image.new("RGB", size, (STEP * r + STEP // 2, STEP * g + STEP // 2, 128))


def item_of(image: Image.Image) -> int:
    """Inverse of ``item_image`` from the mean colour (robust to JPEG rounding)."""
    mean = np.asarray(image.convert("RGB"), dtype=np.float64).mean(axis=(0, 1))
    r, g = mean[0], mean[1]
    return round((r - STEP // 2) / STEP) + 32 * round((g - STEP // 2) / STEP)


def level_of(item: int) -> int:
    return 1 + item % LEVELS


def distribution(item: int) -> list[tuple[str, float]]:
    """The server's next-token log-softmax for ``item``, most likely first (ties broken by token)."""
    peak = level_of(item)
    scores = {str(k): -abs(k - peak) * 1.1 for k in range(1, LEVELS + 1)}
    scores[" " + str(peak)] = -0.7  # a whitespace variant of the peak level
    scores["the"] = -2.0
    scores["\n"] = -3.5
    total = math.log(sum(math.exp(v) for v in scores.values()))
    return sorted(((t, v - total) for t, v in scores.items()), key=lambda tv: (-tv[1], tv[0]))


class ChatServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, model: str = "tiny-vlm"):
        super().__init__(("127.0.0.1", 0), _Handler)
        self.model = model
        self.lock = threading.Lock()
        self.faults: dict[int, list[str]] = {}
        self.all_faults: list[str] = []  # for items without their own entry in ``faults``
        self.counts: Counter[int] = Counter()  # requests per item id
        self.by_image: Counter[str] = Counter()  # requests per exact (messages, image) payload
        self.times: dict[int, list[float]] = defaultdict(list)
        self.bodies: dict[int, dict[str, Any]] = {}
        self.headers_seen: dict[int, dict[str, str]] = {}
        self.sizes: dict[int, tuple[int, int]] = {}
        self.inflight = 0
        self.max_inflight = 0
        self.delay = 0.0
        self.slow_s = 1.0
        self.retry_after = "0.2"
        self.drip_s = 0.2
        self.logprobs_supported = True
        self.reject_continue = False
        self.probes = 0  # first-contact probes (a 64x64 mid-grey image) among the requests
        self.sent_bytes: Counter[int] = Counter()  # bytes written by the hostile faults, per item
        self._thread = threading.Thread(target=self.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/v1"

    def start(self) -> ChatServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.shutdown()
        self.server_close()
        self._thread.join(timeout=5)

    def reset(self) -> None:
        with self.lock:
            self.counts.clear()
            self.probes = 0
            self.by_image.clear()
            self.times.clear()
            self.max_inflight = 0

    def total_requests(self) -> int:
        return sum(self.counts.values())

    def scoring_requests(self) -> int:
        """Requests other than the backend's first-contact probes."""
        return self.total_requests() - self.probes


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out in separate writes
    server: ChatServer

    def log_message(self, *args: Any) -> None:  # keep test output quiet
        pass

    def _send(self, status: int, payload: bytes, headers: dict[str, str] | None = None) -> None:
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(payload)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    def _json(self, status: int, obj: Any, headers: dict[str, str] | None = None) -> None:
        self._send(status, json.dumps(obj).encode(), headers)

    def do_GET(self) -> None:
        srv = self.server
        if self.path == "/v1/models":
            return self._json(200, {"object": "list", "data": [{"id": srv.model, "object": "model"}]})
        if self.path != "/stats":
            return self._json(404, {"error": {"message": f"no route {self.path}"}})
        with srv.lock:
            stats = {"requests": srv.total_requests(), "max_inflight": srv.max_inflight}
        self._json(200, stats)

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
        srv = self.server
        if self.path != "/v1/chat/completions":
            return self._json(404, {"error": {"message": f"no route {self.path}"}})
        if body.get("model") != srv.model:
            return self._json(404, {"error": {"message": f"The model `{body.get('model')}` does not exist."}})
        if srv.reject_continue and "continue_final_message" in body:
            return self._json(422, {"error": {"message": "Unexpected field: continue_final_message"}})
        image = _image_from(body)
        digest = hashlib.sha256(json.dumps(body["messages"], sort_keys=True).encode()).hexdigest()
        item = item_of(image)
        with srv.lock:
            attempt = srv.counts[item]
            srv.counts[item] += 1
            image_attempt = srv.by_image[digest]
            srv.by_image[digest] += 1
            srv.times[item].append(time.monotonic())
            srv.bodies[item] = body
            srv.headers_seen[item] = dict(self.headers)
            srv.sizes[item] = image.size
            srv.probes += _is_probe(image)
            srv.inflight += 1
            srv.max_inflight = max(srv.max_inflight, srv.inflight)
            if item in srv.faults:
                faults, n = srv.faults[item], attempt
            else:
                faults, n = srv.all_faults, image_attempt
            fault = faults[n] if n < len(faults) else None
        try:
            time.sleep(srv.delay)
            self._respond(item, body, fault)
        finally:
            with srv.lock:
                srv.inflight -= 1

    def _respond(self, item: int, body: dict[str, Any], fault: str | None) -> None:
        srv = self.server
        if fault == "drop":
            self.close_connection = True  # close the socket without any response
            return
        if fault == "slow":
            time.sleep(srv.slow_s)
        if fault == "malformed":
            return self._send(200, b'{"choices": [{"message": ')
        if fault == "empty":
            return self._json(200, {"choices": []})
        if fault == "429":
            return self._json(429, {"error": {"message": "rate limited"}}, {"Retry-After": srv.retry_after})
        if fault in ("400", "401", "500", "503"):
            return self._json(int(fault), {"error": {"message": f"injected {fault}"}})
        if fault is not None and self._hostile(item, body, fault):
            return
        with_logprobs = fault != "nologprobs" and srv.logprobs_supported
        self._json(200, _completion(item, body, with_logprobs=with_logprobs))

    def _hostile(self, item: int, body: dict[str, Any], fault: str) -> bool:
        """Answer with one of the hostile faults; False when ``fault`` is not one of them."""
        auth = self.headers.get("Authorization", "")
        if fault == "retry_forever":
            self._json(429, {"error": {"message": "slow down"}}, {"Retry-After": "100000"})
        elif fault in ("echo_auth", "echo_auth_500"):
            message = f"bad request; you sent Authorization: {auth}; url {self.path}"
            self._json(400 if fault == "echo_auth" else 500, {"error": {"message": message}})
        elif fault == "echo_answer":
            completion = _completion(item, body, with_logprobs=True)
            completion["choices"][0]["message"]["content"] = auth
            self._json(200, completion)
        elif fault == "long_error":
            self._json(400, {"error": {"message": "e" * 5000}})
        elif fault == "deep":
            self._send(200, b"[" * 100_000 + b"]" * 100_000)
        elif fault in ("huge", "huge_chunked"):
            head = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
            head += "Content-Length: 300000000\r\n" if fault == "huge" else "Connection: close\r\n"
            self._stream(item, head.encode() + b"\r\n", [b" " * 65536] * (300_000_000 // 65536), 0.0)
        elif fault == "drip":
            payload = json.dumps(_completion(item, body, with_logprobs=True)).encode()
            raw = f"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {len(payload)}\r\n\r\n"
            data = raw.encode() + payload
            self._stream(item, b"", [data[i : i + 1] for i in range(len(data))], self.server.drip_s)
        else:
            return False
        return True

    def _stream(self, item: int, head: bytes, chunks: list[bytes], pause: float) -> None:
        """Write ``head`` then each chunk (sleeping ``pause`` before each) until the client goes away."""
        self.close_connection = True
        try:
            self.wfile.write(head)
            for chunk in chunks:
                time.sleep(pause)
                self.wfile.write(chunk)
                self.wfile.flush()
                with self.server.lock:
                    self.server.sent_bytes[item] += len(chunk)
        except OSError:  # the client gave up: what this fault is for
            pass


def _is_probe(image: Image.Image) -> bool:
    pixels = np.asarray(image.convert("RGB"), dtype=np.int16)
    return image.size == (64, 64) and bool(np.abs(pixels - 128).max() <= 2)


def _image_from(body: dict[str, Any]) -> Image.Image:
    for message in body["messages"]:
        if isinstance(message["content"], list):
            for part in message["content"]:
                if part["type"] == "image_url":
                    data = part["image_url"]["url"].split(",", 1)[1]
                    return Image.open(io.BytesIO(base64.b64decode(data)))
    raise ValueError("no image in request")


def _completion(item: int, body: dict[str, Any], with_logprobs: bool) -> dict[str, Any]:
    dist = distribution(item)
    token, lp = dist[0]
    choice: dict[str, Any] = {
        "index": 0,
        "message": {"role": "assistant", "content": token},
        "finish_reason": "length",
    }
    if with_logprobs and body.get("logprobs"):
        n = int(body.get("top_logprobs") or 0)
        entry = lambda t, v: {"token": t, "logprob": v, "bytes": list(t.encode())}  # noqa: E731
        choice["logprobs"] = {"content": [{**entry(token, lp), "top_logprobs": [entry(t, v) for t, v in dist[:n]]}]}
    return {"id": f"cmpl-{item}", "object": "chat.completion", "model": body["model"], "choices": [choice]}
