"""Dynamic batching: requests from many callers are queued and scored together in one worker thread.

Each caller gets an asyncio future; the worker takes up to ``max_batch`` items, waiting at most ``max_wait_ms``
after the oldest one arrived for more to join, calls ``score_fn`` once for the whole batch and hands every
caller its own result. The queue is bounded: ``submit`` raises ``QueueFull`` (with a retry estimate) beyond it.
The model is only ever touched by the worker thread.
"""

from __future__ import annotations

import asyncio
import math
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")


class QueueFull(Exception):
    """The queue cannot take the items now; ``retry_after`` is a guess in whole seconds."""

    def __init__(self, waiting: int, capacity: int, retry_after: int):
        super().__init__(f"the queue is full ({waiting} of {capacity} images waiting); retry in {retry_after} s")
        self.retry_after = retry_after


class BatcherClosed(Exception):
    """The service is shutting down and takes no new work."""


@dataclass
class _Item(Generic[T]):
    value: T
    future: asyncio.Future
    loop: asyncio.AbstractEventLoop
    arrived: float = field(default_factory=time.monotonic)


@dataclass
class BatchStats:
    batches: int = 0
    items: int = 0
    largest: int = 0
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        mean = self.items / self.batches if self.batches else 0.0
        return {"batches": self.batches, "items": self.items, "largest": self.largest, "mean_batch": round(mean, 3)}


class Batcher(Generic[T, R]):
    """One worker thread that scores queued items in batches; see the module docstring."""

    def __init__(
        self,
        score_fn: Callable[[list[T]], Sequence[R]],
        max_batch: int = 8,
        max_wait_ms: float = 10.0,
        max_queue: int = 64,
        name: str = "dogiqa-batcher",
    ):
        self.score_fn, self.max_batch, self.max_queue = score_fn, max(1, max_batch), max(1, max_queue)
        self.max_wait = max(0.0, max_wait_ms) / 1000.0
        self.stats = BatchStats()
        self._items: deque[_Item[T]] = deque()
        self._cond = threading.Condition()
        self._closing = False
        self._busy = 0  # items in the batch being scored now
        self._batch_seconds = 0.0  # moving average, for Retry-After
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    # -- callers (event loop) -------------------------------------------------------------------------
    def submit(self, values: Sequence[T]) -> list[asyncio.Future]:
        """Queue ``values`` (all or none) and return one future per value, in order."""
        loop = asyncio.get_running_loop()
        with self._cond:
            if self._closing:
                raise BatcherClosed("the service is shutting down")
            if len(self._items) + len(values) > self.max_queue:
                raise QueueFull(len(self._items), self.max_queue, self._retry_after())
            items = [_Item(v, loop.create_future(), loop) for v in values]
            self._items.extend(items)
            self._cond.notify()
        return [it.future for it in items]

    @property
    def waiting(self) -> int:
        return len(self._items)

    def close(self, timeout: float | None = None) -> bool:
        """Take no new work, score everything already queued, stop the worker. True when it stopped in time."""
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def _retry_after(self) -> int:
        batches_ahead = math.ceil((len(self._items) + self._busy) / self.max_batch)
        return max(1, math.ceil(batches_ahead * max(self._batch_seconds, self.max_wait)))

    # -- the worker thread ----------------------------------------------------------------------------
    def _run(self) -> None:
        while True:
            batch = self._next_batch()
            if batch is None:
                return
            self._score(batch)

    def _next_batch(self) -> list[_Item[T]] | None:
        with self._cond:
            while True:
                while not self._items and not self._closing:
                    self._cond.wait()
                if not self._items:
                    return None  # closing and drained
                deadline = self._items[0].arrived + self.max_wait
                while len(self._items) < self.max_batch and not self._closing:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        break
                    self._cond.wait(remaining)
                batch = [self._items.popleft() for _ in range(min(self.max_batch, len(self._items)))]
                batch = [it for it in batch if not it.future.cancelled()]  # callers that went away
                if batch:
                    self._busy = len(batch)
                    return batch

    def _score(self, batch: list[_Item[T]]) -> None:
        start = time.perf_counter()
        try:
            results = list(self.score_fn([it.value for it in batch]))
            if len(results) != len(batch):
                raise RuntimeError(f"score_fn returned {len(results)} results for {len(batch)} items")
        except Exception as exc:  # noqa: BLE001 - every caller of the batch learns why
            for it in batch:
                _post(it, None, exc)
        else:
            for it, result in zip(batch, results, strict=True):
                _post(it, result, None)
        elapsed = time.perf_counter() - start
        with self._cond:
            self._busy = 0
            self._batch_seconds = elapsed if not self.stats.batches else 0.8 * self._batch_seconds + 0.2 * elapsed
            self.stats.batches += 1
            self.stats.items += len(batch)
            self.stats.largest = max(self.stats.largest, len(batch))
            self.stats.seconds += elapsed


def _post(item: _Item, result: Any, exc: BaseException | None) -> None:
    try:
        item.loop.call_soon_threadsafe(_resolve, item.future, result, exc)
    except RuntimeError:  # the caller's event loop is closed: nobody is waiting any more
        pass


def _resolve(future: asyncio.Future, result: Any, exc: BaseException | None) -> None:
    if future.done():  # cancelled: the caller went away
        return
    if exc is not None:
        future.set_exception(exc)
    else:
        future.set_result(result)
