"""Input files as a stream of Arrow record batches, each row with its line number.

JSON Lines come as raw lines (bytes, so invalid UTF-8 is a record's problem, not
the file's); CSV as its columns, also bytes; Parquet and Arrow tables as they are.
Each kind's SQL then reads every format the same way through ``parse_sql``. Batches
are small, so a file of any size streams in bounded memory, and rows that cannot
even be split (a CSV row with the wrong number of fields) come back as rejects with
their line, for the quarantine.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import itertools
import json
import queue
import re
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, TypeVar

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from vault_audit.errors import InputError

_SAMPLE_LINES = 200
_SAMPLE_BYTES = 256 * 1024
_BLOCK_SIZE = 4 << 20
_MAX_BLOCK_SIZE = 1 << 30
_PARQUET_BATCH = 131072
# DuckDB stores a table in row groups of 122,880 rows. An insert of a number of rows
# that is not a multiple of it leaves a partial row group, and the first checkpoint
# after the ingest rewrites the table to merge them: measured, 5 to 7 s added to the
# first check after a 10.8M-row ingest, for 153 row groups where 88 would do.
_ROW_GROUP = 122_880
_TABLE_BYTES = 128 << 20
_T = TypeVar("_T")
_NESTED = (pa.types.is_struct, pa.types.is_map, pa.types.is_list, pa.types.is_large_list)


@dataclass
class Source:
    """One readable input and what its first records show."""

    path: Path
    format: str  # jsonl | csv | parquet | arrow
    compressed: bool
    columns: tuple[str, ...]
    nested: frozenset[str] = frozenset()
    table: pa.Table | None = None
    size: int = 0
    rejects: list[tuple[int, str, str]] = field(default_factory=list)
    # SHA-256 of the file's bytes, set once a stream has read the file to its end.
    sha256: str | None = None


Progress = Callable[[int], None]


def inspect_file(path: Path) -> Source:
    """Open ``path`` far enough to know its format and columns."""
    if not path.exists():
        raise InputError(f"cannot read {path}: no such file")
    if not path.is_file():
        raise InputError(f"cannot read {path}: not a file")
    try:
        with path.open("rb") as handle:
            head = handle.read(4)
        size = path.stat().st_size
    except OSError as error:
        raise InputError(f"cannot read {path}: {error.strerror}") from None

    if head == b"PAR1":
        return _inspect_parquet(path, size)
    compressed = head[:2] == b"\x1f\x8b"
    name = path.name.lower().removesuffix(".gz")
    if name.endswith(".parquet"):
        raise InputError(f"{path} is not a Parquet file")
    try:
        text, cut = _first_text(path, compressed)
    except (OSError, EOFError) as error:
        raise InputError(f"cannot read {path}: {error}") from None

    looks_like_json = text.lstrip().startswith(("{", "["))
    if name.endswith((".jsonl", ".ndjson", ".json")) or (
        looks_like_json and not name.endswith(".csv")
    ):
        return _inspect_jsonl(path, compressed, text, size, cut)
    return _inspect_csv(path, compressed, text, size)


def arrow_source(name: str, table: pa.Table) -> Source:
    """A source over rows already in memory (read from Postgres, say)."""
    nested = frozenset(
        column.name for column in table.schema if any(test(column.type) for test in _NESTED)
    )
    return Source(Path(name), "arrow", False, tuple(table.column_names), nested, table=table)


def iter_tables(source: Source, progress: Progress | None = None) -> Iterator[pa.Table]:
    """The source in tables of about 128 MiB, each with an int64 ``line`` column
    first: big enough for DuckDB to spread one over the cores, small enough to
    keep memory bounded. Each holds whole row groups of the store, but the last."""
    pending: list[pa.RecordBatch] = []
    rows = size = 0
    for batch in iter_batches(source, progress):
        pending.append(batch)
        rows, size = rows + batch.num_rows, size + batch.nbytes
        if size >= _TABLE_BYTES and rows >= _ROW_GROUP:
            table = pa.Table.from_batches(pending)
            whole = rows - rows % _ROW_GROUP
            yield table.slice(0, whole)
            rest = table.slice(whole)
            pending = rest.to_batches()
            rows, size = rest.num_rows, rest.nbytes
    if pending:
        yield pa.Table.from_batches(pending)


def read_ahead(items: Iterator[_T]) -> Iterator[_T]:
    """The same items (batches of a source), the next one made by a thread while the
    caller works on this one.

    pyarrow and DuckDB let go of the GIL while they read and query, so making the next
    batch overlaps the caller's work on this one (``load._staged_batches``). One item
    waits at most, so memory grows by one batch. An error of the thread is raised here,
    in the caller's; a caller that stops early (and closes this generator) stops the
    thread and closes ``items``.
    """
    handoff: queue.Queue[Any] = queue.Queue(maxsize=1)
    stop = threading.Event()
    end = object()

    def hand_over(item: Any) -> bool:
        while not stop.is_set():
            try:
                handoff.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def read() -> None:
        try:
            for item in items:
                if not hand_over(item):
                    return
            hand_over(end)
        except BaseException as error:  # raised again in the caller's thread
            hand_over(error)
        finally:
            close = getattr(items, "close", None)
            if close:
                close()

    reader = threading.Thread(target=read, name="vault-audit-reader", daemon=True)
    reader.start()
    try:
        while (item := handoff.get()) is not end:
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        reader.join()


def iter_batches(source: Source, progress: Progress | None = None) -> Iterator[pa.RecordBatch]:
    """Record batches of the source, each with an int64 ``line`` column first."""
    if source.format == "jsonl":
        yield from _jsonl_batches(source, progress)
    elif source.format == "csv":
        yield from _csv_batches(source, progress)
    elif source.format == "parquet":
        yield from _parquet_batches(source, progress)
    else:
        assert source.table is not None
        yield from _numbered(source.table.to_batches(max_chunksize=_PARQUET_BATCH), first=1)


def parse_sql(source: Source, columns: tuple[str, ...]) -> str:
    """SQL over the batch ``va_batch``: line, parse_error, raw_text and ``columns`` as
    text. Column names come from the kind, never from the file."""
    if source.format == "jsonl":
        return _jsonl_sql(columns)
    return _columnar_sql(source, columns)


def parsed_in_arrow(source: Source, columns: tuple[str, ...], batch: pa.Table) -> pa.Table | None:
    """What ``parse_sql`` gives for a batch of a Parquet file or Arrow table, made in
    Arrow, with the text columns not copied; None where only the SQL can: a JSON Lines
    or CSV source, or a column whose type Arrow would write as text otherwise than
    DuckDB's cast does (times, floats, binary, nested values).

    The text columns are most of a batch's bytes (a token is about 600 of them), and
    taking them through DuckDB and back copied each twice: measured, 12.3 s of CPU for
    the 10.8M rows of the simulated 10M-use log, in an ingest that used both cores.
    """
    if source.format not in ("parquet", "arrow"):
        return None
    present = {name.strip().lower(): name for name in source.columns}
    rows, text = batch.num_rows, pa.string()
    fields: dict[str, Any] = {
        "line": batch["line"],
        "parse_error": pa.nulls(rows, text),
        "raw_text": pa.nulls(rows, text),
    }
    for column in columns:
        name = present.get(column)
        if name is None:
            fields[column] = pa.nulls(rows, text)
            continue
        values = batch[name]
        if pa.types.is_string(values.type):
            fields[column] = values
        elif pa.types.is_large_string(values.type) or pa.types.is_integer(values.type):
            # Integers are written alike by both: an optional minus sign, then digits.
            fields[column] = values.cast(text)
        else:
            return None
    return pa.table(fields)


def _first_text(path: Path, compressed: bool) -> tuple[str, bool]:
    """The first 256 KiB of the file as text, and whether the file goes on after it."""
    opener: Any = gzip.open if compressed else open
    try:
        with opener(path, "rb") as handle:
            data = handle.read(_SAMPLE_BYTES + 1)
        # A UTF-8 byte order mark (spreadsheet exports write one) is not part of the
        # first column's name; pyarrow's reader skips it too.
        text = data[:_SAMPLE_BYTES].decode("utf-8", errors="replace").removeprefix("\ufeff")
        return text, len(data) > _SAMPLE_BYTES
    except gzip.BadGzipFile as error:
        raise InputError(f"cannot read {path}: {error}") from None


def _inspect_jsonl(path: Path, compressed: bool, text: str, size: int, cut: bool) -> Source:
    if text.lstrip().startswith("["):
        raise InputError(f"{path} is a JSON array, not JSON Lines (one object per line)")
    keys: dict[str, None] = {}
    parsed = 0
    lines = [line for line in text.splitlines() if line.strip()]
    if cut:
        # The sample ends inside a line; a first line longer than the sample proves nothing.
        lines = lines[:-1]
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
    return Source(path, "jsonl", compressed, tuple(keys), size=size)


def _inspect_csv(path: Path, compressed: bool, text: str, size: int) -> Source:
    header = text.splitlines()[0] if text.strip() else ""
    if not header.strip():
        raise InputError(f"{path} is empty: a CSV file needs a header line")
    columns = next(csv.reader([header]))
    return Source(path, "csv", compressed, tuple(columns), size=size)


def _inspect_parquet(path: Path, size: int) -> Source:
    try:
        schema = pq.read_schema(path)
    except Exception as error:  # pyarrow raises several unrelated types for a bad file
        raise InputError(
            f"{path} is not a readable Parquet file: {_first_line(str(error))}"
        ) from None
    nested = frozenset(item.name for item in schema if any(test(item.type) for test in _NESTED))
    return Source(path, "parquet", False, tuple(schema.names), nested, size=size)


def file_sha256(path: Path) -> str:
    """SHA-256 of a file's bytes, for the run log and report footers."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def source_sha256(source: Source) -> str | None:
    """SHA-256 of the source's file: as its stream was read, or read now (Parquet,
    which is read by row group, not as a stream); None for rows in memory."""
    if source.sha256 is None and source.format == "parquet":
        source.sha256 = file_sha256(source.path)
    return source.sha256


