"""The quality map: regions coloured by score on a perceptually uniform map, worst at its dark end, with a bar."""

from __future__ import annotations

import numpy as np
import pytest
from matplotlib import colormaps
from PIL import Image

from dogiqa.report.page import one_line_error, summarize_config
from dogiqa.report.quality_map import colour_of, render, render_quality_map, score_scale
from dogiqa.results import ImageResult, RegionRecord


def _viridis(t: float) -> np.ndarray:
    return np.array(colormaps["viridis"](t)[:3]) * 255


def _two_regions(low: float | None, high: float, config: dict) -> tuple[ImageResult, list[np.ndarray]]:
    left = np.zeros((60, 100), bool)
    left[:, :50] = True
    right = ~left
    regions = [
        RegionRecord(0, "mask", (0, 0, 50, 60), 3000.0, 3000, score=low),
        RegionRecord(1, "mask", (50, 0, 100, 60), 3000.0, 3000, score=high),
    ]
    return ImageResult(path="x.png", score=high, regions=regions, config=config), [left, right]


def test_worst_region_takes_the_dark_end_and_best_the_bright_end() -> None:
    grey = Image.new("RGB", (100, 60), (128, 128, 128))
    result, masks = _two_regions(1.0, 7.0, {"scorer": "mllm", "readout": "expected", "levels": 7})
    out = np.asarray(render_quality_map(grey, result, masks, labels=False, colorbar=False, alpha=1.0)).astype(float)
    assert out.shape == (60, 100, 3)
    np.testing.assert_allclose(out[30, 20], _viridis(0.0), atol=2)  # level 1: worst
    np.testing.assert_allclose(out[30, 80], _viridis(1.0), atol=2)  # level 7: best
    assert out[30, 20].sum() < out[30, 80].sum() - 200  # the bad region is much darker: it stands out


def test_lower_is_better_scorers_are_flipped_and_missing_scores_are_grey() -> None:
    scale = score_scale({"scorer": "piqe"})
    assert (scale.lo, scale.hi, scale.higher_is_better) == (0.0, 100.0, False)
    assert np.allclose(colour_of(scale, 100.0), _viridis(0.0), atol=1)  # PIQE 100 is the worst
    assert np.allclose(colour_of(scale, 0.0), _viridis(1.0), atol=1)
    assert colour_of(scale, None) == (128, 128, 128)
    grey = Image.new("RGB", (100, 60), (10, 200, 10))
    result, masks = _two_regions(None, 20.0, {"scorer": "piqe"})
    out = np.asarray(render_quality_map(grey, result, masks, labels=False, colorbar=False, alpha=1.0))
    assert tuple(out[30, 20]) == (128, 128, 128)


def test_scales_of_readouts_and_open_ranges() -> None:
    assert (score_scale({"readout": "qbench"}).lo, score_scale({"readout": "qbench"}).hi) == (0.0, 1.0)
    assert score_scale({"readout": "qalign"}).hi == 5.0
    assert score_scale({"scorer": "mllm", "levels": 5}).hi == 5.0
    niqe = score_scale({"scorer": "niqe"}, [3.0, 11.5])
    assert niqe.lo == 0.0 and niqe.hi == 11.5  # NIQE has no upper end: the largest value seen


def test_colour_bar_is_added_and_labels_drawn() -> None:
    grey = Image.new("RGB", (200, 150), (128, 128, 128))
    result, _ = _two_regions(2.0, 6.0, {"scorer": "mllm", "levels": 7})
    plain = render_quality_map(grey, result, labels=False, colorbar=False)
    full = render_quality_map(grey, result)
    assert full.size[1] == 150 and full.size[0] > 200 + 20
    bar = np.asarray(full)[:, 200:]
    assert (bar.astype(int).std(axis=(0, 1)) > 10).any()  # a gradient, not blank
    assert not np.array_equal(np.asarray(full)[:, :200], np.asarray(plain))  # score labels drawn


def test_render_styles() -> None:
    grey = Image.new("RGB", (100, 60), (128, 128, 128))
    result, masks = _two_regions(1.0, 7.0, {"levels": 7})
    assert render(grey, result, "regions", masks=masks).size == (100, 60)
    with pytest.raises(ValueError, match="quality, regions"):
        render(grey, result, "rainbow")


def test_one_error_line_and_config_summary() -> None:
    doubled = "a/b.png: cannot decode\n  truncated; cannot decode truncated"
    assert one_line_error("a/b.png", doubled) == "cannot decode truncated"
    assert one_line_error("a/b.png", "b.png: file not found; file not found") == "file not found"
    conf = summarize_config(
        [{"model": "m", "scorer": "mllm", "levels": 7}, {"model": "n", "scorer": "mllm"}], {"preset": "recommended"}
    )
    assert list(conf)[:3] == ["model", "preset", "scorer"] and conf["model"] == "m, n"
