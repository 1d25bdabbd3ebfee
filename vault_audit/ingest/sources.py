"""Input files as rows of text fields: JSON Lines, CSV or Parquet, gzip or not.

A source becomes one SQL subquery with a line number, a parse error (null when the
record parsed) and every column of its kind as text, so each kind's normalizing
query reads every format the same way. Lines DuckDB cannot even split (invalid
UTF-8, over-long lines, a CSV row with the wrong number of fields) come back as
rejects, which the loader quarantines.
"""

from __future__ import annotations

import gzip
import itertools
import json
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pyarrow.parquet as pq

from vault_audit.errors import InputError

_SAMPLE_LINES = 200
_REJECTS = "va_rejects"
_SCANS = "va_reject_scans"
_NESTED_TYPES = ("STRUCT", "MAP", "[]", "JSON", "UNION")


@dataclass(frozen=True)
class Source:
    """One readable input file and what its first records show."""

    path: Path
    format: str  # jsonl | csv | parquet | arrow
    compressed: bool
    columns: tuple[str, ...]
    # Header lines before the first record, so rows map back to file lines.
    first_line: int = 1
    column_types: tuple[str, ...] = ()


def inspect_file(path: Path) -> Source:
    """Open ``path`` far enough to know its format and columns."""
    if not path.exists():
        raise InputError(f"cannot read {path}: no such file")
    if not path.is_file():
        raise InputError(f"cannot read {path}: not a file")
    try:
        with path.open("rb") as handle:
            head = handle.read(4)
    except OSError as error:
        raise InputError(f"cannot read {path}: {error.strerror}") from None

    if head == b"PAR1":
        return _inspect_parquet(path)
    compressed = head[:2] == b"\x1f\x8b"
    name = path.name.lower().removesuffix(".gz")
    if name.endswith(".parquet"):
        raise InputError(f"{path} is not a Parquet file")
    try:
        text = _first_text(path, compressed)
    except (OSError, EOFError, gzip.BadGzipFile) as error:
        raise InputError(f"cannot read {path}: {error}") from None

    looks_like_json = text.lstrip().startswith(("{", "["))
    if name.endswith((".jsonl", ".ndjson", ".json")) or (
        looks_like_json and not name.endswith(".csv")
    ):
        return _inspect_jsonl(path, compressed, text)
    return _inspect_csv(path, compressed, text)


def source_sql(source: Source, columns: tuple[str, ...]) -> str:
    """A subquery over the file (bound as the first parameter): line, parse_error,
    raw_text and ``columns`` as text."""
    if source.format == "jsonl":
        return _jsonl_sql(columns, _compression(source))
    if source.format == "csv":
        return _csv_sql(source, columns)
    return _columnar_sql(source, columns)


def source_parameter(source: Source) -> str:
    return str(source.path)


def reset_rejects(connection: duckdb.DuckDBPyConnection) -> None:
    connection.execute(f"drop table if exists {_REJECTS}")
    connection.execute(f"drop table if exists {_SCANS}")


def read_rejects(connection: duckdb.DuckDBPyConnection) -> list[tuple[int, str, str]]:
    """``(line, reason, text)`` of every line the last scan could not split."""
    tables = {
        row[0] for row in connection.execute("select table_name from duckdb_tables()").fetchall()
    }
    if _REJECTS not in tables:
        return []
    rows = connection.execute(
        f"select line, error_type, va_mask(csv_line) from {_REJECTS} order by line"
    ).fetchall()
    return [(int(line), _reject_reason(str(kind)), text) for line, kind, text in rows]


def _reject_reason(error_type: str) -> str:
    return {
        "INVALID ENCODING": "invalid UTF-8",
        "LINE SIZE OVER MAXIMUM": "line too long",
        "MISSING COLUMNS": "CSV row with too few fields",
        "TOO MANY COLUMNS": "CSV row with too many fields",
        "UNQUOTED VALUE": "CSV row with a malformed quoted field",
    }.get(error_type, f"unreadable line ({error_type.lower()})")


def _first_text(path: Path, compressed: bool) -> str:
    opener = gzip.open if compressed else open
    with opener(path, "rb") as handle:  # type: ignore[operator]
        return handle.read(256 * 1024).decode("utf-8", errors="replace")


def _inspect_jsonl(path: Path, compressed: bool, text: str) -> Source:
    if text.lstrip().startswith("["):
        raise InputError(f"{path} is a JSON array, not JSON Lines (one object per line)")
    keys: dict[str, None] = {}
    parsed = 0
    lines = [line for line in text.splitlines() if line.strip()]
    for line in itertools.islice(lines, _SAMPLE_LINES):
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict):
            parsed += 1
            keys.update(dict.fromkeys(str(key) for key in record))
    if lines and not parsed:
        raise InputError(f"{path} is not JSON Lines: none of its first lines is a JSON object")
    return Source(path, "jsonl", compressed, tuple(keys), first_line=1)


