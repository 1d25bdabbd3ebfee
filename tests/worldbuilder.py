"""Build a store for a test by inserting rows straight into the raw tables.

Tests of the verdicts should not depend on ingestion: a ``World`` writes the facts a
test needs (events, token uses, tokens, audit entries, snapshots) and nothing else.
Times are RFC 3339 strings with any offset, or datetimes; DuckDB stores them in UTC.

    world = World(tmp_path / "store.duckdb")
    world.register("ds-1", user_id="u-1", supabase_session_id="s-1", at="...T11:00:00Z")
    world.revoke("ds-1", at="...T12:00:00Z")
    token = world.token(sub="u-1", session_id="s-1", iat="...T11:42:10Z")
    request = world.use(token, at="...T12:05:31Z")
    assert world.verdict_of(request) == ("expected_by_design", "residual_token_validity")
"""

from __future__ import annotations

import datetime as dt
import hashlib
import itertools
import json
from pathlib import Path
from typing import Any

import duckdb

from vault_audit import correlate
from vault_audit.settings import Settings
from vault_audit.store import connect

Moment = str | dt.datetime

BROWSER = "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_4) AppleWebKit/605.1.15 Safari/605.1.15"
OFFICE_IP = "198.51.100.7"
_RUN = 1


class World:
    """A store under construction, with helpers that read the verdicts back."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self.connection: duckdb.DuckDBPyConnection = connect(self.path)
        # Every id issued so far named one row; a store opened again continues the count.
        issued = self.connection.execute(
            "select (select count(*) from vault_events) + (select count(*) from token_uses)"
            " + (select count(*) from tokens) + (select count(*) from idp_audit)"
        ).fetchone()
        self._ids = itertools.count(1 + int(issued[0]) if issued else 1)
        self.connection.execute(
            "insert into ingest_runs values (?, 'test', 'worldbuilder', null, 0, 0, 0, 0, 0, now())"
            " on conflict do nothing",
            [_RUN],
        )

    def close(self) -> None:
        self.connection.close()

    def _next(self, prefix: str) -> str:
        return f"{prefix}-{next(self._ids)}"

    # Vault's own audit log.

    def event(
        self,
        type: str,
        *,
        at: Moment,
        actor_id: str | None = None,
        workspace_id: str | None = None,
        ip: str | None = None,
        user_agent: str | None = None,
        **target: Any,
    ) -> str:
        """Insert one Vault audit event; ``target`` fields as in CONTRACT.md section 2."""
        event_id = self._next("ev")
        self.connection.execute(
            "insert into vault_events (id, type, occurred_at, actor_id, workspace_id, ip,"
            " user_agent, target, device_session_id, target_user_id, supabase_session_id,"
            " label, secret_id, visibility, role, permission, ingest_run_id)"
            " values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                event_id,
                type,
                at,
                actor_id,
                workspace_id,
                ip,
                user_agent,
                json.dumps(target),
                target.get("device_session_id"),
                target.get("user_id"),
                target.get("supabase_session_id"),
                target.get("label"),
                target.get("secret_id"),
                target.get("visibility"),
                target.get("role"),
                target.get("permission"),
                _RUN,
            ],
        )
        return event_id

    def register(
        self,
        device_session_id: str,
        *,
        user_id: str,
        supabase_session_id: str,
        at: Moment,
        user_agent: str | None = BROWSER,
        ip: str | None = OFFICE_IP,
        label: str = "MacBook",
    ) -> str:
        return self.event(
            "session.register",
            at=at,
            actor_id=user_id,
            ip=ip,
            user_agent=user_agent,
            device_session_id=device_session_id,
            user_id=user_id,
            supabase_session_id=supabase_session_id,
            label=label,
        )

    def revoke(
        self,
        device_session_id: str,
        *,
        at: Moment,
        user_id: str | None = None,
        supabase_session_id: str | None = None,
        actor_id: str | None = None,
        ip: str | None = OFFICE_IP,
    ) -> str:
        return self.event(
            "session.revoke",
            at=at,
            actor_id=actor_id or user_id,
            ip=ip,
            user_agent=BROWSER,
            device_session_id=device_session_id,
            user_id=user_id,
            supabase_session_id=supabase_session_id,
        )

    # Supabase: tokens, audit log, session snapshots.

    def token(
        self,
        *,
        sub: str | None,
        session_id: str | None,
        iat: Moment | None,
        exp: Moment | None = None,
        lifetime: int = 3600,
        signature_status: str = "valid",
        alg: str = "ES256",
    ) -> str:
        """Insert one distinct token; ``exp`` defaults to ``iat`` + ``lifetime``."""
        token_sha256 = hashlib.sha256(self._next("token").encode()).hexdigest()
        issued = _moment(iat)
        expires = _moment(exp) if exp is not None else None
        if expires is None and issued is not None:
            expires = issued + dt.timedelta(seconds=lifetime)
        lifetime_seconds = int((expires - issued).total_seconds()) if issued and expires else None
        self.connection.execute(
            "insert into tokens (token_sha256, alg, sub, session_id, role, aud, issued_at,"
            " expires_at, lifetime_seconds, signature_status)"
            " values (?, ?, ?, ?, 'authenticated', 'authenticated', ?, ?, ?, ?)",
            [
                token_sha256,
                alg,
                sub,
                session_id,
                issued,
                expires,
                lifetime_seconds,
                signature_status,
            ],
        )
        return token_sha256

    def use(
        self,
        token_sha256: str,
        *,
        at: Moment,
        decision: str = "allow",
        method: str = "GET",
        path: str = "/v1/secrets/sec-1",
        resource: str | None = "secret:sec-1",
        workspace_id: str | None = "ws-1",
        ip: str | None = OFFICE_IP,
        user_agent: str | None = BROWSER,
    ) -> str:
        """Insert one access-log row for a token; return its request_id."""
        request_id = self._next("req")
        self.connection.execute(
            "insert into token_uses (request_id, used_at, method, path, status, decision, ip,"
            " user_agent, workspace_id, resource, token_sha256, ingest_run_id)"
            " values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                request_id,
                at,
                method,
                path,
                200 if decision == "allow" else 403,
                decision,
                ip,
                user_agent,
                workspace_id,
                resource,
                token_sha256,
                _RUN,
            ],
        )
        return request_id

    def audit(
        self, action: str, *, at: Moment, actor_id: str, traits_user_id: str | None = None
    ) -> str:
        """Insert one auth.audit_log_entries row."""
        entry_id = self._next("audit")
        payload = {"actor_id": actor_id, "action": action}
        if traits_user_id:
            payload["traits"] = {"user_id": traits_user_id}
        self.connection.execute(
            "insert into idp_audit (id, created_at, payload, action, actor_id, traits_user_id,"
            " ingest_run_id) values (?, ?, ?, ?, ?, ?, ?)",
            [entry_id, at, json.dumps(payload), action, actor_id, traits_user_id, _RUN],
        )
        return entry_id

    def supabase_snapshot(self, at: Moment, sessions: dict[str, str]) -> None:
        """A snapshot of auth.sessions taken at ``at``: session id -> user id."""
        self.connection.execute("insert into snapshots values ('supabase-sessions', ?)", [at])
        for session_id, user_id in sessions.items():
            self.connection.execute(
                "insert into idp_session_snapshots (id, snapshot_at, user_id, ingest_run_id)"
                " values (?, ?, ?, ?)",
                [session_id, at, user_id, _RUN],
            )

    def device_snapshot(self, at: Moment, rows: list[dict[str, Any]]) -> None:
        """A snapshot of Vault's device-session table taken at ``at``."""
        self.connection.execute("insert into snapshots values ('device-sessions', ?)", [at])
        for row in rows:
            self.connection.execute(
                "insert into device_session_snapshots (id, snapshot_at, user_id,"
                " supabase_session_id, label, user_agent, ip, created_at, last_seen_at,"
                " revoked_at, revoked_by, ingest_run_id)"
                " values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    row["id"],
                    at,
                    row.get("user_id"),
                    row.get("supabase_session_id"),
                    row.get("label"),
                    row.get("user_agent"),
                    row.get("ip"),
                    row.get("created_at"),
                    row.get("last_seen_at"),
                    row.get("revoked_at"),
                    row.get("revoked_by"),
                    _RUN,
                ],
            )

    # Reading the verdicts back.

    def check(self, **settings: Any) -> correlate.CheckResult:
        return correlate.run_check(self.connection, Settings(db=str(self.path), **settings))

    def verdict_of(self, request_id: str, **settings: Any) -> tuple[str, str] | None:
        """Run a check and return the (verdict, reason) of one use, None without one."""
        self.check(**settings)
        row = self.connection.execute(
            "select verdict, reason from classified_uses where request_id = ?", [request_id]
        ).fetchone()
        return (row[0], row[1]) if row else None

    def classified(self, request_id: str) -> dict[str, Any]:
        """The classified_uses row of one use after the last check, as a dict."""
        cursor = self.connection.execute(
            "select * from classified_uses where request_id = ?", [request_id]
        )
        names = [column[0] for column in cursor.description]
        row = cursor.fetchone()
        assert row is not None, f"{request_id} got no verdict"
        return dict(zip(names, row, strict=True))


def _moment(value: Moment | None) -> dt.datetime | None:
    if value is None:
        return None
    if isinstance(value, dt.datetime):
        return value if value.tzinfo else value.replace(tzinfo=dt.timezone.utc)
    parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.timezone.utc)
