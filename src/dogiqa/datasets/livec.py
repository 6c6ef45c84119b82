"""LIVE In the Wild Image Quality Challenge (LIVE Challenge, "LIVEC"): MATLAB label files + images.

Labels: ``AllImages_release.mat`` (a 1169x1 cell of file names) and ``AllMOS_release.mat`` (1x1169 MOS,
0-100), in the same order. All 1,169 images are evaluated, including the 7 training images ``t1.bmp`` ..
``t7.bmp`` (as the paper and the authors' code do).

Name matching: the release mixes ``.bmp`` (e.g. ``100.bmp``) and ``.JPG`` (e.g. ``1000.JPG``, upper case)
files; names are kept exactly as in ``AllImages_release.mat``. On disk a file is found by its exact name,
else by the same name ignoring case. Predictions match by file name (see :mod:`dogiqa.datasets.base`).

Official layout::

    ChallengeDB_release/
      Data/AllImages_release.mat, AllMOS_release.mat
      Images/100.bmp ... 1000.JPG ...
      Images/trainingImages/t1.bmp ... t7.bmp
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from dogiqa.datasets.base import DatasetError, LabelledDataset, build, label_source

NAME = "livec"
NAMES_FILE, MOS_FILE = "AllImages_release.mat", "AllMOS_release.mat"
LABEL_DIRS = ["", "Data", "ChallengeDB_release/Data"]
IMAGE_DIRS = [
    "",
    "Images",
    "Images/trainingImages",
    "trainingImages",
    "ChallengeDB_release/Images",
    "ChallengeDB_release/Images/trainingImages",
]
MOS_RANGE = (0.0, 100.0)


def load(root: Path | str | None = None, labels: Path | str | None = None) -> LabelledDataset:
    """Load LIVE Challenge labels from the two .mat files (and images under ``root`` when given)."""
    folder = _label_folder(label_source("LIVE Challenge", root, labels))
    names = [str(x) for x in _mat_values(folder / NAMES_FILE, "AllImages_release")]
    mos = [float(x) for x in _mat_values(folder / MOS_FILE, "AllMOS_release")]
    if len(names) != len(mos):
        raise DatasetError(
            f"LIVE Challenge: {NAMES_FILE} lists {len(names)} images but {MOS_FILE} has {len(mos)} scores"
        )
    root_path = None if root is None else Path(root).expanduser()
    return build(NAME, zip(names, mos, strict=True), root_path, IMAGE_DIRS, MOS_RANGE, folder / MOS_FILE)


def _label_folder(path: Path) -> Path:
    """The folder holding both .mat files: ``path`` (or its parent for a file), or its Data/ sub-folder."""
    base = path.parent if path.is_file() else path
    for sub in LABEL_DIRS:
        folder = base / sub if sub else base
        if (folder / NAMES_FILE).is_file() and (folder / MOS_FILE).is_file():
            return folder
    where = "does not exist" if not path.exists() else "does not hold them"
    raise DatasetError(
        f"LIVE Challenge labels not found: {path} {where}. Expected {NAMES_FILE} and {MOS_FILE} in "
        + ", ".join(str(base / d) if d else str(base) for d in LABEL_DIRS)
    )


def _mat_values(path: Path, key: str) -> list:
    """The flattened contents of variable ``key`` in a MATLAB file (cells of strings or a numeric array)."""
    from scipy.io import loadmat

    try:
        data = loadmat(path)
    except (ValueError, NotImplementedError, OSError) as exc:  # v7.3 (HDF5) files raise NotImplementedError
        raise DatasetError(f"LIVE Challenge: cannot read {path} as a MATLAB file ({exc})") from None
    if key not in data:
        found = [k for k in data if not k.startswith("__")]
        raise DatasetError(f"LIVE Challenge: {path} has no variable {key!r} (found {found})")
    return list(_flatten(data[key]))


def _flatten(value: object):
    """Yield the scalars and strings of nested MATLAB cell/numeric arrays, in order."""
    if isinstance(value, np.ndarray):
        if value.dtype.kind in "US":
            yield str(value.item() if value.size == 1 else "".join(value.ravel().tolist()))
            return
        for v in value.ravel():
            yield from _flatten(v)
    elif isinstance(value, bytes):
        yield value.decode()
    else:
        yield value.item() if hasattr(value, "item") else value
