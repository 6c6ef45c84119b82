"""mPLUG-Owl3 processor: 384-px anchor-grid tiles + a global view, prompt expansion and chunked tokenization.

Reproduces the authors' processor (``image_size=384``, anchors ``grid_squ_6``, "docowl" anchor ranking, cut
prompt ``v2`` with a global view, bicubic resizing, mean = std = 0.5) without torchvision:

- the anchor (rows, cols) is the one whose shape best matches the image, then whose area overlaps it most;
- the image is resized (PIL bicubic) to cols*384 x rows*384 and cut row-major into 384-px tiles, then the
  whole image resized to 384 x 384 is appended as the global view;
- each ``<|image|>`` of the text becomes "Cut to R rows C columns with a global view\\n" + one line per row of
  ``subimg(i,j)<|image|>`` separated by spaces + "\\nglobal_view<|image|>";
- the chat text is tokenized chunk by chunk (system turn, user turn split around every ``<|image|>``,
  assistant header), so BPE merges never cross a chunk boundary;
  ``media_offset[i] = [0, number of image tokens before position i]``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image

IMAGE_TOKEN = "<|image|>"
IM_START, IM_END = "<|im_start|>", "<|im_end|>"
# grid_squ_6 of the original, as (rows, cols).
GRID_SQU_6: tuple[tuple[int, int], ...] = ((2, 2), (1, 3), (1, 4), (3, 1), (4, 1), (2, 3), (3, 2))


def _iou(inter: int, area1: int, area2: int) -> np.float32:
    """The original's float32 IoU with ``eps = 1e-5`` added to the union."""
    union = np.float32(area1 + area2 - inter) + np.float32(1e-5)
    return np.float32(inter) / union


def select_anchor(width: int, height: int, anchors: Sequence[tuple[int, int]], tile: int = 384) -> int:
    """Index of the anchor grid for a ``width x height`` image ("docowl" ranking of the original).

    Score = 100 * IoU(anchor, anchor-width box with the image's aspect ratio) + IoU(anchor, image), in
    float32 with integer boxes (the aspect-ratio box height is truncated, as the original's int tensor does).
    """
    best, best_score = 0, None
    for i, (rows, cols) in enumerate(anchors):
        aw, ah = cols * tile, rows * tile
        area = aw * ah
        iou = _iou(min(aw, width) * min(ah, height), area, width * height)
        shaped_h = int(np.float32(height / width) * np.float32(aw))  # truncation toward zero
        shape_iou = _iou(aw * min(ah, shaped_h), area, aw * shaped_h)
        score = np.float32(shape_iou * np.float32(100)) + iou
        if best_score is None or score > best_score:
            best, best_score = i, score
    return best


def _to_tensor(image: Image.Image) -> torch.Tensor:
    """uint8 RGB -> (3, H, W) float32, ``(x / 255 - 0.5) / 0.5`` (ToTensor + Normalize(0.5, 0.5))."""
    arr = torch.from_numpy(np.asarray(image, dtype=np.uint8).copy()).permute(2, 0, 1)
    return (arr.float().div(255) - 0.5) / 0.5


def cut_prompt(rows: int, cols: int) -> str:
    """The text that replaces one ``<|image|>`` (the original's "v2_global" template)."""
    grid = "\n".join(" ".join(f"subimg({i},{j}){IMAGE_TOKEN}" for j in range(cols)) for i in range(rows))
    return f"Cut to {rows} rows {cols} columns with a global view\n{grid}\nglobal_view{IMAGE_TOKEN}"


@dataclass
class ImageCrops:
    pixel_values: torch.Tensor  # (tiles + 1, 3, size, size)
    cut_shape: tuple[int, int]  # (rows, cols)


class MplugOwl3ImageProcessor:
    """Anchor-grid tiling + global view, bicubic, mean = std = 0.5."""

    def __init__(self, image_size: int = 384, anchors: Sequence[tuple[int, int]] = GRID_SQU_6):
        self.image_size = image_size
        self.anchors = tuple(anchors)

    def crops(self, image: Image.Image) -> ImageCrops:
        if image.mode != "RGB":
            image = image.convert("RGB")
        size = self.image_size
        rows, cols = self.anchors[select_anchor(image.width, image.height, self.anchors, size)]
        grid = _to_tensor(image.resize((cols * size, rows * size), Image.BICUBIC))
        tiles = grid.reshape(3, rows, size, cols, size).permute(1, 3, 0, 2, 4).reshape(rows * cols, 3, size, size)
        whole = _to_tensor(image.resize((size, size), Image.BICUBIC))
        return ImageCrops(torch.cat([tiles, whole[None]]), (rows, cols))

    def __call__(self, images: Sequence[Image.Image]) -> tuple[torch.Tensor, list[tuple[int, int]]]:
        crops = [self.crops(im) for im in images]
        return torch.cat([c.pixel_values for c in crops]), [c.cut_shape for c in crops]


