"""The server client against a hostile local server: wall time and peak memory per scenario.

Each scenario scores one crop through ``OpenAIServerBackend`` (default limits unless stated) in a fresh Python
process, so its peak RSS is its own; the fake server (tests/serve/chat_server.py) runs in this process.

    python benchmarks/server_hardening.py            # all scenarios (the Retry-After one waits ~2 minutes)
    python benchmarks/server_hardening.py huge drip  # some
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "serve"))

KEY = "sk-bench-0123456789"
SCENARIOS = {
    # name: (fault, backend options, what the issue measured before the bounds)
    "huge": ("huge", {}, "read whole: 774 MB RSS, then a RecursionError"),
    "huge_chunked": ("huge_chunked", {}, "read whole"),
    "drip": ("drip", {"timeout": 5.0}, "76 s with --timeout 5"),
    "retry_after": ("retry_forever", {}, "120 s per retry, ~10 minutes per crop"),
    "key_echo": ("echo_auth", {}, "the key copied into the record"),
}


def one(name: str, url: str) -> None:
    """Child process: score one crop and print the outcome as JSON."""
    import os

    from chat_server import item_image

    from dogiqa.backends.base import Prompt
    from dogiqa.backends.openai_server import OpenAIServerBackend

    os.environ["DOGIQA_BENCH_KEY"] = KEY
    _, opts, _ = SCENARIOS[name]
    be = OpenAIServerBackend("tiny-vlm", url, api_key_env="DOGIQA_BENCH_KEY", check_server=False, **opts)
    start = time.monotonic()
    (out,) = be.run([item_image(1)], Prompt("Rate:", ""), [str(k) for k in range(1, 8)])
    seconds = time.monotonic() - start
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    record = json.dumps({"error": out.error, "text": out.text})
    print(json.dumps({"seconds": round(seconds, 2), "max_rss_mb": round(rss_mb), "key_in_record": KEY in record,
                      "attempts": out.meta.get("attempts"), "error": (out.error or "")[:160]}))  # fmt: skip


def main(names: list[str]) -> None:
    from chat_server import ChatServer

    server = ChatServer().start()
    try:
        for name in names:
            server.faults[1] = [SCENARIOS[name][0]] * 20
            server.reset()
            cmd = [sys.executable, __file__, "--one", name, server.url]
            res = subprocess.run(cmd, capture_output=True, text=True, timeout=900, check=True)
            row = json.loads(res.stdout.strip().splitlines()[-1])
            print(f"{name:13s} {json.dumps(row)}  (before: {SCENARIOS[name][2]})", flush=True)
    finally:
        server.stop()


if __name__ == "__main__":
    if sys.argv[1:2] == ["--one"]:
        one(sys.argv[2], sys.argv[3])
    else:
        main(sys.argv[1:] or list(SCENARIOS))
