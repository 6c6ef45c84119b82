"""DogIQA's glue, observed from outside: what the backend loader and the segmenter are built with, which crops go
to the model with which prompt, what each record holds, and that one image's failure stays with that image.

The model is the tiny brightness Qwen2-VL behind the call recorder of tests/brightness_vlm.py (answer =
round(8 * brightness)); expected values are computed by hand from that rule and the paper's formula
S = 0.5 s_g + 0.5 S_local + N K / c_max.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from brightness_vlm import BrightnessVLM, DictStore, HalvesSegmenter, approx, grey, t_of, two_tone
from PIL import Image

import dogiqa.backends
import dogiqa.segmenters.sam2
from dogiqa.api import DogIQA
from dogiqa.errors import UsageError
from dogiqa.scorers.base import CropScore
from dogiqa.scorers.mllm import MLLMScorer
from dogiqa.testing.sensitive import expected_level, level_probs

QUERY_START = "Please evaluate the quality"


def indent(after_image: str) -> int:
    return len(after_image) - len(after_image.lstrip("\n").lstrip(" ")) - 1


class Loader:
    """Stands in for ``dogiqa.backends.load_backend``: records what it is asked for, returns a BrightnessVLM."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, dict]] = []
        self.vlm: BrightnessVLM | None = None

    def __call__(self, model: str, backend: str = "auto", **kwargs: object) -> BrightnessVLM:
        self.calls.append((model, backend, kwargs))
        self.vlm = BrightnessVLM(model_id=f"{model}@{kwargs.get('revision')}")
        return self.vlm


@pytest.fixture
def loader(monkeypatch: pytest.MonkeyPatch) -> Loader:
    fake = Loader()
    monkeypatch.setattr(dogiqa.backends, "load_backend", fake)
    return fake


class RecordingSam2:
    """Stands in for the SAM 2 segmenter: records its options, cuts the image into left/right halves."""

    built: list[dict] = []
    name = "sam2"

    def __init__(self, model: str = "default", preset: str = "paper", small_regions: str = "skip",
                 device: str | None = "cpu", **overrides: object):  # fmt: skip
        RecordingSam2.built.append(dict(model=model, preset=preset, small_regions=small_regions, device=device,
                                        **overrides))  # fmt: skip

    def segment(self, image: Image.Image) -> list[np.ndarray]:
        return HalvesSegmenter().segment(image)


@pytest.fixture
def sam2(monkeypatch: pytest.MonkeyPatch) -> type[RecordingSam2]:
    RecordingSam2.built = []
    monkeypatch.setattr(dogiqa.segmenters.sam2, "Sam2Segmenter", RecordingSam2)
    return RecordingSam2


def scorer_pipeline(vlm: BrightnessVLM | None = None, readout: str = "int", levels: int = 7, **kw: object) -> DogIQA:
    scorer = MLLMScorer(vlm or BrightnessVLM(), "word", readout, levels,
                        invalid_as_one=bool(kw.pop("invalid_as_one", False)),
                        paper_whitespace=bool(kw.pop("paper_whitespace", False)))  # fmt: skip
    kw.setdefault("segmenter", HalvesSegmenter())
    return DogIQA(scorer=scorer, **kw)  # type: ignore[arg-type]


def comparable(record: object) -> dict:
    return {k: v for k, v in record.to_dict().items() if k != "timings"}  # type: ignore[attr-defined]


