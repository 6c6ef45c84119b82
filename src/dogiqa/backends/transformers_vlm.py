"""Any Hugging Face vision-language model as a dogiqa Backend: one forward pass per item, batched.

``run`` reads the next token after the prompt from ONE forward pass: the decoded argmax of the full-vocabulary
logits (identical to greedy one-token generation) and the log-softmax of each candidate token. Items are
grouped by size to limit padding, left-padded, and batched under an item and a token budget; results come
back in input order. A failing item becomes ``RawOutput(error=...)`` without failing its neighbours.
"""

from __future__ import annotations

import copy
import inspect
import os
import queue
import threading
import warnings
from collections import deque
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image

from dogiqa.backends.base import BackendError, Prompt, RawOutput
from dogiqa.backends.hf_compat import image_only_processor_class
from dogiqa.backends.varlen_attention import use_for_vision_tower
from dogiqa.errors import RemoteCodeError
from dogiqa.hub import hub_reachable, offline_help, raise_if_remote_code

_DTYPES = {
    "float32": "float32",
    "fp32": "float32",
    "float": "float32",
    "bfloat16": "bfloat16",
    "bf16": "bfloat16",
    "float16": "float16",
    "fp16": "float16",
    "half": "float16",
}


class _ProcessorRefused(Exception):
    """The processor could not prepare an image (e.g. an aspect ratio over its limit)."""


@dataclass
class _Call:
    """What is constant over one ``run``: the rendered prompt, candidate token ids, prefix token ids."""

    text: str
    cand_ids: dict[str, int]
    want_text: bool
    prefix: list[int] | None


@dataclass
class _Item:
    """One image of a run: its input index, estimated token count and the image itself."""

    index: int
    image: Image.Image
    tokens: int


@dataclass
class _Prepared:
    """A run split in two (:meth:`TransformersVLM.prepare`): the batches with their processor outputs."""

    call: _Call
    results: list[RawOutput | None]
    batches: list[tuple[list[_Item], dict | Exception]]


