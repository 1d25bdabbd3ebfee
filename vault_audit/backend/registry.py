"""Vault's device-session registry: one record per browser or device of a user.

A device-session record ties a user's browser to the Supabase session it signed in
with (the token's ``session_id`` claim). Registering writes a ``session.register``
event; revoking writes a ``session.revoke`` event and marks the record revoked.

What a revoke does, and no more: the Vault device-session record is marked revoked,
with the time and the actor. The Supabase session and any JWT already issued are
untouched; a revoke does not sign anyone out, and the browser's token keeps working
until its ``exp``. Vault's authorization never reads this registry.
"""

from __future__ import annotations

import bisect
import builtins
import json
import random
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from typing import Any

IdFactory = Callable[[], str]


class RegistryError(Exception):
    """A registry operation that cannot apply (an unknown id, an impossible time)."""


class UnknownDeviceSession(RegistryError, LookupError):
    """No device-session record has this id."""


def utc(moment: datetime) -> datetime:
    """``moment`` in UTC; a naive datetime is refused, since its zone is unknown."""
    if not isinstance(moment, datetime) or moment.tzinfo is None:
        raise ValueError(f"expected a timezone-aware datetime, got {moment!r}")
    return moment.astimezone(timezone.utc)


def rfc3339(moment: datetime | None) -> str | None:
    """RFC 3339 in UTC with ``Z``; microseconds only when there are some."""
    if moment is None:
        return None
    moment = utc(moment)
    timespec = "seconds" if moment.microsecond == 0 else "microseconds"
    return moment.isoformat(timespec=timespec).replace("+00:00", "Z")


def parse_time(value: datetime | str | float) -> datetime:
    """A UTC datetime from a datetime, RFC 3339 text, or epoch seconds."""
    if isinstance(value, datetime):
        return utc(value)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return datetime.fromtimestamp(value, tz=timezone.utc)
    if isinstance(value, str):
        text = value.strip()
        if text.endswith(("Z", "z")):
            text = text[:-1] + "+00:00"
        return utc(datetime.fromisoformat(text))
    raise ValueError(f"not a time: {value!r}")


def seeded_id_factory(seed: int) -> IdFactory:
    """UUID-shaped ids from a seeded generator: the same seed, the same ids."""
    generator = random.Random(seed)

    def next_id() -> str:
        return str(uuid.UUID(int=generator.getrandbits(128), version=4))

    return next_id


def _random_id() -> str:
    return str(uuid.uuid4())


@dataclass
class DeviceSession:
    """One row of Vault's device-session table."""

    id: str
    user_id: str
    supabase_session_id: str | None
    label: str | None
    user_agent: str | None
    ip: str | None
    created_at: datetime
    last_seen_at: datetime | None = None
    revoked_at: datetime | None = None
    revoked_by: str | None = None

    @property
    def is_revoked(self) -> bool:
        return self.revoked_at is not None

    def to_snapshot_row(self) -> dict[str, Any]:
        """The record in the ``device-sessions`` input columns, times RFC 3339 with Z."""
        return {
            "id": self.id,
            "user_id": self.user_id,
            "supabase_session_id": self.supabase_session_id,
            "label": self.label,
            "user_agent": self.user_agent,
            "ip": self.ip,
            "created_at": rfc3339(self.created_at),
            "last_seen_at": rfc3339(self.last_seen_at),
            "revoked_at": rfc3339(self.revoked_at),
            "revoked_by": self.revoked_by,
        }


@dataclass
class VaultEvent:
    """One event of Vault's own audit log."""

    id: str
    type: str
    occurred_at: datetime
    actor_id: str | None
    workspace_id: str | None
    ip: str | None
    user_agent: str | None
    target: dict[str, Any] = field(default_factory=dict)

    def to_record(self) -> dict[str, Any]:
        """The event in the ``vault-events`` input columns, times RFC 3339 with Z."""
        return {
            "id": self.id,
            "type": self.type,
            "occurred_at": rfc3339(self.occurred_at),
            "actor_id": self.actor_id,
            "workspace_id": self.workspace_id,
            "ip": self.ip,
            "user_agent": self.user_agent,
            "target": dict(self.target),
        }

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> VaultEvent:
        """An event from a ``vault-events`` record; ``target`` may be a JSON string."""
        target = record.get("target") or {}
        if isinstance(target, str):
            target = json.loads(target)
        if not isinstance(target, Mapping):
            raise ValueError(f"event {record.get('id')!r}: target is not an object")
        return cls(
            id=str(record["id"]),
            type=str(record["type"]),
            occurred_at=parse_time(record["occurred_at"]),
            actor_id=record.get("actor_id"),
            workspace_id=record.get("workspace_id"),
            ip=record.get("ip"),
            user_agent=record.get("user_agent"),
            target=dict(target),
        )


