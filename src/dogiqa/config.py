"""The pipeline configuration: every setting of a DogIQA pipeline, typed, immutable and validated before any
model, segmenter or image is loaded.

One :class:`PipelineConfig` holds seven groups (``model``, ``segmentation``, ``prompt``, ``regions``,
``aggregation``, ``runtime``, ``server``). Each setting has three spellings, derived from its field:

- the YAML key, ``group.field`` (``regions.crop_mode``);
- the keyword argument of ``DogIQA(...)`` / ``DogIQA.from_preset``, the field name (``crop_mode=``), except
  ``model.id`` (``model=``) and ``aggregation.method`` (``aggregation=``);
- the CLI flag, ``--`` + the keyword with dashes (``--crop-mode``), except ``--paper-compat``.

Errors are :class:`ConfigError` (a :class:`dogiqa.errors.UsageError`, exit code 2) naming the setting in the
spelling the user wrote it (``style``: ``flag``, ``yaml`` or ``keyword``) and listing the accepted values.

Why pydantic v2: frozen models, ``Literal`` choices, range constraints and cross-field validators are
declared next to each field rather than hand-written; its errors carry the location of the bad value (which we
translate into the user's spelling); ``model_dump``/``model_validate`` give the round trip to JSON/YAML that
records and ``--config`` files need, and ``model_json_schema`` documents the format. It imports no torch, so
validation stays cheap (the CLI validates before it imports anything heavy).
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic_core import PydanticCustomError

from dogiqa.errors import UsageError

DEFAULT_MODEL = "Qwen/Qwen2.5-VL-7B-Instruct"
PAPER_MODEL = "mPLUG/mPLUG-Owl3-7B-240728"
PAPER_SAM2 = "facebook/sam2-hiera-large"
DEFAULT_MAX_PIXELS = 100_000_000  # same value as dogiqa.io.DEFAULT_MAX_PIXELS (tested), without importing numpy
DEFAULT_MAX_FILE_BYTES = 256 * 1024 * 1024  # same as dogiqa.io.DEFAULT_MAX_FILE_BYTES (tested)
DEFAULT_CHUNK_SIZE = 8

Style = Literal["flag", "yaml", "keyword"]
Scorer = Literal["mllm", "niqe", "brisque", "piqe", "clipiqa"]
Backend = Literal["auto", "transformers", "mplug_owl3", "openai"]
SegmenterName = Literal["auto", "sam2", "felzenszwalb", "slic", "none"]
Readout = Literal["int", "expected", "qalign", "qbench"]
AggregationName = Literal["paper", "code", "global", "local", "mean"]
CropMode = Literal["bbox", "mask"]
Dtype = Literal["auto", "float32", "float16", "bfloat16"]
Sam2Preset = Literal["paper", "sam2-default"]
SmallRegions = Literal["skip", "fill"]
Owl3Mask = Literal["paper", "fixed"]
STANDARDS = ("word", "number", "sentence")
STANDARD_LEVELS = {"word": (3, 5, 7, 9), "number": tuple(range(2, 10)), "sentence": (5,)}
_DEVICE = re.compile(r"^(auto|cpu|mps|(cuda|xpu|npu)(:\d+)?)$")
_KEYWORD = {"model.id": "model", "aggregation.method": "aggregation"}  # keyword != field name
_FLAG = {"prompt.invalid_as_one": "--paper-compat", "runtime.max_file_bytes": "--max-file-size"}  # != --keyword
NO_FLAG = {"model.backend_options", "segmentation.segmenter_options", "prompt.paper_whitespace"}


class _Group(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


def _cross(field: str, message: str) -> PydanticCustomError:
    """A cross-field error about ``field`` (``group.name``); ``<group.name>`` in the message names another setting."""
    return PydanticCustomError("cross_field", "{message}", {"message": message, "field": field})


def strip_userinfo(url: str) -> str:
    """``url`` without ``user:password@`` (credentials never reach a record, cache, metrics or message)."""
    scheme, sep, rest = url.partition("://")
    netloc, slash, path = rest.partition("/")
    return url if "@" not in netloc else f"{scheme}{sep}{netloc.rsplit('@', 1)[1]}{slash}{path}"


def redact_urls(data: Any) -> Any:
    """``data`` (a dump) with the user-info stripped from every ``base_url`` value, at any depth."""
    if isinstance(data, dict):
        return {
            k: strip_userinfo(v) if k == "base_url" and isinstance(v, str) else redact_urls(v) for k, v in data.items()
        }
    if isinstance(data, list):
        return [redact_urls(v) for v in data]
    return data


def looks_local(value: str) -> bool:
    """True for a value that can only be a local path (absolute, ./, ../, ~, or more than one ``/``), never a hub id."""
    return (
        value.startswith(("/", "./", "../", "~", ".\\"))
        or "\\" in value
        or value.count("/") > 1
        or bool(re.match(r"^[A-Za-z]:[\\/]", value))
    )


def _check_local(value: str | None, what: str) -> str | None:
    if value and looks_local(value) and not Path(value).expanduser().exists():
        raise ValueError(f"no such {what}: {value} (give an existing local folder or a hub id)")
    return value


class ModelConfig(_Group):
    """Which model scores the crops, and how it is loaded."""

    scorer: Scorer = Field("mllm", description="mllm (a VLM) or a classical/CLIP scorer")
    id: str = Field(DEFAULT_MODEL, min_length=1, description="hub id or local folder of the VLM")
    backend: Backend = Field("auto", description="auto picks mplug_owl3 for mPLUG-Owl3 checkpoints")
    revision: str | None = Field(None, description="model revision on the hub (branch, tag, commit)")
    trust_remote_code: bool = Field(False, description="allow a model's own Python code from the hub")
    owl3_mask: Owl3Mask | None = Field(None, description="mPLUG-Owl3 attention mask: paper | fixed")
    clip_model: str | None = Field(None, description="CLIP hub id or local folder (scorer clipiqa)")
    backend_options: dict[str, Any] = Field(default_factory=dict, description="passed to the backend as is")

    @field_validator("id")
    @classmethod
    def _local_id(cls, value: str) -> str:
        return str(_check_local(value, "model folder"))

    @field_validator("clip_model")
    @classmethod
    def _local_clip(cls, value: str | None) -> str | None:
        return _check_local(value, "CLIP model folder")


class SegmentationConfig(_Group):
    """How an image is cut into regions."""

    segmenter: SegmenterName = Field("none", description="auto tries SAM2, else Felzenszwalb")
    sam2_model: str | None = Field(None, description=f"SAM2 hub id or local folder (default {PAPER_SAM2})")
    sam2_preset: Sam2Preset | None = Field(None, description="SAM2 generator parameters (default paper)")
    small_regions: SmallRegions | None = Field(None, description="SAM2 small-region step (default skip)")
    segmenter_options: dict[str, Any] = Field(default_factory=dict, description="passed to the segmenter as is")

    @field_validator("sam2_model")
    @classmethod
    def _local_sam2(cls, value: str | None) -> str | None:
        return _check_local(value, "SAM2 model folder")


class PromptConfig(_Group):
    """What the model is asked and how its answer becomes a score."""

    standard: str = Field("word", description="word | number | sentence | a .json/.yaml standard file")
    levels: int | None = Field(7, ge=2, le=9, description="levels K of the standard (None: its default)")
    readout: Readout = Field("expected", description="how an answer becomes a score")
    paper_whitespace: bool = Field(False, description="the authors' exact prompt whitespace")
    invalid_as_one: bool = Field(False, description="invalid answers score 1, like the authors' code")

    @field_validator("standard")
    @classmethod
    def _standard(cls, value: str) -> str:
        if value in STANDARDS:
            return value
        if Path(value).suffix.lower() in (".json", ".yaml", ".yml"):
            if not Path(value).expanduser().is_file():
                raise ValueError(f"no such standard file: {value}")
            return value
        raise ValueError(f"unknown value {value!r}; choose one of: {', '.join(STANDARDS)}, or a .json/.yaml file")


class RegionsConfig(_Group):
    """Which regions are kept and how they are cropped."""

    min_area: int = Field(1000, ge=0, description="minimum region area in pixels")
    crop_mode: CropMode = Field("bbox", description="bbox (the paper) | mask (black outside the mask)")


class AggregationConfig(_Group):
    """How global and region scores become the final score."""

    method: AggregationName = Field("paper", description="the aggregation formula")
    c_max: float | None = Field(None, gt=0, description="c_max of the paper formula (default 71)")


class RuntimeConfig(_Group):
    """Where and how fast it runs (never changes a score, except dtype)."""

    device: str | None = Field(None, description="cpu | cuda | cuda:N | mps | auto")
    dtype: Dtype | None = Field(None, description="model weights' precision")
    batch_size: int | None = Field(None, ge=1, description="crops per forward pass")
    chunk_size: int | None = Field(None, ge=1, description="images whose crops are batched together")
    max_batch_tokens: int | None = Field(None, ge=1, description="token budget of one forward pass")
    prefix_cache: bool | None = Field(None, description="reuse the KV cache of the prompt before the image")
    max_pixels: int | None = Field(DEFAULT_MAX_PIXELS, ge=1, description="refuse larger images (None: no cap)")
    max_file_bytes: int | None = Field(DEFAULT_MAX_FILE_BYTES, ge=1, description="refuse larger files (None: no cap)")
    staged: bool | None = Field(None, description="overlap loading, segmentation and scoring (default on)")
    load_workers: int | None = Field(None, ge=1, le=64, description="image decoding threads (2)")
    preprocess_workers: int | None = Field(
        None, ge=1, le=64, description="processor threads (1 on the CPU, else cores/4, 1 to 4)"
    )
    segment_workers: int | None = Field(None, ge=1, le=64, description="segmentation threads (auto)")
    segment_processes: int | None = Field(
        None, ge=0, le=64, description="worker processes for scikit-image segmenters (0: a thread; auto)"
    )
    max_in_flight: int | None = Field(None, ge=2, description="images between reading and output at once (auto)")

    @field_validator("device")
    @classmethod
    def _device(cls, value: str | None) -> str | None:
        if value is not None and not _DEVICE.match(value):
            raise ValueError(f"unknown device {value!r}; use cpu, cuda, cuda:N, mps or auto")
        return value


class ServerConfig(_Group):
    """An OpenAI-compatible server as the backend (``model.backend: openai``)."""

    base_url: str | None = Field(None, description="the server's API root, e.g. http://HOST:8000/v1")
    api_key_env: str | None = Field(None, min_length=1, description="variable holding the API key")
    concurrency: int | None = Field(None, ge=1, le=1024, description="requests in flight (default 8)")
    timeout: float | None = Field(None, gt=0, description="seconds per connect/read/write (default 60)")
    max_retries: int | None = Field(None, ge=0, le=100, description="retries on 429/5xx/timeouts (default 5)")
    deadline: float | None = Field(None, gt=0, description="seconds for a whole request (default: timeout)")
    max_response_bytes: int | None = Field(None, ge=1024, description="largest response body (default 8 MiB)")
    max_retry_after: float | None = Field(None, ge=0, description="longest Retry-After wait (default 30 s)")
    max_retry_time: float | None = Field(None, ge=0, description="retry budget per crop (default 120 s)")

    @field_validator("base_url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        if value is not None and not re.match(r"^https?://[^/\s]+", value):
            raise ValueError(f"{strip_userinfo(value)!r} is not an http(s) URL; e.g. http://127.0.0.1:8000/v1")
        return value


GROUPS: dict[str, type[_Group]] = {
    "model": ModelConfig,
    "segmentation": SegmentationConfig,
    "prompt": PromptConfig,
    "regions": RegionsConfig,
    "aggregation": AggregationConfig,
    "runtime": RuntimeConfig,
    "server": ServerConfig,
}

# Overriding a setting drops the base's values of the settings that belong to it (a preset's SAM2 options do
# not apply to the Felzenszwalb segmenter a user picks instead; a new standard brings its own level count).
DEPENDENTS = {
    "segmentation.segmenter": ("segmentation.sam2_model", "segmentation.sam2_preset", "segmentation.small_regions",
                               "segmentation.segmenter_options"),
    "prompt.standard": ("prompt.levels",),
    "model.backend": ("model.owl3_mask",),
    "model.scorer": ("model.clip_model",),
}  # fmt: skip


class PipelineConfig(BaseModel):
    """Every setting of a pipeline. Build it with :func:`build_config` / :func:`resolve_config` for errors in
    the user's words; ``PipelineConfig.model_validate(dump)`` also works (pydantic errors)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    preset: str | None = Field(None, description="the preset this configuration started from (informative)")
    model: ModelConfig = Field(default_factory=ModelConfig)
    segmentation: SegmentationConfig = Field(default_factory=SegmentationConfig)
    prompt: PromptConfig = Field(default_factory=PromptConfig)
    regions: RegionsConfig = Field(default_factory=RegionsConfig)
    aggregation: AggregationConfig = Field(default_factory=AggregationConfig)
    runtime: RuntimeConfig = Field(default_factory=RuntimeConfig)
    server: ServerConfig = Field(default_factory=ServerConfig)

    @model_validator(mode="after")
    def _cross_fields(self) -> PipelineConfig:
        _check_server(self)
        _check_segmenter(self)
        _check_model(self)
        _check_levels(self)
        return self

    # -- conveniences ------------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable dump (what records carry and ``--config`` files hold)."""
        return self.model_dump(mode="json")

    def public_dict(self) -> dict[str, Any]:
        """``to_dict`` without URL credentials: what records, caches, metrics and printed configurations hold."""
        return redact_urls(self.to_dict())

    def to_yaml(self) -> str:
        import yaml

        return yaml.safe_dump(self.public_dict(), sort_keys=False)

    def flat(self) -> dict[str, Any]:
        """``{keyword: value}`` for every setting (the keyword spelling)."""
        data = self.to_dict()
        out = {"preset": data.pop("preset")}
        for group, values in data.items():
            for name, value in values.items():
                out[keyword_of(f"{group}.{name}")] = value
        return out

    @property
    def effective_chunk_size(self) -> int:
        """Images per scorer call: as set, else enough crops to fill a server's concurrency, else 8."""
        if self.runtime.chunk_size is not None:
            return self.runtime.chunk_size
        if self.model.backend == "openai":
            return max(DEFAULT_CHUNK_SIZE, self.server.concurrency or DEFAULT_CHUNK_SIZE)
        return DEFAULT_CHUNK_SIZE

    def replace(self, style: Style = "keyword", **overrides: Any) -> PipelineConfig:
        """A copy with keyword overrides applied (None leaves a setting as it is)."""
        return merge(self.to_dict(), flat_to_nested(overrides, style), style)


