"""Tiny, randomly initialised vision-language models of real architectures, built fully offline.

Each ``build_tiny_*`` writes a folder that loads with ``AutoModelForImageTextToText.from_pretrained`` and
with the project's transformers backend (no hub, no torchvision): config, seeded random weights, a
byte-level BPE tokenizer written with the ``tokenizers`` library, a chat template and processor files.

Tokenizer facts the tests rely on: every byte is a token, so the digits ``1``..``9`` are single tokens
(and no merge involves a digit); the quality words ``excellent good fair poor bad`` are single tokens with
and without a leading space (``Ġgood``); ``10`` is two tokens.

``seed`` fixes the random weights (same seed, same folder contents, same outputs). ``digit_scale`` > 1
multiplies the output rows of the digits so greedy answers are digits (see ``_boost_digits``).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

QUALITY_WORDS = ("excellent", "good", "fair", "poor", "bad")
# Words of the Dog-IQA / Q-Align prompts, merged into single tokens so that prompt lengths resemble a real
# BPE tokenizer's (~110 tokens for the Dog-IQA prompt, not ~400 bytes).
_PROMPT_WORDS = """
You you are a helpful assistant to help me evaluate the quality of image will be given standards about each level
The standard is list as follows Perfect Excellent Good Fair Bad Poor Very Awful higher score should Please please
strictly follow USER format otherwise result invalid and in Only tell number Do not analysis Rate overall extremely
all aspects perfect satisfactory many certain merits but also some deficiencies with obvious defects hard accept
There are There an it this that for on how what
"""
_COMMON_WORDS = tuple(dict.fromkeys(_PROMPT_WORDS.split()))
_BPE_VOCAB = 640  # 257 bytes + <|endoftext|>, then learned merges

QWEN_SPECIALS = [
    "<|im_start|>",
    "<|im_end|>",
    "<|object_ref_start|>",
    "<|object_ref_end|>",
    "<|box_start|>",
    "<|box_end|>",
    "<|quad_start|>",
    "<|quad_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|vision_pad|>",
    "<|image_pad|>",
    "<|video_pad|>",
]
IDEFICS3_SPECIALS = [
    "<|im_start|>",
    "<fake_token_around_image>",
    "<image>",
    "<global-img>",
    "<end_of_utterance>",
] + [f"<row_{i}_col_{j}>" for i in range(1, 7) for j in range(1, 7)]

# Qwen2-VL's chat template (default system turn when none is given; one vision block per image).
QWEN2_VL_TEMPLATE = (
    "{% set image_count = namespace(value=0) %}{% set video_count = namespace(value=0) %}"
    "{% for message in messages %}{% if loop.first and message['role'] != 'system' %}"
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n{% endif %}"
    "<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}<|im_end|>\n"
    "{% else %}{% for content in message['content'] %}"
    "{% if content['type'] == 'image' or 'image' in content or 'image_url' in content %}"
    "{% set image_count.value = image_count.value + 1 %}"
    "{% if add_vision_id %}Picture {{ image_count.value }}: {% endif %}"
    "<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif content['type'] == 'video' or 'video' in content %}"
    "{% set video_count.value = video_count.value + 1 %}"
    "{% if add_vision_id %}Video {{ video_count.value }}: {% endif %}"
    "<|vision_start|><|video_pad|><|vision_end|>"
    "{% elif 'text' in content %}{{ content['text'] }}{% endif %}{% endfor %}<|im_end|>\n{% endif %}"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)

# Idefics3 / SmolVLM style template; string contents (e.g. a system turn) are accepted too.
IDEFICS3_TEMPLATE = (
    "<|im_start|>{% for message in messages %}{{ message['role'] | capitalize }}"
    "{% if message['content'] is string %}: {{ message['content'] }}"
    "{% else %}{% if message['content'][0]['type'] == 'image' %}:{% else %}: {% endif %}"
    "{% for line in message['content'] %}{% if line['type'] == 'text' %}{{ line['text'] }}"
    "{% elif line['type'] == 'image' %}<image>{% endif %}{% endfor %}{% endif %}<end_of_utterance>\n"
    "{% endfor %}{% if add_generation_prompt %}Assistant:{% endif %}"
)

# Qwen2's pre-tokenizer split pattern (digits split one by one).
_QWEN2_SPLIT = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|"
    r"\s+(?!\S)|\s+"
)


def _training_corpus() -> list[str]:
    """Text the tiny BPE is trained on: the prompt words, and the quality words many times."""
    words = list(QUALITY_WORDS) + [w.capitalize() for w in QUALITY_WORDS]
    lines = (
        [" ".join(_COMMON_WORDS)] * 8 + ["".join(" " + w for w in words)] * 40 + ["".join(w + "\n" for w in words)] * 40
    )
    return lines


def write_tokenizer(path: Path, specials: list[str], tokenizer_class: str, eos: str, pad: str) -> dict[str, int]:
    """Write tokenizer.json + tokenizer_config.json for a tiny byte-level BPE; returns token -> id."""
    from tokenizers import (
        AddedToken,
        Regex,
        Tokenizer,
        decoders,
        models,
        normalizers,
        pre_tokenizers,
        trainers,
    )

    tok = Tokenizer(models.BPE(byte_fallback=False, fuse_unk=False))
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(_QWEN2_SPLIT), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=_BPE_VOCAB,
        min_frequency=2,
        special_tokens=["<|endoftext|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(_training_corpus(), trainer)
    for word in QUALITY_WORDS:  # the readouts need these as single tokens
        for text in (word, " " + word):
            assert len(tok.encode(text).ids) == 1, f"tiny tokenizer: {text!r} is not one token"
    tok.add_special_tokens([AddedToken(s, special=True, normalized=False) for s in ["<|endoftext|>", *specials]])
    path.mkdir(parents=True, exist_ok=True)
    tok.save(str(path / "tokenizer.json"))
    extra = [s for s in specials if s not in (eos, pad)]
    config = {
        "tokenizer_class": tokenizer_class,
        "eos_token": eos,
        "pad_token": pad,
        "bos_token": None,
        "unk_token": None,
        "add_prefix_space": False,
        "clean_up_tokenization_spaces": False,
        "errors": "replace",
        "model_max_length": 32768,
        "split_special_tokens": False,
        "additional_special_tokens": extra,
        "extra_special_tokens": extra,
    }
    (path / "tokenizer_config.json").write_text(json.dumps(config, indent=2))
    return {t: i for t, i in tok.get_vocab(with_added_tokens=True).items()}


def _round_up(n: int, multiple: int = 64) -> int:
    return -(-n // multiple) * multiple


def _text_config(ids: dict[str, int], vocab_size: int, eos: str, **extra: object) -> dict:
    return dict(
        vocab_size=vocab_size,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=8192,
        bos_token_id=0,
        eos_token_id=ids[eos],
        pad_token_id=0,
        **extra,
    )


def _save(model: object, path: Path, eos_id: int) -> None:
    from transformers import GenerationConfig

    model.generation_config = GenerationConfig(eos_token_id=eos_id, pad_token_id=0, bos_token_id=0, do_sample=False)
    model.save_pretrained(str(path))


def _seeded(seed: int) -> None:
    import torch

    torch.manual_seed(seed)


def _boost_digits(model: object, ids: dict[str, int], scale: float) -> None:
    """Scale the output-embedding rows of '1'..'9' so greedy decoding usually yields a digit.

    A random model otherwise answers with arbitrary bytes; with ``scale`` ~30 the digit logits dominate
    while which digit wins still depends on the input. ``scale == 1`` leaves the model untouched.
    """
    import torch

    if scale == 1.0:
        return
    head = model.get_output_embeddings()
    rows = [ids[str(d)] for d in range(1, 10)]
    with torch.no_grad():
        head.weight[rows] *= scale


def _build_qwen(
    path: Path,
    model_type: str,
    seed: int,
    digit_scale: float,
    configure: Callable[[Any, dict[str, int]], None] | None = None,
    text_extra: dict[str, Any] | None = None,
) -> Path:
    """Build and save a tiny Qwen-VL; ``configure(model, token_ids)`` may set weights before saving."""
    import transformers

    from dogiqa.backends.hf_compat import image_only_processor_class

    path = Path(path)
    ids = write_tokenizer(path, QWEN_SPECIALS, "Qwen2Tokenizer", eos="<|im_end|>", pad="<|endoftext|>")
    vocab_size = _round_up(len(ids))
    rope = {"rope_type": "default", "rope_theta": 1e6, "mrope_section": [2, 3, 3]}
    text = _text_config(ids, vocab_size, "<|im_end|>", rope_parameters=rope, **(text_extra or {}))
    special = dict(
        image_token_id=ids["<|image_pad|>"],
        video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"],
        vision_end_token_id=ids["<|vision_end|>"],
    )
    if model_type == "qwen2_vl":
        vision = dict(depth=2, embed_dim=32, hidden_size=64, num_heads=2, mlp_ratio=2, patch_size=14,
                      spatial_merge_size=2, temporal_patch_size=2)  # fmt: skip
        config = transformers.Qwen2VLConfig(text_config=text, vision_config=vision, **special)
        model_cls = transformers.Qwen2VLForConditionalGeneration
    else:
        vision = dict(depth=2, hidden_size=32, intermediate_size=64, num_heads=2, out_hidden_size=64,
                      window_size=112, fullatt_block_indexes=[1], patch_size=14)  # fmt: skip
        config = transformers.Qwen2_5_VLConfig(text_config=text, vision_config=vision, **special)
        model_cls = transformers.Qwen2_5_VLForConditionalGeneration
    _seeded(seed)
    model = model_cls(config).eval()
    _boost_digits(model, ids, digit_scale)
    if configure is not None:
        configure(model, ids)
    _save(model, path, ids["<|im_end|>"])

    tokenizer = transformers.AutoTokenizer.from_pretrained(str(path))
    image_processor = transformers.Qwen2VLImageProcessorPil()
    proc_cls = image_only_processor_class(model_type)
    processor = proc_cls(image_processor=image_processor, tokenizer=tokenizer, chat_template=QWEN2_VL_TEMPLATE)
    processor.save_pretrained(str(path))
    _add_static_video_processor(path)
    return path


def _add_static_video_processor(path: Path) -> None:
    """Name a video processor in processor_config.json so a torchvision install's AutoProcessor loads too."""
    cfg_file = path / "processor_config.json"
    cfg = json.loads(cfg_file.read_text()) if cfg_file.exists() else {}
    cfg.setdefault(
        "video_processor",
        {
            "video_processor_type": "Qwen2VLVideoProcessor",
            "patch_size": 14,
            "merge_size": 2,
            "temporal_patch_size": 2,
            "image_mean": [0.48145466, 0.4578275, 0.40821073],
            "image_std": [0.26862954, 0.26130258, 0.27577711],
        },
    )
    cfg_file.write_text(json.dumps(cfg, indent=2))


