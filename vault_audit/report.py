"""Investigation reports: what a user's or a session's tokens did around the revocation
of its device-session records, in one self-contained HTML file.

``collect_report`` reads the store (raw facts and the verdicts the check materialized)
into ``ReportFacts``; ``summary_text`` says in plain words what they mean;
``render_report`` fills the Jinja2 templates under ``reports/``. The timeline command
reads the same facts. Reports never compute verdicts: they aggregate and present them.

Every value from the logs reaches the page through Jinja2 autoescaping, after control
characters were made visible. The one piece of markup inserted as it is, the timeline
chart, is SVG written by Vega's renderer and checked to be inert (``charts.chart_svg``).
"""

from __future__ import annotations

import logging
import os
import re
import tempfile
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import duckdb
import jinja2
from markupsafe import Markup, escape

from vault_audit import __version__, store
from vault_audit.charts import VERDICT_CATEGORY, ChartData, chart_svg, timeline_chart
from vault_audit.errors import UsageError
from vault_audit.escaping import clean_text
from vault_audit.resources import read_query, resource_dir
from vault_audit.settings import Settings

log = logging.getLogger(__name__)

# Caps that keep a report of any volume a few MB: every capped list says so.
MAX_TABLE_ROWS = 500
MAX_USES_PER_TOKEN = 20
MAX_DETAIL_USES = 2_000
MAX_CHART_TOKENS = 40
MAX_CHART_DEVICES = 20
CHART_BUCKETS = 60
# A chart lane names a device by its label cut to this many characters and the first
# characters of its id, so the axis shows every lane name whole.
LANE_LABEL_CHARS = 28
LANE_ID_CHARS = 8

VERDICT_ORDER = ("anomalous", "needs_review", "expected_by_design")


# Control characters, and the bidirectional overrides that make text read other than
# it is stored: shown as escapes so no log value can drive a terminal or hide itself.
def short_id(identifier: str) -> str:
    """The first characters of a long id, marked as cut (``eb8ac8ce…``)."""
    if len(identifier) <= LANE_ID_CHARS + 4:
        return identifier
    return identifier[:LANE_ID_CHARS] + "…"


def human_duration(seconds: float) -> str:
    """``7 days (604800 s)``: the two largest units in words, then the exact seconds;
    under a minute only the seconds (``45 s``)."""
    total = int(seconds)
    if abs(total) < 60:
        return f"{total} s"
    parts = []
    rest = abs(total)
    for name, size in (("day", 86_400), ("hour", 3_600), ("minute", 60), ("second", 1)):
        count, rest = divmod(rest, size)
        if count:
            parts.append(f"{count} {name}" + ("" if count == 1 else "s"))
    words = " ".join(parts[:2])
    return f"{'minus ' if total < 0 else ''}{words} ({total} s)"


