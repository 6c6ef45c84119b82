"""CLIP-IQA on a tiny random CLIP (real CLIPModel architecture) built offline."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from dogiqa.registry import SCORERS
from dogiqa.scorers.base import Crop, Scorer
from dogiqa.scorers.clipiqa import CLIPIQAScorer, ModelNotAvailableError

torch.set_num_threads(1)


def _images(n: int) -> list[Image.Image]:
    rng = np.random.default_rng(3)
    sizes = [(40, 60), (64, 64), (90, 33), (50, 120), (17, 23)]
    return [Image.fromarray(rng.integers(0, 256, (*sizes[i % 5], 3), dtype=np.uint8)) for i in range(n)]


@pytest.fixture(scope="module")
def scorer(tiny_clip_dir: Path) -> CLIPIQAScorer:
    return CLIPIQAScorer(model=str(tiny_clip_dir), local_files_only=True)


def test_attributes_and_registry(tiny_clip_dir: Path) -> None:
    s = SCORERS.build("clipiqa", model=str(tiny_clip_dir), local_files_only=True)
    assert isinstance(s, CLIPIQAScorer) and isinstance(s, Scorer)
    assert s.name == "clipiqa" and s.higher_is_better is True and s.score_range == (0.0, 1.0)


def test_scores_are_probabilities_and_differ(scorer: CLIPIQAScorer) -> None:
    out = scorer.score_crops([Crop(im) for im in _images(5)])
    scores = [o.score for o in out]
    assert all(o.valid and 0.0 <= o.score <= 1.0 for o in out)
    assert all(o.probs is not None and abs(sum(o.probs) - 1) < 1e-5 for o in out)
    assert len({round(s, 6) for s in scores}) == 5


def test_equals_clipmodel_forward_softmax(scorer: CLIPIQAScorer, tiny_clip_dir: Path) -> None:
    from transformers import CLIPImageProcessorPil, CLIPModel, CLIPTokenizer

    model = CLIPModel.from_pretrained(tiny_clip_dir).eval()
    tok = CLIPTokenizer.from_pretrained(tiny_clip_dir)
    proc = CLIPImageProcessorPil.from_pretrained(tiny_clip_dir)
    images = _images(4)
    text = tok(["Good photo.", "Bad photo."], padding=True, return_tensors="pt")
    with torch.no_grad():
        logits = model(**text, pixel_values=proc(images=images, return_tensors="pt")["pixel_values"])
    expected = logits.logits_per_image.softmax(dim=-1)[:, 0].tolist()
    ours = [o.score for o in scorer.score_crops([Crop(im) for im in images])]
    np.testing.assert_allclose(ours, expected, atol=1e-5)


def test_batch_equals_single(tiny_clip_dir: Path) -> None:
    s = CLIPIQAScorer(model=str(tiny_clip_dir), local_files_only=True, batch_size=2)
    crops = [Crop(im) for im in _images(5)]
    batch = [o.score for o in s.score_crops(crops)]
    single = [s.score_crops([c])[0].score for c in crops]
    np.testing.assert_allclose(batch, single, atol=1e-5)


def test_swapped_prompts_give_complement(scorer: CLIPIQAScorer, tiny_clip_dir: Path) -> None:
    swapped = CLIPIQAScorer(
        model=str(tiny_clip_dir), prompts=("Bad photo.", "Good photo."), local_files_only=True
    )
    crops = [Crop(im) for im in _images(3)]
    a = [o.score for o in scorer.score_crops(crops)]
    b = [o.score for o in swapped.score_crops(crops)]
    np.testing.assert_allclose(np.add(a, b), 1.0, atol=1e-5)


def test_several_pairs_average(tiny_clip_dir: Path) -> None:
    pairs = [("Good photo.", "Bad photo."), ("good", "bad")]
    crops = [Crop(im) for im in _images(3)]
    each = [
        [
            o.score
            for o in CLIPIQAScorer(str(tiny_clip_dir), prompts=p, local_files_only=True).score_crops(crops)
        ]
        for p in pairs
    ]
    both = CLIPIQAScorer(str(tiny_clip_dir), prompts=pairs[0] + pairs[1], local_files_only=True)
    np.testing.assert_allclose([o.score for o in both.score_crops(crops)], np.mean(each, axis=0), atol=1e-5)


def test_grey_and_rgba_crops(scorer: CLIPIQAScorer) -> None:
    im = _images(1)[0]
    out = scorer.score_crops([Crop(im.convert("L")), Crop(im.convert("RGBA")), Crop(im)])
    assert all(o.valid for o in out)
    assert out[1].score == pytest.approx(out[2].score, abs=1e-6)


def test_odd_prompt_count_rejected(tiny_clip_dir: Path) -> None:
    with pytest.raises(ValueError, match="pairs"):
        CLIPIQAScorer(str(tiny_clip_dir), prompts=("Good photo.",), local_files_only=True)


def test_missing_folder_gives_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ModelNotAvailableError, match="hf download"):
        CLIPIQAScorer(model="no-such-org/no-such-clip", local_files_only=True)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ModelNotAvailableError, match="empty"):
        CLIPIQAScorer(model=str(empty), local_files_only=True)


def test_folder_without_processor_config_uses_clip_defaults(tiny_clip_dir: Path, tmp_path: Path) -> None:
    bare = tmp_path / "bare"
    shutil.copytree(tiny_clip_dir, bare)
    (bare / "preprocessor_config.json").unlink()
    s = CLIPIQAScorer(str(bare), local_files_only=True)
    ref = CLIPIQAScorer(str(tiny_clip_dir), local_files_only=True)
    crops = [Crop(im) for im in _images(2)]
    np.testing.assert_allclose(
        [o.score for o in s.score_crops(crops)], [o.score for o in ref.score_crops(crops)], atol=1e-5
    )


def test_undecodable_crop_is_recorded_not_raised(scorer: CLIPIQAScorer, tmp_path: Path) -> None:
    path = tmp_path / "cut.png"
    _images(1)[0].resize((200, 200)).save(path)
    path.write_bytes(path.read_bytes()[:2000])
    out = scorer.score_crops([Crop(Image.open(path)), Crop(_images(1)[0]), Crop(Image.new("RGB", (0, 5)))])
    assert out[0].score is None and out[0].error.startswith("clipiqa failed: OSError")
    assert out[1].valid
    assert out[2].score is None and out[2].error.startswith("not scorable: empty crop")