class _Counting:
    """A binary file that hashes the bytes read from it and reports how many."""

    def __init__(self, handle: BinaryIO, progress: Progress | None):
        self._handle = handle
        self._progress = progress
        self.digest = hashlib.sha256()

    def read(self, size: int = -1) -> bytes:
        data = self._handle.read(size)
        self.digest.update(data)
        if self._progress and data:
            self._progress(len(data))
        return data

    def finish(self) -> str:
        """Hash the bytes the reader left unread (a gzip trailer, say); the digest."""
        while self.read(1 << 20):
            pass
        return self.digest.hexdigest()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._handle, name)


def _open_stream(source: Source, progress: Progress | None) -> tuple[Any, _Counting]:
    """The file as a stream of its (uncompressed) bytes, and the raw file under it."""
    counted = _Counting(source.path.open("rb"), progress)
    if source.compressed:
        return gzip.GzipFile(fileobj=counted, mode="rb"), counted  # type: ignore[arg-type]
    return counted, counted


def _jsonl_batches(source: Source, progress: Progress | None) -> Iterator[pa.RecordBatch]:
    parse = pacsv.ParseOptions(
        delimiter="\x01",
        quote_char=False,
        escape_char=False,
        ignore_empty_lines=False,
        invalid_row_handler=_collect_rejects(source, "line containing a \\x01 byte"),
    )
    convert = pacsv.ConvertOptions(column_types={"text": pa.binary()})
    yield from _csv_stream(source, progress, ["text"], parse, convert, first=1)


