"""TransformersVLM on tiny random Qwen2-VL and Idefics3: one-pass readout, batching, errors."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from PIL import Image

from dogiqa.backends.base import Backend, BackendError, Prompt
from dogiqa.backends.transformers_vlm import TransformersVLM
from dogiqa.testing.images import make_image

DIGITS = [str(d) for d in range(1, 10)]
PROMPT = Prompt(
    before_image=" You are a helpful assistant to help me evaluate the quality of the image.\n",
    after_image="\nPlease evaluate the quality of the image and score in quality. Only tell me the number.",
    system="",
)
SIZES = [(160, 120), (64, 48), (200, 200), (96, 128), (300, 40), (40, 40), (128, 96)]


@pytest.fixture(scope="module")
def images() -> list[Image.Image]:
    """Mixed sizes and aspect ratios, so batches need left padding."""
    return [make_image(w, h, seed=i) for i, (w, h) in enumerate(SIZES)]


@pytest.fixture(scope="module", params=["qwen2vl", "idefics3"])
def backend(request: pytest.FixtureRequest) -> TransformersVLM:
    folder = request.getfixturevalue(f"tiny_{request.param}_dir")
    return TransformersVLM(str(folder), batch_size=3)


def test_is_a_backend_with_model_id(backend: TransformersVLM) -> None:
    assert isinstance(backend, Backend)
    assert Path(backend.model_id).is_dir()
    assert backend.tokenizer.padding_side == "left"


def test_run_shapes_and_order(backend: TransformersVLM, images: list[Image.Image]) -> None:
    outs = backend.run(images, PROMPT, DIGITS)
    assert len(outs) == len(images)
    for out in outs:
        assert out.error is None
        assert list(out.logprobs) == DIGITS
        assert all(lp <= 0.0 for lp in out.logprobs.values())
        assert isinstance(out.text, str) and out.text
    # the same items in reverse order come back reversed
    rev = backend.run(images[::-1], PROMPT, DIGITS)
    for a, b in zip(outs, rev[::-1], strict=True):
        assert a.meta["token_id"] == b.meta["token_id"]
        assert a.logprobs == pytest.approx(b.logprobs, abs=1e-4)
    assert backend.run([], PROMPT, DIGITS) == []
    assert backend.run(images[:1], PROMPT, DIGITS, want_text=False)[0].text is None


def test_text_is_greedy_generation_and_restricted_argmax(backend: TransformersVLM, images: list) -> None:
    outs = backend.run(images, PROMPT, DIGITS)
    for image, out in zip(images, outs, strict=True):
        gen = backend.generate_one(image, PROMPT)
        assert gen.error is None
        assert out.meta["token_id"] == gen.meta["token_id"]
        assert out.text == gen.text
        # the fixtures favour digits: the generated token is a level, and the paper's parse of it equals
        # the argmax of the same logits restricted to the level tokens
        assert out.text in DIGITS
        assert max(out.logprobs, key=out.logprobs.get) == out.text


def test_batched_equals_one_by_one(backend: TransformersVLM, images: list[Image.Image]) -> None:
    batched = backend.run(images, PROMPT, DIGITS)
    assert max(o.meta["batch"] for o in batched) > 1
    if backend.model_type == "qwen2_vl":  # Idefics3 upsamples every image to the same token count
        assert any(o.meta["tokens"] < o.meta["padded_tokens"] for o in batched), "no left padding exercised"
    for image, b in zip(images, batched, strict=True):
        single = backend.run([image], PROMPT, DIGITS)[0]
        assert single.meta["batch"] == 1
        assert single.text == b.text
        for cand in DIGITS:
            assert abs(single.logprobs[cand] - b.logprobs[cand]) < 1e-4


def test_token_budget_bounds_batches(tiny_qwen2vl_dir: Path, images: list[Image.Image]) -> None:
    small = TransformersVLM(str(tiny_qwen2vl_dir), batch_size=16, max_batch_tokens=250)
    outs = small.run(images, PROMPT, DIGITS)
    for out in outs:
        assert out.meta["batch"] == 1 or out.meta["batch"] * out.meta["padded_tokens"] <= 250
    assert max(o.meta["batch"] for o in outs) >= 2
    assert small.calls > 1


def test_bad_item_does_not_fail_the_batch(tiny_qwen2vl_dir: Path, images: list[Image.Image]) -> None:
    backend = TransformersVLM(str(tiny_qwen2vl_dir), batch_size=8)
    bad = Image.new("RGB", (1000, 3))  # aspect ratio > 200: the Qwen2-VL image processor rejects it
    mixed = [images[0], bad, images[1]]
    outs = backend.run(mixed, PROMPT, DIGITS)
    assert outs[1].error and "aspect ratio" in outs[1].error
    assert "processor refused the 1000x3 crop (processor limit)" in outs[1].error  # says so, not "invalid"
    assert outs[1].logprobs is None
    for i in (0, 2):
        alone = backend.run([mixed[i]], PROMPT, DIGITS)[0]
        assert outs[i].error is None
        assert outs[i].logprobs == pytest.approx(alone.logprobs, abs=1e-4)


def test_candidates_must_be_single_tokens(backend: TransformersVLM, images: list[Image.Image]) -> None:
    backend.check_candidates(["1", "7", "excellent", " good", "poor", "bad", "fair"])
    with pytest.raises(BackendError, match="'10'"):
        backend.check_candidates(["1", "10"])
    with pytest.raises(BackendError, match="'very bad'"):
        backend.run(images[:1], PROMPT, ["very bad"])


def test_system_turn_and_answer_prefix(tiny_qwen2vl_dir: Path, images: list[Image.Image]) -> None:
    backend = TransformersVLM(str(tiny_qwen2vl_dir))
    default = backend.render(Prompt("a", "b"))
    empty = backend.render(Prompt("a", "b", system=""))
    assert "You are a helpful assistant." in default
    assert "<|im_start|>system\n<|im_end|>" in empty
    assert empty.index("a<|vision_start|><|image_pad|><|vision_end|>b") > empty.index("<|im_start|>user")
    prefixed = Prompt("a", "b", system="", answer_prefix="The quality of the image is")
    assert backend.render(prefixed).endswith("<|im_start|>assistant\nThe quality of the image is")
    plain = backend.run(images[:1], Prompt("a", "b", system=""), DIGITS)[0]
    with_prefix = backend.run(images[:1], prefixed, DIGITS)[0]
    assert plain.meta["tokens"] < with_prefix.meta["tokens"]
    assert plain.logprobs != pytest.approx(with_prefix.logprobs, abs=1e-6)


def test_missing_model_folder_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(BackendError, match="does not exist"):
        TransformersVLM(str(tmp_path / "no-such-model"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(BackendError, match="no config.json"):
        TransformersVLM(str(tmp_path / "empty"))


def test_hub_id_offline_explains_local_folder(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(BackendError, match="--model") as err:
        TransformersVLM("dogiqa-test/not-a-real-model")
    assert "local folder" in str(err.value) or "folder" in str(err.value)


def test_qwen25vl_batched_equals_single(tmp_path: Path, images: list[Image.Image]) -> None:
    from dogiqa.testing import build_tiny_qwen25vl

    backend = TransformersVLM(str(build_tiny_qwen25vl(tmp_path / "q25", digit_scale=30.0)), batch_size=4)
    batched = backend.run(images[:4], PROMPT, DIGITS)
    for image, b in zip(images[:4], batched, strict=True):
        single = backend.run([image], PROMPT, DIGITS)[0]
        assert single.logprobs == pytest.approx(b.logprobs, abs=1e-4)
        assert b.meta["token_id"] == backend.generate_one(image, PROMPT).meta["token_id"]


def test_no_torchvision_imported(backend: TransformersVLM, images: list[Image.Image]) -> None:
    backend.run(images[:2], PROMPT, DIGITS)
    assert "torchvision" not in sys.modules


@pytest.mark.parametrize("fixture", ["tiny_qwen2vl_dir", "tiny_idefics3_dir"])
def test_prefix_cache_equals_plain_forward(fixture: str, request: pytest.FixtureRequest, images: list) -> None:
    folder = str(request.getfixturevalue(fixture))
    cached = TransformersVLM(folder, batch_size=4, prefix_cache=True)
    plain = TransformersVLM(folder, batch_size=4, prefix_cache=False)
    with_cache = cached.run(images, PROMPT, DIGITS)
    assert cached.prefix_cache and cached._prefix_kv, "the prefix cache was not used"
    without = plain.run(images, PROMPT, DIGITS)
    assert not plain._prefix_kv
    for a, b in zip(with_cache, without, strict=True):
        assert a.meta["token_id"] == b.meta["token_id"]
        for cand in DIGITS:
            assert abs(a.logprobs[cand] - b.logprobs[cand]) < 1e-4


def test_prefix_cache_switches_off_when_wrong(tiny_qwen2vl_dir: Path, images: list, monkeypatch) -> None:
    """Fault injection: a cached path that returns shifted logits is detected and abandoned."""
    backend = TransformersVLM(str(tiny_qwen2vl_dir), batch_size=4, prefix_cache=True)
    real = backend._logits_with_prefix

    def broken(inputs: dict, prefix_ids: list[int]):
        logits = real(inputs, prefix_ids)
        logits[:, backend._token_id("3")] += 5.0
        return logits

    monkeypatch.setattr(backend, "_logits_with_prefix", broken)
    with pytest.warns(RuntimeWarning, match="prefix"):
        outs = backend.run(images, PROMPT, DIGITS)
    assert backend.prefix_cache is False
    reference = TransformersVLM(str(tiny_qwen2vl_dir), batch_size=4, prefix_cache=False).run(images, PROMPT, DIGITS)
    for a, b in zip(outs, reference, strict=True):
        assert a.logprobs == pytest.approx(b.logprobs, abs=1e-4)


def test_padding_share_bounds_batches(tiny_qwen2vl_dir: Path, images: list[Image.Image]) -> None:
    loose = TransformersVLM(str(tiny_qwen2vl_dir), batch_size=16, max_pad_fraction=1.0)
    tight = TransformersVLM(str(tiny_qwen2vl_dir), batch_size=16, max_pad_fraction=0.05)
    wide = loose.run(images, PROMPT, DIGITS)
    narrow = tight.run(images, PROMPT, DIGITS)
    assert loose.calls == 1 and tight.calls > 1

    def waste(outs: list) -> float:
        return 1 - sum(o.meta["tokens"] for o in outs) / sum(o.meta["padded_tokens"] for o in outs)

    assert waste(narrow) < waste(wide)
    for a, b in zip(wide, narrow, strict=True):
        assert a.logprobs == pytest.approx(b.logprobs, abs=1e-4)


def test_from_objects_wraps_a_built_model(backend: TransformersVLM, images: list[Image.Image]) -> None:
    wrapped = TransformersVLM.from_objects(backend.model, backend.processor, "in-memory", batch_size=2)
    assert wrapped.model_id == "in-memory" and wrapped.device == "cpu"
    for a, b in zip(wrapped.run(images[:3], PROMPT, DIGITS), backend.run(images[:3], PROMPT, DIGITS), strict=True):
        assert a.logprobs == pytest.approx(b.logprobs, abs=1e-4)


def test_varlen_vision_attention_equals_the_per_window_loop(tmp_path_factory, images: list) -> None:
    """One padded SDPA call per vision layer gives what transformers' per-window loop gives."""
    from dogiqa.backends import varlen_attention
    from dogiqa.testing import build_tiny_qwen25vl

    folder = build_tiny_qwen25vl(tmp_path_factory.mktemp("q25-varlen"), seed=0)  # window + full attention
    fast = TransformersVLM(str(folder), batch_size=4)
    assert fast.varlen_vision and fast.model.config.vision_config._attn_implementation == varlen_attention.NAME
    loop = TransformersVLM(str(folder), batch_size=4, vision_attention="default")
    assert not loop.varlen_vision
    a, b = fast.run(images, PROMPT, DIGITS), loop.run(images, PROMPT, DIGITS)
    for x, y in zip(a, b, strict=True):
        for d in DIGITS:
            assert abs(x.logprobs[d] - y.logprobs[d]) < 1e-4


