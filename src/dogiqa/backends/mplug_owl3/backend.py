"""Backend running mPLUG-Owl3 natively: one forward per (image, prompt), last-position logits read out.

``attention_mask="paper"`` reproduces the authors' generate call, which passed no mask: transformers then
used ``input_ids != 0`` (``pad_token_id=0``), hiding every id-0 token and shifting later positions.
``"fixed"`` attends to every token with positions 0..L-1.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Literal

import torch
from PIL import Image

from dogiqa.backends.base import BackendError, Prompt, RawOutput
from dogiqa.backends.mplug_owl3.modeling import MplugOwl3Model, positions_from_mask
from dogiqa.backends.mplug_owl3.processing import (
    IMAGE_TOKEN,
    MplugOwl3ImageProcessor,
    MplugOwl3Processor,
    collate,
)
from dogiqa.hub import from_pretrained

log = logging.getLogger(__name__)

MaskMode = Literal["paper", "fixed"]
TERMINATORS = ("<|im_end|>", "<|endoftext|>")
_DTYPES = {
    "float32": torch.float32,
    "fp32": torch.float32,
    "float16": torch.float16,
    "fp16": torch.float16,
    "half": torch.float16,
    "bfloat16": torch.bfloat16,
    "bf16": torch.bfloat16,
}


def resolve_dtype(dtype: str | torch.dtype, device: str) -> torch.dtype:
    """``auto``: float32 on CPU, float16 (the paper's dtype) on accelerators."""
    if isinstance(dtype, torch.dtype):
        return dtype
    if dtype == "auto":
        return torch.float32 if device == "cpu" else torch.float16
    if dtype not in _DTYPES:
        raise BackendError(f"unknown dtype {dtype!r}: use auto, float32, float16 or bfloat16")
    return _DTYPES[dtype]


class MplugOwl3Backend:
    """The Backend protocol on our own mPLUG-Owl3 (hub id or local folder)."""

    def __init__(
        self,
        model: str,
        device: str = "cpu",
        dtype: str | torch.dtype = "auto",
        attention_mask: MaskMode = "paper",
        batch_size: int = 8,
    ):
        if attention_mask not in ("paper", "fixed"):
            raise BackendError(f"attention_mask must be 'paper' or 'fixed', not {attention_mask!r}")
        self.model_name = str(model)
        self.attention_mask = attention_mask
        self.batch_size = max(1, int(batch_size))
        self.dtype = resolve_dtype(dtype, device)
        self.model_id = f"mplug-owl3:{self.model_name}"
        self.tokenizer = self._load_tokenizer()
        self.model = self._load_model(device)
        tile = int(self.model.config.vision_config.image_size)
        self.processor = MplugOwl3Processor(self.tokenizer, MplugOwl3ImageProcessor(image_size=tile))
        self._terminators = {self.tokenizer.convert_tokens_to_ids(t) for t in TERMINATORS}

    def _load_tokenizer(self):
        from transformers import AutoTokenizer

        try:
            tokenizer = from_pretrained(AutoTokenizer, self.model_name)
        except Exception as exc:  # noqa: BLE001 - report any loading failure with the model named
            raise BackendError(f"{self.model_name}: cannot load the tokenizer ({exc})") from exc
        if IMAGE_TOKEN not in tokenizer.get_vocab():
            raise BackendError(f"{self.model_name}: the tokenizer has no {IMAGE_TOKEN} token")
        return tokenizer

    def _load_model(self, device: str) -> MplugOwl3Model:
        kwargs: dict = {"dtype": self.dtype}
        if device != "cpu":  # "auto" spreads layers over the GPUs; "cuda:N" loads straight onto one
            kwargs["device_map"] = device
        try:
            model = from_pretrained(MplugOwl3Model, self.model_name, **kwargs)
        except Exception as exc:  # noqa: BLE001
            raise BackendError(f"{self.model_name}: cannot load mPLUG-Owl3 weights ({exc})") from exc
        return model.eval()

    # -- Backend protocol -------------------------------------------------------------------------------

    def candidate_ids(self, candidates: Sequence[str]) -> list[int]:
        ids = []
        for cand in candidates:
            toks = self.tokenizer(cand, add_special_tokens=False).input_ids
            if len(toks) != 1:
                raise BackendError(f"candidate {cand!r} is {len(toks)} tokens for {self.model_name}, not one")
            ids.append(toks[0])
        return ids

    def check_candidates(self, candidates: Sequence[str]) -> None:
        self.candidate_ids(candidates)

    def run(
        self,
        images: Sequence[Image.Image],
        prompt: Prompt,
        candidates: Sequence[str],
        want_text: bool = True,
    ) -> list[RawOutput]:
        return self.run_prepared(self.prepare(images, prompt, candidates, want_text))

    def prepare(
        self, images: Sequence[Image.Image], prompt: Prompt, candidates: Sequence[str], want_text: bool = True
    ) -> dict:
        """The CPU half of :meth:`run` (tiling and tokenising), for a pipeline to overlap with the model."""
        cand_ids = self.candidate_ids(candidates)
        outputs: list[RawOutput | None] = [None] * len(images)
        encoded: list[tuple[int, dict]] = []
        for i, image in enumerate(images):
            try:
                encoded.append((i, self.encode(image, prompt)))
            except Exception as exc:  # noqa: BLE001 - one bad image must not kill the batch
                outputs[i] = RawOutput(error=f"cannot prepare image {i}: {exc}")
        return {"cand_ids": cand_ids, "candidates": list(candidates), "want_text": want_text,
                "outputs": outputs, "encoded": encoded}  # fmt: skip

    def run_prepared(self, prepared: dict) -> list[RawOutput]:
        outputs, encoded = prepared["outputs"], prepared["encoded"]
        for start in range(0, len(encoded), self.batch_size):
            chunk = encoded[start : start + self.batch_size]
            outs = self._run_chunk(
                [e for _, e in chunk], prepared["cand_ids"], prepared["candidates"], prepared["want_text"]
            )
            for (i, _), out in zip(chunk, outs, strict=True):
                outputs[i] = out
        return [o if o is not None else RawOutput(error="no output") for o in outputs]

    @classmethod
    def from_objects(cls, model: MplugOwl3Model, tokenizer, model_id: str, batch_size: int = 8) -> MplugOwl3Backend:
        """A backend around an already-built model and tokenizer (benchmarks with random weights)."""
        self = cls.__new__(cls)
        self.model_name, self.model_id, self.attention_mask = model_id, model_id, "paper"
        self.batch_size, self.dtype = max(1, int(batch_size)), next(model.parameters()).dtype
        self.tokenizer, self.model = tokenizer, model.eval()
        tile = int(model.config.vision_config.image_size)
        self.processor = MplugOwl3Processor(tokenizer, MplugOwl3ImageProcessor(image_size=tile))
        self._terminators = {tokenizer.convert_tokens_to_ids(t) for t in TERMINATORS}
        return self

    # -- internals --------------------------------------------------------------------------------------

    def messages(self, prompt: Prompt) -> list[dict]:
        """The original's chat: a user turn with one ``<|image|>``, then the assistant generation prompt.

        No system message means the processor's empty system turn (the paper's setting).
        """
        msgs = [{"role": "system", "content": prompt.system}] if prompt.system else []
        content = prompt.before_image + IMAGE_TOKEN + prompt.after_image
        return msgs + [{"role": "user", "content": content}, {"role": "assistant", "content": ""}]

    def encode(self, image: Image.Image, prompt: Prompt) -> dict:
        proc = self.processor
        pixel_values, cut_shapes = proc.image_processor([image])
        chunks = proc.chunks(proc.expand_messages(self.messages(prompt), cut_shapes))
        if prompt.answer_prefix:
            chunks.append(prompt.answer_prefix)
        input_ids, media_offset = proc.tokenize(chunks)
        return {"input_ids": input_ids, "media_offset": media_offset, "pixel_values": pixel_values}

    def _run_chunk(
        self, items: list[dict], cand_ids: list[int], candidates: Sequence[str], want_text: bool
    ) -> list[RawOutput]:
        if len(items) > 1:
            try:
                return self._forward(items, cand_ids, candidates, want_text)
            except (RuntimeError, MemoryError) as exc:
                log.warning("batched mPLUG-Owl3 forward failed (%s); running item by item", exc)
                if torch.cuda.is_available():
                    torch.cuda.empty_cache()
        outs = []
        for item in items:
            try:
                outs.extend(self._forward([item], cand_ids, candidates, want_text))
            except (RuntimeError, MemoryError) as exc:
                outs.append(RawOutput(error=f"mPLUG-Owl3 forward failed: {exc}"))
        return outs

    def batch_inputs(self, items: list[dict]) -> dict:
        """Collate items and build the mask and positions of the chosen ``attention_mask`` mode."""
        batch = collate(items, pad_token_id=0)
        mask = batch["padding_mask"]
        if self.attention_mask == "paper":
            mask = mask * (batch["input_ids"] != 0).long()
        batch["attention_mask"] = mask
        batch["position_ids"] = positions_from_mask(mask)
        return batch

    @torch.inference_mode()
    def logits(self, items: list[dict]) -> torch.Tensor:
        """(B, vocab) float32 next-token logits of each item."""
        b = self.batch_inputs(items)
        logits = self.model(
            b["input_ids"],
            media_offset=b["media_offset"],
            pixel_values=b["pixel_values"],
            attention_mask=b["attention_mask"],
            position_ids=b["position_ids"],
            pad_lengths=b["pad_lengths"],
        )
        return logits[:, -1].float().cpu()

    def decode(self, token_id: int) -> str:
        """The original's ``_decode_text`` for one token: "" for id 0 and terminators, else decoded."""
        if token_id == 0 or token_id in self._terminators:
            return ""
        return self.tokenizer.decode([token_id]).strip()

    def _forward(
        self, items: list[dict], cand_ids: list[int], candidates: Sequence[str], want_text: bool
    ) -> list[RawOutput]:
        logits = self.logits(items)
        logprobs = torch.log_softmax(logits, dim=-1)
        outs = []
        for row, lp in zip(logits, logprobs, strict=True):
            top = int(row.argmax())
            outs.append(
                RawOutput(
                    text=self.decode(top) if want_text else None,
                    logprobs={c: float(lp[t]) for c, t in zip(candidates, cand_ids, strict=True)},
                    meta={"token_id": top},
                )
            )
        return outs
