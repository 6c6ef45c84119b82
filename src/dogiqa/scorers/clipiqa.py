"""CLIP-IQA, zero-shot (Wang, Chan, Loy, AAAI 2023): softmax over an antonym prompt pair. Higher is better.

score = softmax(logit_scale * [cos(img, "Good photo."), cos(img, "Bad photo.")])[0], in 0..1, computed with
transformers' ``CLIPModel`` from any CLIP checkpoint (hub id or local folder; default
``openai/clip-vit-base-patch32``). Images are prepared with ``CLIPImageProcessorPil`` (resize the short side,
centre crop, normalise; no torchvision). The published CLIP-IQA numbers used OpenAI's ResNet-50 CLIP with its
positional embedding removed and the image at full resolution, so a ViT checkpoint gives different values.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from dogiqa.hub import ModelNotAvailableError, from_pretrained, offline_help
from dogiqa.scorers.base import Crop, CropScore

DEFAULT_MODEL = "openai/clip-vit-base-patch32"


def _load(cls: Any, name: str, local_files_only: bool, **kwargs: Any) -> Any:
    """``cls.from_pretrained``: a folder, the local cache, then the hub unless ``local_files_only``."""
    if local_files_only and not Path(name).exists():
        try:
            return cls.from_pretrained(name, local_files_only=True, trust_remote_code=False, **kwargs)
        except OSError as exc:
            raise ModelNotAvailableError(offline_help(name, "--clip-model")) from exc
    return from_pretrained(cls, name, option="--clip-model", **kwargs)


class CLIPIQAScorer:
    """CLIP-IQA as a Scorer: higher is better, 0..1.

    ``prompts`` is (positive, negative)[, positive, negative, ...]; with several pairs the score is the mean
    of the pairs' positive probabilities.
    """

    name = "clipiqa"
    higher_is_better = True
    score_range = (0.0, 1.0)

    def __init__(
        self,
        model: str = DEFAULT_MODEL,
        device: str = "cpu",
        prompts: Sequence[str] = ("Good photo.", "Bad photo."),
        batch_size: int = 32,
        local_files_only: bool = False,
    ) -> None:
        import torch
        from transformers import CLIPImageProcessorPil, CLIPModel, CLIPTokenizer

        if len(prompts) < 2 or len(prompts) % 2:
            raise ValueError(f"CLIP-IQA prompts must be (positive, negative) pairs, got {list(prompts)!r}")
        self.model_name, self.device, self.batch_size = str(model), device, max(1, int(batch_size))
        self.prompts = tuple(prompts)
        self.model = _load(CLIPModel, self.model_name, local_files_only).to(device).eval()
        tokenizer = _load(CLIPTokenizer, self.model_name, local_files_only)
        try:
            self.processor = _load(CLIPImageProcessorPil, self.model_name, local_files_only)
        except ModelNotAvailableError:  # weights without a preprocessor config: CLIP's standard preparation
            side = self.model.config.vision_config.image_size
            self.processor = CLIPImageProcessorPil(
                size={"shortest_edge": side}, crop_size={"height": side, "width": side}
            )
        with torch.inference_mode():
            enc = tokenizer(list(self.prompts), padding=True, return_tensors="pt").to(device)
            text = self.model.get_text_features(**enc).pooler_output
            self._text = text / text.norm(dim=-1, keepdim=True)
            self._scale = self.model.logit_scale.exp()

    def __repr__(self) -> str:
        return f"CLIPIQAScorer(model={self.model_name!r}, device={self.device!r}, prompts={self.prompts!r})"

    def _pixels(self, crop: Crop) -> Any:
        image = crop.image if crop.image.mode == "RGB" else crop.image.convert("RGB")
        return self.processor(images=[image], return_tensors="pt")["pixel_values"][0]

    def score_crops(self, crops: Sequence[Crop]) -> list[CropScore]:
        results: list[CropScore | None] = [None] * len(crops)
        ready: list[tuple[int, Any]] = []
        for i, crop in enumerate(crops):
            if min(crop.image.size) < 1:
                results[i] = CropScore(score=None, error=f"not scorable: empty crop {crop.image.size}")
                continue
            try:
                ready.append((i, self._pixels(crop)))
            except Exception as exc:  # one bad crop must not stop the batch
                results[i] = CropScore(score=None, error=f"clipiqa failed: {type(exc).__name__}: {exc}")
        for start in range(0, len(ready), self.batch_size):
            chunk = ready[start : start + self.batch_size]
            for (i, _), probs in zip(chunk, self._forward([p for _, p in chunk]), strict=True):
                pos = probs[0::2] if len(probs) > 2 else probs[:1]
                results[i] = CropScore(score=float(sum(pos) / len(pos)), probs=probs)
        return [r if r is not None else CropScore(score=None, error="not scored") for r in results]

    def _forward(self, pixels: list[Any]) -> list[list[float]]:
        """Per image, [p(pos1), p(neg1), p(pos2), ...]: each pair softmaxed on its own."""
        import torch

        with torch.inference_mode():
            batch = torch.stack(pixels).to(self.device, dtype=self.model.dtype)
            img = self.model.get_image_features(pixel_values=batch).pooler_output
            img = img / img.norm(dim=-1, keepdim=True)
            logits = (self._scale * img @ self._text.T).float()  # (B, 2P)
            probs = logits.view(len(pixels), -1, 2).softmax(dim=-1).reshape(len(pixels), -1)
        return probs.cpu().tolist()
