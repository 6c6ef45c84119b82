"""Labelled IQA datasets: what every loader returns, plus the shared helpers for finding files.

Name matching (used by every loader and by :mod:`dogiqa.evaluate`): a prediction matches a label when the
file names (the last path component) are equal; failing that, when they are equal ignoring case; failing that,
when the stems are equal ignoring case and that stem is unique in the dataset (so ``1096.JPG`` matches
``1096.jpg`` and ``images/1096.png``, but ``a.bmp`` never matches when both ``a.bmp`` and ``a.jpg`` exist).
"""

from __future__ import annotations

import csv
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp"}


class DatasetError(ValueError):
    """A label file or image folder is missing or malformed; the message says what was expected."""


class LabelItem(NamedTuple):
    """One labelled image. ``path`` is None in labels-only mode (no image folder given)."""

    name: str
    path: Path | None
    mos: float


@dataclass
class LabelledDataset:
    """A dataset's labels, optionally joined with its images on disk.

    ``items`` holds every labelled image whose file exists (all labels in labels-only mode);
    ``missing`` the names listed in the labels but absent on disk (never silently dropped: reported).
    ``labels`` maps every labelled name (found on disk or not) to its label, in label-file order: metrics
    compare predictions with labels, whatever is on disk.
    ``higher_is_better`` is the direction of the label (True for MOS, and for KADID's ``dmos``).
    """

    name: str
    root: Path | None
    items: list[LabelItem]
    missing: list[str] = field(default_factory=list)
    higher_is_better: bool = True
    mos_range: tuple[float, float] = (0.0, 1.0)
    label_file: Path | None = None
    labels: dict[str, float] = field(default_factory=dict)
    _index: dict | None = field(default=None, repr=False, compare=False)

    def __len__(self) -> int:
        return len(self.items)

    @property
    def labels_only(self) -> bool:
        return self.root is None

    def __post_init__(self) -> None:
        if not self.labels:
            self.labels = {it.name: it.mos for it in self.items}

    @property
    def names(self) -> list[str]:
        """Names of the items (the images to score)."""
        return [it.name for it in self.items]

    def mos_by_name(self) -> dict[str, float]:
        """Every labelled name -> label (including images missing on disk)."""
        return dict(self.labels)

    def paths(self) -> list[Path]:
        """Image paths of the items (raises in labels-only mode)."""
        if self.labels_only:
            raise DatasetError(
                f"dataset {self.name!r} was loaded from labels only: give the image folder (root)"
            )
        return [it.path for it in self.items if it.path is not None]

    def match(self, name: str) -> str | None:
        """The dataset name that a prediction's file name or path matches (see module docstring), or None."""
        if self._index is None:
            self._index = _build_index(list(self.labels))
        full, exact, lower, stems = self._index
        if name in full:
            return name
        base = _basename(name)
        for key, table in ((base, exact), (base.lower(), lower), (os.path.splitext(base)[0].lower(), stems)):
            if key in table:
                return table[key]
        return None


def _basename(name: str) -> str:
    return name.replace("\\", "/").rstrip("/").rsplit("/", 1)[-1]


def _unique(pairs: Iterable[tuple[str, str]]) -> dict[str, str]:
    """key -> value, dropping keys that map to more than one value (ambiguous keys match nothing)."""
    out: dict[str, str | None] = {}
    for key, value in pairs:
        out[key] = value if key not in out or out[key] == value else None
    return {k: v for k, v in out.items() if v is not None}


def _build_index(names: Sequence[str]) -> tuple[set[str], dict[str, str], dict[str, str], dict[str, str]]:
    bases = [(_basename(n), n) for n in names]
    exact = _unique(bases)
    lower = _unique((b.lower(), n) for b, n in bases)
    stems = _unique((os.path.splitext(b)[0].lower(), n) for b, n in bases)
    return set(names), exact, lower, stems


def find_label_file(dataset: str, labels: Path, candidates: Sequence[str]) -> Path:
    """``labels`` itself when it is a file, else the first of ``candidates`` (relative paths) inside it."""
    labels = Path(labels).expanduser()
    if labels.is_file():
        return labels
    if labels.is_dir():
        for rel in candidates:
            if (labels / rel).is_file():
                return labels / rel
    where = "does not exist" if not labels.exists() else "holds none of the expected files"
    raise DatasetError(
        f"{dataset} labels not found: {labels} {where}. Expected a label file, or a folder holding one of: "
        + ", ".join(candidates)
    )