class DeviceSessionRegistry:
    """Vault's device-session table and the events its changes write.

    ``revoke`` marks Vault's record revoked and writes ``session.revoke``; it does
    not end the Supabase session and does not invalidate any JWT already issued.
    Revoking a record that is already revoked changes nothing and writes no event:
    the first revocation's time and actor stand.

    ``id_factory`` makes the ids of records and events; pass a seeded one (see
    ``seeded_id_factory``) for reproducible output.
    """

    def __init__(self, id_factory: IdFactory | None = None) -> None:
        self._new_id = id_factory or _random_id
        self._records: dict[str, DeviceSession] = {}
        self._seen: dict[str, builtins.list[datetime]] = {}
        self._events: builtins.list[VaultEvent] = []

    def register(
        self,
        *,
        user_id: str,
        supabase_session_id: str | None,
        label: str | None,
        user_agent: str | None,
        ip: str | None,
        at: datetime,
        workspace_id: str | None = None,
        device_session_id: str | None = None,
    ) -> DeviceSession:
        """A new record for the user's browser, and its ``session.register`` event."""
        at = utc(at)
        record_id = device_session_id or self._new_id()
        if record_id in self._records:
            raise RegistryError(f"device session {record_id} is already registered")

        record = DeviceSession(
            id=record_id,
            user_id=user_id,
            supabase_session_id=supabase_session_id,
            label=label,
            user_agent=user_agent,
            ip=ip,
            created_at=at,
            last_seen_at=at,
        )
        self._records[record_id] = record
        self._seen[record_id] = [at]
        self._record_event("session.register", record, user_id, at, workspace_id, ip, user_agent)
        return record

    def revoke(
        self,
        device_session_id: str,
        *,
        actor_id: str,
        at: datetime,
        ip: str | None = None,
        user_agent: str | None = None,
        workspace_id: str | None = None,
    ) -> DeviceSession:
        """Mark Vault's record revoked by ``actor_id`` (the user or an admin).

        The Supabase session and its already-issued JWTs are untouched. A second
        revoke of the same record is a no-op that returns it unchanged.
        """
        record = self._get(device_session_id)
        at = utc(at)
        if record.revoked_at is not None:
            return record
        if at < record.created_at:
            raise RegistryError(
                f"device session {device_session_id} cannot be revoked at {rfc3339(at)}, "
                f"before it was registered at {rfc3339(record.created_at)}"
            )

        record.revoked_at = at
        record.revoked_by = actor_id
        self._record_event("session.revoke", record, actor_id, at, workspace_id, ip, user_agent)
        return record

    def touch(self, device_session_id: str, at: datetime) -> DeviceSession:
        """Note that the record's browser was seen at ``at`` (revoked or not)."""
        record = self._get(device_session_id)
        at = utc(at)
        if at < record.created_at:
            raise RegistryError(
                f"device session {device_session_id} cannot be seen at {rfc3339(at)}, "
                f"before it was registered at {rfc3339(record.created_at)}"
            )
        seen = self._seen[device_session_id]
        bisect.insort(seen, at)
        record.last_seen_at = seen[-1]
        return record

    def get(self, device_session_id: str) -> DeviceSession:
        """The record with this id; ``UnknownDeviceSession`` when there is none."""
        return self._get(device_session_id)

    def current(self, user_id: str, supabase_session_id: str) -> DeviceSession | None:
        """The user's latest record for this Supabase session, unless it is revoked.

        None when the session has no record, or its latest record was revoked (the
        browser then has no live device session in Vault, though its Supabase
        session and tokens may well still work).
        """
        matching = [
            record
            for record in self._records.values()
            if record.user_id == user_id and record.supabase_session_id == supabase_session_id
        ]
        if not matching:
            return None
        latest = max(matching, key=lambda record: record.created_at)
        return None if latest.is_revoked else latest

    @property
    def events(self) -> builtins.list[VaultEvent]:
        """The ``session.register`` and ``session.revoke`` events, in the order written."""
        return builtins.list(self._events)

    def snapshot(self, at: datetime) -> builtins.list[dict[str, Any]]:
        """The table as it stood at ``at``, as ``device-sessions`` rows with ``snapshot_at``.

        Records registered after ``at`` are left out; a revocation after ``at`` is
        not shown; ``last_seen_at`` is the latest sighting at or before ``at``.
        """
        at = utc(at)
        rows = []
        for record in sorted(self._records.values(), key=lambda item: (item.created_at, item.id)):
            if record.created_at > at:
                continue
            seen = self._seen[record.id]
            as_of = replace(record, last_seen_at=seen[bisect.bisect_right(seen, at) - 1])
            if record.revoked_at is not None and record.revoked_at > at:
                as_of.revoked_at, as_of.revoked_by = None, None
            rows.append({**as_of.to_snapshot_row(), "snapshot_at": rfc3339(at)})
        return rows

    def list(self, user_id: str, *, include_revoked: bool = True) -> builtins.list[DeviceSession]:
        """The user's records, oldest first."""
        records = [
            record
            for record in self._records.values()
            if record.user_id == user_id and (include_revoked or not record.is_revoked)
        ]
        return sorted(records, key=lambda record: (record.created_at, record.id))

    def _get(self, device_session_id: str) -> DeviceSession:
        try:
            return self._records[device_session_id]
        except KeyError:
            raise UnknownDeviceSession(
                f"no device session {device_session_id!r} is registered"
            ) from None

    def _record_event(
        self,
        event_type: str,
        record: DeviceSession,
        actor_id: str,
        at: datetime,
        workspace_id: str | None,
        ip: str | None,
        user_agent: str | None,
    ) -> None:
        target = {
            "device_session_id": record.id,
            "user_id": record.user_id,
            "supabase_session_id": record.supabase_session_id,
            "label": record.label,
        }
        self._events.append(
            VaultEvent(
                id=self._new_id(),
                type=event_type,
                occurred_at=at,
                actor_id=actor_id,
                workspace_id=workspace_id,
                ip=ip,
                user_agent=user_agent,
                target=target,
            )
        )