# -- cross-field rules ---------------------------------------------------------------------------------------
def _check_server(cfg: PipelineConfig) -> None:
    server = {k: v for k, v in cfg.server.model_dump().items() if v is not None}
    if cfg.model.backend != "openai":
        if server:
            raise _cross(f"server.{next(iter(server))}", "only with <model.backend=openai>")
    elif cfg.model.scorer == "mllm" and not (cfg.server.base_url or cfg.model.backend_options.get("base_url")):
        raise _cross(
            "server.base_url", "<model.backend=openai> needs <server.base_url> (e.g. http://127.0.0.1:8000/v1)"
        )


def _check_segmenter(cfg: PipelineConfig) -> None:
    seg = cfg.segmentation
    if seg.segmenter in ("sam2", "auto"):
        return
    for name in ("sam2_model", "sam2_preset", "small_regions"):
        if getattr(seg, name) is not None:
            problem = f"only with <segmentation.segmenter=sam2> or auto, not {seg.segmenter}"
            raise _cross(f"segmentation.{name}", problem)


def _check_model(cfg: PipelineConfig) -> None:
    m = cfg.model
    if m.clip_model is not None and m.scorer != "clipiqa":
        raise _cross("model.clip_model", f"only with <model.scorer=clipiqa>, not {m.scorer}")
    if m.owl3_mask is not None and (m.scorer != "mllm" or detect_backend(m.id, m.backend) != "mplug_owl3"):
        raise _cross(
            "model.owl3_mask",
            "only with the mPLUG-Owl3 backend (<model.backend=mplug_owl3>, or auto with an mPLUG-Owl3 model)",
        )


