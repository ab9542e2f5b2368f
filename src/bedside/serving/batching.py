"""Dynamic batching: concurrent requests share one model call; the shadow scores afterwards.

Requests queue on the event loop. When the model thread is idle and load is light, a request is
scored at once (a batch of one). While a model call runs, new requests wait and are all scored by
the next call — so the batch size follows the load with no timer on the hot path. When the model
is idle but recent batches were large (load is high), a request waits at most ``max_wait`` seconds
for others to join, up to the recent batch size; ``max_batch`` caps the rows of one call.

Model calls run in one dedicated thread, off the event loop; OpenMP inside it is limited to
``model_threads`` threads (1 by default: on a shared machine more threads make each call slower).
After a call the same thread builds each request's log records and hands them to ``commit`` (the
inference log), which answers each request once its records are durable.

The shadow model scores the same rows *after* the production results have been handed back, in
its own thread (at a lower CPU priority) with a bounded queue, gathering ``shadow_linger``
seconds of work per call: its output goes to ``on_shadow`` (the inference log), never to a
response; when it is slow its queue fills and further work is skipped (and recorded as skipped);
when it raises, the failure is counted and recorded. Neither can delay or fail a response.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import os
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from bedside.errors import BedsideError, ModelError, StoreUnavailable
from bedside.serving.metrics import ServerMetrics
from bedside.serving.models import DeployedModel

__all__ = ["Batcher", "ShadowWork", "limit_openmp_threads"]

logger = logging.getLogger(__name__)

_SHADOW_MAX_ROWS = 1024
# On Linux a thread's nice value is its own: the shadow yields the CPU to the request path.
_SHADOW_NICENESS = 10

ShadowSink = Callable[[list[dict[str, Any]]], None]


def limit_openmp_threads(threads: int | None) -> None:
    """Limit OpenMP parallelism of model calls made from the calling thread to ``threads``."""
    if threads is None:
        return
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - threadpoolctl comes with scikit-learn
        logger.debug("threadpoolctl is not installed; OpenMP threads are not limited")
        return
    threadpool_limits(limits=threads, user_api="openmp")


def _lower_priority(niceness: int) -> None:
    """Give the calling thread less CPU than the request path when the machine is busy."""
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), niceness)
    except (AttributeError, OSError):  # pragma: no cover - not Linux, or not permitted
        logger.debug("could not lower the shadow thread's priority")


@dataclass(frozen=True, slots=True)
class ShadowWork:
    """What the shadow model needs for the records of one request."""

    model: DeployedModel
    request_ids: list[str]
    records: list[dict[str, Any]]  # the decoded feature objects (for another feature schema)


#: Builds the log records of one request from its probabilities (runs in the model thread).
EntryMaker = Callable[[list[float]], list[dict[str, Any]]]
#: Makes ``[(records, (future, result)), …]`` durable and resolves each future with its result.
Commit = Callable[[list[tuple[list[dict[str, Any]], Any]]], None]


class _Item:
    __slots__ = ("future", "log_entries", "model", "rows", "shadow")

    def __init__(
        self,
        model: DeployedModel,
        rows: list[list[float]],
        future: asyncio.Future[list[float]],
        shadow: ShadowWork | None,
        log_entries: EntryMaker | None,
    ) -> None:
        self.model = model
        self.rows = rows
        self.future = future
        self.shadow = shadow
        self.log_entries = log_entries


def _model_failed(model: DeployedModel) -> BedsideError:
    return ModelError(
        f"The production model {model.ref} failed to score this request; the failure is "
        "logged. Try again, and tell the model's owners if it recurs.",
        details={"model": model.name, "version": model.version},
    )


def _group_by_model(items: list[_Item]) -> list[list[_Item]]:
    groups: dict[int, list[_Item]] = {}
    for item in items:
        groups.setdefault(id(item.model), []).append(item)
    return list(groups.values())


def _score(model: DeployedModel, rows: list[list[float]]) -> list[float]:
    proba = np.asarray(model.predictor.predict_proba(np.array(rows, dtype=np.float64)))
    if proba.ndim != 2 or proba.shape[0] != len(rows) or proba.shape[1] < 2:
        raise ValueError(f"predict_proba returned shape {proba.shape} for {len(rows)} rows")
    values: list[float] = proba[:, 1].astype(np.float64).tolist()
    return values


class Batcher:
    """Batches concurrent scoring requests into model calls; runs the shadow model after.

    Args:
        max_batch: most rows per model call.
        max_wait: longest a request waits for others while the model is idle under load (s).
        model_threads: OpenMP threads per model call (``None``: leave as configured).
        shadow_queue: most production batches waiting for the shadow model; more are skipped.
        on_shadow: receives the shadow log records (called in the shadow thread).
        commit: makes a batch's log records durable and answers their requests
            (:meth:`bedside.serving.inference_log.InferenceLog.write_now`), called in the model
            thread right after scoring.
        metrics: where batch sizes and model times are recorded.
        shadow_linger: how long the shadow gathers queued work before a call (s).
    """

    def __init__(
        self,
        *,
        max_batch: int = 64,
        max_wait: float = 0.001,
        model_threads: int | None = 1,
        shadow_queue: int = 64,
        on_shadow: ShadowSink | None = None,
        commit: Commit | None = None,
        metrics: ServerMetrics | None = None,
        shadow_linger: float = 0.05,
    ) -> None:
        if max_batch < 1 or max_wait < 0 or shadow_queue < 1:
            raise ValueError("max_batch and shadow_queue must be >= 1 and max_wait >= 0")
        self.max_batch = max_batch
        self.max_wait = max_wait
        self._model_threads = model_threads
        self._on_shadow = on_shadow
        self._commit = commit
        self.shadow_linger = shadow_linger
        self.metrics = metrics or ServerMetrics()
        self._pending: list[_Item] = []
        self._pending_rows = 0
        self._busy = False
        self._closing = False
        self._idle = asyncio.Event()
        self._timer: asyncio.TimerHandle | None = None
        self._recent = 1.0  # moving average of rows per call
        self._executor = concurrent.futures.ThreadPoolExecutor(
            max_workers=1,
            thread_name_prefix="bedside-model",
            initializer=limit_openmp_threads,
            initargs=(model_threads,),
        )
        self._shadow_queue: queue.Queue[list[_Item] | None] = queue.Queue(maxsize=shadow_queue)
        self._shadow_thread = threading.Thread(
            target=self._shadow_loop, name="bedside-shadow", daemon=True
        )
        self._shadow_thread.start()

    @property
    def pending_rows(self) -> int:
        """Return the rows waiting for the next model call."""
        return self._pending_rows

    # ------------------------------------------------------------------------ the event loop

    async def score(
        self,
        model: DeployedModel,
        rows: list[list[float]],
        shadow: ShadowWork | None = None,
        *,
        log_entries: EntryMaker | None = None,
    ) -> list[float]:
        """Return the production probabilities of ``rows`` (scored with ``model``).

        Args:
            model: the production model this request read from its slot.
            rows: the checked rows.
            shadow: what the shadow model needs, if one is deployed.
            log_entries: builds the request's log records from its probabilities; they are
                made durable (through ``commit``) before this returns.

        Raises:
            StoreUnavailable: the server is shutting down, or the log cannot be written.
            ModelError: the model raised (HTTP 503; the failure is logged).
        """
        if self._closing:
            raise StoreUnavailable("The server is shutting down; send the request again.")
        if log_entries is not None and self._commit is None:
            raise ValueError("log_entries needs a Batcher made with commit=")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[list[float]] = loop.create_future()
        self._pending.append(_Item(model, rows, future, shadow, log_entries))
        self._pending_rows += len(rows)
        self._idle.clear()
        if not self._busy:
            target = min(self.max_batch, int(self._recent + 0.5))
            if self._pending_rows >= target or self.max_wait <= 0:
                self._dispatch(loop)
            elif self._timer is None:
                self._timer = loop.call_later(self.max_wait, self._on_timer, loop)
        return await future

    def _on_timer(self, loop: asyncio.AbstractEventLoop) -> None:
        self._timer = None
        if not self._busy and self._pending:
            self._dispatch(loop)

    def _dispatch(self, loop: asyncio.AbstractEventLoop) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        pending = self._pending
        take, rows = 0, 0
        while take < len(pending) and (
            take == 0 or rows + len(pending[take].rows) <= self.max_batch
        ):
            rows += len(pending[take].rows)
            take += 1
        batch, self._pending = pending[:take], pending[take:]
        self._pending_rows -= rows
        self._busy = True
        self._recent = 0.8 * self._recent + 0.2 * rows
        done = self._executor.submit(self._run_batch, batch)
        done.add_done_callback(lambda f: loop.call_soon_threadsafe(self._on_done, batch, f))

    def _on_done(self, batch: list[_Item], done: concurrent.futures.Future[Any]) -> None:
        self._busy = False
        results: list[tuple[list[_Item], list[float] | None, BaseException | None]]
        results = done.result()
        for items, values, error in results:
            if error is not None:
                for item in items:
                    if not item.future.done():
                        item.future.set_exception(error)
                continue
            assert values is not None
            start = 0
            for item in items:
                end = start + len(item.rows)
                # A request whose records went to the log is answered by the log, once durable.
                if item.log_entries is None and not item.future.done():
                    item.future.set_result(values[start:end])
                start = end
        # Responses are handed back above; only now does the shadow get the same rows.
        shadowed = [
            item
            for items, _, error in results
            if error is None
            for item in items
            if item.shadow is not None
        ]
        if shadowed:
            self._queue_shadow(shadowed)
        if self._pending:
            self._dispatch(asyncio.get_running_loop())
        elif not self._busy:
            self._idle.set()

    def shadow_only(self, model: DeployedModel, rows: list[list[float]], work: ShadowWork) -> None:
        """Queue ``rows`` (checked against ``model``'s schema) for the shadow model alone.

        For a model with a shadow version and no production version: the request's prediction
        records are already durable; the shadow's output is logged later, like any shadow output
        (skipped and recorded as skipped when the shadow queue is full).
        """
        loop = asyncio.get_running_loop()
        item = _Item(model, rows, loop.create_future(), work, None)
        self._queue_shadow([item])

    # ------------------------------------------------------------------------ the model thread

    def _run_batch(
        self, batch: list[_Item]
    ) -> list[tuple[list[_Item], list[float] | None, BaseException | None]]:
        out: list[tuple[list[_Item], list[float] | None, BaseException | None]] = []
        for items in _group_by_model(batch):
            model = items[0].model
            rows = [row for item in items for row in item.rows]
            started = time.perf_counter()
            try:
                values = _score(model, rows)
            except Exception as exc:
                logger.error(
                    "production model %s failed on %d rows: %s",
                    model.ref,
                    len(rows),
                    type(exc).__name__,
                )
                out.append((items, None, _model_failed(model)))
                continue
            self.metrics.model_seconds.observe(time.perf_counter() - started, "production")
            self.metrics.batch_rows.observe(len(rows), "production")
            self.metrics.predictions.inc(model.name, "production", amount=len(rows))
            out.append((items, values, self._log(items, values)))
        return out

    def _log(self, items: list[_Item], values: list[float]) -> BaseException | None:
        """Hand the records of ``items`` to the log, which answers them once durable."""
        batches: list[tuple[list[dict[str, Any]], Any]] = []
        start = 0
        for item in items:
            end = start + len(item.rows)
            if item.log_entries is not None:
                part = values[start:end]
                batches.append((item.log_entries(part), (item.future, part)))
            start = end
        if not batches:
            return None
        assert self._commit is not None
        try:
            self._commit(batches)
        except BedsideError as exc:
            return exc
        return None

    # ----------------------------------------------------------------------------- the shadow

    def _queue_shadow(self, items: list[_Item]) -> None:
        try:
            self._shadow_queue.put_nowait(items)
        except queue.Full:
            skipped: list[dict[str, Any]] = []
            for item in items:
                assert item.shadow is not None
                self.metrics.shadow_dropped.inc(item.model.name, amount=len(item.rows))
                skipped.extend(
                    _shadow_entry(item.shadow.model, rid, None, error="skipped: shadow queue full")
                    for rid in item.shadow.request_ids
                )
            self._emit(skipped)

    def _emit(self, entries: list[dict[str, Any]]) -> None:
        if self._on_shadow is not None and entries:
            try:
                self._on_shadow(entries)
            except (
                Exception
            ) as exc:  # the log is closing or failed: the shadow never fails a response
                logger.warning("shadow outputs not logged: %s", type(exc).__name__)

    def _shadow_loop(self) -> None:
        limit_openmp_threads(self._model_threads)
        _lower_priority(_SHADOW_NICENESS)
        stop = False
        while not stop:
            first = self._shadow_queue.get()
            if first is None:
                return
            # Nobody waits for the shadow, so it gathers work for a while: a model call costs
            # about the same for 1 row as for 100, and fewer calls leave the CPU to requests.
            items = list(first)
            deadline = time.monotonic() + self.shadow_linger
            while len(items) < _SHADOW_MAX_ROWS:
                remaining = deadline - time.monotonic()
                try:
                    more = (
                        self._shadow_queue.get(timeout=remaining)
                        if remaining > 0
                        else self._shadow_queue.get_nowait()
                    )
                except queue.Empty:
                    break
                if more is None:
                    stop = True
                    break
                items.extend(more)
            groups: dict[int, list[_Item]] = {}
            for item in items:
                assert item.shadow is not None
                groups.setdefault(id(item.shadow.model), []).append(item)
            for group in groups.values():
                self._emit(self._score_shadow(group))

    def _score_shadow(self, items: list[_Item]) -> list[dict[str, Any]]:
        shadow = items[0].shadow
        assert shadow is not None
        model = shadow.model
        ids: list[str] = []
        rows: list[list[float]] = []
        entries: list[dict[str, Any]] = []
        for item in items:
            work = item.shadow
            assert work is not None
            if model.schema == item.model.schema:
                ids.extend(work.request_ids)
                rows.extend(item.rows)
                continue
            for rid, record in zip(work.request_ids, work.records, strict=True):
                row, errors = model.schema.check_row(record, where="features")
                if row is None:
                    entries.append(
                        _shadow_entry(model, rid, None, error="input: " + errors[0].field)
                    )
                else:
                    ids.append(rid)
                    rows.append(row)
        if not rows:
            return entries
        started = time.perf_counter()
        try:
            values = _score(model, rows)
        except Exception as exc:
            self.metrics.shadow_failures.inc(model.name)
            logger.warning(
                "shadow model %s failed on %d rows: %s", model.ref, len(rows), type(exc).__name__
            )
            return entries + [
                _shadow_entry(model, rid, None, error=type(exc).__name__) for rid in ids
            ]
        self.metrics.model_seconds.observe(time.perf_counter() - started, "shadow")
        self.metrics.batch_rows.observe(len(rows), "shadow")
        self.metrics.predictions.inc(model.name, "shadow", amount=len(rows))
        entries.extend(_shadow_entry(model, rid, p) for rid, p in zip(ids, values, strict=True))
        return entries

    # ------------------------------------------------------------------------------- shutdown

    async def aclose(self, *, shadow_timeout: float = 5.0) -> None:
        """Refuse new work, finish every queued request, then let the shadow drain (bounded)."""
        self._closing = True
        while self._busy or self._pending:
            self._idle.clear()
            if not self._busy and self._pending:
                self._dispatch(asyncio.get_running_loop())
            await self._idle.wait()
        await asyncio.to_thread(self._stop_threads, shadow_timeout)

    def _stop_threads(self, shadow_timeout: float) -> None:
        self._executor.shutdown(wait=True)
        try:
            self._shadow_queue.put(None, timeout=shadow_timeout)
        except queue.Full:
            logger.warning("shadow queue still full at shutdown; its remaining work is skipped")
            return
        self._shadow_thread.join(shadow_timeout)


def _shadow_entry(
    model: DeployedModel, request_id: str, probability: float | None, *, error: str | None = None
) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "kind": "shadow",
        "request_id": request_id,
        "model": model.name,
        "version": model.version,
        "threshold": model.threshold,
    }
    if probability is None:
        entry["error"] = error
    else:
        entry["probability"] = probability
        entry["decision"] = probability >= model.threshold
    return entry
