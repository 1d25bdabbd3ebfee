"""The plan of a simulated world: who works where, which browsers hold which Supabase
sessions, when they are active, the stories that happen to them and the tokens they
get. The sweep (``run.py``) then plays the plan through Vault's backend in time order.

Stories (see fixtures/README.md for the table):

- lost laptop: its device-session record is revoked at noon by its user from a phone;
  whoever holds the laptop keeps using the residual token and the Supabase session;
- unfamiliar device: an attacker's session, revoked by the user, who then signs out of
  their own laptop (local scope) while the attacker's session keeps minting tokens;
- admin revocation, user deletion (with the admin's Vault clean-up), membership
  removal, grant revocation, sign-out, password change, re-registration.

Injected anomalies each have a rate (``DEFAULT_RATES``); with a rate above zero the
first stories force at least one occurrence, so a world of five users or more shows
every reason of the contract's table.
"""

from __future__ import annotations

import bisect
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from random import Random

from vault_audit.backend.registry import VaultEvent
from vault_audit.simulation import catalog
from vault_audit.simulation.facts import (
    DAY,
    HOUR,
    TOKEN_LIFETIME,
    ZERO_UUID,
    Extra,
    IdpSession,
    Item,
    Person,
    PlannedEvent,
    Record,
    Secret,
    Token,
    Workspace,
    as_datetime,
    even,
    new_uuid,
    odd,
)

DEFAULT_START = datetime(2025, 3, 10, tzinfo=timezone.utc)  # a Monday
SNAPSHOT_HOURS = (3, 9, 15, 21)
LONG_LIFETIME = 7 * DAY

DEFAULT_RATES: dict[str, float] = {
    # per token minted by the identity provider
    "expired_token_accepted": 0.002,
    "invalid_signature_accepted": 0.001,
    "lifetime_exceeds_policy": 0.002,
    # per revoked device-session record
    "subject_mismatch": 0.05,
    "token_minted_after_idp_session_end": 0.5,
    "token_minted_after_logout": 0.2,
    "new_client_after_revocation": 0.2,
    # per denied request whose denial the logged history proves
    "authorization_replay_mismatch": 0.02,
}

ESSENTIAL_ROLES = ("lost", "unfamiliar", "deleted", "removed", "admin_revoked", "reregister",
                   "logout", "password")  # fmt: skip
RANDOM_STORIES = ("lost", "admin_revoked", "logout", "password", "reregister", "removed",
                  "unfamiliar", "deleted")  # fmt: skip


def resolve_rates(rates: Mapping[str, float] | None) -> dict[str, float]:
    """The default rates with ``rates`` laid over them; unknown names are refused."""
    merged = dict(DEFAULT_RATES)
    for name, value in (rates or {}).items():
        if name not in DEFAULT_RATES:
            known = ", ".join(DEFAULT_RATES)
            raise ValueError(f"unknown anomaly rate {name!r}; the rates are {known}")
        if not 0 <= float(value) <= 1:
            raise ValueError(f"rate {name} must be between 0 and 1, not {value!r}")
        merged[name] = float(value)
    return merged


@dataclass
class Pool:
    """The requests a person's browser makes, with weights for drawing one."""

    items: list[Item]
    cumulative: list[float]

    def draw(self, rng: Random) -> Item:
        point = rng.random() * self.cumulative[-1]
        return self.items[bisect.bisect_right(self.cumulative, point)]


@dataclass(eq=False)
class Membership:
    workspace: Workspace
    role: str
    removed_at: int | None = None


@dataclass
class Plan:
    """Everything the sweep needs, decided before it starts."""

    start: int
    end: int
    project_ref: str
    people: list[Person]
    workspaces: list[Workspace]
    sessions: list[IdpSession]
    events: list[PlannedEvent]
    prelog_authz: list[VaultEvent]
    audit: list[dict[str, object]]  # planned auth.audit_log_entries rows, with "_at"
    snapshot_times: list[int]
    pools: dict[str, Pool]
    late_pools: dict[str, tuple[int, Pool]]  # person id -> (from, pool)
    service_token: Token
    sign_outs: dict[str, list[int]]  # person id -> logout / password change times
    rates: dict[str, float]
    requests_per_hour: float


