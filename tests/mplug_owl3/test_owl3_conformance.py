"""Acceptance: our mPLUG-Owl3 computes what the authors' code computed (shared/reference/mplug-owl3-tiny)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from dogiqa.backends.mplug_owl3.modeling import paper_mask_and_positions
from dogiqa.standards import get_standard

CASES = ["wide_global", "tall_global", "small_global", "small_local"]


def decode_pixels(u8: np.ndarray) -> np.ndarray:
    """The fixture README's lossless code for the processor's float32 pixel values."""
    return (u8.astype(np.float32) / np.float32(255) - np.float32(0.5)) / np.float32(0.5)


def _case(cases: dict, name: str) -> dict:
    return next(c for c in cases["cases"] if c["case"] == name)


def _image(fixture_dir, case: dict) -> Image.Image:
    image = Image.open(fixture_dir / case["image"]).convert("RGB")
    if case["call"] == "local":  # eval.py passes crops as Image.fromarray(np.array(...))
        image = Image.fromarray(np.array(image))
    return image


def _prompt(case: dict):
    return get_standard("word", 7).prompt(case["call"], paper_whitespace=True)


def test_fixture_lists_the_four_cases(cases):
    assert sorted(c["case"] for c in cases["cases"]) == sorted(CASES)


@pytest.mark.parametrize("name", CASES)
def test_messages_are_byte_identical(backend, cases, name):
    case = _case(cases, name)
    assert backend.messages(_prompt(case)) == case["messages"]
    assert get_standard("word", 7).system == cases["system"]
    assert get_standard("word", 7).query == cases["query"]


@pytest.mark.parametrize("name", CASES)
def test_processor_outputs(backend, cases, tensors, fixture_dir, name):
    case = _case(cases, name)
    out = backend.processor([dict(m) for m in case["messages"]], [_image(fixture_dir, case)])
    assert out["messages"] == case["messages_after_processor"]
    assert out["input_ids"][0].tolist() == case["input_ids"]
    np.testing.assert_array_equal(out["input_ids"].numpy(), tensors[f"{name}/input_ids"])
    np.testing.assert_array_equal(out["media_offset"].numpy(), tensors[f"{name}/media_offset"])
    assert [list(s) for s in out["cut_shapes"]] == case["cut_shape"][:1]
    ref = decode_pixels(tensors[f"{name}/pixel_values_u8"])
    assert out["pixel_values"].shape == ref.shape == (case["n_crops"], 3, 384, 384)
    np.testing.assert_allclose(out["pixel_values"].numpy(), ref, rtol=0, atol=1e-3)
    # The backend's own encoding (standard prompt -> ids) gives the same ids.
    enc = backend.encode(_image(fixture_dir, case), _prompt(case))
    assert enc["input_ids"][0].tolist() == case["input_ids"]


@pytest.mark.parametrize("name", CASES)
def test_image_embeds(backend, tensors, name):
    pixels = torch.from_numpy(decode_pixels(tensors[f"{name}/pixel_values_u8"]))
    with torch.inference_mode():
        embeds = backend.model.forward_image(pixels)
    np.testing.assert_allclose(embeds.numpy(), tensors[f"{name}/image_embeds"], rtol=0, atol=1e-4)


@pytest.mark.parametrize("name", CASES)
def test_paper_mask_and_positions(tensors, cases, name):
    mask, pos = paper_mask_and_positions(torch.from_numpy(tensors[f"{name}/input_ids"]))
    np.testing.assert_array_equal(mask.numpy(), tensors[f"{name}/attention_mask"])
    np.testing.assert_array_equal(pos.numpy(), tensors[f"{name}/position_ids"])
    assert np.flatnonzero(mask.numpy()[0] == 0).tolist() == _case(cases, name)["pad_masked_positions"]


@pytest.fixture(scope="module")
def encoded(backend, cases, fixture_dir) -> dict:
    """Each case encoded once by the backend (standard prompt -> ids, media offsets, pixels)."""
    return {c["case"]: backend.encode(_image(fixture_dir, c), _prompt(c)) for c in cases["cases"]}


@pytest.fixture(scope="module")
def single_logits(backend, encoded):
    """Cached one-item forwards: (mode, case) -> logits."""
    cache: dict = {}

    def get(mode: str, name: str) -> torch.Tensor:
        if (mode, name) not in cache:
            backend.attention_mask = mode
            try:
                cache[mode, name] = backend.logits([encoded[name]])[0]
            finally:
                backend.attention_mask = "paper"
        return cache[mode, name]

    return get


@pytest.mark.parametrize("name", CASES)
def test_logits_and_generated_token_paper_mode(backend, cases, tensors, single_logits, name):
    case = _case(cases, name)
    logits = single_logits("paper", name)
    np.testing.assert_allclose(logits.numpy(), tensors[f"{name}/logits"], rtol=0, atol=1e-4)
    top = int(logits.argmax())
    assert top == case["generated_id"] == case["logits_argmax"]
    assert backend.decode(top) == case["generate_output"][0]


def _batched(backend, encoded, mode: str) -> torch.Tensor:
    backend.attention_mask = mode
    try:
        return backend.logits([encoded[name] for name in CASES])
    finally:
        backend.attention_mask = "paper"


def test_logits_fixed_mode_equal_full_mask_reference(backend, encoded, tensors):
    """Fixed mode (all-ones mask), all cases in one left-padded batch."""
    logits = _batched(backend, encoded, "fixed")
    for row, name in zip(logits, CASES, strict=True):
        np.testing.assert_allclose(row.numpy(), tensors[f"{name}/logits_full_mask"], rtol=0, atol=1e-4)
        # The two modes really differ on this fixture (its `!` tokens have id 0).
        assert np.abs(row.numpy() - tensors[f"{name}/logits"]).max() > 1e-2


def test_batched_equals_single(backend, encoded, single_logits):
    items = [encoded[name] for name in CASES]
    assert len({it["input_ids"].shape[1] for it in items}) > 1  # left padding is exercised
    assert len({it["pixel_values"].shape[0] for it in items}) > 1  # and different image counts
    single = torch.stack([single_logits("paper", name) for name in CASES])
    batched = _batched(backend, encoded, "paper")
    np.testing.assert_allclose(batched.numpy(), single.numpy(), rtol=0, atol=1e-4)


def test_backend_run_end_to_end(backend, cases, fixture_dir):
    """As a scorer calls it: PIL images + the paper prompt -> the reference answer token, per call kind."""
    standard = get_standard("word", 7)
    backend.check_candidates(standard.level_tokens)
    for name in ("wide_global", "small_local"):
        case = _case(cases, name)
        prompt = standard.prompt(case["call"], paper_whitespace=True)
        [out] = backend.run([_image(fixture_dir, case)], prompt, standard.level_tokens)
        assert out.error is None
        assert out.meta["token_id"] == case["generated_id"]
        assert out.text == case["generate_output"][0]
        assert set(out.logprobs) == set(standard.level_tokens)
        assert all(lp < 0 for lp in out.logprobs.values())