class TransformersVLM:
    """A transformers ``AutoModelForImageTextToText`` + processor, from a hub id or a local folder.

    ``batch_size``, ``max_batch_tokens`` (padded tokens per batch) and ``max_pad_fraction`` (share of pad
    tokens, from the processor's token-count estimate) bound each forward pass.
    ``prefix_cache``: compute the KV cache of the constant text before the image once per prompt and reuse
    it for every item (checked once against a plain forward; switched off with a warning if they differ).
    ``preprocess_workers``: threads running the processor (resize, normalise, tokenise) on different batches
    at once, each with its own copy of the processor (fast tokenizers are not thread-safe); default 1 on the
    CPU (the model needs the cores), else a quarter of the CPU cores, 1 to 4.
    """

    def __init__(
        self,
        model: str,
        device: str = "cpu",
        dtype: str = "auto",
        trust_remote_code: bool = False,
        batch_size: int = 16,
        max_batch_tokens: int = 32768,
        revision: str | None = None,
        prefix_cache: bool = False,
        max_pad_fraction: float = 0.25,
        vision_attention: str = "auto",
        preprocess_workers: int | None = None,
    ) -> None:
        if batch_size < 1 or max_batch_tokens < 1:
            raise BackendError("batch_size and max_batch_tokens must be >= 1")
        self.batch_size = batch_size
        self.max_batch_tokens = max_batch_tokens
        self.max_pad_fraction = max_pad_fraction
        self.source, self.model_id = self._resolve(str(model), revision)
        self.revision = revision
        self.trust_remote_code = trust_remote_code
        self.device = self._pick_device(device)
        self._load(dtype)
        self._init_state(prefix_cache, vision_attention, preprocess_workers)

    # ---------------------------------------------------------------- loading
    @staticmethod
    def _resolve(model: str, revision: str | None) -> tuple[str, str]:
        """(what to pass to from_pretrained, model_id). Local folders are resolved to absolute paths."""
        path = Path(model).expanduser()
        if path.is_dir():
            source = str(path.resolve())
            if not (path / "config.json").is_file():
                raise BackendError(
                    f"model folder {source!r} has no config.json; pass the folder of a saved transformers "
                    "model (config.json, weights, tokenizer and processor files)"
                )
        elif path.exists():
            raise BackendError(f"model {model!r} is a file; pass the model's folder (with config.json)")
        elif model.startswith((".", "/", "~")) or model.count("/") > 1 or "\\" in model:
            raise BackendError(
                f"model folder {model!r} does not exist; pass a folder holding config.json, the weights, "
                "tokenizer and processor files (e.g. from `hf download <id> --local-dir DIR`), or a hub id"
            )
        else:
            source = model
        return source, source + (f"@{revision}" if revision else "")

    @staticmethod
    def _pick_device(device: str) -> str:
        import torch

        if device == "auto":
            return "cuda" if torch.cuda.is_available() else "cpu"
        if device.startswith("cuda") and not torch.cuda.is_available():
            raise BackendError(f"device {device!r} requested but CUDA is not available; use --device cpu")
        return device

    def _from_pretrained(self, loader: Any, **kwargs: Any) -> Any:
        """``loader.from_pretrained`` for this model: local files first, then the hub."""
        # always explicit: transformers never asks on stdin, and a model's own code runs only with the flag
        common = dict(revision=self.revision, trust_remote_code=bool(self.trust_remote_code), **kwargs)
        is_local = Path(self.source).is_dir()
        try:
            return self._from_pretrained_any(loader, is_local, common)
        except ValueError as exc:
            raise_if_remote_code(exc, self.source)
            raise

    def _from_pretrained_any(self, loader: Any, is_local: bool, common: dict[str, Any]) -> Any:
        try:
            return loader.from_pretrained(self.source, local_files_only=True, **common)
        except OSError:
            if is_local:
                raise
        except ValueError as exc:  # e.g. HFValidationError for a malformed id
            if not is_local:
                raise BackendError(f"invalid model id {self.source!r}: {exc}") from exc
            raise
        if not hub_reachable():  # fail fast instead of ~30 s of retries
            raise BackendError(offline_help(self.source) + " (the hub host cannot be reached)")
        try:  # not in the local cache: the hub
            return loader.from_pretrained(self.source, **common)
        except (OSError, ValueError) as exc:
            raise BackendError(offline_help(self.source) + f" ({type(exc).__name__}: {exc})") from exc

    def _load(self, dtype: str) -> None:
        from transformers import AutoConfig, AutoModelForImageTextToText, AutoProcessor

        try:
            config = self._from_pretrained(AutoConfig)
        except RemoteCodeError:
            raise
        except (OSError, ValueError) as exc:
            raise BackendError(f"cannot read the model config in {self.source!r}: {exc}") from exc
        self.model_type = getattr(config, "model_type", "")
        proc_cls = image_only_processor_class(self.model_type) or AutoProcessor
        try:
            self.processor = self._from_pretrained(proc_cls, backend="pil")
        except TypeError:  # processors without a `backend` option
            self.processor = self._from_pretrained(proc_cls)
        except OSError as exc:
            raise BackendError(f"cannot load the processor of {self.source!r}: {exc}") from exc
        self.dtype = self._torch_dtype(dtype, config)
        placement = {"device_map": self.device} if self.device != "cpu" else {}
        try:
            model = self._from_pretrained(AutoModelForImageTextToText, dtype=self.dtype, **placement)
        except (OSError, ValueError) as exc:
            raise BackendError(f"cannot load the model weights of {self.source!r}: {exc}") from exc
        self._attach(model.to(self.device), self.processor)

    def _attach(self, model: Any, processor: Any) -> None:
        """Adopt a loaded model + processor: left padding, and which forward arguments exist."""
        self.processor = processor
        self.tokenizer = getattr(processor, "tokenizer", None)
        if self.tokenizer is None:
            raise BackendError(f"the processor of {self.source!r} has no tokenizer")
        self.tokenizer.padding_side = "left"
        if self.tokenizer.pad_token_id is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.model = model.eval()
        params = inspect.signature(self.model.forward).parameters
        self._keep_arg = "logits_to_keep" in params
        self._cache_arg = "cache" if "cache" in params else "past_key_values"  # renamed in transformers 5.x

    @classmethod
    def from_objects(
        cls,
        model: Any,
        processor: Any,
        model_id: str,
        batch_size: int = 16,
        max_batch_tokens: int = 32768,
        prefix_cache: bool = False,
        vision_attention: str = "auto",
        preprocess_workers: int | None = None,
    ) -> TransformersVLM:
        """A backend around an already-built model and processor (benchmarks, random large models)."""
        self = cls.__new__(cls)
        self.batch_size, self.max_batch_tokens = batch_size, max_batch_tokens
        self.max_pad_fraction = 0.25
        self.source = self.model_id = model_id
        self.revision, self.trust_remote_code = None, False
        param = next(model.parameters())
        self.device, self.dtype = str(param.device), param.dtype
        self.model_type = getattr(model.config, "model_type", "")
        self._attach(model, processor)
        self._init_state(prefix_cache, vision_attention, preprocess_workers)
        return self

    def _init_state(self, prefix_cache: bool, vision_attention: str = "auto", workers: int | None = None) -> None:
        if vision_attention not in ("auto", "default"):
            raise BackendError(f"vision_attention must be auto or default, not {vision_attention!r}")
        if workers is not None and workers < 1:
            raise BackendError(f"preprocess_workers must be >= 1, not {workers}")
        cores = os.cpu_count() or 1
        self.preprocess_workers = workers or (1 if self.device == "cpu" else max(1, min(4, cores // 4)))
        self._spare: queue.SimpleQueue | None = None  # processor copies for parallel preprocessing
        # "auto": one padded SDPA call per vision layer instead of one per attention window (same values)
        self.varlen_vision = vision_attention == "auto" and use_for_vision_tower(self.model)
        self._proc_lock = threading.Lock()
        self._candidate_ids: dict[str, int] = {}
        self.calls = 0  # forward/generate calls made, for benchmarks
        self.prefix_cache = prefix_cache
        self._prefix_checked = False  # the cached path is compared once with a plain forward
        self._prefix_kv: dict[tuple[int, ...], Any] = {}

    def _torch_dtype(self, dtype: str, config: Any) -> Any:
        import torch

        if dtype == "auto":
            if self.device == "cpu":
                return torch.float32  # half precision on CPU is slow and inexact
            native = getattr(config, "dtype", None) or getattr(config, "torch_dtype", None)
            return native if isinstance(native, torch.dtype) else getattr(torch, str(native or "bfloat16"))
        if dtype not in _DTYPES:
            raise BackendError(f"unknown dtype {dtype!r}; choose auto, float32, bfloat16 or float16")
        return getattr(torch, _DTYPES[dtype])

    # ---------------------------------------------------------------- candidates
    def check_candidates(self, candidates: Sequence[str]) -> None:
        """Raise BackendError naming the first candidate that is not exactly one token."""
        for cand in candidates:
            self._token_id(cand)

    def _token_id(self, cand: str) -> int:
        if cand not in self._candidate_ids:
            ids = self.tokenizer.encode(cand, add_special_tokens=False)
            if len(ids) != 1:
                pieces = self.tokenizer.convert_ids_to_tokens(ids)
                raise BackendError(
                    f"candidate {cand!r} is {len(ids)} tokens {pieces} for model {self.model_id}, not one; "
                    "logit readouts need single-token answers (choose fewer levels or other words)"
                )
            self._candidate_ids[cand] = ids[0]
        return self._candidate_ids[cand]

    # ---------------------------------------------------------------- prompts
    def render(self, prompt: Prompt) -> str:
        """The full model input text for one image: chat template + generation prompt + answer prefix."""
        content: list[dict] = []
        if prompt.before_image:
            content.append({"type": "text", "text": prompt.before_image})
        content.append({"type": "image"})
        if prompt.after_image:
            content.append({"type": "text", "text": prompt.after_image})
        messages: list[dict] = []
        if prompt.system is not None:
            messages.append({"role": "system", "content": [{"type": "text", "text": prompt.system}]})
        messages.append({"role": "user", "content": content})
        text = self.processor.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        return text + prompt.answer_prefix

    def _encode(self, text: str, images: Sequence[Image.Image]) -> Any:
        """Processor output for a left-padded batch, moved to the model's device and dtype."""
        args = dict(text=[text] * len(images), images=[[im] for im in images], padding=True, return_tensors="pt")
        if self.preprocess_workers == 1:
            with self._proc_lock:  # the worker thread and item-by-item retries share the processor
                enc = self.processor(**args)
        else:
            spare = self._spare_processors()
            processor = spare.get()  # one copy per thread at a time: no lock, no shared tokenizer
            try:
                enc = processor(**args)
            finally:
                spare.put(processor)
        out = {}
        for key, val in enc.items():
            if hasattr(val, "to"):
                val = val.to(self.device)
                if val.is_floating_point():
                    val = val.to(self.dtype)
            out[key] = val
        return out

    def _image_tokens(self, images: Sequence[Image.Image]) -> list[int] | None:
        """The processor's image-token count of every image in one call (its per-call overhead dominates
        for small crops); None when the processor has no such helper or refuses one of the sizes."""
        if not images:
            return None
        try:
            data = self.processor._get_num_multimodal_tokens(image_sizes=[(im.height, im.width) for im in images])
            counts = [int(n) for n in data["num_image_tokens"]]
        except Exception:
            return None
        return counts if len(counts) == len(images) else None

    def _spare_processors(self) -> queue.SimpleQueue:
        """``preprocess_workers`` copies of the processor, made on first use."""
        with self._proc_lock:
            if self._spare is None:
                self._spare = queue.SimpleQueue()
                for _ in range(self.preprocess_workers):
                    self._spare.put(copy.deepcopy(self.processor))
            return self._spare

    def _estimate_tokens(self, text_tokens: int, image: Image.Image) -> int:
        """Sequence length of one item: prompt tokens + the processor's count of image tokens."""
        try:
            data = self.processor._get_num_multimodal_tokens(image_sizes=[(image.height, image.width)])
            return text_tokens + int(data["num_image_tokens"][0])
        except Exception:  # processors without the helper: a rough pixel-based guess
            return text_tokens + image.width * image.height // 784

    # ---------------------------------------------------------------- scoring
    def run(
        self,
        images: Sequence[Image.Image],
        prompt: Prompt,
        candidates: Sequence[str],
        want_text: bool = True,
    ) -> list[RawOutput]:
        """One forward pass per item (batched); one RawOutput per image, in input order."""
        call, results, items = self._start(images, prompt, candidates, want_text)
        for batch, outs in self._pipelined(self._batches(items), call):
            for item, out in zip(batch, outs, strict=True):
                results[item.index] = out
        return [r if r is not None else RawOutput(error="not scored") for r in results]

    def prepare(
        self, images: Sequence[Image.Image], prompt: Prompt, candidates: Sequence[str], want_text: bool = True
    ) -> _Prepared:
        """The CPU half of :meth:`run`: batching and the processor on every batch (for a pipeline to run
        while the model works on earlier images). :meth:`run_prepared` finishes it with the same outputs."""
        call, results, items = self._start(images, prompt, candidates, want_text)
        batches = self._batches(items)
        if self.preprocess_workers == 1 or len(batches) < 2:
            return _Prepared(call, results, [(b, self._encode_or_error(call.text, b)) for b in batches])
        with ThreadPoolExecutor(max_workers=min(self.preprocess_workers, len(batches))) as pool:
            encoded = list(pool.map(lambda b: self._encode_or_error(call.text, b), batches))
        return _Prepared(call, results, list(zip(batches, encoded, strict=True)))

    def run_prepared(self, prepared: _Prepared) -> list[RawOutput]:
        results = prepared.results
        for batch, inputs in prepared.batches:
            for item, out in zip(batch, self._run_batch(batch, prepared.call, inputs), strict=True):
                results[item.index] = out
        prepared.batches = []  # the inputs are not needed any more
        return [r if r is not None else RawOutput(error="not scored") for r in results]

    def _start(
        self, images: Sequence[Image.Image], prompt: Prompt, candidates: Sequence[str], want_text: bool
    ) -> tuple[_Call, list[RawOutput | None], list[_Item]]:
        """The call's constants, an empty result list, and the sized items (an unsizable image: its error)."""
        with self._proc_lock:  # the tokenizer is shared with a preparing thread
            text = self.render(prompt)
            call = _Call(
                text=text,
                cand_ids={c: self._token_id(c) for c in candidates},
                want_text=want_text,
                prefix=self._prefix_ids(prompt) if self.prefix_cache else None,
            )
            text_tokens = len(self.tokenizer.encode(text, add_special_tokens=False))
        results: list[RawOutput | None] = [None] * len(images)
        items = []
        known = self._image_tokens(images)  # one processor call for all sizes (None: ask per image)
        for i, image in enumerate(images):
            try:
                tokens = text_tokens + known[i] if known else self._estimate_tokens(text_tokens, image)
                items.append(_Item(i, image, tokens))
            except Exception as exc:
                results[i] = RawOutput(
                    error=f"the model's processor refused the {image.width}x{image.height} crop "
                    f"(processor limit): {type(exc).__name__}: {exc}"
                )
        return call, results, items

    def _pipelined(self, batches: list[list[_Item]], call: _Call) -> Iterator[tuple[list[_Item], list[RawOutput]]]:
        """Run the batches in order while worker threads prepare (processor) the next ones
        (``preprocess_workers`` batches ahead)."""
        if not batches:
            return
        with ThreadPoolExecutor(max_workers=self.preprocess_workers) as pool:
            ahead = min(self.preprocess_workers, len(batches))
            pending = deque(pool.submit(self._encode_or_error, call.text, b) for b in batches[:ahead])
            for k, batch in enumerate(batches):
                inputs = pending.popleft().result()
                if k + ahead < len(batches):
                    pending.append(pool.submit(self._encode_or_error, call.text, batches[k + ahead]))
                yield batch, self._run_batch(batch, call, inputs)

    def _encode_or_error(self, text: str, batch: list[_Item]) -> dict | Exception:
        try:
            return self._encode(text, [it.image for it in batch])
        except Exception as exc:  # handled by _run_batch (item-by-item retry)
            return exc

    def _batches(self, items: list[_Item]) -> list[list[_Item]]:
        """Sort by size; cut batches at ``batch_size`` items, ``max_batch_tokens`` padded tokens, or when
        more than ``max_pad_fraction`` of the batch would be padding."""
        ordered = sorted(items, key=lambda it: (it.tokens, it.image.width * it.image.height))
        batches: list[list[_Item]] = []
        real = 0
        for item in ordered:
            cur = batches[-1] if batches else None
            # sorted ascending: the new item is the longest, so padded size = (n + 1) * item.tokens
            padded = (len(cur) + 1) * item.tokens if cur else 0
            fits = cur and len(cur) < self.batch_size and padded <= self.max_batch_tokens
            if fits and 1 - (real + item.tokens) / padded <= self.max_pad_fraction:
                cur.append(item)
                real += item.tokens
            else:
                batches.append([item])
                real = item.tokens
        return batches

    def _run_batch(self, batch: list[_Item], call: _Call, inputs: dict | Exception | None = None) -> list[RawOutput]:
        """Score a batch in one forward; on any failure, retry its items one by one."""
        try:
            if isinstance(inputs, Exception):
                raise inputs
            return self._forward(batch, call, inputs)
        except Exception as exc:
            if len(batch) == 1:
                return [RawOutput(error=self._item_error(batch[0], exc, isinstance(inputs, Exception)))]
        return [self._run_batch([item], call)[0] for item in batch]

    @staticmethod
    def _item_error(item: _Item, exc: Exception, in_processor: bool) -> str:
        """One line: a processor refusal (aspect ratio, size) says so; other failures name the forward."""
        cause = f"{type(exc).__name__}: {' '.join(str(exc).split())}"
        if in_processor or isinstance(exc, _ProcessorRefused):
            size = f"{item.image.width}x{item.image.height}"
            return f"the model's processor refused the {size} crop (processor limit): {exc.__cause__ or exc}"
        return f"model forward failed: {cause}"

    def _forward(self, batch: list[_Item], call: _Call, inputs: dict | None = None) -> list[RawOutput]:
        import torch

        if inputs is None:
            try:
                inputs = self._encode(call.text, [it.image for it in batch])
            except Exception as exc:
                raise _ProcessorRefused(str(exc)) from exc
        self.calls += 1
        prefix, cand_ids, want_text = call.prefix, call.cand_ids, call.want_text
        logits = None
        if prefix and self.prefix_cache:
            try:
                logits = self._logits_with_prefix(inputs, prefix)
            except Exception as exc:  # an architecture the cached path does not fit: plain forwards
                self._disable_prefix(f"{type(exc).__name__}: {exc}")
        if logits is not None and not self._prefix_checked:
            self._check_prefix_path(inputs, logits)
            if not self.prefix_cache:
                logits = None
        if logits is None:
            logits = self._plain_logits(inputs)
        logprobs = torch.log_softmax(logits, dim=-1)
        ids = list(cand_ids.values())
        chosen = logprobs[:, ids].cpu().tolist() if ids else [[] for _ in batch]
        top = logits.argmax(dim=-1).cpu().tolist()
        mask = inputs["attention_mask"]
        n_real = mask.sum(dim=1).cpu().tolist()
        width = int(mask.shape[1])
        outs = []
        with self._proc_lock:  # the tokenizer is shared with a preparing thread
            texts = [self.tokenizer.decode([tok]) if want_text else None for tok in top]
        for row, tok in enumerate(top):
            meta = {"token_id": tok, "tokens": int(n_real[row]), "padded_tokens": width, "batch": len(batch)}
            outs.append(
                RawOutput(
                    text=texts[row],
                    logprobs=dict(zip(cand_ids, chosen[row], strict=True)),
                    meta=meta,
                )
            )
        return outs

    def _plain_logits(self, inputs: dict) -> Any:
        import torch

        kwargs = {"logits_to_keep": 1} if self._keep_arg else {}
        with torch.inference_mode():
            return self.model(**inputs, use_cache=False, **kwargs).logits[:, -1].float()

    # ---------------------------------------------------------------- shared prompt prefix (KV cache)
    def _check_prefix_path(self, inputs: dict, logits: Any) -> None:
        """Compare the cached-prefix logits with a plain forward once; switch the cache off if they differ.

        Guards against architectures whose forward ignores images or positions when a cache is passed.
        """
        import torch

        self._prefix_checked = True
        plain = self._plain_logits(inputs)
        tol = 1e-3 if self.dtype == torch.float32 else 5e-2
        scale = float(plain.abs().max().clamp(min=1.0))
        if not torch.allclose(plain, logits, atol=tol * scale, rtol=0):
            self._disable_prefix(f"it changes the logits (max diff {float((plain - logits).abs().max()):.3g})")

    def _disable_prefix(self, why: str) -> None:
        warnings.warn(
            f"{self.model_id}: shared-prefix KV cache switched off for this model: {why}", RuntimeWarning, stacklevel=4
        )
        self.prefix_cache = False
        self._prefix_kv.clear()

    def _prefix_ids(self, prompt: Prompt) -> list[int] | None:
        """Token ids of the constant text before the image (template + ``before_image``), or None."""
        sentinel = "\x1fDOGIQA-IMAGE\x1f"
        probe = Prompt(prompt.before_image + sentinel, prompt.after_image, prompt.system, prompt.answer_prefix)
        try:
            rendered = self.render(probe).replace("<image>", "")
        except Exception:
            return None
        head = rendered.split(sentinel)[0] if sentinel in rendered else ""
        ids = self.tokenizer.encode(head, add_special_tokens=False)
        return ids if len(ids) >= 8 else None

    def _prefix_state(self, prefix: tuple[int, ...]) -> Any:
        """KV cache of the prefix alone (computed once per prefix, batch 1)."""
        import torch

        if prefix not in self._prefix_kv:
            ids = torch.tensor([prefix], device=self.device)
            with torch.inference_mode():
                out = self.model(input_ids=ids, attention_mask=torch.ones_like(ids), use_cache=True)
            if len(self._prefix_kv) >= 4:
                self._prefix_kv.pop(next(iter(self._prefix_kv)))
            self._prefix_kv[prefix] = out.cache if hasattr(out, "cache") else out.past_key_values
        return self._prefix_kv[prefix]

    def _logits_with_prefix(self, inputs: dict, prefix_ids: list[int]) -> Any:
        """Next-token logits reusing the prefix KV cache; None when the rows do not share the prefix.

        Rows are ``[pads][prefix][suffix]`` (left padding); they become ``[prefix][pads][suffix]`` with
        explicit position ids, so each row sees the same positions as without padding or caching.
        """
        import copy

        import torch

        ids, mask = inputs["input_ids"], inputs["attention_mask"]
        batch, width = ids.shape
        n_pad = (mask == 0).sum(dim=1)
        prefix = torch.tensor(prefix_ids, device=ids.device)
        size = len(prefix_ids)
        if width - int(n_pad.max()) <= size:
            return None
        cols = torch.arange(size, device=ids.device) + n_pad[:, None]
        if not bool((ids.gather(1, cols) == prefix).all()):
            return None
        ar = torch.arange(width - size, device=ids.device)[None]
        keep = torch.where(ar < n_pad[:, None], ar, ar + size)  # drop the prefix columns
        rest = {k: inputs[k].gather(1, keep) for k in ("input_ids", "attention_mask", "mm_token_type_ids")
                if k in inputs}  # fmt: skip
        ones = torch.ones(batch, size, dtype=mask.dtype, device=mask.device)
        full_mask = torch.cat([ones, rest["attention_mask"]], 1)
        position_ids = self._positions(inputs, rest, prefix, full_mask)[..., size:]
        cache = copy.deepcopy(self._prefix_state(tuple(prefix_ids)))
        if batch > 1:
            cache.batch_repeat_interleave(batch)
        extra = {k: v for k, v in inputs.items() if k not in rest}
        kwargs = {"logits_to_keep": 1} if self._keep_arg else {}
        rest["attention_mask"] = full_mask
        extra[self._cache_arg] = cache
        with torch.inference_mode():
            out = self.model(**rest, **extra, position_ids=position_ids, use_cache=True, **kwargs)
        return out.logits[:, -1].float()

    def _positions(self, inputs: dict, rest: dict, prefix: Any, full_mask: Any) -> Any:
        """Position ids of ``[prefix][rest]``: M-RoPE (3, B, L) for Qwen-VL models, else 1-D by the mask."""
        import torch

        batch = full_mask.shape[0]
        rope_index = getattr(getattr(self.model, "model", None), "get_rope_index", None)
        if rope_index is not None and "mm_token_type_ids" in rest:
            full_ids = torch.cat([prefix.expand(batch, -1), rest["input_ids"]], 1)
            mm = torch.cat([torch.zeros_like(prefix).expand(batch, -1), rest["mm_token_type_ids"]], 1)
            grid = {k: inputs[k] for k in ("image_grid_thw",) if k in inputs}
            pos, _ = rope_index(full_ids, mm_token_type_ids=mm, attention_mask=full_mask, **grid)
            return pos
        return (full_mask.long().cumsum(-1) - 1).clamp(min=0)

    def generate_one(self, image: Image.Image, prompt: Prompt) -> RawOutput:
        """The naive path: ``model.generate(max_new_tokens=1, do_sample=False)`` on one image."""
        import torch

        try:
            inputs = self._encode(self.render(prompt), [image])
            self.calls += 1
            with torch.inference_mode():
                out = self.model.generate(**inputs, max_new_tokens=1, do_sample=False)
        except Exception as exc:
            return RawOutput(error=f"{type(exc).__name__}: {exc}")
        tok = int(out[0, -1])
        return RawOutput(text=self.tokenizer.decode([tok]), meta={"token_id": tok})
