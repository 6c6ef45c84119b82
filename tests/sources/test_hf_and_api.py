"""The Python API with real Hugging Face datasets and in-memory inputs: a stable key, never a repr of bytes."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from dogiqa.sources import SourceOptions, as_items, from_dataset, open_sources
from dogiqa.testing.collections import encode, image_rows

datasets = pytest.importorskip("datasets", reason="the datasets extra: pip install -e .[datasets]")


def make_dataset(n: int = 5, corrupt=(3,)):
    rows = image_rows(n, corrupt=corrupt)
    features = datasets.Features(
        {"id": datasets.Value("string"), "image": datasets.Image(decode=False),
         "caption": datasets.Value("string"), "url": datasets.Value("string")}
    )  # fmt: skip
    return datasets.Dataset.from_list(rows, features=features)


@pytest.mark.parametrize("decode", [True, False])
def test_score_many_on_a_dataset(piqe, decode):
    ds = make_dataset()
    ds = ds.cast_column("image", datasets.Image(decode=decode))
    results = list(piqe.score_many(ds))
    assert [r.key for r in results] == [f"img-{i:05d}" for i in range(5)]
    assert [r.ok for r in results] == [True, True, True, False, True]
    assert "img-00003" in results[3].error and len(results[3].error) < 200
    assert results[1].score == pytest.approx(piqe.score(encode(1)).score)
    # the column the user asks for, with its values
    kept = list(piqe.score_many(from_dataset(ds, keep_columns=["caption"])))
    assert kept[2].columns == {"caption": "caption 2"}


def test_score_many_on_rows_of_a_dataset(piqe):
    """``ds["image"]`` (decoded PIL images) and rows as dicts, as a new user passes them."""
    ds = make_dataset(corrupt=())
    decoded = ds.cast_column("image", datasets.Image())
    by_pil = list(piqe.score_many(decoded["image"]))
    assert [r.key for r in by_pil] == ["0", "1", "2", "3", "4"] and all(r.ok for r in by_pil)
    by_row = list(piqe.score_many(iter(ds)))  # dicts with {bytes, path} under "image", keys under "id"
    assert [r.key for r in by_row] == [f"img-{i:05d}" for i in range(5)]
    assert [r.score for r in by_row] == pytest.approx([r.score for r in by_pil])


def test_bytes_and_images_have_short_names(piqe):
    png = encode(7)
    results = list(piqe.score_many([png, bytearray(b"junk"), Image.open(io.BytesIO(png)), 42]))
    assert [r.key for r in results] == ["0", "1", "2", "3"]
    assert [r.ok for r in results] == [True, False, True, False]
    assert all(len(r.path) < 40 and len(r.error or "") < 200 for r in results)
    assert "int" in results[3].error
    assert results[0].score == pytest.approx(results[2].score)


def test_save_to_disk_and_load_dataset_files(tmp_path, piqe):
    ds = make_dataset()
    ds.save_to_disk(str(tmp_path / "saved"))
    opts = SourceOptions(keep_columns=("url",))
    saved = list(open_sources([str(tmp_path / "saved")], opts))  # detected as a saved dataset
    assert [it.key for it in saved] == [f"img-{i:05d}" for i in range(5)]
    assert saved[0].source == f"hf:{(tmp_path / 'saved').resolve()}" and saved[0].columns["url"].endswith("0.png")
    dd = datasets.DatasetDict({"train": ds, "test": ds.select(range(2))})
    dd.save_to_disk(str(tmp_path / "dd"))
    assert len(list(open_sources([f"hf:{tmp_path / 'dd'}:test"]))) == 2
    assert len(list(open_sources([f"hf:{tmp_path / 'dd'}"]))) == 5  # train by default
    ds.to_parquet(str(tmp_path / "files" / "part.parquet"))
    loaded = list(open_sources([f"hf:{tmp_path / 'files'}"]))  # datasets.load_dataset on local files
    assert [it.key for it in loaded] == [f"img-{i:05d}" for i in range(5)]
    results = list(piqe.score_many(loaded))
    assert [r.ok for r in results] == [True, True, True, False, True]


def test_mixed_python_inputs(tmp_path, sample_images_dir):
    path = sorted(sample_images_dir.iterdir())[0]
    items = list(as_items([str(path), {"bytes": encode(1), "path": "x.png"}, {"caption": "no image"}]))
    assert items[0].key == str(path.resolve())
    assert items[1].image == encode(1) and items[1].key == "1"
    assert "no image in the row (fields: caption)" in items[2].error
