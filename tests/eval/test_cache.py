"""The SQLite raw-output cache: round trips, keys, finished images, and survival of SIGKILL mid-write."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from dogiqa.backends.base import RawOutput
from dogiqa.cache import CacheError, CacheKey, RawCache, image_hash, run_key

SRC = Path(__file__).resolve().parents[2] / "src"


def _key(i: int = 0, **changes: object) -> CacheKey:
    fields = dict(
        image_hash=f"h{i}",
        box=(0, 0, 8, 6),
        crop_mode="box",
        model_id="tiny@rev1",
        prompt="word-7",
        candidates=("1", "2", "3"),
    )
    fields.update(changes)
    return CacheKey(**fields)  # type: ignore[arg-type]


def test_round_trip_and_persistence(tmp_path: Path) -> None:
    path = tmp_path / "c.sqlite"
    outs = {
        _key(i): RawOutput(text=str(i % 3 + 1), logprobs={"1": -0.1 * i, "2": -2.0, "3": -3.5}, meta={"n_tokens": i})
        for i in range(5)
    }
    with RawCache(path) as cache:
        assert cache.put_many(outs) == 5
        assert cache.get_many([]) == {}
    with RawCache(path) as cache:  # reopened: everything is still there, identical
        got = cache.get_many([*outs, _key(99)])
        assert set(got) == set(outs)
        for k, o in outs.items():
            assert got[k].text == o.text and got[k].logprobs == o.logprobs and got[k].meta == o.meta
        assert cache.count_raw() == 5
        assert cache.integrity_ok()
        mode = cache._db.execute("PRAGMA journal_mode").fetchone()[0]
        assert mode == "wal"


def test_every_key_field_matters() -> None:
    base = _key()
    variants = [
        _key(1),
        _key(box=(0, 0, 8, 7)),
        _key(crop_mode="mask"),
        _key(model_id="tiny@rev2"),
        _key(prompt="word-5"),
        _key(candidates=("1", "2")),
        _key(extra="fp32"),
    ]
    digests = {base.digest} | {v.digest for v in variants}
    assert len(digests) == len(variants) + 1
    assert _key().digest == base.digest  # stable


def test_errors_not_cached_unless_asked(tmp_path: Path) -> None:
    cache = RawCache(tmp_path / "c.sqlite")
    assert cache.put_many({_key(1): RawOutput(error="CUDA out of memory")}) == 0
    assert cache.get_many([_key(1)]) == {}
    cache.put_many({_key(1): RawOutput(error="not a single token")}, keep_errors=True)
    assert cache.get_many([_key(1)])[_key(1)].error == "not a single token"
    # replacing an entry keeps one row
    cache.put_many({_key(1): RawOutput(text="4", logprobs=None)})
    assert cache.get_many([_key(1)])[_key(1)].text == "4" and cache.count_raw() == 1


def test_many_keys_in_chunks(tmp_path: Path) -> None:
    cache = RawCache(tmp_path / "c.sqlite")
    outs = {_key(i): RawOutput(text="1") for i in range(1234)}
    cache.put_many(outs)
    assert len(cache.get_many(list(outs))) == 1234


def test_finished_images_and_runs(tmp_path: Path) -> None:
    cfg = {"model": "tiny", "standard": "word", "levels": 7, "aggregation": "paper"}
    key = run_key(cfg)
    assert key == run_key({**cfg, "aggregation": "code"})  # aggregation does not change model outputs
    assert key != run_key({**cfg, "levels": 5})
    cache = RawCache(tmp_path / "c.sqlite")
    cache.register_run(key, cfg)
    cache.put_image(key, "h1", json.dumps({"path": "a.jpg", "score": 3.0}), "a.jpg")
    cache.put_images(key, [("h2", "b.jpg", json.dumps({"path": "b.jpg", "score": 4.0}))])
    cache.put_image("other", "h3", "{}")
    assert cache.done(key) == {"h1", "h2"}
    assert json.loads(cache.get_image(key, "h2"))["score"] == 4.0
    assert cache.get_image(key, "h3") is None
    assert [h for h, _, _ in cache.images(key)] == ["h1", "h2"]
    assert cache.run_config(key) == cfg and key in cache.runs()


def test_image_hash(tmp_path: Path) -> None:
    f = tmp_path / "x.bin"
    f.write_bytes(b"pixels" * 1000)
    assert image_hash(f) == image_hash(str(f)) == image_hash(b"pixels" * 1000)
    assert image_hash(b"pixels") != image_hash(b"pixelz") and len(image_hash(b"")) == 32


def test_not_a_cache_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.sqlite"
    bad.write_bytes(b"this is not a database" * 100)
    with pytest.raises(CacheError, match="bad.sqlite"):
        RawCache(bad)


def test_two_connections_share_the_file(tmp_path: Path) -> None:
    a, b = RawCache(tmp_path / "c.sqlite"), RawCache(tmp_path / "c.sqlite")
    a.put_many({_key(1): RawOutput(text="5")})
    assert b.get_many([_key(1)])[_key(1)].text == "5"


WRITER = """
import sys
from dogiqa.backends.base import RawOutput
from dogiqa.cache import CacheKey, RawCache
cache = RawCache(sys.argv[1])
batch = 0
while True:
    outs = {
        CacheKey(f"img{batch}", (i, 0, i + 5, 5), "box", "tiny", "p", ("1", "2"), extra="x" * 200):
        RawOutput(text=str(batch), logprobs={str(j): -float(j + batch) for j in range(50)})
        for i in range(40)
    }
    cache.put_many(outs)
    cache.put_image("run", f"img{batch}", '{"batch": %d}' % batch)
    print(batch, flush=True)
    batch += 1
