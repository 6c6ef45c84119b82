"""The Ray Data runner: many images over a Ray cluster, one DogIQA pipeline per actor, Parquet out.

Each actor builds the pipeline once from the configuration (``DogIQA.from_config``: the model, the segmenter and
the backend load once per actor) and scores units of work (``dogiqa.sources.plan_units``: a batch
of files, one WebDataset shard, one Parquet row group, a row range of a Hugging Face dataset), reading the
images itself, so the driver never holds image bytes. The driver receives the records as they finish and
writes them to ``output_dir`` as Parquet part files of ``rows_per_file`` records (written to a temporary name
and renamed, so a killed run leaves only complete files); with ``jsonl`` it then rewrites ``results.jsonl``
from the parts (atomically; one line per input). The Parquet columns are the fields of
:class:`dogiqa.results.ImageResult` (``regions``, ``timings`` and ``config`` as JSON strings) plus the
pass-through columns (:func:`dogiqa.sinks.result_to_row` / :func:`dogiqa.sinks.row_to_result`).

The sources are read by dogiqa's own readers inside the actors rather than Ray Data's ``read_webdataset`` /
``read_parquet``: those fail a whole read on one corrupt tar member, and cannot skip the samples a resumed run
has already scored without decoding them; ours give a per-sample error record and skip by key.

Resume: inputs are identified by their stable key (``ImageResult.ident``: the resolved path of a file, shard +
sample key, table + key/row), not by the argument as typed. Inputs with a record in ``output_dir`` are skipped;
failed ones are tried again only with ``retry_failed``. When nothing is left to do, no cluster is started.
:func:`read_results` keeps one record per input (a successful one wins, then the later file).

Ray is an optional extra: ``pip install -e .[ray]``.
"""

from __future__ import annotations

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
from dogiqa.results import ImageResult, display_text
from dogiqa.runners.local import RunSummary
from dogiqa.sinks import JSON_COLUMNS, arrow_schema, result_to_row, row_to_result  # noqa: F401 - re-exported
from dogiqa.sources import SourceError, SourceOptions, Unit, item_ident, plan_units, read_unit

PART_GLOB = "part-*.parquet"


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
    from dogiqa.sources.files import iter_files

    items = [source] if isinstance(source, str | Path) else list(source)
    out: list[str] = []
    for item in items:
        path = Path(item)
        if path.is_file() and path.suffix.lower() in (".parquet", ".pq"):
            out.extend(str(p if Path(p).is_absolute() else path.parent / p) for p in _parquet_paths(path) if p)
            continue
        try:
            out.extend(str(it.image) for it in iter_files(item))
        except SourceError as exc:
            raise RayRunnerError(str(exc)) from exc
    return out


def _parquet_paths(listing: Path) -> list[str]:
    import pyarrow.parquet as pq

    from dogiqa.sources.files import pick_path_column

    try:
        names = pq.read_schema(listing).names
        column = pick_path_column(names, listing)
        values = pq.read_table(listing, columns=[column]).column(column).to_pylist()
    except (OSError, ValueError) as exc:
        raise RayRunnerError(f"{listing}: cannot read the Parquet listing: {exc}") from exc
    return [str(v) for v in values if v is not None]


# -- records <-> Parquet rows ----------------------------------------------------------------------------
def _write_part(output_dir: Path, run_id: str, seq: int, results: list[ImageResult]) -> Path:
    from dogiqa.sinks import write_parquet

    return write_parquet(output_dir / f"part-{run_id}-{seq:05d}.parquet", results)


def _part_files(output_dir: Path) -> list[Path]:
    return sorted(output_dir.glob(PART_GLOB), key=lambda p: (p.stat().st_mtime_ns, p.name))


def _read_part(part: Path, columns: list[str] | None = None) -> Any:
    """A part file (only those of ``columns`` it has: parts of older runs have no ``key``/``source``)."""
    import pyarrow.parquet as pq

    try:
        if columns is not None:
            names = set(pq.read_schema(part).names)
            columns = [c for c in columns if c in names]
        return pq.read_table(part, columns=columns)
    except (OSError, ValueError, KeyError) as exc:  # pyarrow's ArrowInvalid is a ValueError
        raise RayRunnerError(f"{part}: unreadable result file ({exc}); move it away and re-run") from exc


