import hashlib
import json

import numpy as np
import pytest
from PIL import Image

from dogiqa.regions import crop_region, mask_box, regions_from_masks

from shared_data import shared_path


def disk(h, w, cy, cx, r):
    yy, xx = np.mgrid[:h, :w]
    return (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r


def test_hand_made_rules():
    h, w = 100, 100
    a = np.zeros((h, w), bool)
    a[:50, :40] = True  # 2000 px
    b = np.zeros((h, w), bool)
    b[60:70, 60:70] = True  # 100 px: dropped
    c = np.zeros((h, w), bool)
    c[:50, 20:60] = True  # 2000 px, overlaps a by 1000
    regions = regions_from_masks([a, b, c], h, w, min_area=1000)
    assert [r.kind for r in regions] == ["mask", "mask", "complement"]
    assert regions[0].box == (0, 0, 40, 50)
    assert regions[1].box == (20, 0, 60, 50)
    comp = regions[2]
    assert comp.weight == 10000 - 4000  # subtraction weight, not the true count
    assert comp.pixels == 10000 - 3000
    assert comp.box == (0, 0, 100, 100)


def test_complement_below_min_area_and_fallback():
    h, w = 50, 50
    m = np.ones((h, w), bool)
    m[:5, :5] = False  # 2475 px, complement 25 px < min area
    assert [r.kind for r in regions_from_masks([m], h, w, min_area=1000)] == ["mask"]
    tiny = np.zeros((h, w), bool)
    tiny[:10, :10] = True
    only = regions_from_masks([tiny], h, w, min_area=1000)
    assert [(r.kind, r.weight, r.box) for r in only] == [("whole", 2500.0, (0, 0, 50, 50))]
    assert regions_from_masks([tiny], h, w, min_area=50)[0].kind == "mask"  # configurable


def test_crop_modes():
    img = Image.fromarray(np.full((20, 30, 3), 200, np.uint8))
    m = np.zeros((20, 30), bool)
    m[5:10, 10:20] = True
    m[9, 10] = False
    region = regions_from_masks([m], 20, 30, min_area=1)[0]
    assert crop_region(img, region, "bbox").size == (10, 5)
    arr = np.asarray(crop_region(img, region, "mask"))
    assert arr[4, 0].tolist() == [0, 0, 0] and arr[0, 0].tolist() == [200, 200, 200]
    with pytest.raises(ValueError):
        crop_region(img, region, "blur")


def test_mask_box_empty_and_shape_check():
    assert mask_box(np.zeros((4, 6), bool)) == (0, 0, 6, 4)
    with pytest.raises(ValueError, match="shape"):
        regions_from_masks([np.zeros((3, 3), bool)], 4, 4)


def test_reference_regions_of_the_authors_code():
    root = shared_path("reference", "regions")
    cases = json.loads((root / "cases.json").read_text())["cases"]
    arrays = np.load(root / "arrays.npz")
    assert len(cases) == 5
    for case in cases:
        img = Image.fromarray(arrays[case["image"]])
        masks = [arrays[m["array"]] for m in case["sam_masks"]]
        areas = [m["area"] for m in case["sam_masks"]]
        ours = regions_from_masks(masks, case["height"], case["width"], case["min_area"], areas)
        assert len(ours) == len(case["regions"]), case["name"]
        for region, ref in zip(ours, case["regions"], strict=True):
            r0, c0, r1, c1 = ref["box_rows_cols"]
            assert region.box == (c0, r0, c1, r1)
            assert region.weight == ref["area_weight"]
            assert region.pixels == ref["true_pixels"]
            for mode, key in (("bbox", "crop_bbox"), ("mask", "crop_mask")):
                crop = np.asarray(crop_region(img, region, mode))
                assert list(crop.shape) == ref[key]["shape"]
                assert hashlib.sha256(crop.tobytes()).hexdigest() == ref[key]["sha256"], (case["name"], mode)
