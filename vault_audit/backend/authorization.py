"""Vault's authorization rules, rebuilt from its audit events.

The state is event-sourced: apply ``workspace.member.*``, ``secret.*`` and
``grant.*`` events in time order, then ask what Vault would decide for a request.
The rules:

- A user acts in a workspace only while a member (``workspace.member.add`` with role
  owner, admin, member or viewer, until ``workspace.member.remove``).
- A secret belongs to the workspace of its ``secret.create``; its visibility
  (``workspace`` or ``restricted``) comes from its latest create or update.
- A ``workspace`` secret is read by every member and written by members and above.
- A ``restricted`` secret is read and written by owners and admins, or by a user
  holding a grant for it not yet ended by ``grant.revoke``: a ``write`` grant permits
  reading and writing, a ``read`` grant reading only.
- A viewer never writes, whatever grant it holds.
- ``workspace:<id>`` itself: members read it; owners and admins write (manage) it.

Device sessions are never consulted: ``session.*`` events are ignored, so
registering or revoking a device-session record changes no decision.

``decide`` assumes the history is complete (the simulator's view).
``proven_denial`` is the replay's view: audit logs start after most memberships
began, so it names a denial only where the history proves one.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from vault_audit.backend.registry import VaultEvent, rfc3339

logger = logging.getLogger(__name__)

ROLES = ("owner", "admin", "member", "viewer")
_ADMIN_ROLES = frozenset({"owner", "admin"})
_READ_METHODS = frozenset({"GET", "HEAD"})


@dataclass(frozen=True)
class Decision:
    """Whether Vault allows a request, the rule that decided (a stable code), and why."""

    allowed: bool
    rule: str
    detail: str


@dataclass
class _Secret:
    workspace_id: str | None
    visibility: str | None
    deleted: bool = False


def is_read(method: str) -> bool:
    """GET and HEAD read; every other method writes."""
    return method.upper() in _READ_METHODS


class AuthorizationState:
    """Memberships, secret visibility and grants, as of the last event applied."""

    def __init__(self) -> None:
        self._roles: dict[tuple[str, str], str] = {}  # (workspace, user) -> role, members now
        self._removed: set[tuple[str, str]] = set()  # removed and not added again
        self._secrets: dict[str, _Secret] = {}
        self._grants: dict[tuple[str, str], set[str]] = {}  # (user, secret) -> permissions
        self._revoked: dict[tuple[str, str], set[str]] = {}  # revoked, not granted again
        self._last_at: datetime | None = None

    @classmethod
    def from_events(cls, events: Iterable[VaultEvent | Mapping[str, Any]]) -> AuthorizationState:
        """A state with every event applied, sorted by time (ties keep their order)."""
        parsed = [_as_event(event) for event in events]
        state = cls()
        for event in sorted(parsed, key=lambda item: item.occurred_at):
            state.apply(event)
        return state

    def apply(self, event: VaultEvent | Mapping[str, Any]) -> None:
        """Apply one event; events must come in time order. Other types are ignored."""
        event = _as_event(event)
        if self._last_at is not None and event.occurred_at < self._last_at:
            raise ValueError(
                f"event {event.id} at {rfc3339(event.occurred_at)} comes before "
                f"{rfc3339(self._last_at)}, the last event applied; apply events in time order"
            )
        self._last_at = event.occurred_at

        handler = _HANDLERS.get(event.type)
        if handler is not None:
            handler(self, event, event.target)

    # --- what the history says --------------------------------------------------------

    def role_of(self, user_id: str, workspace_id: str) -> str | None:
        """The user's role in the workspace, None when not a member now."""
        return self._roles.get((workspace_id, user_id))

    def visibility_of(self, secret_id: str) -> str | None:
        """``workspace`` or ``restricted``; None for a secret never created or updated."""
        secret = self._secrets.get(secret_id)
        return None if secret is None else secret.visibility

    def workspace_of(self, secret_id: str) -> str | None:
        """The workspace the secret was created in."""
        secret = self._secrets.get(secret_id)
        return None if secret is None else secret.workspace_id

    def grant_of(self, user_id: str, secret_id: str) -> str | None:
        """The strongest grant the user holds on the secret: ``write``, ``read`` or None."""
        permissions = self._grants.get((user_id, secret_id), set())
        if "write" in permissions:
            return "write"
        if "read" in permissions:
            return "read"
        return None

    # --- decisions --------------------------------------------------------------------

    def decide(
        self, user_id: str, workspace_id: str | None, resource: str, method: str
    ) -> Decision:
        """What Vault's rules decide for this request, assuming a complete history."""
        kind, _, resource_id = (resource or "").partition(":")
        writes = not is_read(method)
        if kind == "workspace" and resource_id:
            return self._decide_workspace(user_id, workspace_id, resource_id, writes)
        if kind == "secret" and resource_id:
            return self._decide_secret(user_id, workspace_id, resource_id, writes)
        return Decision(False, "unknown_resource", f"{resource!r} names no secret or workspace")

    def proven_denial(
        self, user_id: str, workspace_id: str | None, resource: str, method: str
    ) -> Decision | None:
        """A denial the history proves, else None (missing history proves nothing).

        Proof is one of: the user was removed from the workspace and not added again;
        a grant of the user's on a restricted secret was revoked and not granted again,
        no grant held permits the request, and the user's role there is member or
        viewer; a viewer wrote. The workspace is the request's, else the one a
        ``workspace:<id>`` resource names, else the secret's own. The analysis replays
        the same proof in SQL
        (``queries/authorization/replay.sql``); a test holds the two to each other.
        """
        kind, _, resource_id = (resource or "").partition(":")
        writes = not is_read(method)
        workspace = workspace_id
        if workspace is None and kind == "workspace" and resource_id:
            workspace = resource_id
        if workspace is None and kind == "secret" and resource_id:
            workspace = self.workspace_of(resource_id)
        if workspace is None:
            return None

        if (workspace, user_id) in self._removed:
            return Decision(
                False,
                "removed_from_workspace",
                f"user {user_id} was removed from workspace {workspace} and not added again",
            )
        role = self.role_of(user_id, workspace)
        if kind == "secret" and resource_id and role in ("member", "viewer"):
            revoked = self._grant_revoked(user_id, resource_id, writes)
            if revoked is not None:
                return revoked
        if writes and role == "viewer":
            return _viewer_cannot_write(user_id, workspace)
        return None

    def _grant_revoked(self, user_id: str, secret_id: str, writes: bool) -> Decision | None:
        if self.visibility_of(secret_id) != "restricted":
            return None
        held = self._grants.get((user_id, secret_id), set())
        revoked = self._revoked.get((user_id, secret_id), set())
        permitted = "write" in held if writes else bool(held)
        if not revoked or permitted:
            return None
        return Decision(
            False,
            "grant_revoked",
            f"user {user_id}'s grant on restricted secret {secret_id} was revoked "
            "and not granted again",
        )

    def _decide_workspace(
        self, user_id: str, workspace_id: str | None, resource_workspace: str, writes: bool
    ) -> Decision:
        if workspace_id is not None and workspace_id != resource_workspace:
            return _outside(resource_workspace, workspace_id)
        role = self.role_of(user_id, resource_workspace)
        if role is None:
            return _not_a_member(user_id, resource_workspace)
        if not writes:
            return Decision(True, "member_reads_workspace", f"{role} {user_id} reads the workspace")
        if role in _ADMIN_ROLES:
            return Decision(True, "admin_role", f"{role} {user_id} manages the workspace")
        if role == "viewer":
            return _viewer_cannot_write(user_id, resource_workspace)
        return Decision(
            False,
            "workspace_write_requires_admin",
            f"{role} {user_id} cannot manage workspace {resource_workspace}; "
            "only owners and admins can",
        )

    def _decide_secret(
        self, user_id: str, workspace_id: str | None, secret_id: str, writes: bool
    ) -> Decision:
        secret = self._secrets.get(secret_id)
        home = secret.workspace_id if secret is not None else None
        if workspace_id is not None and home is not None and workspace_id != home:
            return _outside(home, workspace_id)
        workspace = home or workspace_id
        role = None if workspace is None else self.role_of(user_id, workspace)
        if workspace is not None and role is None:
            return _not_a_member(user_id, workspace)
        if secret is None or workspace is None:
            return Decision(False, "unknown_secret", f"secret {secret_id} was never created")
        if secret.deleted:
            return Decision(False, "secret_deleted", f"secret {secret_id} was deleted")
        if writes and role == "viewer":
            return _viewer_cannot_write(user_id, workspace)
        if role not in ROLES:
            return Decision(False, "unknown_role", f"role {role!r} grants nothing")

        if secret.visibility == "workspace":
            if not writes:
                return Decision(
                    True, "member_reads_workspace_secret", f"{role} {user_id} reads {secret_id}"
                )
            return Decision(
                True, "member_writes_workspace_secret", f"{role} {user_id} writes {secret_id}"
            )
        if secret.visibility == "restricted":
            return self._decide_restricted(user_id, role, secret_id, writes)
        return Decision(
            False,
            "unknown_visibility",
            f"secret {secret_id} has visibility {secret.visibility!r}, neither workspace "
            "nor restricted",
        )

    def _decide_restricted(self, user_id: str, role: str, secret_id: str, writes: bool) -> Decision:
        if role in _ADMIN_ROLES:
            return Decision(True, "admin_role", f"{role} {user_id} may use restricted {secret_id}")
        grant = self.grant_of(user_id, secret_id)
        if grant == "write" or (grant == "read" and not writes):
            return Decision(
                True, "grant_allows", f"{user_id} holds a {grant} grant on restricted {secret_id}"
            )
        if grant == "read":
            return Decision(
                False,
                "read_grant_cannot_write",
                f"{user_id} holds only a read grant on restricted {secret_id}",
            )
        return Decision(
            False,
            "restricted_requires_admin_or_grant",
            f"restricted {secret_id} needs an owner, an admin or a grant; {user_id} is a {role} "
            "without a grant",
        )

    # --- event handlers ---------------------------------------------------------------

    def _member_add(self, event: VaultEvent, target: Mapping[str, Any]) -> None:
        user_id, role = target.get("user_id"), target.get("role")
        if not event.workspace_id or not user_id or not role:
            logger.debug("event %s: membership without workspace, user or role; ignored", event.id)
            return
        key = (event.workspace_id, str(user_id))
        self._roles[key] = str(role).lower()
        self._removed.discard(key)

    def _member_remove(self, event: VaultEvent, target: Mapping[str, Any]) -> None:
        user_id = target.get("user_id")
        if not event.workspace_id or not user_id:
            logger.debug("event %s: removal without workspace or user; ignored", event.id)
            return
        key = (event.workspace_id, str(user_id))
        self._roles.pop(key, None)
        self._removed.add(key)

    def _secret_create(self, event: VaultEvent, target: Mapping[str, Any]) -> None:
        secret_id = target.get("secret_id")
        if not secret_id:
            return
        known = self._secrets.get(str(secret_id))
        visibility = target.get("visibility") or (known.visibility if known else None)
        self._secrets[str(secret_id)] = _Secret(event.workspace_id, visibility)

    def _secret_update(self, event: VaultEvent, target: Mapping[str, Any]) -> None:
        secret_id = target.get("secret_id")
        if not secret_id:
            return
        secret = self._secrets.setdefault(str(secret_id), _Secret(event.workspace_id, None))
        if target.get("visibility") is not None:
            secret.visibility = target["visibility"]

    def _secret_delete(self, event: VaultEvent, target: Mapping[str, Any]) -> None:
        secret = self._secrets.get(str(target.get("secret_id")))
        if secret is not None:
            secret.deleted = True

    def _grant_create(self, event: VaultEvent, target: Mapping[str, Any]) -> None:
        user_id, secret_id = target.get("user_id"), target.get("secret_id")
        permission = target.get("permission")
        if not user_id or not secret_id or permission not in ("read", "write"):
            logger.debug("event %s: grant without user, secret or permission; ignored", event.id)
            return
        key = (str(user_id), str(secret_id))
        self._grants.setdefault(key, set()).add(permission)
        self._revoked.get(key, set()).discard(permission)

    def _grant_revoke(self, event: VaultEvent, target: Mapping[str, Any]) -> None:
        user_id, secret_id = target.get("user_id"), target.get("secret_id")
        if not user_id or not secret_id:
            return
        key = (str(user_id), str(secret_id))
        held = self._grants.get(key, set())
        # A revoke that names no permission ends every grant the user holds on the secret.
        permission = target.get("permission")
        ended = {permission} if permission in ("read", "write") else {"read", "write"}
        held -= ended
        self._revoked.setdefault(key, set()).update(ended)


_HANDLERS = {
    "workspace.member.add": AuthorizationState._member_add,
    "workspace.member.remove": AuthorizationState._member_remove,
    "secret.create": AuthorizationState._secret_create,
    "secret.update": AuthorizationState._secret_update,
    "secret.delete": AuthorizationState._secret_delete,
    "grant.create": AuthorizationState._grant_create,
    "grant.revoke": AuthorizationState._grant_revoke,
}


def _as_event(event: VaultEvent | Mapping[str, Any]) -> VaultEvent:
    return event if isinstance(event, VaultEvent) else VaultEvent.from_record(event)


def _not_a_member(user_id: str, workspace_id: str) -> Decision:
    return Decision(
        False, "not_a_member", f"user {user_id} is not a member of workspace {workspace_id}"
    )


def _viewer_cannot_write(user_id: str, workspace_id: str) -> Decision:
    return Decision(
        False, "viewer_cannot_write", f"user {user_id} is a viewer in {workspace_id}; viewers read"
    )


def _outside(home: str, workspace_id: str) -> Decision:
    return Decision(
        False,
        "resource_outside_workspace",
        f"the resource belongs to workspace {home}, not {workspace_id}",
    )
