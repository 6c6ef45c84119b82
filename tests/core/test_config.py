"""The pipeline configuration: presets are configurations, records carry them, and they rebuild the pipeline."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dogiqa.config import (
    DEFAULT_MAX_FILE_BYTES,
    DEFAULT_MAX_PIXELS,
    ConfigError,
    PipelineConfig,
    build_config,
    coerce_config,
    resolve_config,
)
from dogiqa.errors import UsageError
from dogiqa.presets import PRESETS, get_preset_config


def test_every_preset_is_a_valid_frozen_configuration():
    for name in PRESETS:
        cfg = get_preset_config(name)
        assert cfg.preset == name
        assert build_config(cfg.to_dict()) == cfg  # its dump is a valid configuration again
        with pytest.raises(Exception, match="frozen"):
            cfg.regions.crop_mode = "mask"  # type: ignore[misc]


def test_every_setting_has_its_own_keyword_and_flag():
    from dogiqa.config import GROUPS, KEYWORDS, flag_of

    paths = [f"{g}.{name}" for g, cls in GROUPS.items() for name in cls.model_fields]
    assert len(KEYWORDS) == len(paths) + 1  # + preset; no two fields share a keyword
    flags = [flag_of(p) for p in paths if flag_of(p)]
    assert len(flags) == len(set(flags))


def test_errors_name_the_setting_as_written():
    for style, name in (("flag", "--crop-mode"), ("keyword", "crop_mode="), ("yaml", "regions.crop_mode")):
        with pytest.raises(ConfigError) as exc:
            resolve_config("recommended", None, {"crop_mode": "nope"}, style)  # type: ignore[arg-type]
        assert str(exc.value).startswith(f"{name}: ") and "bbox, mask" in str(exc.value)
        assert exc.value.setting == name and isinstance(exc.value, UsageError)


def test_yaml_file_then_options(tmp_path: Path):
    run = tmp_path / "run.yaml"
    run.write_text("preset: global\nregions: {min_area: 50}\nprompt: {readout: int}\n", encoding="utf-8")
    cfg = resolve_config(None, run, {"readout": "expected"})
    assert cfg.preset == "global" and cfg.aggregation.method == "global"  # the file's preset
    assert cfg.regions.min_area == 50  # the file over the preset
    assert cfg.prompt.readout == "expected"  # the option over the file
    assert resolve_config("paper", run, {}).model.id == get_preset_config("paper").model.id  # --preset wins


def test_overriding_a_setting_drops_what_belonged_to_the_old_one():
    cfg = resolve_config("paper", None, {"standard": "sentence", "segmenter": "felzenszwalb"})
    assert cfg.prompt.levels is None  # the sentence standard's own level count, not the preset's 7
    with pytest.raises(ConfigError, match="--levels"):
        resolve_config("paper", None, {"standard": "sentence", "levels": 7})


def test_dump_forms_are_interchangeable():
    cfg = resolve_config("recommended", None, {"segmenter": "felzenszwalb", "min_area": 10})
    flat = {"preset": "recommended", "segmenter": "felzenszwalb", "min_area": 10}
    assert coerce_config(flat) == cfg == coerce_config(cfg.to_dict()) == coerce_config({"pipeline": cfg.to_dict()})
    assert PipelineConfig.model_validate(json.loads(json.dumps(cfg.to_dict()))) == cfg


def test_caps_default_to_the_loader_defaults():
    from dogiqa import io

    assert (DEFAULT_MAX_PIXELS, DEFAULT_MAX_FILE_BYTES) == (io.DEFAULT_MAX_PIXELS, io.DEFAULT_MAX_FILE_BYTES)


def test_sam2_choices_match_the_segmenter():
    from dogiqa.config import choices_of
    from dogiqa.segmenters.sam2 import PRESETS as SAM2_PRESETS
    from dogiqa.segmenters.sam2 import SMALL_REGION_MODES

    assert set(choices_of("segmentation.sam2_preset")) == set(SAM2_PRESETS)
    assert set(choices_of("segmentation.small_regions")) == set(SMALL_REGION_MODES)


# -- the reproducibility guarantee: a record's config rebuilds a pipeline giving the same scores ---------------
@pytest.fixture(scope="module")
def tiny_models(tmp_path_factory: pytest.TempPathFactory, tiny_qwen2vl_dir: Path) -> dict[str, Path]:
    from dogiqa.testing.sam2_tiny import build_sam2
    from dogiqa.testing.tiny_owl3 import build_tiny_mplug_owl3

    root = tmp_path_factory.mktemp("roundtrip")
    return {
        "qwen": tiny_qwen2vl_dir,
        "owl3": build_tiny_mplug_owl3(root / "owl3", seed=1, digit_scale=30.0),
        "sam2": build_sam2(root / "sam2"),
    }


def _comparable(record: dict) -> dict:
    return {k: v for k, v in record.items() if k != "timings"}


@pytest.mark.parametrize("preset", list(PRESETS))
def test_record_config_rebuilds_the_same_pipeline(preset: str, tiny_models: dict[str, Path], tmp_path: Path):
    from dogiqa.api import DogIQA
    from dogiqa.testing.images import make_image

    base = get_preset_config(preset)
    model = tiny_models["owl3" if "mplug" in base.model.id.lower() else "qwen"]
    overrides: dict = {"model": str(model), "device": "cpu"}
    if base.segmentation.segmenter in ("sam2", "auto"):
        overrides["sam2_model"] = str(tiny_models["sam2"])
        overrides["segmenter_options"] = {"points_per_side": 2}  # fewer prompts: seconds on a CPU
    image = tmp_path / "x.png"
    make_image(96, 72, seed=5).save(image)
    first = DogIQA.from_preset(preset, **overrides).score(image).to_dict()
    assert first["error"] is None and first["score"] is not None
    assert first["config"]["pipeline"] == resolve_config(preset, None, overrides, "keyword").to_dict()
    config = json.loads(json.dumps(first["config"]))  # as read back from a JSONL file
    again = DogIQA.from_config(config).score(image).to_dict()
    assert _comparable(again) == _comparable(first)
    saved = tmp_path / "record-config.json"  # also usable as `--config` (JSON is YAML)
    saved.write_text(json.dumps(first["config"]), encoding="utf-8")
    assert resolve_config(None, saved, {}).to_dict() == first["config"]["pipeline"]
