"""Bad ``dogiqa`` invocations and what their one-line error must name (shared by the tests and
``benchmarks/usage_errors.py``)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from PIL import Image


@dataclass(frozen=True)
class BadCall:
    kind: str  # unknown value | out of range | bad suffix | missing file | inapplicable | conflicting | ...
    args: list[str]
    names: str  # the option as the user wrote it, must appear in the message
    hint: str = ""  # also in the message: an accepted value, a range, the option it needs


def prepare(tmp: Path) -> None:
    """The files the table refers to: an image and two bad configuration files."""
    Image.new("RGB", (32, 32), (90, 120, 30)).save(tmp / "x.png")
    (tmp / "bad.yaml").write_text("preset: global\nregions:\n  crop_mode: nope\n", encoding="utf-8")
    (tmp / "typo.yaml").write_text("model:\n  backnd: openai\n", encoding="utf-8")


def bad_calls(tmp: Path) -> list[BadCall]:
    """The table, for files under ``tmp`` (:func:`prepare` writes them)."""
    img, bad_yaml, typo_yaml = tmp / "x.png", tmp / "bad.yaml", tmp / "typo.yaml"
    s = ["score", str(img)]
    return [
        BadCall("unknown value", [*s, "--crop-mode", "nope"], "--crop-mode", "bbox, mask"),
        BadCall("unknown value", [*s, "--readout", "nope"], "--readout", "expected"),
        BadCall("unknown value", [*s, "--segmenter", "nope"], "--segmenter", "felzenszwalb"),
        BadCall("unknown value", [*s, "--standard", "nope"], "--standard", "word"),
        BadCall("unknown value", [*s, "--dtype", "f16"], "--dtype", "bfloat16"),
        BadCall("unknown value", [*s, "--aggregation", "median"], "--aggregation", "paper"),
        BadCall("unknown value", [*s, "--scorer", "nope"], "--scorer", "niqe"),
        BadCall("unknown value", [*s, "--backend", "vllm"], "--backend", "openai"),
        BadCall("unknown value", [*s, "--sam2-preset", "nope"], "--sam2-preset", "sam2-default"),
        BadCall("unknown value", [*s, "--preset", "nope"], "--preset", "recommended"),
        BadCall("unknown value", [*s, "--engine", "spark"], "--engine", "ray"),
        BadCall("unknown value", [*s, "--device", "gpu0"], "--device", "cuda"),
        BadCall("unknown option", [*s, "--crop-mod", "bbox"], "--crop-mod", "--crop-mode"),
        BadCall("not a number", [*s, "--levels", "seven"], "--levels", "integer"),
        BadCall("out of range", [*s, "--levels", "4"], "--levels", "3, 5, 7, 9"),
        BadCall("out of range", [*s, "--levels", "12"], "--levels", "9"),
        BadCall("out of range", [*s, "--c-max", "0"], "--c-max", "greater than 0"),
        BadCall("out of range", [*s, "--min-area", "-5"], "--min-area", "greater than or equal to 0"),
        BadCall("out of range", [*s, "--batch-size", "0"], "--batch-size", "greater than or equal to 1"),
        BadCall("out of range", [*s, "--max-pixels", "0"], "--max-pixels", "greater than or equal to 1"),
        BadCall("bad suffix", [*s, "-o", str(tmp / "out.txt")], "--output", ".jsonl"),
        BadCall("bad suffix", ["show", str(img), "--out", str(tmp / "x.jpg")], "--out", ".png"),
        BadCall("missing file", [*s, "--model", str(tmp / "no-such-model")], "--model", "no such"),
        BadCall("missing file", [*s, "--standard", str(tmp / "mine.yaml")], "--standard", "no such"),
        BadCall("missing file", [*s, "--sam2-model", str(tmp / "no-sam2")], "--sam2-model", "no such"),
        BadCall("missing file", [*s, "--config", str(tmp / "run.yaml")], "--config", "run.yaml"),
        BadCall("bad file", [*s, "--config", str(bad_yaml)], "regions.crop_mode", "bbox, mask"),
        BadCall("bad file", [*s, "--config", str(typo_yaml)], "model.backnd", "model.backend"),
        BadCall("inapplicable", [*s, "--owl3-mask", "fixed"], "--owl3-mask", "mplug_owl3"),
        BadCall("inapplicable", [*s, "--segmenter", "felzenszwalb", "--small-regions", "fill"], "--small-regions",
                "sam2"),  # fmt: skip
        BadCall("inapplicable", [*s, "--segmenter", "none", "--sam2-preset", "paper"], "--sam2-preset", "sam2"),
        BadCall("inapplicable", [*s, "--concurrency", "4"], "--concurrency", "--backend openai"),
        BadCall("inapplicable", [*s, "--scorer", "niqe", "--clip-model", "m"], "--clip-model", "clipiqa"),
        BadCall("inapplicable", [*s, "--num-workers", "2"], "--num-workers", "--engine ray"),
        BadCall("conflicting", [*s, "--backend", "openai", "--model", "m"], "--base-url", "--backend openai"),
        BadCall("conflicting", [*s, "--backend", "openai", "--base-url", "localhost:8000"], "--base-url", "http"),
        BadCall("conflicting", [*s, "--engine", "ray", "-o", str(tmp / "x.jsonl")], "--output", "directory"),
        BadCall("conflicting", [*s, "--engine", "ray", "-o", str(tmp / "d"), "--report", str(tmp / "r")],
                "--report", "--engine local"),  # fmt: skip
        BadCall("unknown value", ["eval", "-d", "koniq", "--root", str(tmp), "--missing", "nope"], "--missing",
                "drop"),  # fmt: skip
    ]
