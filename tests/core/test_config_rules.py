"""The configuration's contract (README "Configuration"): defaults, ranges, cross-field rules, the three
spellings of a setting, error messages in the user's spelling, precedence and the override rules.

Pure Python (no model, no image): every expected value comes from the README or a hand reading of the rule.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from dogiqa.config import (
    ConfigError,
    PipelineConfig,
    build_config,
    choices_of,
    coerce_config,
    detect_backend,
    flag_of,
    flat_to_nested,
    keyword_of,
    looks_local,
    merge,
    read_config_file,
    redact_urls,
    resolve_config,
    setting_name,
    strip_userinfo,
)
from dogiqa.errors import UsageError
from dogiqa.presets import PAPER_MODEL, PAPER_SAM2

QWEN = "Qwen/Qwen2.5-VL-7B-Instruct"
OPENAI = {"backend": "openai", "base_url": "http://127.0.0.1:8000/v1"}


def error(overrides: dict, style: str = "flag", preset: str = "recommended") -> ConfigError:
    with pytest.raises(ConfigError) as exc:
        resolve_config(preset, None, overrides, style)  # type: ignore[arg-type]
    return exc.value


# -- defaults (README tables) ---------------------------------------------------------------------------------
def test_built_in_defaults():
    cfg = PipelineConfig()
    assert cfg.preset is None
    assert (cfg.model.scorer, cfg.model.id, cfg.model.backend) == ("mllm", QWEN, "auto")
    assert cfg.model.revision is None and cfg.model.trust_remote_code is False and cfg.model.backend_options == {}
    assert cfg.segmentation.segmenter == "none" and cfg.segmentation.segmenter_options == {}
    assert (cfg.prompt.standard, cfg.prompt.levels, cfg.prompt.readout) == ("word", 7, "expected")
    assert cfg.prompt.invalid_as_one is False and cfg.prompt.paper_whitespace is False
    assert (cfg.regions.min_area, cfg.regions.crop_mode) == (1000, "bbox")
    assert (cfg.aggregation.method, cfg.aggregation.c_max) == ("paper", None)
    assert cfg.runtime.max_pixels == 100_000_000 and cfg.runtime.max_file_bytes == 256 * 1024 * 1024
    assert cfg.runtime.device is None and cfg.runtime.dtype is None and cfg.runtime.staged is None
    assert all(v is None for v in cfg.server.model_dump().values())


def test_presets_as_documented():
    """README "Presets" table, and what the paper preset implies (invalid answer = 1, fp16, paper whitespace)."""
    want = {
        "paper": (PAPER_MODEL, "int", "sam2", "paper"),
        "paper-code": (PAPER_MODEL, "int", "sam2", "code"),
        "recommended": (QWEN, "expected", "auto", "paper"),
        "global": (QWEN, "expected", "none", "global"),
        "qalign": (QWEN, "qalign", "none", "global"),
    }
    for name, (model, readout, segmenter, aggregation) in want.items():
        cfg = resolve_config(name)
        got = (cfg.model.id, cfg.prompt.readout, cfg.segmentation.segmenter, cfg.aggregation.method)
        assert got == (model, readout, segmenter, aggregation), name
        assert cfg.preset == name
    for name in ("paper", "paper-code"):
        p = resolve_config(name).prompt
        assert (p.invalid_as_one, p.paper_whitespace, p.levels, p.standard) == (True, True, 7, "word")
        assert resolve_config(name).runtime.dtype == "float16"
    assert resolve_config("recommended").prompt.invalid_as_one is False
    assert resolve_config().preset == "recommended"  # nothing named: recommended


@pytest.mark.parametrize(
    ("keyword", "low", "high"),
    [("levels", 2, 9), ("min_area", 0, None), ("batch_size", 1, None), ("chunk_size", 1, None),
     ("max_batch_tokens", 1, None), ("max_pixels", 1, None), ("max_file_bytes", 1, None), ("load_workers", 1, 64),
     ("preprocess_workers", 1, 64), ("segment_workers", 1, 64), ("segment_processes", 0, 64),
     ("max_in_flight", 2, None)],
)  # fmt: skip
def test_integer_ranges(keyword: str, low: int, high: int | None):
    base = {"readout": "qalign"} if keyword == "levels" else {}  # qalign: any K in range
    assert resolve_config("global", None, {**base, keyword: low}).flat()[keyword] == low
    err = error({**base, keyword: low - 1}, preset="global")
    assert str(err).startswith(f"{flag_of(err.path)}: ") and f"(got {low - 1})" in str(err)
    if high is not None:
        assert resolve_config("global", None, {**base, keyword: high}).flat()[keyword] == high
        assert f"(got {high + 1})" in str(error({**base, keyword: high + 1}, preset="global"))


@pytest.mark.parametrize(
    ("keyword", "low", "high", "strict"),
    [("concurrency", 1, 1024, False), ("max_retries", 0, 100, False), ("max_response_bytes", 1024, None, False),
     ("timeout", 0, None, True), ("deadline", 0, None, True), ("max_retry_after", 0, None, False),
     ("max_retry_time", 0, None, False)],
)  # fmt: skip
def test_server_ranges(keyword: str, low: float, high: float | None, strict: bool):
    if strict:  # > low
        assert resolve_config("global", None, {**OPENAI, keyword: low + 0.5}).flat()[keyword] == low + 0.5
        assert "greater than 0" in str(error({**OPENAI, keyword: low}))
    else:
        assert resolve_config("global", None, {**OPENAI, keyword: low}).flat()[keyword] == low
        assert str(error({**OPENAI, keyword: low - 1})).startswith(f"--{keyword.replace('_', '-')}: ")
    if high is not None:
        assert resolve_config("global", None, {**OPENAI, keyword: high}).flat()[keyword] == high
        error({**OPENAI, keyword: high + 1})


def test_c_max_must_be_positive():
    assert resolve_config(None, None, {"c_max": 0.5}).aggregation.c_max == 0.5
    assert str(error({"c_max": 0})).startswith("--c-max: input should be greater than 0")


# -- spellings ------------------------------------------------------------------------------------------------
def test_keywords_and_flags_of_settings():
    assert keyword_of("model.id") == "model" and keyword_of("aggregation.method") == "aggregation"
    assert keyword_of("regions.crop_mode") == "crop_mode" and keyword_of("preset") == "preset"
    assert flag_of("prompt.invalid_as_one") == "--paper-compat"
    assert flag_of("runtime.max_file_bytes") == "--max-file-size"
    assert flag_of("model.id") == "--model" and flag_of("runtime.max_batch_tokens") == "--max-batch-tokens"
    for no_flag in ("model.backend_options", "segmentation.segmenter_options", "prompt.paper_whitespace"):
        assert flag_of(no_flag) is None
        assert setting_name(no_flag, "flag") == no_flag  # no flag: named by its YAML key
    assert setting_name("regions.crop_mode", "flag") == "--crop-mode"
    assert setting_name("regions.crop_mode", "yaml") == "regions.crop_mode"
    assert setting_name("regions.crop_mode", "keyword") == "crop_mode="
    assert setting_name("model.id", "keyword") == "model=" and setting_name("preset", "keyword") == "preset="
    assert setting_name("nothing.here", "keyword") == "nothing.here"


def test_choices_of():
    assert choices_of("regions.crop_mode") == ("bbox", "mask")
    assert choices_of("runtime.dtype") == ("auto", "float32", "float16", "bfloat16")  # optional choice
    assert choices_of("model.backend") == ("auto", "transformers", "mplug_owl3", "openai")
    assert choices_of("segmentation.segmenter") == ("auto", "sam2", "felzenszwalb", "slic", "none")
    assert choices_of("aggregation.method") == ("paper", "code", "global", "local", "mean")
    for none in ("regions.min_area", "model.id", "preset", "nogroup.x", "regions.nope"):
        assert choices_of(none) == ()


def test_flat_uses_keywords():
    flat = resolve_config("global", None, {"crop_mode": "mask", "device": "cpu"}).flat()
    assert flat["preset"] == "global" and flat["model"] == QWEN and flat["aggregation"] == "global"
    assert flat["crop_mode"] == "mask" and flat["device"] == "cpu" and flat["invalid_as_one"] is False
    assert "id" not in flat and "method" not in flat
    assert len(flat) == 1 + sum(len(v) for v in PipelineConfig().to_dict().values() if isinstance(v, dict))


def test_flat_to_nested():
    nested = flat_to_nested({"model": "m", "aggregation": "code", "crop_mode": "mask", "levels": None,
                             "preset": "paper"})  # fmt: skip
    assert nested == {"model": {"id": "m"}, "aggregation": {"method": "code"}, "regions": {"crop_mode": "mask"},
                      "preset": "paper"}  # fmt: skip
    with pytest.raises(ConfigError) as exc:
        flat_to_nested({"crop_mod": "bbox"})
    assert str(exc.value) == "crop_mod: unknown setting; did you mean crop_mode=?"
    with pytest.raises(ConfigError) as exc:
        flat_to_nested({"crop_mod": "bbox"}, "flag")
    assert str(exc.value) == "--crop-mod: unknown setting; did you mean --crop-mode?"


# -- error messages in the user's spelling --------------------------------------------------------------------
def test_cross_field_errors_in_each_spelling():
    settings = {"segmenter": "felzenszwalb", "small_regions": "fill"}
    assert str(error(settings, "flag")) == "--small-regions: only with --segmenter sam2 or auto, not felzenszwalb"
    assert str(error(settings, "keyword")) == ("small_regions=: only with segmenter='sam2' or auto, not felzenszwalb")
    err = error(settings, "yaml")
    assert str(err) == "segmentation.small_regions: only with segmentation.segmenter: sam2 or auto, not felzenszwalb"
    assert err.path == "segmentation.small_regions" and err.setting == "segmentation.small_regions"
    assert isinstance(err, UsageError) and err.exit_code == 2


def test_validation_errors_are_translated():
    assert str(error({"crop_mode": "nope"})) == "--crop-mode: unknown value 'nope'; choose one of: bbox, mask"
    assert str(error({"min_area": -1})) == "--min-area: input should be greater than or equal to 0 (got -1)"
    device = str(error({"device": "gpu"}))
    assert device == "--device: unknown device 'gpu'; use cpu, cuda, cuda:N, mps or auto"  # a value error: no "(got"
    with pytest.raises(ConfigError) as exc:
        build_config({"regions": {"crop_modes": "mask"}})
    assert str(exc.value) == "regions.crop_modes: unknown setting; did you mean regions.crop_mode?"
    with pytest.raises(ConfigError) as exc:
        build_config({"xyzzy": 1})
    assert str(exc.value) == "xyzzy: unknown setting"  # nothing close: no suggestion
    with pytest.raises(ConfigError) as exc:
        build_config({"regions": 5})
    assert str(exc.value) == "regions: expected a mapping of settings, got 5"
    with pytest.raises(ConfigError) as exc:
        build_config({"prompt": {"levels": "seven"}})
    assert str(exc.value).startswith("prompt.levels: input should be a valid integer") and "(got 'seven')" in str(
        exc.value
    )
    with pytest.raises(ConfigError) as exc:
        build_config({"prompt": {"levels": "seven"}}, "keyword")
    assert str(exc.value).startswith("levels=: ")


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"device": "cuda:1"}, None), ({"device": "xpu"}, None), ({"device": "npu:0"}, None),
        ({"device": "auto"}, None), ({"device": "mps"}, None), ({"device": "cuda:"}, "unknown device"),
        ({"device": "cpu:0"}, "unknown device"), ({"device": "CUDA"}, "unknown device"),
        ({"base_url": "https://h/v1", "backend": "openai"}, None),
        ({"base_url": "ftp://h/v1", "backend": "openai"}, "is not an http(s) URL"),
        ({"base_url": "http:// h", "backend": "openai"}, "is not an http(s) URL"),
    ],
)  # fmt: skip
def test_device_and_url_values(overrides: dict, message: str | None):
    if message is None:
        resolve_config("global", None, overrides)
    else:
        assert message in str(error(overrides, preset="global"))


def test_bad_url_message_hides_credentials():
    text = str(error({"backend": "openai", "base_url": "ftp://alice:s3cret@host/v1"}))
    assert "s3cret" not in text and "ftp://host/v1" in text


# -- cross-field rules -----------------------------------------------------------------------------------------
def test_server_settings_need_the_openai_backend():
    assert str(error({"timeout": 5.0})) == "--timeout: only with --backend openai"
    assert str(error({"concurrency": 4})).startswith("--concurrency: only with --backend openai")
    assert str(error({"backend": "openai"})) == (
        "--base-url: --backend openai needs --base-url (e.g. http://127.0.0.1:8000/v1)"
    )
    ok = resolve_config(None, None, {**OPENAI, "concurrency": 4})
    assert ok.server.base_url == OPENAI["base_url"] and ok.server.concurrency == 4
    via_options = build_config({"model": {"backend": "openai", "backend_options": {"base_url": "http://h:1/v1"}}})
    assert via_options.server.base_url is None
    assert build_config({"model": {"backend": "openai", "scorer": "niqe"}}).model.scorer == "niqe"  # no VLM call


def test_sam2_settings_need_a_sam2_segmenter():
    for keyword, value in (("sam2_model", "facebook/sam2-hiera-tiny"), ("sam2_preset", "paper"),
                           ("small_regions", "fill")):  # fmt: skip
        for segmenter in ("sam2", "auto"):
            cfg = resolve_config(None, None, {"segmenter": segmenter, keyword: value})
            assert cfg.flat()[keyword] == value
        for segmenter in ("felzenszwalb", "slic", "none"):
            flag = "--" + keyword.replace("_", "-")
            want = f"{flag}: only with --segmenter sam2 or auto, not {segmenter}"
            assert str(error({"segmenter": segmenter, keyword: value})) == want


def test_clip_model_needs_clipiqa():
    assert str(error({"clip_model": "openai/clip"})) == "--clip-model: only with --scorer clipiqa, not mllm"
    assert str(error({"scorer": "niqe", "clip_model": "c/m"})) == "--clip-model: only with --scorer clipiqa, not niqe"
    assert resolve_config(None, None, {"scorer": "clipiqa", "clip_model": "c/m"}).model.clip_model == "c/m"


def test_owl3_mask_needs_the_owl3_backend(tmp_path: Path):
    assert str(error({"owl3_mask": "fixed"})).startswith("--owl3-mask: only with the mPLUG-Owl3 backend")
    assert resolve_config("paper", None, {"owl3_mask": "fixed"}).model.owl3_mask == "fixed"  # hub id: auto
    assert resolve_config(None, None, {"backend": "mplug_owl3", "owl3_mask": "paper"}).model.owl3_mask == "paper"
    error({"backend": "transformers", "model": PAPER_MODEL, "owl3_mask": "paper"})  # explicit backend wins
    error({"scorer": "niqe", "owl3_mask": "paper"}, preset="paper")  # no VLM at all
    folder = tmp_path / "weights"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"model_type": "mplugowl3"}))
    assert resolve_config(None, None, {"model": str(folder), "owl3_mask": "fixed"}).model.owl3_mask == "fixed"


@pytest.mark.parametrize(
    ("standard", "allowed"), [("word", (3, 5, 7, 9)), ("number", (2, 3, 4, 5, 6, 7, 8, 9)), ("sentence", (5,))]
)
def test_levels_allowed_by_the_standard(standard: str, allowed: tuple[int, ...]):
    for k in range(2, 10):
        if k in allowed:
            assert resolve_config(None, None, {"standard": standard, "levels": k}).prompt.levels == k
        else:
            want = f"--levels: the {standard} standard has {', '.join(map(str, allowed))} levels, not {k}"
            assert str(error({"standard": standard, "levels": k})) == want
    for readout in ("qalign", "qbench"):  # closed-set readouts bring their own levels
        assert resolve_config(None, None, {"standard": standard, "levels": 4, "readout": readout}).prompt.levels == 4


def test_standard_files(tmp_path: Path):
    mine = tmp_path / "mine.yaml"
    mine.write_text("levels: []\n")
    assert resolve_config(None, None, {"standard": str(mine), "levels": 4}).prompt.standard == str(mine)
    for name in ("MINE.YML", "mine.json"):  # any case of .json/.yaml/.yml
        (tmp_path / name).write_text("{}")
        assert resolve_config(None, None, {"standard": str(tmp_path / name)}).prompt.standard == str(tmp_path / name)
    assert str(error({"standard": str(tmp_path / "mine.txt")})).startswith("--standard: unknown value")
    assert "no such standard file" in str(error({"standard": str(tmp_path / "other.json")}))
    assert str(error({"standard": "words"})).startswith("--standard: unknown value 'words'; choose one of: word")


def test_detect_backend(tmp_path: Path):
    assert detect_backend(PAPER_MODEL) == "mplug_owl3" and detect_backend("someone/MPLUG-OWL3-tiny") == "mplug_owl3"
    assert detect_backend(QWEN) == "transformers"
    assert detect_backend(PAPER_MODEL, "transformers") == "transformers" and detect_backend(QWEN, "openai") == "openai"
    cases = {"owl": json.dumps({"model_type": "mplugowl3"}), "qwen": json.dumps({"model_type": "qwen2_vl"}),
             "broken": "{not json", "listed": "[1, 2]",
             "mplug-owl3-named": json.dumps({"model_type": "llava"})}  # fmt: skip
    for name, text in cases.items():
        (tmp_path / name).mkdir()
        (tmp_path / name / "config.json").write_text(text)
    assert detect_backend(str(tmp_path / "owl")) == "mplug_owl3"
    for name in ("qwen", "broken", "listed", "mplug-owl3-named"):  # a config.json decides over the name
        assert detect_backend(str(tmp_path / name)) == "transformers", name
    (tmp_path / "bare-mplug-owl3").mkdir()  # no config.json: the name decides
    assert detect_backend(str(tmp_path / "bare-mplug-owl3")) == "mplug_owl3"


# -- local paths ------------------------------------------------------------------------------------------------
def test_looks_local():
    for local in ("/abs/model", "./m", "../m", "~/m", ".\\m", "a\\b", "a/b/c", "C:\\models\\m", "c:/m"):
        assert looks_local(local), local
    for hub in ("Qwen/Qwen2.5-VL-7B-Instruct", "model", "org/name", "C:model"):
        assert not looks_local(hub), hub


def test_local_model_folders_must_exist(tmp_path: Path):
    assert str(error({"model": str(tmp_path / "nope")})) == (
        f"--model: no such model folder: {tmp_path / 'nope'} (give an existing local folder or a hub id)"
    )
    assert resolve_config(None, None, {"model": str(tmp_path)}).model.id == str(tmp_path)
    assert resolve_config(None, None, {"model": "org/not-downloaded"}).model.id == "org/not-downloaded"  # a hub id
    clip = str(error({"scorer": "clipiqa", "clip_model": str(tmp_path / "c")}))
    assert clip.startswith("--clip-model: no such CLIP model folder")
    assert str(error({"sam2_model": "./no-sam2"})).startswith("--sam2-model: no such SAM2 model folder: ./no-sam2")
    assert str(error({"model": ""})).startswith("--model: ")


# -- credentials -------------------------------------------------------------------------------------------------
def test_strip_userinfo():
    assert strip_userinfo("http://user:pw@host:8000/v1") == "http://host:8000/v1"
    assert strip_userinfo("https://u:p@a@host/v1/x") == "https://host/v1/x"  # the last @ ends the user-info
    assert strip_userinfo("http://host:8000/v1") == "http://host:8000/v1"
    assert strip_userinfo("http://host/v1/a@b") == "http://host/v1/a@b"  # an @ in the path is not user-info
    assert strip_userinfo("http://u:p@host") == "http://host"


def test_redact_urls_at_any_depth():
    data = {"base_url": "http://u:p@h/v1", "other": "http://u:p@h/v1", "nested": [{"base_url": "http://k@h2"}],
            "deep": {"server": {"base_url": None}}, "n": 3}  # fmt: skip
    assert redact_urls(data) == {"base_url": "http://h/v1", "other": "http://u:p@h/v1",
                                 "nested": [{"base_url": "http://h2"}], "deep": {"server": {"base_url": None}},
                                 "n": 3}  # fmt: skip


def test_printed_and_recorded_configurations_hold_no_credentials():
    cfg = resolve_config("global", None, {"backend": "openai", "base_url": "http://alice:s3cret@h:8000/v1"})
    assert cfg.to_dict()["server"]["base_url"] == "http://alice:s3cret@h:8000/v1"  # what the client uses
    assert cfg.public_dict()["server"]["base_url"] == "http://h:8000/v1"
    assert "s3cret" not in cfg.to_yaml()
    printed = yaml.safe_load(cfg.to_yaml())
    assert printed["server"]["base_url"] == "http://h:8000/v1" and printed["preset"] == "global"
    assert list(printed) == ["preset", "model", "segmentation", "prompt", "regions", "aggregation", "runtime",
                             "server"]  # fmt: skip


# -- chunk size ------------------------------------------------------------------------------------------------
def test_effective_chunk_size():
    assert resolve_config().effective_chunk_size == 8
    assert resolve_config(None, None, {"chunk_size": 3}).effective_chunk_size == 3
    assert resolve_config(None, None, OPENAI).effective_chunk_size == 8
    assert resolve_config(None, None, {**OPENAI, "concurrency": 32}).effective_chunk_size == 32
    assert resolve_config(None, None, {**OPENAI, "concurrency": 4}).effective_chunk_size == 8
    assert resolve_config(None, None, {**OPENAI, "concurrency": 32, "chunk_size": 2}).effective_chunk_size == 2


# -- layering: defaults < preset < file < options; overrides drop what belonged to the old value -----------------
def test_precedence(tmp_path: Path):
    run = tmp_path / "run.yaml"
    run.write_text("preset: paper\nregions: {min_area: 50}\nruntime: {device: cpu}\n")
    cfg = resolve_config(None, run, {"device": "mps", "crop_mode": "mask"})
    assert cfg.preset == "paper" and cfg.model.id == PAPER_MODEL and cfg.prompt.readout == "int"  # the file's preset
    assert cfg.regions.min_area == 50 and cfg.runtime.device == "mps" and cfg.regions.crop_mode == "mask"
    assert cfg.runtime.dtype == "float16"  # untouched preset value
    named = resolve_config("global", run, {})
    assert named.preset == "global" and named.aggregation.method == "global" and named.regions.min_area == 50
    assert resolve_config(None, run, {"min_area": None}).regions.min_area == 50  # None: not given


def test_null_in_a_file_is_a_value(tmp_path: Path):
    run = tmp_path / "run.yaml"
    run.write_text("runtime: {max_pixels: null}\n")
    assert resolve_config(None, run).runtime.max_pixels is None


def test_preset_errors(tmp_path: Path):
    err = error({}, preset="papers")
    names = "paper, paper-code, recommended, global, qalign"
    assert str(err) == f"--preset: unknown preset 'papers'; choose one of: {names}"
    run = tmp_path / "run.yaml"
    run.write_text("preset: nope\n")
    with pytest.raises(UsageError) as exc:
        resolve_config(None, run)
    assert str(exc.value).startswith(f"--config {run}: preset: unknown preset 'nope'")
    assert resolve_config("global", run).preset == "global"  # --preset wins over the file's bad one


def test_file_errors_name_the_file(tmp_path: Path):
    run = tmp_path / "run.yaml"
    run.write_text("regions: {crop_mode: nope}\n")
    with pytest.raises(UsageError) as exc:
        resolve_config(None, run)
    assert str(exc.value) == f"--config {run}: regions.crop_mode: unknown value 'nope'; choose one of: bbox, mask"
    assert exc.value.setting == "regions.crop_mode"
    with pytest.raises(ConfigError) as opt:  # an option's error names the flag, not the file
        resolve_config(None, None, {"crop_mode": "nope"})
    assert "--config" not in str(opt.value)


def test_read_config_file(tmp_path: Path):
    empty = tmp_path / "empty.yaml"
    empty.write_text("")
    assert read_config_file(empty) == {}
    record = tmp_path / "record.json"
    record.write_text(json.dumps({"scorer": "mllm", "pipeline": {"regions": {"min_area": 7}}}))
    assert read_config_file(record) == {"regions": {"min_area": 7}}
    listed = tmp_path / "list.yaml"
    listed.write_text("- a\n- b\n")
    broken = tmp_path / "broken.yaml"
    broken.write_text("regions: {min_area: [\n")
    for path, text in ((listed, "must hold a mapping of settings"), (broken, "is not valid YAML"),
                       (tmp_path / "absent.yaml", "cannot read")):  # fmt: skip
        with pytest.raises(UsageError) as exc:
            read_config_file(path)
        assert str(exc.value).startswith(f"--config: {path}" if text != "cannot read" else "--config: cannot read")
        assert text in str(exc.value) and exc.value.setting == "--config"
    with pytest.raises(UsageError) as exc:
        read_config_file(tmp_path / "absent.yaml")
    assert str(exc.value) == f"--config: cannot read {tmp_path / 'absent.yaml'}: No such file or directory"


def test_overriding_the_segmenter_drops_the_presets_sam2_options(tmp_path: Path):
    run = tmp_path / "run.yaml"
    run.write_text(yaml.safe_dump({"segmentation": {"segmenter": "sam2", "sam2_model": "org/sam2",
                                                    "sam2_preset": "sam2-default", "small_regions": "fill",
                                                    "segmenter_options": {"points_per_side": 2}}}))  # fmt: skip
    felz = resolve_config(None, run, {"segmenter": "felzenszwalb"}).segmentation
    assert (felz.sam2_model, felz.sam2_preset, felz.small_regions, felz.segmenter_options) == (None, None, None, {})
    same = resolve_config(None, run, {"segmenter": "sam2"}).segmentation  # the same value: nothing dropped
    assert (same.sam2_model, same.sam2_preset, same.small_regions) == ("org/sam2", "sam2-default", "fill")
    assert same.segmenter_options == {"points_per_side": 2}
    auto = resolve_config(None, run, {"segmenter": "auto", "sam2_preset": "paper"}).segmentation
    assert auto.sam2_preset == "paper" and auto.sam2_model is None  # given with it: kept; the others dropped


def test_other_dependent_settings_are_dropped():
    assert resolve_config("paper", None, {"standard": "number"}).prompt.levels is None  # the standard's own count
    assert resolve_config("paper", None, {"standard": "number", "levels": 9}).prompt.levels == 9
    assert resolve_config("paper", None, {"standard": "word"}).prompt.levels == 7  # same standard: kept
    base = resolve_config("paper", None, {"owl3_mask": "fixed"}).to_dict()
    assert merge(base, {"model": {"backend": "mplug_owl3"}}).model.owl3_mask is None
    clip = resolve_config(None, None, {"scorer": "clipiqa", "clip_model": "c/m"}).to_dict()
    assert merge(clip, {"model": {"scorer": "niqe"}}).model.clip_model is None
    assert merge(clip, {"model": {"scorer": "clipiqa"}}).model.clip_model == "c/m"


def test_merge_replaces_a_non_mapping_group():
    base = PipelineConfig().to_dict()
    assert merge(base, {"preset": "x"}).preset == "x"
    with pytest.raises(ConfigError, match="^regions: expected a mapping"):
        merge(base, {"regions": "bbox"})


def test_replace_keyword_overrides():
    cfg = resolve_config("global")
    changed = cfg.replace(crop_mode="mask", levels=None, model="org/m")
    assert changed.regions.crop_mode == "mask" and changed.prompt.levels == 7 and changed.model.id == "org/m"
    assert changed.preset == "global" and cfg.regions.crop_mode == "bbox"  # a copy
    with pytest.raises(ConfigError, match="^crop_mode=: unknown value"):
        cfg.replace(crop_mode="x")
    with pytest.raises(ConfigError, match="^--crop-mode: unknown value"):
        cfg.replace("flag", crop_mode="x")


def test_coerce_config_forms():
    cfg = resolve_config("paper", None, {"device": "cpu"}, "keyword")
    assert coerce_config(cfg) is cfg
    assert coerce_config({"preset": "paper", "device": "cpu"}) == cfg
    assert coerce_config(cfg.to_dict()) == cfg and coerce_config({"pipeline": cfg.to_dict(), "model": "x"}) == cfg
    assert coerce_config({"device": "cpu"}).preset == "recommended"
    with pytest.raises(ConfigError, match="^crop_mode=: "):
        coerce_config({"crop_mode": "x"})
    with pytest.raises(ConfigError, match="^regions.crop_mode: "):
        coerce_config({"regions": {"crop_mode": "x"}})
    assert build_config(None) == PipelineConfig() and build_config(cfg) is cfg


def test_from_preset_keeps_every_override(tmp_path: Path):
    """Keyword overrides of a preset (what DogIQA.from_preset passes on) all land in the configuration."""
    overrides = {"sam2_model": str(tmp_path), "sam2_preset": "sam2-default", "small_regions": "fill",
                 "segmenter_options": {"points_per_side": 2}, "device": "cpu", "dtype": "bfloat16", "c_max": 40.0,
                 "min_area": 10, "crop_mode": "mask", "revision": "r1"}  # fmt: skip
    flat = resolve_config("paper", None, overrides, "keyword").flat()
    assert {k: flat[k] for k in overrides} == overrides
    assert flat["segmenter"] == "sam2" and flat["model"] == PAPER_MODEL
    assert PAPER_SAM2 == "facebook/sam2-hiera-large"
