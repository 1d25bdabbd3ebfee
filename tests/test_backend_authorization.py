from __future__ import annotations

import itertools
import json
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from vault_audit.backend.authorization import AuthorizationState, Decision, is_read
from vault_audit.backend.registry import DeviceSessionRegistry, VaultEvent

T0 = datetime(2025, 6, 2, 9, 0, 0, tzinfo=timezone.utc)
_counter = itertools.count()


def _event(event_type: str, minute: int, workspace_id: str | None = "ws-1", **target: Any):
    return VaultEvent(
        id=f"ev-{next(_counter)}",
        type=event_type,
        occurred_at=T0 + timedelta(minutes=minute),
        actor_id="user-owner",
        workspace_id=workspace_id,
        ip=None,
        user_agent=None,
        target=target,
    )


def _world() -> AuthorizationState:
    """ws-1 with an owner, an admin, a member and a viewer; a workspace and a restricted
    secret; ws-2 with its own secret and only the owner."""
    return AuthorizationState.from_events(
        [
            _event("workspace.member.add", 0, user_id="user-owner", role="owner"),
            _event("workspace.member.add", 0, user_id="user-admin", role="admin"),
            _event("workspace.member.add", 0, user_id="user-member", role="member"),
            _event("workspace.member.add", 0, user_id="user-viewer", role="viewer"),
            _event("secret.create", 1, secret_id="sec-open", visibility="workspace"),
            _event("secret.create", 1, secret_id="sec-closed", visibility="restricted"),
            _event("workspace.member.add", 0, "ws-2", user_id="user-owner", role="owner"),
            _event("secret.create", 1, "ws-2", secret_id="sec-other", visibility="workspace"),
        ]
    )


def _decide(state: AuthorizationState, user: str, resource: str, method: str = "GET") -> Decision:
    return state.decide(user, "ws-1", resource, method)


def _later(state: AuthorizationState, event_type: str, minute: int, **target: Any) -> None:
    state.apply(_event(event_type, minute, **target))


# --- membership ------------------------------------------------------------------------


def test_a_user_who_is_not_a_member_is_denied() -> None:
    decision = _decide(_world(), "user-stranger", "secret:sec-open")

    assert decision == Decision(
        False, "not_a_member", "user user-stranger is not a member of workspace ws-1"
    )


def test_a_removed_member_is_denied_until_added_again() -> None:
    state = _world()
    _later(state, "workspace.member.remove", 10, user_id="user-member", role="member")

    assert _decide(state, "user-member", "secret:sec-open").rule == "not_a_member"
    assert state.role_of("user-member", "ws-1") is None

    _later(state, "workspace.member.add", 20, user_id="user-member", role="viewer")
    assert _decide(state, "user-member", "secret:sec-open").allowed
    assert _decide(state, "user-member", "secret:sec-open", "PUT").rule == "viewer_cannot_write"


def test_membership_in_one_workspace_gives_nothing_in_another() -> None:
    state = _world()

    decision = state.decide("user-member", "ws-2", "secret:sec-other", "GET")

    assert decision.rule == "not_a_member"
    assert state.decide("user-owner", "ws-2", "secret:sec-other", "GET").allowed


# --- workspace secrets -----------------------------------------------------------------


@pytest.mark.parametrize("user", ["user-owner", "user-admin", "user-member", "user-viewer"])
def test_every_member_reads_a_workspace_secret(user: str) -> None:
    decision = _decide(_world(), user, "secret:sec-open", "GET")

    assert decision.allowed
    assert decision.rule == "member_reads_workspace_secret"


@pytest.mark.parametrize("user", ["user-owner", "user-admin", "user-member"])
@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH", "DELETE"])
def test_members_and_above_write_a_workspace_secret(user: str, method: str) -> None:
    decision = _decide(_world(), user, "secret:sec-open", method)

    assert decision.allowed
    assert decision.rule == "member_writes_workspace_secret"


def test_a_viewer_cannot_write_a_workspace_secret() -> None:
    decision = _decide(_world(), "user-viewer", "secret:sec-open", "PUT")

    assert not decision.allowed
    assert decision.rule == "viewer_cannot_write"


def test_head_is_a_read_and_methods_are_case_blind() -> None:
    assert is_read("HEAD") and is_read("get") and not is_read("OPTIONS")
    assert _decide(_world(), "user-viewer", "secret:sec-open", "head").allowed
    assert not _decide(_world(), "user-viewer", "secret:sec-open", "post").allowed


# --- restricted secrets ----------------------------------------------------------------


@pytest.mark.parametrize("user", ["user-owner", "user-admin"])
@pytest.mark.parametrize("method", ["GET", "PUT"])
def test_owners_and_admins_use_a_restricted_secret(user: str, method: str) -> None:
    decision = _decide(_world(), user, "secret:sec-closed", method)

    assert decision.allowed
    assert decision.rule == "admin_role"