def _csv_batches(source: Source, progress: Progress | None) -> Iterator[pa.RecordBatch]:
    parse = pacsv.ParseOptions(
        newlines_in_values=True,
        invalid_row_handler=_collect_rejects(source, "CSV row with the wrong number of fields"),
    )
    convert = pacsv.ConvertOptions(
        column_types={name: pa.binary() for name in source.columns},
        strings_can_be_null=False,
        quoted_strings_can_be_null=False,
    )
    yield from _csv_stream(source, progress, None, parse, convert, first=2)


def _csv_stream(
    source: Source,
    progress: Progress | None,
    names: list[str] | None,
    parse: pacsv.ParseOptions,
    convert: pacsv.ConvertOptions,
    first: int,
) -> Iterator[pa.RecordBatch]:
    block = _BLOCK_SIZE
    done = first - 1  # the last line yielded: a retry yields only the lines after it
    while True:
        read = pacsv.ReadOptions(column_names=names, block_size=block, use_threads=False)
        stream, raw = _open_stream(source, progress)
        try:
            reader = pacsv.open_csv(
                stream, read_options=read, parse_options=parse, convert_options=convert
            )
            for batch in _numbered(reader, first=first, rejects=source.rejects):
                if batch.num_rows and batch.column(0)[0].as_py() <= done:
                    batch = batch.filter(pc.greater(batch.column(0), done))
                if batch.num_rows:
                    done = batch.column(0)[-1].as_py()
                    yield batch
            # Only a read that reached the end has seen every byte once.
            source.sha256 = raw.finish()
            return
        except pa.ArrowInvalid as error:
            # A line longer than the block: read again with bigger blocks.
            if "straddling" in str(error) and block < _MAX_BLOCK_SIZE:
                block *= 4
                continue
            # An empty JSON Lines file holds no records (an empty snapshot is evidence);
            # a CSV file still needs its header line.
            if names is not None and "Empty CSV file" in str(error):
                source.sha256 = raw.finish()
                return
            raise InputError(f"{source.path} cannot be read: {_arrow_message(error)}") from None
        finally:
            stream.close()


