"""Where data work runs: an Ibis connection to DuckDB (embedded, default) or PySpark.

Everything engine-specific lives here — opening a connection and *reading* FHIR NDJSON into a
table with an explicit schema. What happens after the read is shared Ibis
(:mod:`bedside.engines.fhir_tables`, :mod:`bedside.engines.features`), so the same expressions run
on both engines.

- **DuckDB** (``backend="duckdb"``): an in-memory database, session time zone UTC, reading NDJSON
  natively with ``read_json(format='newline_delimited', columns=...)``; gzip is recognised by the
  ``.gz`` ending.
- **PySpark** (``backend="pyspark"``, the optional ``spark`` extra): a local-mode session
  (``local[2]`` by default) with the web UI off, session time zone UTC and the driver bound to
  127.0.0.1, reading with ``spark.read.json(paths, schema=...)``. Pass your own ``SparkSession``
  to run on a cluster.
"""

from __future__ import annotations

import importlib
import logging
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Literal

import ibis
import ibis.expr.datatypes as dt
from ibis.backends import BaseBackend

from bedside.errors import ConfigError, InvalidInput, NotFound

if TYPE_CHECKING:  # pragma: no cover - typing only
    from pyspark.sql import SparkSession

__all__ = [
    "BACKENDS",
    "Backend",
    "backend_name",
    "connect",
    "read_ndjson",
    "resource_files",
    "spark_session",
]

logger = logging.getLogger(__name__)

Backend = Literal["duckdb", "pyspark"]
BACKENDS: Final[tuple[Backend, ...]] = ("duckdb", "pyspark")

_SPARK_EXTRA_HINT: Final = (
    "install the optional 'spark' extra (uv sync --extra spark) and Java 17, "
    "or use backend='duckdb'"
)


def spark_session(
    *, cores: int = 2, app_name: str = "bedside", scratch_dir: Path | None = None
) -> SparkSession:
    """Start (or return the running) local-mode Spark session bedside uses.

    The session has the web UI off, time zone UTC, the driver bound to 127.0.0.1 (no network
    besides loopback), two shuffle partitions, and its warehouse and scratch space in
    ``scratch_dir`` (a new temporary folder by default), never in the working directory.

    Args:
        cores: local threads, ``local[cores]``; 1 or 2 on a small machine.
        app_name: the Spark application name.
        scratch_dir: where Spark may write its warehouse and local files.

    Raises:
        ConfigError: pyspark is not installed.
        InvalidInput: ``cores`` is below 1.
    """
    if cores < 1:
        raise InvalidInput(f"cores must be at least 1: found {cores}")
    try:
        from pyspark.sql import SparkSession
    except ImportError as exc:
        raise ConfigError(f"PySpark is not installed: {_SPARK_EXTRA_HINT}") from exc
    scratch = Path(scratch_dir) if scratch_dir else Path(tempfile.mkdtemp(prefix="bedside-spark-"))
    builder: Any = SparkSession.builder
    session = (
        builder.master(f"local[{cores}]")
        .appName(app_name)
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.driver.host", "127.0.0.1")
        .config("spark.driver.bindAddress", "127.0.0.1")
        .config("spark.sql.shuffle.partitions", str(max(2, cores)))
        .config("spark.sql.warehouse.dir", str(scratch / "warehouse"))
        .config("spark.local.dir", str(scratch / "local"))
        .config("spark.driver.extraJavaOptions", f"-Dderby.system.home={scratch / 'derby'}")
        .getOrCreate()
    )
    session.sparkContext.setLogLevel("ERROR")
    logger.info("spark session ready (local[%d])", cores)
    return session  # type: ignore[no-any-return]


