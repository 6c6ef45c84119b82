"""mPLUG-Owl3 pieces that need no shared fixture: a tiny random model of the real architecture."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from dogiqa.backends.base import BackendError, Prompt
from dogiqa.backends.mplug_owl3 import is_mplug_owl3
from dogiqa.backends.mplug_owl3.processing import GRID_SQU_6, MplugOwl3Processor, cut_prompt, select_anchor
from dogiqa.testing.tiny_owl3 import build_tiny_mplug_owl3


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory) -> Path:
    return build_tiny_mplug_owl3(tmp_path_factory.mktemp("owl3-tiny"), max_shard_size="20KB")


@pytest.fixture(scope="module")
def tiny_backend(tiny_dir):
    from dogiqa.backends.mplug_owl3.backend import MplugOwl3Backend

    return MplugOwl3Backend(str(tiny_dir), dtype="float32")


def _images() -> list[Image.Image]:
    rng = np.random.default_rng(0)
    sizes = [(64, 40), (20, 70), (30, 30), (90, 25)]  # different grids -> different crop counts
    return [Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)) for w, h in sizes]


PROMPT = Prompt(before_image=" Rate it!\n1: Bad!\n2: Good!\n", after_image="\nAnswer with one digit!")


def test_is_mplug_owl3(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "config.json").write_text(json.dumps({"model_type": "mplugowl3"}))
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "config.json").write_text(json.dumps({"model_type": "qwen2_vl"}))
    (tmp_path / "c").mkdir()
    assert is_mplug_owl3(str(tmp_path / "a"))
    assert not is_mplug_owl3(str(tmp_path / "b"))
    assert not is_mplug_owl3(str(tmp_path / "c"))
    assert is_mplug_owl3("mPLUG/mPLUG-Owl3-7B-240728")
    assert is_mplug_owl3("someone/MPLUG-OWL3-2B-241014")
    assert not is_mplug_owl3("Qwen/Qwen2-VL-7B-Instruct")


def _anchor_reference(width: int, height: int) -> int:
    """The original's ranking restated with integer torch boxes (float32 IoU, truncating int assignment)."""
    anchors = torch.tensor([[0, 0, c * 384, r * 384] for r, c in GRID_SQU_6])
    image = torch.tensor([[0, 0, width, height]])

    def iou(b1, b2):
        area1 = (b1[:, 2] - b1[:, 0]) * (b1[:, 3] - b1[:, 1])
        area2 = (b2[:, 2] - b2[:, 0]) * (b2[:, 3] - b2[:, 1])
        lt = torch.max(b1[:, None, :2], b2[:, :2])
        rb = torch.min(b1[:, None, 2:], b2[:, 2:])
        wh = (rb - lt).clamp(min=0)
        inter = wh[:, :, 0] * wh[:, :, 1]
        return inter / (area1[:, None] + area2 - inter + 1e-5)

    shaped = anchors.clone()
    shaped[:, 3] = height / width * anchors[:, 2]
    score = iou(anchors, shaped).diag() * 100 + iou(anchors, image)[:, 0]
    return int(torch.argmax(score))


def test_anchor_selection():
    assert GRID_SQU_6[select_anchor(640, 480, GRID_SQU_6)] == (2, 3)  # the fixture README's grids
    assert GRID_SQU_6[select_anchor(300, 900, GRID_SQU_6)] == (3, 1)
    assert GRID_SQU_6[select_anchor(48, 40, GRID_SQU_6)] == (2, 2)
    rng = np.random.default_rng(1)
    for w, h in [
        *rng.integers(16, 4000, (300, 2)).tolist(),
        (768, 1152),
        (1152, 768),
        (384, 1536),
        (1000, 1000),
    ]:
        assert select_anchor(w, h, GRID_SQU_6) == _anchor_reference(w, h), (w, h)


def test_cut_prompt_and_chunks():
    assert cut_prompt(2, 3) == (
        "Cut to 2 rows 3 columns with a global view\n"
        "subimg(0,0)<|image|> subimg(0,1)<|image|> subimg(0,2)<|image|>\n"
        "subimg(1,0)<|image|> subimg(1,1)<|image|> subimg(1,2)<|image|>\n"
        "global_view<|image|>"
    )
    chunks = MplugOwl3Processor.chunks(
        [{"role": "user", "content": "a<|image|>b"}, {"role": "assistant", "content": "x"}]
    )
    assert chunks == [
        "<|im_start|>system\n<|im_end|>",
        "\n<|im_start|>user\na",
        "<|image|>",
        "b<|im_end|>",
        "\n<|im_start|>assistant\n",
    ]
    with_system = MplugOwl3Processor.chunks([{"role": "system", "content": "S"}, {"role": "user", "content": "u"}])
    assert with_system == ["<|im_start|>system\nS<|im_end|>", "\n<|im_start|>user\nu<|im_end|>"]