def _arrow_message(error: pa.ArrowInvalid) -> str:
    """pyarrow's reason a CSV stream stopped, without the row text it quotes (a row
    may hold a token).

    Known limitation: pyarrow hands a row with the wrong number of fields to the
    reject handler only as UTF-8 text, so such a row that is also not UTF-8 cannot
    be quarantined and stops the whole file; the message then names its row.
    """
    message = _first_line(str(error))
    wrong = re.search(r"Row #(\d+): Expected \d+ columns, got \d+", message)
    if wrong:
        return (
            f"line {wrong.group(1)} cannot be split into fields and holds bytes that are not "
            "UTF-8; fix or remove that line"
        )
    return message


def _parquet_batches(source: Source, progress: Progress | None) -> Iterator[pa.RecordBatch]:
    try:
        parquet = pq.ParquetFile(source.path)
        # One reader per row group of the file. A single iter_batches over the whole
        # file kept more of its decoded buffers with every batch (pyarrow 26, measured
        # on a 10M-row file: 382 MiB of Arrow memory after the first table, 1,025 MiB
        # after forty, about 1.6 GiB by the end); read this way it stays at 214 MiB.
        # Compare apache/arrow#39808.
        batches = (
            batch
            for group in range(parquet.num_row_groups)
            for batch in parquet.iter_batches(batch_size=_PARQUET_BATCH, row_groups=[group])
        )
        for batch in _numbered(batches, first=1):
            if progress:
                progress(int(source.size * batch.num_rows / max(parquet.metadata.num_rows, 1)))
            yield batch
    except (pa.ArrowInvalid, OSError) as error:
        raise InputError(f"{source.path} cannot be read: {_first_line(str(error))}") from None


def _numbered(
    batches: Any, *, first: int, rejects: list[tuple[int, str, str]] | None = None
) -> Iterator[pa.RecordBatch]:
    """Prefix each batch with its rows' line numbers, skipping the lines of rejected
    rows (which the reader reports, with their line, while it reads the batch)."""
    line = first
    for batch in batches:
        count = batch.num_rows
        skip = {reject[0] for reject in rejects or () if reject[0] >= line}
        if skip:
            free = (number for number in itertools.count(line) if number not in skip)
            numbers = pa.array(list(itertools.islice(free, count)), pa.int64())
        else:
            numbers = pa.array(range(line, line + count), pa.int64())
        if count:
            line = numbers[-1].as_py() + 1
        yield pa.RecordBatch.from_arrays(
            [numbers, *batch.columns], names=["line", *batch.schema.names]
        )


def _collect_rejects(source: Source, reason: str) -> Callable[[Any], str]:
    seen = {reject[0] for reject in source.rejects}

    def handle(row: Any) -> str:
        line = row.number if row.number is not None else -1
        # A read again with bigger blocks meets the same rows again.
        if line < 0 or line not in seen:
            seen.add(line)
            source.rejects.append((line, reason, row.text))
        return "skip"

    return handle


def _jsonl_sql(columns: tuple[str, ...]) -> str:
    paths = ", ".join(_json_path(column) for column in columns)
    fields = ",\n    ".join(
        f"f[{index}] as {_ident(column)}" for index, column in enumerate(columns, start=1)
    )
    return f"""
select line, parse_error,
    case when parse_error is not null then va_mask(coalesce(text, '<invalid UTF-8>')) end
        as raw_text,
    {fields}
from (
    select line, text, f,
        case
            when text is null then 'invalid UTF-8'
            when f is not null then null
            when va_blank(text) then 'blank'
            when json_valid(text) then 'not a JSON object'
            else 'bad JSON'
        end as parse_error
    from (
        select line, text,
            case when starts_with(ltrim(text), '{{') then try(json_extract_string(text, [{paths}]))
            end as f
        from (select line, try(decode(text)) as text from va_batch)
    )
)"""


def _columnar_sql(source: Source, columns: tuple[str, ...]) -> str:
    present = {name.strip().lower(): name for name in source.columns}
    fields = []
    checks = []
    for column in columns:
        name = present.get(column)
        if name is None:
            fields.append(f"null::varchar as {_ident(column)}")
        elif source.format == "csv":
            fields.append(f"try(decode({_ident(name)})) as {_ident(column)}")
            checks.append(f"({_ident(name)} is not null and try(decode({_ident(name)})) is null)")
        elif name in source.nested:
            fields.append(f"to_json({_ident(name)})::varchar as {_ident(column)}")
        else:
            fields.append(f"cast({_ident(name)} as varchar) as {_ident(column)}")
    invalid = " or ".join(checks) or "false"
    joined = ",\n    ".join(fields)
    return f"""
select line,
    case when {invalid} then 'invalid UTF-8' end as parse_error,
    null::varchar as raw_text,
    {joined}
from va_batch"""


def _json_path(key: str) -> str:
    escaped = key.replace("'", "''").replace('"', '\\"')
    return f"'$.\"{escaped}\"'"


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _first_line(message: str) -> str:
    return message.strip().splitlines()[0] if message.strip() else message
