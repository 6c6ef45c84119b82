"""Shared numerics for the classical no-reference metrics (NIQE, BRISQUE, PIQE).

Grey conversions and resizers reproduce MATLAB (``rgb2gray``, ``imresize``) and OpenCV (``cvtColor``,
``resize``) closely enough for the conformance tests in ``tests/scorers``. Pure numpy/scipy.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from functools import lru_cache
from importlib import resources

import numpy as np
import scipy.sparse as sp
from PIL import Image
from scipy import ndimage
from scipy.special import gamma as gamma_fn

from dogiqa.scorers.base import Crop, CropScore

ImageLike = Image.Image | np.ndarray

# MATLAB rgb2gray: first row of inv([1 .956 .621; 1 -.272 -.647; 1 -1.106 1.703]) (docs: .2989 .5870 .1140).
MATLAB_GRAY = np.array([0.298936021293775, 0.587043074451121, 0.114020904255103])
# OpenCV COLOR_RGB2GRAY on uint8, fixed point with 15 fraction bits (R, G, B): checked against cv2.cvtColor
# 4.10/5.0 on 4 million random pixels (the 14-bit 4899/9617/1868 of older releases differs on ~0.3 % of them).
OPENCV_GRAY_Q15 = (9798, 19235, 3735)


class NotScorableError(ValueError):
    """The input cannot be scored by this method (too small, flat, ...); the message says why."""


def params_path(name: str):
    """Path-like handle of a parameter file shipped in ``dogiqa/scorers/params``."""
    return resources.files("dogiqa.scorers").joinpath("params", name)


def _as_uint8_channels(image: ImageLike) -> np.ndarray:
    """HxW or HxWx3 uint8 array (RGB order) from a PIL image or an array."""
    if isinstance(image, Image.Image):
        if image.mode not in ("L", "RGB"):
            image = image.convert("RGB")
        arr = np.asarray(image)
    else:
        arr = np.asarray(image)
        if arr.ndim == 3 and arr.shape[2] == 4:
            arr = arr[..., :3]
        if arr.ndim == 3 and arr.shape[2] == 1:
            arr = arr[..., 0]
        if arr.dtype != np.uint8:
            raise NotScorableError(f"expected a uint8 image array, got dtype {arr.dtype}")
    if arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[2] != 3):
        raise NotScorableError(f"expected a grey or RGB image, got array shape {arr.shape}")
    return arr


def gray_matlab(image: ImageLike) -> np.ndarray:
    """MATLAB ``double(rgb2gray(uint8 RGB))``: weighted sum rounded to uint8, returned as float64 0..255."""
    arr = _as_uint8_channels(image)
    if arr.ndim == 2:
        return arr.astype(np.float64)
    g = arr.astype(np.float64) @ MATLAB_GRAY
    return np.clip(np.floor(g + 0.5), 0, 255)


def gray_opencv(image: ImageLike) -> np.ndarray:
    """OpenCV ``cvtColor(BGR2GRAY)`` on uint8 (fixed point, rounded), as uint8."""
    arr = _as_uint8_channels(image)
    if arr.ndim == 2:
        return arr
    r, g, b = (arr[..., i].astype(np.int32) for i in range(3))
    q = OPENCV_GRAY_Q15
    return ((r * q[0] + g * q[1] + b * q[2] + (1 << 14)) >> 15).astype(np.uint8)


@lru_cache(maxsize=8)
def gaussian_1d(size: int = 7, sigma: float = 7 / 6) -> np.ndarray:
    """Normalised 1-D Gaussian; its outer product is MATLAB ``fspecial('gaussian', size, sigma)``."""
    x = np.arange(size) - (size - 1) / 2
    g = np.exp(-(x**2) / (2 * sigma**2))
    return g / g.sum()


def gaussian_filter(x: np.ndarray, mode: str = "nearest") -> np.ndarray:
    """7x7 Gaussian (sigma 7/6), separable; mode ``nearest`` = replicate borders, ``constant`` = zeros."""
    g = gaussian_1d()
    y = ndimage.correlate1d(x, g, axis=0, mode=mode, cval=0.0)
    return ndimage.correlate1d(y, g, axis=1, mode=mode, cval=0.0)


def mscn(x: np.ndarray, c: float = 1.0, mode: str = "nearest") -> np.ndarray:
    """Mean-subtracted contrast-normalised coefficients: (x - mu) / (sqrt|E[x^2] - mu^2| + c)."""
    mu = gaussian_filter(x, mode)
    sigma = np.sqrt(np.abs(gaussian_filter(x * x, mode) - mu * mu))
    return (x - mu) / (sigma + c)


def gaussian_blur_opencv_f32(x: np.ndarray) -> np.ndarray:
    """OpenCV ``GaussianBlur(x, (7, 7), 7/6, BORDER_REPLICATE)`` on float32, emulating its float32 arithmetic.

    Row pass then symmetric column pass, each step a fused multiply-add rounded to float32 (as OpenCV's SIMD
    code does on x86-64 with FMA); the scalar loops after the vectors (the row pass's last ``w % 4`` columns, the
    column pass's last ``w % 8``) round as OpenCV's compiled scalar code does. Bit-exact against OpenCV 5.0
    (IPP off) on random images of many widths (tests/scorers/test_brisque_opencv.py). Exact rounding matters on
    flat areas, where the sign of (x - mu) decides BRISQUE's AGGD counts.
    """
    k = gaussian_1d().astype(np.float32).astype(np.float64)
    h, w = x.shape
    p = np.pad(x.astype(np.float32), ((0, 0), (3, 3)), mode="edge").astype(np.float64)
    acc = np.empty((h, w))  # exact product + sum in float64, then one rounding to float32 = an FMA
    s = np.zeros((h, w), np.float32)
    for i in range(7):
        np.multiply(p[:, i : i + w], k[i], out=acc)
        np.add(acc, s, out=acc)
        s[...] = acc
    s[:, (w // 4) * 4 :] = _row_scalar_tail(p, k, (w // 4) * 4, w)
    q = np.pad(s, ((3, 3), (0, 0)), mode="edge")
    t = np.empty((h, w), np.float32)
    np.multiply(q[3 : 3 + h], k[3], out=acc)
    t[...] = acc
    pair = np.empty((h, w), np.float32)
    k32 = k.astype(np.float32)
    tail = (w // 8) * 8  # columns after the last whole 8-lane vector: OpenCV's scalar loop, no FMA
    plain = q[3 : 3 + h, tail:] * k32[3]
    for i in range(1, 4):
        np.add(q[3 + i : 3 + i + h], q[3 - i : 3 - i + h], out=pair)  # float32 sum, as OpenCV
        np.multiply(pair, k[3 + i], out=acc)
        np.add(acc, t, out=acc)
        t[...] = acc
        plain = plain + pair[:, tail:] * k32[3 + i]
    t[:, tail:] = plain
    return t


def _row_scalar_tail(p: np.ndarray, k: np.ndarray, start: int, w: int) -> np.ndarray:
    """Output columns ``start:w`` of the row pass as OpenCV's scalar loop computes them: taps 1-4 multiplied and
    added separately, taps 5 and 6 fused (found by search, bit-exact against ``cv2.sepFilter2D``)."""
    taps = [p[:, i + start : i + w].astype(np.float32) for i in range(7)]
    k32 = k.astype(np.float32)
    out = taps[0] * k32[0]
    for i in range(1, 5):
        out = out + taps[i] * k32[i]
    for i in (5, 6):
        out = (taps[i].astype(np.float64) * k[i] + out).astype(np.float32)
    return out


# ---------------------------------------------------------------- resizing


def _matlab_cubic(x: np.ndarray) -> np.ndarray:
    ax = np.abs(x)
    ax2, ax3 = ax * ax, ax * ax * ax
    near = (1.5 * ax3 - 2.5 * ax2 + 1) * (ax <= 1)
    far = (-0.5 * ax3 + 2.5 * ax2 - 4 * ax + 2) * ((ax > 1) & (ax <= 2))
    return near + far


@lru_cache(maxsize=32)
def _matlab_resize_matrix(in_len: int, scale: float) -> sp.csr_matrix:
    """Sparse (out x in) matrix of MATLAB ``imresize`` bicubic weights along one axis (antialiased)."""
    out_len = int(math.ceil(in_len * scale))
    width = 4.0
    kernel: Callable[[np.ndarray], np.ndarray] = _matlab_cubic
    if scale < 1:
        width /= scale
        kernel = lambda t: scale * _matlab_cubic(scale * t)  # noqa: E731
    u = np.arange(1, out_len + 1) / scale + 0.5 * (1 - 1 / scale)
    left = np.floor(u - width / 2)
    taps = int(math.ceil(width)) + 2
    idx = left[:, None] + np.arange(taps)[None, :]
    w = kernel(u[:, None] - idx)
    w /= w.sum(axis=1, keepdims=True)
    mirror = np.concatenate([np.arange(in_len), np.arange(in_len - 1, -1, -1)])  # symmetric borders
    cols = mirror[np.mod(idx.astype(np.int64) - 1, 2 * in_len)]
    rows = np.repeat(np.arange(out_len), taps)
    return sp.csr_matrix((w.ravel(), (rows, cols.ravel())), shape=(out_len, in_len))


def imresize_matlab(x: np.ndarray, scale: float = 0.5) -> np.ndarray:
    """MATLAB ``imresize(x, scale)`` on a double image: bicubic, antialiased when shrinking, no rounding."""
    rows = _matlab_resize_matrix(x.shape[0], scale)
    cols = _matlab_resize_matrix(x.shape[1], scale)
    y = rows @ x  # MATLAB resizes dimension 1 first when both scales are equal
    return np.asarray((cols @ y.T).T)


@lru_cache(maxsize=32)
def _opencv_cubic_taps(in_len: int, out_len: int) -> tuple[np.ndarray, np.ndarray]:
    """OpenCV's INTER_CUBIC taps along one axis: float32 weights (out x 4) and clamped source indices.

    As ``cv::resize``: ``fx = (float)((dx + 0.5) * scale - 0.5)``, ``interpolateCubic`` (A = -0.75) evaluated in
    float32 arithmetic, replicate borders.
    """
    f32 = np.float32
    scale = 1.0 / (out_len / in_len)
    fx = ((np.arange(out_len) + 0.5) * scale - 0.5).astype(f32)
    sx = np.floor(fx)
    x = (fx - sx).astype(f32)
    a, one = f32(-0.75), f32(1)
    x1, omx = x + one, one - x
    c0 = ((a * x1 - f32(5) * a) * x1 + f32(8) * a) * x1 - f32(4) * a
    c1 = ((a + f32(2)) * x - (a + f32(3))) * x * x + one
    c2 = ((a + f32(2)) * omx - (a + f32(3))) * omx * omx + one
    c3 = one - c0 - c1 - c2
    idx = np.clip(sx.astype(np.int64)[:, None] + np.arange(-1, 3)[None, :], 0, in_len - 1)
    return np.stack([c0, c1, c2, c3], axis=1).astype(f32), idx


def resize_opencv_cubic(x: np.ndarray, out_h: int, out_w: int) -> np.ndarray:
    """OpenCV ``resize(x, (out_w, out_h), INTER_CUBIC)`` of a float32 image, bit for bit (its C++/SIMD path).

    The horizontal pass sums ``S0*a0 + S1*a1 + S2*a2 + S3*a3`` left to right in float32; the vertical pass
    sums ``S0*b0 + (S1*b1 + (S2*b2 + S3*b3))`` (OpenCV's SIMD order) over whole groups of 4 columns and left
    to right on the remaining columns (its scalar tail). Checked bit-exact against ``cv2.resize`` with IPP
    switched off (``cv2.ipp.setUseIPP(False)``); with IPP on (the default of the pip wheels) OpenCV runs Intel's
    own cubic code, whose weights differ in the last bit. Same size returns a copy, as OpenCV does.
    """
    if (out_h, out_w) == x.shape:
        return x.copy()
    src = x.astype(np.float32)
    ax, ix = _opencv_cubic_taps(src.shape[1], out_w)
    s = [src[:, ix[:, k]] for k in range(4)]
    horiz = ((s[0] * ax[:, 0] + s[1] * ax[:, 1]) + s[2] * ax[:, 2]) + s[3] * ax[:, 3]
    by, iy = _opencv_cubic_taps(src.shape[0], out_h)
    r = [horiz[iy[:, k]] for k in range(4)]
    b = [by[:, k, None] for k in range(4)]
    out = r[0] * b[0] + (r[1] * b[1] + (r[2] * b[2] + r[3] * b[3]))
    tail = (out_w // 4) * 4
    if tail < out_w:
        out[:, tail:] = (((r[0] * b[0] + r[1] * b[1]) + r[2] * b[2]) + r[3] * b[3])[:, tail:]
    return out


# ---------------------------------------------------------------- distribution fits

GAMMA_GRID = 0.2 + 0.001 * np.arange(9801)  # MATLAB 0.2:0.001:10
R_GAMMA = gamma_fn(2 / GAMMA_GRID) ** 2 / (gamma_fn(1 / GAMMA_GRID) * gamma_fn(3 / GAMMA_GRID))


def aggd_rhatnorm(v: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Left std, right std and normalised r-hat of each row of ``v`` (NaN where a side is empty).

    Zeros count in the row length (the means) but on neither side, as in MATLAB and OpenCV.
    """
    neg, pos = np.minimum(v, 0), np.maximum(v, 0)
    neg_sq, pos_sq = np.einsum("ij,ij->i", neg, neg), np.einsum("ij,ij->i", pos, pos)
    n = v.shape[1]
    with np.errstate(invalid="ignore", divide="ignore"):
        left = np.sqrt(neg_sq / np.count_nonzero(neg, axis=1))
        right = np.sqrt(pos_sq / np.count_nonzero(pos, axis=1))
        ghat = left / right
        rhat = ((pos.sum(axis=1) - neg.sum(axis=1)) / n) ** 2 / ((neg_sq + pos_sq) / n)
        rnorm = rhat * (ghat**3 + 1) * (ghat + 1) / (ghat**2 + 1) ** 2
    return left, right, rnorm


def nearest_gamma(rnorm: np.ndarray, ties_upper: bool = False) -> np.ndarray:
    """Grid shape whose r(gamma) is nearest to each ``rnorm`` (r is strictly increasing on the grid).

    Equals MATLAB's ``min((r_gam - rnorm).^2)`` (first index on ties; 0.2 for NaN) and, with ``ties_upper``,
    OpenCV's walk that stops when |r(gamma) - rnorm| starts to grow (it keeps going on ties).
    """
    hi = np.clip(np.searchsorted(R_GAMMA, np.nan_to_num(rnorm, nan=-np.inf)), 1, len(R_GAMMA) - 1)
    lo = hi - 1
    d_lo, d_hi = (R_GAMMA[lo] - rnorm) ** 2, (R_GAMMA[hi] - rnorm) ** 2
    pick_hi = d_hi <= d_lo if ties_upper else d_hi < d_lo
    idx = np.where(pick_hi, hi, lo)
    return np.where(np.isnan(rnorm), GAMMA_GRID[0], GAMMA_GRID[idx])


# ---------------------------------------------------------------- scorer shell


class ClassicalScorer:
    """Shared Scorer shell: per-crop scoring through ``score_image``, errors recorded, never raised.

    Subclasses set ``name``, ``score_range``, ``min_size`` (width, height) and implement ``_score``.
    """

    name: str = ""
    higher_is_better: bool = False
    score_range: tuple[float, float] = (0.0, 100.0)
    min_size: tuple[int, int] = (1, 1)

    def _score(self, image: ImageLike) -> float:
        raise NotImplementedError

    def score_image(self, image: ImageLike) -> float:
        """The score of one image; raises NotScorableError with the reason when it cannot be scored."""
        h, w = (image.size[1], image.size[0]) if isinstance(image, Image.Image) else np.shape(image)[:2]
        mw, mh = self.min_size
        if w < mw or h < mh:
            raise NotScorableError(f"{self.name} needs at least {mw}x{mh} pixels, got {w}x{h}")
        return float(self._score(image))

    def score_crops(self, crops: Sequence[Crop]) -> list[CropScore]:
        return [self._score_crop(c) for c in crops]

    def _score_crop(self, crop: Crop) -> CropScore:
        try:
            return CropScore(score=self.score_image(crop.image))
        except NotScorableError as exc:
            return CropScore(score=None, error=f"not scorable: {exc}", extra={"not_scorable": True})
        except Exception as exc:  # a bad crop must not stop the run
            return CropScore(score=None, error=f"{self.name} failed: {type(exc).__name__}: {exc}")

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"
