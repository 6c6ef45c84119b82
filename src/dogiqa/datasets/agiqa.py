"""AGIQA-3k: ``data.csv`` (image ``name``, label ``mos_quality``) + the image folder.

Official layout (the release's image folder and CSV; the images may also sit in ``images/``)::

    AGIQA-3K/
      data.csv
      AttnGAN_normal_000.jpg ...
"""

from __future__ import annotations

from pathlib import Path

from dogiqa.datasets.base import LabelledDataset, build, find_label_file, label_source, read_csv_columns

NAME = "agiqa"
LABEL_FILES = ["data.csv", "AGIQA-3K/data.csv"]
IMAGE_DIRS = ["", "images", "image", "AGIQA-3K", "AGIQA-3k"]
MOS_RANGE = (0.0, 5.0)


def load(root: Path | str | None = None, labels: Path | str | None = None) -> LabelledDataset:
    """Load AGIQA-3k quality labels (and images under ``root`` when given)."""
    label_file = find_label_file("AGIQA-3k", label_source("AGIQA-3k", root, labels), LABEL_FILES)
    rows = read_csv_columns("AGIQA-3k", label_file, ["name"], ["mos_quality"])
    return build(
        NAME, rows, None if root is None else Path(root).expanduser(), IMAGE_DIRS, MOS_RANGE, label_file
    )
