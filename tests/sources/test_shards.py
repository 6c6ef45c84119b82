"""WebDataset shards: one record per sample, keyed by the sample key; damage becomes error records."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import pytest

from dogiqa.sources import SourceError, SourceOptions, open_sources
from dogiqa.sources.shards import expand_shards, iter_shard, shard_keys
from dogiqa.testing.collections import encode, sample_key


def test_samples_keys_sources_and_a_corrupt_member(shards, piqe):
    items = list(open_sources([str(shards[0].parent / "data-{000000..000002}.tar")]))
    assert [it.key for it in items] == [sample_key(i) for i in range(10)]
    assert [it.source for it in items] == [str(shards[i // 4]) for i in range(10)]
    results = list(piqe.score_many(items))
    assert [r.ok for r in results] == [i != 3 for i in range(10)]
    bad = results[3]
    assert bad.key == sample_key(3) and bad.source == str(shards[0])
    assert "data-000000.tar#00000003.jpg" in bad.error and "not an image" in bad.error
    assert all(len(r.path) < 200 and "\\x" not in r.path for r in results)  # never a repr of bytes
    # the image member really is the one scored: the same bytes on their own give the same score
    alone = piqe.score(encode(4, fmt="PNG"))
    assert results[4].score == pytest.approx(alone.score)


def test_globs_braces_and_missing_patterns(shards):
    folder = shards[0].parent
    assert expand_shards(str(folder / "*.tar")) == [str(s) for s in shards]
    assert expand_shards(str(folder / "data-{000001..000002}.tar")) == [str(s) for s in shards[1:]]
    with pytest.raises(SourceError, match="no shard matches"):
        expand_shards(str(folder / "other-*.tar"))
    missing = list(open_sources([str(folder / "absent.tar")]))
    assert len(missing) == 1 and "shard not found" in missing[0].error


def test_truncated_shard_keeps_what_was_readable(shards):
    data = shards[0].read_bytes()
    with tarfile.open(shards[0]) as tar:
        cut = tar.getmembers()[7].offset_data + 10  # inside sample 2's json member
    bad = shards[0].with_name("cut.tar")
    bad.write_bytes(data[:cut])
    items = list(iter_shard(bad))
    assert [it.key for it in items] == [sample_key(i) for i in range(3)]
    assert [it.error is None for it in items] == [True, True, False]
    assert "cut.tar" in items[2].error and "truncated" in items[2].error
    assert shard_keys(bad) == [it.key for it in items]  # planning sees the same items as scoring


def _tar(path: Path, members: list[tuple[str, bytes]]) -> Path:
    with tarfile.open(path, "w") as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def test_duplicate_keys_missing_image_member_and_member_choice(tmp_path, piqe):
    png = encode(1)
    shard = _tar(tmp_path / "odd.tar", [
        ("a.png", png), ("a.txt", b"first"),
        ("b.txt", b"no image here"),
        ("a.png", png),  # key 'a' again, not adjacent: a duplicate sample
        ("c.seg.png", encode(2)), ("c.jpg", encode(3, fmt="JPEG")),
    ])  # fmt: skip
    items = list(open_sources([str(shard)], SourceOptions(keep_columns=("txt",))))
    assert [it.key for it in items] == ["a", "b", "a", "c"]
    assert items[0].columns == {"txt": "first"} and items[0].error is None
    assert "lacks an image member (members: txt)" in items[1].error
    assert "duplicate key 'a'" in items[2].error
    assert items[3].path.endswith("c.seg.png")  # the first image member
    chosen = list(iter_shard(shard, image_ext="jpg"))
    assert chosen[-1].path.endswith("c.jpg") and "a .jpg member" in chosen[0].error
    results = list(piqe.score_many(items))
    assert [r.ok for r in results] == [True, False, False, True]


def test_skip_passes_over_finished_samples(shards):
    got = [it.key for it in iter_shard(shards[1], skip={sample_key(5), sample_key(6)})]
    assert got == [sample_key(4), sample_key(7)]
