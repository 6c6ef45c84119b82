import numpy as np
from PIL import Image

from dogiqa.registry import SEGMENTERS


def two_tone(w=300, h=200):
    arr = np.zeros((h, w, 3), np.uint8)
    arr[:, : w // 3] = (240, 20, 20)
    arr[:, w // 3 :] = (20, 20, 240)
    return Image.fromarray(arr)


def test_none_gives_no_masks():
    assert SEGMENTERS.build("none").segment(two_tone()) == []


def test_felzenszwalb_and_slic_cover_the_image_at_full_resolution():
    img = two_tone(900, 600)
    for name in ("felzenszwalb", "slic"):
        masks = SEGMENTERS.build(name, work_side=128).segment(img)
        assert masks and all(m.shape == (600, 900) and m.dtype == bool for m in masks), name
        total = np.sum(masks, axis=0)
        assert (total == 1).all(), name  # a partition
        areas = [m.sum() for m in masks]
        assert areas == sorted(areas, reverse=True)
    fz = SEGMENTERS.build("felzenszwalb", work_side=128).segment(img)
    assert len(fz) == 2 and abs(int(fz[0].sum()) - 600 * 600) < 600 * 20  # the two colour fields
