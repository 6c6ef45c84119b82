"""Fixtures for the SAM 2 tests: the shared reference fixture and a tiny biased Sam2Model built offline."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

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
