"""The prediction server's HTTP API (FastAPI): predict, outcomes, health, readiness, metrics.

The request path is lean: the body is read as bytes, decoded with orjson, checked against the
production version's feature schema (:mod:`bedside.serving.schema`), scored through the dynamic
batcher, written to the inference log (durable before the response is sent) and answered with
orjson — no pydantic model and no DataFrame per request. Pydantic is used only to describe the
API in OpenAPI (``/docs``).

Every error is ``{"ok": false, "error": {"code", "message", "details"}}`` with the HTTP status of
its :mod:`bedside.errors` class; a bad request is a 4xx, never a 500.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, Final

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from bedside.errors import BedsideError, InvalidInput, NotFound, StoreUnavailable
from bedside.serving.batching import Batcher, ShadowWork
from bedside.serving.inference_log import InferenceLog, outcome_entry, prediction_entry
from bedside.serving.metrics import CONTENT_TYPE, ServerMetrics
from bedside.serving.models import DeployedModel, ServedModels
from bedside.serving.openapi import OUTCOMES_BODY, PREDICT_BODY, PREDICT_RESPONSES
from bedside.serving.payloads import parse_body, parse_outcomes, parse_predict

__all__ = ["ServingSettings", "create_app"]

logger = logging.getLogger(__name__)

_JSON: Final = "application/json"
_STATUS_CODES: Final = {404: "not_found", 405: "method_not_allowed", 413: "payload_too_large"}


@dataclass(frozen=True, slots=True)
class ServingSettings:
    """How the prediction server batches, limits and logs.

    Attributes:
        max_batch: most rows in one model call.
        max_wait: longest a request waits to join a batch when the model is idle under load (s).
        model_threads: OpenMP threads per model call (None: as the environment says).
        shadow_queue: production batches that may wait for the shadow model before it skips.
        max_records: most records in one predict (or outcomes) request.
        max_body_bytes: largest request body accepted.
    """

    max_batch: int = 64
    max_wait: float = 0.001
    model_threads: int | None = 1
    shadow_queue: int = 64
    max_records: int = 1000
    max_body_bytes: int = 4 * 1024 * 1024


def _json(body: dict[str, Any], status: int = 200) -> Response:
    return Response(orjson.dumps(body), status_code=status, media_type=_JSON)


def error_response(exc: BedsideError) -> Response:
    """Return the JSON error response of a bedside error, with its class's HTTP status."""
    return _json({"ok": False, "error": exc.to_dict()}, exc.http_status)


