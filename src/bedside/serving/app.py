"""The prediction server's HTTP API (FastAPI): predict, outcomes, health, readiness, metrics.

The request path is lean: the body is read as bytes, decoded with orjson, checked against the
production version's feature schema (:mod:`bedside.serving.schema`), scored through the dynamic
batcher, written to the inference log (durable before the response is sent) and answered with
orjson — no pydantic model and no DataFrame per request. ``POST /v1/models/{name}/predict`` is
answered by a small ASGI middleware before FastAPI's router (:class:`PredictFastPath`); the
FastAPI route of the same path runs the same handler and describes the API in OpenAPI (``/docs``).

Every error is ``{"ok": false, "error": {"code", "message", "details"}}`` with the HTTP status of
its :mod:`bedside.errors` class; a bad request is a 4xx, never a 500.
"""

from __future__ import annotations

import asyncio
import gc
import logging
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, Final, Protocol

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from bedside.errors import AuthenticationFailed, BedsideError, InvalidInput, StoreUnavailable
from bedside.serving.batching import Batcher
from bedside.serving.handlers import PredictionHandlers, error_body
from bedside.serving.inference_log import InferenceLog
from bedside.serving.metrics import CONTENT_TYPE, ServerMetrics
from bedside.serving.models import ServedModels
from bedside.serving.openapi import OUTCOMES_BODY, PREDICT_BODY, PREDICT_RESPONSES

__all__ = ["Background", "PredictFastPath", "ServingSettings", "create_app"]

logger = logging.getLogger(__name__)

_JSON: Final = "application/json"
_JSON_HEADER: Final = (b"content-type", b"application/json")
_PREFIX: Final = "/v1/models/"
_SUFFIX: Final = "/predict"
_STATUS_CODES: Final = {404: "not_found", 405: "method_not_allowed"}


class Background(Protocol):
    """A background task the server starts after start-up and stops at shutdown."""

    def start(self) -> object: ...

    def stop(self) -> None: ...


@dataclass(frozen=True, slots=True)
class ServingSettings:
    """How the prediction server batches, limits and logs.

    Attributes:
        max_batch: most rows in one model call.
        max_wait: longest a request waits to join a batch when the model is idle under load (s).
        model_threads: OpenMP threads per model call (None: as the environment says).
        shadow_queue: production batches that may wait for the shadow model before it skips.
        shadow_linger: how long the shadow gathers queued work into one call (s).
        max_records: most records in one predict (or outcomes) request.
        max_body_bytes: largest request body accepted.
    """

    max_batch: int = 64
    max_wait: float = 0.001
    model_threads: int | None = 1
    shadow_queue: int = 64
    shadow_linger: float = 0.05
    max_records: int = 1000
    max_body_bytes: int = 4 * 1024 * 1024


def _json(body: bytes, status: int = 200) -> Response:
    return Response(body, status_code=status, media_type=_JSON)


class PredictFastPath:
    """ASGI middleware answering ``POST /v1/models/{name}/predict`` without the router.

    Everything else goes on to the FastAPI app unchanged.
    """

    def __init__(self, app: ASGIApp, handlers: PredictionHandlers) -> None:
        self.app = app
        self.handlers = handlers

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST":
            path: str = scope["path"]
            if path.startswith(_PREFIX) and path.endswith(_SUFFIX):
                name = path[len(_PREFIX) : -len(_SUFFIX)]
                if name and "/" not in name:
                    await self._predict(name, receive, send)
                    return
        await self.app(scope, receive, send)

    async def _predict(self, name: str, receive: Receive, send: Send) -> None:
        handlers = self.handlers
        limit = handlers.max_body_bytes
        chunks: list[bytes] = []
        size = 0
        more = True
        while more:
            message: Message = await receive()
            if message["type"] != "http.request":  # the client went away
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size <= limit:
                chunks.append(chunk)
            more = message.get("more_body", False)
        try:
            if size > limit:
                error = handlers.too_large()
                status, body = error.http_status, error_body(error)
            else:
                status, body = await handlers.predict(name, b"".join(chunks))
        except Exception as exc:  # a fault of ours: answered in the error shape, and logged
            logger.error("unexpected error in predict: %s", type(exc).__name__)
            logger.debug("traceback of the unexpected error", exc_info=exc)
            status, body = 500, handlers.unexpected_body()
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [_JSON_HEADER, (b"content-length", str(len(body)).encode())],
            }
        )
        await send({"type": "http.response.body", "body": body})


