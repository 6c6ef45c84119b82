"""Fixtures for the SAM 2 tests: the shared reference fixture and a tiny biased Sam2Model built offline."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

REPO = Path(__file__).resolve().parents[2]
SHARED = (REPO / ".." / "shared").resolve()
REFERENCE = SHARED / "reference" / "sam2-amg"


@pytest.fixture(scope="session")
def reference() -> dict:
    """cases.json and masks.npz of ../shared/reference/sam2-amg (skips when shared/ is absent)."""
    if not (REFERENCE / "cases.json").is_file():
        pytest.skip(f"SAM 2 reference fixture not found at {REFERENCE} (shared/ absent next to the repo)")
    torch.set_num_threads(2)
    cases = json.loads((REFERENCE / "cases.json").read_text())
    masks = dict(np.load(REFERENCE / "masks.npz"))
    return {"root": REFERENCE, "cases": cases, "masks": masks}


def tiny_sam2_config():
    """offline-recipes.md section 4.1: a real Sam2 architecture with tiny sizes."""
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


@pytest.fixture(scope="session")
def tiny_sam2_dir(tmp_path_factory) -> Path:
    """A random tiny Sam2Model, biased as in section 4.2 so that masks pass Dog-IQA's thresholds."""
    from transformers import Sam2Model

    torch.manual_seed(0)
    model = Sam2Model(tiny_sam2_config()).eval()
    with torch.no_grad():
        model.mask_decoder.iou_prediction_head.proj_out.bias.fill_(6.0)
        for mlp in model.mask_decoder.output_hypernetworks_mlps:
            mlp.proj_out.weight.mul_(1e7)
            mlp.proj_out.bias.mul_(1e7)
    out = tmp_path_factory.mktemp("tiny_sam2")
    model.save_pretrained(out)
    return out
