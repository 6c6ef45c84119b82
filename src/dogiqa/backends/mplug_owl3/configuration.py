"""Configuration of mPLUG-Owl3 (model_type ``mplugowl3``), read from the official ``config.json`` fields.

The decoder fields are Qwen2's; ``hyper_layers`` lists 1-based decoder layers that carry the hyper attention;
``vision_config`` is a SigLIP vision config. Defaults are the sizes of mPLUG-Owl3-7B-240728.
"""

from __future__ import annotations

from dataclasses import field

from transformers import PreTrainedConfig, SiglipVisionConfig

# SigLIP-so400m-patch14-384, the authors' default vision tower.
DEFAULT_VISION = {
    "hidden_size": 1152,
    "image_size": 384,
    "intermediate_size": 4304,
    "num_attention_heads": 16,
    "num_hidden_layers": 27,
    "patch_size": 14,
}


class MplugOwl3Config(PreTrainedConfig):
    """Fields of mPLUG-Owl3's ``config.json`` (HyperQwen2 decoder + SigLIP vision)."""

    model_type = "mplugowl3"
    sub_configs = {"vision_config": SiglipVisionConfig}  # plain mapping: understood by transformers 5.x

    vocab_size: int = 152064
    hidden_size: int = 3584
    intermediate_size: int = 18944
    num_hidden_layers: int = 28
    num_attention_heads: int = 28
    num_key_value_heads: int | None = 4
    hidden_act: str = "silu"
    max_position_embeddings: int = 32768
    initializer_range: float = 0.02
    rms_norm_eps: float = 1e-6
    use_cache: bool = True
    tie_word_embeddings: bool = False
    rope_theta: float = 1000000.0
    use_sliding_window: bool = False
    sliding_window: int | None = None
    max_window_layers: int = 28
    attention_dropout: float | int = 0.0
    hyper_layers: list[int] = field(default_factory=lambda: [1, 9, 17, 25])
    image_size: int = 384
    patch_size: int = 14
    bos_token_id: int | None = None
    eos_token_id: int | list[int] | None = None
    pad_token_id: int | None = None
    vision_config: dict | PreTrainedConfig | None = None

    def __post_init__(self, **kwargs):
        # As the original: no vision config -> SigLIP-so400m; a dict -> SiglipVisionConfig(**dict).
        if self.vision_config is None:
            self.vision_config = SiglipVisionConfig(**DEFAULT_VISION)
        elif isinstance(self.vision_config, dict):
            self.vision_config = SiglipVisionConfig(**self.vision_config)
        if self.num_key_value_heads is None:
            self.num_key_value_heads = self.num_attention_heads
        super().__post_init__(**kwargs)
        if self.hidden_size % self.num_attention_heads:
            raise ValueError(
                f"hidden_size {self.hidden_size} is not divisible by num_attention_heads {self.num_attention_heads}"
            )
        if self.num_attention_heads % self.num_key_value_heads:
            raise ValueError("num_attention_heads must be a multiple of num_key_value_heads")

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_attention_heads

    def is_hyper_layer(self, layer_idx: int) -> bool:
        """Layer ``layer_idx`` (0-based) has hyper attention when ``layer_idx + 1`` is in ``hyper_layers``."""
        return (layer_idx + 1) in self.hyper_layers


def _register() -> None:
    """Let AutoConfig (and so AutoTokenizer) recognise ``model_type: mplugowl3`` folders."""
    from transformers import AutoConfig

    try:
        AutoConfig.register(MplugOwl3Config.model_type, MplugOwl3Config)
    except ValueError:  # already registered
        pass


_register()