def create_app(
    models: ServedModels,
    log: InferenceLog,
    settings: ServingSettings | None = None,
    *,
    metrics: ServerMetrics | None = None,
    close_log: bool = True,
    fast_path: bool = True,
    platform: Any | None = None,
    on_change: Callable[[], object] | None = None,
    background: Sequence[Background] = (),
) -> FastAPI:
    """Return the prediction server app.

    Args:
        models: the production and shadow slots of every served model name (hot-swappable).
        log: the inference log every prediction is written to before it is answered.
        settings: batching and request limits.
        metrics: where figures are kept (a new set by default); the log's group commits are
            recorded in it too.
        close_log: close ``log`` when the server shuts down (after the last response).
        fast_path: answer predict in :class:`PredictFastPath`, before the router (the same
            handler either way; off only to compare or debug).
        platform: a :class:`bedside.service.Platform`: adds the token-protected governance
            endpoints (:mod:`bedside.serving.governance`) under ``/v1/governance``.
        on_change: called after a governance call changed a deployment (e.g. re-read the
            registry into ``models``, so this process serves the change at once).
        background: started once the server has started (e.g. the registry watcher, the
            monitoring scheduler) and stopped at shutdown, before the log closes.
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
        commit=log.write_now,
        metrics=metrics,
        shadow_linger=settings.shadow_linger,
    )
    handlers = PredictionHandlers(
        models=models,
        log=log,
        batcher=batcher,
        metrics=metrics,
        max_records=settings.max_records,
        max_body_bytes=settings.max_body_bytes,
    )

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        # Everything loaded so far (libraries, models) lives as long as the server. Moving it out
        # of the collector's reach turns each full collection from ~90 ms — a pause for every
        # request in flight — into a scan of recent objects only.
        gc.collect()
        gc.freeze()
        for task in background:
            task.start()
        yield
        for task in background:
            task.stop()
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
    app.state.handlers = handlers
    app.state.platform = platform
    if platform is not None:
        from bedside.serving.governance import governance_router

        app.include_router(governance_router(platform, on_change=on_change))
    if fast_path:
        app.add_middleware(PredictFastPath, handlers=handlers)
    _install_error_handlers(app)

    async def read_body(request: Request) -> bytes:
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > settings.max_body_bytes:
            raise handlers.too_large()
        return await request.body()

    @app.post(
        "/v1/models/{name}/predict",
        openapi_extra={"requestBody": PREDICT_BODY},
        responses=PREDICT_RESPONSES,
        summary="Score one record or a batch with the production model",
    )
    async def predict(name: str, request: Request) -> Response:
        status, body = await handlers.predict(name, await read_body(request))
        return _json(body, status)

    @app.post(
        "/v1/models/{name}/outcomes",
        openapi_extra={"requestBody": OUTCOMES_BODY},
        summary="Attach outcome labels to earlier predictions by request id",
    )
    async def outcomes(name: str, request: Request) -> Response:
        status, body = await handlers.outcomes(name, await read_body(request))
        return _json(body, status)

    @app.get("/v1/models/{name}", summary="The production version and its feature schema")
    async def describe(name: str) -> Response:
        status, body = handlers.describe(name)
        return _json(body, status)

    @app.get("/healthz", summary="Liveness: the process answers")
    async def healthz() -> Response:
        return _json(b'{"ok":true}')

    @app.get(
        "/readyz", summary="Readiness: every served name has a version and the log is writable"
    )
    async def readyz() -> Response:
        described = dict(models.describe())
        if models.is_ready() and log.is_healthy:
            return _json(orjson.dumps({"ok": True, "models": described}))
        reason = (
            "the inference log is not writable"
            if not log.is_healthy
            else "no version is deployed (bedside version deploy-shadow NAME@VERSION)"
        )
        error = StoreUnavailable(f"Not ready: {reason}.", details={"models": described})
        return _json(error_body(error), error.http_status)

    @app.get("/metrics", summary="Prometheus metrics (text exposition format)")
    async def metrics_endpoint() -> Response:
        return Response(metrics.registry.render(), media_type=CONTENT_TYPE)

    return app


def _install_error_handlers(app: FastAPI) -> None:
    async def bedside_error(_: Request, exc: Exception) -> Response:
        assert isinstance(exc, BedsideError)
        response = _json(error_body(exc), exc.http_status)
        if isinstance(exc, AuthenticationFailed):
            response.headers["WWW-Authenticate"] = 'Bearer realm="bedside"'
        return response

    async def http_error(_: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        code = _STATUS_CODES.get(exc.status_code, "http_error")
        message = {
            404: "No such endpoint. See /docs for the API.",
            405: "This endpoint does not accept that method. See /docs for the API.",
        }.get(exc.status_code, str(exc.detail))
        body: dict[str, Any] = {"ok": False, "error": {"code": code, "message": message}}
        body["error"]["details"] = {}
        return _json(orjson.dumps(body), exc.status_code)

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
        error = InvalidInput(
            "The request does not match the API; see the listed fields.",
            details={"errors": errors, "error_count": len(errors)},
        )
        return _json(error_body(error), error.http_status)

    async def unexpected(_: Request, exc: Exception) -> Response:
        # The exception's text may quote a value, so only its type is logged (traceback at DEBUG).
        logger.error("unexpected server error: %s", type(exc).__name__)
        logger.debug("traceback of the unexpected error", exc_info=exc)
        return _json(PredictionHandlers.unexpected_body(), 500)

    app.add_exception_handler(BedsideError, bedside_error)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(Exception, unexpected)
