"""Write test inputs of every kind in every format, and sign test tokens."""

from __future__ import annotations

import csv
import gzip
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import jwt
import pyarrow as pa
import pyarrow.parquet as pq

SECRET = "test-secret-that-is-long-enough-for-hs256!"
NOW = 1767268800  # 2026-01-01T12:00:00Z


def claims(**overrides: Any) -> dict[str, Any]:
    """Supabase-like access-token claims, one hour long from NOW."""
    base: dict[str, Any] = {
        "iss": "https://example.supabase.co/auth/v1",
        "sub": "user-1",
        "aud": "authenticated",
        "iat": NOW,
        "exp": NOW + 3600,
        "email": "a@example.com",
        "phone": "",
        "role": "authenticated",
        "aal": "aal1",
        "amr": [{"method": "password", "timestamp": NOW}],
        "session_id": "sess-1",
        "is_anonymous": False,
    }
    base.update(overrides)
    return {key: value for key, value in base.items() if value is not None}


def hs256(**overrides: Any) -> str:
    return jwt.encode(claims(**overrides), SECRET, algorithm="HS256")


def write_records(path: Path, records: Sequence[Mapping[str, Any]]) -> Path:
    """Write ``records`` in the format the file name says: .jsonl, .csv, .parquet, +.gz."""
    name = path.name
    if name.endswith(".parquet"):
        columns = _columns(records)
        table = pa.table({column: [_cell(r.get(column)) for r in records] for column in columns})
        pq.write_table(table, path)
        return path
    if name.endswith((".jsonl", ".jsonl.gz")):
        text = "".join(json.dumps(record) + "\n" for record in records)
    elif name.endswith((".csv", ".csv.gz")):
        text = _csv_text(records)
    else:
        raise ValueError(name)
    data = text.encode("utf-8")
    path.write_bytes(gzip.compress(data) if name.endswith(".gz") else data)
    return path


def _columns(records: Sequence[Mapping[str, Any]]) -> list[str]:
    columns: dict[str, None] = {}
    for record in records:
        columns.update(dict.fromkeys(record))
    return list(columns)


def _cell(value: Any) -> Any:
    if isinstance(value, (dict, list)):
        return json.dumps(value)
    return None if value is None else str(value)


def _csv_text(records: Sequence[Mapping[str, Any]]) -> str:
    import io

    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=_columns(records), lineterminator="\n")
    writer.writeheader()
    for record in records:
        writer.writerow({key: _cell(value) for key, value in record.items()})
    return out.getvalue()
