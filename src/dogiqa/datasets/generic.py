"""Any dataset: a CSV of ``name,mos`` + an image folder; and pyiqa-style meta-info CSVs.

Generic CSV: a header with a name column (``name``, ``image``, ``image_name``, ``filename`` or ``file``) and a
label column (``mos``, ``score``, ``dmos`` or ``label``); names are file names relative to the image folder.

pyiqa meta-info CSV (``meta_info_<Dataset>.csv`` of IQA-PyTorch): a header; for full-reference sets the
distorted image is ``dist_name`` and the label is ``dmos``/``mos``/``score``; otherwise the first column is
the image name and the second the label. Names may include a sub-folder (``1024x768/xyz.jpg``).
"""

from __future__ import annotations

import csv
from pathlib import Path

from dogiqa.datasets.base import DatasetError, LabelledDataset, build, mos_span, read_csv_columns

NAME_COLS = ["name", "image", "image_name", "filename", "file"]
MOS_COLS = ["mos", "score", "dmos", "label"]
META_NAME_COLS = ["dist_name", "dist_img", "img_name", "image_name", "img_path", "name"]
META_MOS_COLS = ["mos", "dmos", "score", "mos_quality", "elo_score"]


def load(
    root: Path | str | None = None, labels: Path | str | None = None, higher_is_better: bool = True
) -> LabelledDataset:
    """A generic ``name,mos`` CSV (``labels``, or ``root/labels.csv``) joined with images under ``root``."""
    label_file = _csv_path("generic", root, labels, ["labels.csv", "mos.csv"])
    rows = read_csv_columns("generic", label_file, NAME_COLS, MOS_COLS)
    root_path = None if root is None else Path(root).expanduser()
    return build("generic", rows, root_path, ["", "images"], mos_span(rows), label_file, higher_is_better)


def load_meta_info(
    root: Path | str | None = None, labels: Path | str | None = None, higher_is_better: bool = True
) -> LabelledDataset:
    """A pyiqa-style meta-info CSV (``labels``) joined with images under ``root``."""
    label_file = _csv_path("pyiqa meta-info", root, labels, [])
    with open(label_file, newline="", encoding="utf-8-sig") as f:
        header = next(csv.reader(f), None) or []
    cols = [h.strip().lower() for h in header]
    name_cols = [c for c in META_NAME_COLS if c in cols] or cols[:1]
    mos_cols = [c for c in META_MOS_COLS if c in cols] or cols[1:2]
    if not name_cols or not mos_cols:
        raise DatasetError(
            f"pyiqa meta-info: {label_file} needs a header with an image name and a label column"
        )
    rows = read_csv_columns("pyiqa meta-info", label_file, name_cols, mos_cols)
    root_path = None if root is None else Path(root).expanduser()
    return build("meta-info", rows, root_path, [""], mos_span(rows), label_file, higher_is_better)


def _csv_path(what: str, root: Path | str | None, labels: Path | str | None, defaults: list[str]) -> Path:
    if labels is not None:
        path = Path(labels).expanduser()
        if path.is_file():
            return path
        for name in defaults:
            if (path / name).is_file():
                return path / name
        raise DatasetError(f"{what}: label CSV not found at {path} (expected a .csv file with a header)")
    if root is not None:
        for name in defaults:
            if (Path(root) / name).is_file():
                return Path(root) / name
    raise DatasetError(
        f"{what}: give the label CSV with labels=... (or put one of {defaults or ['<file>.csv']} in root)"
    )
