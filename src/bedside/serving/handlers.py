"""What the prediction endpoints do, independent of the web framework: bytes in, bytes out.

:class:`PredictionHandlers` holds the request logic of ``predict`` and ``outcomes``. The FastAPI
routes call it, and so does the ASGI fast path in :mod:`bedside.serving.app` that answers
``POST /v1/models/{name}/predict`` without FastAPI's routing and dependency machinery (a third
of a small request's CPU time). Both give the same answers.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any, Final

import orjson

from bedside.errors import BedsideError, InvalidInput, NotFound
from bedside.serving.batching import Batcher, ShadowWork
from bedside.serving.inference_log import InferenceLog, outcome_entry, prediction_entry
from bedside.serving.metrics import ServerMetrics
from bedside.serving.models import DeployedModel, ServedModels
from bedside.serving.payloads import parse_body, parse_outcomes, parse_predict

__all__ = ["SHADOW_ALONE_MESSAGE", "PredictionHandlers", "error_body"]

#: The ``message`` of an answer for a model with a shadow version and no production version.
SHADOW_ALONE_MESSAGE: Final = (
    "No production version: the request was logged and scored by the shadow version; "
    "no prediction is returned."
)

_UNEXPECTED: Final = orjson.dumps(
    {
        "ok": False,
        "error": {
            "code": "internal_error",
            "message": "The server failed on this request; the error is logged.",
            "details": {},
        },
    }
)


def error_body(exc: BedsideError) -> bytes:
    """Return the JSON error body of a bedside error."""
    return orjson.dumps({"ok": False, "error": exc.to_dict()})


class PredictionHandlers:
    """The logic of the predict and outcomes endpoints.

    Args:
        models: the served slots (read once per request).
        log: the inference log (each record is durable before its answer is returned).
        batcher: the dynamic batcher of model calls.
        metrics: request counts and latencies are recorded here.
        max_records: most records per request.
        max_body_bytes: largest body accepted.
    """

    def __init__(
        self,
        *,
        models: ServedModels,
        log: InferenceLog,
        batcher: Batcher,
        metrics: ServerMetrics,
        max_records: int,
        max_body_bytes: int,
    ) -> None:
        self.models = models
        self.log = log
        self.batcher = batcher
        self.metrics = metrics
        self.max_records = max_records
        self.max_body_bytes = max_body_bytes

    def too_large(self) -> InvalidInput:
        """Return the error for a body over the limit."""
        return InvalidInput(
            f"The request body is larger than {self.max_body_bytes} bytes; split it.",
            details={"limit_bytes": self.max_body_bytes},
        )

    def _models_of(self, name: str) -> tuple[DeployedModel | None, DeployedModel | None]:
        pair = self.models.get(name)
        if pair is None:
            raise NotFound(
                f"No model called {name!r} is served here.",
                details={"model": name, "served": self.models.names()},
            )
        if pair[0] is None and pair[1] is None:
            raise NotFound(
                f"Model {name!r} has no production or shadow version deployed.",
                details={"model": name},
            )
        return pair

    def _production_of(self, name: str) -> tuple[DeployedModel, DeployedModel | None]:
        production, shadow = self._models_of(name)
        if production is None:
            raise NotFound(
                f"Model {name!r} has no production version deployed.", details={"model": name}
            )
        return production, shadow

    def describe(self, name: str) -> tuple[int, bytes]:
        """Answer ``GET /v1/models/{name}``: the production version and its feature schema."""
        try:
            production, _ = self._production_of(name)
        except BedsideError as exc:
            return exc.http_status, error_body(exc)
        return 200, orjson.dumps(
            {
                "ok": True,
                "model": production.name,
                "version": production.version,
                "threshold": production.threshold,
                "features": production.schema.to_dicts(),
            }
        )

    async def predict(self, name: str, body: bytes) -> tuple[int, bytes]:
        """Answer ``POST /v1/models/{name}/predict``; return ``(status, JSON body)``."""
        started = time.perf_counter()
        received = time.time()
        status = 200
        try:
            # The slots are read once: this request uses these models to the end, whatever swaps.
            production, shadow = self._models_of(name)
            if len(body) > self.max_body_bytes:
                raise self.too_large()
            if production is None:
                assert shadow is not None
                return 200, await self._shadow_alone(shadow, body, received)
            checked = parse_predict(
                parse_body(body),
                production.schema,
                max_records=self.max_records,
                allowed_attributes=production.attributes,
            )
            ids = [str(uuid.uuid4()) for _ in checked.rows]
            work = ShadowWork(shadow, ids, checked.records) if shadow is not None else None
            threshold = production.threshold
            shadow_version = shadow.version if shadow is not None else None
            attributes = checked.attributes

            def log_entries(probabilities: list[float]) -> list[dict[str, Any]]:
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
                if attributes is not None:
                    for entry, given in zip(entries, attributes, strict=True):
                        entry["attributes"] = given
                return entries

            # Returns once the records are durable in the inference log.
            probabilities = await self.batcher.score(
                production, checked.rows, work, log_entries=log_entries
            )
            answer: dict[str, Any]
            if checked.is_batch:
                answer = {
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
                answer = {
                    "ok": True,
                    "request_id": ids[0],
                    "model": production.name,
                    "version": production.version,
                    "probability": p,
                    "decision": p >= threshold,
                    "threshold": threshold,
                }
            return 200, orjson.dumps(answer)
        except BedsideError as exc:
            status = exc.http_status
            return status, error_body(exc)
        finally:
            self.metrics.requests.inc("predict", str(status))
            self.metrics.latency.observe(time.perf_counter() - started, "predict")

    async def _shadow_alone(self, shadow: DeployedModel, body: bytes, received: float) -> bytes:
        """Log a request for a model whose only version is in shadow; answer without a prediction.

        The request is checked against the shadow version's schema, its prediction records (with
        no version, probability or decision) are made durable, then the shadow scores it like any
        shadow work — after the answer, never returned.
        """
        checked = parse_predict(
            parse_body(body),
            shadow.schema,
            max_records=self.max_records,
            allowed_attributes=shadow.attributes,
        )
        ids = [str(uuid.uuid4()) for _ in checked.rows]
        attributes: list[dict[str, str] | None] = [None] * len(ids)
        if checked.attributes is not None:
            attributes = list(checked.attributes)
        await self.log.append(
            [
                prediction_entry(
                    request_id=rid,
                    received=received,
                    model=shadow.name,
                    version=None,
                    threshold=None,
                    inputs=record,
                    probability=None,
                    decision=None,
                    shadow_version=shadow.version,
                    attributes=given,
                )
                for rid, record, given in zip(ids, checked.records, attributes, strict=True)
            ]
        )
        self.batcher.shadow_only(shadow, checked.rows, ShadowWork(shadow, ids, checked.records))
        common = {"ok": True, "model": shadow.name, "version": None, "threshold": None}
        if checked.is_batch:
            answer: dict[str, Any] = {
                **common,
                "predictions": [
                    {"request_id": rid, "probability": None, "decision": None} for rid in ids
                ],
            }
        else:
            answer = {
                **common,
                "request_id": ids[0],
                "probability": None,
                "decision": None,
            }
        answer["message"] = SHADOW_ALONE_MESSAGE
        return orjson.dumps(answer)

    async def outcomes(self, name: str, body: bytes) -> tuple[int, bytes]:
        """Answer ``POST /v1/models/{name}/outcomes``; return ``(status, JSON body)``.

        All or nothing: when any request id is unknown (for this model), nothing is recorded and
        the answer is a 404 saying how many were unknown.
        """
        started = time.perf_counter()
        status = 200
        try:
            if self.models.get(name) is None:
                self._models_of(name)  # raises NotFound
            if len(body) > self.max_body_bytes:
                raise self.too_large()
            items = parse_outcomes(parse_body(body), max_records=self.max_records)
            ids = [item.request_id for item in items]
            unknown = await asyncio.to_thread(self.log.unknown_ids, name, ids)
            if unknown:
                raise NotFound(
                    f"{len(unknown)} of {len(ids)} request ids have no prediction of model "
                    f"{name!r}; nothing was recorded. Remove them and send the rest again.",
                    details={"unknown_count": len(unknown), "unknown": unknown[:100]},
                )
            now = time.time()
            await self.log.append(
                [
                    outcome_entry(
                        i.request_id, i.label, i.time if i.time is not None else now, model=name
                    )
                    for i in items
                ]
            )
            return 200, orjson.dumps({"ok": True, "recorded": len(items)})
        except BedsideError as exc:
            status = exc.http_status
            return status, error_body(exc)
        finally:
            self.metrics.requests.inc("outcomes", str(status))
            self.metrics.latency.observe(time.perf_counter() - started, "outcomes")

    @staticmethod
    def unexpected_body() -> bytes:
        """Return the body of a 500 for an unexpected failure (no detail leaks out)."""
        return _UNEXPECTED
