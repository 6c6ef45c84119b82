"""NIQE, BRISQUE and PIQE vs official MATLAB values and open cross-checks (shared/reference/baselines)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from dogiqa.scorers._classical import params_path
from dogiqa.scorers.brisque import brisque, convert_opencv_model
from dogiqa.scorers.niqe import niqe
from dogiqa.scorers.piqe import piqe

NIQE_REL_TOL = 0.01  # README: 1-5 % achievable; we reach 0.71 % at worst (I19)
BRISQUE_ABS_TOL = 0.005  # vs OpenCV 5.0 with IPP off (its C++ code); we reach 0.0008 at worst (ref I19)
PIQE_ABS_TOL = 0.01  # issue: within 0.01 of MATLAB (published with 2 decimals)


def _load(row: dict) -> Image.Image:
    return Image.open(row["path"]).convert("RGB")


@pytest.fixture(scope="module")
def scored(calibration: list[dict]) -> list[dict]:
    out = []
    for row in calibration:
        img = _load(row)
        out.append({**row, "ours_niqe": niqe(img), "ours_brisque": brisque(img), "ours_piqe": piqe(img)})
    return out


def test_all_ten_calibration_images_present(calibration: list[dict]) -> None:
    assert len(calibration) == 10
    assert all(Path(r["path"]).is_file() for r in calibration)


def test_piqe_matches_matlab_on_every_distorted_image(scored: list[dict]) -> None:
    rows = [r for r in scored if r["piqe"] is not None]
    assert len(rows) == 5
    for r in rows:
        assert abs(r["ours_piqe"] - r["piqe"]) < PIQE_ABS_TOL, (r["image"], r["ours_piqe"], r["piqe"])


def test_piqe_matches_pypiqe_on_every_image(scored: list[dict]) -> None:
    for r in scored:
        assert abs(r["ours_piqe"] - r["piqe_pypiqe"]) < PIQE_ABS_TOL, (
            r["folder"],
            r["image"],
            r["ours_piqe"],
        )


def test_niqe_within_tolerance_of_matlab(scored: list[dict]) -> None:
    rows = [r for r in scored if r["niqe_full_precision"] is not None]
    assert len(rows) == 5
    for r in rows:
        rel = abs(r["ours_niqe"] - r["niqe_full_precision"]) / r["niqe_full_precision"]
        assert rel < NIQE_REL_TOL, (r["image"], r["ours_niqe"], r["niqe_full_precision"])


def test_niqe_ranks_images_exactly_as_matlab(scored: list[dict]) -> None:
    rows = [r for r in scored if r["niqe_full_precision"] is not None]
    ours = [r["image"] for r in sorted(rows, key=lambda r: r["ours_niqe"])]
    matlab = [r["image"] for r in sorted(rows, key=lambda r: r["niqe_full_precision"])]
    assert ours == matlab


def test_niqe_close_to_basicsr_on_every_image(scored: list[dict]) -> None:
    for r in scored:  # BasicSR is itself ~0.4 % from MATLAB; this also covers the reference images
        rel = abs(r["ours_niqe"] - r["niqe_basicsr_numpy_gray"]) / r["niqe_basicsr_numpy_gray"]
        assert rel < 0.02, (r["folder"], r["image"], r["ours_niqe"])


def _opencv_brisque(baselines: Path, img: Image.Image, ipp: bool) -> float:
    cv2 = pytest.importorskip("cv2", reason="opencv-contrib-python-headless (the dev extra) is not installed")
    p = baselines / "params"
    model = cv2.quality.QualityBRISQUE_create(str(p / "brisque_model_live.yml"), str(p / "brisque_range_live.yml"))
    was = cv2.ipp.useIPP()
    cv2.ipp.setUseIPP(ipp)
    try:
        return float(model.compute(np.ascontiguousarray(np.asarray(img)[..., ::-1]))[0])
    finally:
        cv2.ipp.setUseIPP(was)


def test_brisque_matches_opencv_on_every_image(scored: list[dict], baselines: Path) -> None:
    for r in scored:  # OpenCV's own C++ code path (IPP off): see tests/scorers/test_brisque_opencv.py
        ref = _opencv_brisque(baselines, _load(r), ipp=False)
        assert abs(r["ours_brisque"] - ref) < BRISQUE_ABS_TOL, (r["folder"], r["image"], r["ours_brisque"], ref)


def test_crosscheck_values_are_opencv_with_ipp(scored: list[dict], baselines: Path) -> None:
    """crosscheck.csv was made by the pip wheel's default (Intel IPP resize): it differs from OpenCV's own code."""
    gaps = []
    for r in scored:
        assert abs(_opencv_brisque(baselines, _load(r), ipp=True) - r["brisque_opencv_live_yml"]) < 0.005, r["image"]
        gaps.append(abs(r["ours_brisque"] - r["brisque_opencv_live_yml"]))
    assert max(gaps) > 0.5  # README: OpenCV with and without IPP differ by up to 1.84 on these photos


def test_packaged_niqe_params_are_the_reference_file(baselines: Path) -> None:
    with params_path("niqe_pris_params.npz").open("rb") as fh:
        ours = hashlib.sha256(fh.read()).hexdigest()
    ref = hashlib.sha256((baselines / "params" / "niqe_pris_params.npz").read_bytes()).hexdigest()
    assert ours == ref


def test_packaged_brisque_model_is_the_converted_opencv_model(baselines: Path, tmp_path: Path) -> None:
    out = tmp_path / "m.npz"
    p = baselines / "params"
    convert_opencv_model(p / "brisque_model_live.yml", p / "brisque_range_live.yml", out)
    with (
        np.load(out) as fresh,
        params_path("brisque_live_opencv.npz").open("rb") as fh,
        np.load(fh) as shipped,
    ):
        assert sorted(fresh.files) == sorted(shipped.files)
        assert shipped["support_vectors"].shape == (774, 36)
        for k in fresh.files:
            np.testing.assert_array_equal(fresh[k], shipped[k])
