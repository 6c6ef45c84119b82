"""Fixtures for the evaluation tests: the shared label files (when present) and tiny datasets written in
each dataset's official layout and file format."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

REPO = Path(__file__).resolve().parents[2]
SHARED = (REPO / ".." / "shared").resolve()
LABELS = SHARED / "iqa-labels"
REFERENCE = SHARED / "reference" / "livec-global-only-dogiqa.json"


def write_image(path: Path, value: int = 128, size: tuple[int, int] = (8, 6)) -> Path:
    """A tiny solid-colour image in the format its suffix names."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fmt = {".jpg": "JPEG", ".jpeg": "JPEG", ".png": "PNG", ".bmp": "BMP"}[path.suffix.lower()]
    Image.new("RGB", size, (value, 255 - value, value // 2)).save(path, format=fmt)
    return path


def write_csv(path: Path, header: list[str], rows: list[list[object]], quote_all: bool = False) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f, quoting=csv.QUOTE_NONNUMERIC if quote_all else csv.QUOTE_MINIMAL)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def mos_values(n: int, lo: float, hi: float, seed: int = 0) -> list[float]:
    return [round(float(v), 4) for v in np.random.default_rng(seed).uniform(lo, hi, n)]


@pytest.fixture
def image_writer():
    """``write_image(path, value=128, size=(8, 6))``: a tiny solid-colour image."""
    return write_image


@pytest.fixture
def csv_writer():
    """``write_csv(path, header, rows)``."""
    return write_csv


@pytest.fixture
def shared_labels() -> Path:
    if not LABELS.is_dir():
        pytest.skip(f"shared label files not found at {LABELS} (CI keeps shared/ next to the clone)")
    return LABELS


@pytest.fixture
def reference_json() -> Path:
    if not REFERENCE.is_file() or not (LABELS / "livec").is_dir():
        pytest.skip(f"reference predictions or LIVEC labels not found under {SHARED}")
    return REFERENCE


@pytest.fixture
def koniq_dir(tmp_path: Path) -> tuple[Path, dict[str, float]]:
    """KonIQ-10k layout: the scores CSV (every field quoted, as released) + 1024x768/ images."""
    root = tmp_path / "koniq10k"
    names = [f"{1000 + i}.jpg" for i in range(6)]
    mos = dict(zip(names, mos_values(6, 1, 5), strict=True))
    rows = [[n, 0, 1, 2, 3, 4, 10, m, 0.5, m * 20] for n, m in mos.items()]
    header = ["image_name", "c1", "c2", "c3", "c4", "c5", "c_total", "MOS", "SD", "MOS_zscore"]
    write_csv(root / "koniq10k_scores_and_distributions.csv", header, rows, quote_all=True)
    for i, n in enumerate(names):
        write_image(root / "1024x768" / n, 20 * i)
    return root, mos


@pytest.fixture
def spaq_dir(tmp_path: Path) -> tuple[Path, dict[str, float]]:
    """SPAQ layout: Annotations/*.xlsx (official) + TestImage/ images."""
    from openpyxl import Workbook

    root = tmp_path / "SPAQ"
    names = [f"{i:05d}.jpg" for i in range(1, 6)]
    mos = dict(zip(names, mos_values(5, 0, 100, seed=1), strict=True))
    book = Workbook()
    sheet = book.active
    sheet.append(["Image name", "MOS", "Brightness", "Colorfulness", "Contrast", "Noisiness", "Sharpness"])
    for n, m in mos.items():
        sheet.append([n, m, 50.0, 50.0, 50.0, 50.0, 50.0])
    (root / "Annotations").mkdir(parents=True)
    book.save(root / "Annotations" / "MOS and Image attribute scores.xlsx")
    for i, n in enumerate(names):
        write_image(root / "TestImage" / n, 30 * i)
    return root, mos


@pytest.fixture
def livec_dir(tmp_path: Path) -> tuple[Path, dict[str, float]]:
    """LIVE Challenge layout: Data/*.mat (cell of names, 1xN MOS) + Images/ (.bmp and .JPG) with the
    training images in Images/trainingImages/."""
    from scipy.io import savemat

    root = tmp_path / "ChallengeDB_release"
    names = ["t1.bmp", "t2.bmp", "100.bmp", "101.bmp", "1000.JPG", "1001.JPG"]
    mos = dict(zip(names, mos_values(6, 3, 93, seed=2), strict=True))
    cell = np.empty((len(names), 1), dtype=object)
    for i, n in enumerate(names):
        cell[i, 0] = np.array([n])
    (root / "Data").mkdir(parents=True)
    savemat(root / "Data" / "AllImages_release.mat", {"AllImages_release": cell})
    savemat(root / "Data" / "AllMOS_release.mat", {"AllMOS_release": np.array([list(mos.values())])})
    for i, n in enumerate(names):
        sub = "Images/trainingImages" if n.startswith("t") else "Images"
        write_image(root / sub / n, 40 * i)
    return root, mos


@pytest.fixture
def agiqa_dir(tmp_path: Path) -> tuple[Path, dict[str, float]]:
    root = tmp_path / "AGIQA-3K"
    names = [f"midjourney_normal_{i:03d}.jpg" for i in range(5)]
    mos = dict(zip(names, mos_values(5, 0, 5, seed=3), strict=True))
    header = [
        "name",
        "prompt",
        "adj1",
        "adj2",
        "style",
        "mos_quality",
        "std_quality",
        "mos_align",
        "std_align",
    ]
    rows = [[n, "a cat", "", "", "", m, 0.5, 2.5, 0.5] for n, m in mos.items()]
    write_csv(root / "data.csv", header, rows)
    for i, n in enumerate(names):
        write_image(root / n, 50 * i)
    return root, mos


@pytest.fixture
def kadid_dir(tmp_path: Path) -> tuple[Path, dict[str, float]]:
    root = tmp_path / "kadid10k"
    names = [f"I01_01_0{i}.png" for i in range(1, 6)]
    mos = dict(zip(names, mos_values(5, 1, 5, seed=4), strict=True))
    write_csv(
        root / "dmos.csv",
        ["dist_img", "ref_img", "dmos", "var"],
        [[n, "I01.png", m, 0.4] for n, m in mos.items()],
    )
    for i, n in enumerate(names):
        write_image(root / "images" / n, 40 * i)
    write_image(root / "images" / "I01.png", 255)  # the reference image is on disk but not labelled
    return root, mos