@pytest.mark.parametrize("user", ["user-member", "user-viewer"])
@pytest.mark.parametrize("method", ["GET", "PUT"])
def test_a_restricted_secret_needs_a_grant_below_admin(user: str, method: str) -> None:
    decision = _decide(_world(), user, "secret:sec-closed", method)

    assert not decision.allowed
    expected = "viewer_cannot_write" if (user, method) == ("user-viewer", "PUT") else None
    assert decision.rule == (expected or "restricted_requires_admin_or_grant")


def test_a_read_grant_permits_reading_only() -> None:
    state = _world()
    _later(
        state, "grant.create", 5, user_id="user-member", secret_id="sec-closed", permission="read"
    )

    assert _decide(state, "user-member", "secret:sec-closed", "GET").rule == "grant_allows"
    write = _decide(state, "user-member", "secret:sec-closed", "PUT")
    assert not write.allowed and write.rule == "read_grant_cannot_write"
    assert state.grant_of("user-member", "sec-closed") == "read"


def test_a_write_grant_permits_reading_and_writing() -> None:
    state = _world()
    _later(
        state, "grant.create", 5, user_id="user-member", secret_id="sec-closed", permission="write"
    )

    assert _decide(state, "user-member", "secret:sec-closed", "GET").allowed
    assert _decide(state, "user-member", "secret:sec-closed", "PUT").rule == "grant_allows"
    assert state.grant_of("user-member", "sec-closed") == "write"


def test_a_viewer_with_a_write_grant_still_cannot_write() -> None:
    state = _world()
    _later(
        state, "grant.create", 5, user_id="user-viewer", secret_id="sec-closed", permission="write"
    )

    assert _decide(state, "user-viewer", "secret:sec-closed", "GET").allowed
    assert _decide(state, "user-viewer", "secret:sec-closed", "PUT").rule == "viewer_cannot_write"


def test_a_revoked_grant_ends_access_until_granted_again() -> None:
    state = _world()
    grant = {"user_id": "user-member", "secret_id": "sec-closed", "permission": "read"}
    _later(state, "grant.create", 5, **grant)
    _later(state, "grant.revoke", 6, **grant)

    assert _decide(state, "user-member", "secret:sec-closed").rule == (
        "restricted_requires_admin_or_grant"
    )
    assert state.grant_of("user-member", "sec-closed") is None

    _later(state, "grant.create", 7, **grant)
    assert _decide(state, "user-member", "secret:sec-closed").allowed


def test_revoking_the_write_grant_leaves_a_read_grant() -> None:
    state = _world()
    for permission in ("read", "write"):
        _later(
            state,
            "grant.create",
            5,
            user_id="user-member",
            secret_id="sec-closed",
            permission=permission,
        )
    _later(
        state, "grant.revoke", 6, user_id="user-member", secret_id="sec-closed", permission="write"
    )

    assert state.grant_of("user-member", "sec-closed") == "read"
    assert _decide(state, "user-member", "secret:sec-closed", "GET").allowed
    assert not _decide(state, "user-member", "secret:sec-closed", "PUT").allowed


def test_visibility_follows_the_latest_create_or_update() -> None:
    state = _world()
    assert state.visibility_of("sec-open") == "workspace"
    assert state.workspace_of("sec-open") == "ws-1"

    _later(state, "secret.update", 5, secret_id="sec-open", visibility="restricted")

    assert state.visibility_of("sec-open") == "restricted"
    assert _decide(state, "user-member", "secret:sec-open").rule == (
        "restricted_requires_admin_or_grant"
    )
    _later(state, "secret.update", 6, secret_id="sec-open")
    assert state.visibility_of("sec-open") == "restricted", "an update without visibility keeps it"


# --- the workspace itself ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("user", "method", "allowed", "rule"),
    [
        ("user-viewer", "GET", True, "member_reads_workspace"),
        ("user-member", "GET", True, "member_reads_workspace"),
        ("user-owner", "PATCH", True, "admin_role"),
        ("user-admin", "POST", True, "admin_role"),
        ("user-member", "PATCH", False, "workspace_write_requires_admin"),
        ("user-viewer", "DELETE", False, "viewer_cannot_write"),
        ("user-stranger", "GET", False, "not_a_member"),
    ],
)
def test_reading_the_workspace_needs_membership_and_managing_it_an_admin(
    user: str, method: str, allowed: bool, rule: str
) -> None:
    decision = _decide(_world(), user, "workspace:ws-1", method)

    assert (decision.allowed, decision.rule) == (allowed, rule)


# --- edges -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("workspace_id", "resource", "rule"),
    [
        ("ws-1", "secret:sec-other", "resource_outside_workspace"),
        ("ws-2", "workspace:ws-1", "resource_outside_workspace"),
        ("ws-1", "secret:sec-never", "unknown_secret"),
        ("ws-1", "/v1/secrets", "unknown_resource"),
        ("ws-1", "", "unknown_resource"),
    ],
)
def test_requests_outside_the_known_world_are_denied(
    workspace_id: str, resource: str, rule: str
) -> None:
    decision = _world().decide("user-owner", workspace_id, resource, "GET")

    assert not decision.allowed
    assert decision.rule == rule


