"""Dynamic batching: the queue's rules, and batched service scores equal to `dogiqa score` on the same images."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from pathlib import Path

import pytest
from http_helpers import PIPELINE, cli_flags, client_for, image_bytes
from typer.testing import CliRunner

from dogiqa.serve import ServeSettings, create_app
from dogiqa.serve.batching import Batcher, BatcherClosed, QueueFull


def run(coro):
    return asyncio.run(coro)


class Recorder:
    def __init__(self, fail: bool = False, gate: threading.Event | None = None):
        self.batches: list[list[int]] = []
        self.fail, self.gate = fail, gate

    def __call__(self, values: list[int]) -> list[int]:
        if self.gate is not None:
            assert self.gate.wait(30)
        self.batches.append(list(values))
        if self.fail:
            raise RuntimeError("model broke")
        return [v * 10 for v in values]


def test_concurrent_callers_share_batches_and_get_their_own_results():
    rec = Recorder()
    batcher = Batcher(rec, max_batch=4, max_wait_ms=2000, max_queue=16)

    async def go():
        futures = [batcher.submit([i])[0] for i in range(5)]  # five callers in the same instant
        return await asyncio.gather(*futures)

    try:
        assert run(go()) == [0, 10, 20, 30, 40]
    finally:
        batcher.close(10)
    assert rec.batches == [[0, 1, 2, 3], [4]]
    assert batcher.stats.as_dict() == {"batches": 2, "items": 5, "largest": 4, "mean_batch": 2.5}


def test_a_lone_item_waits_at_most_max_wait():
    rec = Recorder()
    batcher = Batcher(rec, max_batch=8, max_wait_ms=50, max_queue=16)

    async def go():
        start = time.monotonic()
        result = await batcher.submit([7])[0]
        return result, time.monotonic() - start

    try:
        result, waited = run(go())
    finally:
        batcher.close(10)
    assert result == 70 and rec.batches == [[7]]
    assert 0.04 <= waited < 20  # it waited for company, then went alone (generous upper bound: shared CPUs)


def test_a_failing_batch_fails_each_of_its_callers():
    batcher = Batcher(Recorder(fail=True), max_batch=4, max_wait_ms=100, max_queue=16)

    async def go():
        futures = batcher.submit([1, 2])
        return await asyncio.gather(*futures, return_exceptions=True)

    try:
        results = run(go())
    finally:
        batcher.close(10)
    assert [type(r) for r in results] == [RuntimeError, RuntimeError] and "model broke" in str(results[0])


def test_queue_bound_close_drains_and_refuses_new_work():
    gate = threading.Event()
    rec = Recorder(gate=gate)
    batcher = Batcher(rec, max_batch=2, max_wait_ms=0, max_queue=3)

    async def go():
        first = batcher.submit([1])  # taken by the worker, which waits at the gate
        while not batcher._busy:
            await asyncio.sleep(0.005)
        queued = batcher.submit([2, 3, 4])  # fills the queue
        with pytest.raises(QueueFull) as full:
            batcher.submit([5])
        assert full.value.retry_after >= 1
        closer = threading.Thread(target=batcher.close, args=(30,))
        closer.start()  # shutdown begins with work queued
        while not batcher._closing:
            await asyncio.sleep(0.005)
        with pytest.raises(BatcherClosed):
            batcher.submit([6])
        gate.set()
        results = await asyncio.gather(*first, *queued)
        closer.join(30)
        return results

    assert run(go()) == [10, 20, 30, 40]  # everything accepted before the shutdown was scored
    assert rec.batches == [[1], [2, 3], [4]]
    assert not batcher._thread.is_alive()


def test_callers_that_went_away_are_skipped():
    gate = threading.Event()
    rec = Recorder(gate=gate)
    batcher = Batcher(rec, max_batch=4, max_wait_ms=0, max_queue=8)

    async def go():
        first = batcher.submit([1])[0]
        while not batcher._busy:
            await asyncio.sleep(0.005)
        gone, kept = batcher.submit([2]), batcher.submit([3])
        gone[0].cancel()
        gate.set()
        return await first, await kept[0]

    try:
        assert run(go()) == (10, 30)
    finally:
        batcher.close(10)
    assert rec.batches == [[1], [3]]


def test_batched_service_scores_equal_the_cli(
    tiny_qwen2vl_dir: Path, serve_iqa, sample_images_dir: Path, tmp_path: Path
):
    from dogiqa.cli import app as cli

    folder = tmp_path / "images"
    folder.mkdir()
    for path in sorted(sample_images_dir.iterdir()):
        (folder / path.name).write_bytes(path.read_bytes())
    for i in range(4):
        (folder / f"extra{i}.png").write_bytes(image_bytes(100 + 20 * i, 90, seed=40 + i))
    out = tmp_path / "cli.jsonl"
    res = CliRunner().invoke(cli, ["score", str(folder), *cli_flags(tiny_qwen2vl_dir), "-o", str(out), "--quiet"])
    assert res.exit_code == 0, res.output
    want = {Path(r["path"]).name: r for r in map(json.loads, out.read_text().splitlines())}
    assert len(want) == 8 and all(r["score"] is not None for r in want.values())

    iqa = serve_iqa  # built with the same options as the CLI flags (http_helpers.PIPELINE)
    settings = ServeSettings(max_batch=8, max_wait_ms=1000)

    async def go():
        async with client_for(create_app(lambda: iqa, settings)) as c:
            posts = [c.post(f"/v1/score?name={name}", content=(folder / name).read_bytes()) for name in sorted(want)]
            return await asyncio.gather(*posts)

    responses = run(go())
    assert all(r.status_code == 200 for r in responses), [r.text for r in responses]
    assert max(int(r.headers["X-DogIQA-Batch"]) for r in responses) > 1  # they were scored together
    assert PIPELINE["segmenter"] == "felzenszwalb"
    regions = 0
    for response in responses:
        got = response.json()
        cli_record = want[got["path"]]
        for key in ("timings", "path", "key"):  # an upload's key is its name, a file's its resolved path
            got.pop(key), cli_record.pop(key)
        regions += len(got["regions"])
        _assert_same_record(got, cli_record)
    assert regions > 8  # real regions were scored, not only whole images


def _assert_same_record(got: dict, want: dict) -> None:
    """Equal records; scores equal up to float noise of a different batch composition (padding)."""
    numeric = ("score", "global_score", "local_score", "uncertainty", "entropy", "variance")
    for key in numeric:
        if key in want:
            assert got.pop(key) == pytest.approx(want.pop(key), abs=1e-6), key
    for key in ("global_probs", "probs"):
        if key in want:
            assert got.pop(key) == pytest.approx(want.pop(key), abs=1e-6), key
    if "regions" in want:
        regions_got, regions_want = got.pop("regions"), want.pop("regions")
        assert len(regions_got) == len(regions_want)
        for a, b in zip(regions_got, regions_want, strict=True):
            _assert_same_record(a, b)
    assert got == want