# -- configuration -> what is built ---------------------------------------------------------------------------
def test_every_model_setting_reaches_the_backend_loader_and_the_record(loader: Loader):
    iqa = DogIQA(model="org/vlm", revision="r1", device="cpu", dtype="bfloat16", batch_size=3, max_batch_tokens=999,
                 prefix_cache=True, trust_remote_code=True, backend_options={"knob": 5}, standard="number", levels=5,
                 preprocess_workers=2, readout="int", aggregation="code", min_area=7, crop_mode="mask")  # fmt: skip
    [(model, backend, kw)] = loader.calls
    assert (model, backend) == ("org/vlm", "auto")
    assert {k: kw.get(k) for k in ("device", "dtype", "batch_size", "max_batch_tokens", "prefix_cache", "revision",
                                   "trust_remote_code", "knob", "preprocess_workers")} == {
        "device": "cpu", "dtype": "bfloat16", "batch_size": 3, "max_batch_tokens": 999, "prefix_cache": True,
        "revision": "r1", "trust_remote_code": True, "knob": 5, "preprocess_workers": 2}  # fmt: skip
    record = iqa.score(grey(160))
    assert record.error is None and record.global_raw == "5" and record.score == approx(5 + 0.1 + 0.5 * 5)
    [(prompt, _, cands)] = loader.vlm.calls  # global view and whole-image region: the same crop, asked once
    assert cands == ["1", "2", "3", "4", "5"] and "[1,2,3,4,5]" in prompt.after_image  # the number standard, K = 5
    pipeline = record.config.pop("pipeline")
    assert record.config == {"scorer": "mllm", "model": "org/vlm@r1", "standard": "number", "levels": 5,
                             "readout": "int", "segmenter": "none", "aggregation": "code", "min_area": 7,
                             "crop_mode": "mask"}  # fmt: skip
    assert pipeline["model"]["id"] == "org/vlm" and pipeline["runtime"]["dtype"] == "bfloat16"
    assert pipeline["regions"] == {"min_area": 7, "crop_mode": "mask"}


def test_a_record_config_rebuilds_the_same_pipeline(loader: Loader):
    first = DogIQA(model="org/vlm", revision="r2", device="cpu", dtype="float32", readout="expected", levels=9,
                   aggregation="paper", c_max=10).score(two_tone(40, 200))  # fmt: skip
    again = DogIQA.from_config(first.config).score(two_tone(40, 200))
    assert loader.calls[0] == loader.calls[1] and comparable(again) == comparable(first)
    t = t_of(120)  # one region (no segmenter): the whole image, asked once with the global view
    assert first.score == approx(0.5 * expected_level(t, 9) * 2 + 1 * 9 / 10)


def test_trust_remote_code_off_is_not_sent(loader: Loader):
    DogIQA(model="org/vlm", aggregation="global")
    kw = loader.calls[0][2]
    assert kw.get("trust_remote_code") is None and kw.get("revision") is None


def test_the_paper_preset_end_to_end_with_sam2_options(loader: Loader, sam2: type[RecordingSam2], tmp_path: Path):
    (tmp_path / "sam2").mkdir()
    iqa = DogIQA.from_preset("paper", model="org/mplug-owl3-tiny", device="cpu", sam2_model=str(tmp_path / "sam2"),
                             sam2_preset="sam2-default", small_regions="fill",
                             segmenter_options={"points_per_side": 2})  # fmt: skip
    assert sam2.built == [{"model": str(tmp_path / "sam2"), "preset": "sam2-default", "small_regions": "fill",
                           "device": "cpu", "points_per_side": 2}]  # fmt: skip
    [(model, _, kw)] = loader.calls
    assert model == "org/mplug-owl3-tiny" and kw["dtype"] == "float16" and kw["device"] == "cpu"
    r = iqa.score(two_tone(0, 200))  # left half answers "0": invalid, scored 1 by the paper's fallback
    assert r.error is None and r.global_raw == "3" and [g.raw for g in r.regions] == ["0", "6"]
    assert [g.score for g in r.regions] == [1.0, 6.0] and r.invalid == 1
    assert r.score == approx(0.5 * 3 + 0.5 * 3.5 + 2 * 7 / 71)
    calls = {indent(p.after_image): ys for p, ys, _ in loader.vlm.calls}  # global 20 spaces, regions 24
    assert calls == {20: approx([100 / 255]), 24: approx([0.0, 200 / 255])}
    assert r.config["segmenter"] == "sam2" and r.config["readout"] == "int"


