"""mPLUG-Owl3 written on transformers 5 building blocks: SigLIP vision tower, projection, hyper-Qwen2 decoder.

Module names follow the official checkpoint (``language_model.model.*``, ``language_model.lm_head``,
``vision_model.*``, ``vision2text_model``), so ``MplugOwl3Model.from_pretrained`` loads the authors' weights
(hub id or folder, sharded safetensors, any dtype, ``device_map``) with no remote code.

Hyper layers (``config.hyper_layers``, 1-based) run, next to causal self-attention, a cross-attention from
the rotated text queries to the visual tokens. The visual tokens share the layer's input RMSNorm, are
projected by ``v_kv_proj`` into keys and values (per key-value head: key then value), and their keys get the
rotary position of the token that follows their ``<|image|>`` placeholder (MI-RoPE). A text token sees
image k once its ``media_offset`` count exceeds k. A per-head sigmoid gate, computed from the self-attention
context by ``gate_proj``, mixes the two contexts: ``ctx * (1 - g) + visual_ctx * g``; tokens that see no
image keep ``ctx``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from transformers import PreTrainedModel, SiglipVisionModel
from transformers.models.qwen2.modeling_qwen2 import Qwen2MLP, Qwen2RMSNorm

from dogiqa.backends.mplug_owl3.configuration import MplugOwl3Config


def _inv_freq(head_dim: int, theta: float, device: torch.device) -> torch.Tensor:
    return 1.0 / (theta ** (torch.arange(0, head_dim, 2, dtype=torch.int64, device=device).float() / head_dim))


def rope_cos_sin(positions: torch.Tensor, head_dim: int, theta: float) -> tuple[torch.Tensor, torch.Tensor]:
    """float32 cos/sin of shape ``positions.shape + (head_dim,)`` (halves repeated, Qwen2 layout)."""
    freqs = positions.float().unsqueeze(-1) * _inv_freq(head_dim, theta, positions.device)
    emb = torch.cat((freqs, freqs), dim=-1)
    return emb.cos(), emb.sin()


def _rotate_half(x: torch.Tensor) -> torch.Tensor:
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


def _apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    return x * cos + _rotate_half(x) * sin


def _repeat_kv(x: torch.Tensor, n_rep: int) -> torch.Tensor:
    return x if n_rep == 1 else x.repeat_interleave(n_rep, dim=1)


class VisualContext:
    """Per-forward visual inputs shared by all hyper layers (built once by the decoder)."""

    def __init__(
        self,
        embeds: torch.Tensor,
        cross_mask: torch.Tensor,
        sees_image: torch.Tensor,
        cos: torch.Tensor,
        sin: torch.Tensor,
    ):
        self.embeds = embeds  # (B, S, hidden): the visual tokens of each item, padded to the batch's most images
        self.cross_mask = cross_mask  # (B, 1, L, S) bool, True = attend
        self.sees_image = sees_image  # (B, L) bool, the token sees at least one image
        self.cos, self.sin = cos, sin  # (B, 1, S, head_dim) float32 MI-RoPE of the visual keys


class HyperQwen2Attention(nn.Module):
    """Qwen2 self-attention; in hyper layers also the gated cross-attention to visual tokens."""

    def __init__(self, config: MplugOwl3Config, layer_idx: int):
        super().__init__()
        self.layer_idx = layer_idx
        self.num_heads = config.num_attention_heads
        self.num_kv_heads = config.num_key_value_heads
        self.head_dim = config.head_dim
        hidden, kv_dim = config.hidden_size, config.num_key_value_heads * config.head_dim
        self.q_proj = nn.Linear(hidden, self.num_heads * self.head_dim, bias=True)
        self.k_proj = nn.Linear(hidden, kv_dim, bias=True)
        self.v_proj = nn.Linear(hidden, kv_dim, bias=True)
        self.o_proj = nn.Linear(self.num_heads * self.head_dim, hidden, bias=False)
        self.is_hyper = config.is_hyper_layer(layer_idx)
        if self.is_hyper:
            self.v_kv_proj = nn.Linear(hidden, 2 * kv_dim, bias=True)
            self.gate_proj = nn.Sequential(nn.Linear(self.head_dim, self.head_dim), nn.Sigmoid())

    def _heads(self, x: torch.Tensor, n: int) -> torch.Tensor:
        b, seq, _ = x.shape
        return x.view(b, seq, n, self.head_dim).transpose(1, 2)

    def forward(
        self,
        hidden_states: torch.Tensor,
        cos: torch.Tensor,
        sin: torch.Tensor,
        self_mask: torch.Tensor,
        visual: VisualContext | None = None,
        visual_embeds: torch.Tensor | None = None,
    ) -> torch.Tensor:
        b, seq, _ = hidden_states.shape
        rep = self.num_heads // self.num_kv_heads
        q = _apply_rope(self._heads(self.q_proj(hidden_states), self.num_heads), cos, sin)
        k = _apply_rope(self._heads(self.k_proj(hidden_states), self.num_kv_heads), cos, sin)
        v = self._heads(self.v_proj(hidden_states), self.num_kv_heads)
        ctx = F.scaled_dot_product_attention(q, _repeat_kv(k, rep), _repeat_kv(v, rep), attn_mask=self_mask)
        ctx = ctx.transpose(1, 2)  # (B, L, H, D)
        if self.is_hyper and visual is not None and visual_embeds is not None:
            ctx = self._hyper(q, ctx, visual, visual_embeds, rep)
        return self.o_proj(ctx.reshape(b, seq, -1))

    def _hyper(
        self, q: torch.Tensor, ctx: torch.Tensor, visual: VisualContext, embeds: torch.Tensor, rep: int
    ) -> torch.Tensor:
        b, s, _ = embeds.shape
        kv = self.v_kv_proj(embeds).view(b, s, self.num_kv_heads, 2, self.head_dim)
        vk = kv[:, :, :, 0].transpose(1, 2)  # (B, kvH, S, D)
        vv = kv[:, :, :, 1].transpose(1, 2)
        vk = _apply_rope(vk.float(), visual.cos, visual.sin).to(vk.dtype)
        vctx = F.scaled_dot_product_attention(
            q, _repeat_kv(vk, rep), _repeat_kv(vv, rep), attn_mask=visual.cross_mask
        ).transpose(1, 2)
        gate = self.gate_proj(ctx)
        mixed = ctx * (1 - gate) + vctx * gate
        return torch.where(visual.sees_image[:, :, None, None], mixed, ctx)


class HyperQwen2DecoderLayer(nn.Module):
    def __init__(self, config: MplugOwl3Config, layer_idx: int):
        super().__init__()
        self.self_attn = HyperQwen2Attention(config, layer_idx)
        self.mlp = Qwen2MLP(config)
        self.input_layernorm = Qwen2RMSNorm(config.hidden_size, eps=config.rms_norm_eps)
        self.post_attention_layernorm = Qwen2RMSNorm(config.hidden_size, eps=config.rms_norm_eps)

    def forward(
        self,
        hidden_states: torch.Tensor,
        cos: torch.Tensor,
        sin: torch.Tensor,
        self_mask: torch.Tensor,
        visual: VisualContext | None,
    ) -> torch.Tensor:
        normed = self.input_layernorm(hidden_states)
        # The visual tokens share the layer's input norm (hyper layers only).
        embeds = None
        if visual is not None and self.self_attn.is_hyper:
            embeds = self.input_layernorm(visual.embeds.to(hidden_states.device, hidden_states.dtype))
            visual = _visual_on(visual, hidden_states.device)
        hidden_states = hidden_states + self.self_attn(normed, cos, sin, self_mask, visual, embeds)
        return hidden_states + self.mlp(self.post_attention_layernorm(hidden_states))


def _visual_on(visual: VisualContext, device: torch.device) -> VisualContext:
    if visual.cross_mask.device == device:
        return visual
    return VisualContext(
        visual.embeds,
        visual.cross_mask.to(device),
        visual.sees_image.to(device),
        visual.cos.to(device),
        visual.sin.to(device),
    )


def _self_mask(attention_mask: torch.Tensor) -> torch.Tensor:
    """(B, 1, L, L) bool causal mask hiding keys whose ``attention_mask`` is 0.

    A row that would see nothing (left padding) sees itself, so no row is empty (no NaN).
    """
    seq = attention_mask.shape[1]
    causal = torch.ones(seq, seq, dtype=torch.bool, device=attention_mask.device).tril()
    mask = causal[None] & attention_mask.bool()[:, None, :]
    empty = ~mask.any(-1, keepdim=True)
    eye = torch.eye(seq, dtype=torch.bool, device=attention_mask.device)[None]
    return (mask | (empty & eye))[:, None]


class HyperQwen2Model(nn.Module):
    """The decoder stack (checkpoint prefix ``language_model.model``)."""

    def __init__(self, config: MplugOwl3Config):
        super().__init__()
        self.config = config
        self.embed_tokens = nn.Embedding(config.vocab_size, config.hidden_size)
        self.layers = nn.ModuleList(HyperQwen2DecoderLayer(config, i) for i in range(config.num_hidden_layers))
        self.norm = Qwen2RMSNorm(config.hidden_size, eps=config.rms_norm_eps)

    def visual_context(
        self,
        image_embeds: torch.Tensor,
        media_offset: torch.Tensor,
        pad_lengths: torch.Tensor,
    ) -> VisualContext:
        """Gather each item's images, the text-to-image mask and the MI-RoPE of the visual keys."""
        device = media_offset.device
        n_tok = image_embeds.shape[1]
        first = media_offset[:, -1, 0]  # index of the item's first image in ``image_embeds``
        seen = media_offset[:, :, 1] - media_offset[:, :, :1].squeeze(-1)  # images each token sees
        counts = seen[:, -1]
        n_max = max(int(counts.max()), 1)
        k = torch.arange(n_max, device=device)
        index = (first[:, None] + k[None]).clamp(max=image_embeds.shape[0] - 1)
        embeds = image_embeds[index.to(image_embeds.device)].flatten(1, 2)  # (B, n_max * n_tok, hidden)
        visible = seen[:, :, None] > k[None, None]  # (B, L, n_max)
        sees_image = visible[:, :, 0]
        # Rows that see no image attend to everything (their result is discarded), so no row is empty.
        visible = visible | ~sees_image[:, :, None]
        cross_mask = visible.repeat_interleave(n_tok, dim=2)[:, None]
        # Image k sits at the first token whose count exceeds k (the token after its placeholder).
        pos = (seen[:, :, None] > k[None, None]).int().argmax(dim=1) - pad_lengths[:, None]
        cos, sin = rope_cos_sin(pos.repeat_interleave(n_tok, dim=1), self.config.head_dim, self.config.rope_theta)
        return VisualContext(embeds, cross_mask, sees_image, cos[:, None], sin[:, None])

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        position_ids: torch.Tensor,
        image_embeds: torch.Tensor | None = None,
        media_offset: torch.Tensor | None = None,
        pad_lengths: torch.Tensor | None = None,
    ) -> torch.Tensor:
        hidden = self.embed_tokens(input_ids)
        cos, sin = rope_cos_sin(position_ids, self.config.head_dim, self.config.rope_theta)
        cos, sin = cos[:, None].to(hidden.dtype), sin[:, None].to(hidden.dtype)
        self_mask = _self_mask(attention_mask)
        visual = None
        if image_embeds is not None and media_offset is not None and bool((media_offset[:, -1, 1] > 0).any()):
            if pad_lengths is None:
                pad_lengths = torch.zeros(input_ids.shape[0], dtype=torch.long, device=input_ids.device)
            visual = self.visual_context(image_embeds, media_offset.to(input_ids.device), pad_lengths)
        for layer in self.layers:
            device = layer.input_layernorm.weight.device
            if hidden.device != device:  # device_map across several devices
                hidden, cos, sin, self_mask = (t.to(device) for t in (hidden, cos, sin, self_mask))
            hidden = layer(hidden, cos, sin, self_mask, visual)
        return self.norm(hidden.to(self.norm.weight.device))


