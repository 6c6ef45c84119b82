"""Fixtures for the SAM 2 tests: the shared reference fixture and a tiny biased Sam2Model built offline."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw

REPO = Path(__file__).resolve().parents[2]
SHARED = (REPO / ".." / "shared").resolve()
REFERENCE = SHARED / "reference" / "sam2-amg"


@pytest.fixture(scope="session")
def reference() -> dict:
    """cases.json and masks.npz of ../shared/reference/sam2-amg (skips when shared/ is absent)."""
    if not (REFERENCE / "cases.json").is_file():
        pytest.skip(f"SAM 2 reference fixture not found at {REFERENCE} (shared/ absent next to the repo)")
    torch.set_num_threads(2)
    cases = json.loads((REFERENCE / "cases.json").read_text())
    masks = dict(np.load(REFERENCE / "masks.npz"))
    return {"root": REFERENCE, "cases": cases, "masks": masks}


@pytest.fixture(scope="session")
def tiny_sam2_dir(tmp_path_factory) -> Path:
    """A random tiny Sam2Model (recipe 4.1), biased as in recipe 4.2 so that masks pass Dog-IQA's thresholds."""
    from dogiqa.testing.sam2_tiny import build_sam2

    return build_sam2(tmp_path_factory.mktemp("tiny_sam2"))


def scene(width: int = 320, height: int = 240) -> Image.Image:
    """A synthetic test image that is not in the reference fixture."""
    img = Image.new("RGB", (width, height), (30, 60, 90))
    draw = ImageDraw.Draw(img)
    draw.ellipse((width // 8, height // 8, width * 5 // 8, height * 3 // 4), fill=(220, 200, 40))
    draw.rectangle((width * 2 // 3, height // 3, width - 10, height - 10), fill=(10, 200, 120))
    return img


@pytest.fixture(scope="session")
def tiny_segmenter(tiny_sam2_dir):
    """Sam2Segmenter on the tiny model, built through the registry as the pipeline does."""
    from dogiqa.registry import SEGMENTERS

    torch.set_num_threads(2)
    return SEGMENTERS.build_accepting("sam2", model=str(tiny_sam2_dir), small_regions="fill")


@pytest.fixture(scope="session")
def tiny_decoded(tiny_segmenter):
    """Decoder outputs of the tiny model for ``scene()`` (the ``make_scene`` fixture's default image)."""
    return tiny_segmenter.decode(scene())


@pytest.fixture(scope="session")
def make_scene():
    """``make_scene(width, height)``: the synthetic test image (default 320x240, as ``tiny_decoded``)."""
    return scene
