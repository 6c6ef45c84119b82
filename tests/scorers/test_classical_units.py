"""Unit behaviour of the classical scorers: attributes, not-scorable crops, batching, input forms."""

from __future__ import annotations

import math

import numpy as np
import pytest
from PIL import Image

from dogiqa.registry import SCORERS
from dogiqa.scorers._classical import imresize_matlab
from dogiqa.scorers.base import Crop, Scorer
from dogiqa.scorers.brisque import BRISQUEScorer
from dogiqa.scorers.niqe import NIQEScorer
from dogiqa.scorers.piqe import PIQEScorer

CLASSES = [NIQEScorer, BRISQUEScorer, PIQEScorer]


def _texture(h: int, w: int, seed: int = 0) -> Image.Image:
    """A smooth random texture with some noise: scorable by every method."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w]
    base = 128 + 60 * np.sin(x / 7.0 + rng.random()) * np.cos(y / 11.0) + rng.normal(0, 12, (h, w))
    rgb = np.stack([base, base * 0.9 + 10, base * 0.8 + 20], axis=-1)
    return Image.fromarray(np.clip(rgb, 0, 255).astype(np.uint8))


@pytest.mark.parametrize("name,cls", [("niqe", NIQEScorer), ("brisque", BRISQUEScorer), ("piqe", PIQEScorer)])
def test_registry_builds_the_class(name: str, cls: type) -> None:
    scorer = SCORERS.build(name)
    assert type(scorer) is cls
    assert isinstance(scorer, Scorer)
    assert scorer.name == name


@pytest.mark.parametrize("cls", CLASSES)
def test_direction_and_range(cls: type) -> None:
    s = cls()
    assert s.higher_is_better is False
    lo, hi = s.score_range
    assert lo == 0.0 and hi > lo
    score = s.score_crops([Crop(_texture(200, 240))])[0].score
    assert score is not None and lo <= score <= hi


@pytest.mark.parametrize(
    "cls,size",
    [(NIQEScorer, (95, 300)), (NIQEScorer, (300, 95)), (BRISQUEScorer, (31, 64)), (PIQEScorer, (15, 40))],
)
def test_tiny_crop_is_not_scorable_and_does_not_raise(cls: type, size: tuple[int, int]) -> None:
    small, big = _texture(size[1], size[0]), _texture(200, 200)
    out = cls().score_crops([Crop(small), Crop(big)])
    assert out[0].score is None and not out[0].valid
    assert out[0].error.startswith("not scorable:")
    assert f"{size[0]}x{size[1]}" in out[0].error
    assert out[1].valid  # the bad crop does not affect its neighbour


@pytest.mark.parametrize("cls", CLASSES)
def test_empty_crop_is_not_scorable(cls: type) -> None:
    out = cls().score_crops([Crop(Image.new("RGB", (0, 120)))])[0]
    assert out.score is None and out.error.startswith("not scorable:")


def test_niqe_scores_exactly_one_block() -> None:
    assert NIQEScorer().score_crops([Crop(_texture(96, 96))])[0].valid


@pytest.mark.parametrize("cls", CLASSES)
def test_batch_equals_single(cls: type) -> None:
    crops = [Crop(_texture(h, w, seed=i)) for i, (h, w) in enumerate([(200, 240), (130, 100), (160, 300)])]
    s = cls()
    batch = [c.score for c in s.score_crops(crops)]
    single = [s.score_crops([c])[0].score for c in crops]
    assert batch == single
    assert len(set(batch)) == 3  # different crops, different scores


@pytest.mark.parametrize("cls", CLASSES)
def test_grey_input_equals_rgb_with_equal_channels(cls: type) -> None:
    grey = _texture(200, 240).convert("L")
    s = cls()
    a, b = s.score_crops([Crop(grey), Crop(grey.convert("RGB"))])
    assert a.score == pytest.approx(b.score, abs=1e-9)


@pytest.mark.parametrize("cls", CLASSES)
def test_other_modes_and_arrays_are_accepted(cls: type) -> None:
    img = _texture(200, 240)
    s = cls()
    ref = s.score_image(img)
    assert s.score_image(np.asarray(img)) == pytest.approx(ref)
    assert s.score_image(img.convert("RGBA")) == pytest.approx(ref)
    assert math.isfinite(s.score_image(img.convert("P")))


def test_flat_crop_handling() -> None:
    flat = Crop(Image.new("RGB", (128, 128), (90, 120, 150)))
    niqe, brisque, piqe = (cls().score_crops([flat])[0] for cls in CLASSES)
    assert niqe.score is None and niqe.error.startswith("not scorable:")
    assert brisque.score is None and brisque.error.startswith("not scorable:")
    assert piqe.score == 100.0  # MATLAB: a uniform image has no active block and scores 100


def test_distortion_raises_piqe_and_niqe() -> None:
    clean = _texture(384, 384)
    blurred = clean.resize((48, 48), Image.BILINEAR).resize((384, 384), Image.NEAREST)  # blocky
    for cls in (NIQEScorer, PIQEScorer):
        s = cls()
        assert s.score_image(blurred) > s.score_image(clean), cls.__name__


def test_matlab_imresize_matches_pil_bicubic_away_from_borders() -> None:
    # PIL's BICUBIC downscale uses the same Keys kernel (a=-0.5) widened by 1/scale; only borders differ.
    x = np.random.default_rng(1).random((64, 80)).astype(np.float32) * 255
    ours = imresize_matlab(x.astype(np.float64), 0.5)
    pil = np.asarray(Image.fromarray(x, mode="F").resize((40, 32), Image.BICUBIC))
    assert ours.shape == (32, 40)
    np.testing.assert_allclose(ours[4:-4, 4:-4], pil[4:-4, 4:-4], atol=1e-3)


def test_matlab_imresize_keeps_constants_and_odd_sizes() -> None:
    out = imresize_matlab(np.full((45, 33), 7.5), 0.5)
    assert out.shape == (23, 17)
    np.testing.assert_allclose(out, 7.5)


def _truncated_png(tmp_path, size=(200, 200)) -> Image.Image:
    path = tmp_path / "cut.png"
    _texture(size[1], size[0]).save(path)
    path.write_bytes(path.read_bytes()[:2000])  # header intact, pixel data cut short
    return Image.open(path)  # lazy: decoding fails only when the scorer touches the pixels


@pytest.mark.parametrize("cls", CLASSES)
def test_undecodable_crop_is_recorded_not_raised(cls: type, tmp_path) -> None:
    out = cls().score_crops([Crop(_truncated_png(tmp_path)), Crop(_texture(200, 200))])
    assert out[0].score is None and cls.name in out[0].error and "OSError" in out[0].error
    assert out[1].valid