def create_app(
    models: ServedModels,
    log: InferenceLog,
    settings: ServingSettings | None = None,
    *,
    metrics: ServerMetrics | None = None,
    close_log: bool = True,
) -> FastAPI:
    """Return the prediction server app.

    Args:
        models: the production and shadow slots of every served model name (hot-swappable).
        log: the inference log every prediction is written to before it is answered.
        settings: batching and request limits.
        metrics: where figures are kept (a new set by default); the log's group commits are
            recorded in it too.
        close_log: close ``log`` when the server shuts down (after the last response).
    """
    settings = settings or ServingSettings()
    metrics = metrics or ServerMetrics()
    if log.observer is None:
        log.observer = metrics.observe_log_group
    batcher = Batcher(
        max_batch=settings.max_batch,
        max_wait=settings.max_wait,
        model_threads=settings.model_threads,
        shadow_queue=settings.shadow_queue,
        on_shadow=log.append_nowait,
        metrics=metrics,
    )

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        await batcher.aclose()
        if close_log:
            await asyncio.to_thread(log.close)
        logger.info("prediction server stopped; inference log flushed")

    app = FastAPI(
        title="bedside prediction server",
        summary="Scores records with the approved production model; logs every prediction.",
        version="1",
        lifespan=lifespan,
    )
    app.state.models = models
    app.state.log = log
    app.state.metrics = metrics
    app.state.batcher = batcher
    _install_error_handlers(app)

    async def read_body(request: Request) -> Any:
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > settings.max_body_bytes:
            raise InvalidInput(
                f"The request body is larger than {settings.max_body_bytes} bytes; split it.",
                details={"limit_bytes": settings.max_body_bytes},
            )
        body = await request.body()
        if len(body) > settings.max_body_bytes:
            raise InvalidInput(
                f"The request body is larger than {settings.max_body_bytes} bytes; split it.",
                details={"limit_bytes": settings.max_body_bytes},
            )
        return parse_body(body)

    def production_of(name: str) -> tuple[DeployedModel, DeployedModel | None]:
        pair = models.get(name)
        if pair is None:
            raise NotFound(
                f"No model called {name!r} is served here.",
                details={"model": name, "served": models.names()},
            )
        production, shadow = pair
        if production is None:
            raise NotFound(
                f"Model {name!r} has no production version deployed.",
                details={"model": name},
            )
        return production, shadow

    @app.post(
        "/v1/models/{name}/predict",
        openapi_extra={"requestBody": PREDICT_BODY},
        responses=PREDICT_RESPONSES,
        summary="Score one record or a batch with the production model",
    )
    async def predict(name: str, request: Request) -> Response:
        started = time.perf_counter()
        received = time.time()
        status = 200
        try:
            # The slot is read once: this request uses this model to the end, whatever swaps.
            production, shadow = production_of(name)
            checked = parse_predict(
                await read_body(request), production.schema, max_records=settings.max_records
            )
            ids = [str(uuid.uuid4()) for _ in checked.rows]
            work = ShadowWork(shadow, ids, checked.records) if shadow is not None else None
            probabilities = await batcher.score(production, checked.rows, work)
            threshold = production.threshold
            shadow_version = shadow.version if shadow is not None else None
            entries = [
                prediction_entry(
                    request_id=rid,
                    received=received,
                    model=production.name,
                    version=production.version,
                    threshold=threshold,
                    inputs=record,
                    probability=p,
                    decision=p >= threshold,
                    shadow_version=shadow_version,
                )
                for rid, record, p in zip(ids, checked.records, probabilities, strict=True)
            ]
            await log.append(entries)
            if checked.is_batch:
                body: dict[str, Any] = {
                    "ok": True,
                    "model": production.name,
                    "version": production.version,
                    "threshold": threshold,
                    "predictions": [
                        {"request_id": rid, "probability": p, "decision": p >= threshold}
                        for rid, p in zip(ids, probabilities, strict=True)
                    ],
                }
            else:
                p = probabilities[0]
                body = {
                    "ok": True,
                    "request_id": ids[0],
                    "model": production.name,
                    "version": production.version,
                    "probability": p,
                    "decision": p >= threshold,
                    "threshold": threshold,
                }
            return _json(body)
        except BedsideError as exc:
            status = exc.http_status
            return error_response(exc)
        finally:
            metrics.requests.inc("predict", str(status))
            metrics.latency.observe(time.perf_counter() - started, "predict")

    @app.post(
        "/v1/models/{name}/outcomes",
        openapi_extra={"requestBody": OUTCOMES_BODY},
        summary="Attach outcome labels to earlier predictions by request id",
    )
    async def outcomes(name: str, request: Request) -> Response:
        started = time.perf_counter()
        status = 200
        try:
            if models.get(name) is None:
                production_of(name)  # raises NotFound
            items = parse_outcomes(await read_body(request), max_records=settings.max_records)
            ids = [item.request_id for item in items]
            unknown = await asyncio.to_thread(log.unknown_ids, name, ids)
            if unknown:
                raise NotFound(
                    f"{len(unknown)} of {len(ids)} request ids have no prediction of model "
                    f"{name!r}; nothing was recorded. Remove them and send the rest again.",
                    details={"unknown_count": len(unknown), "unknown": unknown[:100]},
                )
            now = time.time()
            await log.append(
                [
                    outcome_entry(
                        i.request_id, i.label, i.time if i.time is not None else now, model=name
                    )
                    for i in items
                ]
            )
            return _json({"ok": True, "recorded": len(items)})
        except BedsideError as exc:
            status = exc.http_status
            return error_response(exc)
        finally:
            metrics.requests.inc("outcomes", str(status))
            metrics.latency.observe(time.perf_counter() - started, "outcomes")

    @app.get("/v1/models/{name}", summary="The production version and its feature schema")
    async def describe(name: str) -> Response:
        try:
            production, _ = production_of(name)
        except BedsideError as exc:
            return error_response(exc)
        return _json(
            {
                "ok": True,
                "model": production.name,
                "version": production.version,
                "threshold": production.threshold,
                "features": production.schema.to_dicts(),
            }
        )

    @app.get("/healthz", summary="Liveness: the process answers")
    async def healthz() -> Response:
        return _json({"ok": True})

    @app.get("/readyz", summary="Readiness: every model loaded and the log writable")
    async def readyz() -> Response:
        if models.is_ready() and log.is_healthy:
            return _json({"ok": True, "models": dict(models.describe())})
        reason = "the inference log is not writable" if not log.is_healthy else "no model loaded"
        return error_response(
            StoreUnavailable(f"Not ready: {reason}.", details={"models": dict(models.describe())})
        )

    @app.get("/metrics", summary="Prometheus metrics (text exposition format)")
    async def metrics_endpoint() -> Response:
        return Response(metrics.registry.render(), media_type=CONTENT_TYPE)

    return app


def _install_error_handlers(app: FastAPI) -> None:
    async def bedside_error(_: Request, exc: Exception) -> Response:
        assert isinstance(exc, BedsideError)
        return error_response(exc)

    async def http_error(_: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        code = _STATUS_CODES.get(exc.status_code, "http_error")
        message = {
            404: "No such endpoint. See /docs for the API.",
            405: "This endpoint does not accept that method. See /docs for the API.",
        }.get(exc.status_code, str(exc.detail))
        return _json(
            {"ok": False, "error": {"code": code, "message": message, "details": {}}},
            exc.status_code,
        )

    async def validation_error(_: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        errors = [
            {
                "field": ".".join(str(p) for p in e.get("loc", ())),
                "expected": str(e.get("msg", "")),
                "received": str(e.get("type", "")),
            }
            for e in exc.errors()
        ]
        return error_response(
            InvalidInput(
                "The request does not match the API; see the listed fields.",
                details={"errors": errors, "error_count": len(errors)},
            )
        )

    async def unexpected(_: Request, exc: Exception) -> Response:
        # The exception's text may quote a value, so only its type is logged (traceback at DEBUG).
        logger.error("unexpected server error: %s", type(exc).__name__)
        logger.debug("traceback of the unexpected error", exc_info=exc)
        return _json(
            {
                "ok": False,
                "error": {
                    "code": "internal_error",
                    "message": "The server failed on this request; the error is logged.",
                    "details": {},
                },
            },
            500,
        )

    app.add_exception_handler(BedsideError, bedside_error)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(Exception, unexpected)
