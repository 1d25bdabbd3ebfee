"""The report of the committed fixture world (fixtures/world): its summary pinned by a
golden file, and the lost-laptop user's devices named one way across the report."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from xml.etree import ElementTree

import pytest

from tests.test_report import Page
from tests.test_simulate import ingest_and_check
from vault_audit import store
from vault_audit.charts import chart_svg, timeline_chart
from vault_audit.report import (
    ReportFacts,
    Selection,
    collect_report,
    most_anomalous_user,
    render_report,
    summary_text,
)
from vault_audit.settings import Settings

WORLD = Path(__file__).resolve().parent.parent / "fixtures" / "world"
GOLDEN = Path(__file__).resolve().parent / "golden"


@dataclass(frozen=True)
class LostLaptop:
    """The report of the user the fixture README's lost-laptop scenario is about."""

    facts: ReportFacts
    html: str
    laptop: dict[str, object]


@pytest.fixture(scope="module")
def lost_laptop(tmp_path_factory: pytest.TempPathFactory) -> LostLaptop:
    folder = tmp_path_factory.mktemp("fixture_world")
    ingest_and_check(WORLD, folder)
    path = folder / "store.duckdb"
    settings = Settings(db=str(path), jwks=str(WORLD / "jwks.json"))
    with store.opened(path, read_only=True) as connection:
        user = most_anomalous_user(connection)
        assert user is not None
        facts = collect_report(connection, Selection(user_id=user), settings=settings)

    # The README: the owner revokes the laptop's record at 12:00:00 and the laptop's
    # Supabase session keeps minting tokens. The most anomalous user is that owner.
    laptops = [
        record
        for record in facts.revocations
        if record["revoked_at"].strftime("%H:%M:%S") == "12:00:00"
    ]
    assert len(laptops) == 1, facts.revocations
    return LostLaptop(facts, render_report(facts), laptops[0])


def test_the_summary_of_the_fixture_world_matches_its_golden_file(
    lost_laptop: LostLaptop,
) -> None:
    summary = summary_text(lost_laptop.facts)
    golden = GOLDEN / "summary_fixture_world.txt"

    if os.environ.get("VAULT_AUDIT_UPDATE_GOLDEN"):
        golden.write_text(summary + "\n", encoding="utf-8")
    assert summary + "\n" == golden.read_text(encoding="utf-8")


def test_every_token_of_the_laptop_session_is_named_by_the_laptop_record(
    lost_laptop: LostLaptop,
) -> None:
    facts, laptop = lost_laptop.facts, lost_laptop.laptop
    session = laptop["supabase_session_id"]
    groups = [group for group in facts.token_groups if group.row["supabase_session_id"] == session]
    unjudged = [group for group in groups if group.row["verdict"] is None]

    assert unjudged, "the laptop's tokens before the revocation have no verdict"
    assert {group.row["device_session_id"] for group in groups} == {laptop["device_session_id"]}
    device = facts.label_of(str(laptop["device_session_id"]))
    assert device == f"{laptop['label']} ({laptop['device_session_id']})"
    token_rows = [row for row in facts.timeline if row.token in groups]
    assert token_rows and {row.device for row in token_rows} == {device}
    event_rows = [
        row
        for row in facts.timeline
        if row.source == "device session" and row.device_session_id == laptop["device_session_id"]
    ]
    assert event_rows and {row.device for row in event_rows} == {device}

    lane_device = f"{laptop['label']} ({str(laptop['device_session_id'])[:8]}…)"
    token_lanes = [lane for lane in facts.chart.lanes if lane.startswith("token ")]
    assert not [lane for lane in token_lanes if str(session)[:8] in lane], "no session-id lane"
    assert sum(lane.endswith(lane_device) for lane in token_lanes) == len(groups)


def test_every_lane_name_of_the_chart_is_shown_whole(lost_laptop: LostLaptop) -> None:
    lanes = lost_laptop.facts.chart.lanes
    svg = chart_svg(timeline_chart(lost_laptop.facts.chart))
    texts = {element.text for element in ElementTree.fromstring(svg).iter() if element.text}

    assert all(len(lane) <= 60 for lane in lanes), lanes
    assert [lane for lane in lanes if lane not in texts] == []


def test_a_token_lifetime_reads_in_days_with_its_seconds(lost_laptop: LostLaptop) -> None:
    text = " ".join(Page(lost_laptop.html).all_text().split())

    assert "a lifetime of 7 days (604800 s)" in text
    assert "a lifetime of 1 hour (3600 s)" in text
