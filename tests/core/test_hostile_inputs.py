"""Hostile collections: no input kills a run, every input gets a record (or is counted as skipped)."""

import os
import socket
import struct
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageFile

import dogiqa.api
from dogiqa.api import DogIQA
from dogiqa.io import SKIP_NOT_IMAGE, ImageLoadError, expand_paths, image_extensions, load_image
from dogiqa.runners.local import run_local
from dogiqa.scorers.base import CropScore
from dogiqa.testing.hostile import DEVICE_PATHS, build_corpus


class MeanScorer:
    """Mean brightness mapped to 1..7: exact and fast, so every decodable image gets a score."""

    name = "mean"
    higher_is_better = True
    score_range = (1.0, 7.0)

    def score_crops(self, crops):
        return [CropScore(score=float(np.asarray(c.image).mean()) / 255 * 6 + 1) for c in crops]


def _iqa(**kw) -> DogIQA:
    return DogIQA(scorer=MeanScorer(), aggregation="global", **kw)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("hostile")
    return root, build_corpus(root)


def test_corpus_every_input_is_accounted_for(corpus):
    root, kinds = corpus
    assert len(kinds) >= 90
    skipped: list = []
    paths = list(expand_paths([root], skipped))
    records = {r.path: r for r in _iqa(chunk_size=5).score_many(paths)}
    assert len(records) == len(paths)  # one record per input, none lost
    skipped_paths = {str(p): why for p, why in skipped}
    for kind in kinds:
        path = str(root / kind.path)
        if kind.expect == "skipped":
            assert path in skipped_paths and path not in records, kind
            continue
        if kind.expect == "none":
            assert path not in records and path not in skipped_paths, kind
            continue
        record = records.get(path)
        assert record is not None, kind
        assert record.ok == (kind.expect == "scored"), (kind, record.error)
        if kind.expect == "error":
            assert record.error.startswith(f"{path}: loading failed: "), record.error
            assert "\n" not in record.error and kind.hint in record.error, (kind, record.error)
    # nothing in the corpus is unexplained: every path the walk produced is one of the kinds
    named = {str(root / k.path) for k in kinds}
    assert set(records) | set(skipped_paths) <= named


def test_corpus_through_the_runner_counts_causes(corpus, tmp_path):
    root, kinds = corpus
    skipped: list = []
    paths = list(expand_paths([root], skipped))
    summary = run_local(_iqa(), paths, tmp_path / "out.jsonl")
    summary.skipped = [(str(p), why) for p, why in skipped]
    assert summary.scored == sum(k.expect == "scored" for k in kinds)
    assert summary.failed == sum(k.expect == "error" for k in kinds)
    n_skip = sum(k.expect == "skipped" for k in kinds)
    assert len(summary.skipped) == n_skip
    assert f"skipped: {SKIP_NOT_IMAGE}" in summary.line()
    lines = (tmp_path / "out.jsonl").read_bytes().splitlines()
    assert len(lines) == summary.total  # every record written, all valid UTF-8
    for line in lines:
        line.decode("utf-8")


def test_pillow_registry_extensions_are_walked(tmp_path):
    exts = image_extensions()
    assert {".avif", ".jfif", ".jp2", ".tga", ".ico", ".pbm", ".dds", ".qoi"} <= exts
    assert ".pdf" not in exts  # Pillow writes PDF but cannot open it
    for ext in (".jfif", ".tga", ".ico", ".pbm", ".txt"):
        (tmp_path / f"x{ext}").write_bytes(b"data")
    skipped: list = []
    got = {p.suffix for p in expand_paths([tmp_path], skipped)}
    assert got == {".jfif", ".tga", ".ico", ".pbm"}
    assert skipped == [(tmp_path / "x.txt", SKIP_NOT_IMAGE)]


def test_file_named_explicitly_is_always_attempted(tmp_path):
    odd = tmp_path / "photo.unknown-ext"
    Image.new("RGB", (8, 8), (10, 20, 30)).save(odd, "PNG")
    assert list(expand_paths([odd])) == [odd]
    assert _iqa().score(odd).ok


# ---------------------------------------------------------------- decoder exceptions, every kind

EXCEPTIONS = [
    RuntimeError("Failed to decode frame 0"),
    NotImplementedError("Unimplemented pixel format"),
    OSError("broken data stream"),
    ValueError("not enough image data"),
    SyntaxError("not a TIFF file"),
    EOFError(),
    Image.DecompressionBombError("too many pixels"),
    MemoryError(),
    struct.error("unpack requires a buffer of 4 bytes"),
    ZeroDivisionError("division by zero"),
    IndexError("list index out of range"),
    KeyError("XResolution"),
    TypeError("bad operand"),
    AssertionError("plugin assertion"),
]


