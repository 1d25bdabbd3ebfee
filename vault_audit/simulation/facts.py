"""The simulated world's facts: people, workspaces, Supabase sessions, tokens, requests.

Times are integers: seconds since the epoch for everything the identity provider and
Vault record, milliseconds for access-log rows. Two conventions keep the ground truth
free of ties the contract leaves to interpretation: token ``iat`` values are odd
seconds while revocations, sign-outs, deletions and snapshots fall on even seconds,
and access-log rows never fall on a whole second (only the fixtures place rows on
boundaries on purpose).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from random import Random

ZERO_UUID = "00000000-0000-0000-0000-000000000000"
EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
HOUR = 3600
DAY = 86400
TOKEN_LIFETIME = 3600


def new_uuid(rng: Random) -> str:
    """A version-4 UUID drawn from ``rng``: the same seed, the same ids."""
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def odd(seconds: int) -> int:
    return seconds if seconds % 2 else seconds + 1


def even(seconds: int) -> int:
    return seconds if seconds % 2 == 0 else seconds + 1


def as_datetime(seconds: float) -> datetime:
    """A UTC datetime for epoch seconds (exact for whole milliseconds)."""
    return EPOCH + timedelta(milliseconds=round(seconds * 1000))


_HMS = [f"{h:02d}:{m:02d}:{s:02d}" for h in range(24) for m in range(60) for s in range(60)]
_DAY_PREFIX: dict[int, str] = {}


def _day_prefix(day: int) -> str:
    prefix = _DAY_PREFIX.get(day)
    if prefix is None:
        prefix = (date(1970, 1, 1) + timedelta(days=day)).isoformat() + "T"
        _DAY_PREFIX[day] = prefix
    return prefix


def stamp_seconds(seconds: int) -> str:
    """RFC 3339 with Z for whole epoch seconds."""
    day, of_day = divmod(seconds, DAY)
    return _day_prefix(day) + _HMS[of_day] + "Z"


def stamp_ms(ms: int) -> str:
    """RFC 3339 with milliseconds and Z for epoch milliseconds."""
    seconds, fraction = divmod(ms, 1000)
    day, of_day = divmod(seconds, DAY)
    return f"{_day_prefix(day)}{_HMS[of_day]}.{fraction:03d}Z"


@dataclass(eq=False, slots=True)
class Person:
    index: int
    id: str
    name: str
    email: str
    deleted_at: int | None = None


@dataclass(eq=False, slots=True)
class Workspace:
    id: str
    name: str
    secrets: list[Secret] = field(default_factory=list)


@dataclass(eq=False, slots=True)
class Secret:
    id: str
    workspace: Workspace
    visibility: str


@dataclass(eq=False, slots=True)
class Item:
    """What one request does; ``fragment`` is its JSON middle for allow and deny."""

    method: str
    path: str
    workspace_id: str
    resource: str
    secret: Secret | None = None


@dataclass(eq=False, slots=True)
class Record:
    """A planned device-session record: registration and (maybe) its revocation."""

    session: IdpSession
    user_id: str
    label: str
    user_agent: str
    ip: str
    registered_at: int
    logged_registration: bool = True
    revoked_at: int | None = None
    revoked_by: str | None = None
    revoker_ip: str | None = None
    revoker_agent: str | None = None
    id: str | None = None  # given by the registry when the register event runs


@dataclass(eq=False, slots=True)
class IdpSession:
    """An ``auth.sessions`` row and the browser that holds it."""

    id: str
    user: Person
    device: str  # laptop | desktop | phone | attacker | kiosk
    label: str
    user_agent: str
    ip: str
    created_at: int
    amr_method: str = "password"
    deleted_at: int | None = None  # the row is gone from auth.sessions
    stop_at: int | None = None  # the browser stops sending requests
    activity: list[tuple[int, int]] = field(default_factory=list)
    ip_changes: list[tuple[int, str]] = field(default_factory=list)  # (from, ip)
    records: list[Record] = field(default_factory=list)
    tokens: list[Token] = field(default_factory=list)
    logged_login: bool = True
    mint_at: set[int] = field(default_factory=set)  # the browser refreshes here, due or not
    end_evidence: int | None = None  # earliest snapshot proving the session gone

    def ip_at(self, seconds: int) -> str:
        current = self.ip
        for since, ip in self.ip_changes:
            if since <= seconds:
                current = ip
        return current


@dataclass(eq=False, slots=True)
class Token:
    """One access token and the requests that present it."""

    session: IdpSession | None
    sub: str | None
    session_id: str | None
    iat: int
    exp: int
    ip: str
    user_agent: str
    refresh_at: int = 0
    # (begin, end, requests): when the browser presents this token, and how often
    segments: list[tuple[int, int, int]] = field(default_factory=list)
    rows: int = 0
    minted_by_idp: bool = True  # a normal login or refresh, written to the audit log
    forged: bool = False  # signed with a key that is not the project's
    role: str = "authenticated"
    email: str = ""
    extras: list[Extra] = field(default_factory=list)
    claims: dict[str, object] | None = None  # set for the service-role key


@dataclass(eq=False, slots=True)
class Extra:
    """A request placed by a story or an injected anomaly rather than by traffic."""

    at_ms: int
    item: Item
    ip: str
    user_agent: str
    decision: str | None = None  # None: Vault's rules decide


@dataclass(frozen=True)
class PlannedEvent:
    """Something the sweep applies at a time: a registry action, an authorization
    event, a snapshot."""

    at: int  # seconds
    order: int
    kind: str  # register | revoke | authz | snapshot
    subject: object
