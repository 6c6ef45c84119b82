"""Fixtures for the scorer tests: the shared calibration folder and a tiny random CLIP built offline."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

BASELINES = Path(__file__).resolve().parents[2] / ".." / "shared" / "reference" / "baselines"


@pytest.fixture(scope="session")
def baselines() -> Path:
    """``<repo>/../shared/reference/baselines`` (calibration images, MATLAB values, parameter files)."""
    if not (BASELINES / "expected.csv").is_file():
        pytest.skip(f"calibration data not found at {BASELINES.resolve()} (needs <repo>/../shared)")
    return BASELINES.resolve()


@pytest.fixture(scope="session")
def calibration(baselines: Path) -> list[dict]:
    """One row per calibration image: folder, image, path, MATLAB values (or None) and cross-check values."""

    def read(name: str) -> dict:
        with open(baselines / name, newline="") as fh:
            return {(r["folder"], r["image"]): r for r in csv.DictReader(fh)}

    expected, cross = read("expected.csv"), read("crosscheck.csv")
    rows = []
    for key, exp in expected.items():
        row = {"folder": key[0], "image": key[1], "path": baselines / "images" / key[0] / key[1]}
        for col in ("niqe_full_precision", "piqe"):
            row[col] = float(exp[col]) if exp[col] else None
        for col, val in cross[key].items():
            if col not in ("folder", "image"):
                row[col] = float(val)
        rows.append(row)
    return rows


def _write_tiny_tokenizer(folder: Path) -> None:
    """A CLIP byte-level BPE vocabulary: every byte (with and without ``</w>``) plus a few merges."""
    from tokenizers.pre_tokenizers import ByteLevel

    chars = sorted(ByteLevel.alphabet())
    vocab: dict[str, int] = {}
    for c in chars + [c + "</w>" for c in chars]:
        vocab[c] = len(vocab)
    merges = [("g", "o"), ("go", "o"), ("goo", "d</w>"), ("b", "a"), ("ba", "d</w>"), ("p", "h"), ("ph", "o")]
    for a, b in merges:
        vocab[a + b] = len(vocab)
    vocab["<|startoftext|>"] = len(vocab)
    vocab["<|endoftext|>"] = len(vocab)
    (folder / "vocab.json").write_text(json.dumps(vocab))
    (folder / "merges.txt").write_text("#version: 0.2\n" + "\n".join(f"{a} {b}" for a, b in merges) + "\n")


@pytest.fixture(scope="session")
def tiny_clip_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A saved, randomly initialised CLIPModel (real architecture), tokenizer and image processor; ~100 KB."""
    import torch
    from transformers import CLIPConfig, CLIPImageProcessorPil, CLIPModel, CLIPTokenizer

    folder = tmp_path_factory.mktemp("tiny_clip")
    _write_tiny_tokenizer(folder)
    tok = CLIPTokenizer(vocab=str(folder / "vocab.json"), merges=str(folder / "merges.txt"))
    ids = tok.convert_tokens_to_ids(["<|startoftext|>", "<|endoftext|>"])
    text = dict(
        vocab_size=len(tok),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        max_position_embeddings=40,
        bos_token_id=ids[0],
        eos_token_id=ids[1],
        pad_token_id=ids[1],
    )
    vision = dict(
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        image_size=32,
        patch_size=8,
    )
    torch.manual_seed(0)
    model = CLIPModel(CLIPConfig(text_config=text, vision_config=vision, projection_dim=16)).eval()
    with torch.no_grad():
        model.logit_scale.fill_(4.0)  # sharper softmax than the 1/0.07 init, so scores spread out
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    CLIPImageProcessorPil(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}).save_pretrained(
        folder
    )
    return folder
