"""Random ``Sam2Model`` checkpoints of the real architecture, built offline, for tests and benchmarks."""

from __future__ import annotations

from pathlib import Path

import torch


def tiny_sam2_config():
    """offline-recipes.md section 4.1: the Sam2 architecture with tiny sizes (about 124k parameters)."""
    from transformers import Sam2Config

    dims = [8, 16, 32, 64]
    backbone = dict(
        model_type="sam2_hiera_det_model",
        hidden_size=8,
        embed_dim_per_stage=dims,
        num_attention_heads_per_stage=[1, 1, 2, 2],
        blocks_per_stage=[1, 1, 2, 1],
        window_size_per_stage=[8, 4, 14, 7],
        global_attention_blocks=[3],
    )
    return Sam2Config(
        vision_config=dict(backbone_config=backbone, backbone_channel_list=dims[::-1], fpn_hidden_size=32),
        prompt_encoder_config=dict(hidden_size=32, mask_input_channels=4),
        mask_decoder_config=dict(hidden_size=32, mlp_dim=64, num_attention_heads=2, iou_head_hidden_dim=32),
    )


def hiera_large_config():
    """The sizes of SAM 2 Hiera-Large (``facebook/sam2-hiera-large``), for timing with random weights."""
    from transformers import Sam2Config

    dims = [144, 288, 576, 1152]
    backbone = dict(
        model_type="sam2_hiera_det_model",
        hidden_size=144,
        embed_dim_per_stage=dims,
        num_attention_heads_per_stage=[2, 4, 8, 16],
        blocks_per_stage=[2, 6, 36, 4],
        window_size_per_stage=[8, 4, 16, 8],
        global_attention_blocks=[23, 33, 43],
        window_positional_embedding_background_size=[7, 7],
    )
    return Sam2Config(
        vision_config=dict(backbone_config=backbone, backbone_channel_list=dims[::-1], fpn_hidden_size=256)
    )


def bias_sam2(model) -> None:
    """offline-recipes.md section 4.2: predicted IoU about 0.9975 and sharp logits, so that masks pass
    Dog-IQA's thresholds (a worst case for post-processing: every candidate reaches full resolution)."""
    with torch.no_grad():
        model.mask_decoder.iou_prediction_head.proj_out.bias.fill_(6.0)
        for mlp in model.mask_decoder.output_hypernetworks_mlps:
            mlp.proj_out.weight.mul_(1e7)
            mlp.proj_out.bias.mul_(1e7)


def build_sam2(path: str | Path, config=None, biased: bool = True, seed: int = 0) -> Path:
    """Save a randomly initialised ``Sam2Model`` (tiny unless ``config`` is given) to ``path``."""
    from transformers import Sam2Model

    torch.manual_seed(seed)
    model = Sam2Model(config if config is not None else tiny_sam2_config()).eval()
    if biased:
        bias_sam2(model)
    path = Path(path)
    model.save_pretrained(path)
    return path
