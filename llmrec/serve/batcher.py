"""Request micro-batching: concurrent requests share one batched call.

A bounded asyncio queue feeds one worker. The worker takes the first waiting request, then keeps
collecting until ``max_batch`` requests or ``max_wait_ms`` after the first, and runs the batch in
its own thread (the event loop keeps accepting requests meanwhile; requests that arrive during a
batch form the next one). A full queue refuses at once (HTTP 503) rather than letting latency
grow without bound. ``max_batch=1`` is the unbatched baseline: one request per call, in arrival
order. The sizes of the batches formed are counted and logged.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, Sequence

log = logging.getLogger("llmrec.serve")


class QueueFull(RuntimeError):
    """The request queue is at its bound (HTTP 503)."""


class MicroBatcher:
    def __init__(self, fn: Callable[[list[Any]], Sequence[Any]], *, max_batch: int = 32, max_wait_ms: float = 10.0,
                 max_queue: int = 256, name: str = "batch"):
        if max_batch < 1 or max_queue < 1 or max_wait_ms < 0:
            raise ValueError("max_batch and max_queue must be >= 1 and max_wait_ms >= 0")
        self.fn, self.max_batch, self.max_wait, self.max_queue = fn, max_batch, max_wait_ms / 1000, max_queue
        self.name = name
        self.sizes: Counter[int] = Counter()
        self.busy_s = 0.0
        self._queue: asyncio.Queue | None = None
        self._task: asyncio.Task | None = None
        self._pool = ThreadPoolExecutor(1, thread_name_prefix=f"llmrec-{name}")

    async def start(self) -> None:
        self._queue = asyncio.Queue(self.max_queue)
        self._task = asyncio.create_task(self._work())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
        self._pool.shutdown(wait=False, cancel_futures=True)

    async def submit(self, item: Any) -> Any:
        if self._queue is None:
            raise RuntimeError("MicroBatcher.start() was not awaited (the app's lifespan starts it)")
        fut = asyncio.get_running_loop().create_future()
        try:
            self._queue.put_nowait((item, fut))
        except asyncio.QueueFull:
            raise QueueFull(f"{self.name} queue full ({self.max_queue} waiting); retry later") from None
        return await fut

    async def _work(self) -> None:
        loop = asyncio.get_running_loop()
        assert self._queue is not None
        while True:
            batch = [await self._queue.get()]
            deadline = loop.time() + self.max_wait
            while len(batch) < self.max_batch:
                left = deadline - loop.time()
                if left <= 0:
                    break
                try:
                    batch.append(await asyncio.wait_for(self._queue.get(), left))
                except asyncio.TimeoutError:
                    break
            batch = [(item, fut) for item, fut in batch if not fut.done()]  # drop requests whose client left
            if not batch:
                continue
            t0 = time.perf_counter()
            try:
                results = await loop.run_in_executor(self._pool, self.fn, [item for item, _ in batch])
            except Exception as exc:  # one failure fails the batch's requests, not the worker
                for _, fut in batch:
                    if not fut.done():
                        fut.set_exception(exc)
                continue
            finally:
                self.busy_s += time.perf_counter() - t0
                self.sizes[len(batch)] += 1
            log.info("%s: batch of %d in %.0f ms (%d waiting)", self.name, len(batch),
                     (time.perf_counter() - t0) * 1000, self._queue.qsize())
            for (_, fut), res in zip(batch, results):
                if not fut.done():
                    fut.set_result(res)

    def stats(self) -> dict[str, Any]:
        n = sum(self.sizes.values())
        served = sum(k * v for k, v in self.sizes.items())
        return {"max_batch": self.max_batch, "max_wait_ms": self.max_wait * 1000, "max_queue": self.max_queue,
                "batches": n, "requests": served, "mean_batch": round(served / n, 2) if n else None,
                "batch_sizes": {str(k): v for k, v in sorted(self.sizes.items())},
                "waiting": self._queue.qsize() if self._queue is not None else 0,
                "busy_seconds": round(self.busy_s, 3)}