def test_from_preset_passes_objects_cache_and_masks_through(sam2: type[RecordingSam2]):
    store = DictStore()
    vlm = BrightnessVLM()
    scorer = MLLMScorer(vlm, "word", "int", 7, cache=store)
    iqa = DogIQA.from_preset("recommended", scorer=scorer, segmenter=HalvesSegmenter(), keep_masks=True,
                             aggregation_options={"c_max": 20})  # fmt: skip
    r = iqa.score(two_tone(40, 200))
    assert sam2.built == [] and r.config["segmenter"] == "halves"
    assert r.score == approx(0.5 * 4 + 0.5 * 3.5 + 2 * 7 / 20)
    assert [m.sum() for m in r.masks] == [56 * 112, 56 * 112] and r.masks[0][:, :56].all()
    assert r.image is not None and r.image.size == (112, 112)
    plain = DogIQA.from_preset("recommended", scorer=scorer, segmenter=HalvesSegmenter()).score(two_tone(40, 200))
    assert plain.masks is None and plain.image is None


def test_legacy_option_dicts_map_to_settings_and_unknown_ones_are_refused(loader: Loader):
    iqa = DogIQA(model="org/vlm", scorer_options={"device": "cpu", "batch_size": 4}, aggregation_options={"c_max": 9})
    assert loader.calls[0][2]["device"] == "cpu" and loader.calls[0][2]["batch_size"] == 4
    assert iqa.pipeline_config.aggregation.c_max == 9
    with pytest.raises(UsageError, match="scorer_options: unknown option 'temperature'"):
        DogIQA(model="org/vlm", scorer_options={"temperature": 0})
    with pytest.raises(UsageError, match="aggregation_options: unknown option 'alpha'"):
        DogIQA.from_preset("global", model="org/vlm", aggregation_options={"alpha": 1})


# -- crops, prompts and records ---------------------------------------------------------------------------------
def test_region_records_carry_their_distribution_and_the_uncertainty_is_propagated():
    r = scorer_pipeline(readout="expected").score(two_tone(40, 200))
    tg, tl, tr = t_of(120), t_of(40), t_of(200)

    def var(t: float) -> float:
        m = expected_level(t, 7)
        return sum(p * (k - m) ** 2 for k, p in enumerate(level_probs(t, 7), start=1))

    assert r.global_score == approx(expected_level(tg, 7))
    assert r.global_probs == approx(level_probs(tg, 7))
    for rec, t in zip(r.regions, (tl, tr), strict=True):
        assert rec.score == approx(expected_level(t, 7)) and rec.probs == approx(level_probs(t, 7))
        assert rec.variance == approx(var(t))
        assert rec.entropy == approx(-sum(p * math.log(p) for p in level_probs(t, 7)))
    assert [g.weight for g in r.regions] == [6272, 6272] and [g.index for g in r.regions] == [0, 1]
    # paper weights: Var = 0.25 Var_g + 0.25 * sum((w_i / W)^2 Var_i), equal halves
    assert r.uncertainty == approx(math.sqrt(0.25 * var(tg) + 0.25 * 0.25 * (var(tl) + var(tr))))


def test_region_crops_are_asked_with_the_local_prompt_and_the_global_view_with_the_global_one():
    vlm = BrightnessVLM()
    r = scorer_pipeline(vlm, paper_whitespace=True, crop_mode="mask").score(two_tone(40, 200))
    assert r.error is None
    calls = {indent(p.after_image): ys for p, ys, _ in vlm.calls}
    # mask mode: each 56-wide half crop is its own box, nothing blacked out inside it
    assert calls == {20: approx([120 / 255]), 24: approx([40 / 255, 200 / 255])}


def test_crop_mode_mask_blacks_out_what_is_outside_the_region():
    class Diagonal:
        name = "diagonal"

        def segment(self, image: Image.Image) -> list[np.ndarray]:
            yy, xx = np.mgrid[: image.height, : image.width]
            return [xx <= yy]

    bbox, mask = BrightnessVLM(), BrightnessVLM()
    scorer_pipeline(bbox, segmenter=Diagonal()).score(grey(200))
    scorer_pipeline(mask, segmenter=Diagonal(), crop_mode="mask").score(grey(200))
    local = [ys for _, ys, _ in bbox.calls]
    # the global view and the lower triangle (its box is the whole image) are one crop, asked once
    assert local == [approx([200 / 255] * 2)]
    mask_ys = mask.calls[0][1][1:]
    inside = [(112 * 113 / 2) / 112**2, (111 * 112 / 2) / 111**2]  # each triangle's share of its box
    assert mask_ys == approx([200 / 255 * f for f in inside])


