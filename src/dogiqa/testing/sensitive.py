"""A tiny Qwen2-VL whose answer is a known function of the image's brightness (tests that must tell images apart).

The random tiny models answer the same level for every image. This one has hand-set weights so that:

- every merged image token carries ``t = t0 + t1 * y``, with ``y`` the mean brightness of its 28x28 pixels
  (mean over R, G, B of value / 255, after the processor's resize);
- the last prompt position attends (almost) only to the image tokens, so it holds the image's mean ``t``;
- the next-token logit of the digit ``k`` (0..9) is ``tau * (2 k t - k**2)`` (= ``-tau (k - t)**2`` up to a
  term that is the same for every ``k``); every other token's logit is negative, so the greedy answer is the
  digit nearest ``t``: ``0`` (an invalid level) for dark images, ``8``/``9`` (invalid for K = 7) for bright ones;
- the quality words (bad poor fair good excellent = 1..5) read ``t * 5 / 8`` the same way (Q-Align, Q-Bench).

With the defaults (``t0 = 0``, ``t1 = 8``) a uniform grey of value ``v`` answers ``round(8 v / 255)``, and the
level-token softmax for K levels is ``softmax_k(-tau (k - t)**2)``, k = 1..K (``level_probs``), which a test can
compute by hand. How it is done: the vision tower keeps only a brightness channel (residual branches zeroed;
the merger's LayerNorm and the text RMSNorms run in their linear regime, inputs far below their epsilon), one
attention head of layer 0 reads the image tokens' (1, t) pair into the last position, and ``lm_head`` reads the
pair out. Everything else is zero.
"""

from __future__ import annotations

import math
from pathlib import Path

from dogiqa.testing.tiny import QUALITY_WORDS, _build_idefics3, _build_qwen

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)  # the Qwen2-VL processor's normalisation
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
_SMALL = 1e-3  # activations stay far below the RMSNorm epsilon (1.0): the norms are linear (to ~1e-6)
_WORD_LEVEL = {"bad": 1, "poor": 2, "fair": 3, "good": 4, "excellent": 5}
# residual-stream channels of the language model
_Q, _E, _A, _B = 0, 1, 2, 3  # query marker (text), image marker, constant, t


def brightness_t(y: float, t0: float = 0.0, t1: float = 8.0) -> float:
    """The model's internal value for a uniform image of mean brightness ``y`` in [0, 1]."""
    return t0 + t1 * y


def greedy_digit(t: float) -> str:
    """The greedy answer for an image whose mean token value is ``t`` (nearest digit 0..9)."""
    return str(min(9, max(0, math.floor(t + 0.5))))


def level_probs(t: float, levels: int, tau: float = 1.0) -> list[float]:
    """Softmax over the level tokens 1..K of ``-tau (k - t)**2`` (what the ``expected`` readout sees)."""
    logits = [-tau * (k - t) ** 2 for k in range(1, levels + 1)]
    top = max(logits)
    exps = [math.exp(x - top) for x in logits]
    return [e / sum(exps) for e in exps]


def expected_level(t: float, levels: int, tau: float = 1.0) -> float:
    return sum(k * p for k, p in enumerate(level_probs(t, levels, tau), start=1))


def _set_vision(visual: object, t0: float, t1: float) -> None:
    import torch

    with torch.no_grad():
        for p in visual.parameters():
            p.zero_()
        for block in visual.blocks:  # residual branches off: blocks are the identity
            block.norm1.weight.fill_(1.0)
            block.norm2.weight.fill_(1.0)
        conv = visual.patch_embed.proj.weight  # (32, 3, T, P, P)
        beta = 1e-5  # tiny, so that the merger's LayerNorm (eps 1e-6) is linear
        n = conv[0].numel()
        for c in range(3):  # channel 0 = beta * (mean brightness - mean of CLIP_MEAN)
            conv[0, c] = CLIP_STD[c] * beta / n
        merger = visual.merger
        merger.ln_q.weight.fill_(1.0)
        dim = merger.ln_q.weight.shape[0]
        gain = (dim - 1) / dim / math.sqrt(1e-6)  # LayerNorm of (x, 0, ..., 0) in its linear regime
        fc1, fc2 = merger.mlp[0], merger.mlp[2]
        for p in range(4):  # unit 0 = 10 + mean over the 2x2 patches of (y - mean(CLIP_MEAN))
            fc1.weight[0, p * dim] = 1.0 / (4 * beta * gain)
        fc1.bias[0] = 10.0  # GELU(z) == z for z around 10
        mu = sum(CLIP_MEAN) / 3
        fc2.bias[_E] = _SMALL
        fc2.bias[_A] = _SMALL
        fc2.weight[_B, 0] = _SMALL * t1
        fc2.bias[_B] = _SMALL * (t0 + t1 * (mu - 10.0))


