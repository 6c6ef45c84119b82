"""The Ray Data runner on a local CPU cluster: same records as the local runner, failures kept, resume."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from dogiqa.api import DogIQA
from dogiqa.results import ImageResult, RegionRecord
from dogiqa.runners.local import run_local
from dogiqa.runners.ray import list_sources, read_results, result_to_row, row_to_result, run_ray
from dogiqa.testing.images import make_image


def comparable(result: ImageResult) -> dict:
    data = result.to_dict()
    data.pop("timings")  # wall-clock times differ between runs
    return data


def local_results(kwargs: dict, paths: list[str]) -> list[ImageResult]:
    iqa = DogIQA.from_config(kwargs)
    out: list[ImageResult] = []
    run_local(iqa, paths, on_result=out.append)
    return sorted(out, key=lambda r: r.path)


@pytest.fixture
def image_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "images"
    folder.mkdir()
    for i, (w, h) in enumerate([(96, 64), (64, 96), (80, 80), (120, 72), (72, 72), (64, 48)]):
        make_image(w, h, seed=10 + i).save(folder / f"img{i}.png")
    (folder / "broken.jpg").write_bytes(b"not an image")
    return folder


def server_kwargs(url: str) -> dict:
    return dict(
        preset="global",
        model="tiny-vlm",
        backend="openai",
        segmenter="felzenszwalb",
        aggregation="paper",
        chunk_size=2,
        backend_options={"base_url": url, "timeout": 5.0, "backoff_base": 0.01, "concurrency": 2},
    )


def test_rows_round_trip():
    result = ImageResult(
        path="a.png",
        score=3.5,
        global_score=3.0,
        regions=[RegionRecord(index=0, kind="mask", box=(0, 1, 2, 3), weight=0.5, pixels=4, probs=[0.5, 0.5])],
        global_probs=[0.25, 0.75],
        timings={"load_s": 0.1},
        config={"model": "m"},
    )
    row = result_to_row(result)
    assert isinstance(row["regions"], str) and isinstance(row["config"], str)
    assert row_to_result(row).to_dict() == result.to_dict()


def test_sources_from_listings(tmp_path: Path, image_folder: Path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    listing = tmp_path / "list.csv"
    with listing.open("w", newline="") as fh:
        csv.writer(fh).writerows([["id", "path"], [1, "images/img0.png"], [2, str(image_folder / "img1.png")]])
    assert list_sources(listing) == [str(image_folder / "img0.png"), str(image_folder / "img1.png")]
    pq.write_table(pa.table({"image": ["images/img2.png"]}), tmp_path / "list.parquet")
    assert list_sources(tmp_path / "list.parquet") == [str(image_folder / "img2.png")]
    assert len(list_sources(image_folder)) == 7
    mixed = list_sources([listing, image_folder / "img3.png"])  # what `dogiqa score A.csv B.png` passes
    assert mixed == [str(image_folder / f"img{i}.png") for i in (0, 1, 3)]


def test_ray_equals_local_records_failures_and_resumes(ray_cluster, module_chat_server, image_folder, tmp_path):
    kwargs = server_kwargs(module_chat_server.url)
    out = tmp_path / "out"
    summary = run_ray(image_folder, out, kwargs, num_workers=2, batch_size=2, rows_per_file=3, jsonl=True)
    paths = list_sources(image_folder)
    assert (summary.total, summary.scored, summary.failed, summary.skipped) == (7, 6, 1, 0)
    assert len(summary.files) == 3  # 7 records in part files of 3
    ray_results = read_results(out)
    expected = local_results(kwargs, paths)
    assert [comparable(r) for r in ray_results] == [comparable(r) for r in expected]
    assert all(r.regions for r in ray_results if r.ok)  # the local path (regions) really ran
    broken = next(r for r in ray_results if r.path.endswith("broken.jpg"))
    assert broken.error and "broken.jpg" in broken.error
    lines = (out / "results.jsonl").read_text().splitlines()
    assert sorted(json.loads(line)["path"] for line in lines) == sorted(paths)

    # re-run: the seven inputs with a record are skipped (the failed one too: no --retry-failed), the new
    # one scored; results.jsonl is rewritten with one line per input
    make_image(50, 70, seed=99).save(image_folder / "new.png")
    before = module_chat_server.scoring_requests()  # the actors' first-contact probes are not crops
    again = run_ray(image_folder, out, kwargs, num_workers=1, batch_size=2, jsonl=True)
    assert (again.skipped, again.total, again.scored, again.failed) == (7, 1, 1, 0)
    assert len((out / "results.jsonl").read_text().splitlines()) == 8
    final = read_results(out)
    new = next(r for r in final if r.path.endswith("new.png"))
    # one request per distinct crop of the new image (global + regions; a region covering the whole image
    # is the global crop again, asked once); the broken file never reaches the server
    whole = (0, 0, 50, 70)
    distinct = 1 + sum(r.box != whole for r in new.regions)
    assert module_chat_server.scoring_requests() == before + distinct
    assert len(final) == 8 and sum(r.ok for r in final) == 7
    ok_paths = [r.path for r in final if r.ok]
    assert run_ray(ok_paths, out, kwargs).skipped == 7  # nothing left to do: Ray is not even started


def assert_same_records(got: list[ImageResult], want: list[ImageResult]) -> None:
    """Equal records; model scores to 1e-6 (same inputs, possibly another process's float path)."""
    assert [r.path for r in got] == [r.path for r in want]
    for a, b in zip(got, want, strict=True):
        da, db = comparable(a), comparable(b)
        for key in ("score", "global_score", "local_score", "uncertainty"):
            assert da.pop(key) == pytest.approx(db.pop(key), abs=1e-6), (a.path, key)
        assert da.pop("global_probs") == pytest.approx(db.pop("global_probs"), abs=1e-6)
        ra, rb = da.pop("regions"), db.pop("regions")
        assert len(ra) == len(rb)
        for x, y in zip(ra, rb, strict=True):
            for key in ("score", "probs", "entropy", "variance"):
                assert x.pop(key) == pytest.approx(y.pop(key), abs=1e-6)
            assert x == y
        assert da == db


def test_ray_with_tiny_qwen2vl_equals_local(ray_cluster, tiny_qwen2vl_dir, sample_images_dir, tmp_path):
    kwargs = dict(
        preset="recommended",
        model=str(tiny_qwen2vl_dir),
        segmenter="felzenszwalb",
        device="cpu",
        dtype="float32",
        chunk_size=1,
    )
    summary = run_ray(sample_images_dir, tmp_path / "out", kwargs, num_workers=2, batch_size=1)
    assert (summary.total, summary.failed) == (4, 0)
    got = read_results(tmp_path / "out")
    want = local_results(kwargs, list_sources(sample_images_dir))
    assert all(r.regions and r.score is not None for r in want)
    assert_same_records(got, want)


def test_unreadable_part_file_is_named(tmp_path: Path):
    from dogiqa.runners.ray import RayRunnerError, done_paths

    (tmp_path / "part-x-00000.parquet").write_bytes(b"garbage")
    with pytest.raises(RayRunnerError, match="part-x-00000.parquet"):
        done_paths(tmp_path)


def test_cli_engine_ray(ray_cluster, module_chat_server, image_folder, tmp_path):
    from typer.testing import CliRunner

    from dogiqa.cli import app

    out = tmp_path / "out"
    args = ["score", str(image_folder), "--engine", "ray", "--num-workers", "1", "--output", str(out), "--jsonl"]
    args += ["--backend", "openai", "--base-url", module_chat_server.url, "--model", "tiny-vlm", "--quiet"]
    args += ["--preset", "global", "--segmenter", "felzenszwalb", "--aggregation", "paper"]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 1, res.output  # broken.jpg
    assert "6 scored, 1 failed" in res.output
    got = read_results(out)
    kwargs = server_kwargs(module_chat_server.url)
    kwargs.update(backend_options=None, base_url=module_chat_server.url, chunk_size=None)  # as the CLI builds it
    want = local_results(kwargs, list_sources(image_folder))
    assert [comparable(r) for r in got] == [comparable(r) for r in want]
    assert len((out / "results.jsonl").read_text().splitlines()) == 7
    res = CliRunner().invoke(app, ["score", str(image_folder), "--engine", "ray", "-o", "x.jsonl", "--quiet"])
    assert res.exit_code == 2 and "directory" in res.output


def test_list_sources_dataset_recipe(tmp_path) -> None:
    from PIL import Image

    from dogiqa.runners.ray import RayRunnerError

    root = tmp_path / "koniq10k"
    (root / "1024x768").mkdir(parents=True)
    with (root / "koniq10k_scores_and_distributions.csv").open("w", newline="") as fh:
        w = csv.writer(fh, quoting=csv.QUOTE_ALL)
        w.writerow(["image_name", "c1", "c2", "c3", "c4", "c5", "c_total", "MOS", "SD", "MOS_zscore"])
        for n in ("1.jpg", "2.jpg", "3.jpg"):
            w.writerow([n, 0, 1, 2, 3, 4, 10, 3.0, 0.5, 60])
    for n in ("1.jpg", "3.jpg"):  # 2.jpg is missing on disk
        Image.new("RGB", (8, 8)).save(root / "1024x768" / n)
    got = list_sources(f"koniq:{root}")
    assert sorted(Path(p).name for p in got) == ["1.jpg", "3.jpg"]
    with pytest.raises(RayRunnerError, match="koniq"):
        list_sources(f"koniq:{tmp_path / 'nowhere'}")