def _inspect_csv(path: Path, compressed: bool, text: str) -> Source:
    header = text.splitlines()[0] if text.strip() else ""
    if not header.strip():
        raise InputError(f"{path} is empty: a CSV file needs a header line")
    try:
        relation = duckdb.sql(
            "select * from read_csv(?, header = true, all_varchar = true, sample_size = 2048,"
            " compression = ?) limit 0",
            params=[str(path), "gzip" if compressed else "none"],
        )
        columns = tuple(relation.columns)
    except duckdb.Error as error:
        raise InputError(f"{path} is not a readable CSV file: {_first_line(str(error))}") from None
    return Source(path, "csv", compressed, columns, first_line=2)


def _inspect_parquet(path: Path) -> Source:
    try:
        schema = pq.read_schema(path)
    except Exception as error:  # pyarrow raises several unrelated types for a bad file
        raise InputError(
            f"{path} is not a readable Parquet file: {_first_line(str(error))}"
        ) from None
    relation = duckdb.sql("select * from read_parquet(?) limit 0", params=[str(path)])
    types = tuple(str(kind) for kind in relation.types)
    return Source(path, "parquet", False, tuple(schema.names), column_types=types)


def arrow_source(name: str, columns: tuple[str, ...], types: tuple[str, ...]) -> Source:
    """A source over an Arrow table registered on the connection as ``va_arrow``."""
    return Source(Path(name), "arrow", False, columns, column_types=types)


def _compression(source: Source) -> str:
    return "gzip" if source.compressed else "none"


def _jsonl_sql(columns: tuple[str, ...], compression: str) -> str:
    paths = ", ".join(_json_path(column) for column in columns)
    fields = ",\n    ".join(
        f"case when parse_error is null then f[{index}] end as {_ident(column)}"
        for index, column in enumerate(columns, start=1)
    )
    return f"""
select line, parse_error, raw_text,
    {fields}
from (
    select line, parse_error,
        case when parse_error is not null then va_mask(text) end as raw_text,
        case when parse_error is null then json_extract_string(text, [{paths}]) end as f
    from (
        select line, text,
            case
                when va_blank(text) then 'blank'
                when not json_valid(text) then 'bad JSON'
                when json_type(text) <> 'OBJECT' then 'not a JSON object'
            end as parse_error
        from (
            select row_number() over () as line, line as text
            from read_csv(?, columns = {{'line': 'VARCHAR'}}, delim = '\x01', quote = '',
                escape = '', header = false, auto_detect = false, strict_mode = false,
                ignore_errors = true, store_rejects = true, rejects_table = '{_REJECTS}',
                rejects_scan = '{_SCANS}', max_line_size = 8388608,
                compression = '{compression}')
        )
    )
)"""


def _csv_sql(source: Source, columns: tuple[str, ...]) -> str:
    present = {name.strip().lower(): name for name in source.columns}
    fields = ",\n    ".join(
        f"{_ident(present[column])} as {_ident(column)}"
        if column in present
        else f"null::varchar as {_ident(column)}"
        for column in columns
    )
    return f"""
select row_number() over () as line, null::varchar as parse_error, null::varchar as raw_text,
    {fields}
from read_csv(?, header = true, all_varchar = true, ignore_errors = true,
    store_rejects = true, rejects_table = '{_REJECTS}', rejects_scan = '{_SCANS}',
    max_line_size = 8388608, sample_size = 2048, compression = '{_compression(source)}')"""


def _columnar_sql(source: Source, columns: tuple[str, ...]) -> str:
    present = {
        name.strip().lower(): (name, kind)
        for name, kind in zip(source.columns, source.column_types, strict=True)
    }
    fields = []
    for column in columns:
        if column not in present:
            fields.append(f"null::varchar as {_ident(column)}")
            continue
        name, kind = present[column]
        if any(marker in kind.upper() for marker in _NESTED_TYPES):
            fields.append(f"to_json({_ident(name)})::varchar as {_ident(column)}")
        else:
            fields.append(f"cast({_ident(name)} as varchar) as {_ident(column)}")
    if source.format == "arrow":
        scan = "(select *, row_number() over () as file_row_number from va_arrow)"
        line = "file_row_number"
    else:
        scan = "read_parquet(?, file_row_number = true)"
        line = "file_row_number + 1"
    joined = ",\n    ".join(fields)
    return f"""
select {line} as line, null::varchar as parse_error, null::varchar as raw_text,
    {joined}
from {scan}"""


def _json_path(key: str) -> str:
    escaped = key.replace("'", "''").replace('"', '\\"')
    return f"'$.\"{escaped}\"'"


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _first_line(message: str) -> str:
    return message.strip().splitlines()[0] if message.strip() else message