def _set_idefics3_vision(model: object, t0: float, t1: float) -> None:
    """SigLIP-style tower: channel 0 = beta * (2 y - 1) (pixels normalised with mean = std = 0.5), channel 1 =
    beta (the conv bias); the post-LayerNorm (eps 1.0) is linear and centres them; the connector undoes that."""
    import torch

    vision, connector = model.model.vision_model, model.model.connector
    with torch.no_grad():
        for p in vision.parameters():
            p.zero_()
        for layer in vision.encoder.layers:
            layer.layer_norm1.weight.fill_(1.0)
            layer.layer_norm2.weight.fill_(1.0)
        vision.post_layernorm.weight.fill_(1.0)
        beta = 1e-3
        conv = vision.embeddings.patch_embedding
        conv.weight[0] = beta / conv.weight[0].numel()
        conv.bias[1] = beta
        dim = conv.weight.shape[0]
        # LayerNorm (linear regime) maps (b, c) on channels 0, 1 to (b - m, c - m), m = (b + c) / dim
        centre = torch.tensor([[1 - 1 / dim, -1 / dim], [-1 / dim, 1 - 1 / dim]], dtype=torch.float64)
        undo = torch.linalg.inv(centre)  # (channel 0, channel 1) -> (b, c)
        # outputs: E = A = SMALL * c / beta; B = SMALL * (t0 + t1 y), y = (b / beta + 1) / 2
        rows = {_E: (0.0, _SMALL / beta), _A: (0.0, _SMALL / beta),
                _B: (_SMALL * t1 / (2 * beta), _SMALL * (t0 + t1 / 2) / beta)}  # fmt: skip
        proj = connector.modality_projection.proj.weight  # (text hidden, 4 * dim)
        proj.zero_()
        n_groups = proj.shape[1] // dim
        for out, (wb, wc) in rows.items():
            on_channels = torch.tensor([wb, wc], dtype=torch.float64) @ undo
            for g in range(n_groups):  # the mean over the pixel-shuffled patches
                proj[out, g * dim] = float(on_channels[0]) / n_groups
                proj[out, g * dim + 1] = float(on_channels[1]) / n_groups


def _set_text(model: object, ids: dict[str, int], tau: float) -> None:
    import torch

    inner = model.model
    lm = inner.language_model if hasattr(inner, "language_model") else inner.text_model
    with torch.no_grad():
        for p in lm.parameters():
            p.zero_()
        for layer in lm.layers:
            layer.input_layernorm.weight.fill_(1.0)
            layer.post_attention_layernorm.weight.fill_(1.0)
        lm.norm.weight.fill_(1.0)
        lm.embed_tokens.weight[:, _Q] = _SMALL  # every text token marks itself as a query
        attn = lm.layers[0].self_attn
        head_dim = attn.head_dim
        slow = head_dim - 1  # the slowest rotary pair: positions barely rotate it
        score = 40.0  # q.k / sqrt(d) for an image key; 0 for a text key
        w = math.sqrt(score * math.sqrt(head_dim)) / _SMALL
        attn.q_proj.weight[slow, _Q] = w
        attn.k_proj.weight[slow, _E] = w
        attn.v_proj.weight[0, _A] = 1.0
        attn.v_proj.weight[1, _B] = 1.0
        attn.o_proj.weight[_A, 0] = 1.0
        attn.o_proj.weight[_B, 1] = 1.0
        head = model.lm_head.weight
        head.zero_()
        head[:, _Q] = -1.0 / _SMALL  # every other token: logit -1
        gain = tau / _SMALL
        for k in range(10):
            _quadratic_row(head, ids[str(k)], k, 1.0, gain)
        for word, level in _WORD_LEVEL.items():
            for text in (word, "Ġ" + word, word.capitalize(), "Ġ" + word.capitalize()):  # Ġ: byte-level space
                if text in ids:
                    _quadratic_row(head, ids[text], level, 5.0 / 8.0, gain)


def _quadratic_row(head: object, row: int, k: float, scale: float, gain: float) -> None:
    """logit = gain * (2 k scale B - k^2 A) = tau * (2 k (scale t) - k^2) at the last position."""
    head[row, _Q] = 0.0
    head[row, _A] = -gain * k * k
    head[row, _B] = gain * 2 * k * scale


def build_brightness_qwen2vl(path: str | Path, tau: float = 1.0, t0: float = 0.0, t1: float = 8.0) -> Path:
    """A tiny Qwen2-VL whose greedy answer is ``round(t0 + t1 * brightness)``; returns the folder.

    ``tau`` is the inverse temperature of the level logits (``level_probs``).
    """
    assert all(w in _WORD_LEVEL for w in QUALITY_WORDS)

    def configure(model: object, ids: dict[str, int]) -> None:
        _set_vision(model.model.visual, t0, t1)
        _set_text(model, ids, tau)

    return _build_qwen(Path(path), "qwen2_vl", 0, 1.0, configure=configure, text_extra={"rms_norm_eps": 1.0})


def build_brightness_idefics3(path: str | Path, tau: float = 1.0, t0: float = 0.0, t1: float = 8.0) -> Path:
    """The same readout on a tiny Idefics3 (image split into tiles + a global view; t is averaged over all)."""

    def configure(model: object, ids: dict[str, int]) -> None:
        _set_idefics3_vision(model, t0, t1)
        _set_text(model, ids, tau)

    rope = {"rope_type": "default", "rope_theta": 1e6}  # slow rotary: image keys look alike at every position
    text = {"rms_norm_eps": 1.0, "rope_parameters": rope}
    return _build_idefics3(Path(path), 0, 1.0, configure=configure, text_extra=text,
                           vision_extra={"layer_norm_eps": 1.0})  # fmt: skip