"""


def test_sigkill_mid_writes_loses_nothing_committed(tmp_path: Path) -> None:
    db = tmp_path / "cache.sqlite"
    script = tmp_path / "writer.py"
    script.write_text(textwrap.dedent(WRITER))
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    proc = subprocess.Popen([sys.executable, str(script), str(db)], stdout=subprocess.PIPE, env=env, text=True)
    committed = -1
    deadline = time.time() + 30
    try:
        while committed < 15 and time.time() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            committed = int(line)
    finally:
        os.kill(proc.pid, signal.SIGKILL)  # kill -9 while it keeps writing
        proc.wait()
        proc.stdout.close()
    assert proc.returncode == -signal.SIGKILL
    assert committed >= 15, "the writer did not get going"
    cache = RawCache(db)
    assert cache.integrity_ok()
    done = cache.done("run")
    assert {f"img{b}" for b in range(committed + 1)} <= done  # every batch reported committed is there
    for b in range(committed + 1):
        keys = [
            CacheKey(f"img{b}", (i, 0, i + 5, 5), "box", "tiny", "p", ("1", "2"), extra="x" * 200) for i in range(40)
        ]
        got = cache.get_many(keys)
        assert len(got) == 40 and all(o.text == str(b) and o.logprobs["3"] == -(3.0 + b) for o in got.values())
    # whatever happened after the last report, batches are all-or-nothing
    rows = sqlite3.connect(db).execute("SELECT image_hash, COUNT(*) FROM raw GROUP BY image_hash").fetchall()
    assert all(n == 40 for _, n in rows)
    cache.put_many({_key(1): RawOutput(text="1")})  # and the file is writable again
    assert cache.count_raw() == 40 * len(rows) + 1


def test_digest_keys_as_the_mllm_scorer_uses_them(tmp_path: Path) -> None:
    cache = RawCache(tmp_path / "c.sqlite")
    cache.put_many({"d1" * 32: RawOutput(text="3"), _key(1): RawOutput(text="4")})
    got = cache.get_many(["d1" * 32, _key(1).digest, "unknown"])
    assert got["d1" * 32].text == "3" and got[_key(1).digest].text == "4" and "unknown" not in got
