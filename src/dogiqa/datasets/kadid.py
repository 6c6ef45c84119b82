"""KADID-10k: ``dmos.csv`` (``dist_img``, ``dmos``) + ``images/``.

Despite its name, KADID's ``dmos`` is higher-is-better (1 = bad .. 5 = excellent, like a MOS), so it is
used as is. Only the distorted images (``dist_img``) are labelled; the 81 references are not part of the test.

Official layout::

    kadid10k/
      dmos.csv
      images/I01_01_01.png ...
"""

from __future__ import annotations

from pathlib import Path

from dogiqa.datasets.base import LabelledDataset, build, find_label_file, label_source, read_csv_columns

NAME = "kadid"
LABEL_FILES = ["dmos.csv", "kadid10k/dmos.csv"]
IMAGE_DIRS = ["", "images", "kadid10k/images"]
MOS_RANGE = (1.0, 5.0)


def load(root: Path | str | None = None, labels: Path | str | None = None) -> LabelledDataset:
    """Load KADID-10k labels (and images under ``root`` when given)."""
    label_file = find_label_file("KADID-10k", label_source("KADID-10k", root, labels), LABEL_FILES)
    rows = read_csv_columns("KADID-10k", label_file, ["dist_img"], ["dmos"])
    root_path = None if root is None else Path(root).expanduser()
    return build(NAME, rows, root_path, IMAGE_DIRS, MOS_RANGE, label_file, higher_is_better=True)
