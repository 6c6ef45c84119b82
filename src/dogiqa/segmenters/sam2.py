"""SAM 2 automatic mask generation on transformers' ``Sam2Model``, reproducing Meta's generator.

Meta's ``SAM2AutomaticMaskGenerator`` (as Dog-IQA configures it, spec section 3) is re-implemented here,
vectorised in torch: one image embedding, the point grid in batches, multimask output, the predicted-IoU
filter, the stability score on full-resolution logits, binarisation, boxes, greedy box NMS and NMS keep
order. Full-resolution logits are produced in memory-bounded chunks, so 4000x3000 photos are fine.
No torchvision, no ``Sam2Processor``, no pipeline.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from scipy import ndimage

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
SMALL_REGION_MODES = ("skip", "fill")


class Decoded(NamedTuple):
    """Decoder outputs for one image: low-res logits (N, h, w), predicted IoU (N,), points (N, 2), (H, W)."""

    lowres: torch.Tensor
    iou: torch.Tensor
    points: torch.Tensor
    size: tuple[int, int]


@dataclass(frozen=True)
class AmgParams:
    """Generator parameters, named as in Meta's ``SAM2AutomaticMaskGenerator``."""

    points_per_side: int = 8
    points_per_batch: int = 128
    pred_iou_thresh: float = 0.9
    stability_score_thresh: float = 0.8
    stability_score_offset: float = 0.7
    box_nms_thresh: float = 0.9
    min_mask_region_area: int = 1000
    mask_threshold: float = 0.0
    multimask_output: bool = True
    memory_budget_mb: int = 256  # ours: bound on full-resolution logits held at once


# Presets as data. "paper": Dog-IQA's values (spec section 3); "sam2-default": Meta's defaults.
PRESETS: dict[str, dict[str, Any]] = {
    "paper": {
        "points_per_side": 8,
        "points_per_batch": 128,
        "pred_iou_thresh": 0.9,
        "stability_score_thresh": 0.8,
        "stability_score_offset": 0.7,
        "box_nms_thresh": 0.9,
        "min_mask_region_area": 1000,
        "mask_threshold": 0.0,
        "multimask_output": True,
    },
    "sam2-default": {
        "points_per_side": 32,
        "points_per_batch": 64,
        "pred_iou_thresh": 0.8,
        "stability_score_thresh": 0.95,
        "stability_score_offset": 1.0,
        "box_nms_thresh": 0.7,
        "min_mask_region_area": 0,
        "mask_threshold": 0.0,
        "multimask_output": True,
    },
}


def make_params(preset: str = "paper", **overrides: Any) -> AmgParams:
    """Preset values with ``overrides`` applied; unknown names raise ``ValueError``."""
    if preset not in PRESETS:
        raise ValueError(f"unknown SAM 2 preset {preset!r}; choose one of: {', '.join(PRESETS)}")
    known = {f.name for f in fields(AmgParams)}
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise ValueError(f"unknown SAM 2 generator option(s) {unknown}; known: {sorted(known)}")
    return replace(AmgParams(), **{**PRESETS[preset], **overrides})


# ----------------------------------------------------------------------------------------------------------
# The math, as small pure functions (unit-tested on constructed inputs)
# ----------------------------------------------------------------------------------------------------------


def preprocess(image: np.ndarray, size: int = 1024) -> torch.Tensor:
    """uint8 HxWx3 -> (1, 3, size, size) float32: [0,1], antialiased bilinear resize, ImageNet mean/std."""
    x = torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1))).to(torch.float32).div(255)
    x = F.interpolate(x[None], size=(size, size), mode="bilinear", align_corners=False, antialias=True)
    mean = torch.tensor(IMAGENET_MEAN, dtype=torch.float32).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, dtype=torch.float32).view(1, 3, 1, 1)
    return x.sub(mean).div(std)


def point_grid(n_per_side: int) -> np.ndarray:
    """(n*n, 2) points in [0,1]^2 at offsets 1/(2n) .. 1-1/(2n), x varying fastest."""
    offset = 1 / (2 * n_per_side)
    side = np.linspace(offset, 1 - offset, n_per_side)
    xs = np.tile(side[None, :], (n_per_side, 1))
    ys = np.tile(side[:, None], (1, n_per_side))
    return np.stack([xs, ys], axis=-1).reshape(-1, 2)