def parse_time(text: str, option: str) -> datetime:
    """An RFC 3339 time with an offset (``Z`` allowed), as UTC."""
    try:
        value = datetime.fromisoformat(text.strip().replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        value = None
    if value is None or value.tzinfo is None:
        raise UsageError(
            f"{option} must be an RFC 3339 time with an offset, like 2024-05-01T12:00:00Z, "
            f"not {text!r}"
        )
    return value.astimezone(timezone.utc)


def format_time(value: datetime | None) -> str:
    """``2024-05-01 12:00:00`` in UTC, or an empty string."""
    if value is None:
        return ""
    return value.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S")


@dataclass(frozen=True)
class Selection:
    """What a report is about: one user, one session, or one time window."""

    user_id: str | None = None
    session_id: str | None = None
    start: datetime | None = None
    end: datetime | None = None

    @classmethod
    def from_options(
        cls,
        *,
        user_id: str | None = None,
        session_id: str | None = None,
        start: str | None = None,
        end: str | None = None,
    ) -> Selection:
        """Check that exactly one selection was given and parse its times."""
        chosen = [
            name
            for name, given in (
                ("--user", user_id),
                ("--session", session_id),
                ("--from/--to", start or end),
            )
            if given
        ]
        if len(chosen) != 1:
            raise UsageError(
                "choose exactly one of --user ID, --session ID or --from/--to"
                + (f" (got {', '.join(chosen)})" if chosen else "")
            )
        if start or end:
            if not (start and end):
                raise UsageError("a time window needs both --from and --to")
            window = cls(start=parse_time(start, "--from"), end=parse_time(end, "--to"))
            if window.end <= window.start:  # type: ignore[operator]
                raise UsageError("--to must be later than --from")
            return window
        return cls(user_id=user_id or None, session_id=session_id or None)

    @property
    def kind(self) -> str:
        if self.user_id:
            return "user"
        if self.session_id:
            return "session"
        return "window"

    def describe(self) -> str:
        """What the report covers, in words."""
        if self.user_id:
            return f"user {clean_text(self.user_id)}"
        if self.session_id:
            return f"session {clean_text(self.session_id)}"
        return f"the time window from {format_time(self.start)} to {format_time(self.end)} UTC"


@dataclass(frozen=True)
class Scope:
    """The users, device-session records and Supabase sessions a selection names."""

    selection: Selection
    users: tuple[str, ...] = ()
    device_sessions: tuple[str, ...] = ()
    sessions: tuple[str, ...] = ()
    owners: tuple[str, ...] = ()

    @property
    def everything(self) -> bool:
        return self.selection.kind == "window"

    def parameters(self, **overrides: Any) -> dict[str, Any]:
        """The bound parameters every report query takes."""
        values: dict[str, Any] = {
            "all": self.everything,
            "users": list(self.users),
            "device_sessions": list(self.device_sessions),
            "sessions": list(self.sessions),
            "start": self.selection.start,
            "end": self.selection.end,
        }
        values.update(overrides)
        return values


@dataclass
class TokenGroup:
    """The uses of one token in the report, summed up, with the uses shown."""

    row: dict[str, Any]
    uses: list[dict[str, Any]] = field(default_factory=list)

    @property
    def hidden_uses(self) -> int:
        return int(self.row["uses"]) - len(self.uses)


@dataclass
class TimelineRow:
    """One row of the merged timeline: an event, or a token's uses as one group."""

    at: datetime
    source: str
    actor: str | None
    device: str | None
    ip: str | None
    user_agent: str | None
    verdict: str | None
    what: str
    token: TokenGroup | None = None
    last_at: datetime | None = None
    device_session_id: str | None = None


@dataclass
class ReportFacts:
    """Everything a report or a terminal timeline shows, read from one store."""

    selection: Selection
    scope: Scope
    generated_at: datetime
    store_path: str
    settings: Settings
    uses_total: int = 0
    tokens_total: int = 0
    first_use: datetime | None = None
    last_use: datetime | None = None
    device_records: list[dict[str, Any]] = field(default_factory=list)
    device_labels: dict[str, str] = field(default_factory=dict)
    revocations: list[dict[str, Any]] = field(default_factory=list)
    exposures: list[dict[str, Any]] = field(default_factory=list)
    verdict_counts: list[dict[str, Any]] = field(default_factory=list)
    findings: list[dict[str, Any]] = field(default_factory=list)
    findings_total: int = 0
    rotation: list[dict[str, Any]] = field(default_factory=list)
    timeline: list[TimelineRow] = field(default_factory=list)
    timeline_total: int = 0
    token_groups: list[TokenGroup] = field(default_factory=list)
    ingest_runs: list[dict[str, Any]] = field(default_factory=list)
    last_check: dict[str, Any] | None = None
    stale_verdicts: bool = False
    chart: ChartData = field(default_factory=ChartData)

    def label_of(self, device_session_id: str | None) -> str | None:
        """``Work laptop (ds_1)`` for a labelled record of the report, else its id."""
        if device_session_id is None:
            return None
        label = self.device_labels.get(device_session_id)
        return f"{label} ({device_session_id})" if label else device_session_id

    def short_label_of(self, device_session_id: str) -> str:
        """``Work laptop (eb8ac8ce…)``: the label cut short and the id's first
        characters, for a chart lane; the tables show ``label_of``."""
        label = self.device_labels.get(device_session_id)
        if not label:
            return short_id(device_session_id)
        if len(label) > LANE_LABEL_CHARS:
            label = label[: LANE_LABEL_CHARS - 1] + "…"
        return f"{label} ({short_id(device_session_id)})"


@dataclass(frozen=True)
class ReportResult:
    """What ``write_report`` wrote."""

    path: Path
    bytes: int
    seconds: float
    uses: int
    timeline_rows: int
    stale: bool


def write_report(settings: Settings, selection: Selection, output: str | Path) -> ReportResult:
    """Read the store named by ``settings`` and write the HTML report to ``output``."""
    started = time.monotonic()
    with store.opened(
        settings.db,
        read_only=True,
        busy_timeout=settings.busy_timeout,
        memory_limit=settings.memory_limit,
        threads=settings.threads,
    ) as connection:
        facts = collect_report(connection, selection, settings=settings)
    html = render_report(facts)

    path = Path(output)
    _write_atomically(path, html)
    result = ReportResult(
        path=path,
        bytes=len(html.encode("utf-8")),
        seconds=time.monotonic() - started,
        uses=facts.uses_total,
        timeline_rows=len(facts.timeline),
        stale=facts.stale_verdicts,
    )
    log.info(
        "report of %s written to %s: %d token uses, %d bytes, %.2f s",
        selection.describe(),
        path,
        result.uses,
        result.bytes,
        result.seconds,
    )
    return result


def collect_report(
    connection: duckdb.DuckDBPyConnection,
    selection: Selection,
    *,
    settings: Settings | None = None,
    now: datetime | None = None,
) -> ReportFacts:
    """Read everything a report of ``selection`` shows from an open store."""
    settings = settings or Settings()
    _require_verdicts(connection)
    scope = resolve_scope(connection, selection)
    facts = ReportFacts(
        selection=selection,
        scope=scope,
        generated_at=now or datetime.now(timezone.utc),
        store_path=clean_text(str(settings.db)),
        settings=settings,
    )

    _run(connection, "report/scoped_uses.sql", scope.parameters())
    totals = _rows(connection, "report/uses_total.sql", {})[0]
    facts.uses_total, facts.tokens_total = int(totals["uses"]), int(totals["tokens"])
    facts.first_use, facts.last_use = totals["first_use"], totals["last_use"]

    facts.device_records = _rows(connection, "report/device_sessions.sql", scope.parameters())
    labelled = [*_rows(connection, "report/device_labels.sql", {}), *facts.device_records]
    facts.device_labels = {
        record["device_session_id"]: record["label"] for record in labelled if record["label"]
    }
    facts.revocations = [record for record in facts.device_records if record["revoked_at"]]
    facts.exposures = _rows(connection, "report/exposure_windows.sql", scope.parameters())
    facts.verdict_counts = _rows(connection, "report/verdict_counts.sql", {})
    facts.rotation = _rows(connection, "report/rotation_candidates.sql", {})

    findings = _rows(connection, "report/findings.sql", scope.parameters(limit=MAX_TABLE_ROWS))
    facts.findings = findings
    facts.findings_total = int(findings[0]["total"]) if findings else 0

    facts.token_groups = _token_groups(connection)
    _merge_timeline(connection, facts)
    facts.ingest_runs = _rows(connection, "report/ingest_runs.sql", {})
    check_runs = _rows(connection, "report/last_check_run.sql", {})
    facts.last_check = check_runs[0] if check_runs else None
    if facts.last_check and facts.ingest_runs:
        last_ingest = max(run["started_at"] for run in facts.ingest_runs)
        facts.stale_verdicts = last_ingest > facts.last_check["started_at"]
    facts.chart = _chart_data(connection, facts)
    return facts


def resolve_scope(connection: duckdb.DuckDBPyConnection, selection: Selection) -> Scope:
    """The users, records and Supabase sessions a selection names.

    Raises ``UsageError`` when the store knows nothing of the user or session asked for.
    """
    if selection.kind == "window":
        return Scope(selection=selection)

    rows = _rows(
        connection,
        "report/scope_sessions.sql",
        {"user_id": selection.user_id, "session_id": selection.session_id},
    )
    device_sessions = sorted({row["device_session_id"] for row in rows} - {None})
    sessions = sorted({row["supabase_session_id"] for row in rows} - {None})
    owners = sorted({row["user_id"] for row in rows} - {None})

    if selection.kind == "user":
        users = (selection.user_id or "",)
        if not rows and not _user_seen(connection, selection.user_id):
            raise UsageError(f"the store has no record of user {selection.user_id!r}")
        return Scope(selection, users, tuple(device_sessions), tuple(sessions), users)

    if not rows:
        raise UsageError(
            f"the store has no device-session record or Supabase session {selection.session_id!r}"
        )
    return Scope(selection, (), tuple(device_sessions), tuple(sessions), tuple(owners))


def summary_text(facts: ReportFacts) -> str:
    """The report's summary in plain words, built from its facts: paragraphs
    separated by a blank line.

    It says what happened to Vault's own records, what was expected by design and
    why, what is anomalous or needs review, and what to do next.
    """
    paragraphs = [
        [_scope_sentence(facts), *_revocation_sentences(facts)],
        _verdict_sentences(facts),
        _exposure_sentences(facts),
        [_next_steps_sentence(facts)],
    ]
    return "\n\n".join(" ".join(paragraph) for paragraph in paragraphs if paragraph)


def report_environment() -> jinja2.Environment:
    """The Jinja2 environment over ``reports/``: autoescaping on for every template."""
    environment = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(resource_dir("reports"))),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    environment.filters["utc"] = format_time
    environment.filters["number"] = lambda value: f"{int(value or 0):,}"
    environment.filters["verdict_words"] = verdict_words
    environment.filters["short_hash"] = lambda value: (value or "")[:12]
    environment.filters["duration"] = human_duration
    environment.filters["breakable"] = breakable
    return environment


