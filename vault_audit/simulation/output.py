"""Streaming writers for the simulated files: JSON Lines or Parquet, in the contract's
columns (CONTRACT.md section 2). Nested objects are JSON objects in JSON Lines and
JSON strings in Parquet."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

COLUMNS: dict[str, tuple[str, ...]] = {
    "vault-events": (
        "id", "type", "occurred_at", "actor_id", "workspace_id", "ip", "user_agent", "target",
    ),
    "access-log": (
        "request_id", "at", "method", "path", "status", "decision", "ip", "user_agent",
        "workspace_id", "resource", "token",
    ),
    "supabase-audit": ("instance_id", "id", "payload", "created_at", "ip_address"),
    "supabase-sessions": (
        "id", "user_id", "created_at", "updated_at", "refreshed_at", "not_after", "aal",
        "user_agent", "ip", "snapshot_at",
    ),
    "device-sessions": (
        "id", "user_id", "supabase_session_id", "label", "user_agent", "ip", "created_at",
        "last_seen_at", "revoked_at", "revoked_by", "snapshot_at",
    ),
    "ground_truth": ("request_id", "verdict", "reason"),
}  # fmt: skip

_INTEGER_COLUMNS = {"status"}
_FLUSH_ROWS = 50_000


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


class Sink:
    """One output file of one kind."""

    def __init__(self, path: Path, columns: tuple[str, ...]) -> None:
        self.path = path
        self.columns = columns
        self.rows = 0

    def record(self, record: dict[str, Any]) -> None:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError


class JsonlSink(Sink):
    def __init__(self, path: Path, columns: tuple[str, ...]) -> None:
        super().__init__(path, columns)
        self._handle = path.open("w", encoding="utf-8", newline="\n", buffering=1 << 20)

    def record(self, record: dict[str, Any]) -> None:
        self._handle.write(_dumps(record) + "\n")
        self.rows += 1

    def line(self, text: str) -> None:
        """A line already in JSON (the access log's fast path)."""
        self._handle.write(text)
        self.rows += 1

    def close(self) -> None:
        self._handle.close()


class ParquetSink(Sink):
    def __init__(self, path: Path, columns: tuple[str, ...]) -> None:
        super().__init__(path, columns)
        self._schema = pa.schema(
            [
                pa.field(name, pa.int32() if name in _INTEGER_COLUMNS else pa.string())
                for name in columns
            ]
        )
        self._buffers: dict[str, list[Any]] = {name: [] for name in columns}
        self._buffered = 0
        self._writer = pq.ParquetWriter(path, self._schema, compression="zstd")

    def record(self, record: dict[str, Any]) -> None:
        for name in self.columns:
            value = record.get(name)
            if isinstance(value, (dict, list)):
                value = _dumps(value)
            self._buffers[name].append(value)
        self._buffered += 1
        self.rows += 1
        if self._buffered >= _FLUSH_ROWS:
            self._flush()

    def _flush(self) -> None:
        if not self._buffered:
            return
        table = pa.table(
            {
                name: pa.array(values, type=self._schema.field(name).type)
                for name, values in self._buffers.items()
            },  # fmt: skip
            schema=self._schema,
        )
        self._writer.write_table(table)
        self._buffers = {name: [] for name in self.columns}
        self._buffered = 0

    def close(self) -> None:
        self._flush()
        self._writer.close()


def open_sink(directory: Path, kind: str, fmt: str, columns: tuple[str, ...] | None = None) -> Sink:
    columns = columns or COLUMNS[kind]
    if fmt == "parquet":
        return ParquetSink(directory / f"{kind}.parquet", columns)
    return JsonlSink(directory / f"{kind}.jsonl", columns)
