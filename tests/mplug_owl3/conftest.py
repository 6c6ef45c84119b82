"""Fixtures for the mPLUG-Owl3 tests: the shared reference fixture (skipped when ../shared is absent)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[2]
FIXTURE = (REPO / ".." / "shared" / "reference" / "mplug-owl3-tiny").resolve()


def _require_fixture() -> Path:
    if not (FIXTURE / "cases.json").is_file():
        pytest.skip(f"reference fixture not found: {FIXTURE} (the shared/ folder next to the repository is absent)")
    return FIXTURE


@pytest.fixture(scope="session")
def fixture_dir() -> Path:
    return _require_fixture()


@pytest.fixture(scope="session")
def cases(fixture_dir: Path) -> dict:
    return json.loads((fixture_dir / "cases.json").read_text(encoding="utf-8"))


@pytest.fixture(scope="session")
def tensors(fixture_dir: Path) -> dict:
    with np.load(fixture_dir / "tensors.npz") as z:
        return {k: z[k] for k in z.files}


@pytest.fixture(scope="session")
def backend(fixture_dir: Path):
    from dogiqa.backends.mplug_owl3.backend import MplugOwl3Backend

    return MplugOwl3Backend(str(fixture_dir / "model"), device="cpu", dtype="float32", attention_mask="paper")