def breakable(value: str | None) -> Markup:
    """``value`` escaped, with a line-break opportunity after each underscore, so a
    reason such as ``token_minted_after_logout_scope_unknown`` wraps at its words."""
    return Markup("_<wbr>").join(escape(part) for part in (value or "").split("_"))


def render_report(facts: ReportFacts) -> str:
    """The report of ``facts`` as one self-contained HTML document."""
    svg = chart_svg(timeline_chart(facts.chart))
    template = report_environment().get_template("report.html.j2")
    return template.render(
        facts=facts,
        summary=summary_text(facts),
        chart=Markup(svg),  # checked inert by chart_svg; its text escaped by Vega
        title=f"Device-session investigation: {facts.selection.describe()}",
        settings_rows=_settings_rows(facts.settings),
        version=__version__,
        caps={
            "table": MAX_TABLE_ROWS,
            "per_token": MAX_USES_PER_TOKEN,
            "chart_tokens": MAX_CHART_TOKENS,
        },
        chart_tokens_shown=sum(1 for lane in facts.chart.lanes if lane.startswith("token ")),
    )


def verdict_words(verdict: str | None) -> str:
    """``needs_review`` as ``needs review``; no verdict as ``not judged``."""
    return verdict.replace("_", " ") if verdict else "not judged"