def _chunk_paths(tmp_path):
    good1, bad, good2 = tmp_path / "a.png", tmp_path / "bad.png", tmp_path / "c.png"
    Image.new("RGB", (20, 10), (100, 100, 100)).save(good1)
    Image.new("RGB", (13, 7), (1, 2, 3)).save(bad)  # the size marks the image the patch breaks
    Image.new("RGB", (20, 10), (200, 200, 200)).save(good2)
    return [good1, bad, good2]


def _check_isolated(records, exc):
    assert [r.ok for r in records] == [True, False, True]
    err = records[1].error
    assert err.startswith(f"{records[1].path}: loading failed: ") and "\n" not in err
    if not isinstance(exc, MemoryError | Image.DecompressionBombError):
        assert type(exc).__name__ in err


@pytest.mark.parametrize("exc", EXCEPTIONS, ids=lambda e: type(e).__name__)
def test_decoder_exception_at_open_is_one_record(tmp_path, monkeypatch, exc):
    real_open = Image.open

    def fake_open(fp, *a, **kw):
        img = real_open(fp, *a, **kw)
        if img.size == (13, 7):
            raise exc
        return img

    monkeypatch.setattr(Image, "open", fake_open)
    _check_isolated(list(_iqa(chunk_size=8).score_many(_chunk_paths(tmp_path))), exc)


@pytest.mark.parametrize("exc", EXCEPTIONS, ids=lambda e: type(e).__name__)
def test_decoder_exception_at_load_is_one_record(tmp_path, monkeypatch, exc):
    real_load = ImageFile.ImageFile.load

    def fake_load(self):
        if self.size == (13, 7):
            raise exc
        return real_load(self)

    monkeypatch.setattr(ImageFile.ImageFile, "load", fake_load)
    _check_isolated(list(_iqa(chunk_size=8).score_many(_chunk_paths(tmp_path))), exc)


def test_failures_in_later_stages_stay_with_their_image(tmp_path, monkeypatch):
    paths = _chunk_paths(tmp_path)

    class Segmenter:
        name = "flaky"

        def segment(self, image):
            if image.size == (13, 7):
                raise IndexError("mask index out of range")
            m = np.zeros((image.height, image.width), bool)
            m[:, : image.width // 2] = True
            return [m]

    iqa = DogIQA(scorer=MeanScorer(), segmenter=Segmenter(), aggregation="code", chunk_size=8, min_area=1)
    out = list(iqa.score_many(paths))
    assert [r.ok for r in out] == [True, False, True]
    assert "segmentation failed: IndexError: mask index out of range" in out[1].error

    real_crop = dogiqa.api.crop_region

    def crop(image, region, mode):
        if image.size == (20, 10) and image.getpixel((0, 0)) == (200, 200, 200):
            raise ValueError("bad box")
        return real_crop(image, region, mode)

    monkeypatch.setattr(dogiqa.api, "crop_region", crop)
    segmenter = Segmenter()
    out = list(DogIQA(scorer=MeanScorer(), segmenter=segmenter, aggregation="code", min_area=1).score_many(paths))
    assert [r.ok for r in out] == [True, False, False]
    assert "cropping failed: ValueError: bad box" in out[2].error

    def broken_finalize(result, *a, **kw):
        if result.width == 13:
            raise ZeroDivisionError("weights sum to zero")
        return real_finalize(result, *a, **kw)

    real_finalize = dogiqa.api.finalize
    monkeypatch.setattr(dogiqa.api, "finalize", broken_finalize)
    monkeypatch.setattr(dogiqa.api, "crop_region", real_crop)
    out = list(_iqa(chunk_size=8).score_many(paths))
    assert [r.ok for r in out] == [True, False, True]
    assert "aggregation failed: ZeroDivisionError" in out[1].error


def test_a_scorer_returning_too_few_scores_is_isolated(tmp_path):
    class Short(MeanScorer):
        def score_crops(self, crops):
            if len(crops) > 1:
                return super().score_crops(crops)[:-1]
            if crops[0].image.size == (13, 7):
                return []
            return super().score_crops(crops)

    out = list(DogIQA(scorer=Short(), aggregation="global", chunk_size=8).score_many(_chunk_paths(tmp_path)))
    assert [r.ok for r in out] == [True, False, True]
    assert "scoring failed" in out[1].error and "0 scores for 1 crops" in out[1].error


# ---------------------------------------------------------------- non-regular files, size cap, links


def _load_in_thread(path, **kw):
    """(error message or 'ok', seconds); a hang shows as a timeout instead of freezing the suite."""
    box: dict = {}

    def work():
        start = time.perf_counter()
        try:
            load_image(path, **kw)
            box["out"] = "ok"
        except ImageLoadError as exc:
            box["out"] = str(exc)
        box["s"] = time.perf_counter() - start

    thread = threading.Thread(target=work, daemon=True)
    thread.start()
    thread.join(10)
    assert not thread.is_alive(), f"{path}: still reading after 10 s"
    return box["out"], box["s"]


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="POSIX FIFOs")
def test_non_regular_files_are_refused_before_reading(tmp_path):
    fifo = tmp_path / "pipe.jpg"
    os.mkfifo(fifo)
    sock_dir = Path(os.environ.get("TMPDIR", "/tmp")) / f"dq{os.getpid()}"
    sock_dir.mkdir(exist_ok=True)
    sock_path = sock_dir / "s.png"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(str(sock_path))
    try:
        cases = {fifo: "FIFO", sock_path: "socket", **{Path(d): "character device" for d in DEVICE_PATHS}}
        for path, kind in cases.items():
            message, seconds = _load_in_thread(path)
            assert seconds < 1.0, (path, seconds)  # generous: the refusal is a stat, no read
            assert kind in message and "refused without reading" in message and str(path) in message
    finally:
        sock.close()
        sock_path.unlink()
        sock_dir.rmdir()


