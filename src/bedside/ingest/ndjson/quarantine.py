"""Write rejected lines to a quarantine file, one JSON object per line, losing nothing.

Each record is ``{"file", "line", "reason_code", "reason", "raw"}``; ``raw`` is the line as text
(without its newline). A line that is not valid UTF-8 is kept byte-exact as ``raw_base64`` instead,
and an over-long line is streamed into ``raw_base64`` chunk by chunk (with ``raw_length`` in bytes),
so memory stays bounded however long it is. The quarantine file is part of bedside's protected data
area: it holds patient data verbatim and must be handled like the source.
"""

from __future__ import annotations

import base64
from collections.abc import Iterable
from pathlib import Path
from typing import IO

import orjson

from bedside.ingest.ndjson.rules import Problem


class QuarantineWriter:
    """Append quarantine records for one source file; the file is created on the first record."""

    def __init__(self, path: Path, source_name: str) -> None:
        self.path = path
        self.source_name = source_name
        self.count = 0
        self._fh: IO[bytes] | None = None

    def _open(self) -> IO[bytes]:
        if self._fh is None:
            self._fh = self.path.open("wb")
        return self._fh

    def _head(self, line_number: int, problem: Problem) -> dict[str, object]:
        return {
            "file": self.source_name,
            "line": line_number,
            "reason_code": problem.code.value,
            "reason": problem.text,
        }

    def add(self, line_number: int, problem: Problem, raw: bytes) -> None:
        """Record one rejected line; ``raw`` is the line without its trailing newline."""
        record = self._head(line_number, problem)
        try:
            record["raw"] = raw.decode("utf-8")
        except UnicodeDecodeError:
            record["raw_base64"] = base64.b64encode(raw).decode("ascii")
        self._open().write(orjson.dumps(record) + b"\n")
        self.count += 1

    def add_streamed(self, line_number: int, problem: Problem, chunks: Iterable[bytes]) -> int:
        """Record one rejected line given as byte chunks (newline removed); return its length."""
        fh = self._open()
        head = orjson.dumps(self._head(line_number, problem))
        fh.write(head[:-1] + b',"raw_base64":"')
        carry = b""
        length = 0
        for chunk in chunks:
            length += len(chunk)
            data = carry + chunk
            cut = len(data) - len(data) % 3  # base64 of 3-byte groups concatenates cleanly
            fh.write(base64.b64encode(data[:cut]))
            carry = data[cut:]
        fh.write(base64.b64encode(carry))
        fh.write(b'","raw_length":' + str(length).encode("ascii") + b"}\n")
        self.count += 1
        return length

    def close(self) -> None:
        """Close the file if one was opened."""
        if self._fh is not None:
            self._fh.close()
            self._fh = None