def most_anomalous_user(connection: duckdb.DuckDBPyConnection) -> str | None:
    """The user with the most anomalous findings (then needs review, then uses)."""
    row = connection.execute(read_query("report/most_anomalous_user.sql")).fetchone()
    return row[0] if row else None


# Reading the store


def _require_verdicts(connection: duckdb.DuckDBPyConnection) -> None:
    store.require_verdicts(connection, how="run `vault-audit check` first")


def _user_seen(connection: duckdb.DuckDBPyConnection, user_id: str | None) -> bool:
    found = _rows(
        connection,
        "report/idp_events.sql",
        Scope(Selection(user_id=user_id), users=(user_id or "",)).parameters(limit=1),
    )
    return bool(found)


def _run(connection: duckdb.DuckDBPyConnection, query: str, parameters: dict[str, Any]) -> None:
    text = read_query(query)
    connection.execute(text, _used(text, parameters))


def _rows(
    connection: duckdb.DuckDBPyConnection, query: str, parameters: dict[str, Any]
) -> list[dict[str, Any]]:
    """The rows of ``queries/<query>`` as dicts, every string made safe to show."""
    text = read_query(query)
    cursor = connection.execute(text, _used(text, parameters))
    names = [column[0] for column in cursor.description]
    return [
        {name: _shown(value) for name, value in zip(names, row, strict=True)}
        for row in cursor.fetchall()
    ]


def _used(text: str, parameters: dict[str, Any]) -> dict[str, Any] | None:
    """The parameters a query names: DuckDB refuses any it does not use."""
    names = set(re.findall(r"\$(\w+)", text))
    return {name: value for name, value in parameters.items() if name in names} or None


def _shown(value: Any) -> Any:
    if isinstance(value, str):
        return clean_text(value)
    if isinstance(value, list):
        return [_shown(item) for item in value]
    return value


def _token_groups(connection: duckdb.DuckDBPyConnection) -> list[TokenGroup]:
    groups = [
        TokenGroup(row)
        for row in _rows(connection, "report/token_groups.sql", {"limit": MAX_TABLE_ROWS})
    ]
    if not groups:
        return groups

    by_token = {group.row["token_sha256"]: group for group in groups}
    details = _rows(
        connection,
        "report/token_use_details.sql",
        {"tokens": list(by_token), "per_token": uses_shown_per_token(len(groups))},
    )
    for use in details:
        by_token[use["token_sha256"]].uses.append(use)
    return groups