def test_varlen_sdpa_on_constructed_sequences() -> None:
    import torch

    from dogiqa.backends.varlen_attention import varlen_sdpa

    torch.manual_seed(0)
    q, k, v = (torch.randn(1, 2, 7, 4) for _ in range(3))
    cu = torch.tensor([0, 3, 4, 7])
    out, _ = varlen_sdpa(None, q, k, v, cu_seq_lens_q=cu, max_length_q=3, scaling=0.5)
    for s, e in zip(cu[:-1].tolist(), cu[1:].tolist(), strict=True):
        ref = torch.nn.functional.scaled_dot_product_attention(q[:, :, s:e], k[:, :, s:e], v[:, :, s:e], scale=0.5)
        assert torch.allclose(out[0, s:e], ref[0].transpose(0, 1), atol=1e-6)


@pytest.mark.parametrize("family", ["qwen2vl", "idefics3"])
def test_parallel_preprocessing_gives_the_same_inputs_and_outputs(family: str, request, images: list) -> None:
    """preprocess_workers=3: batches prepared at once (processor copies), identical model inputs and outputs,
    also when two callers prepare at the same time (the fast tokenizer is never shared between threads)."""
    from concurrent.futures import ThreadPoolExecutor

    folder = str(request.getfixturevalue(f"tiny_{family}_dir"))
    one = TransformersVLM(folder, batch_size=2, preprocess_workers=1)
    three = TransformersVLM(folder, batch_size=2, preprocess_workers=3)
    assert (one.preprocess_workers, three.preprocess_workers) == (1, 3)
    want = one.prepare(images, PROMPT, DIGITS)
    assert len(want.batches) >= 3  # 7 images, 2 per batch: several batches to prepare at once
    with ThreadPoolExecutor(2) as pool:
        got = list(pool.map(lambda _: three.prepare(images, PROMPT, DIGITS), range(2)))
    order = [[it.index for it in b] for b, _ in want.batches]
    for prepared in got:
        assert [[it.index for it in b] for b, _ in prepared.batches] == order
        for (_, a), (_, b) in zip(want.batches, prepared.batches, strict=True):
            assert a.keys() == b.keys() and all(a[k].equal(b[k]) for k in a)
    direct = one.run(images, PROMPT, DIGITS)
    for out in (three.run(images, PROMPT, DIGITS), three.run_prepared(got[0])):
        assert [o.text for o in out] == [o.text for o in direct]
        assert [o.logprobs for o in out] == [o.logprobs for o in direct]
    with pytest.raises(BackendError, match="preprocess_workers"):
        TransformersVLM(folder, preprocess_workers=0)
