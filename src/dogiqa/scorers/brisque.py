"""BRISQUE (Mittal, Moorthy, Bovik, IEEE TIP 2012) with **OpenCV's LIVE-trained model**: lower is better.

The original LIVE release's ``allmodel``/``allrange`` are not available, so these numbers use the epsilon-SVR
that OpenCV ships (``opencv_contrib/modules/quality/samples/brisque_model_live.yml``, trained on LIVE R2) and
follow OpenCV's feature pipeline (``QualityBRISQUE``), which differs from the MATLAB release; they are not the
MATLAB BRISQUE values. Our numpy port: OpenCV grey (fixed point), float32 in 0..1, two scales (the second by
bicubic resize without antialiasing), MSCN with replicate borders and +1/255, AGGD fits, features scaled to
[-1, 1], then the RBF SVR evaluated in numpy from ``params/brisque_live_opencv.npz``; clamped to 0..100.
"""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path

import numpy as np
import yaml
from scipy.special import gamma as gamma_fn

from dogiqa.scorers._classical import (
    ClassicalScorer,
    ImageLike,
    NotScorableError,
    aggd_rhatnorm,
    gaussian_blur_opencv_f32,
    gray_opencv,
    nearest_gamma,
    params_path,
    resize_opencv_cubic,
)

MODEL_FILE = "brisque_live_opencv.npz"
SHIFTS = ((0, 1), (1, 0), (1, 1), (-1, 1))  # (rows, cols): pair pixel (i + dr, j + dc), zero outside
MIN_SIDE = 32


@lru_cache(maxsize=1)
def svr_model() -> dict[str, np.ndarray]:
    """The SVR: support_vectors (774x36), alpha (774), rho, gamma, range_min/range_max (36)."""
    with params_path(MODEL_FILE).open("rb") as fh, np.load(fh) as data:
        return {k: data[k].copy() for k in data.files}


def _scale_features(x: np.ndarray) -> list[float]:
    """18 features of one scale (float32 image in 0..1)."""
    mu = gaussian_blur_opencv_f32(x)
    ex2 = gaussian_blur_opencv_f32(x * x)
    with np.errstate(invalid="ignore"):
        sigma = np.sqrt(ex2 - mu * mu) + np.float32(1 / 255)
    structdis = np.nan_to_num((x - mu) / sigma, nan=0.0)  # OpenCV's max/min/patchNaNs treat NaN as 0
    h, w = structdis.shape
    rows = np.zeros((5, h, w))  # float64 sums, as cv::sum; products stay float32 products
    rows[0] = structdis
    for k, (dr, dc) in enumerate(SHIFTS, start=1):
        r0, r1, c0, c1 = max(0, -dr), min(h, h - dr), max(0, -dc), min(w, w - dc)
        rows[k, r0:r1, c0:c1] = structdis[r0:r1, c0:c1] * structdis[r0 + dr : r1 + dr, c0 + dc : c1 + dc]
    left, right, rnorm = aggd_rhatnorm(rows.reshape(5, -1))
    gam = nearest_gamma(rnorm, ties_upper=True)
    feats = [gam[0], (left[0] ** 2 + right[0] ** 2) / 2]
    for i in range(1, 5):
        g = gam[i]
        const = np.sqrt(gamma_fn(1 / g)) / np.sqrt(gamma_fn(3 / g))
        mean = (right[i] - left[i]) * gamma_fn(2 / g) / gamma_fn(1 / g) * const
        feats += [g, mean, left[i] ** 2, right[i] ** 2]
    return feats


def brisque_features(image: ImageLike) -> np.ndarray:
    """The 36 OpenCV-BRISQUE features (float32, unscaled)."""
    gray = gray_opencv(image).astype(np.float32) * np.float32(1 / 255)
    h, w = gray.shape
    if min(h, w) < MIN_SIDE:
        raise NotScorableError(f"BRISQUE needs at least {MIN_SIDE}x{MIN_SIDE} pixels, got {w}x{h}")
    half = resize_opencv_cubic(gray, h // 2, w // 2)
    feats = np.array(_scale_features(gray) + _scale_features(half), dtype=np.float32)
    if not np.isfinite(feats).all():
        raise NotScorableError("BRISQUE features are undefined (flat region: MSCN values of one sign only)")
    return feats


def brisque(image: ImageLike) -> float:
    """BRISQUE score (OpenCV LIVE model) of an image (PIL or uint8 array, grey or RGB), 0 (best) to 100."""
    m = svr_model()
    lo, hi = m["range_min"].astype(np.float64), m["range_max"].astype(np.float64)
    x = -1 + 2 * (brisque_features(image).astype(np.float64) - lo) / (hi - lo)
    d2 = np.sum((m["support_vectors"].astype(np.float64) - x[None, :]) ** 2, axis=1)
    score = float(np.dot(m["alpha"], np.exp(-float(m["gamma"]) * d2)) - float(m["rho"]))
    return min(max(score, 0.0), 100.0)


class BRISQUEScorer(ClassicalScorer):
    """BRISQUE (OpenCV's LIVE model) as a Scorer: lower is better, 0..100. Needs 32x32 pixels."""

    name = "brisque"
    higher_is_better = False
    score_range = (0.0, 100.0)
    min_size = (MIN_SIDE, MIN_SIDE)

    def _score(self, image: ImageLike) -> float:
        return brisque(image)


# ---------------------------------------------------------------- model conversion (provenance)


def _read_opencv_yaml(path: Path) -> dict:
    text = Path(path).read_text()
    text = re.sub(r"^%YAML:1\.0\s*", "", text)
    text = text.replace("!!opencv-matrix", "")
    return yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))


def convert_opencv_model(model_yml: Path, range_yml: Path, out_npz: Path) -> None:
    """Write the ``.npz`` shipped in ``params/`` from OpenCV's ``brisque_model_live.yml`` and range file."""
    svm = _read_opencv_yaml(model_yml)["opencv_ml_svm"]
    if svm["svmType"] != "EPS_SVR" or svm["kernel"]["type"] != "RBF":
        raise ValueError(f"{model_yml}: expected an EPS_SVR with RBF kernel")
    (df,) = svm["decision_functions"]
    rng = _read_opencv_yaml(range_yml)["range"]
    data = np.asarray(rng["data"], dtype=np.float32).reshape(rng["rows"], rng["cols"])
    np.savez_compressed(
        out_npz,
        support_vectors=np.asarray(svm["support_vectors"], dtype=np.float32),
        alpha=np.asarray(df["alpha"], dtype=np.float64),
        rho=np.float64(df["rho"]),
        gamma=np.float64(svm["kernel"]["gamma"]),
        range_min=data[0],
        range_max=data[1],
    )