def _check_levels(cfg: PipelineConfig) -> None:
    p = cfg.prompt
    allowed = STANDARD_LEVELS.get(p.standard)
    if p.levels is not None and allowed and p.levels not in allowed and p.readout not in ("qalign", "qbench"):
        values = ", ".join(map(str, allowed))
        raise _cross("prompt.levels", f"the {p.standard} standard has {values} levels, not {p.levels}")


def detect_backend(model: str, backend: str = "auto") -> str:
    """The backend ``auto`` resolves to without loading anything: ``mplug_owl3`` for mPLUG-Owl3 checkpoints
    (by the folder's config.json or the hub id), else ``transformers``."""
    if backend != "auto":
        return backend
    config = Path(model).expanduser() / "config.json"
    if config.is_file():
        try:
            model_type = json.loads(config.read_text()).get("model_type", "")
        except (OSError, ValueError, AttributeError):
            model_type = ""
        return "mplug_owl3" if model_type == "mplugowl3" else "transformers"
    return "mplug_owl3" if "mplug-owl3" in model.lower() else "transformers"


# -- names: YAML key <-> keyword <-> flag ------------------------------------------------------------------
def _all_paths() -> list[str]:
    return ["preset"] + [f"{g}.{name}" for g, cls in GROUPS.items() for name in cls.model_fields]


