from __future__ import annotations

import inspect
import json
from datetime import datetime, timedelta, timezone

import pytest

from vault_audit.backend import registry as registry_module
from vault_audit.backend.registry import (
    DeviceSessionRegistry,
    RegistryError,
    UnknownDeviceSession,
    VaultEvent,
    parse_time,
    rfc3339,
    seeded_id_factory,
)
from vault_audit.backend.tokens import (
    VerificationKeys,
    sign_access_token,
    signature_status,
    verify_access_token,
)

T0 = datetime(2025, 6, 2, 9, 0, 0, tzinfo=timezone.utc)
SECRET = b"super-secret-jwt-token-with-at-least-32-characters-long"


def _register(registry: DeviceSessionRegistry, at: datetime = T0, **overrides: str):
    values = {
        "user_id": "user-ana",
        "supabase_session_id": "sb-1",
        "label": "Firefox on Linux",
        "user_agent": "Mozilla/5.0 (X11; Linux x86_64) Firefox/126.0",
        "ip": "203.0.113.7",
        "workspace_id": "ws-1",
    }
    values.update(overrides)
    return registry.register(at=at, **values)


def test_registering_writes_a_record_and_a_session_register_event() -> None:
    registry = DeviceSessionRegistry(id_factory=seeded_id_factory(1))

    record = _register(registry)

    assert registry.get(record.id) is record
    assert record.created_at == T0 and record.last_seen_at == T0 and not record.is_revoked
    [event] = registry.events
    assert event.type == "session.register"
    assert event.actor_id == "user-ana"
    assert event.target == {
        "device_session_id": record.id,
        "user_id": "user-ana",
        "supabase_session_id": "sb-1",
        "label": "Firefox on Linux",
    }
    assert event.to_record()["occurred_at"] == "2025-06-02T09:00:00Z"


def test_revoking_marks_the_record_and_writes_a_session_revoke_event_by_its_actor() -> None:
    registry = DeviceSessionRegistry(id_factory=seeded_id_factory(1))
    record = _register(registry)
    revoked_at = T0 + timedelta(hours=3)

    returned = registry.revoke(record.id, actor_id="admin-bo", at=revoked_at, ip="198.51.100.2")

    assert returned is record
    assert record.revoked_at == revoked_at and record.revoked_by == "admin-bo"
    event = registry.events[-1]
    assert event.type == "session.revoke"
    assert event.actor_id == "admin-bo"
    assert event.target["user_id"] == "user-ana"
    assert event.target["device_session_id"] == record.id
    assert event.ip == "198.51.100.2"


def test_revoking_twice_changes_nothing_and_writes_no_second_event() -> None:
    registry = DeviceSessionRegistry()
    record = _register(registry)
    registry.revoke(record.id, actor_id="user-ana", at=T0 + timedelta(minutes=5))

    registry.revoke(record.id, actor_id="admin-bo", at=T0 + timedelta(minutes=9))

    assert record.revoked_at == T0 + timedelta(minutes=5)
    assert record.revoked_by == "user-ana"
    assert [event.type for event in registry.events] == ["session.register", "session.revoke"]


def test_revoking_an_unknown_record_is_an_error() -> None:
    registry = DeviceSessionRegistry()

    with pytest.raises(UnknownDeviceSession, match="no device session 'nope'"):
        registry.revoke("nope", actor_id="user-ana", at=T0)
    assert issubclass(UnknownDeviceSession, LookupError)
    assert issubclass(UnknownDeviceSession, RegistryError)


def test_a_record_cannot_be_revoked_or_seen_before_it_was_registered() -> None:
    registry = DeviceSessionRegistry()
    record = _register(registry)

    with pytest.raises(RegistryError, match="before it was registered"):
        registry.revoke(record.id, actor_id="user-ana", at=T0 - timedelta(seconds=1))
    with pytest.raises(RegistryError, match="before it was registered"):
        registry.touch(record.id, T0 - timedelta(seconds=1))


def test_naive_times_are_refused_and_other_offsets_become_utc() -> None:
    registry = DeviceSessionRegistry()

    with pytest.raises(ValueError, match="timezone-aware"):
        _register(registry, at=datetime(2025, 6, 2, 9, 0))
    paris = timezone(timedelta(hours=2))
    record = _register(registry, at=datetime(2025, 6, 2, 11, 0, tzinfo=paris))
    assert record.created_at == T0
    assert record.created_at.tzinfo == timezone.utc


def test_touch_keeps_the_latest_sighting_even_after_a_revocation() -> None:
    registry = DeviceSessionRegistry()
    record = _register(registry)
    registry.revoke(record.id, actor_id="user-ana", at=T0 + timedelta(minutes=10))

    registry.touch(record.id, T0 + timedelta(minutes=20))
    registry.touch(record.id, T0 + timedelta(minutes=15))

    assert record.last_seen_at == T0 + timedelta(minutes=20)


def test_list_returns_a_users_records_oldest_first() -> None:
    registry = DeviceSessionRegistry(id_factory=seeded_id_factory(3))
    phone = _register(registry, at=T0 + timedelta(hours=1), supabase_session_id="sb-2")
    laptop = _register(registry)
    _register(registry, user_id="user-cy", supabase_session_id="sb-9")
    registry.revoke(laptop.id, actor_id="user-ana", at=T0 + timedelta(hours=2))

    assert registry.list("user-ana") == [laptop, phone]
    assert registry.list("user-ana", include_revoked=False) == [phone]
    assert registry.list("user-nobody") == []


