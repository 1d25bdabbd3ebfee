"""The five input kinds: their columns, keys, tables and how to tell them apart."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from vault_audit.errors import InputError, UsageError


@dataclass(frozen=True)
class Kind:
    """One input kind of the contract (section 2)."""

    name: str
    columns: tuple[str, ...]
    table: str
    key: tuple[str, ...]
    query: str
    snapshot: bool = False
    # Columns whose presence identifies the kind when --kind is left out.
    signature: frozenset[str] = frozenset()
    # Columns whose presence rules the kind out.
    excludes: frozenset[str] = frozenset()
    # When given, at least one of these must be present too: the two snapshot kinds
    # share id and user_id, and only these columns tell them apart.
    any_of: frozenset[str] = frozenset()
    # Whether the table's primary key keeps `key` unique. When it does not (a key
    # index too big to hold in memory), the loader removes a source's repeats itself.
    indexed: bool = True
    # Fields the kind's query takes trimmed of spaces already: the loader trims them in
    # Arrow, about ten times faster than DuckDB's trim (measured: 1.5 ms against 18 ms
    # for 122,880 request ids).
    trimmed: tuple[str, ...] = ()


VAULT_EVENTS = Kind(
    name="vault-events",
    columns=("id", "type", "occurred_at", "actor_id", "workspace_id", "ip", "user_agent", "target"),
    table="vault_events",
    key=("id",),
    query="ingest/vault_events.sql",
    signature=frozenset({"type", "occurred_at"}),
)

ACCESS_LOG = Kind(
    name="access-log",
    columns=(
        "request_id",
        "at",
        "method",
        "path",
        "status",
        "decision",
        "ip",
        "user_agent",
        "workspace_id",
        "resource",
        "token",
        "authorization",
        "claims",
        "token_sha256",
    ),
    table="token_uses",
    key=("request_id",),
    query="ingest/access_log.sql",
    signature=frozenset({"request_id"}),
    # A file with a verdict is vault-audit's own output (the simulator's ground truth,
    # `check --detail uses`), not a log; --kind still takes it as one.
    excludes=frozenset({"verdict"}),
    indexed=False,
    trimmed=("request_id", "at", "method", "status", "decision", "ip", "workspace_id", "resource"),
)

SUPABASE_AUDIT = Kind(
    name="supabase-audit",
    columns=("instance_id", "id", "payload", "created_at", "ip_address"),
    table="idp_audit",
    key=("id",),
    query="ingest/supabase_audit.sql",
    signature=frozenset({"payload"}),
)

SUPABASE_SESSIONS = Kind(
    name="supabase-sessions",
    columns=(
        "id",
        "user_id",
        "created_at",
        "updated_at",
        "refreshed_at",
        "not_after",
        "aal",
        "user_agent",
        "ip",
        "snapshot_at",
    ),
    table="idp_session_snapshots",
    key=("id", "snapshot_at"),
    query="ingest/supabase_sessions.sql",
    snapshot=True,
    signature=frozenset({"id", "user_id"}),
    excludes=frozenset(
        {"supabase_session_id", "label", "last_seen_at", "revoked_at", "revoked_by"}
        | {"type", "payload", "request_id"}
    ),
    any_of=frozenset({"updated_at", "refreshed_at", "not_after", "aal"}),
)

DEVICE_SESSIONS = Kind(
    name="device-sessions",
    columns=(
        "id",
        "user_id",
        "supabase_session_id",
        "label",
        "user_agent",
        "ip",
        "created_at",
        "last_seen_at",
        "revoked_at",
        "revoked_by",
        "snapshot_at",
    ),
    table="device_session_snapshots",
    key=("id", "snapshot_at"),
    query="ingest/device_sessions.sql",
    snapshot=True,
    signature=frozenset({"id", "user_id"}),
    excludes=frozenset(
        {"updated_at", "refreshed_at", "not_after", "aal", "type", "payload", "request_id"}
    ),
    any_of=frozenset({"supabase_session_id", "label", "last_seen_at", "revoked_at", "revoked_by"}),
)

KINDS: dict[str, Kind] = {
    kind.name: kind
    for kind in (VAULT_EVENTS, ACCESS_LOG, SUPABASE_AUDIT, SUPABASE_SESSIONS, DEVICE_SESSIONS)
}


def kind_named(name: str) -> Kind:
    """The kind called ``name``, or a usage error listing the kinds."""
    try:
        return KINDS[name]
    except KeyError:
        raise UsageError(f"unknown kind {name!r}; use one of {', '.join(KINDS)}") from None


def detect_kind(columns: Iterable[str], source: str) -> Kind:
    """Tell the kind of a file from its column names, or say why it cannot."""
    present = {column.strip().lower() for column in columns}
    possible = [
        kind for kind in KINDS.values() if kind.signature <= present and not kind.excludes & present
    ]
    certain = [kind for kind in possible if not kind.any_of or kind.any_of & present]
    matches = certain or possible
    if len(matches) == 1:
        return matches[0]
    if not matches:
        raise InputError(
            f"cannot tell the kind of {source} from its columns "
            f"({', '.join(sorted(present)[:12]) or 'none'}); pass --kind"
        )
    names = " or ".join(kind.name for kind in matches)
    raise InputError(f"{source} could be {names}; pass --kind")