def build_tiny_qwen2vl(path: str | Path, seed: int = 0, digit_scale: float = 1.0) -> Path:
    """A tiny random Qwen2-VL (~0.2 M parameters) saved under ``path``; returns the folder."""
    return _build_qwen(Path(path), "qwen2_vl", seed, digit_scale)


def build_tiny_qwen25vl(path: str | Path, seed: int = 0, digit_scale: float = 1.0) -> Path:
    """A tiny random Qwen2.5-VL saved under ``path``; returns the folder."""
    return _build_qwen(Path(path), "qwen2_5_vl", seed, digit_scale)


def build_tiny_idefics3(path: str | Path, seed: int = 0, digit_scale: float = 1.0) -> Path:
    """A tiny random Idefics3 (SmolVLM architecture) saved under ``path``; returns the folder.

    Tiles are 112 px (8x8 patches of 14 px, pixel-shuffled by 2 -> 16 tokens per tile) and images are
    split into at most 3x3 tiles plus a global view, so image splitting stays real but cheap.
    """
    return _build_idefics3(Path(path), seed, digit_scale)


def _build_idefics3(
    path: Path,
    seed: int,
    digit_scale: float,
    configure: Callable[[Any, dict[str, int]], None] | None = None,
    text_extra: dict[str, Any] | None = None,
    vision_extra: dict[str, Any] | None = None,
) -> Path:
    """Build and save a tiny Idefics3; ``configure(model, token_ids)`` may set weights before saving."""
    import transformers

    path = Path(path)
    ids = write_tokenizer(
        path, IDEFICS3_SPECIALS, "PreTrainedTokenizerFast", eos="<end_of_utterance>", pad="<|endoftext|>"
    )
    vocab_size = _round_up(len(ids))
    text = _text_config(ids, vocab_size, "<end_of_utterance>", model_type="llama", **(text_extra or {}))
    tile, patch, scale = 112, 14, 2
    vision = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                  image_size=tile, patch_size=patch, **(vision_extra or {}))  # fmt: skip
    config = transformers.Idefics3Config(
        text_config=text, vision_config=vision, scale_factor=scale, image_token_id=ids["<image>"]
    )
    _seeded(seed)
    model = transformers.Idefics3ForConditionalGeneration(config).eval()
    _boost_digits(model, ids, digit_scale)
    if configure is not None:
        configure(model, ids)
    _save(model, path, ids["<end_of_utterance>"])

    tokenizer = transformers.AutoTokenizer.from_pretrained(str(path))
    image_processor = transformers.Idefics3ImageProcessorPil(
        size={"longest_edge": 3 * tile}, max_image_size={"longest_edge": tile}, do_image_splitting=True
    )
    seq_len = (tile // patch) ** 2 // scale**2
    processor = transformers.Idefics3Processor(
        image_processor=image_processor,
        tokenizer=tokenizer,
        image_seq_len=seq_len,
        chat_template=IDEFICS3_TEMPLATE,
    )
    processor.save_pretrained(str(path))
    return path


# Qwen2.5-VL-7B-Instruct's published shapes (config.json of the hub checkpoint).
QWEN25VL_7B_TEXT = dict(
    hidden_size=3584,
    intermediate_size=18944,
    num_hidden_layers=28,
    num_attention_heads=28,
    num_key_value_heads=4,
    vocab_size=152064,
    rms_norm_eps=1e-6,
    max_position_embeddings=128000,
)
QWEN25VL_7B_VISION = dict(
    depth=32,
    hidden_size=1280,
    intermediate_size=3420,
    num_heads=16,
    out_hidden_size=3584,
    patch_size=14,
    spatial_merge_size=2,
    temporal_patch_size=2,
    window_size=112,
    fullatt_block_indexes=[7, 15, 23, 31],
    tokens_per_second=2,
)


def random_qwen25vl_7b(
    folder: str | Path,
    device: str = "cuda",
    dtype: str = "bfloat16",
    max_pixels: int = 12845056,
    seed: int = 0,
    layers: int | None = None,
) -> tuple[object, object]:
    """A randomly initialised model of Qwen2.5-VL-7B's size, built in memory on ``device`` (nothing saved).

    For throughput measurements only (~8.3 B parameters, ~16.6 GB in bf16). The tokenizer is the tiny one
    (files written to ``folder``); the vocabulary size and every matrix are the real model's. ``layers``
    keeps only that many decoder layers and vision blocks (the last vision block full attention): the same
    code and widths, small enough for a CPU check of a GPU benchmark. Returns (model, processor).
    """
    import torch
    import transformers

    from dogiqa.backends.hf_compat import image_only_processor_class

    folder = Path(folder)
    ids = write_tokenizer(folder, QWEN_SPECIALS, "Qwen2Tokenizer", eos="<|im_end|>", pad="<|endoftext|>")
    rope = {"rope_type": "default", "rope_theta": 1e6, "mrope_section": [16, 24, 24]}
    text = dict(QWEN25VL_7B_TEXT, bos_token_id=0, eos_token_id=ids["<|im_end|>"], pad_token_id=0, rope_parameters=rope)
    vision = dict(QWEN25VL_7B_VISION)
    if layers:
        text["num_hidden_layers"] = layers
        vision.update(depth=layers, fullatt_block_indexes=[layers - 1])
    config = transformers.Qwen2_5_VLConfig(
        text_config=text,
        vision_config=vision,
        image_token_id=ids["<|image_pad|>"],
        video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"],
        vision_end_token_id=ids["<|vision_end|>"],
    )
    _seeded(seed)
    with torch.device(device):
        model = transformers.Qwen2_5_VLForConditionalGeneration._from_config(config, dtype=getattr(torch, dtype))
    model.eval()
    _boost_digits(model, ids, 30.0)
    tokenizer = transformers.AutoTokenizer.from_pretrained(str(folder))
    ip_cls = getattr(transformers, "Qwen2VLImageProcessorPil", None) or transformers.Qwen2VLImageProcessor
    image_processor = ip_cls(min_pixels=3136, max_pixels=max_pixels)
    proc_cls = image_only_processor_class("qwen2_5_vl")
    processor = proc_cls(image_processor=image_processor, tokenizer=tokenizer, chat_template=QWEN2_VL_TEMPLATE)
    return model, processor
