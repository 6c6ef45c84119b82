"""SPAQ: ``Annotations/MOS and Image attribute scores.xlsx`` (or its .csv export) + ``TestImage/``.

Columns ``Image name`` and ``MOS`` (0-100). The official release ships the .xlsx (read with openpyxl); a
.csv export with the same columns is read as well.

Official layout::

    SPAQ/
      Annotations/MOS and Image attribute scores.xlsx
      TestImage/00001.jpg ...
"""

from __future__ import annotations

from pathlib import Path

from dogiqa.datasets.base import (
    DatasetError,
    LabelledDataset,
    build,
    find_label_file,
    label_source,
    read_csv_columns,
    rows_from_table,
)

NAME = "spaq"
_STEM = "MOS and Image attribute scores"
LABEL_FILES = [f"{d}{_STEM}.{ext}" for d in ("", "Annotations/") for ext in ("xlsx", "csv")]
IMAGE_DIRS = ["", "TestImage", "testImage", "images"]
MOS_RANGE = (0.0, 100.0)
NAME_COLS, MOS_COLS = ["Image name", "image_name", "name"], ["MOS"]


def load(root: Path | str | None = None, labels: Path | str | None = None) -> LabelledDataset:
    """Load SPAQ labels from the .xlsx or .csv (and images under ``root`` when given)."""
    label_file = find_label_file("SPAQ", label_source("SPAQ", root, labels), LABEL_FILES)
    if label_file.suffix.lower() in {".xlsx", ".xlsm"}:
        rows = read_xlsx(label_file)
    else:
        rows = read_csv_columns("SPAQ", label_file, NAME_COLS, MOS_COLS)
    return build(
        NAME, rows, None if root is None else Path(root).expanduser(), IMAGE_DIRS, MOS_RANGE, label_file
    )


def read_xlsx(path: Path) -> list[tuple[str, float]]:
    """(name, MOS) rows of the first worksheet of the official .xlsx."""
    from openpyxl import load_workbook

    try:
        book = load_workbook(path, read_only=True, data_only=True)
    except Exception as exc:  # openpyxl raises several types for a broken file
        raise DatasetError(f"SPAQ: cannot read {path} as an .xlsx workbook ({exc})") from None
    try:
        rows = book.worksheets[0].iter_rows(values_only=True)
        header = next(rows, None)
        if header is None:
            raise DatasetError(f"SPAQ: {path} has an empty first worksheet")
        return rows_from_table("SPAQ", path, header, rows, NAME_COLS, MOS_COLS)
    finally:
        book.close()
