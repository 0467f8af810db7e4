"""Group commit: deliveries arriving together are recorded in one transaction.

Each webhook request hands its delivery to the recorder and waits. One writer
task takes every delivery waiting at that moment, records them all with a
few statements (bridge/store.py `record_deliveries`) and commits once; only
after that commit succeeds does each request get its answer, so a 2xx still
means the delivery is durably recorded. Nothing waits for a batch to fill:
a lone delivery is written at once, and the deliveries that arrive while one
batch commits make up the next.

When a batch's statements fail (the database refuses one row), its
deliveries are recorded again one transaction each, so that only the bad one
fails. When a commit fails, no delivery of that batch is answered 2xx: each
request raises NotRecorded, which the webhook answers with a 503 so that
GitHub shows a failed delivery that can be redelivered.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence

from sqlalchemy.ext.asyncio import AsyncEngine

from bridge import log
from bridge.store import Pending, Recorded, record_deliveries

MAX_BATCH = 500


class NotRecorded(Exception):
    """The delivery was not recorded: its row was refused, or its commit failed."""


class Recorder:
    """The one writer of this process's deliveries; start() it, then record()."""

    def __init__(self, engine: AsyncEngine, max_batch: int = MAX_BATCH) -> None:
        self.engine = engine
        self.max_batch = max_batch
        self.commits = 0  # transactions committed, for tests and operators
        self.recorded = 0
        # None in the queue asks the writer to stop.
        self._queue: asyncio.Queue[tuple[Pending, asyncio.Future[Recorded]] | None] = (
            asyncio.Queue()
        )
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Start the writer task (in the running event loop)."""
        self._task = asyncio.create_task(self._run(), name="delivery-recorder")

    async def stop(self, grace: float = 10.0) -> None:
        """Record what is waiting (for up to `grace` seconds), then stop the writer."""
        if self._task is None:
            return
        self._queue.put_nowait(None)
        try:
            await asyncio.wait_for(asyncio.shield(self._task), grace)
        except TimeoutError:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    @property
    def waiting(self) -> int:
        """Deliveries queued for the next batch."""
        return self._queue.qsize()

    async def record(self, item: Pending) -> Recorded:
        """Record one delivery; returns once it is committed, or raises NotRecorded."""
        if self._task is None or self._task.done():
            raise NotRecorded("the delivery recorder is not running")
        future: asyncio.Future[Recorded] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait((item, future))
        return await future

    async def _run(self) -> None:
        stopping = False
        while not stopping:
            batch: list[tuple[Pending, asyncio.Future[Recorded]]] = []
            entry = await self._queue.get()
            while True:
                if entry is None:  # stop(): what came before it is written first
                    stopping = True
                else:
                    batch.append(entry)
                if stopping or len(batch) >= self.max_batch or self._queue.empty():
                    break
                entry = self._queue.get_nowait()
            if not batch:
                continue
            try:
                await self._write(batch)
            except Exception as error:  # the writer must outlive any one batch
                _fail(batch, error)

    async def _write(
        self, batch: list[tuple[Pending, asyncio.Future[Recorded]]]
    ) -> None:
        items = [item for item, _ in batch]
        committing = False
        try:
            async with self.engine.begin() as connection:
                results = await record_deliveries(connection, items)
                committing = True  # leaving the block commits
        except Exception as error:
            if committing or len(batch) == 1:
                _fail(batch, error)
                return
            # One row the database refuses must not fail the others with it.
            log.warning(
                "a batch of deliveries failed; recording them one by one",
                deliveries=len(batch),
                error=type(error).__name__,
            )
            for one in batch:
                await self._write([one])
            return
        self.commits += 1
        self.recorded += len(batch)
        _settle(batch, results)


def _settle(
    batch: list[tuple[Pending, asyncio.Future[Recorded]]], results: Sequence[Recorded]
) -> None:
    for (_, future), result in zip(batch, results, strict=True):
        if not future.done():  # a request that gave up has nobody to tell
            future.set_result(result)


def _fail(
    batch: list[tuple[Pending, asyncio.Future[Recorded]]], error: Exception
) -> None:
    log.error(
        "deliveries not recorded",
        deliveries=len(batch),
        delivery_ids=[item.meta.delivery_id for item, _ in batch][:20],
        error=type(error).__name__,
        detail=str(error).splitlines()[0][:200] if str(error) else "",
    )
    for _, future in batch:
        if not future.done():
            future.set_exception(NotRecorded(type(error).__name__))