def test_checkpoint_uses_official_weight_names(tiny_dir):
    index = json.loads((tiny_dir / "model.safetensors.index.json").read_text())
    names = set(index["weight_map"])
    assert len(set(index["weight_map"].values())) > 1  # sharded
    for name in [
        "language_model.model.embed_tokens.weight",
        "language_model.lm_head.weight",
        "language_model.model.norm.weight",
        "language_model.model.layers.0.self_attn.v_kv_proj.weight",
        "language_model.model.layers.0.self_attn.gate_proj.0.weight",
        "language_model.model.layers.2.self_attn.gate_proj.0.bias",
        "language_model.model.layers.1.mlp.down_proj.weight",
        "vision_model.embeddings.patch_embedding.weight",
        "vision_model.encoder.layers.1.self_attn.q_proj.weight",
        "vision2text_model.weight",
    ]:
        assert name in names, name
    assert "language_model.model.layers.1.self_attn.v_kv_proj.weight" not in names  # not a hyper layer


def test_forward_image_is_second_to_last_siglip_layer(tiny_backend):
    model = tiny_backend.model
    pixels = torch.randn(3, 3, 28, 28)
    with torch.inference_mode():
        states = model.vision_model(pixels, output_hidden_states=True).hidden_states
        expected = model.vision2text_model(states[-2])
        got = model.forward_image(pixels)
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-5)
    assert not torch.allclose(got, model.vision2text_model(states[-1]))


def test_batched_equals_single_and_modes_differ(tiny_backend):
    items = [tiny_backend.encode(im, PROMPT) for im in _images()]
    assert len({it["pixel_values"].shape[0] for it in items}) > 1
    assert (items[0]["input_ids"] == 0).any()  # "!" is id 0: the paper mask hides it
    results = {}
    for mode in ("paper", "fixed"):
        tiny_backend.attention_mask = mode
        try:
            single = torch.stack([tiny_backend.logits([it])[0] for it in items])
            batched = tiny_backend.logits(items)
        finally:
            tiny_backend.attention_mask = "paper"
        torch.testing.assert_close(batched, single, rtol=0, atol=1e-4)
        results[mode] = single
    assert (results["paper"] - results["fixed"]).abs().max() > 1e-3


def test_images_reach_only_later_tokens(tiny_backend):
    """Tokens before an image's placeholder ignore it; the answer position depends on it."""
    model = tiny_backend.model
    a, b = (tiny_backend.encode(im, PROMPT) for im in _images()[2:4])
    b["input_ids"], b["media_offset"] = a["input_ids"], a["media_offset"]
    b["pixel_values"] = b["pixel_values"][: a["pixel_values"].shape[0]]
    with torch.inference_mode():
        la, lb = (model(it["input_ids"], it["media_offset"], it["pixel_values"], logits_to_keep=0)[0] for it in (a, b))
    first = int(torch.nonzero(a["media_offset"][0, :, 1])[0])  # the token after the first placeholder
    torch.testing.assert_close(la[:first], lb[:first], rtol=0, atol=1e-6)
    assert (la[-1] - lb[-1]).abs().max() > 1e-4


def test_dtypes_and_device_map(tiny_dir, tiny_backend):
    from dogiqa.backends.mplug_owl3.modeling import MplugOwl3Model

    model = MplugOwl3Model.from_pretrained(str(tiny_dir), dtype=torch.bfloat16, device_map="cpu")
    assert {p.dtype for p in model.parameters()} == {torch.bfloat16}
    item = tiny_backend.encode(_images()[0], PROMPT)
    with torch.inference_mode():  # no mask given: all-ones mask, as the backend's "fixed" mode
        logits = model(item["input_ids"], item["media_offset"], item["pixel_values"])[0, -1]
    tiny_backend.attention_mask = "fixed"
    try:
        reference = tiny_backend.logits([item])[0]
    finally:
        tiny_backend.attention_mask = "paper"
    assert logits.dtype == torch.float32 and torch.isfinite(logits).all()
    assert (logits - reference).abs().max() < 0.1  # bf16 stays close to the float32 answer


def test_run_outputs_and_errors(tiny_backend, tmp_path):
    images = _images()[:2]
    images.insert(1, Image.new("RGB", (0, 0)))  # unusable image: an error for that item only
    outs = tiny_backend.run(images, PROMPT, ["1", "2"])
    assert outs[1].error and outs[1].logprobs is None
    for out in (outs[0], outs[2]):
        assert out.error is None and set(out.logprobs) == {"1", "2"}
        assert isinstance(out.text, str) and isinstance(out.meta["token_id"], int)
        total = sum(np.exp(v) for v in out.logprobs.values())
        assert 0 < total < 1
    with pytest.raises(BackendError, match="not one"):
        tiny_backend.check_candidates(["12"])
    with pytest.raises(BackendError, match="does-not-exist"):
        from dogiqa.backends.mplug_owl3.backend import MplugOwl3Backend

        MplugOwl3Backend(str(tmp_path / "does-not-exist"))
    with pytest.raises(BackendError, match="attention_mask"):
        from dogiqa.backends.mplug_owl3.backend import MplugOwl3Backend

        MplugOwl3Backend("x", attention_mask="other")