def read_results(output_dir: str | Path) -> list[ImageResult]:
    """All records in ``output_dir``, one per input (a successful record wins, then the latest), by path."""
    from dogiqa.select import once_per_input

    records = (row_to_result(row) for part in _part_files(Path(output_dir)) for row in _read_part(part).to_pylist())
    return sorted(once_per_input(records), key=lambda r: (r.path, r.ident))


def done_idents(output_dir: str | Path, include_failed: bool = True) -> set[str]:
    """Inputs with a record in ``output_dir`` (with ``include_failed`` False: a successful record)."""
    done: set[str] = set()
    for part in _part_files(Path(output_dir)):
        table = _read_part(part, ["path", "key", "source", "error"]).to_pydict()
        n = len(table["path"])
        keys, sources = table.get("key", [None] * n), table.get("source", [None] * n)
        for path, key, src, err in zip(table["path"], keys, sources, table["error"], strict=True):
            if include_failed or err is None:
                done.add(_resolved(path) if key is None else item_ident(src, key))
    return done


def done_paths(output_dir: str | Path) -> set[str]:
    """Inputs with a successful record in ``output_dir`` (their identities)."""
    return done_idents(output_dir, include_failed=False)


def _resolved(path: str) -> str:
    """The identity of a record written before records had keys: its file, resolved."""
    try:
        return str(Path(path).resolve())
    except (OSError, RuntimeError):
        return path


# -- the actor -------------------------------------------------------------------------------------------
class _ScoreActor:
    """Holds one DogIQA pipeline; reads units of work and scores them into JSON records through its staged
    pipeline (``score_many``: the local runner's; its worker processes, if configured, live as long as the
    actor)."""

    def __init__(self, config: dict[str, Any], threads: int | None, options: dict[str, Any]):
        if threads and "torch" in sys.modules:  # otherwise OMP_NUM_THREADS (runtime env) applies at import
            sys.modules["torch"].set_num_threads(threads)
        from dogiqa.api import DogIQA

        self.iqa = DogIQA.from_config(config)
        self.options = SourceOptions(**{**options, "keep_columns": tuple(options["keep_columns"])})

    def __call__(self, batch: dict[str, Any]) -> dict[str, list[str]]:
        records: list[str] = []
        for spec in batch["unit"]:
            unit = Unit(**json.loads(str(spec)))
            try:
                results = list(self.iqa.score_many(read_unit(unit, self.options)))
            except Exception as exc:  # noqa: BLE001 - a worker failure is recorded per input, never fatal
                results = _failed_unit(unit, f"worker failed: {type(exc).__name__}: {exc}")
            records.extend(r.to_json() for r in results)
        return {"record": records}


def _failed_unit(unit: Unit, why: str) -> list[ImageResult]:
    """Error records for every input of a unit that could not be read or scored."""
    skip = set(unit.skip)
    where = unit.ref or "files"
    out = []
    for i, key in enumerate(unit.keys):
        if key not in skip:
            path = unit.files[i] if unit.kind == "files" else f"{where}#{key}"
            out.append(ImageResult(path=path, key=key, source=unit.source, error=f"{path}: {why}"))
    return out


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
    source_options: SourceOptions | None = None,
    retry_failed: bool = False,
) -> RaySummary:
    """Score SOURCE (specs of :mod:`dogiqa.sources`) on a Ray cluster; records go to ``output_dir`` (Parquet
    parts, + ``results.jsonl``).

    ``config``: the pipeline's configuration (a :class:`PipelineConfig`, its dump, or keyword settings with an
    optional ``preset``), validated here before Ray starts; every actor builds its pipeline from it.

    ``address``: ``local`` starts a cluster in this process, ``auto`` joins the running one, or
    ``ray://host:10001``. ``num_workers`` actors, each with ``cpus_per_worker`` CPUs and ``gpus_per_worker``
    GPUs (fractions share a GPU) and one pipeline. ``batch_size`` files go to an actor per call (a shard, a
    Parquet row group or 1000 dataset rows are one call). Inputs with a record are skipped; failed ones are
    scored again only with ``retry_failed``.
    """
    cfg = coerce_config(config)
    settings = cfg.to_dict()  # a usage error stops the run before Ray starts
    _check_server(cfg)
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    specs = [source] if isinstance(source, str | Path) else list(source)
    opts = source_options or SourceOptions()
    try:
        units = plan_units(specs, opts, files_per_unit=max(1, batch_size))
    except SourceError as exc:
        raise RayRunnerError(str(exc)) from exc
    done = done_idents(out, include_failed=not retry_failed)
    todo, skipped = _pending(units, done)
    summary = RaySummary(skipped=skipped)
    if todo:
        _run_units(todo, out, settings, summary, opts, on_result, address, ray_init_kwargs,
                   _runtime_env(runtime_env, threads_per_worker), num_workers, cpus_per_worker, gpus_per_worker,
                   rows_per_file, threads_per_worker)  # fmt: skip
    if jsonl and (todo or not (out / "results.jsonl").exists()):
        _rewrite_jsonl(out)
    summary.seconds = time.perf_counter() - start
    return summary


