"""KonIQ-10k: ``koniq10k_scores_and_distributions.csv`` (column ``MOS``, 1-5) + the ``1024x768/`` images.

Official layout::

    koniq10k/
      koniq10k_scores_and_distributions.csv
      1024x768/10004473376.jpg ...        (or 512x384/, or the images directly in the folder)
"""

from __future__ import annotations

from pathlib import Path

from dogiqa.datasets.base import LabelledDataset, build, find_label_file, label_source, read_csv_columns

NAME = "koniq"
LABEL_FILES = [
    "koniq10k_scores_and_distributions.csv",
    "koniq10k_scores_and_distributions/koniq10k_scores_and_distributions.csv",
]
IMAGE_DIRS = ["", "1024x768", "koniq10k_1024x768/1024x768", "512x384", "images"]
MOS_RANGE = (1.0, 5.0)


def load(root: Path | str | None = None, labels: Path | str | None = None) -> LabelledDataset:
    """Load KonIQ-10k labels (and images under ``root`` when given)."""
    label_file = find_label_file("KonIQ-10k", label_source("KonIQ-10k", root, labels), LABEL_FILES)
    rows = read_csv_columns("KonIQ-10k", label_file, ["image_name"], ["MOS"])
    return build(
        NAME, rows, None if root is None else Path(root).expanduser(), IMAGE_DIRS, MOS_RANGE, label_file
    )
