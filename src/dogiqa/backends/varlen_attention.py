"""Variable-length attention for VLM vision towers without flash-attn: one padded SDPA call per layer.

Without flash attention, transformers' Qwen-VL-style vision towers loop over every attention window of every
image (thousands of tiny SDPA calls per image: Qwen2.5-VL cuts a 1024x768 photo into ~70 windows, over 28
windowed layers). Here the windows are gathered into one padded batch with a key mask: same values, one call.

The function is registered under a name containing "flash" because that is how transformers decides to hand
a vision tower's packed sequences (``cu_seq_lens_q``) to the attention function in one piece.
"""

from __future__ import annotations

import inspect
import sys
from typing import Any

NAME = "dogiqa_flash_api_sdpa"
_CHUNK_LOOP_MARK = "Process each chunk separately"


def varlen_sdpa(
    module: Any,
    query: Any,
    key: Any,
    value: Any,
    attention_mask: Any = None,
    scaling: float | None = None,
    dropout: float = 0.0,
    cu_seq_lens_q: Any = None,
    max_length_q: int | None = None,
    is_causal: bool = False,
    **_: Any,
) -> tuple[Any, None]:
    """Attention within each packed sequence. ``query``/``key``/``value``: (1, heads, total, dim).

    Returns (1, total, heads, dim) like transformers' attention functions."""
    import torch
    import torch.nn.functional as F

    if cu_seq_lens_q is None or is_causal:
        raise ValueError(f"{NAME} serves only non-causal packed sequences (vision towers)")
    cu = cu_seq_lens_q.to(query.device, torch.long)
    lengths = cu[1:] - cu[:-1]
    longest = int(max_length_q) if max_length_q else int(lengths.max())
    total = query.shape[2]
    steps = torch.arange(longest, device=query.device)
    index = (cu[:-1, None] + steps[None]).clamp_(max=total - 1)  # (n, longest)
    valid = steps[None] < lengths[:, None]

    def pack(t: Any) -> Any:  # (1, H, total, D) -> (n, H, longest, D)
        return t[0][:, index].transpose(0, 1)

    mask = valid[:, None, None, :]  # keys beyond a sequence's end are hidden
    out = F.scaled_dot_product_attention(pack(query), pack(key), pack(value), attn_mask=mask, scale=scaling)
    out = out.transpose(1, 2)[valid]  # (total, H, D), in packed order
    return out.unsqueeze(0), None


def register() -> None:
    from transformers import AttentionInterface

    AttentionInterface.register(NAME, varlen_sdpa)


def set_vision_attention(model: Any, varlen: bool) -> None:
    """Switch a model already set up by ``use_for_vision_tower`` between ``varlen_sdpa`` and plain SDPA."""
    vision = getattr(model.config, "vision_config", None)
    if vision is not None and getattr(vision, "_attn_implementation", None) in (NAME, "sdpa"):
        vision._attn_implementation = NAME if varlen else "sdpa"


def use_for_vision_tower(model: Any) -> bool:
    """Switch the model's vision tower to ``varlen_sdpa`` when it uses SDPA and its code loops over chunks
    otherwise. Returns whether it did."""
    vision = getattr(model.config, "vision_config", None)
    if vision is None or getattr(vision, "_attn_implementation", None) != "sdpa":
        return False
    try:
        source = inspect.getsource(sys.modules[type(model).__module__])
    except (OSError, TypeError, KeyError):
        return False
    if _CHUNK_LOOP_MARK not in source or "cu_seq_lens_q" not in source:
        return False
    register()
    vision._attn_implementation = NAME
    return True
