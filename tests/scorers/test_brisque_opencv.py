"""BRISQUE vs OpenCV's ``cv2.quality.QualityBRISQUE`` on a varied generated corpus (dev dependency: opencv-contrib).

OpenCV's pip wheels resize with Intel IPP by default, whose bicubic weights differ from OpenCV's own C++ code in
the last bit (and move BRISQUE by up to ~1.8 on small quantised images); our port follows OpenCV's portable
code path, so the comparison switches IPP off (``cv2.ipp.setUseIPP(False)``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from dogiqa.scorers._classical import gaussian_blur_opencv_f32, gray_opencv, resize_opencv_cubic
from dogiqa.scorers.brisque import brisque
from dogiqa.testing.corpus import DISTORTIONS, brisque_corpus

cv2 = pytest.importorskip("cv2", reason="opencv-contrib-python-headless (the dev extra) is not installed")
TOL = 0.005


@pytest.fixture(scope="module")
def opencv_brisque(baselines: Path):
    """OpenCV's QualityBRISQUE with the LIVE model files of ``shared/reference/baselines/params``, IPP off."""
    if not hasattr(cv2, "quality"):
        pytest.fail("cv2 has no quality module: install opencv-contrib-python-headless, not opencv-python")
    p = baselines / "params"
    model = cv2.quality.QualityBRISQUE_create(str(p / "brisque_model_live.yml"), str(p / "brisque_range_live.yml"))
    was = cv2.ipp.useIPP()
    cv2.ipp.setUseIPP(False)
    yield lambda rgb: float(model.compute(np.ascontiguousarray(rgb[..., ::-1]))[0])
    cv2.ipp.setUseIPP(was)


def _corpus() -> list[tuple[str, object]]:
    small = list(brisque_corpus(35, seed=1, sizes=(32, 33, 40, 47, 48, 63, 64, 97, 130)))
    large = list(brisque_corpus(1, seed=2, sizes=(2000,)))
    return small + large


def test_corpus_covers_every_distortion_and_the_size_range() -> None:
    names = [n for n, _ in _corpus()]
    assert {n.split("-")[1] for n in names} == set(DISTORTIONS)
    sides = [int(s) for n in names for s in n.split("-")[2].split("x")]
    assert min(sides) == 32 and max(sides) == 2000


def test_brisque_matches_opencv_on_every_corpus_image(opencv_brisque) -> None:
    worst = []
    for name, img in _corpus():
        ours, ref = brisque(img), opencv_brisque(np.asarray(img))
        worst.append((abs(ours - ref), name, ours, ref))
    worst.sort(reverse=True)
    assert worst[0][0] < TOL, worst[:3]


def test_grey_conversion_is_opencvs_bit_for_bit() -> None:
    rgb = np.random.default_rng(0).integers(0, 256, (300, 300, 3), dtype=np.uint8)
    ref = cv2.cvtColor(np.ascontiguousarray(rgb[..., ::-1]), cv2.COLOR_BGR2GRAY)
    np.testing.assert_array_equal(gray_opencv(rgb), ref)


@pytest.mark.parametrize("shape", [(32, 32), (33, 47), (65, 33), (97, 130), (2000, 61)])
def test_cubic_half_resize_is_opencvs_bit_for_bit(shape: tuple[int, int]) -> None:
    x = np.random.default_rng(1).integers(0, 256, shape).astype(np.float32) * np.float32(1 / 255)
    was = cv2.ipp.useIPP()
    cv2.ipp.setUseIPP(False)
    try:
        ref = cv2.resize(x, (shape[1] // 2, shape[0] // 2), interpolation=cv2.INTER_CUBIC)
    finally:
        cv2.ipp.setUseIPP(was)
    np.testing.assert_array_equal(resize_opencv_cubic(x, shape[0] // 2, shape[1] // 2), ref)


@pytest.mark.parametrize("shape", [(64, 96), (40, 45), (97, 47), (48, 23), (60, 127), (31, 17), (33, 2000)])
def test_gaussian_blur_is_opencvs_bit_for_bit(shape: tuple[int, int]) -> None:
    """Every width: the vector body and both scalar tails (row pass w % 4, column pass w % 8)."""
    x = np.random.default_rng(2).integers(0, 256, shape).astype(np.float32) * np.float32(1 / 255)
    was = cv2.ipp.useIPP()
    cv2.ipp.setUseIPP(False)
    try:
        for img in (x, x * x):
            ref = cv2.GaussianBlur(img, (7, 7), 7 / 6, borderType=cv2.BORDER_REPLICATE)
            np.testing.assert_array_equal(gaussian_blur_opencv_f32(img), ref)
    finally:
        cv2.ipp.setUseIPP(was)