def test_file_size_cap(tmp_path):
    sparse = tmp_path / "huge.png"
    with open(sparse, "wb") as fh:
        fh.truncate(300 * 1024 * 1024)  # over the default cap; sparse, so nothing is written or read
    message, seconds = _load_in_thread(sparse)
    assert "over the file-size cap of 268,435,456" in message and "--max-file-size" in message
    assert seconds < 1.0
    small = tmp_path / "small.png"
    Image.new("RGB", (64, 64), (5, 5, 5)).save(small)
    size = small.stat().st_size
    with pytest.raises(ImageLoadError, match="over the file-size cap"):
        load_image(small, max_file_bytes=size - 1)
    assert load_image(small, max_file_bytes=size).size == (64, 64)
    assert load_image(small, max_file_bytes=None).size == (64, 64)
    r = _iqa(max_file_bytes=size - 1).score(small)
    assert not r.ok and "file-size cap" in r.error


@pytest.mark.skipif(not hasattr(os, "symlink"), reason="symbolic links")
def test_symlinks_in_a_walk(tmp_path):
    Image.new("RGB", (8, 8)).save(tmp_path / "real.png")
    os.symlink("gone.png", tmp_path / "broken.png")
    os.symlink("loop2", tmp_path / "loop1")
    os.symlink("loop1", tmp_path / "loop2")
    os.symlink(".", tmp_path / "here")  # a folder link: not followed (no endless walk)
    skipped: list = []
    got = list(expand_paths([tmp_path], skipped))
    assert got == [tmp_path / n for n in ("broken.png", "loop1", "loop2", "real.png")]
    assert skipped == [(tmp_path / "here", "symbolic link to a folder (not followed)")]
    errors = {Path(r.path).name: r.error for r in _iqa().score_many(got)}
    assert "broken symbolic link" in errors["broken.png"] and "gone.png" in errors["broken.png"]
    assert "symbolic link loop" in errors["loop1"] and "symbolic link loop" in errors["loop2"]
    assert errors["real.png"] is None


def test_unreadable_file_and_folder_are_records(tmp_path):
    locked = tmp_path / "locked.png"
    Image.new("RGB", (8, 8)).save(locked)
    folder = tmp_path / "sub"
    folder.mkdir()
    Image.new("RGB", (8, 8)).save(folder / "in.png")
    locked.chmod(0)
    folder.chmod(0)
    try:
        paths = list(expand_paths([tmp_path]))
        records = {Path(r.path).name: r for r in _iqa().score_many(paths)}
        if os.geteuid() == 0:  # root reads anything: both are scored
            assert records["locked.png"].ok and records["in.png"].ok
        else:
            assert "permission denied" in records["locked.png"].error
            assert "cannot list the folder" in records["sub"].error
    finally:
        folder.chmod(0o755)
        locked.chmod(0o644)


def test_report_reuses_the_decoded_image_and_never_reopens_a_refused_one(tmp_path, monkeypatch):
    import dogiqa.report.html as report_html
    from dogiqa.report.html import ReportWriter

    big, ok = tmp_path / "big.png", tmp_path / "ok.png"
    Image.new("RGB", (200, 100), (9, 9, 9)).save(big)  # 20,000 pixels: over the run's cap
    Image.new("RGB", (20, 10), (90, 90, 90)).save(ok)
    decodes: list = []
    real = report_html.load_image
    monkeypatch.setattr(report_html, "load_image", lambda *a, **k: decodes.append(a) or real(*a, **k))
    iqa = DogIQA(scorer=MeanScorer(), aggregation="global", keep_masks=True, max_pixels=5000)
    writer = ReportWriter(tmp_path / "rep", max_pixels=5000)
    results = list(iqa.score_many([big, ok]))
    assert not results[0].ok and "over the cap" in results[0].error and results[1].ok
    assert writer.add(results[0]) is None
    drawn = writer.add(results[1])
    assert decodes == []  # one decode per image: the report drew the run's own image
    assert drawn is not None and Image.open(drawn).size[1] == 10  # the quality map: the image + its colour bar
    assert results[1].image is None  # released once drawn
    page = writer.close().read_text()
    assert "over the cap" in page