def connect(
    backend: Backend = "duckdb",
    *,
    threads: int | None = None,
    memory_limit: str | None = None,
    session: SparkSession | None = None,
) -> BaseBackend:
    """Open an Ibis connection for feature extraction.

    Args:
        backend: ``"duckdb"`` (embedded, in memory) or ``"pyspark"``.
        threads: DuckDB worker threads (default: all cores); for Spark, the local cores when no
            ``session`` is given (default 2).
        memory_limit: DuckDB memory limit such as ``"4GB"`` (larger data spills to disk).
        session: an existing SparkSession to use (``backend="pyspark"`` only).

    Raises:
        InvalidInput: an unknown backend, or options that belong to the other backend.
        ConfigError: ``pyspark`` asked for but not installed.
    """
    if backend == "duckdb":
        if session is not None:
            raise InvalidInput("a Spark session was given for backend='duckdb'; drop it")
        config: dict[str, Any] = {}
        if threads is not None:
            config["threads"] = threads
        if memory_limit is not None:
            config["memory_limit"] = memory_limit
        con = ibis.duckdb.connect(**config)
        con.raw_sql("SET TimeZone = 'UTC'")
        return con
    if backend == "pyspark":
        if memory_limit is not None:
            raise InvalidInput("memory_limit applies to DuckDB; configure Spark memory instead")
        try:
            importlib.import_module("ibis.backends.pyspark")
        except ImportError as exc:
            raise ConfigError(
                f"The Ibis PySpark backend is not installed: {_SPARK_EXTRA_HINT}"
            ) from exc
        if session is None:
            session = spark_session(cores=threads or 2)
        return ibis.pyspark.connect(session)
    raise InvalidInput(
        f"unknown backend {backend!r}; expected one of {', '.join(BACKENDS)}",
        details={"expected": list(BACKENDS), "found": str(backend)},
    )


def backend_name(con: BaseBackend) -> Backend:
    """Return which of bedside's engines ``con`` is.

    Raises:
        InvalidInput: a connection to another Ibis backend.
    """
    name = getattr(con, "name", None)
    if name in BACKENDS:
        return name  # type: ignore[no-any-return]
    raise InvalidInput(
        f"feature extraction runs on DuckDB or PySpark, not on the Ibis backend {name!r}",
        details={"expected": list(BACKENDS), "found": str(name)},
    )


def resource_files(raw_dir: Path | str, resource_type: str) -> list[Path]:
    """Return the NDJSON files of ``resource_type`` in ``raw_dir``, sorted by name.

    Matches ``<Type>.ndjson`` (what ingest writes to ``raw/``) and bulk-export names
    ``<Type>.<part>.ndjson``, each optionally ``.gz``. An empty list when there are none.

    Raises:
        NotFound: ``raw_dir`` is not a folder.
    """
    folder = Path(raw_dir)
    if not folder.is_dir():
        raise NotFound(
            f"FHIR NDJSON folder {folder} does not exist or is not a folder; "
            "expected the raw/ folder of an ingest or a bulk-export folder"
        )
    found: set[Path] = set()
    for pattern in (f"{resource_type}.ndjson", f"{resource_type}.*.ndjson"):
        found.update(folder.glob(pattern))
        found.update(folder.glob(pattern + ".gz"))
    return sorted(p for p in found if p.is_file())


def read_ndjson(con: BaseBackend, paths: Sequence[Path], schema: ibis.Schema) -> ibis.Table:
    """Read NDJSON files into a table with exactly ``schema`` (fields not in it are ignored).

    With no files the table is empty. Each engine reads with its native JSON reader; the schema
    is given explicitly, so nothing is inferred and both engines see the same column types.
    """
    engine = backend_name(con)
    if not paths:
        return _empty(schema)
    files = [str(Path(p)) for p in paths]
    if engine == "duckdb":
        columns = {name: _duckdb_type(dtype) for name, dtype in schema.items()}
        return con.read_json(files, columns=columns, format="newline_delimited", records="true")
    from ibis.backends.pyspark.datatypes import PySparkSchema

    return con.read_json(files, schema=PySparkSchema.from_ibis(schema), mode="PERMISSIVE")


def _duckdb_type(dtype: dt.DataType) -> str:
    from ibis.backends.sql.datatypes import DuckDBType

    return str(DuckDBType.to_string(dtype))


def _empty(schema: ibis.Schema) -> ibis.Table:
    """Return an empty in-memory table with ``schema`` (registered on whichever engine runs it)."""
    import pyarrow as pa

    return ibis.memtable(pa.Table.from_pylist([], schema=schema.to_pyarrow()))