def test_current_is_the_latest_unrevoked_record_of_a_supabase_session() -> None:
    registry = DeviceSessionRegistry()
    first = _register(registry)

    assert registry.current("user-ana", "sb-1") is first
    registry.revoke(first.id, actor_id="user-ana", at=T0 + timedelta(minutes=1))
    assert registry.current("user-ana", "sb-1") is None

    again = _register(registry, at=T0 + timedelta(minutes=2))
    assert registry.current("user-ana", "sb-1") is again
    assert registry.current("user-cy", "sb-1") is None


def test_a_snapshot_shows_the_table_as_it_stood_then() -> None:
    registry = DeviceSessionRegistry(id_factory=seeded_id_factory(5))
    early = _register(registry)
    late = _register(registry, at=T0 + timedelta(hours=5), supabase_session_id="sb-2")
    registry.touch(early.id, T0 + timedelta(hours=1))
    registry.touch(early.id, T0 + timedelta(hours=4))
    registry.revoke(early.id, actor_id="admin-bo", at=T0 + timedelta(hours=3))

    before_revoke = registry.snapshot(T0 + timedelta(hours=2))
    after_all = registry.snapshot(T0 + timedelta(hours=6))

    assert [row["id"] for row in before_revoke] == [early.id]
    assert before_revoke[0]["revoked_at"] is None and before_revoke[0]["revoked_by"] is None
    assert before_revoke[0]["last_seen_at"] == "2025-06-02T10:00:00Z"
    assert before_revoke[0]["snapshot_at"] == "2025-06-02T11:00:00Z"
    assert [row["id"] for row in after_all] == [early.id, late.id]
    assert after_all[0]["revoked_at"] == "2025-06-02T12:00:00Z"
    assert after_all[0]["revoked_by"] == "admin-bo"
    assert after_all[0]["last_seen_at"] == "2025-06-02T13:00:00Z"
    assert early.revoked_at is not None, "a snapshot must not change the record"


def test_a_snapshot_row_has_the_device_sessions_input_columns() -> None:
    registry = DeviceSessionRegistry()
    record = _register(registry)

    row = record.to_snapshot_row()

    assert list(row) == [
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
    ]
    assert row["created_at"] == "2025-06-02T09:00:00Z"
    json.dumps(registry.snapshot(T0))


def test_a_seeded_id_factory_makes_the_same_ids_and_events() -> None:
    def run(seed: int) -> list[dict]:
        registry = DeviceSessionRegistry(id_factory=seeded_id_factory(seed))
        record = _register(registry)
        registry.revoke(record.id, actor_id="user-ana", at=T0 + timedelta(minutes=1))
        return [event.to_record() for event in registry.events]

    assert run(7) == run(7)
    assert run(7) != run(8)
    assert len({event["id"] for event in run(7)}) == 2


def test_a_record_with_an_id_already_taken_is_refused() -> None:
    registry = DeviceSessionRegistry()
    _register(registry, device_session_id="ds-1")

    with pytest.raises(RegistryError, match="already registered"):
        _register(registry, device_session_id="ds-1")


def test_revoking_a_record_leaves_every_issued_token_valid() -> None:
    registry = DeviceSessionRegistry()
    record = _register(registry)
    keys = VerificationKeys(secret=SECRET)
    issued = int(T0.timestamp())
    claims = {
        "sub": "user-ana",
        "session_id": "sb-1",
        "iat": issued,
        "exp": issued + 3600,
        "role": "authenticated",
        "aud": "authenticated",
    }
    token = sign_access_token(claims, SECRET)
    used_at = T0 + timedelta(minutes=30)
    before = verify_access_token(token, keys, now=used_at)

    registry.revoke(record.id, actor_id="user-ana", at=T0 + timedelta(minutes=10))

    assert verify_access_token(token, keys, now=used_at) == before
    assert signature_status(token, keys) == "valid"


def test_the_registry_says_a_revoke_touches_only_vaults_record() -> None:
    documented = " ".join(
        text.replace("\n", " ")
        for text in (
            registry_module.__doc__ or "",
            DeviceSessionRegistry.__doc__ or "",
            inspect.getdoc(DeviceSessionRegistry.revoke) or "",
        )
    )
    squashed = " ".join(documented.split())

    assert "does not sign anyone out" in squashed
    assert "JWT already issued are untouched" in squashed
    assert "does not invalidate any JWT already issued" in squashed
    assert "already-issued JWTs are untouched" in squashed


def test_an_event_record_reads_back_from_its_columns() -> None:
    event = VaultEvent(
        id="ev-1",
        type="secret.create",
        occurred_at=T0,
        actor_id="user-ana",
        workspace_id="ws-1",
        ip=None,
        user_agent=None,
        target={"secret_id": "sec-1", "visibility": "restricted"},
    )
    record = event.to_record()
    as_csv = {**record, "target": json.dumps(record["target"])}

    assert VaultEvent.from_record(record) == event
    assert VaultEvent.from_record(as_csv) == event


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2025-06-02T09:00:00Z", T0),
        ("2025-06-02T11:00:00+02:00", T0),
        (T0.timestamp(), T0),
        (int(T0.timestamp()), T0),
    ],
)
def test_times_parse_from_rfc3339_or_epoch_seconds(value: str | float, expected: datetime) -> None:
    assert parse_time(value) == expected


def test_rfc3339_keeps_microseconds_only_when_there_are_some() -> None:
    assert rfc3339(T0) == "2025-06-02T09:00:00Z"
    assert rfc3339(T0 + timedelta(microseconds=1500)) == "2025-06-02T09:00:00.001500Z"
    assert rfc3339(None) is None