def _pending(units: list[Unit], done: set[str]) -> tuple[list[Unit], int]:
    """The units with inputs left to score (``skip`` set to their finished keys) and how many are finished."""
    todo, skipped = [], 0
    for unit in units:
        finished = [k for k, i in zip(unit.keys, unit.idents(), strict=True) if display_text(i) in done]
        skipped += len(finished)
        if len(finished) < len(unit.keys):
            unit.skip = finished
            todo.append(unit)
    return todo, skipped


def _run_units(
    todo: list[Unit], out: Path, config: dict[str, Any], summary: RaySummary, opts: SourceOptions,
    on_result: Callable[[ImageResult], None] | None, address: str, init_kwargs: dict[str, Any] | None,
    runtime_env: dict[str, Any], num_workers: int, cpus: float, gpus: float, rows_per_file: int,
    threads: int | None,
) -> None:  # fmt: skip
    ray = _require_ray()
    started = _connect(ray, address, init_kwargs, runtime_env)
    try:
        with _Sink(out, rows_per_file) as sink:
            for result in _stream(ray, todo, config, num_workers, cpus, gpus, threads, opts):
                summary.add(result)
                sink.write(result)
                if on_result:
                    on_result(result)
        summary.files = [str(f) for f in sink.files]
    finally:
        if started:
            ray.shutdown()


def _rewrite_jsonl(out: Path) -> None:
    """``results.jsonl``: one line per input, from every part file, replaced atomically."""
    from dogiqa.atomic import atomic_open

    with atomic_open(out / "results.jsonl", "w") as fh:
        for result in read_results(out):
            fh.write(result.to_json() + "\n")


class _Sink:
    """Buffers records and writes a Parquet part file every ``rows_per_file`` records."""

    def __init__(self, output_dir: Path, rows_per_file: int):
        self.dir, self.rows = output_dir, max(1, rows_per_file)
        self.run_id = time.strftime("%Y%m%dT%H%M%S") + "-" + uuid.uuid4().hex[:6]
        self.buffer: list[ImageResult] = []
        self.files: list[Path] = []

    def write(self, result: ImageResult) -> None:
        self.buffer.append(result)
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


def _stream(
    ray: Any,
    units: list[Unit],
    config: dict[str, Any],
    num_workers: int,
    cpus_per_worker: float,
    gpus_per_worker: float,
    threads: int | None,
    options: SourceOptions,
) -> Iterator[ImageResult]:
    """Results as the actors finish them (not in input order); one unit per call and per block, so records
    stream back unit by unit (and a killed run loses only the units in flight)."""
    ray.data.DataContext.get_current().enable_progress_bars = False  # progress goes through on_result
    rows = [{"unit": json.dumps(dataclasses.asdict(u))} for u in units]
    ds = ray.data.from_items(rows, override_num_blocks=len(rows))
    ds = ds.map_batches(
        _ScoreActor,
        fn_constructor_args=(config, threads, dataclasses.asdict(options)),
        batch_size=1,
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
