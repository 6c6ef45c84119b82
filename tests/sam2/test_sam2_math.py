"""Unit tests of the generator's math on constructed inputs with answers worked out by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from dogiqa.segmenters.sam2 import (
    PRESETS,
    box_nms,
    chunk_size,
    fill_small_regions,
    iou_filter,
    make_params,
    mask_boxes,
    masks_from_logits,
    point_grid,
    preprocess,
    stability_score,
)


def test_stability_score_counts_with_offset():
    logits = torch.tensor([[[2.0, 0.8, 0.5], [0.0, -0.5, -0.8]]])  # > 0.7: 2 pixels; > -0.7: 5 pixels
    assert stability_score(logits, 0.0, 0.7).tolist() == [pytest.approx(2 / 5)]
    assert stability_score(logits, 0.0, 1.0).tolist() == [pytest.approx(1 / 6)]  # > 1: 1; > -1: all 6


def test_stability_score_empty_union_is_nan():
    assert math.isnan(stability_score(torch.full((1, 4, 4), -5.0), 0.0, 0.7).item())


def test_iou_filter_is_strict():
    iou = torch.tensor([0.95, 0.9, 0.85, 0.9001], dtype=torch.float32)
    assert iou_filter(iou, 0.9).tolist() == [True, False, False, True]


def test_mask_boxes_inclusive_and_empty():
    masks = torch.zeros(3, 6, 8, dtype=torch.bool)
    masks[0, 1:4, 2:7] = True  # rows 1..3, cols 2..6
    masks[1, 5, 0] = True  # single pixel
    assert mask_boxes(masks).tolist() == [[2, 1, 6, 3], [0, 5, 0, 5], [0, 0, 0, 0]]


def test_box_nms_greedy_threshold_and_order():
    boxes = torch.tensor([[0, 0, 10, 10], [0, 0, 10, 9], [0, 0, 10, 10], [20, 20, 30, 30]])
    scores = torch.tensor([0.95, 0.97, 0.96, 0.5])
    # B (0.97) vs C: IoU 90/100 = 0.9, not > 0.9 -> C kept; C vs A: IoU 1 -> A dropped; D disjoint.
    assert box_nms(boxes, scores, 0.9).tolist() == [1, 2, 3]
    # At 0.85 B suppresses both A and C.
    assert box_nms(boxes, scores, 0.85).tolist() == [1, 3]


def test_box_nms_degenerate_boxes_never_suppress():
    boxes = torch.tensor([[5, 5, 5, 5], [5, 5, 5, 5]])  # zero area: IoU 0/0
    assert box_nms(boxes, torch.tensor([0.9, 0.8]), 0.5).tolist() == [0, 1]


def test_hole_fill_and_island_removal():
    logits = torch.full((1, 12, 12), -3.0)
    logits[0, 0:6, 0:6] = 2.0  # big foreground blob (36 px)
    logits[0, 2, 2] = -1.0  # a 1-px hole inside it
    logits[0, 9:11, 9:11] = 1.0  # a 4-px island
    logits[0, 6, 6] = 1.5  # touches the blob diagonally only: 8-connected, part of the blob
    out = fill_small_regions(logits, max_hole_area=5, max_sprinkle_area=5)
    assert out[0, 2, 2] == 10.0  # hole filled
    assert torch.all(out[0, 9:11, 9:11] == -10.0)  # island removed
    assert out[0, 6, 6] == 1.5  # kept with the blob
    assert out[0, 0, 0] == 2.0 and out[0, 11, 0] == -3.0  # big components untouched


def test_sprinkles_are_found_on_logits_before_the_fill():
    # A 3x3 ring (8 px) around a 1-px hole. Filled first, the ring+centre would be 9 px > 8 and stay;
    # labelled on the original logits the ring is 8 px <= 8 and goes, while the filled centre stays.
    logits = torch.full((1, 9, 9), -2.0)
    logits[0, 3:6, 3:6] = 1.0
    logits[0, 4, 4] = -1.0
    out = fill_small_regions(logits, max_hole_area=8, max_sprinkle_area=8)
    assert out[0, 4, 4] == 10.0
    ring = out[0, 3:6, 3:6].clone()
    ring[1, 1] = -10.0
    assert torch.all(ring == -10.0)


def test_fill_is_per_mask():
    logits = torch.full((2, 6, 6), -1.0)
    logits[0, 0, 0] = 1.0  # island in mask 0
    logits[1, :, :3] = 1.0  # half-image foreground in mask 1 (18 px)
    out = fill_small_regions(logits, 0, 4)
    assert out[0, 0, 0] == -10.0 and torch.all(out[1, :, :3] == 1.0)


def test_point_grid_order_and_offsets():
    grid = point_grid(8)
    assert grid.shape == (64, 2)
    assert grid[0].tolist() == [1 / 16, 1 / 16] and grid[1].tolist() == [3 / 16, 1 / 16]
    assert grid[8].tolist() == [1 / 16, 3 / 16] and grid[-1].tolist() == [15 / 16, 15 / 16]


def test_preprocess_constant_image():
    image = np.full((30, 40, 3), (255, 0, 128), dtype=np.uint8)
    x = preprocess(image, 64)
    assert x.shape == (1, 3, 64, 64)
    expected = [(1 - 0.485) / 0.229, (0 - 0.456) / 0.224, (128 / 255 - 0.406) / 0.225]
    for channel, value in enumerate(expected):
        assert torch.allclose(x[0, channel], torch.tensor(value), atol=1e-5)


def test_presets_and_overrides():
    assert make_params("paper").points_per_side == 8 and make_params("paper").stability_score_offset == 0.7
    assert make_params("sam2-default").box_nms_thresh == 0.7
    assert make_params("paper", points_per_side=4).points_per_side == 4
    assert set(PRESETS) == {"paper", "sam2-default"}
    with pytest.raises(ValueError, match="unknown SAM 2 generator option"):
        make_params("paper", points_per_sde=4)
    with pytest.raises(ValueError, match="unknown SAM 2 preset"):
        make_params("fast")


def test_chunk_size_bounds_memory():
    n = chunk_size(3024, 4032, 256)
    assert 1 <= n and n * 3024 * 4032 * 8 <= 256 * 2**20  # logits plus a copy of them fit the budget
    assert chunk_size(768, 1024, 256) > n
    assert chunk_size(30000, 30000, 1) == 1


def _blob(h: int, w: int, y0: int, y1: int, x0: int, x1: int, inside: float = 5.0) -> torch.Tensor:
    t = torch.full((h, w), -5.0)
    t[y0:y1, x0:x1] = inside
    return t


def test_masks_from_logits_filters_and_orders():
    """Four low-res candidates, upsampled 16x16 -> 32x32: IoU filter, stability, NMS and order."""
    lowres = torch.stack(
        [
            _blob(16, 16, 0, 8, 0, 8),  # A: iou 0.95
            _blob(16, 16, 0, 8, 0, 8),  # B: duplicate of A with higher iou -> A suppressed
            _blob(16, 16, 8, 16, 8, 16),  # C: iou 0.85 -> dropped by the iou filter
            _blob(16, 16, 8, 16, 0, 8, inside=0.3),  # D: logits 0.3 everywhere inside -> stability 0
        ]
    )
    iou = torch.tensor([0.95, 0.97, 0.85, 0.99])
    points = torch.tensor([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0], [7.0, 8.0]])
    records = masks_from_logits(lowres, iou, points, (32, 32), make_params("paper"))
    assert len(records) == 1
    rec = records[0]
    assert rec["point_coords"] == [[3.0, 4.0]] and rec["predicted_iou"] == pytest.approx(0.97)
    mask = rec["segmentation"]
    assert mask.shape == (32, 32) and mask.dtype == bool and rec["area"] == int(mask.sum())
    ys, xs = np.nonzero(mask)
    assert rec["bbox"] == [xs.min(), ys.min(), xs.max() - xs.min(), ys.max() - ys.min()]
    assert rec["crop_box"] == [0.0, 0.0, 32.0, 32.0]


def test_masks_from_logits_chunking_is_exact():
    torch.manual_seed(1)
    lowres = torch.randn(12, 16, 16) * 4
    iou = torch.linspace(0.91, 0.99, 12)
    points = torch.zeros(12, 2)
    params = make_params("paper", stability_score_thresh=0.0, box_nms_thresh=0.99)
    big = masks_from_logits(lowres, iou, points, (300, 200), params)
    small = masks_from_logits(
        lowres,
        iou,
        points,
        (300, 200),
        make_params("paper", stability_score_thresh=0.0, box_nms_thresh=0.99, memory_budget_mb=1),
    )
    assert chunk_size(300, 200, 1) < 12  # the second run really is chunked
    assert len(big) == len(small) > 0
    for a, b in zip(big, small, strict=True):
        assert np.array_equal(a["segmentation"], b["segmentation"]) and a["bbox"] == b["bbox"]
