"""Every behaviour-changing CLI option reaches the pipeline: observed in the records, CSV rows and cache.

The model answers round(8 * brightness) (``dogiqa.testing.sensitive``), so each option's effect on the scores
is known in advance. Everything goes through ``dogiqa.cli:app``, nothing reads private attributes.
"""

from __future__ import annotations

import csv
import json
import math
import sqlite3
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw
from typer.testing import CliRunner

from dogiqa.cli import app

runner = CliRunner()


def hand_expected(t: float, levels: int) -> float:
    w = [math.exp(-((k - t) ** 2)) for k in range(1, levels + 1)]
    return sum(k * x for k, x in enumerate(w, start=1)) / sum(w)


def fake_png(width: int, height: int) -> bytes:
    """A PNG header announcing width x height, and no pixel data."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IEND", b"")


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("cli-options")
    Image.new("RGB", (112, 112), (255, 255, 255)).save(folder / "white.png")  # t = 8
    Image.new("RGB", (112, 112), (0, 0, 0)).save(folder / "black.png")  # t = 0
    arr = np.full((112, 112, 3), 40, np.uint8)
    arr[:, 56:] = 200
    Image.fromarray(arr).save(folder / "halves.png")  # t = 1.25 | 6.27
    disc = Image.new("RGB", (112, 112), (100, 100, 100))
    ImageDraw.Draw(disc).ellipse((26, 26, 86, 86), fill=(250, 250, 250))
    disc.save(folder / "disc.png")
    return folder


def score(model: Path, *paths: Path, out: Path, args: list[str], code: int = 0) -> list[dict]:
    res = runner.invoke(app, ["score", *map(str, paths), "--model", str(model), "--device", "cpu",
                              "--output", str(out), "--quiet", *args])  # fmt: skip
    assert res.exit_code == code, res.output
    if out.suffix == ".csv":
        with out.open(newline="") as fh:
            return list(csv.DictReader(fh))
    return [json.loads(line) for line in out.read_text().splitlines()]


GLOBAL = ["--preset", "global"]
HALVES = ["--segmenter", "felzenszwalb", "--aggregation", "paper"]


def test_levels_and_readout(brightness_qwen2vl_dir, images, tmp_path):
    m, white = brightness_qwen2vl_dir, images / "white.png"
    [k7] = score(m, white, out=tmp_path / "a.jsonl", args=[*GLOBAL, "--readout", "int"], code=1)
    assert k7["global_raw"] == "8" and k7["score"] is None and k7["invalid"] == 1 and k7["config"]["levels"] == 7
    [k9] = score(m, white, out=tmp_path / "b.jsonl", args=[*GLOBAL, "--readout", "int", "--levels", "9"])
    assert k9["score"] == 8.0 and k9["config"]["levels"] == 9
    [exp5] = score(m, white, out=tmp_path / "c.jsonl", args=[*GLOBAL, "--levels", "5"])
    assert exp5["score"] == pytest.approx(hand_expected(8.0, 5), abs=2e-3) and len(exp5["global_probs"]) == 5
    assert exp5["config"]["readout"] == "expected"


def test_paper_compat_scores_invalid_answers_one(brightness_qwen2vl_dir, images, tmp_path):
    args = [*GLOBAL, "--readout", "int"]
    [strict] = score(brightness_qwen2vl_dir, images / "black.png", out=tmp_path / "a.jsonl", args=args, code=1)
    assert strict["global_raw"] == "0" and strict["score"] is None
    [paper] = score(brightness_qwen2vl_dir, images / "black.png", out=tmp_path / "b.jsonl",
                    args=[*args, "--paper-compat"])  # fmt: skip
    assert paper["score"] == 1.0 and paper["invalid"] == 1


def test_aggregation_and_c_max(brightness_qwen2vl_dir, images, tmp_path):
    m, img = brightness_qwen2vl_dir, images / "halves.png"
    [glob] = score(m, img, out=tmp_path / "g.jsonl", args=[*HALVES[:2], "--aggregation", "global"])
    assert glob["score"] == glob["global_score"] and glob["regions"] == []
    for c_max, name in ((None, "p"), (10.0, "c")):
        extra = [] if c_max is None else ["--c-max", str(c_max)]
        [r] = score(m, img, out=tmp_path / f"{name}.jsonl", args=[*HALVES, *extra])
        regions = r["regions"]
        assert len(regions) >= 2
        s_local = sum(g["score"] * g["weight"] for g in regions) / sum(g["weight"] for g in regions)
        want = 0.5 * r["global_score"] + 0.5 * s_local + len(regions) * 7 / (c_max or 71)
        assert r["local_score"] == pytest.approx(s_local) and r["score"] == pytest.approx(want)
    [code] = score(m, img, out=tmp_path / "k.jsonl", args=[*HALVES[:2], "--aggregation", "code"])
    n = len(code["regions"])
    assert code["score"] == pytest.approx(code["local_score"] + 0.1 * n + 0.5 * code["global_score"])


def test_min_area(brightness_qwen2vl_dir, images, tmp_path):
    [r] = score(brightness_qwen2vl_dir, images / "halves.png", out=tmp_path / "a.jsonl",
                args=[*HALVES, "--min-area", str(112 * 112 + 1)])  # fmt: skip
    assert [g["kind"] for g in r["regions"]] == ["whole"] and r["config"]["min_area"] == 112 * 112 + 1
    [r] = score(brightness_qwen2vl_dir, images / "halves.png", out=tmp_path / "b.jsonl",
                args=[*HALVES, "--min-area", "100"])  # fmt: skip
    assert len(r["regions"]) >= 2 and all(g["pixels"] >= 100 for g in r["regions"] if g["kind"] == "mask")


def test_crop_mode(brightness_qwen2vl_dir, images, tmp_path):
    args = [*HALVES, "--readout", "int"]
    [bbox] = score(brightness_qwen2vl_dir, images / "disc.png", out=tmp_path / "a.jsonl", args=args)
    [mask] = score(brightness_qwen2vl_dir, images / "disc.png", out=tmp_path / "b.jsonl",
                   args=[*args, "--crop-mode", "mask"])  # fmt: skip
    assert [g["box"] for g in mask["regions"]] == [g["box"] for g in bbox["regions"]]
    pairs = [(int(a["raw"]), int(b["raw"])) for a, b in zip(bbox["regions"], mask["regions"], strict=True)]
    assert all(m <= b for b, m in pairs) and any(m < b for b, m in pairs)  # blacked-out pixels: darker crops
    assert mask["config"]["crop_mode"] == "mask"


def test_csv_columns_are_the_final_and_the_global_score(brightness_qwen2vl_dir, images, tmp_path):
    img = images / "halves.png"
    [rec] = score(brightness_qwen2vl_dir, img, out=tmp_path / "a.jsonl", args=HALVES)
    [row] = score(brightness_qwen2vl_dir, img, out=tmp_path / "a.csv", args=HALVES)
    assert rec["score"] != rec["global_score"]
    assert float(row["score"]) == pytest.approx(rec["score"])
    assert float(row["global_score"]) == pytest.approx(rec["global_score"])
    assert float(row["local_score"]) == pytest.approx(rec["local_score"])
    assert int(row["n_regions"]) == len(rec["regions"]) and row["path"] == rec["path"]


def test_pixel_cap_default_and_option(brightness_qwen2vl_dir, images, tmp_path):
    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(fake_png(11_000, 10_000))  # 110 M pixels announced: over the default cap of 100 M
    recs = score(brightness_qwen2vl_dir, bomb, images / "white.png", out=tmp_path / "a.jsonl", args=GLOBAL, code=1)
    by_name = {Path(r["path"]).name: r for r in recs}
    assert "over the cap of 100,000,000" in by_name["bomb.png"]["error"]
    assert by_name["white.png"]["error"] is None
    [raised] = score(brightness_qwen2vl_dir, bomb, out=tmp_path / "b.jsonl",
                     args=[*GLOBAL, "--max-pixels", "200000000"], code=1)  # fmt: skip
    assert "over the cap" not in raised["error"] and "bomb.png" in raised["error"]  # decoded: truncated data
    [small] = score(brightness_qwen2vl_dir, images / "white.png", out=tmp_path / "c.jsonl",
                    args=[*GLOBAL, "--max-pixels", "10000"], code=1)  # fmt: skip
    assert "over the cap of 10,000" in small["error"]


def test_standard_is_recorded_and_asked(brightness_qwen2vl_dir, images, tmp_path):
    [r] = score(brightness_qwen2vl_dir, images / "white.png", out=tmp_path / "a.jsonl",
                args=[*GLOBAL, "--standard", "number", "--levels", "9"])  # fmt: skip
    assert r["config"]["standard"] == "number" and r["config"]["levels"] == 9
    assert r["score"] == pytest.approx(hand_expected(8.0, 9), abs=2e-3)


def test_auto_segmenter_uses_sam2_when_its_weights_load(brightness_qwen2vl_dir, images, tmp_path):
    from dogiqa.testing.sam2_tiny import build_sam2

    sam2 = build_sam2(tmp_path / "sam2")
    args = ["--preset", "recommended", "--sam2-model"]
    [with_sam2] = score(brightness_qwen2vl_dir, images / "disc.png", out=tmp_path / "a.jsonl", args=[*args, str(sam2)])
    assert with_sam2["config"]["segmenter"] == "sam2" and with_sam2["error"] is None
    # a hub id that cannot be loaded (tests run with HF_HUB_OFFLINE=1): auto falls back, and says so
    [without] = score(brightness_qwen2vl_dir, images / "disc.png", out=tmp_path / "b.jsonl",
                      args=[*args, "dogiqa-tests/no-such-sam2"])  # fmt: skip
    assert without["config"]["segmenter"] == "felzenszwalb (sam2 unavailable)" and without["error"] is None


def test_revision_is_part_of_the_cache_key(brightness_qwen2vl_dir, images, tmp_path):
    (tmp_path / "labels.csv").write_text("name,mos\nwhite.png,5\nhalves.png,3\ndisc.png,4\n")
    cache = tmp_path / "cache.sqlite"

    def run_eval(out: str, *extra: str) -> None:
        args = ["eval", "--dataset", "generic", "--root", str(images), "--labels", str(tmp_path / "labels.csv"),
                "--model", str(brightness_qwen2vl_dir), "--device", "cpu", "--preset", "global", "--cache", str(cache),
                "--output-dir", str(tmp_path / out), "--no-plot", "--bootstrap", "10", "--quiet", *extra]  # fmt: skip
        res = runner.invoke(app, args)
        assert res.exit_code == 0, res.output

    def rows() -> int:
        with sqlite3.connect(cache) as db:
            return db.execute("SELECT COUNT(*) FROM raw").fetchone()[0]

    run_eval("a", "--revision", "r1")
    first = rows()
    assert first == 3
    run_eval("b", "--revision", "r1", "--no-resume")
    assert rows() == first  # same model and revision: every answer from the cache
    run_eval("c", "--revision", "r2", "--no-resume")
    assert rows() == 2 * first  # another revision is another model: asked again
