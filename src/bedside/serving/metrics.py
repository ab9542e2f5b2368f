"""Prometheus metrics of the prediction server, in the text exposition format (version 0.0.4).

A small, thread-safe implementation of counters and histograms with labels, so ``/metrics`` works
without extra dependencies; its output follows the format prometheus-client writes (``# HELP``,
``# TYPE``, ``_bucket{le=…}``, ``_sum``, ``_count``). Each server worker process exposes its own
figures (as prometheus-client does without its multiprocess mode); Prometheus sums them.
"""

from __future__ import annotations

import bisect
import math
import threading
from collections.abc import Sequence
from typing import Final, TypeVar

__all__ = ["CONTENT_TYPE", "Counter", "Histogram", "Registry", "ServerMetrics"]

CONTENT_TYPE: Final = "text/plain; version=0.0.4; charset=utf-8"

LATENCY_BUCKETS: Final = (
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
)  # fmt: skip
SIZE_BUCKETS: Final = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _labels(names: Sequence[str], values: Sequence[str], extra: str = "") -> str:
    parts = [f'{n}="{_escape(v)}"' for n, v in zip(names, values, strict=True)]
    if extra:
        parts.append(extra)
    return "{" + ",".join(parts) + "}" if parts else ""


def _number(value: float) -> str:
    if value == math.inf:
        return "+Inf"
    if float(value).is_integer() and abs(value) < 1e15:
        return str(int(value))
    return repr(float(value))


class Counter:
    """A monotonically increasing count, per label values."""

    def __init__(self, name: str, help_text: str, labels: Sequence[str] = ()) -> None:
        self.name, self.help, self.labelnames = name, help_text, tuple(labels)
        self._values: dict[tuple[str, ...], float] = {}
        self._lock = threading.Lock()

    def inc(self, *labels: str, amount: float = 1.0) -> None:
        """Add ``amount`` to the count for ``labels``."""
        with self._lock:
            self._values[labels] = self._values.get(labels, 0.0) + amount

    def value(self, *labels: str) -> float:
        """Return the count for ``labels``."""
        return self._values.get(labels, 0.0)

    def render(self) -> list[str]:
        """Return the exposition lines."""
        lines = [f"# HELP {self.name} {self.help}", f"# TYPE {self.name} counter"]
        with self._lock:
            items = sorted(self._values.items())
        for labels, value in items:
            lines.append(f"{self.name}{_labels(self.labelnames, labels)} {_number(value)}")
        return lines


class Histogram:
    """Observations counted into cumulative buckets, per label values."""

    def __init__(
        self,
        name: str,
        help_text: str,
        labels: Sequence[str] = (),
        buckets: Sequence[float] = LATENCY_BUCKETS,
    ) -> None:
        self.name, self.help, self.labelnames = name, help_text, tuple(labels)
        self.buckets = tuple(sorted(buckets))
        self._series: dict[tuple[str, ...], list[float]] = {}  # bucket counts…, sum, count
        self._lock = threading.Lock()

    def observe(self, value: float, *labels: str) -> None:
        """Record one observation of ``value`` for ``labels``."""
        index = bisect.bisect_left(self.buckets, value)
        with self._lock:
            series = self._series.get(labels)
            if series is None:
                series = self._series[labels] = [0.0] * (len(self.buckets) + 3)
            series[index] += 1  # index == len(buckets): only +Inf
            series[-2] += value
            series[-1] += 1

    def count(self, *labels: str) -> int:
        """Return how many observations were made for ``labels``."""
        series = self._series.get(labels)
        return 0 if series is None else int(series[-1])

    def render(self) -> list[str]:
        """Return the exposition lines (cumulative buckets, sum, count)."""
        lines = [f"# HELP {self.name} {self.help}", f"# TYPE {self.name} histogram"]
        with self._lock:
            items = sorted((k, list(v)) for k, v in self._series.items())
        for labels, series in items:
            cumulative = 0.0
            for bound, hits in zip((*self.buckets, math.inf), series, strict=False):
                cumulative += hits
                le = f'le="{_number(bound)}"'
                lines.append(
                    f"{self.name}_bucket{_labels(self.labelnames, labels, le)} "
                    f"{_number(cumulative)}"
                )
            tag = _labels(self.labelnames, labels)
            lines.append(f"{self.name}_sum{tag} {_number(series[-2])}")
            lines.append(f"{self.name}_count{tag} {_number(series[-1])}")
        return lines


_M = TypeVar("_M", Counter, Histogram)


class Registry:
    """An ordered set of metrics rendered together."""

    def __init__(self) -> None:
        self._metrics: list[Counter | Histogram] = []

    def add(self, metric: _M) -> _M:
        """Register ``metric``; return it."""
        self._metrics.append(metric)
        return metric

    def render(self) -> bytes:
        """Return the exposition text of every metric."""
        lines: list[str] = []
        for metric in self._metrics:
            lines.extend(metric.render())
        return ("\n".join(lines) + "\n").encode("utf-8")


class ServerMetrics:
    """The metrics the prediction server keeps."""

    def __init__(self) -> None:
        self.registry = Registry()
        add = self.registry.add
        self.requests = add(
            Counter("bedside_http_requests_total", "HTTP requests served.", ["route", "status"])
        )
        self.latency = add(
            Histogram(
                "bedside_http_request_seconds",
                "Time from reading a request to its response being ready.",
                ["route"],
            )
        )
        self.predictions = add(
            Counter("bedside_predictions_total", "Records scored.", ["model", "role"])
        )
        self.batch_rows = add(
            Histogram("bedside_batch_rows", "Rows per model call.", ["role"], buckets=SIZE_BUCKETS)
        )
        self.model_seconds = add(
            Histogram("bedside_model_seconds", "Time of one model call.", ["role"])
        )
        self.shadow_failures = add(
            Counter(
                "bedside_shadow_failures_total",
                "Shadow batches that raised (the responses were not affected).",
                ["model"],
            )
        )
        self.shadow_dropped = add(
            Counter(
                "bedside_shadow_dropped_total",
                "Records the shadow model skipped because its queue was full.",
                ["model"],
            )
        )
        self.log_fsync = add(
            Histogram("bedside_log_fsync_seconds", "Inference log fdatasync time per group.")
        )
        self.log_group = add(
            Histogram(
                "bedside_log_group_records",
                "Records made durable by one group commit.",
                buckets=SIZE_BUCKETS,
            )
        )
        self.log_bytes = add(Counter("bedside_log_bytes_total", "Bytes written to the log."))

    def observe_log_group(self, records: int, size: int, fsync_seconds: float) -> None:
        """Record one group commit (the inference log's observer)."""
        self.log_fsync.observe(fsync_seconds)
        self.log_group.observe(records)
        self.log_bytes.inc(amount=size)
