"""Output formats of ``check``, ``exposure`` and ``sessions``: table, JSON, CSV,
Parquet and OCSF. Outputs never compute verdicts: they shape what correlate kept.

- JSON is one array of records, keys in the contract's order, times RFC 3339 in UTC
  with a ``Z`` (fractional seconds only when there are some).
- CSV has the same columns; a list (``request_ids``) is a JSON array in its cell.
- Parquet keeps the types (UTC timestamps, a list of strings) and needs a file.
- OCSF writes each finding as an OCSF 1.3.0 Detection Finding (class_uid 2004), in one
  JSON array.
- The table is for a person at a terminal, readable at 100 columns; ids are cut short.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl
from rich.console import Console
from rich.table import Table
from rich.text import Text

from vault_audit import __version__
from vault_audit.errors import UsageError
from vault_audit.escaping import clean_text

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

FINDING_FIELDS = (
    "finding_id",
    "verdict",
    "reason",
    "severity",
    "user_id",
    "device_session_id",
    "supabase_session_id",
    "first_at",
    "last_at",
    "uses",
    "request_ids",
    "explanation",
)

USE_FIELDS = (
    "request_id",
    "at",
    "verdict",
    "reason",
    "severity",
    "user_id",
    "supabase_session_id",
    "device_session_id",
    "revoked_at",
    "token_issued_at",
    "token_expires_at",
    "token_sha256",
    "explanation",
)

EXPOSURE_FIELDS = (
    "device_session_id",
    "supabase_session_id",
    "user_id",
    "revoked_at",
    "revoked_by",
    "window_end",
    "open_ended",
    "uses_in_window",
    "last_use_at",
)

SESSION_FIELDS = (
    "device_session_id",
    "status",
    "label",
    "user_agent",
    "ip",
    "supabase_session_id",
    "registered_at",
    "last_seen",
    "revoked_at",
    "revoked_by",
)

OCSF_VERSION = "1.3.0"
_OCSF_SEVERITY = {"high": (4, "High"), "medium": (3, "Medium"), "info": (1, "Informational")}
_TABLE_WIDTH = 100


def shape(frame: pl.DataFrame, fields: Sequence[str]) -> pl.DataFrame:
    """Keep ``fields`` in order; the stored ``used_at`` is the output's ``at``."""
    if "used_at" in frame.columns and "at" in fields:
        frame = frame.rename({"used_at": "at"})
    return frame.select(list(fields))


def write_output(
    frame: pl.DataFrame,
    fmt: str,
    *,
    output: Path | None,
    kind: str,
    title: str = "",
) -> str | None:
    """Write ``frame`` (already shaped) as ``fmt`` to ``output``; with no output file,
    return the text for standard output instead."""
    if fmt == "parquet":
        if output is None:
            raise UsageError("--format parquet needs --output FILE")
        frame.write_parquet(output)
        return None

    if fmt == "json":
        text = _json_text(frame)
    elif fmt == "csv":
        text = _csv_text(frame)
    elif fmt == "ocsf":
        if kind != "findings":
            raise UsageError("--format ocsf writes findings; use it with --detail findings")
        text = json.dumps(ocsf_findings(frame), indent=2) + "\n"
    elif fmt == "table":
        text = table_text(frame, kind=kind, title=title)
    else:
        raise UsageError(f"unknown format {fmt!r}")

    if output is None:
        return text
    output.write_text(text, encoding="utf-8")
    return None


def rfc3339(frame: pl.DataFrame) -> pl.DataFrame:
    """Every time column as RFC 3339 text in UTC with a Z."""
    times = [name for name, dtype in frame.schema.items() if isinstance(dtype, pl.Datetime)]
    return frame.with_columns(
        pl.when(pl.col(name).dt.microsecond() == 0)
        .then(pl.col(name).dt.convert_time_zone("UTC").dt.strftime("%Y-%m-%dT%H:%M:%SZ"))
        .otherwise(pl.col(name).dt.convert_time_zone("UTC").dt.strftime("%Y-%m-%dT%H:%M:%S%.6fZ"))
        .alias(name)
        for name in times
    )


def _json_text(frame: pl.DataFrame) -> str:
    records = json.loads(rfc3339(frame).write_json()) if frame.height else []
    return json.dumps(records, indent=2, ensure_ascii=False) + "\n"


def _csv_text(frame: pl.DataFrame) -> str:
    lists = [name for name, dtype in frame.schema.items() if isinstance(dtype, pl.List)]
    flat = rfc3339(frame).with_columns(
        pl.col(name).map_elements(
            lambda values: json.dumps(list(values)), return_dtype=pl.String, skip_nulls=True
        )
        for name in lists
    )
    buffer = io.StringIO()
    flat.write_csv(buffer)
    return buffer.getvalue()


