"""Dataset loaders: the real label files (when shared/ exists) and tiny fixtures in each official format."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from dogiqa.datasets import DatasetError, list_datasets, load_dataset
from dogiqa.datasets.base import LabelledDataset

# Image counts from the spec's table (§5), not from our code.
REAL_COUNTS = {"koniq": 10073, "spaq": 11125, "livec": 1169, "agiqa": 2982, "kadid": 10125}


@pytest.mark.parametrize("name", sorted(REAL_COUNTS))
def test_real_label_files(shared_labels: Path, name: str) -> None:
    ds = load_dataset(name, labels=shared_labels / name)
    assert len(ds) == REAL_COUNTS[name] == len(ds.labels)
    assert ds.labels_only and ds.missing == []
    assert all(it.path is None for it in ds.items)
    assert ds.higher_is_better  # KADID's dmos included
    lo, hi = ds.mos_range
    assert all(lo <= it.mos <= hi for it in ds.items)


def test_real_livec_details(shared_labels: Path) -> None:
    ds = load_dataset("livec", labels=shared_labels / "livec")
    names = ds.names
    assert [f"t{i}.bmp" for i in range(1, 8)] == [n for n in names if n.startswith("t")]
    suffixes = {n.rsplit(".", 1)[1] for n in names}
    assert suffixes == {"bmp", "JPG"}
    assert ds.match("/data/Images/1096.jpg") == "1096.JPG"


def test_real_spaq_and_kadid_first_rows(shared_labels: Path) -> None:
    # values read by eye from the files' first data rows
    spaq = load_dataset("spaq", labels=shared_labels / "spaq")
    assert spaq.items[0].name == "00001.jpg" and spaq.items[0].mos == pytest.approx(48.86)
    kadid = load_dataset("kadid10k", labels=shared_labels / "kadid" / "dmos.csv")
    assert kadid.items[0].name == "I01_01_01.png" and kadid.items[0].mos == pytest.approx(4.57)


FIXTURES = ["koniq_dir", "spaq_dir", "livec_dir", "agiqa_dir", "kadid_dir"]
NAMES = {
    "koniq_dir": "koniq",
    "spaq_dir": "spaq",
    "livec_dir": "livec",
    "agiqa_dir": "agiqa",
    "kadid_dir": "kadid",
}


@pytest.mark.parametrize("fixture", FIXTURES)
def test_official_layouts(fixture: str, request: pytest.FixtureRequest) -> None:
    root, mos = request.getfixturevalue(fixture)
    ds = load_dataset(NAMES[fixture], root=root)
    assert isinstance(ds, LabelledDataset)
    assert ds.names == list(mos)
    assert [it.mos for it in ds.items] == pytest.approx(list(mos.values()))
    assert all(it.path is not None and it.path.is_file() and it.path.name == it.name for it in ds.items)
    assert ds.missing == []


@pytest.mark.parametrize("fixture", FIXTURES)
def test_missing_images_are_reported(fixture: str, request: pytest.FixtureRequest) -> None:
    root, mos = request.getfixturevalue(fixture)
    gone = list(mos)[1]
    ds0 = load_dataset(NAMES[fixture], root=root)
    next(it.path for it in ds0.items if it.name == gone).unlink()
    ds = load_dataset(NAMES[fixture], root=root)
    assert ds.missing == [gone]
    assert gone not in ds.names and len(ds) == len(mos) - 1
    assert gone in ds.labels  # still a label: metrics see it as a missing prediction


@pytest.mark.parametrize("fixture", FIXTURES)
def test_labels_only_mode(fixture: str, request: pytest.FixtureRequest, tmp_path: Path) -> None:
    root, mos = request.getfixturevalue(fixture)
    ds = load_dataset(NAMES[fixture], labels=root)
    assert ds.labels_only and ds.names == list(mos)
    with pytest.raises(DatasetError, match="labels only"):
        ds.paths()


def test_spaq_xlsx_and_csv_export_agree(spaq_dir: tuple[Path, dict[str, float]], csv_writer) -> None:
    write_csv = csv_writer
    root, mos = spaq_dir
    rows = [[n, m, 1, 2, 3, 4, 5] for n, m in mos.items()]
    header = ["Image name", "MOS", "Brightness", "Colorfulness", "Contrast", "Noisiness", "Sharpness"]
    csv_file = write_csv(root / "export" / "MOS and Image attribute scores.csv", header, rows)
    from_xlsx = load_dataset("spaq", labels=root / "Annotations")
    from_csv = load_dataset("spaq", labels=csv_file)
    assert from_xlsx.label_file.suffix == ".xlsx" and from_csv.label_file.suffix == ".csv"
    assert from_xlsx.labels == from_csv.labels == pytest.approx(mos)


def test_livec_labels_in_data_folder_and_case_insensitive_files(
    livec_dir: tuple[Path, dict[str, float]],
) -> None:
    root, mos = livec_dir
    # a copy whose .JPG files were renamed to .jpg is still found
    (root / "Images" / "1000.JPG").rename(root / "Images" / "1000.jpg")
    ds = load_dataset("live-challenge", root=root, labels=root / "Data" / "AllMOS_release.mat")
    assert ds.missing == [] and ds.names == list(mos)
    assert {it.name: it.path.name for it in ds.items}["1000.JPG"] == "1000.jpg"
    assert next(it for it in ds.items if it.name == "t1.bmp").path.parent.name == "trainingImages"


def test_livec_wrong_mat_variable(tmp_path: Path) -> None:
    from scipy.io import savemat

    savemat(tmp_path / "AllImages_release.mat", {"Names": [1]})
    savemat(tmp_path / "AllMOS_release.mat", {"AllMOS_release": [[1.0]]})
    with pytest.raises(DatasetError, match="no variable 'AllImages_release'"):
        load_dataset("livec", labels=tmp_path)


def test_kadid_reference_not_labelled(kadid_dir: tuple[Path, dict[str, float]]) -> None:
    root, mos = kadid_dir
    ds = load_dataset("kadid", root=root)
    assert "I01.png" not in ds.names and len(ds) == len(mos)


def test_clear_error_when_labels_not_there(tmp_path: Path) -> None:
    with pytest.raises(DatasetError) as err:
        load_dataset("koniq", labels=tmp_path / "nowhere")
    assert "nowhere" in str(err.value) and "koniq10k_scores_and_distributions.csv" in str(err.value)
    with pytest.raises(DatasetError) as err:
        load_dataset("livec", labels=tmp_path)
    assert "AllImages_release.mat" in str(err.value) and "AllMOS_release.mat" in str(err.value)
    with pytest.raises(DatasetError, match="MOS and Image attribute scores.xlsx"):
        load_dataset("spaq", root=tmp_path)


def test_clear_error_when_image_folder_wrong(koniq_dir: tuple[Path, dict[str, float]], tmp_path: Path) -> None:
    root, _ = koniq_dir
    labels = root / "koniq10k_scores_and_distributions.csv"
    with pytest.raises(DatasetError, match="image folder not found"):
        load_dataset("koniq", root=tmp_path / "no-such-folder", labels=labels)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DatasetError, match=r"none of the 6 labelled images \(e\.g\. 1000\.jpg"):
        load_dataset("koniq", root=empty, labels=labels)


def test_bad_rows_and_columns(tmp_path: Path, csv_writer) -> None:
    write_csv = csv_writer
    write_csv(tmp_path / "data.csv", ["name", "quality"], [["a.jpg", 1.0]])
    with pytest.raises(DatasetError, match="no label column; expected one of \\['mos_quality'\\]"):
        load_dataset("agiqa", labels=tmp_path)
    write_csv(tmp_path / "dmos.csv", ["dist_img", "ref_img", "dmos"], [["a.png", "r.png", "n/a"]])
    with pytest.raises(DatasetError, match="row 2"):
        load_dataset("kadid", labels=tmp_path)
    write_csv(tmp_path / "labels.csv", ["name", "mos"], [["a.png", 1], ["a.png", 2]])
    with pytest.raises(DatasetError, match="labelled twice"):
        load_dataset("generic", labels=tmp_path / "labels.csv")
    (tmp_path / "broken.xlsx").write_bytes(b"not a zip")
    with pytest.raises(DatasetError, match="cannot read"):
        load_dataset("spaq", labels=tmp_path / "broken.xlsx")


def test_unknown_dataset_lists_choices() -> None:
    with pytest.raises(ValueError, match="koniq"):
        load_dataset("imagenet", labels=".")
    assert {"koniq", "spaq", "livec", "agiqa", "kadid", "generic", "meta-info"} <= set(list_datasets())


def test_generic_csv_and_folder(tmp_path: Path, csv_writer, image_writer) -> None:
    write_csv, write_image = csv_writer, image_writer
    write_csv(tmp_path / "labels.csv", ["name", "mos"], [["x.png", 3.5], ["y.jpg", 1.5], ["z.jpg", 2.0]])
    write_image(tmp_path / "images" / "x.png")
    write_image(tmp_path / "images" / "y.jpg")
    ds = load_dataset("csv", root=tmp_path)
    assert ds.names == ["x.png", "y.jpg"] and ds.missing == ["z.jpg"]
    assert ds.mos_range == (1.5, 3.5)


def test_pyiqa_meta_info(tmp_path: Path, csv_writer, image_writer) -> None:
    write_csv, write_image = csv_writer, image_writer
    # full-reference style: ref_name, dist_name, dmos, std
    fr = write_csv(
        tmp_path / "meta_info_KADID10kDataset.csv",
        ["ref_name", "dist_name", "dmos", "std"],
        [["I01.png", "I01_01_01.png", 4.5, 0.3], ["I01.png", "I01_01_02.png", 2.0, 0.3]],
    )
    ds = load_dataset("pyiqa", labels=fr)
    assert ds.labels == {"I01_01_01.png": 4.5, "I01_01_02.png": 2.0}
    # no-reference style with sub-folder names: first column the name, second the label
    nr = write_csv(
        tmp_path / "meta_info_X.csv",
        ["img", "quality", "split"],
        [["512x384/a.jpg", 1.0, 0], ["512x384/b.jpg", 2.0, 1]],
    )
    write_image(tmp_path / "root" / "512x384" / "a.jpg")
    ds = load_dataset("meta-info", root=tmp_path / "root", labels=nr)
    assert ds.names == ["512x384/a.jpg"] and ds.missing == ["512x384/b.jpg"]
    assert ds.match("/elsewhere/a.jpg") == "512x384/a.jpg"


def test_name_matching_rules() -> None:
    ds = LabelledDataset("t", None, [], labels={"1096.JPG": 1.0, "a.bmp": 2.0, "a.jpg": 3.0, "b.png": 4.0})
    assert ds.match("1096.JPG") == "1096.JPG"
    assert ds.match("C:\\data\\1096.jpg") == "1096.JPG"  # case and Windows separators
    assert ds.match("converted/1096.png") == "1096.JPG"  # unique stem
    assert ds.match("a.png") is None  # ambiguous stem: a.bmp or a.jpg
    assert ds.match("a.JPG") == "a.jpg"
    assert ds.match("c.png") is None


def test_copied_fixture_folder_is_independent(livec_dir: tuple[Path, dict[str, float]], tmp_path: Path) -> None:
    # labels and images in different places: labels from Data/, images from a copied Images/ folder
    root, mos = livec_dir
    shutil.copytree(root / "Images", tmp_path / "imgs")
    ds = load_dataset("livec", root=tmp_path / "imgs", labels=root / "Data")
    assert ds.missing == [] and len(ds) == len(mos)
