"""The Ray Data runner: many images over a Ray cluster, one DogIQA pipeline per actor, Parquet out.

Each actor builds the pipeline once from the configuration (``DogIQA.from_config``: the model, the segmenter and
the backend load once per actor) and scores batches of paths. The driver receives the records as
they finish and writes them to ``output_dir`` as Parquet part files of ``rows_per_file`` records (written to a
temporary name and renamed, so a killed run leaves only complete files), and to ``results.jsonl`` when asked.
The Parquet columns are the fields of :class:`dogiqa.results.ImageResult`; ``regions``, ``timings`` and
``config`` hold JSON strings (:func:`result_to_row` / :func:`row_to_result`).

Resume: paths that already have a successful record in ``output_dir`` are skipped; failed ones are scored
again and :func:`read_results` prefers a successful record over a failed one (and a later file over an earlier).

Ray is an optional extra: ``pip install -e .[ray]``.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import os
import sys
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dogiqa.config import PipelineConfig, coerce_config
from dogiqa.results import ImageResult
from dogiqa.runners.local import RunSummary

PART_GLOB = "part-*.parquet"
JSON_COLUMNS = ("regions", "timings", "config")
PATH_COLUMNS = ("path", "image", "file", "filename", "image_path")


class RayRunnerError(RuntimeError):
    """The Ray run cannot start or its workers cannot build the pipeline."""


def _require_ray() -> Any:
    try:
        import ray
    except ImportError as exc:  # pragma: no cover - the extra is installed in CI
        raise RayRunnerError("the Ray runner needs Ray Data: pip install 'dogiqa[ray]'") from exc
    return ray


# -- sources ---------------------------------------------------------------------------------------------
def list_sources(source: str | Path | Iterable[str | Path]) -> list[str]:
    """Image paths from a folder (recursive), a CSV or Parquet listing (a ``path`` column, else the first
    column; relative paths are relative to the listing's folder), an image file, a dataset recipe
    ``NAME:ROOT`` (e.g. ``koniq:/data/koniq10k``: every labelled image found on disk), or an iterable of these."""
    from dogiqa.io import expand_paths

    items = [source] if isinstance(source, str | Path) else list(source)
    out: list[str] = []
    for item in items:
        recipe = _dataset_recipe(str(item))
        if recipe is not None:
            out.extend(recipe)
            continue
        path = Path(item)
        suffix = path.suffix.lower()
        if path.is_file() and suffix in (".csv", ".parquet", ".pq"):
            names = _csv_paths(path) if suffix == ".csv" else _parquet_paths(path)
            out.extend(str(p if Path(p).is_absolute() else path.parent / p) for p in names if p)
        else:
            out.extend(str(p) for p in expand_paths([path]))
    return out


def _dataset_recipe(item: str) -> list[str] | None:
    """The image paths of ``NAME:ROOT`` when NAME is a known dataset (and ROOT not an existing file)."""
    name, sep, root = item.partition(":")
    if not sep or not root or Path(item).exists():
        return None
    from dogiqa.datasets import DatasetError, canonical_name, list_datasets, load_dataset

    if canonical_name(name) not in list_datasets():
        return None
    try:
        dataset = load_dataset(name, root=root)
    except DatasetError as exc:
        raise RayRunnerError(f"dataset recipe {item!r}: {exc}") from exc
    return [str(it.path) for it in dataset.items if it.path is not None]


def _pick_column(columns: list[str], listing: Path) -> str:
    if not columns:
        raise RayRunnerError(f"{listing}: the listing has no columns")
    lower = {c.lower(): c for c in columns}
    return next((lower[c] for c in PATH_COLUMNS if c in lower), columns[0])


def _csv_paths(listing: Path) -> list[str]:
    with listing.open(newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        column = _pick_column(list(reader.fieldnames or []), listing)
        return [(row.get(column) or "").strip() for row in reader]


def _parquet_paths(listing: Path) -> list[str]:
    import pyarrow.parquet as pq

    try:
        names = pq.read_schema(listing).names
        column = _pick_column(names, listing)
        values = pq.read_table(listing, columns=[column]).column(column).to_pylist()
    except (OSError, ValueError) as exc:
        raise RayRunnerError(f"{listing}: cannot read the Parquet listing: {exc}") from exc
    return [str(v) for v in values if v is not None]


# -- records <-> Parquet rows ----------------------------------------------------------------------------
def arrow_schema() -> Any:
    """The Parquet schema: one column per ImageResult field (nested fields as JSON strings)."""
    import pyarrow as pa

    types = {
        "path": pa.string(),
        "score": pa.float64(),
        "global_score": pa.float64(),
        "local_score": pa.float64(),
        "invalid": pa.int64(),
        "failed_crops": pa.int64(),
        "not_scorable": pa.int64(),
        "width": pa.int64(),
        "height": pa.int64(),
        "n_masks": pa.int64(),
        "global_raw": pa.string(),
        "global_probs": pa.list_(pa.float64()),
        "uncertainty": pa.float64(),
        "error": pa.string(),
        "global_error": pa.string(),
    }
    names = [f.name for f in dataclasses.fields(ImageResult)] + ["path_bytes"]  # results.path_fields
    return pa.schema([(n, types.get(n, pa.string())) for n in names])


def result_to_row(result: ImageResult) -> dict[str, Any]:
    """A Parquet row: the record of ``ImageResult.to_dict`` with nested fields as JSON strings."""
    row = result.to_dict()
    schema = arrow_schema()
    for name in schema.names:
        if str(schema.field(name).type) == "string" and not isinstance(row.get(name), str | None):
            row[name] = json.dumps(row[name], ensure_ascii=False)
    return row


def row_to_result(row: dict[str, Any]) -> ImageResult:
    """Inverse of :func:`result_to_row`."""
    data = dict(row)
    for name in JSON_COLUMNS:
        if isinstance(data.get(name), str):
            data[name] = json.loads(data[name])
    known = {f.name for f in dataclasses.fields(ImageResult)} | {"path_bytes"}
    return ImageResult.from_dict({k: v for k, v in data.items() if k in known})


def _write_part(output_dir: Path, run_id: str, seq: int, results: list[ImageResult]) -> Path:
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = arrow_schema()
    table = pa.Table.from_pylist([result_to_row(r) for r in results], schema=schema)
    final = output_dir / f"part-{run_id}-{seq:05d}.parquet"
    tmp = final.with_name("." + final.name + ".tmp")
    pq.write_table(table, tmp)
    os.replace(tmp, final)
    return final


def _part_files(output_dir: Path) -> list[Path]:
    return sorted(output_dir.glob(PART_GLOB), key=lambda p: (p.stat().st_mtime_ns, p.name))


def _read_part(part: Path, columns: list[str] | None = None) -> Any:
    import pyarrow.parquet as pq

    try:
        return pq.read_table(part, columns=columns)
    except (OSError, ValueError, KeyError) as exc:  # pyarrow's ArrowInvalid is a ValueError
        raise RayRunnerError(f"{part}: unreadable result file ({exc}); move it away and re-run") from exc


def read_results(output_dir: str | Path) -> list[ImageResult]:
    """All records in ``output_dir``, one per path (a successful record wins, then the latest), by path."""

    best: dict[str, ImageResult] = {}
    for part in _part_files(Path(output_dir)):
        for row in _read_part(part).to_pylist():
            result = row_to_result(row)
            old = best.get(result.path)
            if old is None or result.ok or not old.ok:
                best[result.path] = result
    return [best[p] for p in sorted(best)]


def done_paths(output_dir: str | Path) -> set[str]:
    """Paths with a successful record in ``output_dir`` (skipped on a re-run)."""

    done: set[str] = set()
    for part in _part_files(Path(output_dir)):
        table = _read_part(part, ["path", "error"]).to_pydict()
        done.update(p for p, e in zip(table["path"], table["error"], strict=True) if e is None)
    return done


# -- the actor -------------------------------------------------------------------------------------------
class _ScoreActor:
    """Holds one DogIQA pipeline; scores a batch of paths into JSON records through its staged pipeline
    (``score_many``: the local runner's; its worker processes, if configured, live as long as the actor)."""

    def __init__(self, config: dict[str, Any], threads: int | None):
        if threads and "torch" in sys.modules:  # otherwise OMP_NUM_THREADS (runtime env) applies at import
            sys.modules["torch"].set_num_threads(threads)
        from dogiqa.api import DogIQA

        self.iqa = DogIQA.from_config(config)

    def __call__(self, batch: dict[str, Any]) -> dict[str, list[str]]:
        paths = [str(p) for p in batch["path"]]
        try:
            results = list(self.iqa.score_many(paths))
        except Exception as exc:  # noqa: BLE001 - a worker failure is recorded per image, never fatal
            results = [ImageResult(path=p, error=f"{p}: worker failed: {type(exc).__name__}: {exc}") for p in paths]
        return {"path": paths, "record": [r.to_json() for r in results]}


# -- the runner ------------------------------------------------------------------------------------------
@dataclass
class RaySummary(RunSummary):
    skipped: int = 0
    files: list[str] = field(default_factory=list)


def _runtime_env(extra: dict[str, Any] | None, threads: int | None = None) -> dict[str, Any]:
    """Workers import this very package (no upload of a working dir) and stay offline if the driver is."""
    src = str(Path(__file__).resolve().parents[2])
    path = os.pathsep.join(p for p in (src, os.environ.get("PYTHONPATH", "")) if p)
    env = {"PYTHONPATH": path, "TOKENIZERS_PARALLELISM": "false"}
    if threads:
        env["OMP_NUM_THREADS"] = str(threads)
    for key in ("HF_HUB_OFFLINE", "HF_HOME", "TRANSFORMERS_OFFLINE", "RAY_AUTH_MODE"):
        if key in os.environ:
            env[key] = os.environ[key]
    runtime_env: dict[str, Any] = {"env_vars": env}
    for key, value in (extra or {}).items():
        if key == "env_vars":
            env.update(value)
        else:
            runtime_env[key] = value
    return runtime_env


def _connect(ray: Any, address: str, init_kwargs: dict[str, Any] | None, runtime_env: dict[str, Any]) -> bool:
    """Start or join a cluster; True when this call started Ray (and must shut it down)."""
    if ray.is_initialized():
        return False
    kwargs = {"include_dashboard": False, "log_to_driver": False, **(init_kwargs or {})}
    try:
        ray.init(address=None if address == "local" else address, runtime_env=runtime_env, **kwargs)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        raise RayRunnerError(f"cannot start or join the Ray cluster at {address!r}: {exc}") from exc
    return True


def _check_server(cfg: PipelineConfig) -> None:
    """A server that cannot serve the run (unreachable, unknown model, no log-probabilities) stops it here,
    once, with the backend's first-contact message, instead of in every actor."""
    if cfg.model.scorer == "mllm" and cfg.model.backend == "openai":
        from dogiqa.api import _build_scorer

        getattr(_build_scorer(cfg, None).backend, "close", lambda: None)()


def run_ray(
    source: str | Path | Iterable[str | Path],
    output_dir: str | Path,
    config: PipelineConfig | Mapping[str, Any],
    address: str = "local",
    num_workers: int = 2,
    gpus_per_worker: float = 0,
    jsonl: bool = False,
    cpus_per_worker: float = 1,
    batch_size: int = 8,
    rows_per_file: int = 1000,
    threads_per_worker: int | None = 1,
    ray_init_kwargs: dict[str, Any] | None = None,
    runtime_env: dict[str, Any] | None = None,
    on_result: Callable[[ImageResult], None] | None = None,
) -> RaySummary:
    """Score SOURCE on a Ray cluster; records go to ``output_dir`` (Parquet parts, + ``results.jsonl``).

    ``config``: the pipeline's configuration (a :class:`PipelineConfig`, its dump, or keyword settings with an
    optional ``preset``), validated here before Ray starts; every actor builds its pipeline from it.

    ``address``: ``local`` starts a cluster in this process, ``auto`` joins the running one, or
    ``ray://host:10001``. ``num_workers`` actors, each with ``cpus_per_worker`` CPUs and ``gpus_per_worker``
    GPUs (fractions share a GPU) and one pipeline. ``batch_size`` images go to an actor per call.
    """
    cfg = coerce_config(config)
    settings = cfg.to_dict()  # a usage error stops the run before Ray starts
    _check_server(cfg)
    ray = _require_ray()
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    paths = list(dict.fromkeys(list_sources(source)))  # a path listed twice is scored once
    done = done_paths(out)
    todo = [p for p in paths if p not in done]
    summary = RaySummary(skipped=len(paths) - len(todo))
    if not todo:
        summary.seconds = time.perf_counter() - start
        return summary
    started = _connect(ray, address, ray_init_kwargs, _runtime_env(runtime_env, threads_per_worker))
    try:
        with _Sink(out, rows_per_file, jsonl) as sink:
            stream = _stream(
                ray,
                todo,
                settings,
                num_workers,
                cpus_per_worker,
                gpus_per_worker,
                batch_size,
                threads_per_worker,
            )
            for result in stream:
                summary.add(result)
                sink.write(result)
                if on_result:
                    on_result(result)
        summary.files = [str(f) for f in sink.files]
    finally:
        if started:
            ray.shutdown()
    summary.seconds = time.perf_counter() - start
    return summary


class _Sink:
    """Buffers records and writes a Parquet part file every ``rows_per_file`` records (+ JSONL lines)."""

    def __init__(self, output_dir: Path, rows_per_file: int, jsonl: bool):
        from dogiqa.sinks import ResultWriter

        self.dir, self.rows = output_dir, max(1, rows_per_file)
        self.run_id = time.strftime("%Y%m%dT%H%M%S") + "-" + uuid.uuid4().hex[:6]
        self.buffer: list[ImageResult] = []
        self.files: list[Path] = []
        self.jsonl = ResultWriter(output_dir / "results.jsonl", append=True) if jsonl else None

    def write(self, result: ImageResult) -> None:
        self.buffer.append(result)
        if self.jsonl:
            self.jsonl.write(result)
        if len(self.buffer) >= self.rows:
            self.flush()

    def flush(self) -> None:
        if self.buffer:
            self.files.append(_write_part(self.dir, self.run_id, len(self.files), self.buffer))
            self.buffer = []

    def __enter__(self) -> _Sink:
        return self

    def __exit__(self, *exc: object) -> None:
        self.flush()  # also on errors: what was scored is kept
        if self.jsonl:
            self.jsonl.close()


def _stream(
    ray: Any,
    paths: list[str],
    config: dict[str, Any],
    num_workers: int,
    cpus_per_worker: float,
    gpus_per_worker: float,
    batch_size: int,
    threads: int | None,
) -> Iterator[ImageResult]:
    """Results as the actors finish them (not in input order)."""
    ray.data.DataContext.get_current().enable_progress_bars = False  # progress goes through on_result
    # results come back one input block at a time: blocks of about 4 batches keep the stream (and what a
    # killed run loses) small, while leaving at least 2 blocks per worker
    batches = -(-len(paths) // batch_size)
    blocks = min(batches, max(2 * num_workers, -(-batches // 4)))
    ds = ray.data.from_items([{"path": p} for p in paths], override_num_blocks=blocks)
    ds = ds.map_batches(
        _ScoreActor,
        fn_constructor_args=(config, threads),
        batch_size=batch_size,
        compute=ray.data.ActorPoolStrategy(size=num_workers),
        batch_format="numpy",
        **_resources(cpus_per_worker, gpus_per_worker),
    )
    try:
        for batch in ds.iter_batches(batch_size=None, batch_format="numpy"):
            for record in batch["record"]:
                yield ImageResult.from_dict(json.loads(str(record)))
    except Exception as exc:  # noqa: BLE001 - e.g. an actor could not load the model
        raise RayRunnerError(f"the Ray run failed (can every worker build the pipeline?): {_root(exc)}") from exc


def _root(exc: BaseException) -> str:
    """The last line of a (remote) traceback: the error that started it."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return lines[-1] if lines else type(exc).__name__


def _resources(cpus: float, gpus: float) -> dict[str, float]:
    res = {"num_cpus": cpus}
    if gpus:
        res["num_gpus"] = gpus
    return res