def test_min_area_decides_the_regions():
    vlm = BrightnessVLM()
    kept = scorer_pipeline(vlm, min_area=6272).score(two_tone(40, 200))
    dropped = scorer_pipeline(vlm, min_area=6273).score(two_tone(40, 200))
    assert [g.kind for g in kept.regions] == ["mask", "mask"] and kept.config["min_area"] == 6272
    assert [g.kind for g in dropped.regions] == ["whole"] and dropped.regions[0].raw == "4"
    assert dropped.score == approx(0.5 * 4 + 0.5 * 4 + 1 * 7 / 71)


def test_local_only_aggregation_never_asks_the_global_view():
    vlm = BrightnessVLM()
    r = scorer_pipeline(vlm, aggregation="local").score(two_tone(40, 200))
    assert vlm.asked == 2 and r.global_score is None and r.global_raw is None
    assert r.score == approx(3.5)


def test_a_lower_is_better_scorer_turns_the_count_term_around():
    class Darkness:
        name, higher_is_better, score_range = "darkness", False, (0.0, 10.0)

        def score_crops(self, crops):
            return [CropScore(score=10 * (1 - np.asarray(c.image).mean() / 255)) for c in crops]

    r = DogIQA(scorer=Darkness(), segmenter=HalvesSegmenter(), aggregation="paper").score(two_tone(0, 255))
    assert r.global_score == approx(5.0) and r.local_score == approx(5.0)
    assert r.score == approx(0.5 * 5 + 0.5 * 5 - 2 * 7 / 71)


# -- failures stay with their image -------------------------------------------------------------------------------
def _images(tmp_path: Path) -> list[object]:
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n not a png")
    return [two_tone(40, 200), bad, two_tone(200, 120), grey(10), two_tone(120, 40)]


@pytest.mark.parametrize("staged", [False, True])
def test_one_images_failures_do_not_touch_its_chunk_neighbours(tmp_path: Path, staged: bool):
    images = _images(tmp_path)
    solo = scorer_pipeline(chunk_size=5, staged=staged)
    alone = [comparable(solo.score(im)) for im in (images[0], images[2], images[4])]
    vlm = BrightnessVLM(raise_below=0.1)  # a call with the dark image fails as a whole: each image is retried alone
    out = list(scorer_pipeline(vlm, chunk_size=5, staged=staged).score_many(images))
    assert [r.path for r in out][1] == str(images[1])
    assert out[1].error.startswith(f"{images[1]}: loading failed")
    assert "scoring failed: RuntimeError: the batch failed" in out[3].error and out[3].regions == []
    assert [comparable(out[i]) | {"path": None, "key": None} for i in (0, 2, 4)] == [
        a | {"path": None, "key": None} for a in alone]  # fmt: skip
    assert [out[i].score for i in (0, 2, 4)] == approx([0.5 * 4 + 0.5 * 3.5 + 2 * 7 / 71,
                                                               0.5 * 5 + 0.5 * 5 + 2 * 7 / 71,
                                                               0.5 * 3 + 0.5 * 2.5 + 2 * 7 / 71])  # fmt: skip


def test_a_scorer_that_miscounts_is_retried_per_image():
    class Miscount:
        name, higher_is_better, score_range = "miscount", True, (1.0, 7.0)

        def __init__(self):
            self.calls = []

        def score_crops(self, crops):
            self.calls.append(len(crops))
            extra = [CropScore(score=1.0)] if len(crops) > 3 else []
            return [CropScore(score=4.0) for _ in crops] + extra

    scorer = Miscount()
    out = list(DogIQA(scorer=scorer, segmenter=HalvesSegmenter(), chunk_size=2, staged=False, aggregation="code")
               .score_many([grey(10), grey(20)]))  # fmt: skip
    assert scorer.calls == [6, 3, 3] and [r.score for r in out] == approx([4 + 0.2 + 2] * 2)
    short = list(DogIQA(scorer=_Short(), aggregation="global").score_many([grey(10)]))
    assert "scoring failed: RuntimeError: the scorer returned 0 scores for 1 crops" in short[0].error


