"""Ingestion of the five input kinds into the store.

``ingest_files`` reads files (JSON Lines, CSV or Parquet, gzip or not);
``load_table`` takes rows that came from elsewhere (Postgres) through the same
normalizing, quarantine and duplicate handling.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime, timezone
from pathlib import Path

import duckdb
import pyarrow as pa

from vault_audit.errors import InputError, UsageError
from vault_audit.ingest.kinds import KINDS, Kind, detect_kind, kind_named
from vault_audit.ingest.load import IngestResult, load_arrow, load_source
from vault_audit.ingest.sources import Source, inspect_file
from vault_audit.ingest.verify import TokenVerifier
from vault_audit.settings import Settings

__all__ = [
    "KINDS",
    "IngestResult",
    "TokenVerifier",
    "ingest_files",
    "load_table",
    "parse_snapshot_time",
]


def ingest_files(
    connection: duckdb.DuckDBPyConnection,
    paths: Iterable[str | Path],
    *,
    kind: str | None = None,
    settings: Settings,
    snapshot_at: datetime | None = None,
    verifier: TokenVerifier | None = None,
    on_result: Callable[[IngestResult], None] | None = None,
    on_progress: Callable[[Path, int, int], None] | None = None,
) -> list[IngestResult]:
    """Load each file in its own transaction; return one result per file.

    Every file is inspected before any is loaded, so a missing or unreadable file
    stops the run before it changes the store.
    """
    chosen = kind_named(kind) if kind else None
    verifier = verifier or TokenVerifier.from_settings(settings)
    plans = [_plan(Path(path), chosen, snapshot_at) for path in paths]

    results = []
    for source, source_kind in plans:
        progress = None
        if on_progress:
            progress = _progress_of(source, on_progress)
        result = load_source(
            connection,
            source_kind,
            source,
            verifier=verifier,
            snapshot_at=snapshot_at,
            progress=progress,
        )
        results.append(result)
        if on_result:
            on_result(result)
    return results


def load_table(
    connection: duckdb.DuckDBPyConnection,
    kind: str,
    table: pa.Table,
    *,
    source: str,
    settings: Settings,
    snapshot_at: datetime | None = None,
    source_sha256: str | None = None,
    verifier: TokenVerifier | None = None,
) -> IngestResult:
    """Load an Arrow table with the contract's columns as one source named ``source``."""
    chosen = kind_named(kind)
    _check_columns(chosen, table.column_names, source, snapshot_at)
    return load_arrow(
        connection,
        chosen,
        table,
        name=source,
        verifier=verifier or TokenVerifier.from_settings(settings),
        snapshot_at=snapshot_at,
        source_sha256=source_sha256,
    )


def _progress_of(
    source: Source, on_progress: Callable[[Path, int, int], None]
) -> Callable[[int], None]:
    done = 0

    def advance(count: int) -> None:
        nonlocal done
        done += count
        on_progress(source.path, min(done, source.size), source.size)

    return advance


def parse_snapshot_time(text: str) -> datetime:
    """An RFC 3339 time (or epoch seconds) for ``--snapshot-at``, in UTC."""
    value = text.strip()
    try:
        if value.lstrip("-").isdigit():
            return datetime.fromtimestamp(int(value), tz=timezone.utc)
        parsed = datetime.fromisoformat(value.replace("z", "Z").replace("Z", "+00:00"))
    except (ValueError, OverflowError, OSError):
        raise UsageError(f"--snapshot-at {text!r} is not an RFC 3339 time") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=timezone.utc)
    return parsed.astimezone(timezone.utc)


def _plan(path: Path, chosen: Kind | None, snapshot_at: datetime | None) -> tuple[Source, Kind]:
    source = inspect_file(path)
    kind = chosen or detect_kind(source.columns, str(path))
    _check_columns(kind, source.columns, str(path), snapshot_at)
    return source, kind


def _detected_kind(columns: Iterable[str]) -> Kind | None:
    """The one kind the columns show, or None where they are ambiguous or fit none: then
    --kind has the last word."""
    try:
        return detect_kind(columns, "")
    except InputError:
        return None


def _check_columns(
    kind: Kind, columns: Iterable[str], name: str, snapshot_at: datetime | None
) -> None:
    """Refuse a source that cannot be this kind at all (a wrong --kind, say)."""
    present = {column.strip().lower() for column in columns}
    if not present:
        if kind.snapshot and snapshot_at is None:
            raise InputError(f"{name} is a snapshot without a time: pass --snapshot-at")
        return
    missing = [column for column in kind.key if column != "snapshot_at" and column not in present]
    if missing:
        raise InputError(f"{name} is not {kind.name}: it has no {missing[0]} column")
    detected = _detected_kind(present)
    if detected is not None and detected is not kind:
        raise InputError(
            f"{name} is not {kind.name}: its columns are those of {detected.name}; check --kind"
        )
    if kind.snapshot and snapshot_at is None and "snapshot_at" not in present:
        raise InputError(
            f"{name} is a snapshot without a time: pass --snapshot-at or add a snapshot_at column"
        )
