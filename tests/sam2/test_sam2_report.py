"""Region overlay and HTML report; SAM 2 regions through the pipeline into a report."""

from __future__ import annotations

import base64
import io
from html.parser import HTMLParser

import numpy as np
import pytest
from PIL import Image

from dogiqa.report.html import write_report
from dogiqa.report.overlay import render_overlay
from dogiqa.results import ImageResult, RegionRecord
from dogiqa.scorers.base import CropScore

GREY = (100, 100, 100)


def _result(path: str = "a.png", score: float = 5.5) -> ImageResult:
    regions = [
        RegionRecord(0, "mask", (20, 10, 120, 90), 5000, 5000, score=6.0),
        RegionRecord(1, "mask", (200, 150, 300, 230), 8000, 8000, score=2.5),
        RegionRecord(2, "complement", (0, 0, 400, 300), 100000, 100000, score=4.0),
    ]
    return ImageResult(path=path, score=score, global_score=5.0, local_score=4.1, regions=regions)


def _image() -> Image.Image:
    return Image.new("RGB", (400, 300), GREY)


def test_overlay_tints_mask_shape_or_box():
    mask = np.zeros((300, 400), dtype=bool)
    mask[40:90, 70:120] = True  # lower-right part of region 0's box
    with_mask = np.asarray(render_overlay(_image(), _result(), masks=[mask, None, None]))
    boxes_only = np.asarray(render_overlay(_image().convert("L"), _result()))
    assert with_mask.shape == boxes_only.shape == (300, 400, 3)
    assert tuple(with_mask[60, 95]) != GREY  # inside the mask: tinted
    assert tuple(with_mask[50, 40]) == GREY  # in region 0's box but outside its mask: untouched
    assert tuple(boxes_only[50, 40]) != GREY  # no mask given: the box is tinted
    assert tuple(with_mask[190, 250]) != GREY  # region 1 has no mask: its box is tinted
    assert tuple(with_mask[120, 160]) == GREY  # complement region is not tinted


def test_overlay_uses_result_masks_and_writes_scores():
    result = _result()
    result.masks = [np.zeros((300, 400), dtype=bool), None, None]  # empty mask: nothing tinted for region 0
    out = np.asarray(render_overlay(_image(), result))
    assert tuple(out[50, 60]) == GREY
    plain = np.asarray(render_overlay(_image(), ImageResult(path="x", score=None, regions=[])))
    # The corner panel (bottom right) is drawn even without regions; the rest of the image is untouched.
    assert (plain[-20:, -20:] != GREY).any() and (plain[:100, :100] == GREY).all()


