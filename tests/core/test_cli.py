"""The CLI end to end on generated images with a tiny real Qwen2-VL."""

import csv
import json

import numpy as np
from PIL import Image
from typer.testing import CliRunner

from dogiqa.cli import app

runner = CliRunner()


def make_folder(tmp_path):
    folder = tmp_path / "imgs"
    (folder / "nested").mkdir(parents=True)
    rng = np.random.default_rng(0)
    for name, (w, h) in {"a.png": (120, 90), "nested/b.jpg": (64, 80), "c.bmp": (90, 90)}.items():
        Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8)).save(folder / name)
    (folder / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0\x00\x10JFIF truncated")
    (folder / "empty.png").write_bytes(b"")
    return folder


def test_score_folder_jsonl_with_bad_files(tmp_path, tiny_qwen2vl_dir):
    folder = make_folder(tmp_path)
    out = tmp_path / "out.jsonl"
    res = runner.invoke(
        app,
        [
            "score",
            str(folder),
            "--model",
            str(tiny_qwen2vl_dir),
            "--segmenter",
            "felzenszwalb",
            "--output",
            str(out),
            "--quiet",
        ],
    )
    assert res.exit_code == 1, res.output  # some images failed
    records = [json.loads(line) for line in out.read_text().splitlines()]
    by_name = {r["path"].split("/")[-1]: r for r in records}
    assert set(by_name) == {"a.png", "b.jpg", "c.bmp", "broken.jpg", "empty.png"}
    for name in ("a.png", "b.jpg", "c.bmp"):
        r = by_name[name]
        assert r["error"] is None and r["regions"], name
        assert 1 <= r["global_score"] <= 7 and r["score"] is not None
        assert all(1 <= reg["score"] <= 7 and len(reg["probs"]) == 7 for reg in r["regions"])
        assert sum(reg["weight"] for reg in r["regions"]) >= r["width"] * r["height"] - 1000
    assert "0 bytes" in by_name["empty.png"]["error"]
    assert "broken.jpg" in by_name["broken.jpg"]["error"]
    assert "2 failed" in res.output


def test_score_csv_global_int_readout(tmp_path, tiny_qwen2vl_dir):
    img = tmp_path / "x.png"
    Image.new("RGB", (50, 40), (10, 200, 30)).save(img)
    out = tmp_path / "out.csv"
    res = runner.invoke(
        app,
        [
            "score",
            str(img),
            "--model",
            str(tiny_qwen2vl_dir),
            "--segmenter",
            "none",
            "--aggregation",
            "global",
            "--readout",
            "int",
            "--output",
            str(out),
        ],
    )
    assert res.exit_code == 0, res.output
    rows = list(csv.DictReader(out.open()))
    assert len(rows) == 1 and float(rows[0]["score"]) == float(rows[0]["global_score"])
    assert float(rows[0]["score"]).is_integer()


def test_unloadable_model_exits_2_with_a_hint(tmp_path):
    img = tmp_path / "x.png"
    Image.new("RGB", (20, 20)).save(img)
    res = runner.invoke(app, ["score", str(img), "--model", str(tmp_path / "no-such-model"), "--segmenter", "none"])
    assert res.exit_code == 2
    assert "no-such-model" in res.output and "folder" in res.output


def test_presets_command_lists_presets():
    res = runner.invoke(app, ["presets"])
    assert res.exit_code == 0 and "paper-code" in res.output and "recommended" in res.output


def test_classical_scorer_from_the_cli(tmp_path):
    rng = np.random.default_rng(3)
    Image.fromarray(rng.integers(0, 255, (200, 260, 3), dtype=np.uint8)).save(tmp_path / "x.png")
    out = tmp_path / "piqe.jsonl"
    res = runner.invoke(
        app,
        [
            "score",
            str(tmp_path / "x.png"),
            "--scorer",
            "piqe",
            "--segmenter",
            "none",
            "--aggregation",
            "global",
            "--output",
            str(out),
            "--quiet",
        ],
    )
    assert res.exit_code == 0, res.output
    record = json.loads(out.read_text())
    assert record["config"]["scorer"] == "piqe" and record["config"]["model"] is None
    assert 0 <= record["score"] <= 100


def test_report_and_show(tmp_path, tiny_qwen2vl_dir):
    folder = make_folder(tmp_path)
    rep = tmp_path / "report"
    res = runner.invoke(
        app,
        [
            "score",
            str(folder),
            "--model",
            str(tiny_qwen2vl_dir),
            "--segmenter",
            "felzenszwalb",
            "--report",
            str(rep),
            "--quiet",
        ],
    )
    assert res.exit_code == 1, res.output  # the two bad files
    pngs = sorted(rep.glob("*.png"))
    assert len(pngs) == 3 and all(Image.open(p).size[0] > 0 for p in pngs)
    html = (rep / "index.html").read_text()
    assert html.count("<tr") >= 5 and "broken.jpg" in html and "<script" in html
    out = tmp_path / "shown.png"
    res = runner.invoke(
        app,
        [
            "show",
            str(folder / "a.png"),
            "--model",
            str(tiny_qwen2vl_dir),
            "--segmenter",
            "felzenszwalb",
            "--out",
            str(out),
        ],
    )
    assert res.exit_code == 0, res.output
    assert Image.open(out).size[1] == 90 and Image.open(out).size[0] > 120 and "final" in res.output  # + colour bar
    figure5 = tmp_path / "figure5.png"
    args = ["show", str(folder / "a.png"), "--model", str(tiny_qwen2vl_dir), "--segmenter", "felzenszwalb"]
    res = runner.invoke(app, [*args, "--out", str(figure5), "--style", "regions"])
    assert res.exit_code == 0, res.output
    assert Image.open(figure5).size == (120, 90)  # the paper's Figure-5 style keeps the image size
    res = runner.invoke(app, [*args, "--style", "rainbow"])
    assert res.exit_code == 2 and "--style" in res.output