@dataclass
class _Builder:
    rng: Random
    start: int
    days: int
    rates: dict[str, float]
    requests_per_hour: float
    order: int = 0
    people: list[Person] = field(default_factory=list)
    workspaces: list[Workspace] = field(default_factory=list)
    memberships: dict[str, list[Membership]] = field(default_factory=dict)
    sessions: list[IdpSession] = field(default_factory=list)
    devices: dict[str, dict[str, IdpSession]] = field(default_factory=dict)
    events: list[PlannedEvent] = field(default_factory=list)
    prelog: list[VaultEvent] = field(default_factory=list)
    audit: list[dict[str, object]] = field(default_factory=list)
    sign_outs: dict[str, list[int]] = field(default_factory=dict)
    favourites: dict[str, list[tuple[Item, float]]] = field(default_factory=dict)
    fresh_ips: int = 0
    instance_id: str = ZERO_UUID
    owners: dict[str, Person] = field(default_factory=dict)
    protected: set[str] = field(default_factory=set)  # sessions of the forced stories
    # (created_at, secret) of every secret, written as secret.create in time order
    pending_secrets: list[tuple[int, Secret]] = field(default_factory=list)
    # (session, token chosen at, at, ms, item, ip, user agent, decision): story requests
    story_extras: list[tuple] = field(default_factory=list)
    # (kind, session, subject, iat, offset, item): tokens a story mints outside traffic
    crafted: list[tuple] = field(default_factory=list)

    @property
    def end(self) -> int:
        return self.start + self.days * DAY

    def next_order(self) -> int:
        self.order += 1
        return self.order

    # --- small helpers ----------------------------------------------------------------

    def fresh_ip(self) -> str:
        """An address never used before in this world."""
        self.fresh_ips += 1
        prefix = catalog.FRESH_PREFIXES[(self.fresh_ips - 1) % len(catalog.FRESH_PREFIXES)]
        number = (self.fresh_ips - 1) // len(catalog.FRESH_PREFIXES)
        return f"{prefix}{number // 250 % 250 + 1}.{number % 250 + 2}"

    def random_ip(self, prefixes: tuple[str, ...]) -> str:
        prefix = self.rng.choice(prefixes)
        parts = 4 - prefix.count(".")
        return prefix + ".".join(str(self.rng.randint(2, 250)) for _ in range(parts))

    def at(self, day: int, hour: float) -> int:
        return self.start + day * DAY + int(hour * HOUR)

    def vault_event(
        self,
        type_: str,
        at: int,
        actor: str | None,
        workspace_id: str | None,
        target: dict[str, object],
        *,
        ip: str | None = None,
        user_agent: str | None = None,
    ) -> None:
        event = VaultEvent(
            id=new_uuid(self.rng),
            type=type_,
            occurred_at=as_datetime(at),
            actor_id=actor,
            workspace_id=workspace_id,
            ip=ip,
            user_agent=user_agent,
            target=target,
        )
        if at < self.start:
            self.prelog.append(event)
        else:
            self.events.append(PlannedEvent(at, self.next_order(), "authz", event))

    def audit_entry(
        self, at: int, action: str, person: Person | None, log_type: str, **extra: object
    ) -> None:
        payload: dict[str, object] = {
            "actor_id": person.id if person else ZERO_UUID,
            "actor_username": person.email if person else "service_role",
            "actor_via_sso": False,
            "action": action,
            "log_type": log_type,
        }
        traits = extra.pop("traits", None)
        if traits is not None:
            payload["traits"] = traits
        self.audit.append(
            {
                "_at": at,
                "instance_id": self.instance_id,
                "id": new_uuid(self.rng),
                "payload": payload,
                "ip_address": extra.pop("ip_address", ""),
            }
        )

    # --- people, workspaces, secrets ----------------------------------------------------

    def add_people(self, count: int) -> None:
        seen: dict[str, int] = {}
        for index in range(count):
            first = self.rng.choice(catalog.FIRST_NAMES)
            last = self.rng.choice(catalog.LAST_NAMES)
            handle = f"{first}.{last}"
            seen[handle] = seen.get(handle, 0) + 1
            if seen[handle] > 1:
                handle += str(seen[handle])
            person = Person(
                index=index,
                id=new_uuid(self.rng),
                name=f"{first.title()} {last.title()}",
                email=f"{handle}@{catalog.DOMAIN}",
            )
            self.people.append(person)
            self.memberships[person.id] = []
            self.sign_outs[person.id] = []

    def add_workspaces(self, story_people: list[Person]) -> None:
        count = max(1, len(self.people) // 6)
        for index in range(count):
            name = catalog.WORKSPACE_NAMES[index % len(catalog.WORKSPACE_NAMES)]
            if index >= len(catalog.WORKSPACE_NAMES):
                name += f"-{index // len(catalog.WORKSPACE_NAMES) + 1}"
            workspace = Workspace(id=new_uuid(self.rng), name=name)
            self.workspaces.append(workspace)
            for _ in range(self.rng.randint(6, 14)):
                visibility = "restricted" if self.rng.random() < 0.25 else "workspace"
                secret = Secret(new_uuid(self.rng), workspace, visibility)
                workspace.secrets.append(secret)
                # Most secrets predate the audit log; a few are created during it.
                created = (
                    self.start - self.rng.randint(2, 90) * DAY
                    if self.rng.random() < 0.9
                    else self.at(self.rng.randrange(self.days), self.rng.uniform(7.0, 17.0))
                )
                secret_created_at = even(created)
                self.pending_secrets.append((secret_created_at, secret))

        primary = self.workspaces[0]
        story_ids = {person.id for person in story_people}
        owners: dict[str, Person] = {}
        if story_people:
            owner = story_people[1] if len(story_people) > 1 else story_people[0]
            owners[primary.id] = owner
        for person in self.people:
            home = primary if person.id in story_ids else self.rng.choice(self.workspaces)
            joined = [home]
            if len(self.workspaces) > 1 and self.rng.random() < 0.3:
                other = self.rng.choice(self.workspaces)
                if other is not home:
                    joined.append(other)
            for workspace in joined:
                if workspace.id not in owners:
                    owners[workspace.id] = person
                    role = "owner"
                elif owners[workspace.id] is person:
                    role = "owner"
                elif person.id in story_ids and workspace is primary:
                    role = "member"
                else:
                    draw = self.rng.random()
                    role = "admin" if draw < 0.1 else "viewer" if draw < 0.35 else "member"
                self.memberships[person.id].append(Membership(workspace, role))
        self.owners = owners

        # In a large world a workspace may draw no member at all: it has no owner to
        # create its secrets, so it and its secrets are left out of the world.
        unowned = {workspace.id for workspace in self.workspaces if workspace.id not in owners}
        if unowned:
            self.workspaces = [w for w in self.workspaces if w.id not in unowned]
            self.pending_secrets = [
                pair for pair in self.pending_secrets if pair[1].workspace.id not in unowned
            ]

    def write_authorization_history(self, story_ids: set[str]) -> None:
        """Memberships and grants before the log (not written) and joins during it."""
        for person in self.people:
            for membership in self.memberships[person.id]:
                owner = self.owners[membership.workspace.id]
                joins_during_log = person.id not in story_ids and self.rng.random() < 0.1
                at = (
                    even(self.at(0, self.rng.uniform(6.0, 7.5)))
                    if joins_during_log and owner is not person
                    else even(self.start - self.rng.randint(10, 400) * DAY)
                )
                self.vault_event(
                    "workspace.member.add",
                    at,
                    owner.id,
                    membership.workspace.id,
                    {"user_id": person.id, "role": membership.role},
                )
        for at, secret in sorted(self.pending_secrets, key=lambda pair: pair[0]):
            owner = self.owners[secret.workspace.id]
            self.vault_event(
                "secret.create",
                at,
                owner.id,
                secret.workspace.id,
                {"secret_id": secret.id, "visibility": secret.visibility},
            )
        # Read grants on restricted secrets for a few members, granted before the log.
        for person in self.people:
            for membership in self.memberships[person.id]:
                if membership.role not in ("member",):
                    continue
                for secret in membership.workspace.secrets:
                    if secret.visibility == "restricted" and self.rng.random() < 0.3:
                        self.vault_event(
                            "grant.create",
                            even(self.start - self.rng.randint(1, 9) * DAY),
                            self.owners[secret.workspace.id].id,
                            secret.workspace.id,
                            {"user_id": person.id, "secret_id": secret.id, "permission": "read"},
                        )

    # --- browsers and Supabase sessions -------------------------------------------------

    def add_devices(self) -> None:
        for person in self.people:
            self.devices[person.id] = {}
            kinds = ["laptop"]
            if self.rng.random() < 0.7:
                kinds.append("phone")
            if self.rng.random() < 0.25:
                kinds.append("desktop")
            home_ip = self.random_ip(catalog.HOME_PREFIXES)
            office_ip = self.random_ip(catalog.OFFICE_PREFIXES)
            for kind in kinds:
                self.add_device(person, kind, office_ip=office_ip, home_ip=home_ip)

    def add_device(
        self, person: Person, kind: str, *, office_ip: str | None = None, home_ip: str | None = None
    ) -> IdpSession:
        agents = {
            "laptop": catalog.LAPTOP_AGENTS,
            "desktop": catalog.DESKTOP_AGENTS,
            "phone": catalog.PHONE_AGENTS,
        }[kind]
        label, agent = self.rng.choice(agents)
        ip = (
            self.random_ip(catalog.CARRIER_PREFIXES)
            if kind == "phone"
            else office_ip or self.random_ip(catalog.OFFICE_PREFIXES)
        )
        created = odd(self.start - self.rng.randint(1, 20) * DAY - self.rng.randint(0, 8 * HOUR))
        session = self.new_session(person, kind, label, agent, ip, created, logged=False)
        session.activity = self.default_activity(kind)
        if kind == "phone":
            # A phone changes carrier address from day to day.
            for day in range(1, self.days):
                session.ip_changes.append(
                    (self.at(day, 0), self.random_ip(catalog.CARRIER_PREFIXES))
                )
        elif home_ip and self.rng.random() < 0.3:
            # Some evenings from home.
            for day in range(self.days):
                session.ip_changes.append((self.at(day, 17.5), home_ip))
                session.ip_changes.append((self.at(day + 1, 6.0), ip))
        self.devices[person.id][kind] = session
        return session

    def new_session(
        self,
        person: Person,
        kind: str,
        label: str,
        agent: str,
        ip: str,
        created: int,
        *,
        logged: bool,
        register_after: int = 2,
    ) -> IdpSession:
        session = IdpSession(
            id=new_uuid(self.rng),
            user=person,
            device=kind,
            label=label,
            user_agent=agent,
            ip=ip,
            created_at=created,
            logged_login=logged,
        )
        self.sessions.append(session)
        self.add_record(session, created + register_after)
        if logged:
            self.audit_entry(
                created, "login", person, "account", traits={"provider": "email"}, ip_address=ip
            )
        return session

    def add_record(self, session: IdpSession, at: int, ip: str | None = None) -> Record:
        record = Record(
            session=session,
            user_id=session.user.id,
            label=session.label,
            user_agent=session.user_agent,
            ip=ip or session.ip_at(at),
            registered_at=at,
            logged_registration=at >= self.start,
        )
        session.records.append(record)
        self.events.append(PlannedEvent(at, self.next_order(), "register", record))
        return record

    def revoke(self, record: Record, at: int, actor: Person, by: IdpSession | None) -> None:
        record.revoked_at = at
        record.revoked_by = actor.id
        record.revoker_ip = by.ip_at(at) if by else None
        record.revoker_agent = by.user_agent if by else None
        self.events.append(PlannedEvent(at, self.next_order(), "revoke", record))

    def default_activity(self, kind: str) -> list[tuple[int, int]]:
        intervals: list[tuple[int, int]] = []
        for day in range(self.days):
            weekend = (datetime.fromtimestamp(self.at(day, 12), timezone.utc).weekday()) >= 5
            if kind in ("laptop", "desktop"):
                if weekend and self.rng.random() < 0.7:
                    continue
                begin = odd(self.at(day, self.rng.uniform(7.75, 9.5)))
                end = self.at(day, self.rng.uniform(16.75, 18.5))
                if self.rng.random() < 0.5:
                    lunch = odd(self.at(day, self.rng.uniform(11.9, 12.6)))
                    back = odd(lunch + self.rng.randint(30, 70) * 60)
                    intervals += [(begin, lunch), (back, end)]
                else:
                    intervals.append((begin, end))
            else:
                for _ in range(self.rng.randint(2, 4)):
                    begin = odd(self.at(day, self.rng.uniform(7.0, 22.0)))
                    intervals.append((begin, begin + self.rng.randint(5, 20) * 60))
        return merge_intervals(intervals)

    def device(self, person: Person, kind: str) -> IdpSession:
        session = self.devices[person.id].get(kind)
        if session is None:
            laptop = self.devices[person.id]["laptop"]
            session = self.add_device(person, kind, office_ip=laptop.ip)
        return session

    # --- stories -----------------------------------------------------------------------

    def rate(self, name: str) -> float:
        return self.rates[name]

    def admin_of(self, person: Person) -> Person | None:
        for membership in self.memberships[person.id]:
            owner = self.owners.get(membership.workspace.id)
            if owner is not None and owner is not person:
                return owner
        return None

    def busy(self, session: IdpSession, begin: int, end: int) -> None:
        """Make sure the browser is active from ``begin`` to ``end``."""
        session.activity = merge_intervals([*session.activity, (odd(begin), end)])

    def idle(self, session: IdpSession, begin: int, end: int) -> None:
        """Make sure the browser is idle from ``begin`` to ``end``."""
        kept: list[tuple[int, int]] = []
        for a, b in session.activity:
            if b <= begin or a >= end:
                kept.append((a, b))
                continue
            if a < begin:
                kept.append((a, begin))
            if b > end:
                kept.append((odd(end), b))
        session.activity = [(a, b) for a, b in kept if b > a]

    def sign_out(self, session: IdpSession, at: int, *, relogin_after: int | None) -> None:
        """A local sign-out: Vault's front end revokes its record, then Supabase deletes
        the session (written as ``logout``); the browser may sign in again."""
        person = session.user
        record = session.records[-1]
        if record.revoked_at is None:
            self.revoke(record, at - 2, person, session)
        session.stop_at = at - 2
        session.deleted_at = at
        self.sign_outs[person.id].append(at)
        self.audit_entry(at, "logout", person, "account")
        if relogin_after is None:
            return
        again = odd(at + relogin_after)
        successor = self.new_session(
            person, session.device, session.label, session.user_agent, session.ip_at(at), again,
            logged=True,
        )  # fmt: skip
        successor.ip_changes = list(session.ip_changes)
        successor.activity = [(max(a, again), b) for a, b in session.activity if b > again]
        session.activity = [(a, b) for a, b in session.activity if a < at]
        if self.devices[person.id].get(session.device) is session:
            self.devices[person.id][session.device] = successor

    def story_lost(self, person: Person, day: int, forced: bool) -> None:
        laptop = self.device(person, "laptop")
        phone = self.device(person, "phone")
        noon = even(self.at(day, 12))
        thief_ip = self.fresh_ip()
        taken = odd(self.at(day, 11.5) + 60)
        self.busy(laptop, self.at(day, 8.5), self.at(day, 11.35))
        self.idle(laptop, self.at(day, 11.35), taken)
        self.busy(laptop, taken, self.at(day, 17.5))
        laptop.ip_changes = [change for change in laptop.ip_changes if change[0] < taken]
        laptop.ip_changes.append((taken, thief_ip))
        self.busy(phone, self.at(day, 11.9), self.at(day, 12.1))
        laptop.mint_at.add(taken)
        self.revoke(laptop.records[-1], noon, person, phone)
        if not forced:
            return
        home = self.memberships[person.id][0].workspace
        listing = listing_item(home)
        manage = Item("PATCH", f"/api/v1/workspaces/{home.id}", home.id, f"workspace:{home.id}")
        ms = self.rng.randint(1, 999)
        self.story_extras.append((laptop, noon, noon + 300, ms, listing, None, None, None))
        self.story_extras.append(
            (laptop, self.at(day, 14), self.at(day, 14), ms, listing, None, None, None)
        )
        self.story_extras.append(
            (laptop, self.at(day, 15), self.at(day, 15), ms, manage, None, None, None)
        )
        if self.rate("expired_token_accepted") > 0:
            self.story_extras.append((laptop, noon, "exp+45", ms, listing, None, None, "allow"))
        if self.rate("new_client_after_revocation") > 0:
            tool = self.rng.choice(catalog.TOOL_AGENTS)
            fresh = self.fresh_ip()
            self.story_extras.append((laptop, noon, noon + 1200, ms, listing, fresh, tool, None))
        if self.rate("invalid_signature_accepted") > 0:
            self.crafted.append(("forged", laptop, person, odd(self.at(day, 12.67)), 600, listing))
        if self.rate("lifetime_exceeds_policy") > 0:
            self.crafted.append(("long", laptop, person, odd(self.at(day, 13.08)), 300, listing))
        if self.rate("subject_mismatch") > 0:
            other = self.people[(person.index + 1) % len(self.people)]
            self.crafted.append(("subject", laptop, other, odd(self.at(day, 13.67)), 1800, listing))

    def story_unfamiliar(self, person: Person, day: int, forced: bool) -> None:
        laptop = self.device(person, "laptop")
        arrived = odd(self.at(day, 9.2) + self.rng.randint(0, 600))
        label, agent = catalog.ATTACKER_AGENT
        attacker = self.new_session(
            person,
            "attacker",
            label,
            agent,
            self.fresh_ip(),
            arrived,
            logged=True,
            register_after=3,
        )
        attacker.activity = [(arrived, self.at(day, 17.67))]
        noticed = even(self.at(day, 10.5))
        self.busy(laptop, self.at(day, 8.5), self.at(day, 11.0) - 2)
        self.revoke(attacker.records[-1], noticed, person, laptop)
        if self.rate("token_minted_after_logout") > 0:
            self.sign_out(laptop, even(self.at(day, 11.0)), relogin_after=120)
        if forced:
            listing = listing_item(self.memberships[person.id][0].workspace)
            ms = self.rng.randint(1, 999)
            moment = noticed + 600
            self.story_extras.append((attacker, moment, moment, ms, listing, None, None, None))

    def story_admin_revoked(self, person: Person, day: int, forced: bool) -> None:
        admin = self.admin_of(person)
        if admin is None:
            return
        laptop = self.device(person, "laptop")
        moment = even(self.at(day, 14))
        self.busy(laptop, self.at(day, 13), self.at(day, 16.5))
        admin_laptop = self.device(admin, "laptop")
        self.busy(admin_laptop, moment - 300, moment + 300)
        self.revoke(laptop.records[-1], moment, admin, admin_laptop)
        if forced:
            self.story_grant_revoked(person, admin, day)

    def story_grant_revoked(self, person: Person, admin: Person, day: int) -> None:
        """A restricted secret created and granted during the log, the grant revoked at
        13:00; the member's later reads are denied (and the history proves it)."""
        workspace = self.memberships[person.id][0].workspace
        secret = Secret(new_uuid(self.rng), workspace, "restricted")
        workspace.secrets.append(secret)
        laptop = self.device(admin, "laptop")
        self.vault_event(
            "secret.create", even(self.at(day, 7.0)), admin.id, workspace.id,
            {"secret_id": secret.id, "visibility": "restricted"},
            ip=laptop.ip, user_agent=laptop.user_agent,
        )  # fmt: skip
        self.vault_event(
            "workspace.member.add", even(self.at(day, 7.02)), admin.id, workspace.id,
            {"user_id": person.id, "role": "member"}, ip=laptop.ip, user_agent=laptop.user_agent,
        )  # fmt: skip
        self.vault_event(
            "grant.create", even(self.at(day, 7.05)), admin.id, workspace.id,
            {"user_id": person.id, "secret_id": secret.id, "permission": "read"},
            ip=laptop.ip, user_agent=laptop.user_agent,
        )  # fmt: skip
        self.vault_event(
            "grant.revoke", even(self.at(day, 13.0)), admin.id, workspace.id,
            {"user_id": person.id, "secret_id": secret.id, "permission": "read"},
            ip=laptop.ip, user_agent=laptop.user_agent,
        )  # fmt: skip
        self.busy(laptop, self.at(day, 12.9), self.at(day, 13.1))
        item = Item("GET", secret_path(secret), workspace.id, f"secret:{secret.id}", secret)
        self.favourites.setdefault(person.id, []).append((item, 3.0))

    def story_deleted(self, person: Person, day: int, forced: bool) -> None:
        admin = self.admin_of(person)
        laptop = self.device(person, "laptop")
        self.idle(laptop, self.at(day, 14.5), self.at(day, 14.9))
        resumed = odd(self.at(day, 14.9) + 121)
        self.busy(laptop, self.at(day, 13.5), self.at(day, 14.5))
        self.busy(laptop, resumed, self.at(day, 17.0))
        laptop.mint_at.add(resumed)
        deleted = even(self.at(day, 15) + 1200)
        person.deleted_at = deleted
        traits = {"user_id": person.id, "user_email": person.email, "user_phone": ""}
        self.audit_entry(deleted, "user_deleted", None, "team", traits=traits)
        for session in self.sessions:
            if session.user is person and session.created_at < deleted:
                session.deleted_at = min(session.deleted_at or deleted, deleted)
        if admin is not None:
            admin_laptop = self.device(admin, "laptop")
            self.busy(admin_laptop, deleted, deleted + 900)
            step = 0
            for session in self.sessions:
                record = session.records[-1] if session.records else None
                if session.user is person and record and record.revoked_at is None:
                    self.revoke(record, deleted + 60 + 2 * step, admin, admin_laptop)
                    step += 1
            removed = deleted + 360
            for number, membership in enumerate(self.memberships[person.id]):
                self.remove_member(person, membership, removed + 2 * number, admin, admin_laptop)
        if not forced:
            return
        listing = listing_item(self.memberships[person.id][0].workspace)
        ms = self.rng.randint(1, 999)
        for offset, decision in ((180, None), (480, None), (600, "allow")):
            if decision and not (self.rate("authorization_replay_mismatch") > 0 and admin):
                continue
            moment = deleted + offset
            self.story_extras.append((laptop, moment, moment, ms, listing, None, None, decision))
        if self.rate("token_minted_after_idp_session_end") > 0:
            self.crafted.append(("after_end", laptop, person, odd(deleted + 1200), 300, listing))

    def remove_member(
        self, person: Person, membership: Membership, at: int, admin: Person, by: IdpSession
    ) -> None:
        workspace = membership.workspace
        self.vault_event(
            "workspace.member.add", even(self.at(0, 7.0) + 2 * person.index), admin.id,
            workspace.id, {"user_id": person.id, "role": membership.role},
            ip=by.ip, user_agent=by.user_agent,
        )  # fmt: skip
        self.vault_event(
            "workspace.member.remove", at, admin.id, workspace.id,
            {"user_id": person.id, "role": membership.role},
            ip=by.ip_at(at), user_agent=by.user_agent,
        )  # fmt: skip
        membership.removed_at = at

    def story_removed(self, person: Person, day: int, forced: bool) -> None:
        admin = self.admin_of(person)
        if admin is None:
            return
        laptop = self.device(person, "laptop")
        moment = even(self.at(day, 16))
        self.busy(laptop, self.at(day, 15.5), self.at(day, 16.75))
        admin_laptop = self.device(admin, "laptop")
        self.busy(admin_laptop, moment - 300, moment + 300)
        membership = self.memberships[person.id][0]
        self.remove_member(person, membership, moment, admin, admin_laptop)
        if forced and self.rate("authorization_replay_mismatch") > 0:
            listing = listing_item(membership.workspace)
            ms = self.rng.randint(1, 999)
            later = moment + 600
            self.story_extras.append((laptop, later, later, ms, listing, None, None, "allow"))

    def story_reregister(self, person: Person, day: int, forced: bool) -> None:
        laptop = self.device(person, "laptop")
        phone = self.device(person, "phone")
        moment = even(self.at(day, 10))
        self.busy(laptop, moment - 600, moment + 600)
        self.idle(phone, moment - 900, moment + 3000)
        self.busy(phone, odd(moment + 301), moment + 900)
        self.busy(phone, odd(moment + 1501), moment + 2400)
        self.revoke(phone.records[-1], moment, person, laptop)
        self.add_record(phone, moment + 1200, ip=phone.ip_at(moment + 1200))

    def story_logout(self, person: Person, day: int, forced: bool) -> None:
        laptop = self.device(person, "laptop")
        moment = even(self.at(day, 13))
        self.busy(laptop, moment - 1800, moment + 3600)
        original = laptop
        self.sign_out(laptop, moment, relogin_after=301)
        if forced and self.rate("token_minted_after_idp_session_end") > 0:
            snapshot = next((t for t in self.snapshot_times() if t > moment), None)
            if snapshot is not None and snapshot + 1800 < self.end:
                listing = listing_item(self.memberships[person.id][0].workspace)
                self.crafted.append(
                    ("after_end", original, person, odd(snapshot + 1800), 300, listing)
                )

    def story_password(self, person: Person, day: int, forced: bool) -> None:
        laptop = self.device(person, "laptop")
        phone = self.device(person, "phone")
        moment = even(self.at(day, 11))
        self.busy(laptop, moment - 600, moment + 600)
        self.busy(phone, moment - 1500, moment + 600)
        self.sign_outs[person.id].append(moment)
        self.audit_entry(moment, "user_updated_password", person, "user")
        for session in self.sessions:
            others = session.user is person and session is not laptop
            if others and session.deleted_at is None and session.created_at < moment:
                session.deleted_at = moment
        again = odd(moment + 5400)
        successor = self.new_session(
            person, "phone", phone.label, phone.user_agent, phone.ip_at(again), again, logged=True
        )
        successor.ip_changes = list(phone.ip_changes)
        successor.activity = merge_intervals(
            [(again, again + 900)] + [(a, b) for a, b in phone.activity if a > again]
        )
        phone.activity = [(a, b) for a, b in phone.activity if a < again]
        self.devices[person.id]["phone"] = successor

    def snapshot_times(self) -> list[int]:
        return [self.at(day, hour) for day in range(self.days) for hour in SNAPSHOT_HOURS]

    def run_story(self, name: str, person: Person, day: int, forced: bool) -> None:
        getattr(self, f"story_{name}")(person, day, forced)


def listing_item(workspace: Workspace) -> Item:
    return Item(
        "GET",
        f"/api/v1/workspaces/{workspace.id}/secrets",
        workspace.id,
        f"workspace:{workspace.id}",
    )


def secret_path(secret: Secret) -> str:
    return f"/api/v1/workspaces/{secret.workspace.id}/secrets/{secret.id}"


def merge_intervals(intervals: list[tuple[int, int]]) -> list[tuple[int, int]]:
    merged: list[tuple[int, int]] = []
    for begin, end in sorted(intervals):
        if end <= begin:
            continue
        if merged and begin <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((begin, end))
    return merged


# --- the plan, step by step --------------------------------------------------------------


def build_plan(
    *,
    users: int,
    days: int,
    seed: int,
    rates: Mapping[str, float] | None = None,
    requests_per_hour: float = 40.0,
    start: datetime = DEFAULT_START,
) -> Plan:
    """Decide the whole world before any of it is played through the backend."""
    if users < 1 or days < 1:
        raise ValueError("a world needs at least one user and one day")
    builder = _Builder(
        rng=Random(seed),
        start=int(start.timestamp()),
        days=days,
        rates=resolve_rates(rates),
        requests_per_hour=requests_per_hour,
    )
    project_ref = "".join(builder.rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(20))

    builder.add_people(users)
    order = builder.rng.sample(builder.people, len(builder.people))
    story_people = order[: len(ESSENTIAL_ROLES)]
    builder.add_workspaces(story_people)
    builder.add_devices()
    builder.write_authorization_history({person.id for person in story_people})

    last_day = days - 1
    for role, person in zip(ESSENTIAL_ROLES, story_people, strict=False):
        day = last_day if role in ("reregister", "logout", "password") else 0
        builder.run_story(role, person, day, forced=True)
        builder.protected.update(s.id for s in builder.sessions if s.user is person)
    for person in order[len(ESSENTIAL_ROLES) :]:
        if builder.rng.random() < 0.3:
            story = builder.rng.choice(RANDOM_STORIES)
            builder.run_story(story, person, builder.rng.randrange(days), forced=False)

    for session in list(builder.sessions):
        mint_tokens(builder, session)
    place_story_requests(builder)
    inject_anomalies(builder)
    for session in builder.sessions:
        session.tokens.sort(key=lambda token: token.iat)
    snapshot_times = builder.snapshot_times()
    for session in builder.sessions:
        session.end_evidence = end_evidence(session, snapshot_times)
    for moment in snapshot_times:
        builder.events.append(PlannedEvent(moment, builder.next_order(), "snapshot", moment))

    pools, late_pools = build_pools(builder)
    builder.events.sort(key=lambda event: (event.at, event.order))
    builder.audit.sort(key=lambda entry: (entry["_at"], entry["id"]))
    for times in builder.sign_outs.values():
        times.sort()
    return Plan(
        start=builder.start,
        end=builder.end,
        project_ref=project_ref,
        people=builder.people,
        workspaces=builder.workspaces,
        sessions=builder.sessions,
        events=builder.events,
        prelog_authz=sorted(builder.prelog, key=lambda event: event.occurred_at),
        audit=builder.audit,
        snapshot_times=snapshot_times,
        pools=pools,
        late_pools=late_pools,
        service_token=service_token(builder, project_ref),
        sign_outs=builder.sign_outs,
        rates=builder.rates,
        requests_per_hour=requests_per_hour,
    )


def mint_tokens(builder: _Builder, session: IdpSession) -> None:
    """The tokens the browser gets while active: one at sign-in or when activity resumes
    after the last one is due for refresh, then one about every 59 minutes (supabase-js
    refreshes shortly before ``exp``). Nothing is minted once the session is deleted:
    the browser then keeps its last token until the refresh fails."""
    rng = builder.rng
    rate = builder.requests_per_hour * (0.5 if session.device == "phone" else 1.0)
    stop = min(session.stop_at or builder.end, builder.end)
    dead = session.deleted_at if session.deleted_at is not None else builder.end + DAY
    current: Token | None = None
    spans: dict[int, list[tuple[int, int]]] = {}  # id(token) -> (begin, end) while in use
    signed_out = False
    for begin, end in session.activity:
        moment, end = max(begin, session.created_at), min(end, stop)
        while moment < end and not signed_out:
            due = current is None or moment >= current.refresh_at or moment in session.mint_at
            if due and (current is None or current.iat != moment):
                if moment >= dead:
                    signed_out = True  # the refresh fails: supabase-js signs the tab out
                    break
                current = Token(
                    session=session,
                    sub=session.user.id,
                    session_id=session.id,
                    iat=odd(moment),
                    exp=odd(moment) + TOKEN_LIFETIME,
                    ip=session.ip_at(moment),
                    user_agent=session.user_agent,
                    refresh_at=odd(moment) + 3510 + 2 * rng.randint(0, 30),
                    email=session.user.email,
                )
                session.tokens.append(current)
            assert current is not None
            until = min(end, current.refresh_at)
            spans.setdefault(id(current), []).append((moment, until))
            moment = until
    for token in session.tokens:
        used = spans.get(id(token), [])
        counts = []
        for begin, end in used:
            expected = rate * (end - begin) / HOUR * rng.uniform(0.6, 1.4)
            counts.append(int(expected + rng.random()))
        if used and not any(counts):
            counts[0] = 1
        token.segments = [(b, e, n) for (b, e), n in zip(used, counts, strict=True)]
        token.rows = sum(counts)


def current_token(session: IdpSession, moment: int) -> Token | None:
    """The browser's token at ``moment``: the latest minted at or before it."""
    chosen = None
    for token in session.tokens:
        if token.minted_by_idp and token.iat <= moment:
            chosen = token
    return chosen


def place_story_requests(builder: _Builder) -> None:
    for session, token_at, at, ms, item, ip, agent, decision in builder.story_extras:
        token = current_token(session, token_at)
        if token is None:
            continue
        moment = token.exp + 45 if at == "exp+45" else at
        if at != "exp+45" and moment >= token.exp:
            continue
        token.extras.append(
            Extra(moment * 1000 + ms, item, ip or token.ip, agent or token.user_agent, decision)
        )
    for kind, session, subject, iat, offset, item in builder.crafted:
        craft_token(builder, kind, session, subject, iat, offset, item)


def craft_token(
    builder: _Builder,
    kind: str,
    session: IdpSession,
    subject: Person,
    iat: int,
    offset: int,
    item: Item,
    *,
    ip: str | None = None,
) -> Token | None:
    """A token outside the refresh chain: forged, over-long, for another subject, or
    minted after the Supabase session ended."""
    if iat + offset + 120 >= builder.end:
        return None
    lifetime = LONG_LIFETIME if kind == "long" else TOKEN_LIFETIME
    token = Token(
        session=session,
        sub=subject.id,
        session_id=session.id,
        iat=iat,
        exp=iat + lifetime,
        ip=ip or session.ip_at(iat),
        user_agent=session.user_agent,
        refresh_at=iat + 3510,
        minted_by_idp=False,
        forged=kind == "forged",
        email=subject.email,
    )
    ms = builder.rng.randint(1, 999)
    for step in (0, 60):
        token.extras.append(
            Extra((iat + offset + step) * 1000 + ms, item, token.ip, token.user_agent, None)
        )
    session.tokens.append(token)
    return token


def inject_anomalies(builder: _Builder) -> None:
    """Anomalies at their rates, outside the forced stories' sessions."""
    rng = builder.rng
    rates = builder.rates
    for session in list(builder.sessions):
        if session.id in builder.protected or session.device == "kiosk":
            continue
        listing = listing_item(builder.memberships[session.user.id][0].workspace)
        for token in list(session.tokens):
            if not token.minted_by_idp:
                continue
            if rng.random() < rates["expired_token_accepted"]:
                moment = (token.exp + rng.randint(1, 600)) * 1000 + rng.randint(1, 999)
                if moment < builder.end * 1000:
                    token.extras.append(Extra(moment, listing, token.ip, token.user_agent, "allow"))
            if rng.random() < rates["invalid_signature_accepted"]:
                token.forged = True
            if rng.random() < rates["lifetime_exceeds_policy"]:
                token.exp = token.iat + LONG_LIFETIME

        for record in list(session.records):
            revoked = record.revoked_at
            if revoked is None:
                continue
            later = [t for t in session.tokens if t.minted_by_idp and t.iat > revoked]
            if rng.random() < rates["subject_mismatch"]:
                others = [p for p in builder.people if p is not session.user]
                if others:
                    iat = odd(revoked + rng.randint(60, 1800))
                    craft_token(builder, "subject", session, rng.choice(others), iat, 120, listing)
            if rng.random() < rates["new_client_after_revocation"]:
                residual = current_token(session, revoked)
                if residual is not None and residual.exp - revoked > 180:
                    moment = revoked + rng.randint(60, residual.exp - revoked - 60)
                    residual.extras.append(
                        Extra(
                            moment * 1000 + rng.randint(1, 999),
                            listing,
                            builder.fresh_ip(),
                            rng.choice(catalog.TOOL_AGENTS),
                            None,
                        )
                    )
            if later and rng.random() < rates["token_minted_after_logout"]:
                kiosk_sign_out(builder, session.user, revoked, later[-1].iat)
            if session.deleted_at is not None and (
                rng.random() < rates["token_minted_after_idp_session_end"]
            ):
                after = [t for t in builder.snapshot_times() if t > session.deleted_at]
                if after:
                    iat = odd(after[0] + rng.randint(60, 1800))
                    craft_token(builder, "after_end", session, session.user, iat, 300, listing)


def kiosk_sign_out(builder: _Builder, person: Person, after: int, before: int) -> None:
    """The user signs in on a shared computer and signs out again (local scope)."""
    if before - after < 1500:
        return
    label, agent = catalog.KIOSK_AGENT
    begin = odd(after + builder.rng.randint(60, before - after - 1200))
    kiosk = builder.new_session(
        person, "kiosk", label, agent, builder.fresh_ip(), begin, logged=True
    )
    signed_out = even(begin + 600)
    kiosk.activity = [(begin, signed_out - 2)]
    builder.sign_out(kiosk, signed_out, relogin_after=None)
    mint_tokens(builder, kiosk)


def end_evidence(session: IdpSession, snapshot_times: list[int]) -> int | None:
    """The earliest supabase-sessions snapshot that lacks the session although an
    earlier snapshot held it or a token of the session was issued before it."""
    first_iat = min((token.iat for token in session.tokens), default=None)
    held_before = False
    for moment in snapshot_times:
        present = session_present(session, moment)
        if not present and (held_before or (first_iat is not None and first_iat < moment)):
            return moment
        held_before = held_before or present
    return None


def session_present(session: IdpSession, moment: int) -> bool:
    return session.created_at <= moment and (
        session.deleted_at is None or moment < session.deleted_at
    )


def build_pools(builder: _Builder) -> tuple[dict[str, Pool], dict[str, tuple[int, Pool]]]:
    pools: dict[str, Pool] = {}
    late: dict[str, tuple[int, Pool]] = {}
    for person in builder.people:
        memberships = builder.memberships[person.id]
        pools[person.id] = person_pool(builder, person, memberships)
        removed = [m for m in memberships if m.removed_at is not None]
        if removed:
            remaining = [m for m in memberships if m.removed_at is None]
            since = max(m.removed_at or 0 for m in removed) + 1800
            late[person.id] = (since, person_pool(builder, person, remaining or memberships))
    return pools, late


def person_pool(builder: _Builder, person: Person, memberships: list[Membership]) -> Pool:
    rng = builder.rng
    entries: list[tuple[Item, float]] = []
    for number, membership in enumerate(memberships):
        workspace = membership.workspace
        weight = 3.0 if number == 0 else 1.0
        entries.append((listing_item(workspace), weight))
        for secret in rng.sample(workspace.secrets, min(6, len(workspace.secrets))):
            path = secret_path(secret)
            resource = f"secret:{secret.id}"
            shared = secret.visibility == "workspace"
            entries.append(
                (
                    Item("GET", path, workspace.id, resource, secret),
                    weight * (0.7 if shared else 0.15),
                )
            )
            if shared and rng.random() < 0.5:
                entries.append((Item("PUT", path, workspace.id, resource, secret), weight * 0.08))
    workspaces = {m.workspace.id for m in memberships}
    entries += [
        (item, weight)
        for item, weight in builder.favourites.get(person.id, [])
        if item.workspace_id in workspaces
    ]
    cumulative: list[float] = []
    total = 0.0
    for _, weight in entries:
        total += weight
        cumulative.append(total)
    return Pool([item for item, _ in entries], cumulative)


def service_token(builder: _Builder, project_ref: str) -> Token:
    """The project's service-role API key, used by a rotation job every few minutes:
    a long-lived JWT without ``sub`` or ``session_id``, so never in scope."""
    iat = odd(builder.start - 400 * DAY)
    token = Token(
        session=None,
        sub=None,
        session_id=None,
        iat=iat,
        exp=iat + 10 * 365 * DAY,
        ip=catalog.SERVICE_IP,
        user_agent=catalog.SERVICE_AGENT,
        minted_by_idp=False,
        role="service_role",
        claims={
            "iss": "supabase",
            "ref": project_ref,
            "role": "service_role",
            "iat": iat,
            "exp": iat + 10 * 365 * DAY,
        },  # fmt: skip
    )
    rows = 0
    for hour in range(builder.days * 24):
        begin = builder.start + hour * HOUR
        count = builder.rng.randint(2, 5)
        token.segments.append((begin, begin + HOUR, count))
        rows += count
    token.rows = rows
    return token
