"""The Ray runner on every source type: the same records as the local engine, resume by key, no rerun of a
finished job, failed inputs retried only when asked."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from dogiqa.results import ImageResult
from dogiqa.runners import ray as ray_runner
from dogiqa.runners.ray import read_results, run_ray
from dogiqa.select import once_per_input
from dogiqa.sources import SourceOptions, open_sources
from dogiqa.testing.collections import image_rows
from dogiqa.testing.images import make_image

PIQE_KWARGS = dict(preset="global", scorer="piqe", segmenter="none", aggregation="global")


def comparable(results: list[ImageResult]) -> list[dict]:
    out = []
    for r in sorted(results, key=lambda r: (r.path, r.ident)):
        d = r.to_dict()
        d.pop("timings")
        out.append(d)
    return out


@pytest.fixture
def collection(tmp_path, shards):
    folder = tmp_path / "loose"
    folder.mkdir()
    for i in range(3):
        make_image(40 + 8 * i, 32, seed=50 + i).save(folder / f"f{i}.png")
    (folder / "broken.png").write_bytes(b"no")
    table = tmp_path / "t.parquet"
    pq.write_table(pa.Table.from_pylist(image_rows(7, corrupt=[5])), table, row_group_size=3)
    datasets = pytest.importorskip("datasets", reason="the datasets extra: pip install -e .[datasets]")
    datasets.Dataset.from_list(image_rows(4, corrupt=[0])).save_to_disk(str(tmp_path / "saved"))
    return [str(tmp_path / "shards" / "data-{000000..000002}.tar"), str(folder), str(table), str(tmp_path / "saved")]


def test_ray_equals_local_resumes_by_key_and_retries_only_when_asked(
    ray_cluster, collection, piqe, tmp_path, monkeypatch
):
    out = tmp_path / "out"
    summary = run_ray(collection, out, PIQE_KWARGS, num_workers=2, batch_size=2, rows_per_file=5, jsonl=True)
    n_inputs = 10 + 4 + 7 + 4
    assert (summary.total, summary.failed, summary.skipped) == (n_inputs, 4, 0)
    want = once_per_input(piqe.score_many(open_sources(collection)))
    assert len(want) == n_inputs
    assert comparable(read_results(out)) == comparable(want)
    lines = (out / "results.jsonl").read_text().splitlines()
    assert len(lines) == n_inputs

    # the same job again, the folder named by a relative path: nothing to do, no cluster, no model
    monkeypatch.chdir(tmp_path)
    specs = [s.replace(str(tmp_path) + "/", "") for s in collection]
    assert specs[1] == "loose"

    def no_cluster(*args, **kwargs):
        raise AssertionError("a finished job must not start Ray")

    monkeypatch.setattr(ray_runner, "_run_units", no_cluster)
    again = run_ray(specs, out, PIQE_KWARGS, jsonl=True)
    assert (again.skipped, again.total) == (n_inputs, 0)
    monkeypatch.undo()

    # a lost part file (a killed run) is scored again, and with retry_failed the 4 failed inputs once more
    parts = sorted(out.glob("part-*.parquet"))
    lost = {(r["source"], r["key"]) for r in pq.read_table(parts[0], columns=["source", "key"]).to_pylist()}
    failed = {(r.source, r.key) for r in want if not r.ok}
    parts[0].unlink()
    resumed = run_ray(collection, out, PIQE_KWARGS, num_workers=2, retry_failed=True, jsonl=True)
    assert resumed.total == len(lost | failed) and resumed.skipped == n_inputs - len(lost | failed)
    assert comparable(read_results(out)) == comparable(want)  # nothing lost, nothing twice
    assert len((out / "results.jsonl").read_text().splitlines()) == n_inputs


def test_ray_keeps_columns_like_local(ray_cluster, collection, piqe, tmp_path):
    opts = SourceOptions(keep_columns=("caption", "url"))
    table = [collection[2]]
    run_ray(table, tmp_path / "out", PIQE_KWARGS, num_workers=1, source_options=opts)
    got = read_results(tmp_path / "out")
    assert got[0].columns == {"caption": "caption 0", "url": "https://example.org/0.png"}
    assert comparable(got) == comparable(list(piqe.score_many(open_sources(table, opts))))