def stability_score(logits: torch.Tensor, threshold: float, offset: float) -> torch.Tensor:
    """count(logit > t + offset) / count(logit > t - offset) over the last two dims (0/0 -> NaN)."""
    inter = count_true(logits > threshold + offset)
    union = count_true(logits > threshold - offset)
    return inter.to(torch.float32) / union.to(torch.float32)


def row_counts(masks: torch.Tensor) -> torch.Tensor:
    """Per-row count of True, (N, H, W) -> (N, H), in the narrowest safe integer type."""
    row_dtype = torch.int16 if masks.shape[-1] < 2**15 else torch.int32
    return masks.view(torch.uint8).sum(dim=-1, dtype=row_dtype)


def count_true(masks: torch.Tensor) -> torch.Tensor:
    """Per-mask count of True over the last two dims (row sums first: about 2x faster on CPU)."""
    return row_counts(masks).sum(dim=-1, dtype=torch.int64)


def mask_boxes(masks: torch.Tensor) -> torch.Tensor:
    """(N, H, W) bool -> (N, 4) int64 XYXY with inclusive ends; an empty mask gives 0,0,0,0."""
    return boxes_from_extents(row_counts(masks) > 0, masks.view(torch.uint8).amax(dim=-2) > 0)


def boxes_from_extents(rows: torch.Tensor, cols: torch.Tensor) -> torch.Tensor:
    """Boxes from per-row (N, H) and per-column (N, W) occupancy."""
    h, w = rows.shape[-1], cols.shape[-1]
    top = rows.to(torch.uint8).argmax(dim=-1)
    bottom = h - 1 - rows.flip(-1).to(torch.uint8).argmax(dim=-1)
    left = cols.to(torch.uint8).argmax(dim=-1)
    right = w - 1 - cols.flip(-1).to(torch.uint8).argmax(dim=-1)
    boxes = torch.stack([left, top, right, bottom], dim=-1).to(torch.int64)
    return boxes * rows.any(dim=-1, keepdim=True)


def box_nms(boxes: torch.Tensor, scores: torch.Tensor, iou_thresh: float) -> torch.Tensor:
    """Greedy NMS like torchvision's: stable descending score order, area (x1-x0)(y1-y0), drop IoU > thresh.

    Returns kept indices in keep order (descending score).
    """
    if boxes.numel() == 0:
        return torch.zeros(0, dtype=torch.int64)
    b = boxes.to(torch.float32)
    area = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    lt = torch.maximum(b[:, None, :2], b[None, :, :2])
    rb = torch.minimum(b[:, None, 2:], b[None, :, 2:])
    wh = (rb - lt).clamp(min=0)
    inter = wh[..., 0] * wh[..., 1]
    iou = inter / (area[:, None] + area[None, :] - inter)
    over = (iou.double() > iou_thresh).cpu().numpy()  # NaN (0/0) never suppresses
    order = torch.sort(scores, descending=True, stable=True).indices.cpu().numpy()
    suppressed = np.zeros(len(order), dtype=bool)
    keep = []
    for i in order:
        if suppressed[i]:
            continue
        keep.append(i)
        suppressed |= over[i]
    return torch.as_tensor(np.array(keep, dtype=np.int64))


def _small_components(binary: np.ndarray, max_area: int) -> np.ndarray:
    """Pixels of (N, h, w) ``binary`` whose 8-connected component (per slice) has area <= max_area."""
    structure = np.zeros((3, 3, 3), dtype=bool)
    structure[1] = True  # 8-connectivity within each slice, none across slices
    labels, count = ndimage.label(binary, structure=structure)
    if count == 0:
        return np.zeros_like(binary)
    small = np.bincount(labels.ravel(), minlength=count + 1) <= max_area
    small[0] = False  # label 0 is "not in the set"
    return small[labels]


