"""A tiny randomly initialised mPLUG-Owl3 (the real architecture, our native implementation), offline.

``build_tiny_mplug_owl3(path)`` writes a checkpoint folder in the official layout (``model_type:
mplugowl3``, the official weight names, optionally sharded) plus a byte-level BPE tokenizer with Qwen2's id
layout for bytes (GPT-2 byte order, so ``!`` is id 0 and the paper attention mask hides it, as with Qwen2)
and the specials ``<|endoftext|> <|im_start|> <|im_end|> <|image|>``. Tiles are 28 px (2x2 patches of 14).
"""

from __future__ import annotations

import json
from pathlib import Path

SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|image|>"]


def byte_symbols() -> list[str]:
    """The 256 byte symbols in GPT-2 order (printable bytes first, the rest mapped above U+0100)."""
    keep = [*range(ord("!"), ord("~") + 1), *range(0xA1, 0xAD), *range(0xAE, 0x100)]
    extra = [b for b in range(256) if b not in keep]
    chars = {b: chr(b) for b in keep} | {b: chr(256 + i) for i, b in enumerate(extra)}
    return [chars[b] for b in keep + extra]


def write_owl3_tokenizer(path: Path) -> dict[str, int]:
    """tokenizer.json + tokenizer_config.json (Qwen2Tokenizer); returns token -> id."""
    from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers

    from dogiqa.testing.tiny import _QWEN2_SPLIT

    vocab = {s: i for i, s in enumerate(byte_symbols())}
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[], byte_fallback=False, fuse_unk=False))
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(_QWEN2_SPLIT), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    tok.decoder = decoders.ByteLevel()
    tok.add_special_tokens([AddedToken(s, special=True, normalized=False) for s in SPECIALS])
    path.mkdir(parents=True, exist_ok=True)
    tok.save(str(path / "tokenizer.json"))
    config = {
        "tokenizer_class": "Qwen2Tokenizer",
        "eos_token": "<|im_end|>",
        "pad_token": "<|endoftext|>",
        "bos_token": None,
        "unk_token": None,
        "add_prefix_space": False,
        "clean_up_tokenization_spaces": False,
        "errors": "replace",
        "model_max_length": 32768,
        "additional_special_tokens": SPECIALS[1:],
    }
    (path / "tokenizer_config.json").write_text(json.dumps(config, indent=2))
    return dict(tok.get_vocab(with_added_tokens=True))


def tiny_owl3_config(**overrides: object):
    from dogiqa.backends.mplug_owl3.configuration import MplugOwl3Config

    fields: dict = dict(
        vocab_size=262,  # 256 bytes + 4 specials + 2 spare rows (the real vocab is larger than its tokenizer)
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


def build_tiny_mplug_owl3(
    path: str | Path, seed: int = 0, digit_scale: float = 1.0, max_shard_size: str | None = None
) -> Path:
    """Write the folder; ``digit_scale`` > 1 scales the LM-head rows of '1'..'9' so answers are digits."""
    import torch

    from dogiqa.backends.mplug_owl3.modeling import MplugOwl3Model

    path = Path(path)
    ids = write_owl3_tokenizer(path)
    torch.manual_seed(seed)
    model = MplugOwl3Model(tiny_owl3_config()).eval()
    with torch.no_grad():  # non-trivial norms and biases, so that every parameter matters
        for name, param in model.named_parameters():
            if name.endswith("bias") or "norm" in name:
                param.add_(0.1 * torch.randn_like(param))
        if digit_scale != 1.0:
            rows = [ids[str(d)] for d in range(1, 10)]
            model.language_model.lm_head.weight[rows] *= digit_scale
    kwargs = {"max_shard_size": max_shard_size} if max_shard_size else {}
    model.save_pretrained(str(path), **kwargs)
    return path