def test_a_secret_is_found_by_id_when_the_request_names_no_workspace() -> None:
    assert _world().decide("user-member", None, "secret:sec-open", "GET").allowed


def test_a_deleted_secret_is_denied() -> None:
    state = _world()
    _later(state, "secret.delete", 5, secret_id="sec-open")

    assert _decide(state, "user-owner", "secret:sec-open").rule == "secret_deleted"


def test_events_must_come_in_time_order() -> None:
    state = _world()
    _later(state, "secret.read", 30, secret_id="sec-open")

    with pytest.raises(ValueError, match="time order"):
        _later(state, "grant.create", 29, user_id="user-member", secret_id="sec-closed")


def test_events_may_be_records_with_a_json_target() -> None:
    state = AuthorizationState()
    add = _event("workspace.member.add", 0, user_id="user-member", role="member").to_record()
    create = _event("secret.create", 1, secret_id="sec-open", visibility="workspace").to_record()
    create["target"] = json.dumps(create["target"])

    state.apply(add)
    state.apply(create)

    assert state.role_of("user-member", "ws-1") == "member"
    assert _decide(state, "user-member", "secret:sec-open").allowed


def test_device_sessions_change_no_decision() -> None:
    state = _world()
    _later(
        state, "grant.create", 5, user_id="user-member", secret_id="sec-closed", permission="read"
    )
    users = ["user-owner", "user-admin", "user-member", "user-viewer", "user-stranger"]
    resources = ["secret:sec-open", "secret:sec-closed", "workspace:ws-1"]

    def decisions() -> list[Decision]:
        return [
            _decide(state, user, resource, method)
            for user in users
            for resource in resources
            for method in ("GET", "PUT")
        ]

    before = decisions()
    registry = DeviceSessionRegistry()
    for minute, user in enumerate(users, start=10):
        record = registry.register(
            user_id=user,
            supabase_session_id=f"sb-{user}",
            label="Chrome",
            user_agent="Chrome/125",
            ip="192.0.2.1",
            at=T0 + timedelta(minutes=minute),
            workspace_id="ws-1",
        )
        registry.revoke(
            record.id, actor_id="user-admin", at=T0 + timedelta(minutes=minute), workspace_id="ws-1"
        )
    for event in registry.events:
        state.apply(event)

    assert len(registry.events) == 10
    assert decisions() == before
    assert sum(decision.allowed for decision in before) > 0


# --- what the history proves (the replay) ------------------------------------------------


def test_missing_history_proves_no_denial() -> None:
    state = _world()

    assert _decide(state, "user-stranger", "secret:sec-open").rule == "not_a_member"
    assert state.proven_denial("user-stranger", "ws-1", "secret:sec-open", "GET") is None
    assert state.proven_denial("user-member", "ws-1", "secret:sec-closed", "GET") is None


def test_a_removal_not_undone_proves_a_denial() -> None:
    state = _world()
    _later(state, "workspace.member.remove", 10, user_id="user-member", role="member")

    proven = state.proven_denial("user-member", "ws-1", "secret:sec-open", "GET")

    assert proven is not None and proven.rule == "removed_from_workspace"
    _later(state, "workspace.member.add", 11, user_id="user-member", role="member")
    assert state.proven_denial("user-member", "ws-1", "secret:sec-open", "GET") is None


def test_a_revoked_grant_on_a_restricted_secret_proves_a_denial_below_admin() -> None:
    state = _world()
    for minute, user in ((5, "user-member"), (7, "user-admin")):
        grant = {"user_id": user, "secret_id": "sec-closed", "permission": "write"}
        _later(state, "grant.create", minute, **grant)
        _later(state, "grant.revoke", minute + 1, **grant)

    proven = state.proven_denial("user-member", None, "secret:sec-closed", "PUT")

    assert proven is not None and proven.rule == "grant_revoked"
    assert state.proven_denial("user-admin", None, "secret:sec-closed", "PUT") is None


def test_a_revoked_grant_proves_nothing_once_the_secret_is_no_longer_restricted() -> None:
    state = _world()
    grant = {"user_id": "user-member", "secret_id": "sec-closed", "permission": "read"}
    _later(state, "grant.create", 5, **grant)
    _later(state, "grant.revoke", 6, **grant)
    _later(state, "secret.update", 7, secret_id="sec-closed", visibility="workspace")

    assert state.proven_denial("user-member", "ws-1", "secret:sec-closed", "GET") is None


def test_a_viewer_writing_is_proven_denied() -> None:
    proven = _world().proven_denial("user-viewer", "ws-1", "secret:sec-open", "PUT")

    assert proven is not None and proven.rule == "viewer_cannot_write"
    assert _world().proven_denial("user-viewer", "ws-1", "secret:sec-open", "GET") is None