class _HtmlShape(HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags: list[tuple[str, dict]] = []
        self.script = ""
        self._in_script = False

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        self._in_script = tag == "script"

    def handle_data(self, data):
        if self._in_script:
            self.script += data


def test_write_report_structure(tmp_path):
    src = tmp_path / "b photo.png"
    _image().save(src)
    results = [_result("a.png", 5.5), _result(str(src), 3.25), ImageResult(path="gone.png", error="not found")]
    page = write_report(results, [_image(), src, tmp_path / "gone.png"], tmp_path / "out")
    assert page == tmp_path / "out" / "index.html"
    pngs = sorted(p.name for p in (tmp_path / "out").glob("*.png"))
    assert pngs == ["0000_a.png", "0001_b_photo.png"]
    for name in pngs:  # the quality map: the image, then its colour bar on the right
        with Image.open(tmp_path / "out" / name) as im:
            assert im.size[1] == 300 and 400 < im.size[0] < 500 and im.mode == "RGB"
    text = page.read_text()
    shape = _HtmlShape()
    shape.feed(text)
    tags = [t for t, _ in shape.tags]
    assert tags.count("table") == 1 and tags.count("th") == 9
    assert sum(t == "tr" and "data-status" in a for t, a in shape.tags) == 3
    imgs = [a for t, a in shape.tags if t == "img" and a.get("src")]
    assert len(imgs) == 2 and all(a["src"].startswith("data:image/jpeg;base64,") for a in imgs)
    thumb = Image.open(io.BytesIO(base64.b64decode(imgs[0]["src"].split(",", 1)[1])))
    assert max(thumb.size) <= 240
    assert not any(t in ("link",) for t in tags) and "http" not in text  # nothing fetched from outside
    links = [a["href"] for t, a in shape.tags if t == "a" and "full" in (a.get("class") or "")]
    assert links == pngs  # the full pictures are the PNGs beside the page
    assert "sortBy" in shape.script and all("data-key" in a for t, a in shape.tags if t == "th")
    scores = [a.get("data-v") for t, a in shape.tags if t == "td"][3::9]
    assert scores == ["5.5", "3.25", ""]
    assert 'class="err"' in text and "not found" in text


def test_write_report_regions_style_keeps_the_image_size(tmp_path):
    page = write_report([_result("a.png", 5.5)], [_image()], tmp_path / "out", style="regions")
    with Image.open(page.parent / "0000_a.png") as im:
        assert im.size == (400, 300)
    with pytest.raises(ValueError, match="style"):
        write_report([_result("a.png", 5.5)], [_image()], tmp_path / "bad", style="rainbow")


def test_write_report_length_mismatch(tmp_path):
    with pytest.raises(ValueError, match="2 results but 1 images"):
        write_report([_result(), _result()], [_image()], tmp_path)


class _Brightness:
    """Mean brightness / 255 * 6 + 1: a real, simple scorer for the pipeline."""

    name = "brightness"
    higher_is_better = True
    score_range = (1.0, 7.0)

    def score_crops(self, crops):
        return [CropScore(score=float(np.asarray(c.image).mean()) / 255 * 6 + 1) for c in crops]


def test_sam2_regions_through_pipeline_into_report(tiny_segmenter, tiny_decoded, make_scene, tmp_path):
    """SAM 2 (built by registry name, as the CLI does) -> Dog-IQA regions -> scores -> report."""
    from dogiqa.api import DogIQA
    from dogiqa.segmenters.sam2 import Sam2Segmenter

    assert isinstance(tiny_segmenter, Sam2Segmenter) and tiny_segmenter.small_regions == "fill"
    image = make_scene()
    iqa = DogIQA(scorer=_Brightness(), segmenter=tiny_segmenter, aggregation="code", keep_masks=True)
    result = iqa.score(image)
    assert result.ok, result.error
    records = tiny_segmenter.postprocess(tiny_decoded)  # the same image, decoded separately
    assert result.n_masks == len(records) > 0
    big = [r for r in records if r["area"] >= 1000]  # Dog-IQA's own 1000-px rule, in SAM 2's order
    mask_regions = [r for r in result.regions if r.kind == "mask"]
    assert len(mask_regions) == len(big) > 0
    for region, rec in zip(mask_regions, big, strict=True):
        x, y, w, h = rec["bbox"]
        assert region.box == (x, y, x + w + 1, y + h + 1) and region.weight == rec["area"]
    page = write_report([result], [image], tmp_path / "report")
    pngs = list(page.parent.glob("*.png"))
    assert len(pngs) == 1 and Image.open(pngs[0]).size[1] == image.size[1]


def test_report_writer_streams(tmp_path):
    from dogiqa.report.html import ReportWriter

    src = tmp_path / "c.png"
    _image().save(src)
    writer = ReportWriter(tmp_path / "rep", title="run <1>")
    first = writer.add(_result(str(src), 4.0))  # no source given: drawn from result.path
    assert first is not None and first.exists() and Image.open(first).size[1] == 300
    assert writer.add(_result(str(tmp_path / "missing.png"), 2.0)) is None
    page = writer.close()
    text = page.read_text()
    assert "run &lt;1&gt;" in text and text.count("<tr data-status") == 2 and "file not found" in text
