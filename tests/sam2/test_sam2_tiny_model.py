"""Sam2Segmenter end to end on a tiny random Sam2Model built offline (not the reference fixture)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from dogiqa.segmenters.base import Segmenter
from dogiqa.segmenters.sam2 import Sam2Segmenter, box_nms, make_params, masks_from_logits


@pytest.fixture(scope="module")
def segmenter(tiny_segmenter) -> Sam2Segmenter:
    return tiny_segmenter


@pytest.fixture(scope="module")
def decoded(tiny_decoded):
    return tiny_decoded


def _check_invariants(records: list[dict], width: int, height: int, params) -> None:
    for rec in records:
        mask = rec["segmentation"]
        assert mask.dtype == bool and mask.shape == (height, width)
        assert rec["area"] == int(mask.sum()) > 0
        ys, xs = np.nonzero(mask)
        assert rec["bbox"] == [xs.min(), ys.min(), xs.max() - xs.min(), ys.max() - ys.min()]
        assert rec["predicted_iou"] > params.pred_iou_thresh
        assert rec["stability_score"] >= params.stability_score_thresh
    ious = [r["predicted_iou"] for r in records]
    assert ious == sorted(ious, reverse=True)  # NMS keep order
    boxes = torch.tensor([[x, y, x + w, y + h] for x, y, w, h in (r["bbox"] for r in records)])
    if len(records):  # no pair left that NMS would suppress
        assert len(box_nms(boxes, torch.tensor(ious), params.box_nms_thresh)) == len(records)


def test_generate_on_a_new_image(segmenter, decoded):
    assert isinstance(segmenter, Segmenter)
    records = segmenter.postprocess(decoded)
    assert len(records) >= 2  # the biased model yields masks; the fill mode keeps several
    _check_invariants(records, 320, 240, segmenter.params)
    skip = segmenter.postprocess(decoded, small_regions="skip")
    _check_invariants(skip, 320, 240, segmenter.params)


def test_segment_matches_generate(segmenter, decoded, make_scene):
    masks = segmenter.segment(make_scene().convert("RGBA"))  # non-RGB input is converted
    records = segmenter.postprocess(decoded)
    assert len(masks) == len(records)
    assert all(np.array_equal(m, r["segmentation"]) for m, r in zip(masks, records, strict=True))


def test_large_photo_chunked_equals_unchunked(segmenter, make_scene):
    """A 1600x1200 photo: masks come back at full resolution; a 4 MB budget (one mask per chunk) changes
    nothing. 32 candidates keep the test quick."""
    dec = segmenter.decode(make_scene(1600, 1200))
    dec = dec._replace(lowres=dec.lowres[:32], iou=dec.iou[:32], points=dec.points[:32])
    params = make_params("paper")
    tight = make_params("paper", memory_budget_mb=4)
    full = masks_from_logits(*dec, params, "skip")
    chunked = masks_from_logits(*dec, tight, "skip")
    assert len(full) == len(chunked) > 0
    _check_invariants(chunked, 1600, 1200, tight)
    for a, b in zip(full, chunked, strict=True):
        assert np.array_equal(a["segmentation"], b["segmentation"])
        assert a["stability_score"] == b["stability_score"] and a["bbox"] == b["bbox"]


def test_bad_input_is_reported(segmenter):
    with pytest.raises(ValueError, match="RGB uint8"):
        segmenter.generate(np.zeros((10, 10), dtype=np.uint8))
    with pytest.raises(ValueError, match="small_regions"):
        Sam2Segmenter(str(segmenter.model_name), small_regions="maybe")


def test_missing_model_says_how_to_pass_a_folder(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    from dogiqa.hub import ModelNotAvailableError

    with pytest.raises(ModelNotAvailableError, match="--sam2-model"):
        Sam2Segmenter("nobody-here/no-such-sam2")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="config.json"):
        Sam2Segmenter(str(tmp_path / "empty"))


def test_half_precision_runs(tiny_sam2_dir, make_scene):
    """bfloat16 (the GPU speed option) runs end to end; an unknown dtype is refused."""
    seg = Sam2Segmenter(str(tiny_sam2_dir), dtype="bfloat16")
    assert seg.dtype == torch.bfloat16
    records = seg.generate(make_scene(160, 120))
    assert all(r["segmentation"].shape == (120, 160) and r["segmentation"].dtype == bool for r in records)
    with pytest.raises(ValueError, match="dtype"):
        Sam2Segmenter(str(tiny_sam2_dir), dtype="float8")