def keyword_of(path: str) -> str:
    return _KEYWORD.get(path, path.rsplit(".", 1)[-1])


def flag_of(path: str) -> str | None:
    if path in NO_FLAG:
        return None
    return _FLAG.get(path, "--" + keyword_of(path).replace("_", "-"))


KEYWORDS: dict[str, str] = {keyword_of(p): p for p in _all_paths()}  # keyword -> YAML path


def setting_name(path: str, style: Style) -> str:
    """How the user wrote the setting at ``path`` (``regions.crop_mode``): flag, YAML key or keyword."""
    if style == "flag" and flag_of(path):
        return str(flag_of(path))
    if style == "keyword" and path in KEYWORDS.values():
        return keyword_of(path) + "="
    return path


def choices_of(path: str) -> tuple[str, ...]:
    """The accepted values of a setting with a fixed set (empty otherwise)."""
    if "." not in path:
        return ()
    group, name = path.split(".", 1)
    cls = GROUPS.get(group)
    if cls is None or name not in cls.model_fields:
        return ()
    annotation = cls.model_fields[name].annotation
    out: list[str] = []
    for arg in (annotation, *get_args(annotation)):
        if getattr(arg, "__origin__", None) is Literal or str(arg).startswith("typing.Literal"):
            out.extend(str(a) for a in get_args(arg))
    return tuple(dict.fromkeys(out))


