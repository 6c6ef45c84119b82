"""A tiny randomly initialised mPLUG-Owl3 (real architecture) and an offline byte-level tokenizer."""

from __future__ import annotations

from pathlib import Path

import torch

SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|image|>"]


def _byte_symbols() -> list[str]:
    """The 256 byte symbols in GPT-2 order (printable bytes first), so "!" is id 0 as in Qwen2."""
    keep = [*range(ord("!"), ord("~") + 1), *range(0xA1, 0xAD), *range(0xAE, 0x100)]
    extra = [b for b in range(256) if b not in keep]
    chars = {b: chr(b) for b in keep} | {b: chr(256 + i) for i, b in enumerate(extra)}
    return [chars[b] for b in keep + extra]


def make_tokenizer(folder: Path):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {s: i for i, s in enumerate(_byte_symbols())}
    core = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    core.decoder = decoders.ByteLevel()
    tok = PreTrainedTokenizerFast(tokenizer_object=core, eos_token="<|im_end|>", pad_token="<|endoftext|>")
    tok.add_special_tokens({"additional_special_tokens": SPECIALS})
    tok.save_pretrained(folder)
    return tok


def tiny_config(**overrides):
    from dogiqa.backends.mplug_owl3.configuration import MplugOwl3Config

    fields = dict(
        vocab_size=264,
        hidden_size=32,
        intermediate_size=48,
        num_hidden_layers=3,
        num_attention_heads=4,
        num_key_value_heads=2,
        hyper_layers=[1, 3],
        initializer_range=0.2,
        bos_token_id=256,
        eos_token_id=258,
        vision_config=dict(
            hidden_size=16,
            intermediate_size=32,
            num_hidden_layers=2,
            num_attention_heads=2,
            image_size=28,
            patch_size=14,
        ),
    )
    fields.update(overrides)
    return MplugOwl3Config(**fields)


def make_model(folder: Path, seed: int = 0, max_shard_size: str | None = None):
    """Random tiny model + tokenizer saved as a checkpoint folder; returns the in-memory model."""
    from dogiqa.backends.mplug_owl3.modeling import MplugOwl3Model

    torch.manual_seed(seed)
    model = MplugOwl3Model(tiny_config()).eval()
    with torch.no_grad():  # make norms and biases non-trivial so every parameter matters
        for name, p in model.named_parameters():
            if name.endswith("bias") or "norm" in name:
                p.add_(0.1 * torch.randn_like(p))
    kwargs = {"max_shard_size": max_shard_size} if max_shard_size else {}
    model.save_pretrained(folder, **kwargs)
    make_tokenizer(folder)
    return model
