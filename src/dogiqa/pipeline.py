"""The staged pipeline: images move through load | segment | preprocess | score | finish at the same time.

====================  ======================================================================================
stage                 runs in
====================  ======================================================================================
load / decode         ``load_workers`` threads (PIL decoding and hashing release the GIL)
segment (+ crops)     ``segment_workers`` threads; torch segmenters (SAM 2) release the GIL, and on CUDA each
                      thread has its own stream, so SAM 2 and the VLM share the card. Segmenters that hold the
                      GIL (scikit-image's, ``parallel = "process"``) run in ``segment_processes`` processes.
preprocess            one thread: the scorer's CPU work for the next chunk (the VLM's processor) while the
                      model runs the current one (``prepare_crops`` / ``score_prepared``, when the scorer has them)
score + finish        one thread: the model on the crops of ``chunk_size`` images at a time, then aggregation
write                 the caller, consuming the records as they come (``run_local`` writes them)
====================  ======================================================================================

Chunks are the serial path's chunks (consecutive images in input order), so scores are identical to it.
Records come out in input order. At most ``max_in_flight`` images are between being read from the source and
being handed to the caller, whatever the collection's size (memory stays flat). The stages are
``DogIQA``'s own (``_load``, ``_segment``, ``_score_jobs``): a failure of any stage for one image becomes that
image's error record, as in the serial path.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import queue
import sys
import threading
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from dogiqa.results import ImageResult

if TYPE_CHECKING:
    from dogiqa.api import DogIQA, Source, _Job

_END = object()


@dataclass(frozen=True)
class PipelineOptions:
    """Knobs of the staged pipeline. ``None`` picks a value for this machine (see :meth:`resolved`).

    ``load_workers``: decoding threads. ``segment_workers``: segmentation threads (default: 1 on CUDA or for
    GIL-bound segmenters, else CPU cores / torch threads, at most 4). ``segment_processes``: worker processes
    for segmenters that hold the GIL (scikit-image's; ignored for others); 0 runs them in a thread, which
    still overlaps the model; None (the default) is automatic: one per CPU core (at most 4) on a machine
    with 2 cores or more, taking over after the first ``processes_after`` images (a short run never pays
    their start-up), when the program allows worker processes (:func:`allow_worker_processes`: the ``dogiqa``
    command does), else 0. Workers are started with ``spawn``, which re-imports the main script: a script
    that asks for them must guard its entry point with ``if __name__ == "__main__":``.
    ``max_in_flight``: images between the source and the output at once (at least two chunks, so that one
    is scored while the next is prepared; default 4 chunks + 2 per worker).
    """

    load_workers: int | None = None
    segment_workers: int | None = None
    segment_processes: int | None = None
    max_in_flight: int | None = None
    processes_after: int = 32

    def resolved(self, segmenter: Any, chunk_size: int) -> PipelineOptions:
        cores = os.cpu_count() or 1
        on_cuda = str(getattr(segmenter, "device", "cpu")).startswith("cuda")
        by_process = getattr(segmenter, "parallel", "thread") == "process"
        seg_threads = self.segment_workers
        if seg_threads is None:  # CPU torch segmenters: one thread per group of torch threads
            seg_threads = 1 if on_cuda or by_process else max(1, min(4, cores // _torch_threads()))
        procs, after = self.segment_processes, 0
        if procs is None:  # automatic: see the class docstring
            procs, after = (min(4, cores), self.processes_after) if cores >= 2 and _WORKERS_ALLOWED else (0, 0)
        procs = procs if by_process else 0
        flight = self.max_in_flight or 4 * chunk_size + 2 * (seg_threads + (self.load_workers or 2))
        return PipelineOptions(
            load_workers=max(1, self.load_workers or 2),
            segment_workers=max(1, seg_threads, procs),
            segment_processes=max(0, procs),
            max_in_flight=max(2 * chunk_size, flight),
            processes_after=max(0, after) if procs else 0,
        )


_WORKERS_ALLOWED = False


def allow_worker_processes(allowed: bool = True) -> None:
    """Let automatic options (``segment_processes=None``) start worker processes in this program. A program
    whose main script is safe to re-import (guarded entry point) may call it; the ``dogiqa`` command does."""
    global _WORKERS_ALLOWED
    _WORKERS_ALLOWED = allowed


def _torch_threads() -> int:
    """torch's intra-op threads; 1 when no torch code has run (a classical scorer: torch is not imported)."""
    torch = sys.modules.get("torch")
    return max(1, torch.get_num_threads()) if torch is not None else 1


@dataclass
class FlightStats:
    """Instrumentation: images in flight now and at most (between reading a source and yielding its record)."""

    now: int = 0
    peak: int = 0
    read: int = 0
    yielded: int = 0


class StagedPipeline:
    """Runs a :class:`dogiqa.api.DogIQA`'s stages concurrently. Reusable: the worker processes (if any) are
    started once and kept until :meth:`close`; threads live for one :meth:`run`."""

    def __init__(self, iqa: DogIQA, options: PipelineOptions | None = None):
        self.iqa = iqa
        self.options = (options or PipelineOptions()).resolved(iqa.segmenter, iqa.chunk_size)
        self.stats = FlightStats()
        self._procs: ProcessPoolExecutor | None = None
        self._streams = threading.local()
        self._lock = threading.Lock()
        self._segmented = 0  # images segmented by this pipeline (all runs)

    # -- public ------------------------------------------------------------------------------------------
    def run(self, sources: Iterable[Source]) -> Iterator[ImageResult]:
        """Records in input order, each as soon as it and all before it are done."""
        run = _Run(self, sources)
        try:
            yield from run.records()
        finally:
            run.stop()

    def close(self) -> None:
        with self._lock:
            if self._procs is not None:
                self._procs.shutdown(wait=True, cancel_futures=True)
                self._procs = None

    def __enter__(self) -> StagedPipeline:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- stage plumbing ----------------------------------------------------------------------------------
    def _segment(self, job: _Job) -> _Job:
        """The segment stage for one job, on this thread's CUDA stream or in a worker process (automatic
        options: after the first ``processes_after`` images)."""
        with self._lock:
            self._segmented += 1
            by_process = self.options.segment_processes > 0 and self._segmented > self.options.processes_after
        with self._stream():
            return self.iqa._segment(job, self._in_process if by_process else None)

    def _in_process(self, image: Any) -> list[np.ndarray]:
        with self._lock:
            if self._procs is None:
                self._procs = ProcessPoolExecutor(
                    max_workers=self.options.segment_processes,
                    mp_context=multiprocessing.get_context("spawn"),  # never fork a process running threads
                    initializer=_init_worker,
                    initargs=(self.iqa.segmenter,),
                )
            pool = self._procs
        shape, packed = pool.submit(_segment_in_worker, np.asarray(image)).result()
        return _unpack(shape, packed)

    def _stream(self) -> contextlib.AbstractContextManager:
        """This thread's own CUDA stream when the segmenter runs on CUDA (SAM 2 beside the VLM)."""
        device = str(getattr(self.iqa.segmenter, "device", "cpu"))
        if not device.startswith("cuda"):
            return contextlib.nullcontext()
        import torch

        stream = getattr(self._streams, "stream", None)
        if stream is None:
            stream = self._streams.stream = torch.cuda.Stream(device=device)
        return torch.cuda.stream(stream)


class _Run:
    """One pass over a collection: a reader thread, the stage executors, a preprocess and a score thread."""

    def __init__(self, pipe: StagedPipeline, sources: Iterable[Source]):
        self.pipe, self.iqa, opts = pipe, pipe.iqa, pipe.options
        self.slots = threading.Semaphore(opts.max_in_flight or 1)
        self.stop_event = threading.Event()
        self.loaders = ThreadPoolExecutor(opts.load_workers, thread_name_prefix="dogiqa-load")
        self.segmenters = ThreadPoolExecutor(opts.segment_workers, thread_name_prefix="dogiqa-segment")
        self.chunks: queue.Queue = queue.Queue()  # (futures of one chunk) | _END | exception; bounded by slots
        self.prepared: queue.Queue = queue.Queue(maxsize=1)  # (jobs, prepared crops) | _END | exception
        self.out: queue.Queue = queue.Queue()  # ImageResult | _END | exception
        self.error: BaseException | None = None
        loops = [(lambda: self._read(sources), self.chunks), (self._preprocess, self.prepared), (self._score, self.out)]
        self.threads = [threading.Thread(target=self._guard, args=loop, daemon=True) for loop in loops]
        for t in self.threads:
            t.start()

    def _guard(self, loop: Any, downstream: queue.Queue) -> None:
        """Run a stage loop; an unexpected error (a bug, a failing source iterator) ends the run with it."""
        try:
            loop()
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer, re-raised there
            self._put(downstream, exc)
        else:
            self._put(downstream, _END)

    def _put(self, q: queue.Queue, item: Any) -> bool:
        while not self.stop_event.is_set():
            try:
                q.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _get(self, q: queue.Queue) -> Any:
        while not self.stop_event.is_set():
            try:
                return q.get(timeout=0.1)
            except queue.Empty:
                continue
        return _END

    # -- the stage loops ---------------------------------------------------------------------------------
    def _read(self, sources: Iterable[Source]) -> None:
        """Take a slot, then start loading; group the futures into the serial path's chunks."""
        chunk: list[Future] = []
        size = self.iqa.chunk_size
        try:
            for source in sources:
                while not self.slots.acquire(timeout=0.1):
                    if self.stop_event.is_set():
                        return
                if self.stop_event.is_set():
                    return
                self._count(+1)
                chunk.append(self.loaders.submit(self._load, source))
                if len(chunk) >= size:
                    self._put(self.chunks, chunk)
                    chunk = []
        finally:  # also when the source fails: the images read before are scored first
            if chunk:
                self._put(self.chunks, chunk)

    def _load(self, source: Source) -> _Job | Future:
        """Load one image and hand it to the segment stage (returns that stage's future)."""
        job = self.iqa._load(source)
        if job.failed or not self.iqa.aggregation.uses_local or self.stop_event.is_set():
            return job
        return self.segmenters.submit(self.pipe._segment, job)

    def _preprocess(self) -> None:
        """Wait for the chunk's images (in order), then the scorer's CPU work on their crops."""
        while True:
            item = self._get(self.chunks)
            if item is _END:
                return
            if isinstance(item, BaseException):
                raise item
            jobs = [_resolve(f) for f in item]
            prepare = getattr(self.iqa.scorer, "prepare_crops", None)
            try:
                prepared = prepare([c for j in jobs if not j.failed for c in j.crops]) if prepare else None
            except Exception:  # noqa: BLE001 - then the score stage asks score_crops (which isolates images)
                prepared = None
            if not self._put(self.prepared, (jobs, prepared)):
                return

    def _score(self) -> None:
        while True:
            item = self._get(self.prepared)
            if item is _END:
                return
            if isinstance(item, BaseException):
                raise item
            jobs, prepared = item
            self.iqa._score_jobs(jobs, prepared)
            for job in jobs:
                if not self._put(self.out, job.result):
                    return

    # -- the consumer side ----------------------------------------------------------------------------------
    def records(self) -> Iterator[ImageResult]:
        while True:
            item = self.out.get()
            if item is _END:
                return
            if isinstance(item, BaseException):
                raise item
            self.pipe.stats.yielded += 1
            yield item
            self._count(-1)
            self.slots.release()

    def _count(self, delta: int) -> None:
        stats = self.pipe.stats
        with self.pipe._lock:
            stats.now += delta
            stats.peak = max(stats.peak, stats.now)
            if delta > 0:
                stats.read += 1

    def stop(self) -> None:
        """End the run (also when the consumer stops early): threads exit, queued work is dropped."""
        self.stop_event.set()
        for pool in (self.loaders, self.segmenters):
            pool.shutdown(wait=False, cancel_futures=True)  # queued work is dropped, waiting stages wake up
        for t in self.threads:
            t.join()
        for pool in (self.loaders, self.segmenters):
            pool.shutdown(wait=True)
        with self.pipe._lock:
            self.pipe.stats.now = 0


def _resolve(future: Future) -> _Job:
    """The job behind a load future (which may hold a segmentation future)."""
    out = future.result()
    return out.result() if isinstance(out, Future) else out


# -- worker processes (segmenters that hold the GIL) ---------------------------------------------------------
_WORKER_SEGMENTER: Any = None


def _init_worker(segmenter: Any) -> None:
    global _WORKER_SEGMENTER
    _WORKER_SEGMENTER = segmenter


def _segment_in_worker(pixels: np.ndarray) -> tuple[tuple[int, ...], np.ndarray]:
    """Masks of one image, bit-packed (8x less to send back)."""
    from PIL import Image

    masks = _WORKER_SEGMENTER.segment(Image.fromarray(pixels))
    if not len(masks):
        return (0, *pixels.shape[:2]), np.zeros(0, np.uint8)
    stack = np.stack([np.asarray(m, bool) for m in masks])
    return stack.shape, np.packbits(stack.ravel())


def _unpack(shape: tuple[int, ...], packed: np.ndarray) -> list[np.ndarray]:
    n = int(np.prod(shape))
    flat = np.unpackbits(packed, count=n).astype(bool) if n else np.zeros(0, bool)
    return list(flat.reshape(shape))