def uses_shown_per_token(tokens: int) -> int:
    """How many single uses to list under each of ``tokens`` token rows."""
    return max(3, min(MAX_USES_PER_TOKEN, MAX_DETAIL_USES // max(tokens, 1)))


def _merge_timeline(connection: duckdb.DuckDBPyConnection, facts: ReportFacts) -> None:
    """Device-session events, identity-provider entries, Vault events and token
    groups in one time order, capped with the most severe token rows kept."""
    scope = facts.scope
    rows: list[TimelineRow] = []
    total = 0

    device_events = _rows(
        connection, "report/device_events.sql", scope.parameters(limit=MAX_TABLE_ROWS)
    )
    total += int(device_events[0]["total"]) if device_events else 0
    rows.extend(_device_event_row(event, facts) for event in device_events)
    rows.extend(_snapshot_only_rows(facts, device_events))

    # Identity-provider entries and Vault events name users, not sessions: a session
    # report shows its owners' entries over the time its evidence spans.
    side_scope = scope.parameters(limit=MAX_TABLE_ROWS)
    if scope.selection.kind == "session":
        start, end = _evidence_span(facts, device_events)
        side_scope.update(users=list(scope.owners), start=start, end=end)
    for query, make_row in (
        ("report/idp_events.sql", _idp_row),
        ("report/vault_events.sql", _vault_event_row),
    ):
        found = _rows(connection, query, side_scope)
        total += int(found[0]["total"]) if found else 0
        rows.extend(make_row(row) for row in found)

    total += int(facts.token_groups[0].row["tokens_total"]) if facts.token_groups else 0
    rows.extend(_token_row(group, facts) for group in facts.token_groups)

    if len(rows) > MAX_TABLE_ROWS:
        rows.sort(key=lambda row: (_severity_rank(row.verdict), row.at))
        rows = rows[:MAX_TABLE_ROWS]
    rows.sort(key=lambda row: (row.at, row.source))
    facts.timeline = rows
    facts.timeline_total = max(total, len(rows))


def _evidence_span(
    facts: ReportFacts, device_events: list[dict[str, Any]]
) -> tuple[datetime | None, datetime | None]:
    """From an hour before the first evidence of a session to an hour after its last."""
    times = [facts.first_use, facts.last_use]
    times += [event["occurred_at"] for event in device_events]
    for record in facts.device_records:
        times += [record["registered_at"], record["revoked_at"], record["last_seen_at"]]
    known = [value for value in times if value is not None]
    if not known:
        return None, None
    return min(known) - timedelta(hours=1), max(known) + timedelta(hours=1)


def _severity_rank(verdict: str | None) -> int:
    return VERDICT_ORDER.index(verdict) if verdict in VERDICT_ORDER else len(VERDICT_ORDER)


def _device_event_row(event: dict[str, Any], facts: ReportFacts) -> TimelineRow:
    label = facts.label_of(event["device_session_id"])
    if event["type"] == "session.revoke":
        by = "by the user" if event["actor_id"] == event["target_user_id"] else "by another actor"
        what = f"Vault's device-session record {label} marked revoked ({by})"
    else:
        what = f"Vault's device-session record {label} registered"
    if event["supabase_session_id"]:
        what += f" for Supabase session {event['supabase_session_id']}"
    return TimelineRow(
        at=event["occurred_at"],
        source="device session",
        actor=event["actor_id"],
        device=label,
        ip=event["ip"],
        user_agent=event["user_agent"],
        verdict=None,
        what=what,
        device_session_id=event["device_session_id"],
    )


def _snapshot_only_rows(
    facts: ReportFacts, device_events: list[dict[str, Any]]
) -> list[TimelineRow]:
    """Registrations and revocations known only from device-session snapshots."""
    seen = {(event["device_session_id"], event["type"]) for event in device_events}
    rows = []
    for record in facts.device_records:
        label = facts.label_of(record["device_session_id"])
        for kind, column, words in (
            ("session.register", "registered_at", "registered"),
            ("session.revoke", "revoked_at", "marked revoked"),
        ):
            when = record[column]
            if when is None or (record["device_session_id"], kind) in seen:
                continue
            if not _within(when, facts.selection):
                continue
            rows.append(
                TimelineRow(
                    at=when,
                    source="device session",
                    actor=record["revoked_by"] if kind == "session.revoke" else record["user_id"],
                    device=label,
                    ip=record["ip"],
                    user_agent=record["user_agent"],
                    verdict=None,
                    what=f"Vault's device-session record {label} {words} (seen in a snapshot)",
                    device_session_id=record["device_session_id"],
                )
            )
    return rows


def _within(when: datetime, selection: Selection) -> bool:
    if selection.start is not None and when < selection.start:
        return False
    return not (selection.end is not None and when >= selection.end)


def _idp_row(entry: dict[str, Any]) -> TimelineRow:
    what = f"Supabase Auth {entry['action'] or 'entry'}"
    if entry["log_type"]:
        what += f" ({entry['log_type']})"
    if entry["traits_user_id"] and entry["traits_user_id"] != entry["actor_id"]:
        what += f" concerning user {entry['traits_user_id']}"
    if entry["action"] == "token_revoked":
        what += ": a refresh token rotated out, not a logout"
    if entry["action"] == "logout":
        what += ": the audit log does not record the sign-out's scope"
    return TimelineRow(
        at=entry["created_at"],
        source="identity provider",
        actor=entry["actor_username"] or entry["actor_id"],
        device=None,
        ip=entry["ip_address"] or None,
        user_agent=None,
        verdict=None,
        what=what,
    )


def _vault_event_row(event: dict[str, Any]) -> TimelineRow:
    kind = event["type"]
    if kind.startswith("secret."):
        what = f"{kind} of secret {event['secret_id']}"
        if event["visibility"]:
            what += f" (visibility {event['visibility']})"
        source = "secret access"
    else:
        what = f"{kind} for user {event['target_user_id']} in workspace {event['workspace_id']}"
        detail = event["role"] or event["permission"]
        if kind.startswith("grant."):
            what = f"{kind} for user {event['target_user_id']} on secret {event['secret_id']}"
        if detail:
            what += f" ({detail})"
        source = "authorization"
    return TimelineRow(
        at=event["occurred_at"],
        source=source,
        actor=event["actor_id"],
        device=None,
        ip=event["ip"],
        user_agent=event["user_agent"],
        verdict=None,
        what=what,
    )


def _token_row(group: TokenGroup, facts: ReportFacts) -> TimelineRow:
    row = group.row
    counts = [
        f"{row[verdict]:,} {verdict_words(verdict)}" for verdict in VERDICT_ORDER if row[verdict]
    ]
    if row["not_judged"]:
        counts.append(f"{row['not_judged']:,} not judged")
    what = _uses(int(row["uses"]))
    if counts:
        what += f" ({', '.join(counts)})"
    if row["explanation"]:
        what += f": {row['explanation']}"
    ip = row["ip"] if row["ips"] <= 1 else f"{row['ip']} and {row['ips'] - 1:,} more"
    agent = row["user_agent"]
    if row["user_agents"] > 1:
        agent = f"{agent} and {row['user_agents'] - 1:,} more"
    return TimelineRow(
        at=row["first_at"],
        last_at=row["last_at"],
        source="token",
        actor=row["sub"],
        device=facts.label_of(row["device_session_id"]),
        ip=ip,
        user_agent=agent,
        verdict=row["verdict"],
        what=what,
        token=group,
        device_session_id=row["device_session_id"],
    )


# The chart


def _chart_data(connection: duckdb.DuckDBPyConnection, facts: ReportFacts) -> ChartData:
    data = ChartData()
    # The axis spans the token uses and the revocations; a registration days earlier
    # would squeeze them into a corner. Events outside it are in the table, and a lane
    # with nothing inside the axis is left out rather than drawn empty: an investigator
    # reads an empty lane as "nothing happened on this device", which is not so.
    times = [time for time in (facts.first_use, facts.last_use) if time is not None]
    times += [record["revoked_at"] for record in facts.revocations]
    if not times:
        times = [row.at for row in facts.timeline]
    if facts.selection.start and facts.selection.end:
        data.start, data.end = facts.selection.start, facts.selection.end
    elif times:
        low, high = min(times), max(times)
        margin = max((high - low) / 40, timedelta(minutes=1))
        data.start, data.end = low - margin, high + margin

    def inside(when: datetime) -> bool:
        if data.start is None or data.end is None:
            return True
        return data.start <= when <= data.end

    events = [row for row in facts.timeline if row.source != "token"]
    data.events_outside = sum(1 for row in events if not inside(row.at))
    shown = [row for row in events if inside(row.at)]

    device_lanes: dict[str, str] = {}
    for row in shown:
        if row.source != "device session" or row.device_session_id is None:
            continue
        lane = device_lanes.get(row.device_session_id)
        if lane is None and len(device_lanes) < MAX_CHART_DEVICES:
            name = f"device: {facts.short_label_of(row.device_session_id)}"
            lane = device_lanes[row.device_session_id] = _unique_lane(name, data.lanes)
            data.lanes.append(lane)
        if lane:
            category = "device-session event"
            data.marks.append({"at": row.at, "lane": lane, "category": category, "uses": 1})

    for source, lane, category in (
        ("identity provider", "identity provider", "identity-provider entry"),
        ("secret access", "Vault: secret access", "Vault event"),
        ("authorization", "Vault: members and grants", "Vault event"),
    ):
        marks = [row for row in shown if row.source == source]
        if marks:
            data.lanes.append(lane)
            data.marks.extend(
                {"at": row.at, "lane": lane, "category": category, "uses": 1} for row in marks
            )

    _chart_tokens(connection, facts, data)
    # Vega draws in data order: the most severe dots last, so nothing hides them.
    drawing_order = ["not judged", "expected by design", "needs review", "anomalous"]
    data.marks.sort(
        key=lambda mark: (
            drawing_order.index(mark["category"]) if mark["category"] in drawing_order else -1
        )
    )

    for record in facts.revocations:
        label = record["label"] or short_id(record["device_session_id"])
        if len(label) > LANE_LABEL_CHARS:
            label = label[: LANE_LABEL_CHARS - 1] + "…"
        data.revocations.append({"at": record["revoked_at"], "label": f"revoked: {label}"})
    for window in facts.exposures:
        end = window["window_end"]
        if window["open_ended"] or end is None:
            end = data.end
        if end is not None and end > window["revoked_at"]:
            data.exposures.append(
                {"start": window["revoked_at"], "end": end, "open_ended": window["open_ended"]}
            )
    return data


def _chart_tokens(
    connection: duckdb.DuckDBPyConnection, facts: ReportFacts, data: ChartData
) -> None:
    """One lane per token (the most severe first), its uses in time buckets."""
    groups = facts.token_groups[:MAX_CHART_TOKENS]
    if not groups:
        return
    groups = sorted(groups, key=lambda group: group.row["first_at"])
    lanes = {}
    for group in groups:
        row = group.row
        lane = _unique_lane(_token_lane(row, facts), data.lanes)
        lanes[row["token_sha256"]] = lane
        data.lanes.append(lane)
        data.spans.append({"lane": lane, "start": row["first_at"], "end": row["last_at"]})

    span = (data.end - data.start).total_seconds() if data.start and data.end else 3600
    bucket_seconds = max(1, int(span / CHART_BUCKETS))
    buckets = _rows(
        connection,
        "report/chart_uses.sql",
        {"tokens": list(lanes), "bucket_seconds": bucket_seconds},
    )
    for bucket in buckets:
        middle = bucket["first_at"] + (bucket["last_at"] - bucket["first_at"]) / 2
        data.marks.append(
            {
                "at": middle,
                "lane": lanes[bucket["token_sha256"]],
                "category": VERDICT_CATEGORY.get(bucket["verdict"], "not judged"),
                "uses": int(bucket["uses"]),
            }
        )


def _token_lane(row: dict[str, Any], facts: ReportFacts) -> str:
    """``token fe887408: Work laptop (eb8ac8ce…)``, or the Supabase session where no
    device-session record is known."""
    name = f"token {row['token_sha256'][:LANE_ID_CHARS]}"
    if row["device_session_id"]:
        return f"{name}: {facts.short_label_of(row['device_session_id'])}"
    if row["supabase_session_id"]:
        return f"{name}: Supabase session {short_id(row['supabase_session_id'])}"
    return name


def _unique_lane(name: str, taken: list[str]) -> str:
    """``name``, numbered where another lane already reads the same: Vega merges
    lanes of equal name."""
    lane, number = name, 1
    while lane in taken:
        number += 1
        lane = f"{name} #{number}"
    return lane


# Summary sentences

_REASON_WORDS = {
    "residual_token_validity": (
        "of tokens issued before the revocation, which stay valid until they expire"
    ),
    "idp_session_still_active": (
        "of tokens the Supabase session minted after the revocation, because revoking "
        "Vault's record does not end the Supabase session"
    ),
    "denied_by_backend": "denied by the backend",
    "expired_token_accepted": "accepted after the token had expired",
    "invalid_signature_accepted": "accepted with a token whose signature is invalid",
    "lifetime_exceeds_policy": "of tokens whose lifetime exceeds the policy's maximum",
    "subject_mismatch": "of tokens whose subject is not the record's user",
    "token_minted_after_idp_session_end": (
        "of tokens issued after the identity provider had ended the Supabase session"
    ),
    "authorization_replay_mismatch": (
        "allowed although Vault's authorization history shows they should have been denied"
    ),
    "token_issue_time_unknown": (
        "of tokens without an iat claim, so whether they were issued before the revocation "
        "is unknown"
    ),
    "token_minted_after_logout_scope_unknown": (
        "of tokens issued after a logout or password change whose scope the logs do not record"
    ),
    "new_client_after_revocation": (
        "from a client whose user agent and IP the Supabase session had not shown "
        "before the revocation"
    ),
}


def _uses(count: int) -> str:
    return f"{count:,} token use" + ("" if count == 1 else "s")


def _scope_sentence(facts: ReportFacts) -> str:
    what = facts.selection.describe()
    if facts.uses_total == 0:
        return f"This report covers {what}: the store holds no token use for it."
    tokens = f"{facts.tokens_total:,} token" + ("" if facts.tokens_total == 1 else "s")
    return (
        f"This report covers {what}: {_uses(facts.uses_total)} of {tokens} between "
        f"{format_time(facts.first_use)} and {format_time(facts.last_use)} UTC."
    )


def _revocation_sentences(facts: ReportFacts) -> list[str]:
    if not facts.revocations:
        return [
            "No device-session record in this scope was marked revoked in Vault, so no "
            "token use here is judged against a revocation."
        ]
    described = []
    for record in facts.revocations[:5]:
        by = ""
        if record["revoked_by"]:
            by = (
                ", by the user"
                if record["revoked_by"] == record["user_id"]
                else f", by {record['revoked_by']}"
            )
        described.append(
            f"{_record_name(record)} of user {record['user_id']} at "
            f"{format_time(record['revoked_at'])} UTC{by}"
        )
    if len(facts.revocations) > 5:
        described.append(f"and {len(facts.revocations) - 5:,} more")
    count = len(facts.revocations)
    records = "device-session record was" if count == 1 else "device-session records were"
    return [
        f"{count:,} {records} marked revoked in Vault: {'; '.join(described)}.",
        "Revoking a record changes Vault's own table only: it does not sign the browser "
        "out of Supabase, and tokens already issued stay valid until they expire.",
    ]


def _record_name(record: dict[str, Any]) -> str:
    if record.get("label"):
        return f'"{record["label"]}" ({record["device_session_id"]})'
    return str(record["device_session_id"])


def _verdict_sentences(facts: ReportFacts) -> list[str]:
    by_verdict: dict[str, list[tuple[str, int]]] = {verdict: [] for verdict in VERDICT_ORDER}
    for row in facts.verdict_counts:
        reasons = by_verdict.setdefault(row["verdict"], [])
        for index, (reason, uses) in enumerate(reasons):
            if reason == row["reason"]:
                reasons[index] = (reason, uses + int(row["uses"]))
                break
        else:
            reasons.append((row["reason"], int(row["uses"])))

    order = list(_REASON_WORDS)

    def listed(verdict: str) -> tuple[int, str]:
        reasons = sorted(
            by_verdict.get(verdict, []),
            key=lambda item: (-item[1], order.index(item[0]) if item[0] in order else len(order)),
        )
        parts = [
            f"{_uses(uses)} {_REASON_WORDS.get(reason, f'({reason})')}" for reason, uses in reasons
        ]
        return sum(uses for _, uses in reasons), "; ".join(parts)

    sentences = []
    expected, expected_parts = listed("expected_by_design")
    if expected:
        sentences.append(f"Expected by design: {expected_parts}.")
    anomalous, anomalous_parts = listed("anomalous")
    if anomalous:
        sentences.append(f"Anomalous: {anomalous_parts}.")
    review, review_parts = listed("needs_review")
    if review:
        sentences.append(
            f"Needs review, because the logs hold too little to decide: {review_parts}."
        )
    if not anomalous and not review:
        sentences.append("No token use is anomalous or needs review.")
    return sentences


def _exposure_sentences(facts: ReportFacts) -> list[str]:
    sentences = []
    labels = {record["device_session_id"]: record for record in facts.device_records}
    for window in facts.exposures[:5]:
        record = labels.get(window["device_session_id"], window)
        name = _record_name(record)
        uses = _uses(int(window["uses_in_window"] or 0))
        if window["open_ended"]:
            sentences.append(
                f"The exposure window of {name} is open-ended: Supabase session "
                f"{window['supabase_session_id']} kept minting tokens after the revocation "
                f"at {format_time(window['revoked_at'])} UTC ({uses} in the window)."
            )
        elif window["window_end"] is not None:
            length = human_duration((window["window_end"] - window["revoked_at"]).total_seconds())
            sentences.append(
                f"The exposure window of {name} ran {length}, from "
                f"{format_time(window['revoked_at'])} to {format_time(window['window_end'])} "
                f"UTC ({uses} in it)."
            )
    return sentences


def _next_steps_sentence(facts: ReportFacts) -> str:
    flagged = [row for row in facts.findings if row["verdict"] in ("anomalous", "needs_review")]
    sessions = {row["supabase_session_id"] for row in flagged}
    sessions |= {
        window["supabase_session_id"] for window in facts.exposures if window["open_ended"]
    }
    sessions.discard(None)
    users = sorted({row["user_id"] for row in flagged} - {None})

    steps = []
    if sessions:
        noun = "session" if len(sessions) == 1 else "sessions"
        steps.append(
            f"sign the Supabase {noun} {', '.join(sorted(sessions))} out at the identity "
            "provider, so no new tokens are minted (tokens already issued stay valid until "
            "they expire)"
        )
    if users:
        noun = "user" if len(users) == 1 else "users"
        steps.append(f"reset the credentials of {noun} {', '.join(users)}")
    if facts.rotation:
        names = [row["resource"] for row in facts.rotation[:10]]
        if len(facts.rotation) > 10:
            names.append(f"and {len(facts.rotation) - 10:,} more")
        noun = "secret" if len(facts.rotation) == 1 else "secrets"
        steps.append(
            f"rotate the {len(facts.rotation):,} {noun} read or written after the "
            f"revocation: {', '.join(names)}"
        )
    if not steps and not facts.revocations:
        return "Nothing here calls for action."
    if not steps:
        return (
            "Nothing here calls for action: every token use after a revocation is what "
            "the design allows."
        )
    return "What to do next: " + "; ".join(steps) + "."


# Footer and output


def _settings_rows(settings: Settings) -> list[tuple[str, str]]:
    """The settings that shaped the verdicts; secrets are never settings, only names."""
    return [
        ("store", clean_text(str(settings.db))),
        ("leeway", human_duration(settings.leeway)),
        ("max token lifetime", human_duration(settings.max_token_lifetime)),
        ("audience", clean_text(settings.audience or "(any)")),
        ("issuer", clean_text(settings.issuer or "(any)")),
        ("JWKS file", clean_text(settings.jwks or "(none)")),
        ("JWT secret variable", clean_text(settings.jwt_secret_env or "(none)")),
    ]


def _write_atomically(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as file:
            file.write(text)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