# -- errors ---------------------------------------------------------------------------------------------------
class ConfigError(UsageError):
    """A bad setting: the message starts with the setting's name as the user wrote it."""

    def __init__(self, path: str, problem: str, style: Style = "keyword"):
        self.path = path
        setting = setting_name(path, style)
        text = re.sub(r"<([a-z_]+\.[a-z_0-9]+)(?:=([^>]+))?>", lambda m: _mention(m, style), problem)
        super().__init__(f"{setting}: {text}", setting=setting)


def _mention(match: re.Match[str], style: Style) -> str:
    """``<group.name>`` or ``<group.name=value>`` in an error message, in the user's spelling."""
    name, value = setting_name(match.group(1), style), match.group(2)
    if value is None:
        return name
    return {"flag": f"{name} {value}", "yaml": f"{name}: {value}", "keyword": f"{name}{value!r}"}[style]


def _from_validation(exc: ValidationError, style: Style) -> ConfigError:
    err = exc.errors()[0]
    loc = [str(x) for x in err["loc"] if not isinstance(x, int)]
    ctx = err.get("ctx") or {}
    if err["type"] == "cross_field":
        return ConfigError(ctx["field"], ctx["message"], style)
    path = ".".join(loc[:2]) if loc else "preset"
    value = err.get("input")
    if err["type"] == "extra_forbidden":
        return ConfigError(path, "unknown setting" + _did_you_mean(path, style), style)
    if err["type"] == "model_type" or (err["type"] == "dict_type" and len(loc) == 1):
        return ConfigError(path, f"expected a mapping of settings, got {value!r}", style)
    choices = choices_of(path)
    if err["type"] == "literal_error" and choices:
        return ConfigError(path, f"unknown value {value!r}; choose one of: {', '.join(choices)}", style)
    message = str(err["msg"]).removeprefix("Value error, ")
    if err["type"] not in ("value_error",):
        message = f"{message[:1].lower()}{message[1:]} (got {value!r})"
    return ConfigError(path, message, style)


def _did_you_mean(path: str, style: Style) -> str:
    names = {setting_name(p, style): p for p in _all_paths()}
    close = difflib.get_close_matches(setting_name(path, style), list(names), n=1)
    return f"; did you mean {close[0]}?" if close else ""


# -- building ---------------------------------------------------------------------------------------------
def build_config(data: Mapping[str, Any] | PipelineConfig | None = None, style: Style = "yaml") -> PipelineConfig:
    """Validate a nested mapping (a dump, a YAML file's content, a record's ``config``) into a configuration."""
    if isinstance(data, PipelineConfig):
        return data
    data = dict(data or {})
    if isinstance(data.get("pipeline"), Mapping):  # a record's config: {..what ran.., "pipeline": dump}
        data = dict(data["pipeline"])
    try:
        return PipelineConfig.model_validate(data)
    except ValidationError as exc:
        raise _from_validation(exc, style) from None


