"""The tiny offline models: tokenizer facts the readouts rely on, determinism, loading without torchvision."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from PIL import Image

from dogiqa.testing import QUALITY_WORDS, build_tiny_qwen25vl


def _tokenizer(folder: Path):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(folder))


@pytest.mark.parametrize("fixture", ["tiny_qwen2vl_dir", "tiny_idefics3_dir"])
def test_levels_and_quality_words_are_single_tokens(fixture: str, request: pytest.FixtureRequest) -> None:
    tok = _tokenizer(request.getfixturevalue(fixture))
    ids = {d: tok.encode(str(d), add_special_tokens=False) for d in range(1, 10)}
    assert all(len(v) == 1 for v in ids.values()), ids
    assert len({v[0] for v in ids.values()}) == 9
    for word in QUALITY_WORDS:
        assert len(tok.encode(word, add_special_tokens=False)) == 1, word
        assert len(tok.encode(" " + word, add_special_tokens=False)) == 1, word
    assert len(tok.encode("10", add_special_tokens=False)) == 2
    assert tok.decode(tok.encode(" good 7", add_special_tokens=False)) == " good 7"


def test_folder_files(tiny_qwen2vl_dir: Path, tiny_idefics3_dir: Path) -> None:
    for folder in (tiny_qwen2vl_dir, tiny_idefics3_dir):
        names = {p.name for p in folder.iterdir()}
        assert {"config.json", "model.safetensors", "tokenizer.json", "processor_config.json"} <= names
    qwen = json.loads((tiny_qwen2vl_dir / "processor_config.json").read_text())
    assert qwen["video_processor"]["video_processor_type"] == "Qwen2VLVideoProcessor"


def test_same_seed_same_weights(tmp_path: Path) -> None:
    a = build_tiny_qwen25vl(tmp_path / "a", seed=3)
    b = build_tiny_qwen25vl(tmp_path / "b", seed=3)
    c = build_tiny_qwen25vl(tmp_path / "c", seed=4)
    blob = {p: (p / "model.safetensors").read_bytes() for p in (a, b, c)}
    assert blob[a] == blob[b]
    assert blob[a] != blob[c]


def test_sample_images(sample_images_dir: Path) -> None:
    files = sorted(sample_images_dir.iterdir())
    assert {f.suffix for f in files} == {".png", ".jpg"}
    sizes = {Image.open(f).size for f in files}
    assert len(sizes) == len(files)
    assert all(Image.open(f).mode == "RGB" for f in files)


def test_loads_and_runs_without_torchvision(tiny_qwen2vl_dir: Path, sample_images_dir: Path) -> None:
    """Load processor + model from the folder (image-only processor, PIL image processor), one forward."""
    import torch
    from transformers import AutoConfig, AutoModelForImageTextToText

    from dogiqa.backends.hf_compat import image_only_processor_class

    folder = str(tiny_qwen2vl_dir)
    proc = image_only_processor_class(AutoConfig.from_pretrained(folder).model_type).from_pretrained(folder)
    assert type(proc.image_processor).__name__.endswith("Pil"), type(proc.image_processor)
    model = AutoModelForImageTextToText.from_pretrained(folder).eval()
    img = Image.open(sorted(sample_images_dir.iterdir())[0]).convert("RGB")
    msgs = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "score"}]}]
    text = proc.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True)
    with torch.no_grad():
        out = model(**proc(text=[text], images=[[img]], return_tensors="pt")).logits
    assert out.shape[-1] == model.config.text_config.vocab_size
    assert "torchvision" not in sys.modules
