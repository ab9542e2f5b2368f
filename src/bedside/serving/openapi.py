"""OpenAPI descriptions of the prediction API's bodies (documentation only: not on the hot path).

The request bodies are read as bytes and checked by :mod:`bedside.serving.payloads` against the
production version's feature schema (``GET /v1/models/{name}`` lists it), so these schemas
describe the shape, not each model's features.
"""

from __future__ import annotations

from typing import Any, Final

_FEATURES: Final[dict[str, Any]] = {
    "type": "object",
    "description": (
        "One record: every feature of the production version's schema by name; a number, "
        "an integer, a category (text) or null where the feature is nullable. Unknown "
        "fields are refused."
    ),
    "additionalProperties": {"anyOf": [{"type": "number"}, {"type": "string"}, {"type": "null"}]},
    "example": {"age": 71, "heart_rate": 112.0, "lactate": 3.1, "sex": "female"},
}

PREDICT_BODY: Final[dict[str, Any]] = {
    "required": True,
    "content": {
        "application/json": {
            "schema": {
                "oneOf": [
                    {
                        "type": "object",
                        "title": "One record",
                        "properties": {"features": _FEATURES},
                        "required": ["features"],
                        "additionalProperties": False,
                    },
                    {
                        "type": "object",
                        "title": "A batch",
                        "properties": {
                            "records": {
                                "type": "array",
                                "items": _FEATURES,
                                "minItems": 1,
                                "maxItems": 1000,
                            }
                        },
                        "required": ["records"],
                        "additionalProperties": False,
                    },
                ]
            }
        }
    },
}

_ERROR: Final[dict[str, Any]] = {
    "content": {
        "application/json": {
            "example": {
                "ok": False,
                "error": {
                    "code": "invalid_input",
                    "message": "Invalid request: features.age: expected finite number, received "
                    "string. Fix the listed fields and send the request again.",
                    "details": {
                        "errors": [
                            {
                                "field": "features.age",
                                "expected": "finite number",
                                "received": "string",
                            }
                        ],
                        "error_count": 1,
                    },
                },
            }
        }
    }
}

PREDICT_RESPONSES: Final[dict[int | str, dict[str, Any]]] = {
    200: {
        "description": "The production model's probability, the decision at the signed "
        "threshold, the model version and a request id (one per record in a batch).",
        "content": {
            "application/json": {
                "example": {
                    "ok": True,
                    "request_id": "0b7f6c1e-3f5d-4b7e-9a53-2d8e3f1c9a10",
                    "model": "sepsis",
                    "version": "3",
                    "probability": 0.31,
                    "decision": True,
                    "threshold": 0.25,
                }
            }
        },
    },
    404: {"description": "No such model, or no production version.", **_ERROR},
    422: {"description": "A bad record: every bad field named.", **_ERROR},
    503: {"description": "Shutting down, or the inference log is not writable.", **_ERROR},
}

OUTCOMES_BODY: Final[dict[str, Any]] = {
    "required": True,
    "content": {
        "application/json": {
            "schema": {
                "type": "object",
                "properties": {
                    "outcomes": {
                        "type": "array",
                        "minItems": 1,
                        "items": {
                            "type": "object",
                            "properties": {
                                "request_id": {"type": "string", "format": "uuid"},
                                "label": {"type": "integer", "enum": [0, 1]},
                                "time": {"type": "string", "format": "date-time"},
                            },
                            "required": ["request_id", "label"],
                            "additionalProperties": False,
                        },
                    }
                },
                "required": ["outcomes"],
                "additionalProperties": False,
            }
        }
    },
}
