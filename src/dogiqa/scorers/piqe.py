"""PIQE (Venkatanath N. et al., NCC 2015), following MATLAB's ``piqe()``: 0 = best, 100 = worst.

Our numpy port: MATLAB ``rgb2gray``, rescale to round(255 I / max I), symmetric padding to multiples of 16,
MSCN (7x7 Gaussian, sigma 7/6, replicate borders, +1), then 16x16 blocks scored all at once.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from dogiqa.scorers._classical import ClassicalScorer, ImageLike, gray_matlab, mscn

BLOCK = 16
ACTIVITY_THRESHOLD = 0.1
IMPAIRED_THRESHOLD = 0.1
SEGMENT = 6


def _blocks(x: np.ndarray) -> np.ndarray:
    """(N, 16, 16) view of non-overlapping blocks, row-major block order."""
    h, w = x.shape
    return x.reshape(h // BLOCK, BLOCK, w // BLOCK, BLOCK).swapaxes(1, 2).reshape(-1, BLOCK, BLOCK)


def _impaired(blocks: np.ndarray) -> np.ndarray:
    """Noticeable-artifact criterion: some 6-pixel segment of a block edge has std below the threshold."""
    edges = np.stack([blocks[:, 0, :], blocks[:, :, -1], blocks[:, -1, :], blocks[:, :, 0]], axis=1)
    segments = sliding_window_view(edges, SEGMENT, axis=2)  # (N, 4, 11, 6)
    return (segments.std(axis=-1, ddof=1) < IMPAIRED_THRESHOLD).any(axis=(1, 2))


def _noisy(blocks: np.ndarray, var: np.ndarray) -> np.ndarray:
    """Noise criterion: block sigma > 2 beta, beta from the centre/surround std ratio."""
    c = BLOCK // 2
    centre = np.concatenate([blocks[:, :, c - 1], blocks[:, :, c]], axis=1)
    # The centre columns are deleted one after the other, so the second deletion removes original column c + 2
    # (1-based); only this choice reproduces MATLAB's published scores (and pypiqe's).
    keep = np.delete(np.arange(BLOCK), [c - 1, c + 1])
    surround = blocks[:, :, keep].reshape(len(blocks), -1)
    sigma = np.sqrt(var)
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = centre.std(axis=1, ddof=1) / surround.std(axis=1, ddof=1)
        ratio = np.where(np.isnan(ratio), 0.0, ratio)
        beta = np.abs(sigma - ratio) / np.maximum(sigma, ratio)
    return sigma > 2 * beta


def piqe(image: ImageLike) -> float:
    """PIQE score of an image (PIL or uint8 array, grey or RGB)."""
    gray = gray_matlab(image)
    peak = gray.max()
    if peak > 0:
        gray = np.round(255 * gray / peak)
    pad_h, pad_w = (-gray.shape[0]) % BLOCK, (-gray.shape[1]) % BLOCK
    if pad_h or pad_w:
        gray = np.pad(gray, ((0, pad_h), (0, pad_w)), mode="symmetric")
    blocks = _blocks(mscn(gray))
    var = blocks.reshape(len(blocks), -1).var(axis=1, ddof=1)
    active = var > ACTIVITY_THRESHOLD
    blocks, var = blocks[active], var[active]
    if not len(blocks):
        return 100.0  # no active block: 100 (0 + 1) / (0 + 1), as MATLAB gives
    distortion = np.sum(_impaired(blocks) * (1 - var) + _noisy(blocks, var) * var)
    return float(100 * (distortion + 1) / (active.sum() + 1))


class PIQEScorer(ClassicalScorer):
    """PIQE as a Scorer: lower is better, 0..100. Crops under 16x16 (one block) are not scorable."""

    name = "piqe"
    higher_is_better = False
    score_range = (0.0, 100.0)
    min_size = (BLOCK, BLOCK)

    def _score(self, image: ImageLike) -> float:
        return piqe(image)
