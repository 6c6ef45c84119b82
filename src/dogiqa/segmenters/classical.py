"""Weight-free segmenters: ``none`` (global only) and scikit-image's Felzenszwalb and SLIC.

They run on a copy downscaled to ``work_side`` pixels on the long side (fast on large photos) and map the
labels back to full resolution. Masks come out largest first, like SAM's typical output order.
"""

from __future__ import annotations

import numpy as np
from PIL import Image


class NoSegmenter:
    """No segmentation: Dog-IQA then falls back to the whole image as the only region."""

    name = "none"

    def segment(self, image: Image.Image) -> list[np.ndarray]:
        return []


class _LabelSegmenter:
    name = "labels"
    parallel = "process"  # scikit-image holds the GIL: the staged pipeline runs these in worker processes

    def __init__(self, work_side: int = 512):
        self.work_side = work_side

    def _labels(self, small: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def segment(self, image: Image.Image) -> list[np.ndarray]:
        w, h = image.size
        scale = min(1.0, self.work_side / max(w, h))
        small = (
            image.resize((max(1, round(w * scale)), max(1, round(h * scale))), Image.BILINEAR) if scale < 1 else image
        )
        labels = self._labels(np.asarray(small.convert("RGB")))
        if labels.shape != (h, w):
            labels = np.asarray(Image.fromarray(labels.astype(np.int32)).resize((w, h), Image.NEAREST))
        ids, counts = np.unique(labels, return_counts=True)
        return [labels == i for i in ids[np.argsort(-counts, kind="stable")]]


class FelzenszwalbSegmenter(_LabelSegmenter):
    """scikit-image's graph-based segmentation (Felzenszwalb & Huttenlocher 2004).

    Defaults give a handful of segments per photo (1-15 on scikit-image's sample photos), about what SAM2
    with Dog-IQA's parameters keeps: segments are at least ``min_size_fraction`` of the image."""

    name = "felzenszwalb"

    def __init__(
        self, scale: float = 1000.0, sigma: float = 0.8, min_size_fraction: float = 0.02, work_side: int = 512
    ):
        super().__init__(work_side)
        self.scale, self.sigma, self.min_size_fraction = scale, sigma, min_size_fraction

    def _labels(self, small: np.ndarray) -> np.ndarray:
        from skimage.segmentation import felzenszwalb

        min_size = max(1, int(self.min_size_fraction * small.shape[0] * small.shape[1]))
        return felzenszwalb(small, scale=self.scale, sigma=self.sigma, min_size=min_size)


class SlicSegmenter(_LabelSegmenter):
    """scikit-image's SLIC superpixels."""

    name = "slic"

    def __init__(self, n_segments: int = 8, compactness: float = 10.0, work_side: int = 512):
        super().__init__(work_side)
        self.n_segments, self.compactness = n_segments, compactness

    def _labels(self, small: np.ndarray) -> np.ndarray:
        from skimage.segmentation import slic

        return slic(small, n_segments=self.n_segments, compactness=self.compactness, start_label=0)