class HyperQwen2ForCausalLM(nn.Module):
    """Decoder + LM head (checkpoint prefix ``language_model``)."""

    def __init__(self, config: MplugOwl3Config):
        super().__init__()
        self.model = HyperQwen2Model(config)
        self.lm_head = nn.Linear(config.hidden_size, config.vocab_size, bias=False)

    def forward(self, *args, logits_to_keep: int = 1, **kwargs) -> torch.Tensor:
        hidden = self.model(*args, **kwargs)
        if logits_to_keep:
            hidden = hidden[:, -logits_to_keep:]
        return self.lm_head(hidden.to(self.lm_head.weight.device)).float()


class MplugOwl3PreTrainedModel(PreTrainedModel):
    config: MplugOwl3Config
    config_class = MplugOwl3Config
    base_model_prefix = "mplug_owl3"
    main_input_name = "input_ids"
    _no_split_modules = ["HyperQwen2DecoderLayer", "SiglipEncoderLayer", "SiglipVisionEmbeddings"]
    _supports_sdpa = True


class MplugOwl3Model(MplugOwl3PreTrainedModel):
    """mPLUG-Owl3: ``forward_image`` (SigLIP ``hidden_states[-2]`` -> ``vision2text_model``) + hyper-Qwen2."""

    def __init__(self, config: MplugOwl3Config):
        super().__init__(config)
        vision_config = config.vision_config
        vision_config._attn_implementation = "sdpa"
        self.language_model = HyperQwen2ForCausalLM(config)
        self.vision_model = SiglipVisionModel(vision_config)
        self.vision2text_model = nn.Linear(vision_config.hidden_size, config.hidden_size)
        self.post_init()

    def get_input_embeddings(self) -> nn.Module:
        return self.language_model.model.embed_tokens

    def forward_image(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) crops -> (N, patches, hidden): the second-to-last SigLIP layer, projected."""
        tower = self.vision_model
        weight = tower.embeddings.patch_embedding.weight
        hidden = tower.embeddings(pixel_values.to(weight.device, weight.dtype))
        for layer in tower.encoder.layers[:-1]:  # hidden_states[-2]: skip the last layer (and post-norm, head)
            hidden = layer(hidden.to(layer.layer_norm1.weight.device), None)
        proj = self.vision2text_model
        return proj(hidden.to(proj.weight.device, proj.weight.dtype))

    def forward(
        self,
        input_ids: torch.Tensor,
        media_offset: torch.Tensor | None = None,
        pixel_values: torch.Tensor | None = None,
        image_embeds: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        pad_lengths: torch.Tensor | None = None,
        logits_to_keep: int = 1,
    ) -> torch.Tensor:
        """Logits (float32) of the last ``logits_to_keep`` positions (0: all).

        Defaults: an all-ones mask and positions 0..L-1. The authors' generate instead used
        ``input_ids != 0`` and shifted positions: see :func:`paper_mask_and_positions`.
        """
        device = self.get_input_embeddings().weight.device
        input_ids = input_ids.to(device)
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        attention_mask = attention_mask.to(device)
        if position_ids is None:
            position_ids = positions_from_mask(attention_mask)
        if image_embeds is None and pixel_values is not None:
            image_embeds = self.forward_image(pixel_values)
        if media_offset is not None:
            media_offset = media_offset.to(device)
        return self.language_model(
            input_ids,
            attention_mask,
            position_ids.to(device),
            image_embeds=image_embeds,
            media_offset=media_offset,
            pad_lengths=None if pad_lengths is None else pad_lengths.to(device),
            logits_to_keep=logits_to_keep,
        )


def positions_from_mask(attention_mask: torch.Tensor) -> torch.Tensor:
    """``cumsum(mask) - 1``, masked positions set to 1 (what transformers' generate derives from a mask)."""
    pos = attention_mask.long().cumsum(-1) - 1
    return pos.masked_fill(attention_mask == 0, 1)


def paper_mask_and_positions(input_ids: torch.Tensor, pad_token_id: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """The original generate's implicit mask ``input_ids != pad_token_id`` (0) and its shifted positions."""
    mask = (input_ids != pad_token_id).long()
    return mask, positions_from_mask(mask)
