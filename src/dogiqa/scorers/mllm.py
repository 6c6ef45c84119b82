"""The MLLM scorer: a Backend + a Standard + a Readout, with an optional cache of raw outputs."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from dogiqa.backends.base import Backend, BackendError, Prompt, RawOutput
from dogiqa.readout import Readout, get_readout
from dogiqa.scorers.base import Crop, CropScore
from dogiqa.standards import Standard, get_standard


class RawStore(Protocol):
    """Where raw model outputs are kept between runs (``dogiqa.cache.RawCache``)."""

    def get_many(self, keys: Sequence[str]) -> dict[str, RawOutput]: ...

    def put_many(self, items: dict[str, RawOutput]) -> None: ...


@dataclass
class _Ask:
    """One backend call of a plan: a prompt, the (index, key) of the crops to ask, their twins, and the
    backend's preprocessed inputs (None: ask with ``backend.run``)."""

    prompt: Prompt
    todo: list[tuple[int, str | None]]
    twins: dict[str | None, list[int]]
    ready: Any = None


@dataclass
class _Plan:
    """What scoring some crops takes: answers already known (cache) and the calls still to make."""

    crops: Sequence[Crop]
    out: list[RawOutput | None]
    asks: list[_Ask] = field(default_factory=list)


class MLLMScorer:
    """Scores crops by asking a multimodal LLM with a quality standard; one backend call per prompt group."""

    name = "mllm"

    def __init__(
        self,
        backend: Backend,
        standard: Standard | str = "word",
        readout: Readout | str = "expected",
        levels: int | None = None,
        paper_whitespace: bool = False,
        invalid_as_one: bool = False,
        cache: RawStore | None = None,
    ):
        self.backend = backend
        self.standard = get_standard(standard, levels) if isinstance(standard, str) else standard
        self.readout = get_readout(readout) if isinstance(readout, str) else readout
        self.paper_whitespace = paper_whitespace
        self.invalid_as_one = invalid_as_one
        self.cache = cache
        self.higher_is_better = True
        self.score_range = self.readout.score_range(self.standard)
        self.candidates, self._spaced = self._pick_candidates()
        probe = getattr(backend, "probe", None)  # servers: can it serve this readout? (before any image)
        if callable(probe):
            probe(self.prompt_for("global"), self.candidates, readout=self.readout.name)

    @property
    def levels(self) -> int:
        return self.readout.levels(self.standard)

    def _pick_candidates(self) -> tuple[list[str], bool]:
        errors = []
        for i, variant in enumerate(self.readout.candidate_variants(self.standard)):
            try:
                self.backend.check_candidates(variant)
                return list(variant), i == 0
            except BackendError as exc:
                errors.append(str(exc))
        raise BackendError(f"readout {self.readout.name!r} cannot run on this model: {'; '.join(errors)}")

    def prompt_for(self, call: str) -> Prompt:
        return self.readout.prompt(self.standard, call, self.paper_whitespace, spaced=self._spaced)  # type: ignore[arg-type]

    def cache_key(self, prompt: Prompt, crop: Crop) -> str | None:
        if not crop.key:
            return None
        payload = json.dumps([self.backend.model_id, prompt.text, self.candidates, crop.key])
        return hashlib.sha256(payload.encode()).hexdigest()

    def raw_outputs(self, crops: Sequence[Crop]) -> list[RawOutput]:
        """What the model said for every crop: cached answers reused, the rest asked in one call per prompt."""
        return self._ask(self._plan(crops, prepare=False))

    def prepare_crops(self, crops: Sequence[Crop]) -> _Plan:
        """The CPU half of :meth:`score_crops`: cache look-ups and, when the backend can, its preprocessing
        (``backend.prepare``), so that a pipeline runs it while the model works on other crops."""
        return self._plan(crops, prepare=hasattr(self.backend, "prepare"))

    def score_prepared(self, plan: _Plan) -> list[CropScore]:
        """The model half of :meth:`score_crops` on a :meth:`prepare_crops` plan (same scores)."""
        return [self.read(raw) for raw in self._ask(plan)]

    def _plan(self, crops: Sequence[Crop], prepare: bool) -> _Plan:
        plan = _Plan(crops, [None] * len(crops), [])
        groups: dict[Prompt, list[int]] = {}  # one backend call per distinct prompt (global == local unless
        for i, crop in enumerate(crops):  # the paper's whitespace differs between them)
            groups.setdefault(self.prompt_for(crop.call), []).append(i)
        for prompt, idx in groups.items():
            keys = [self.cache_key(prompt, crops[i]) for i in idx]
            known = self.cache.get_many([k for k in keys if k]) if self.cache else {}
            todo, twins = [], {}  # identical crops (same key) are asked once
            for i, k in zip(idx, keys, strict=True):
                if k and k in known:
                    plan.out[i] = known[k]
                elif k and k in twins:
                    twins[k].append(i)
                else:
                    todo.append((i, k))
                    if k:
                        twins[k] = []
            if todo:
                images = [crops[i].image for i, _ in todo]
                ready = self.backend.prepare(images, prompt, self.candidates, want_text=True) if prepare else None
                plan.asks.append(_Ask(prompt, todo, twins, ready))
        return plan

    def _ask(self, plan: _Plan) -> list[RawOutput]:
        out = plan.out
        for ask in plan.asks:
            if ask.ready is not None:
                fresh = self.backend.run_prepared(ask.ready)
            else:
                images = [plan.crops[i].image for i, _ in ask.todo]
                fresh = self.backend.run(images, ask.prompt, self.candidates, want_text=True)
            for (i, k), raw in zip(ask.todo, fresh, strict=True):
                for j in [i, *ask.twins.get(k, [])]:
                    out[j] = raw
            if self.cache:
                self.cache.put_many({k: r for (_, k), r in zip(ask.todo, fresh, strict=True) if k and r.error is None})
        return [o if o is not None else RawOutput(error="no output") for o in out]

    def read(self, raw: RawOutput) -> CropScore:
        return self.readout.read(raw, self.standard, self.candidates, self.invalid_as_one)

    def score_crops(self, crops: Sequence[Crop]) -> list[CropScore]:
        return [self.read(raw) for raw in self.raw_outputs(crops)]