def fill_small_regions(
    logits: torch.Tensor, max_hole_area: int, max_sprinkle_area: int, threshold: float = 0.0
) -> torch.Tensor:
    """SAM 2's low-res clean-up: holes (background comps <= max_hole_area) -> threshold + 10, then
    sprinkles (foreground comps <= max_sprinkle_area, found on the logits before the fill) -> threshold - 10.

    ``logits``: (N, h, w). Returns a new tensor.
    """
    original = logits.detach().float().cpu().numpy()
    out = logits.clone()
    if max_hole_area > 0:
        holes = torch.from_numpy(_small_components(original <= threshold, max_hole_area)).to(out.device)
        out = torch.where(holes, torch.full_like(out, threshold + 10.0), out)
    if max_sprinkle_area > 0:
        dots = torch.from_numpy(_small_components(original > threshold, max_sprinkle_area)).to(out.device)
        out = torch.where(dots, torch.full_like(out, threshold - 10.0), out)
    return out


def upsample(lowres: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """(n, h, w) logits -> (n, H, W) float32, bilinear, align_corners False."""
    return F.interpolate(lowres[:, None].float(), size=size, mode="bilinear", align_corners=False)[:, 0]


def chunk_size(height: int, width: int, budget_mb: int) -> int:
    """Masks per chunk so that a chunk's working set stays within ``budget_mb``: float logits (4 bytes per
    pixel), a copy of the stable ones (4) and boolean maps (1-2)."""
    per_mask = height * width * 10
    return max(1, int(budget_mb * 2**20 // per_mask))


# ----------------------------------------------------------------------------------------------------------
# Model loading
# ----------------------------------------------------------------------------------------------------------


def load_sam2_model(model: str, device: str = "cpu", dtype: str | None = "float32") -> torch.nn.Module:
    """Load a transformers ``Sam2Model`` from a local folder or a hub id (local cache tried first)."""
    from transformers import Sam2Model

    dtype = "float32" if dtype in (None, "auto") else dtype  # float32 reproduces Meta's generator exactly
    torch_dtype = getattr(torch, dtype, None)
    if not isinstance(torch_dtype, torch.dtype):
        raise ValueError(f"unknown dtype {dtype!r}; use float32, float16 or bfloat16")
    path = Path(model).expanduser()
    if path.exists():
        if not (path / "config.json").is_file():
            raise FileNotFoundError(f"SAM 2 model folder {path} has no config.json (transformers format needed)")
        net = Sam2Model.from_pretrained(str(path), dtype=torch_dtype, trust_remote_code=False)
    else:
        net = _load_from_hub(model, torch_dtype)
    return net.to(device).eval()


def _load_from_hub(model_id: str, torch_dtype: torch.dtype) -> torch.nn.Module:
    from transformers import Sam2Model

    from dogiqa.hub import from_pretrained

    return from_pretrained(Sam2Model, model_id, option="--sam2-model", dtype=torch_dtype)


# ----------------------------------------------------------------------------------------------------------
# The segmenter
# ----------------------------------------------------------------------------------------------------------


class Sam2Segmenter:
    """Dog-IQA's SAM 2 automatic mask generator on ``Sam2Model``.

    ``preset``: "paper" (Dog-IQA) or "sam2-default". ``small_regions``: "skip" reproduces Meta's code without
    its CUDA extension (every CPU run; min_mask_region_area has no effect); "fill" applies the hole fill and
    sprinkle removal on the 256x256 low-res logits as Meta's code does when the extension is built.
    ``overrides``: any ``AmgParams`` field, e.g. ``points_per_side=16``.
    """

    name = "sam2"

    def __init__(
        self,
        model: str = "facebook/sam2-hiera-large",
        preset: str = "paper",
        small_regions: str = "skip",
        device: str | None = "cpu",
        dtype: str | None = "float32",
        **overrides: Any,
    ):
        if small_regions not in SMALL_REGION_MODES:
            raise ValueError(f"small_regions must be one of {SMALL_REGION_MODES}, got {small_regions!r}")
        self.params = make_params(preset, **overrides)
        self.preset = preset
        self.small_regions = small_regions
        device = device or "cpu"
        self.device = torch.device(device)
        self.model_name = str(model)
        self.model = load_sam2_model(str(model), device=device, dtype=dtype)
        self.dtype = next(self.model.parameters()).dtype
        self.input_size = int(self.model.config.prompt_encoder_config.image_size)

    # -- public API --------------------------------------------------------------------------------------

    def segment(self, image: Image.Image) -> list[np.ndarray]:
        """Boolean HxW masks at full resolution, in Meta's output order (NMS keep order)."""
        return [record["segmentation"] for record in self.generate(image)]

    def generate(self, image: Image.Image | np.ndarray) -> list[dict[str, Any]]:
        """Records like Meta's generator, in its output order: segmentation (bool HxW), area, bbox (XYWH),
        predicted_iou, point_coords, stability_score, crop_box."""
        return self.postprocess(self.decode(image))

    def decode(self, image: Image.Image | np.ndarray) -> Decoded:
        """Image embedding and all point prompts; masks already failing the IoU filter are dropped."""
        pixels = np.asarray(image.convert("RGB")) if isinstance(image, Image.Image) else np.asarray(image)
        if pixels.ndim != 3 or pixels.shape[2] != 3 or pixels.dtype != np.uint8:
            raise ValueError(f"expected an RGB uint8 HxWx3 image, got shape {pixels.shape} {pixels.dtype}")
        height, width = pixels.shape[:2]
        with torch.inference_mode():
            lowres, iou, points = self._decode(self._embed(pixels), height, width)
        return Decoded(lowres, iou, points, (height, width))

    def postprocess(self, decoded: Decoded, small_regions: str | None = None) -> list[dict[str, Any]]:
        """Meta's filters, NMS and records for decoder outputs (``small_regions`` defaults to ours)."""
        mode = small_regions or self.small_regions
        with torch.inference_mode():
            return masks_from_logits(*decoded, self.params, mode, self.device)

    # -- steps ---------------------------------------------------------------------------------------------

    def _embed(self, pixels: np.ndarray) -> list[torch.Tensor]:
        x = preprocess(pixels, self.input_size).to(self.device, self.dtype)
        return self.model.get_image_embeddings(x)

    def _points(self, height: int, width: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Grid points in the image frame (float32) and in the model's input frame."""
        pts = point_grid(self.params.points_per_side) * np.array([width, height])[None, :]
        pts = torch.as_tensor(pts, dtype=torch.float32)
        scaled = pts.clone()
        scaled[:, 0] = scaled[:, 0] / width
        scaled[:, 1] = scaled[:, 1] / height
        return pts, scaled * self.input_size

    def _decode(
        self, embeddings: list[torch.Tensor], height: int, width: int
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """All prompts in batches of points_per_batch -> low-res logits (N, h, w), predicted IoU (N,) and
        image-frame points (N, 2); masks failing the IoU filter are dropped per batch to bound memory."""
        points, scaled = self._points(height, width)
        lowres, ious, pts = [], [], []
        step = self.params.points_per_batch
        for start in range(0, len(points), step):
            batch = scaled[start : start + step].to(self.device)  # float32; the model casts after normalising
            out = self.model(
                image_embeddings=embeddings,
                input_points=batch[None, :, None, :],
                input_labels=torch.ones(1, len(batch), 1, dtype=torch.int64, device=self.device),
                multimask_output=self.params.multimask_output,
            )
            logits = out.pred_masks[0].float().flatten(0, 1)  # (B*M, h, w), points repeated M times
            iou = out.iou_scores[0].float().flatten()
            keep = iou_filter(iou, self.params.pred_iou_thresh)
            lowres.append(logits[keep])
            ious.append(iou[keep])
            per_point = out.pred_masks.shape[2]
            pts.append(points[start : start + step].repeat_interleave(per_point, dim=0)[keep.cpu()])
        return torch.cat(lowres), torch.cat(ious), torch.cat(pts)


# ----------------------------------------------------------------------------------------------------------
# From decoder outputs to Meta's records
# ----------------------------------------------------------------------------------------------------------


def iou_filter(iou: torch.Tensor, thresh: float) -> torch.Tensor:
    """Meta keeps predicted IoU strictly greater than the threshold (compared in the scores' dtype)."""
    return iou > thresh


def masks_from_logits(
    lowres: torch.Tensor,
    iou: torch.Tensor,
    points: torch.Tensor,
    size: tuple[int, int],
    params: AmgParams,
    small_regions: str = "skip",
    device: torch.device | str = "cpu",
) -> list[dict[str, Any]]:
    """Meta's post-processing of one crop: IoU filter, optional low-res clean-up, stability on full-size
    logits, binarise, boxes, box NMS; records in NMS keep order. ``lowres``: (N, h, w) logits."""
    keep = iou_filter(iou, params.pred_iou_thresh)
    lowres, iou, points = lowres[keep], iou[keep].cpu(), points[keep.cpu()].cpu()
    if small_regions == "fill" and params.min_mask_region_area > 0 and len(lowres):
        area = params.min_mask_region_area
        lowres = fill_small_regions(lowres, area, area, params.mask_threshold)
    height, width = size
    stats = _full_res_stats(lowres, size, params, device)
    passed = stats["stability"] >= params.stability_score_thresh
    lowres, iou, points = lowres[passed.to(lowres.device)], iou[passed], points[passed]
    stats = {k: v[passed] for k, v in stats.items()}
    kept = box_nms(stats["boxes"], iou, params.box_nms_thresh)
    masks = _binary_masks(lowres[kept.to(lowres.device)], size, params, device)
    records = []
    for i, mask in zip(kept.tolist(), masks, strict=True):
        x0, y0, x1, y1 = (float(v) for v in stats["boxes"][i].tolist())
        records.append(
            {
                "segmentation": mask,
                "area": int(stats["areas"][i]),
                "bbox": [x0, y0, x1 - x0, y1 - y0],
                "predicted_iou": float(iou[i]),
                "point_coords": [[float(v) for v in points[i].tolist()]],
                "stability_score": float(stats["stability"][i]),
                "crop_box": [0.0, 0.0, float(width), float(height)],
            }
        )
    return records


def _full_res_stats(
    lowres: torch.Tensor, size: tuple[int, int], params: AmgParams, device: torch.device | str
) -> dict[str, torch.Tensor]:
    """Stability for every candidate; boxes and areas for those passing the stability filter (zeros for
    the rest, which are dropped next). Full-resolution logits exist one chunk at a time."""
    stab, boxes, areas = [torch.zeros(0)], [torch.zeros(0, 4, dtype=torch.int64)], [torch.zeros(0).long()]
    step = chunk_size(*size, params.memory_budget_mb)
    for start in range(0, len(lowres), step):
        full = upsample(lowres[start : start + step].to(device), size)
        score = stability_score(full, params.mask_threshold, params.stability_score_offset).cpu()
        passed = score >= params.stability_score_thresh
        box = torch.zeros(len(score), 4, dtype=torch.int64)
        area = torch.zeros(len(score), dtype=torch.int64)
        binary = full[passed.to(full.device)] > params.mask_threshold if passed.any() else None
        del full  # before the next chunk is allocated
        if binary is not None:
            rows = row_counts(binary).cpu()  # (n, H) and (n, W): small, so the box logic runs on the CPU
            cols = (binary.view(torch.uint8).amax(dim=-2) > 0).cpu()
            del binary
            box[passed] = boxes_from_extents(rows > 0, cols)
            area[passed] = rows.sum(dim=-1, dtype=torch.int64)
        stab.append(score)
        boxes.append(box)
        areas.append(area)
    return {"stability": torch.cat(stab), "boxes": torch.cat(boxes), "areas": torch.cat(areas)}


def _binary_masks(
    lowres: torch.Tensor, size: tuple[int, int], params: AmgParams, device: torch.device | str
) -> list[np.ndarray]:
    """Full-resolution boolean masks, upsampled again chunk by chunk (only the kept few)."""
    masks: list[np.ndarray] = []
    step = chunk_size(*size, params.memory_budget_mb)
    for start in range(0, len(lowres), step):
        full = upsample(lowres[start : start + step].to(device), size)
        masks.extend(m.cpu().numpy() for m in (full > params.mask_threshold))
    return masks
