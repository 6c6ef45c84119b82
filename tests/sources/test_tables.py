"""Parquet and Arrow tables: image bytes or the Hugging Face struct, key and pass-through columns."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from dogiqa.sources import SourceError, SourceOptions, open_sources, plan_units, read_unit
from dogiqa.testing.collections import encode, image_rows


def test_hf_struct_column_keys_and_kept_columns(tmp_path, piqe):
    table = tmp_path / "t.parquet"
    pq.write_table(pa.Table.from_pylist(image_rows(7, corrupt=[2])), table, row_group_size=3)
    items = list(open_sources([table], SourceOptions(keep_columns=("caption", "url"))))
    assert [it.key for it in items] == [f"img-{i:05d}" for i in range(7)]  # the `id` column, detected
    assert all(it.source == str(table) for it in items)
    assert items[5].columns == {"caption": "caption 5", "url": "https://example.org/5.png"}
    results = list(piqe.score_many(items))
    assert [r.ok for r in results] == [i != 2 for i in range(7)]
    assert "t.parquet#img-00002" in results[2].error and len(results[2].error) < 200
    assert results[4].columns["caption"] == "caption 4"
    assert results[4].score == pytest.approx(piqe.score(encode(4)).score)


def test_plain_bytes_column_row_numbers_and_arrow_files(tmp_path):
    data = {"jpg": [encode(i) for i in range(5)], "note": list("abcde")}
    pq.write_table(pa.table(data), tmp_path / "b.parquet")
    items = list(open_sources([tmp_path / "b.parquet"]))
    assert [it.key for it in items] == ["0", "1", "2", "3", "4"] and items[1].image == data["jpg"][1]
    table = pa.table(data)
    with pa.ipc.new_file(tmp_path / "f.arrow", table.schema) as w:  # Arrow IPC file
        w.write_table(table, max_chunksize=2)
    with pa.ipc.new_stream(tmp_path / "s.arrow", table.schema) as w:  # Arrow IPC stream (save_to_disk's)
        w.write_table(table, max_chunksize=2)
    for name in ("f.arrow", "s.arrow"):
        got = list(open_sources([tmp_path / name], SourceOptions(key_column="note")))
        assert [it.key for it in got] == list("abcde") and got[4].image == data["jpg"][4]


def test_listing_of_paths_is_files(tmp_path, sample_images_dir):
    names = sorted(p.name for p in sample_images_dir.iterdir())
    pq.write_table(pa.table({"path": [str(sample_images_dir / n) for n in names]}), tmp_path / "list.parquet")
    items = list(open_sources([tmp_path / "list.parquet"]))
    assert [it.key for it in items] == [str((sample_images_dir / n).resolve()) for n in names]
    assert all(it.source is None for it in items)  # same identity as the files scored from the folder
    folder = {it.key for it in open_sources([sample_images_dir])}
    assert folder == {it.key for it in items}


@pytest.mark.parametrize(
    "options, setting, words",
    [
        (SourceOptions(image_column="picture"), "--image-column", "no column 'picture'"),
        (SourceOptions(key_column="uid"), "--key-column", "no column 'uid'"),
        (SourceOptions(keep_columns=("width",)), "--keep-columns", "no column 'width'"),
        (SourceOptions(keep_columns=("thumb",)), "--keep-columns", "binary"),
        (SourceOptions(image_column="caption"), "--image-column", None),  # text, but not paths: files missing
    ],
)
def test_bad_columns_are_usage_errors(tmp_path, options, setting, words):
    rows = [{"image": encode(0), "thumb": b"x", "caption": "c"}]
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "t.parquet")
    if words is None:  # a text column is taken as paths: each row is a missing file, an error record
        items = list(open_sources([tmp_path / "t.parquet"], options))
        assert items[0].key.endswith("c") and str(items[0].image).endswith("c")
        return
    with pytest.raises(SourceError, match=words) as info:
        list(open_sources([tmp_path / "t.parquet"], options))
    assert info.value.setting == setting
    if "no column" in words:
        assert "columns: image, thumb, caption" in str(info.value)  # the columns there are listed


def test_undetectable_or_ambiguous_image_column(tmp_path):
    pq.write_table(pa.table({"caption": ["a"], "n": [1]}), tmp_path / "none.parquet")
    with pytest.raises(SourceError, match="no image column found"):
        list(open_sources([tmp_path / "none.parquet"]))
    pq.write_table(pa.table({"a": [b"1"], "b": [b"2"]}), tmp_path / "two.parquet")
    with pytest.raises(SourceError, match="several binary columns"):
        list(open_sources([tmp_path / "two.parquet"]))


def test_duplicate_and_null_keys_and_null_images(tmp_path, piqe):
    rows = [{"key": k, "image": encode(i) if i != 3 else None} for i, k in enumerate(["x", "y", "x", "z", None])]
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "d.parquet")
    items = list(open_sources([tmp_path / "d.parquet"]))
    assert [it.key for it in items] == ["x", "y", "x", "z", "4"]  # a null key falls back to the row number
    assert "duplicate key 'x'" in items[2].error and "has no image" in items[3].error
    assert [r.ok for r in piqe.score_many(items)] == [True, True, False, False, True]


def test_rows_are_read_in_batches(tmp_path, monkeypatch):
    """Memory stays flat: rows come from Parquet row batches, never the whole table."""
    import dogiqa.sources.tables as tables

    n = 3 * tables.BATCH_ROWS + 5
    pq.write_table(pa.table({"image": [encode(i % 3) for i in range(n)]}), tmp_path / "big.parquet")
    sizes: list[int] = []
    real = tables.rows_to_items

    def spy(batches, *args, **kwargs):
        def counted():
            for b in batches:
                sizes.append(b.num_rows)
                yield b
        return real(counted(), *args, **kwargs)

    monkeypatch.setattr(tables, "rows_to_items", spy)
    keys = [it.key for it in open_sources([tmp_path / "big.parquet"])]
    assert keys == [str(i) for i in range(n)]
    assert max(sizes) <= tables.BATCH_ROWS and len(sizes) >= 4


def test_units_cover_every_row_group_once(tmp_path):
    table = tmp_path / "t.parquet"
    pq.write_table(pa.Table.from_pylist(image_rows(7)), table, row_group_size=3)
    units = plan_units([table])
    assert [u.keys for u in units] == [[f"img-{i:05d}" for i in r] for r in (range(3), range(3, 6), range(6, 7))]
    units[1].skip = ["img-00004"]
    assert [it.key for it in read_unit(units[1])] == ["img-00003", "img-00005"]


def test_keys_without_key_column_in_row_groups(tmp_path: Path):
    pq.write_table(pa.table({"image": [encode(i) for i in range(5)]}), tmp_path / "r.parquet", row_group_size=2)
    units = plan_units([tmp_path / "r.parquet"])
    assert [u.keys for u in units] == [["0", "1"], ["2", "3"], ["4"]]
    assert [it.key for u in units for it in read_unit(u)] == ["0", "1", "2", "3", "4"]
