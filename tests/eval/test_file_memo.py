"""The cache's (resolved path, size, mtime_ns) -> content hash memo: resuming does not read unchanged files."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from dogiqa import cache as cache_mod
from dogiqa.cache import RawCache, image_hash
from dogiqa.datasets import load_dataset
from dogiqa.results import ImageResult
from dogiqa.runners.evaluation import run_eval


def test_unchanged_files_are_not_read_again_and_changed_ones_are(tmp_path: Path, image_writer, monkeypatch) -> None:
    files = [image_writer(tmp_path / f"{i}.png", value=40 * i) for i in range(4)]
    cache = RawCache(tmp_path / "c.sqlite")
    first = cache.file_hashes([*files, tmp_path / "missing.png", tmp_path, None])
    assert first == [image_hash(f) for f in files] + [None, None, None]

    read: list[str] = []
    real = cache_mod.image_hash
    monkeypatch.setattr(cache_mod, "image_hash", lambda p: read.append(str(p)) or real(p))
    # same files, reached through another spelling of the path: the resolved path is the key
    again = RawCache(tmp_path / "c.sqlite").file_hashes([tmp_path / "sub" / ".." / f.name for f in files])
    assert again == first[:4] and read == []

    image_writer(files[1], value=250)  # new content (and size/mtime)
    st = files[2].stat()
    os.utime(files[2], ns=(st.st_atime_ns, st.st_mtime_ns + 5_000_000_000))  # touched only
    changed = cache.file_hashes(files)
    assert sorted(Path(p).name for p in read) == ["1.png", "2.png"]
    assert changed[1] == real(files[1]) != first[1] and changed[2] == first[2] and changed[0] == first[0]


def test_a_finished_eval_resumes_without_reading_any_image(koniq_like: Path, tmp_path: Path, monkeypatch) -> None:
    ds = load_dataset("koniq", root=koniq_like)
    cache = RawCache(tmp_path / "c.sqlite")
    request = {"scorer": "fixed"}

    class Fixed:
        """Finishes every image with a score from its file name (no model)."""

        scorer = type("S", (), {"higher_is_better": True})()
        config: dict = {}

        def score_many(self, paths):
            return [ImageResult(path=str(p), score=float(Path(p).stem[-1]), global_score=1.0) for p in paths]

    first = run_eval(ds, Fixed, cache, request)
    assert first.scored == len(ds.items) > 0

    def no_reading(path):
        raise AssertionError(f"{path} was read again")

    monkeypatch.setattr(cache_mod, "image_hash", no_reading)
    resumed = run_eval(ds, lambda: pytest.fail("nothing is left to score"), cache, request)
    assert resumed.resumed == len(ds.items) and [r.score for r in resumed.records] == [r.score for r in first.records]


@pytest.fixture
def koniq_like(tmp_path: Path, image_writer, csv_writer) -> Path:
    root = tmp_path / "koniq10k"
    rows = []
    for i in range(5):
        image_writer(root / "1024x768" / f"10{i}.jpg", value=30 * i)
        rows.append([f"10{i}.jpg", 0, 0, 0, 0, 0, 0, 1.0 + i, 0.5, 50.0])
    header = ["image_name", "c1", "c2", "c3", "c4", "c5", "c_total", "MOS", "SD", "MOS_zscore"]
    csv_writer(root / "koniq10k_scores_and_distributions.csv", header, rows, quote_all=True)
    return root