class _Short:
    name, higher_is_better, score_range = "short", True, (1.0, 7.0)

    def score_crops(self, crops):
        return []


def test_an_aggregation_failure_is_that_images_error_and_a_missing_score_is_explained():
    class Odd:
        """A scorer with a bug for small images (a text score) and no score for mid-size ones."""

        name, higher_is_better, score_range = "odd", True, (1.0, 7.0)

        def score_crops(self, crops):
            return [CropScore(score={30: "3", 40: None}.get(c.image.width, 3.0)) for c in crops]

    out = list(DogIQA(scorer=Odd(), aggregation="global", staged=False, chunk_size=3)
               .score_many([grey(1, (30, 30)), grey(1, (40, 40)), grey(1)]))  # fmt: skip
    assert out[0].score is None and ": aggregation failed: TypeError: " in out[0].error
    assert out[1].score is None
    assert out[1].error.endswith("no final score: 1 crop(s) backend/scorer call failed, e.g. -")
    assert out[2].score == 3.0 and out[2].error is None


def test_segmentation_errors_name_the_image_and_the_stage():
    class Broken:
        name = "broken"

        def segment(self, image):
            raise ValueError("no masks today\nsecond line")

    class WrongShape:
        name = "wrong"

        def segment(self, image):
            return [np.ones((3, 3), bool)]

    r = DogIQA(scorer=MLLMScorer(BrightnessVLM(), "word", "int", 7), segmenter=Broken()).score(grey(100))
    assert r.error.endswith(": segmentation failed: ValueError: no masks today second line")
    assert r.score is None and r.regions == [] and r.global_score is None
    w = DogIQA(scorer=MLLMScorer(BrightnessVLM(), "word", "int", 7), segmenter=WrongShape()).score(grey(100))
    assert ": segmentation failed: ValueError: mask 0 has shape (3, 3)" in w.error


def test_records_say_how_long_each_stage_took_and_how_large_the_image_is():
    r = scorer_pipeline(staged=False).score(grey(100, (80, 60)))
    assert set(r.timings) >= {"load_s", "segment_s", "score_s"} and all(v >= 0 for v in r.timings.values())
    assert (r.width, r.height, r.n_masks) == (80, 60, 2)


def test_progress_hears_each_image_once_also_when_it_fails(tmp_path: Path):
    events: list[tuple[str, int]] = []
    images = _images(tmp_path)
    hook = lambda s, n: events.append((s, n))  # noqa: E731
    out = list(scorer_pipeline(chunk_size=2, staged=False).score_many(images, progress=hook))
    assert len(out) == 5
    assert events == [("prepared", 1)] * 2 + [("scored", 2)] + [("prepared", 1)] * 2 + [("scored", 2)] + [
        ("prepared", 1), ("scored", 1)]  # fmt: skip
    events.clear()
    list(scorer_pipeline(chunk_size=2, staged=False, aggregation="global").score_many(images[:3], progress=hook))
    assert events == [("prepared", 1)] * 2 + [("scored", 2), ("prepared", 1), ("scored", 1)]