def flat_to_nested(values: Mapping[str, Any], style: Style = "keyword") -> dict[str, Any]:
    """``{keyword: value}`` (None = not given) -> ``{group: {field: value}}``; unknown keywords are errors."""
    out: dict[str, Any] = {}
    for key, value in values.items():
        if value is None:
            continue
        path = KEYWORDS.get(key)
        if path is None:
            raise ConfigError(key, "unknown setting" + _did_you_mean(key, style), style)
        if path == "preset":
            out["preset"] = value
            continue
        group, name = path.split(".")
        out.setdefault(group, {})[name] = value
    return out


def merge(base: Mapping[str, Any], overrides: Mapping[str, Any], style: Style = "yaml") -> PipelineConfig:
    """``base`` (a nested dump) with ``overrides`` (nested, partial) applied; overriding a setting drops the
    base's values of the settings that belong to it (``DEPENDENTS``)."""
    data = {k: dict(v) if isinstance(v, Mapping) else v for k, v in base.items()}
    for group, values in overrides.items():
        if not isinstance(values, Mapping) or not isinstance(data.get(group, {}), Mapping):
            data[group] = values
            continue
        for name, value in values.items():
            path = f"{group}.{name}"
            if path in DEPENDENTS and data.get(group, {}).get(name) != value:
                for dep in DEPENDENTS[path]:
                    g, n = dep.split(".")
                    if n not in overrides.get(g, {}):
                        data.setdefault(g, {})[n] = (
                            None if n == "levels" else GROUPS[g].model_fields[n].get_default(call_default_factory=True)
                        )
            data.setdefault(group, {})[name] = value
    return build_config(data, style)


def read_config_file(path: str | Path) -> dict[str, Any]:
    """The mapping in a YAML (or JSON) configuration file; errors name the file."""
    import yaml

    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise UsageError(f"--config: cannot read {path}: {exc.strerror or exc}", setting="--config") from None
    except yaml.YAMLError as exc:
        raise UsageError(f"--config: {path} is not valid YAML: {exc}", setting="--config") from None
    if data is None:
        return {}
    if isinstance(data, dict) and isinstance(data.get("pipeline"), dict):  # a record's config (JSON is YAML)
        data = data["pipeline"]
    if not isinstance(data, dict):
        raise UsageError(f"--config: {path} must hold a mapping of settings", setting="--config")
    return data


def resolve_config(
    preset: str | None = None,
    file: str | Path | None = None,
    overrides: Mapping[str, Any] | None = None,
    style: Style = "flag",
) -> PipelineConfig:
    """The configuration from, in increasing precedence: the built-in defaults, the preset (``--preset``, else
    the file's ``preset:``, else ``recommended``), the file (``--config``), then ``overrides`` (keywords, e.g.
    CLI options; None = not given)."""
    from dogiqa.presets import PRESETS, get_preset_config

    file_data: dict[str, Any] = read_config_file(file) if file else {}
    name = preset or file_data.get("preset") or "recommended"
    if name not in PRESETS:
        problem = f"unknown preset {name!r}; choose one of: {', '.join(PRESETS)}"
        if not preset:  # named by the file
            raise UsageError(f"--config {file}: preset: {problem}", setting="preset")
        raise ConfigError("preset", problem, style)
    base = get_preset_config(str(name))
    data = base.to_dict()
    if file_data:
        try:
            with_file = merge(data, {k: v for k, v in file_data.items() if k != "preset"}, "yaml")
        except ConfigError as exc:
            raise UsageError(f"--config {file}: {exc}", setting=exc.setting) from None
        data = with_file.to_dict()
    data["preset"] = str(name)
    return merge(data, flat_to_nested(overrides or {}, style), style)


def coerce_config(config: PipelineConfig | Mapping[str, Any], style: Style = "keyword") -> PipelineConfig:
    """A configuration from any of its forms: itself, a nested dump (YAML, a record's ``config``), or keyword
    settings with an optional ``preset`` (``{"preset": "global", "model": "...", "segmenter": "none"}``)."""
    if isinstance(config, PipelineConfig):
        return config
    nested = "pipeline" in config or any(isinstance(config.get(g), Mapping) for g in GROUPS)
    if nested:
        return build_config(config, "yaml")
    settings = dict(config)
    return resolve_config(settings.pop("preset", None), None, settings, style)