def locate_images(
    dataset: str, root: Path, names: Sequence[str], subdirs: Sequence[str]
) -> tuple[dict[str, Path], list[str]]:
    """Find each labelled file under ``root`` (in ``root`` itself or one of ``subdirs``).

    Returns (name -> path for found files, missing names in label order). Raises DatasetError when the folder
    does not exist or holds none of the labelled images (almost surely the wrong folder).
    """
    root = Path(root).expanduser()
    if not root.is_dir():
        raise DatasetError(
            f"{dataset} image folder not found: {root}. Expected a folder holding the images directly or in "
            + ", ".join(f"{root}/{d}" for d in subdirs if d)
        )
    found: dict[str, Path] = {}
    for sub in subdirs:
        folder = root / sub if sub else root
        if not folder.is_dir():
            continue
        files = {e.name: Path(e.path) for e in os.scandir(folder) if e.is_file()}
        lower = {k.lower(): v for k, v in files.items()}
        for n in names:
            if n in found:
                continue
            if n in files:
                found[n] = files[n]
            elif n.lower() in lower:  # a copy whose extension case changed (e.g. .JPG -> .jpg)
                found[n] = lower[n.lower()]
            elif "/" in n and (folder / n).is_file():  # names with a sub-folder (pyiqa meta-info)
                found[n] = folder / n
    missing = [n for n in names if n not in found]
    if names and not found:
        shown = ", ".join(list(names)[:3])
        tried = ", ".join(str(root / d) if d else str(root) for d in subdirs)
        raise DatasetError(
            f"{dataset}: none of the {len(names)} labelled images (e.g. {shown}) were found; "
            f"looked in {tried}"
        )
    return found, missing


def build(
    dataset: str,
    rows: Iterable[tuple[str, float]],
    root: Path | None,
    subdirs: Sequence[str],
    mos_range: tuple[float, float],
    label_file: Path | None,
    higher_is_better: bool = True,
) -> LabelledDataset:
    """Join label rows with the images under ``root`` (labels-only when root is None)."""
    rows = list(rows)
    if not rows:
        raise DatasetError(f"{dataset}: the label file {label_file} holds no labelled images")
    seen: set[str] = set()
    for name, _ in rows:
        if name in seen:
            raise DatasetError(f"{dataset}: image {name!r} is labelled twice in {label_file}")
        seen.add(name)
    if root is None:
        items = [LabelItem(n, None, m) for n, m in rows]
        return LabelledDataset(dataset, None, items, [], higher_is_better, mos_range, label_file, dict(rows))
    found, missing = locate_images(dataset, Path(root), [n for n, _ in rows], subdirs)
    items = [LabelItem(n, found[n], m) for n, m in rows if n in found]
    return LabelledDataset(
        dataset, Path(root), items, missing, higher_is_better, mos_range, label_file, dict(rows)
    )


def read_csv_columns(
    dataset: str, path: Path, name_cols: Sequence[str], mos_cols: Sequence[str]
) -> list[tuple[str, float]]:
    """(name, mos) rows of a CSV with a header; of each candidate column list the first present is used."""
    with open(path, newline="", encoding="utf-8-sig") as f:
        reader = csv.reader(f)
        header = next(reader, None)
        if header is None:
            raise DatasetError(f"{dataset}: {path} is empty")
        return rows_from_table(dataset, path, header, reader, name_cols, mos_cols)


def rows_from_table(
    dataset: str,
    path: Path,
    header: Sequence[object],
    rows: Iterable[Sequence[object]],
    name_cols: Sequence[str],
    mos_cols: Sequence[str],
) -> list[tuple[str, float]]:
    """Pick the name and label columns by header (case-insensitive) and parse every non-empty row."""
    cols = [str(h).strip().lower() if h is not None else "" for h in header]
    ni = _column(dataset, path, cols, name_cols, "image name")
    mi = _column(dataset, path, cols, mos_cols, "label")
    out: list[tuple[str, float]] = []
    for lineno, row in enumerate(rows, start=2):
        if not row or all(c is None or str(c).strip() == "" for c in row):
            continue
        try:
            name, value = str(row[ni]).strip(), float(row[mi])
        except (IndexError, TypeError, ValueError) as exc:
            raise DatasetError(f"{dataset}: {path} row {lineno}: cannot read name/label ({exc})") from None
        out.append((name, value))
    return out


def _column(dataset: str, path: Path, cols: list[str], wanted: Sequence[str], what: str) -> int:
    for w in wanted:
        if w.lower() in cols:
            return cols.index(w.lower())
    raise DatasetError(
        f"{dataset}: {path} has no {what} column; expected one of {list(wanted)}, found {cols}"
    )


def mos_span(rows: Sequence[tuple[str, float]]) -> tuple[float, float]:
    values = [m for _, m in rows]
    return (min(values), max(values))


def label_source(dataset: str, root: Path | str | None, labels: Path | str | None) -> Path:
    """Where to look for labels: ``labels`` when given, else the dataset root."""
    if labels is None and root is None:
        raise DatasetError(f"{dataset}: give the label file (labels=...) or the dataset folder (root=...)")
    return Path(labels if labels is not None else root).expanduser()