# -- more settings that must reach the work -----------------------------------------------------------------------
@pytest.mark.parametrize("readout", ["int", "expected"])
def test_staged_and_serial_runs_agree_with_a_preparing_backend_and_k_9(readout: str):
    from brightness_vlm import PreparingBrightnessVLM

    images = [two_tone(40, 255), grey(230), two_tone(255, 120)]
    serial = list(scorer_pipeline(readout=readout, levels=9, staged=False, chunk_size=2).score_many(images))
    vlm = PreparingBrightnessVLM()
    vlm.run = lambda *a, **k: pytest.fail("the staged pipeline re-ran crops it had prepared")  # type: ignore[method-assign]
    staged = list(scorer_pipeline(vlm, readout=readout, levels=9, staged=True, chunk_size=2).score_many(images))
    assert vlm.prepared and [comparable(r) | {"config": None} for r in staged] == [
        comparable(r) | {"config": None} for r in serial]  # fmt: skip
    if readout == "int":
        assert [g.raw for g in staged[0].regions] == ["1", "8"]  # "8" is a level of K = 9
        assert staged[0].score == approx(0.5 * 5 + 0.5 * 4.5 + 2 * 9 / 71)  # global t = 8 * 147.5 / 255
    else:  # the distribution of each region reaches its record and the uncertainty
        probs = level_probs(8.0, 9)
        assert staged[0].regions[1].probs == approx(probs)
        assert staged[0].regions[1].variance == approx(
            sum(p * (k - expected_level(8.0, 9)) ** 2 for k, p in enumerate(probs, start=1)))  # fmt: skip
        assert staged[0].uncertainty is not None and staged[0].uncertainty > 0


def test_a_scorer_without_levels_uses_the_configured_k_in_the_paper_count_term():
    class Flat:
        name, higher_is_better, score_range = "flat", True, (1.0, 5.0)

        def score_crops(self, crops):
            return [CropScore(score=2.0) for _ in crops]

    r = DogIQA(scorer=Flat(), segmenter=HalvesSegmenter(), levels=5).score(grey(50))
    assert r.config["levels"] == 5 and r.config["readout"] is None and r.config["scorer"] == "flat"
    assert r.score == pytest.approx(0.5 * 2 + 0.5 * 2 + 2 * 5 / 71)


def test_from_config_passes_the_store_and_keep_masks(loader: Loader):
    store = DictStore()
    iqa = DogIQA.from_config({"model": "org/vlm", "segmenter": "none"}, cache=store, keep_masks=True)
    r = iqa.score(grey(120, (40, 30)))
    assert len(store.data) == 1 and r.masks is not None and r.masks[0].shape == (30, 40) and r.masks[0].all()
    again = DogIQA.from_config(r.config, cache=store).score(grey(120, (40, 30)))
    assert loader.vlm.asked == 0 and again.score == r.score and again.masks is None


def test_the_same_pixels_under_two_names_are_asked_once_with_a_store(tmp_path: Path):
    for name in ("a.png", "b.png"):
        two_tone(40, 200).save(tmp_path / name)
    vlm = BrightnessVLM()
    iqa = DogIQA(scorer=MLLMScorer(vlm, "word", "int", 7, cache=DictStore()), segmenter=HalvesSegmenter())
    a, b = iqa.score_many([tmp_path / "a.png", tmp_path / "b.png"])
    assert vlm.asked == 3 and comparable(a) | {"path": "", "key": ""} == comparable(b) | {"path": "", "key": ""}


def test_the_file_size_cap_refuses_a_large_file_only(tmp_path: Path):
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(tmp_path / "noisy.png")
    grey(90, (8, 8)).save(tmp_path / "small.png")
    assert (tmp_path / "noisy.png").stat().st_size > 4000 > (tmp_path / "small.png").stat().st_size
    out = list(scorer_pipeline(aggregation="global", max_file_bytes=4000).score_many(
        [tmp_path / "noisy.png", tmp_path / "small.png"]))  # fmt: skip
    assert out[0].score is None and out[0].error.startswith(f"{tmp_path / 'noisy.png'}: loading failed")
    assert out[1].global_raw == "3" and out[1].error is None


def test_server_and_mplug_owl3_settings_reach_the_backend_loader(loader: Loader):
    DogIQA(model="served-vlm", backend="openai", base_url="http://127.0.0.1:9/v1", concurrency=3, max_retries=2)
    DogIQA(model="org/mplug-owl3-tiny", owl3_mask="fixed")
    (m1, b1, kw1), (m2, b2, kw2) = loader.calls
    assert (m1, b1, kw1["base_url"], kw1["concurrency"], kw1["max_retries"]) == (
        "served-vlm", "openai", "http://127.0.0.1:9/v1", 3, 2)  # fmt: skip
    assert (m2, b2, kw2["attention_mask"]) == ("org/mplug-owl3-tiny", "auto", "fixed")