class MplugOwl3Processor:
    """Chat messages + images -> ``input_ids`` (1, L), ``media_offset`` (1, L, 2), ``pixel_values``."""

    def __init__(self, tokenizer, image_processor: MplugOwl3ImageProcessor | None = None):
        self.tokenizer = tokenizer
        self.image_processor = image_processor or MplugOwl3ImageProcessor()

    @staticmethod
    def expand_messages(messages: Sequence[dict], cut_shapes: Sequence[tuple[int, int]]) -> list[dict]:
        """Copies of ``messages`` with the i-th ``<|image|>`` replaced by the cut prompt of image i."""
        shapes = iter(cut_shapes)
        out = []
        for message in messages:
            parts = message["content"].split(IMAGE_TOKEN)
            text = parts[0] + "".join(cut_prompt(*next(shapes)) + part for part in parts[1:])
            out.append({**message, "content": text})
        return out

    @staticmethod
    def chunks(messages: Sequence[dict], eod: str = "<|endoftext|>") -> list[str]:
        """The original's chat layout, as separately tokenized chunks (inference mode).

        An empty system turn is added when the first message is not a system message. An assistant turn is
        its header, then ``content<|im_end|>`` and ``eod``; trailing assistant parts (all but the header of a
        final assistant turn) are dropped, which leaves the generation prompt.
        """
        out: list[tuple[str, bool]] = []  # (text, is assistant answer)
        for i, message in enumerate(messages):
            role, content = message["role"], message["content"]
            if i == 0 and role != "system":
                out.append((f"{IM_START}system\n{IM_END}", False))
            if role == "system":
                out.append((f"{IM_START}system\n{content}{IM_END}", False))
            elif role == "user":
                parts = re.split(f"({re.escape(IMAGE_TOKEN)})", f"\n{IM_START}user\n{content}{IM_END}")
                out.extend((part, False) for part in parts)
            elif role == "assistant":
                out += [(f"\n{IM_START}assistant\n", False), (f"{content}{IM_END}", True), (eod, True)]
            else:
                raise ValueError(f"unknown chat role {role!r}")
        while out and out[-1][1]:
            out.pop()
        return [text for text, _ in out]

    def tokenize(self, chunks: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        ids: list[int] = []
        starts: list[int] = []
        for chunk in chunks:
            if chunk == IMAGE_TOKEN:
                starts.append(len(ids))
            ids.extend(self.tokenizer(chunk).input_ids)
        input_ids = torch.tensor(ids, dtype=torch.long)
        seen = (torch.arange(len(ids))[:, None] > torch.tensor(starts, dtype=torch.long)[None]).sum(1)
        media_offset = torch.stack([torch.zeros_like(seen), seen], dim=1)
        return input_ids[None], media_offset[None]

    def __call__(self, messages: Sequence[dict], images: Sequence[Image.Image] = ()) -> dict:
        n_placeholders = sum(m["content"].count(IMAGE_TOKEN) for m in messages)
        if n_placeholders != len(images):
            raise ValueError(f"{len(images)} image(s) for {n_placeholders} {IMAGE_TOKEN} placeholder(s)")
        pixel_values, cut_shapes = self.image_processor(images) if images else (None, [])
        expanded = self.expand_messages(messages, cut_shapes)
        input_ids, media_offset = self.tokenize(self.chunks(expanded))
        return {
            "input_ids": input_ids,
            "media_offset": media_offset,
            "pixel_values": pixel_values,
            "messages": expanded,
            "cut_shapes": cut_shapes,
        }


def collate(items: Sequence[dict], pad_token_id: int = 0) -> dict:
    """Left-pad single-item processor outputs into one batch.

    ``padding_mask`` is 1 on real tokens; ``pad_lengths`` counts each row's left padding; ``media_offset``
    column 0 becomes the row's first index into the concatenated ``pixel_values``.
    """
    seq = max(it["input_ids"].shape[1] for it in items)
    ids, offsets, masks, pads, pixels = [], [], [], [], []
    start = 0
    for it in items:
        n = it["input_ids"].shape[1]
        pad = seq - n
        ids.append(torch.cat([torch.full((pad,), pad_token_id, dtype=torch.long), it["input_ids"][0]]))
        mo = torch.cat([torch.zeros(pad, 2, dtype=torch.long), it["media_offset"][0]]) + start
        offsets.append(mo)
        masks.append(torch.cat([torch.zeros(pad, dtype=torch.long), torch.ones(n, dtype=torch.long)]))
        pads.append(pad)
        if it.get("pixel_values") is not None:
            pixels.append(it["pixel_values"])
            start += it["pixel_values"].shape[0]
    return {
        "input_ids": torch.stack(ids),
        "media_offset": torch.stack(offsets),
        "padding_mask": torch.stack(masks),
        "pad_lengths": torch.tensor(pads, dtype=torch.long),
        "pixel_values": torch.cat(pixels) if pixels else None,
    }
