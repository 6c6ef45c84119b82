"""Acceptance test: ours vs Meta's SAM2AutomaticMaskGenerator (../shared/reference/sam2-amg)."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from dogiqa.segmenters.sam2 import Sam2Segmenter

# (our small_regions mode, reference variant)
BEHAVIOURS = [("skip", "mra1000"), ("skip", "mra0"), ("fill", "mra1000_cc_emulated")]
IMAGES = [0, 1, 2]


@pytest.fixture(scope="module")
def segmenter(reference) -> Sam2Segmenter:
    return Sam2Segmenter(str(reference["root"] / "model"))


@pytest.fixture(scope="module")
def decoded(reference, segmenter):
    """Each fixture image decoded once (image embedding + all prompts), lazily."""
    cache: dict[int, object] = {}

    def get(index: int):
        if index not in cache:
            case = reference["cases"]["cases"][index]
            cache[index] = segmenter.decode(Image.open(reference["root"] / case["image"]))
        return cache[index]

    return get


@pytest.fixture(scope="module")
def outputs(segmenter, decoded):
    """Meta's post-processing for each small-regions mode on the decoded images; cached."""
    cache: dict[tuple[str, int], list[dict]] = {}

    def get(mode: str, index: int) -> list[dict]:
        if (mode, index) not in cache:
            cache[(mode, index)] = segmenter.postprocess(decoded(index), small_regions=mode)
        return cache[(mode, index)]

    return get


def _reference_mask(reference, record: dict, height: int, width: int) -> np.ndarray:
    packed = reference["masks"][record["mask_key"]]
    return np.unpackbits(packed)[: height * width].reshape(height, width).astype(bool)


@pytest.mark.parametrize("index", IMAGES)
@pytest.mark.parametrize(("mode", "variant"), BEHAVIOURS)
def test_matches_meta_generator(reference, outputs, mode, variant, index):
    case = reference["cases"]["cases"][index]
    expected = case["results"][variant]
    ours = outputs(mode, index)
    assert len(ours) == len(expected), f"{case['image']} {variant}: mask count"
    for rank, (got, want) in enumerate(zip(ours, expected, strict=True)):
        where = f"{case['image']} {variant} #{rank}"
        mask = _reference_mask(reference, want, case["height"], case["width"])
        assert got["segmentation"].dtype == bool
        assert np.array_equal(got["segmentation"], mask), f"{where}: mask differs"
        assert got["area"] == want["area"], where
        assert got["bbox"] == want["bbox_xywh"], where
        assert got["point_coords"] == want["point_coords"], where
        assert got["crop_box"] == want["crop_box_xywh"], where
        assert got["predicted_iou"] == pytest.approx(want["predicted_iou"], abs=1e-4), where
        assert got["stability_score"] == pytest.approx(want["stability_score"], abs=1e-4), where


def test_segment_returns_generate_masks_in_order(reference, outputs, segmenter):
    """The public path (segment -> generate -> decode + postprocess) gives the conformant masks."""
    case = reference["cases"]["cases"][1]
    masks = segmenter.segment(Image.open(reference["root"] / case["image"]))
    expected = [r["segmentation"] for r in outputs("skip", 1)]
    assert len(masks) == len(expected) > 1
    assert all(np.array_equal(a, b) for a, b in zip(masks, expected, strict=True))


def test_fill_changes_the_result(reference, outputs):
    """The two behaviours are really different on this fixture (guards against a silent no-op)."""
    skip = [r["area"] for r in outputs("skip", 0)]
    fill = [r["area"] for r in outputs("fill", 0)]
    assert skip != fill


def test_fill_mode_from_constructor(reference, outputs, decoded):
    """small_regions="fill" in the constructor is the default of postprocess (and so of generate)."""
    filled = Sam2Segmenter(str(reference["root"] / "model"), small_regions="fill")
    assert [r["area"] for r in filled.postprocess(decoded(0))] == [r["area"] for r in outputs("fill", 0)]