def test_a_classical_scorer_is_built_with_its_model_device_and_batch(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    import dogiqa.scorers.clipiqa

    built: list[dict] = []

    class RecordingClip:
        name, higher_is_better, score_range = "clipiqa", True, (0.0, 1.0)

        def __init__(self, model: str = "hub/clip", device: str = "cpu", batch_size: int = 32):
            built.append({"model": model, "device": device, "batch_size": batch_size})

        def score_crops(self, crops):
            return [CropScore(score=0.25) for _ in crops]

    monkeypatch.setattr(dogiqa.scorers.clipiqa, "CLIPIQAScorer", RecordingClip)
    (tmp_path / "clip").mkdir()
    r = DogIQA(scorer="clipiqa", scorer_options={"model": str(tmp_path / "clip"), "batch_size": 5}, device="cpu",
               aggregation="global").score(grey(10))  # fmt: skip
    assert built == [{"model": str(tmp_path / "clip"), "device": "cpu", "batch_size": 5}]
    assert r.score == 0.25 and r.config["scorer"] == "clipiqa" and r.config["model"] is None


def test_an_aggregation_object_is_used_and_named_in_the_record():
    from dogiqa.aggregate import Aggregation

    mine = Aggregation("mine", global_weight=1.0, local_weight=2.0, count_weight=0.5)
    r = scorer_pipeline(aggregation=mine).score(two_tone(40, 200))
    assert r.config["aggregation"] == "mine" and r.score == approx(4 + 2 * 3.5 + 0.5 * 2)


def test_without_any_score_every_cause_is_named_in_a_fixed_order():
    class Mixed:
        """Global view: invalid answer; left half: not scorable; right half: the call failed."""

        name, higher_is_better, score_range = "mixed", True, (1.0, 7.0)

        def score_crops(self, crops):
            out = []
            for c in crops:
                if c.call == "global":
                    bad = "answer '?' is not a level"
                    out.append(CropScore(score=None, raw="?", error=bad, extra={"invalid": True}))
                elif np.asarray(c.image).mean() < 100:
                    out.append(CropScore(score=None, error="not scorable: too small"))
                else:
                    out.append(CropScore(score=None, error="HTTP 503"))
            return out

    r = DogIQA(scorer=Mixed(), segmenter=HalvesSegmenter()).score(two_tone(40, 200))
    assert (r.invalid, r.not_scorable, r.failed_crops) == (1, 1, 1)
    assert r.error.endswith(": no final score: 1 crop(s) backend/scorer call failed, e.g. HTTP 503; "
                            "1 crop(s) invalid answer (not a level), e.g. answer '?' is not a level; "
                            "1 crop(s) not scorable, e.g. not scorable: too small")  # fmt: skip
    assert [g.error for g in r.regions] == ["not scorable: too small", "HTTP 503"]


def test_preset_overrides_are_checked_and_named_as_keywords():
    with pytest.raises(UsageError, match=r"^levels=: the word standard has 3, 5, 7, 9 levels, not 4"):
        DogIQA.from_preset("global", model="org/vlm", levels=4)


def test_objects_without_a_name_are_recorded_by_their_class_and_preset_aggregation_objects_are_used():
    from dogiqa.aggregate import Aggregation

    class PlainSplit:
        def segment(self, image: Image.Image) -> list[np.ndarray]:
            return HalvesSegmenter().segment(image)

    r = scorer_pipeline(segmenter=PlainSplit()).score(two_tone(40, 200))
    assert r.config["segmenter"] == "PlainSplit" and len(r.regions) == 2
    mine = Aggregation("mine", global_weight=0.0, local_weight=1.0)
    p = DogIQA.from_preset("recommended", scorer=MLLMScorer(BrightnessVLM(), "word", "int", 7), segmenter=PlainSplit(),
                           aggregation=mine).score(two_tone(40, 200))  # fmt: skip
    assert p.config["aggregation"] == "mine" and p.global_score is None and p.score == approx(3.5)
