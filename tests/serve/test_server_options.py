"""The client's limits as configuration settings and CLI flags, end to end against the fake server."""

from __future__ import annotations

import json
import time

from typer.testing import CliRunner

from dogiqa.api import DogIQA
from dogiqa.cli import app
from dogiqa.config import redact_urls, strip_userinfo
from dogiqa.errors import EXIT_FAILED, EXIT_USAGE

PROBE_ITEM = 528
KEY = "sk-opt-4f3e2d1c0b"


def test_settings_reach_the_backend(chat_server):
    iqa = DogIQA.from_preset(
        "global",
        model="tiny-vlm",
        backend="openai",
        base_url=chat_server.url,
        timeout=7.0,
        deadline=2.5,
        max_retry_after=0.5,
        max_retry_time=3.0,
        max_response_bytes=4096,
    )
    be = iqa.scorer.backend
    assert (be.timeout, be.deadline, be.max_retry_after, be.max_retry_time, be.max_response_bytes) == (
        7.0,
        2.5,
        0.5,
        3.0,
        4096,
    )
    assert iqa.config["pipeline"]["server"]["deadline"] == 2.5
    defaults = DogIQA.from_preset("global", model="tiny-vlm", backend="openai", base_url=chat_server.url)
    assert defaults.scorer.backend.deadline == 60.0  # the timeout's default


def test_cli_bounds_a_hostile_server_and_reports_failed_calls(chat_server, sample_images_dir, tmp_path):
    chat_server.faults[PROBE_ITEM] = []  # first contact is fine; every crop then gets Retry-After: 100000
    chat_server.all_faults = ["retry_forever"] * 50
    out = tmp_path / "out.jsonl"
    secret_url = chat_server.url.replace("http://", f"http://dogiqa:{KEY}@")
    args = ["score", str(sample_images_dir), "--backend", "openai", "--base-url", secret_url, "--model", "tiny-vlm"]
    args += ["--preset", "global", "--max-retry-after", "0.3", "--max-retry-time", "1", "-o", str(out), "--quiet"]
    start = time.monotonic()
    res = CliRunner().invoke(app, args)
    elapsed = time.monotonic() - start
    assert res.exit_code == EXIT_FAILED, res.output
    assert elapsed < 60  # 4 images x (1 s budget + one attempt); capped at 30 s per wait it would be minutes
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(records) == 4
    for r in records:
        assert r["score"] is None and r["invalid"] == 0 and r["failed_crops"] == 1
        assert "backend call failed" in r["global_error"] and "retry budget" in r["global_error"]
        assert r["config"]["pipeline"]["server"]["base_url"] == chat_server.url
    assert KEY not in out.read_text() and KEY not in res.output


def test_cli_rejects_bad_limits(sample_images_dir):
    base = ["score", str(sample_images_dir), "--backend", "openai", "--base-url", "http://127.0.0.1:9/v1"]
    for flag, value in [("--max-response-bytes", "100"), ("--deadline", "0"), ("--max-retry-time", "-1")]:
        res = CliRunner().invoke(app, [*base, flag, value, "--quiet"])
        assert res.exit_code == EXIT_USAGE and flag in res.output, res.output
    res = CliRunner().invoke(app, ["score", str(sample_images_dir), "--deadline", "5", "--quiet"])
    assert res.exit_code == EXIT_USAGE and "--backend openai" in res.output


def test_printed_configuration_has_no_credentials():
    res = CliRunner().invoke(app, ["config", "--backend", "openai", "--base-url", f"https://me:{KEY}@h.example/v1"])
    assert res.exit_code == 0 and "base_url: https://h.example/v1" in res.output and KEY not in res.output


def test_redact_urls():
    assert strip_userinfo("http://a:b@h:1/v1?x=@") == "http://h:1/v1?x=@"
    assert strip_userinfo("http://h/v1") == "http://h/v1"
    nested = {"server": {"base_url": "http://k@h/v1"}, "model": {"backend_options": {"base_url": "http://u:p@h"}}}
    assert redact_urls(nested) == {
        "server": {"base_url": "http://h/v1"},
        "model": {"backend_options": {"base_url": "http://h"}},
    }