def ocsf_findings(frame: pl.DataFrame, *, now: dt.datetime | None = None) -> list[dict[str, Any]]:
    """Each finding as an OCSF 1.3.0 Detection Finding (class 2004, activity Create)."""
    created_ms = int((now or dt.datetime.now(dt.timezone.utc)).timestamp() * 1000)
    events = []
    for finding in frame.iter_rows(named=True):
        severity_id, severity = _OCSF_SEVERITY.get(finding["severity"], (0, "Unknown"))
        first_ms = _epoch_ms(finding["first_at"])
        last_ms = _epoch_ms(finding["last_at"])
        event: dict[str, Any] = {
            "class_uid": 2004,
            "class_name": "Detection Finding",
            "category_uid": 2,
            "category_name": "Findings",
            "activity_id": 1,
            "activity_name": "Create",
            "type_uid": 200401,
            "type_name": "Detection Finding: Create",
            "severity_id": severity_id,
            "severity": severity,
            "status_id": 1,
            "status": "New",
            "time": created_ms,
            "start_time": first_ms,
            "end_time": last_ms,
            "message": finding["explanation"],
            "metadata": {
                "version": OCSF_VERSION,
                "product": {
                    "name": "vault-audit",
                    "vendor_name": "vault-audit",
                    "version": __version__,
                },
            },
            "finding_info": {
                "uid": finding["finding_id"],
                "title": _title(finding["reason"]),
                "desc": finding["explanation"],
                "types": [finding["reason"]],
                "first_seen_time": first_ms,
                "last_seen_time": last_ms,
            },
            "unmapped": {
                "verdict": finding["verdict"],
                "user_id": finding["user_id"],
                "device_session_id": finding["device_session_id"],
                "supabase_session_id": finding["supabase_session_id"],
                "uses": finding["uses"],
                "request_ids": list(finding["request_ids"] or []),
            },
        }
        if finding["device_session_id"]:
            event["resources"] = [
                {"uid": finding["device_session_id"], "type": "Vault device session"}
            ]
        events.append(event)
    return events


def table_text(frame: pl.DataFrame, *, kind: str, title: str = "") -> str:
    """A rich table for a person, at most 100 columns wide."""
    console = Console(file=io.StringIO(), width=_TABLE_WIDTH, color_system=None, soft_wrap=False)
    if frame.height == 0:
        console.print(Text(f"{clean_text(title or kind)}: none"))
        return console.file.getvalue()  # type: ignore[attr-defined]

    table = Table(title=Text(clean_text(title)) if title else None, show_lines=True, expand=True)
    rows: list[list[str]]
    if kind == "findings":
        for header, ratio in (("verdict / reason", 3), ("user / device", 2), ("uses", 2)):
            table.add_column(header, ratio=ratio, overflow="fold")
        table.add_column("explanation", ratio=6, overflow="fold")
        rows = [
            [
                f"{row['verdict']}\n{row['reason']}",
                f"{_short(row['user_id'])}\n{_short(row['device_session_id'])}",
                f"{row['uses']}\n{_clock(row['first_at'])}\n{_clock(row['last_at'])}",
                row["explanation"] or "",
            ]
            for row in _inert_rows(frame)
        ]
    elif kind == "uses":
        for header, ratio in (("at", 2), ("verdict / reason", 3), ("user / device", 2)):
            table.add_column(header, ratio=ratio, overflow="fold")
        table.add_column("explanation", ratio=6, overflow="fold")
        rows = [
            [
                f"{_clock(row['at'])}\n{row['request_id']}",
                f"{row['verdict']}\n{row['reason']}",
                f"{_short(row['user_id'])}\n{_short(row['device_session_id'])}",
                row["explanation"] or "",
            ]
            for row in _inert_rows(frame)
        ]
    elif kind == "exposure":
        for header in ("device / user", "revoked", "window ends", "uses", "last use"):
            table.add_column(header, overflow="fold")
        rows = [
            [
                f"{_short(row['device_session_id'])}\n{_short(row['user_id'])}",
                f"{_clock(row['revoked_at'])}\nby {_short(row['revoked_by'])}",
                "open-ended" if row["open_ended"] else _clock(row["window_end"]),
                str(row["uses_in_window"]),
                _clock(row["last_use_at"]),
            ]
            for row in _inert_rows(frame)
        ]
    else:
        for header in ("device session", "status", "label / client", "last seen", "revoked"):
            table.add_column(header, overflow="fold")
        rows = [
            [
                _short(row["device_session_id"]),
                row["status"],
                f"{row['label'] or ''}\n{row['user_agent'] or ''}\n{row['ip'] or ''}",
                _clock(row["last_seen"]),
                _clock(row["revoked_at"]),
            ]
            for row in _inert_rows(frame)
        ]

    # Each cell is inert text: any [markup] in a log value is printed as it is.
    for row in rows:
        table.add_row(*(Text(cell) for cell in row))
    console.print(table)
    return console.file.getvalue()  # type: ignore[attr-defined]


