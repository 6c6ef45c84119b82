"""NIQE (Mittal, Soundararajan, Bovik, IEEE SPL 2013), following the LIVE MATLAB release: lower is better.

Our numpy port of ``computequality``: MATLAB ``rgb2gray``, trim to whole 96x96 blocks, two scales (the second
by MATLAB-style antialiased bicubic ``imresize(0.5)``), 18 AGGD features per block and scale, MVG fit with
``nanmean``/``nancov``, distance to the pristine model shipped in ``params/niqe_pris_params.npz``.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from scipy.special import gamma as gamma_fn

from dogiqa.scorers._classical import (
    ClassicalScorer,
    ImageLike,
    NotScorableError,
    aggd_rhatnorm,
    gray_matlab,
    imresize_matlab,
    mscn,
    nearest_gamma,
    params_path,
)

BLOCK = 96
SHIFTS = ((0, 1), (1, 0), (1, 1), (1, -1))  # MATLAB circshift offsets (rows, cols)


@lru_cache(maxsize=1)
def pristine_model() -> tuple[np.ndarray, np.ndarray]:
    """(mu, cov) of the pristine multivariate Gaussian: 36 and 36x36 float64."""
    with params_path("niqe_pris_params.npz").open("rb") as fh, np.load(fh) as data:
        return data["mu_pris_param"].ravel().copy(), data["cov_pris_param"].copy()


def _block_stack(x: np.ndarray, size: int) -> np.ndarray:
    """(N, size*size) rows, one per non-overlapping block (column-major block order, as blkproc reshapes)."""
    h, w = x.shape
    b = x.reshape(h // size, size, w // size, size).transpose(2, 0, 1, 3)
    return b.reshape(-1, size, size)


def _block_features(x: np.ndarray, size: int) -> np.ndarray:
    """(N, 18) features per block of the MSCN image ``x``: AGGD fit and 4 neighbour-product AGGD fits."""
    blocks = _block_stack(mscn(x), size)
    n = len(blocks)
    vecs = [blocks.reshape(n, -1)]
    for dr, dc in SHIFTS:  # circular shift within each block
        vecs.append((blocks * np.roll(blocks, (dr, dc), axis=(1, 2))).reshape(n, -1))
    v = np.concatenate(vecs, axis=0)  # (5N, size*size)
    left, right, rnorm = aggd_rhatnorm(v)
    alpha = nearest_gamma(rnorm)
    with np.errstate(invalid="ignore"):
        k = np.sqrt(gamma_fn(1 / alpha) / gamma_fn(3 / alpha))
        bl, br = left * k, right * k
        mean = (br - bl) * gamma_fn(2 / alpha) / gamma_fn(1 / alpha)
    feats = [alpha[:n], (bl[:n] + br[:n]) / 2]
    for s in range(1, 5):
        sl = slice(s * n, (s + 1) * n)
        feats += [alpha[sl], mean[sl], bl[sl], br[sl]]
    return np.stack(feats, axis=1)


def _nancov(x: np.ndarray) -> np.ndarray:
    """MATLAB ``nancov``: rows with any NaN dropped, normalised by N-1 (by N for a single row)."""
    rows = x[~np.isnan(x).any(axis=1)]
    if len(rows) == 0:
        raise NotScorableError("NIQE: every block has undefined features (flat or saturated region)")
    centred = rows - rows.mean(axis=0)
    return centred.T @ centred / max(len(rows) - 1, 1)


def niqe_features(image: ImageLike) -> np.ndarray:
    """(N, 36) block features of an image: 18 at full scale, 18 at half scale."""
    gray = gray_matlab(image)
    h, w = (gray.shape[0] // BLOCK) * BLOCK, (gray.shape[1] // BLOCK) * BLOCK
    if h == 0 or w == 0:
        size = f"{gray.shape[1]}x{gray.shape[0]}"
        raise NotScorableError(f"NIQE needs at least one whole {BLOCK}x{BLOCK} block, got {size}")
    gray = gray[:h, :w]
    full = _block_features(gray, BLOCK)
    half = _block_features(imresize_matlab(gray, 0.5), BLOCK // 2)
    return np.concatenate([full, half], axis=1)


def niqe(image: ImageLike) -> float:
    """NIQE score of an image (PIL or uint8 array, grey or RGB); raises NotScorableError when undefined."""
    feats = niqe_features(image)
    mu_p, cov_p = pristine_model()
    with np.errstate(invalid="ignore"):
        mu_d = np.nanmean(feats, axis=0) if not np.isnan(feats).all(axis=0).any() else None
    if mu_d is None:
        raise NotScorableError("NIQE: a feature is undefined in every block (flat or saturated region)")
    d = mu_p - mu_d
    quality = np.sqrt(d @ np.linalg.pinv((cov_p + _nancov(feats)) / 2) @ d)
    return float(quality)


class NIQEScorer(ClassicalScorer):
    """NIQE as a Scorer: lower is better, 0 and up (typically 2-20). Needs one whole 96x96 block."""

    name = "niqe"
    higher_is_better = False
    score_range = (0.0, float("inf"))
    min_size = (BLOCK, BLOCK)

    def _score(self, image: ImageLike) -> float:
        return niqe(image)