def _inert_rows(frame: pl.DataFrame) -> Iterator[dict[str, Any]]:
    """The frame's rows with every text value's control characters shown as visible
    escapes: log values are attacker controlled, and a terminal obeys an ESC byte."""
    for row in frame.iter_rows(named=True):
        yield {
            name: clean_text(value) if isinstance(value, str) else value
            for name, value in row.items()
        }


def _title(reason: str) -> str:
    return reason.replace("_", " ").capitalize()


def _epoch_ms(moment: dt.datetime | None) -> int | None:
    return int(moment.timestamp() * 1000) if moment else None


def _clock(moment: dt.datetime | None) -> str:
    if moment is None:
        return "-"
    return moment.astimezone(dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%SZ")


def _short(identifier: str | None) -> str:
    if not identifier:
        return "-"
    return identifier if len(identifier) <= 12 else identifier[:11] + "…"


@dataclass(frozen=True)
class Suppression:
    """One ``[[suppress]]`` entry: findings matching every key given are not reported
    until ``expires`` (a date, inclusive)."""

    justification: str
    expires: dt.date
    user: str | None = None
    device_session: str | None = None
    reason: str | None = None

    def matches(self) -> pl.Expr:
        """A polars condition true for the findings or uses this entry covers."""
        condition = pl.lit(True)
        if self.user is not None:
            condition &= pl.col("user_id") == self.user
        if self.device_session is not None:
            condition &= (pl.col("device_session_id") == self.device_session) | (
                pl.col("supabase_session_id") == self.device_session
            )
        if self.reason is not None:
            condition &= pl.col("reason") == self.reason
        return condition.fill_null(False)


_SUPPRESSION_KEYS = {"user", "device_session", "reason", "justification", "expires"}


def load_suppressions(path: Path, *, today: dt.date) -> tuple[list[Suppression], list[str]]:
    """Read a suppression file; return the active entries and one warning per expired
    entry. An entry without a justification or an expiry date is a usage error."""
    try:
        document = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as error:
        raise UsageError(f"cannot read suppression file {path}: {error}") from None

    entries = document.get("suppress", [])
    if not isinstance(entries, list) or set(document) - {"suppress"}:
        raise UsageError(f"{path}: expected only [[suppress]] entries")

    active, warnings = [], []
    for number, entry in enumerate(entries, start=1):
        where = f"{path}: [[suppress]] entry {number}"
        if not isinstance(entry, dict):
            raise UsageError(f"{where} is not a table of keys: write it as [[suppress]]")
        unknown = sorted(set(entry) - _SUPPRESSION_KEYS)
        if unknown:
            raise UsageError(f"{where} has an unknown key {unknown[0]!r}")
        for key in ("user", "device_session", "reason", "justification"):
            if key in entry and not isinstance(entry[key], str):
                raise UsageError(f'{where}: {key} must be text in quotes, as {key} = "..."')
        justification = str(entry.get("justification") or "").strip()
        if not justification:
            raise UsageError(f"{where} needs a justification")
        expires = entry.get("expires")
        if isinstance(expires, dt.datetime):
            expires = expires.date()
        if not isinstance(expires, dt.date):
            raise UsageError(f"{where} needs expires = YYYY-MM-DD (a date)")
        if not any(entry.get(key) for key in ("user", "device_session", "reason")):
            raise UsageError(f"{where} must name a user, a device_session or a reason")

        suppression = Suppression(
            justification=justification,
            expires=expires,
            user=entry.get("user"),
            device_session=entry.get("device_session"),
            reason=entry.get("reason"),
        )
        if expires < today:
            warnings.append(f"{where} expired on {expires.isoformat()} and suppresses nothing")
        else:
            active.append(suppression)
    return active, warnings


def without_suppressed(
    frame: pl.DataFrame, suppressions: Sequence[Suppression]
) -> tuple[pl.DataFrame, int]:
    """Drop the rows an active suppression covers; return the rest and how many went."""
    if not suppressions or frame.height == 0:
        return frame, 0
    covered = pl.lit(False)
    for suppression in suppressions:
        covered |= suppression.matches()
    kept = frame.filter(~covered)
    return kept, frame.height - kept.height
