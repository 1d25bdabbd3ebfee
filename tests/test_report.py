"""The HTML investigation report: its sections, its escaping, its size, its words."""

from __future__ import annotations

import importlib.util
import os
import re
import time
from html.parser import HTMLParser
from pathlib import Path
from xml.etree import ElementTree

import pytest
from click.testing import CliRunner

from tests import report_world
from tests.report_world import (
    ALICE,
    ALICE_DEVICE,
    ALICE_PHONE,
    ALICE_SESSION,
    BOB,
    BOB_DEVICE,
    HOSTILE_AGENT,
    HOSTILE_PATH,
)
from tests.worldbuilder import World
from vault_audit import __version__, store
from vault_audit.charts import ChartData, chart_svg, timeline_chart
from vault_audit.cli import main
from vault_audit.errors import StoreError, UsageError
from vault_audit.report import (
    Selection,
    collect_report,
    human_duration,
    render_report,
    summary_text,
    write_report,
)
from vault_audit.settings import Settings

GOLDEN = Path(__file__).parent / "golden"

# Sentences that would claim a device-session revoke did what it cannot do.
FORBIDDEN_CLAIMS = re.compile(
    r"(token|jwt|supabase session|browser)s?\s+(was|were|is|are|has been|have been|got)\s+"
    r"(revoked|invalidated|signed out|logged out|terminated|ended)"
    r"|(revok\w+|revocation)\s+(invalidat|signed out|sign\w* out|end(s|ed)\s+the\s+supabase)",
    re.IGNORECASE,
)


class Page(HTMLParser):
    """Elements, attributes and text of an HTML page, as a browser would see them."""

    def __init__(self, html: str) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data: str) -> None:
        self.text.append(data)

    def ids(self) -> set[str]:
        return {attrs["id"] for _, attrs in self.tags if attrs.get("id")}

    def all_text(self) -> str:
        return " ".join(self.text)


@pytest.fixture
def world(tmp_path: Path) -> Path:
    return report_world.build_small_world(tmp_path / "world.duckdb")


@pytest.fixture(scope="module")
def alice_html(tmp_path_factory: pytest.TempPathFactory) -> str:
    """Alice's report, rendered once for the tests that only read it."""
    folder = tmp_path_factory.mktemp("alice")
    world = report_world.build_small_world(folder / "world.duckdb")
    return alice_report(world, folder)


def facts_of(path: Path, selection: Selection):  # type: ignore[no-untyped-def]
    with store.opened(path, read_only=True) as connection:
        return collect_report(connection, selection, settings=Settings(db=str(path)))


def alice_report(world: Path, tmp_path: Path) -> str:
    output = tmp_path / "alice.html"
    write_report(Settings(db=str(world)), Selection(user_id=ALICE), output)
    return output.read_text(encoding="utf-8")


def test_the_report_holds_every_section(alice_html: str) -> None:
    page = Page(alice_html)

    assert {"summary", "timeline-chart", "exposure", "rotation", "findings", "events"} <= page.ids()
    assert any(tag == "svg" for tag, _ in page.tags), "the chart is inline SVG"
    assert any(tag == "details" for tag, _ in page.tags), "token uses group into <details>"
    text = page.all_text()
    assert "open-ended" in text
    assert "secret:stripe-key" in text and "secret:signing-key" in text
    assert "logs/vault-events.jsonl" in text and "a" * 64 in text, "footer names files and hashes"
    assert f"vault-audit {__version__}" in text


def test_hostile_log_values_come_out_as_text_not_markup(alice_html: str) -> None:
    html = alice_html
    page = Page(html)

    tags = {tag for tag, _ in page.tags}
    assert "script" not in tags
    assert "img" not in tags
    handlers = [name for _, attrs in page.tags for name in attrs if name.startswith("on")]
    assert handlers == []
    text = page.all_text()
    assert HOSTILE_AGENT in text, "the user agent is shown, as text"
    assert HOSTILE_PATH.split(" ")[0] in text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "<svg onload" not in html.lower()


def test_the_report_refers_to_no_network_resource(alice_html: str) -> None:
    html = alice_html
    page = Page(html)

    for tag, attrs in page.tags:
        for name, value in attrs.items():
            assert not (name in {"src", "href", "xlink:href", "srcset", "action"} and value), tag
            assert "http://" not in (value or "") and "https://" not in (value or ""), (tag, name)
    assert not re.search(r"url\(\s*['\"]?(?!#)", html), "CSS or SVG url() to a resource"
    assert "http://" not in html and "https://" not in html
    assert "@import" not in html


def test_the_wording_never_says_a_token_was_revoked(world: Path, alice_html: str) -> None:
    html = alice_html
    summary = summary_text(facts_of(world, Selection(user_id=ALICE)))

    assert FORBIDDEN_CLAIMS.search(summary) is None, summary
    assert FORBIDDEN_CLAIMS.search(Page(html).all_text()) is None
    assert "does not invalidate a JWT" in html
    assert FORBIDDEN_CLAIMS.search("the token was revoked by the device-session revoke")


@pytest.mark.parametrize(
    ("name", "selection"),
    [
        ("alice", Selection(user_id=ALICE)),
        ("bob", Selection(user_id=BOB)),
        ("laptop_session", Selection(session_id=ALICE_DEVICE)),
    ],
)
def test_the_summary_of_the_small_world_matches_its_golden_file(
    world: Path, name: str, selection: Selection
) -> None:
    summary = summary_text(facts_of(world, selection))
    golden = GOLDEN / f"summary_{name}.txt"

    if os.environ.get("VAULT_AUDIT_UPDATE_GOLDEN"):
        golden.write_text(summary + "\n", encoding="utf-8")
    assert summary + "\n" == golden.read_text(encoding="utf-8")


def test_a_session_report_covers_the_supabase_session_of_a_device_session(world: Path) -> None:
    by_device = facts_of(world, Selection(session_id=ALICE_DEVICE))
    by_session = facts_of(world, Selection(session_id=ALICE_SESSION))

    assert by_device.uses_total == by_session.uses_total == 6
    assert by_device.scope.sessions == (ALICE_SESSION,)
    assert {row.source for row in by_device.timeline} >= {"token", "device session"}
    assert any(row.source == "identity provider" for row in by_device.timeline)


def test_a_window_report_holds_only_what_happened_inside_the_window(world: Path) -> None:
    window = Selection.from_options(start="2024-05-01T12:15:00Z", end="2024-05-01T12:40:00+00:00")
    facts = facts_of(world, window)

    assert facts.uses_total == 2, "req-04 at 12:20 and req-05 at 12:35"
    assert all(
        window.start <= row.at < window.end  # type: ignore[operator]
        for row in facts.timeline
        if row.source != "token"
    )


def test_exactly_one_selection_is_required() -> None:
    with pytest.raises(UsageError, match="exactly one"):
        Selection.from_options()
    with pytest.raises(UsageError, match="exactly one"):
        Selection.from_options(user_id="u", session_id="s")
    with pytest.raises(UsageError, match="both --from and --to"):
        Selection.from_options(start="2024-05-01T00:00:00Z")
    with pytest.raises(UsageError, match="RFC 3339"):
        Selection.from_options(start="yesterday", end="2024-05-01T00:00:00Z")
    with pytest.raises(UsageError, match="later than"):
        Selection.from_options(start="2024-05-02T00:00:00Z", end="2024-05-01T00:00:00Z")


def test_the_report_command_needs_one_selection_and_says_so(world: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    out = str(tmp_path / "r.html")

    both = runner.invoke(
        main, ["report", "--db", str(world), "--user", ALICE, "--session", "x", "--output", out]
    )
    assert both.exit_code == 2
    assert "exactly one of --user ID, --session ID or --from/--to" in both.output
    assert "Traceback" not in both.output

    written = runner.invoke(main, ["report", "--db", str(world), "--user", ALICE, "--output", out])
    assert written.exit_code == 0, written.output
    assert "wrote" in written.output and Path(out).stat().st_size > 10_000


def test_an_unknown_user_is_a_usage_error(world: Path) -> None:
    with pytest.raises(UsageError, match="no record of user"):
        facts_of(world, Selection(user_id="nobody"))


def test_a_store_without_verdicts_asks_for_a_check(tmp_path: Path) -> None:
    path = tmp_path / "raw.duckdb"
    store.connect(path).close()

    with pytest.raises(StoreError, match="vault-audit check"):
        facts_of(path, Selection(user_id=ALICE))


def test_verdicts_of_an_older_version_ask_for_a_new_check(world: Path) -> None:
    with store.opened(world) as connection:
        connection.execute("alter table device_sessions drop column superseded_at")

    with pytest.raises(StoreError, match="made by an older vault-audit .*vault-audit check"):
        facts_of(world, Selection(user_id=ALICE))


def test_the_chart_svg_is_inert_and_escapes_log_values() -> None:
    data = ChartData(
        lanes=["device: <img src=x onerror=alert(1)>", "token 1234"],
        marks=[
            {
                "at": report_world.at("12:00:00"),
                "lane": "token 1234",
                "category": "anomalous",
                "uses": 3,
            },
            {
                "at": report_world.at("12:10:00"),
                "lane": "device: <img src=x onerror=alert(1)>",
                "category": "device-session event",
                "uses": 1,
            },
        ],
        revocations=[{"at": report_world.at("12:05:00"), "label": 'revoked: "><script>x'}],
        start=report_world.at("11:00:00"),
        end=report_world.at("13:00:00"),
    )

    svg = chart_svg(timeline_chart(data))

    assert svg.startswith("<svg")
    assert "http" not in svg
    assert "<img" not in svg and "<script" not in svg
    assert "&lt;img src=x onerror=alert(1)&gt;" in svg


def test_a_report_over_100000_uses_renders_in_seconds_and_stays_small(
    world: Path, tmp_path: Path
) -> None:
    report_world.add_many_uses(world, 100_000, tokens=600)
    output = tmp_path / "big.html"

    started = time.monotonic()
    result = write_report(Settings(db=str(world)), Selection(user_id=ALICE), output)
    seconds = time.monotonic() - started

    assert result.uses == 100_006
    assert seconds < 20, f"took {seconds:.1f} s"
    assert output.stat().st_size < 6 * 1024 * 1024
    text = Page(output.read_text(encoding="utf-8")).all_text()
    assert re.search(r"Showing 500 of [\d,]+ rows", text)
    assert re.search(r"Showing \d+ of [\d,]+ uses", text)
    assert "anomalous" in text, "the capped table keeps the most severe token rows"


def _one_revocation_world(path: Path) -> World:
    """A checked store: one record revoked at 12:00:00, one residual use at 12:05:31."""
    world = World(path)
    world.register("ds-1", user_id="u-1", supabase_session_id="s-1", at="2024-05-01T11:00:00Z")
    world.revoke("ds-1", user_id="u-1", supabase_session_id="s-1", at="2024-05-01T12:00:00Z")
    token = world.token(sub="u-1", session_id="s-1", iat="2024-05-01T11:42:10Z")
    world.use(token, at="2024-05-01T12:05:31Z")
    world.check()
    world.close()
    return world


def test_a_report_reads_the_tables_the_check_materializes(tmp_path: Path) -> None:
    world = _one_revocation_world(tmp_path / "checked.duckdb")

    facts = facts_of(world.path, Selection(user_id="u-1"))
    html = render_report(facts)

    assert facts.uses_total == 1
    assert [row["reason"] for row in facts.verdict_counts] == ["residual_token_validity"]
    assert "expected by design" in Page(html).all_text()
    assert FORBIDDEN_CLAIMS.search(summary_text(facts)) is None


@pytest.mark.skipif(
    importlib.util.find_spec("vault_audit.simulate") is None,
    reason="vault_audit.simulate (simulate_world) is not there yet",
)
def test_the_demo_simulates_checks_and_reports_in_well_under_a_minute(tmp_path: Path) -> None:
    from vault_audit.demo import run_demo

    started = time.monotonic()
    result = run_demo(tmp_path / "demo", users=8, seed=1)
    seconds = time.monotonic() - started

    assert seconds < 45, f"took {seconds:.1f} s"
    assert result.store_path.exists()
    assert result.report_path is not None and result.report_path.exists()
    page = Page(result.report_path.read_text(encoding="utf-8"))
    assert "summary" in page.ids()
    assert any("xdg-open" in line or "open" in line for line in result.lines())
    assert any(line.startswith("or browse to:   file://") for line in result.lines())


def test_a_token_without_a_verdict_is_named_by_the_record_of_its_supabase_session(
    world: Path,
) -> None:
    facts = facts_of(world, Selection(user_id=BOB))

    (group,) = facts.token_groups
    assert group.row["verdict"] is None, "Bob's token uses got no verdict"
    assert group.row["device_session_id"] == BOB_DEVICE
    (row,) = [row for row in facts.timeline if row.source == "token"]
    assert row.device == f"Bob desktop ({BOB_DEVICE})"
    assert any(lane.startswith("token 44444444: Bob desktop") for lane in facts.chart.lanes)
    assert not [lane for lane in facts.chart.lanes if "9a8b7c6d" in lane], "no session-id lane"


def test_no_chart_lane_is_left_without_a_mark_inside_the_time_axis(world: Path) -> None:
    facts = facts_of(world, Selection(user_id=ALICE))
    chart = facts.chart
    assert chart.start is not None and chart.end is not None
    inside = {mark["lane"] for mark in chart.marks if chart.start <= mark["at"] <= chart.end}
    inside |= {span["lane"] for span in chart.spans}

    assert [lane for lane in chart.lanes if lane not in inside] == []
    assert not [lane for lane in chart.lanes if "Phone" in lane], "registered at 09:05 only"
    assert chart.events_outside >= 1
    caption = " ".join(Page(render_report(facts)).all_text().split())
    assert f"{chart.events_outside} events fall outside it" in caption
    assert any(row.device_session_id == ALICE_PHONE for row in facts.timeline), "in the table"


def test_a_long_lane_name_is_not_cut_by_the_chart() -> None:
    lane = "token 0123abcd: Safari on macOS with a long label (eb8ac8ce…)"
    data = ChartData(
        lanes=[lane],
        marks=[{"at": report_world.at("12:00:00"), "lane": lane, "category": "anomalous"}],
        start=report_world.at("11:00:00"),
        end=report_world.at("13:00:00"),
    )

    svg = chart_svg(timeline_chart(data))

    texts = [element.text for element in ElementTree.fromstring(svg).iter() if element.text]
    assert lane in texts


@pytest.mark.parametrize(
    ("seconds", "words"),
    [
        (0, "0 s"),
        (45, "45 s"),
        (60, "1 minute (60 s)"),
        (2530, "42 minutes 10 seconds (2530 s)"),
        (3600, "1 hour (3600 s)"),
        (5400, "1 hour 30 minutes (5400 s)"),
        (604800, "7 days (604800 s)"),
        (315_360_000, "3650 days (315360000 s)"),
    ],
)
def test_a_duration_reads_in_words_with_its_seconds(seconds: int, words: str) -> None:
    assert human_duration(seconds) == words


def test_the_settings_and_a_closed_exposure_window_read_humanly(tmp_path: Path) -> None:
    world = _one_revocation_world(tmp_path / "closed.duckdb")

    facts = facts_of(world.path, Selection(user_id="u-1"))
    text = " ".join(Page(render_report(facts)).all_text().split())

    assert "ran 42 minutes 10 seconds (2530 s), from 2024-05-01 12:00:00" in summary_text(facts)
    assert "42 minutes 10 seconds (2530 s) after the revocation" in text
    assert "a lifetime of 1 hour (3600 s)" in text
    assert "max token lifetime 1 hour (3600 s)" in text


def test_the_rotation_list_says_plainly_what_to_rotate(alice_html: str) -> None:
    text = " ".join(Page(alice_html).all_text().split())

    assert "Secrets read or written by allowed token uses after a revocation: rotate these." in (
        text
    )
    assert "Secrets that allowed token uses read or wrote" not in text


def inlined_css(html: str) -> str:
    style = re.search(r"<style>(.*?)</style>", html, re.DOTALL)
    assert style is not None, "the report inlines its stylesheet"
    return style.group(1)


def print_rules(css: str) -> str:
    """The body of the stylesheet's ``@media print`` block."""
    opening = css.index("{", css.index("@media print"))
    depth = 0
    for position in range(opening, len(css)):
        depth += {"{": 1, "}": -1}.get(css[position], 0)
        if depth == 0:
            return css[opening + 1 : position]
    raise AssertionError("the @media print block is not closed")


def css_rule(css: str, selector: str) -> str:
    """The declarations of the rule whose selector list is exactly ``selector``."""
    found = re.search(r"(?:^|[}\s])" + re.escape(selector) + r"\s*\{([^}]*)\}", css)
    assert found is not None, f"no rule for {selector}"
    return found.group(1)


def length_in_rem(declarations: str, name: str) -> float:
    """The ``name`` length of a rule's declarations, in rem (1rem = 16px)."""
    found = re.search(rf"(?:^|[;\s]){name}:\s*([\d.]+)(rem|px)", declarations)
    assert found is not None, f"no {name} in {declarations!r}"
    return float(found.group(1)) / (16 if found.group(2) == "px" else 1)


def test_the_printed_report_is_a4_landscape_with_every_token_use_shown(
    alice_html: str,
) -> None:
    css = inlined_css(alice_html)
    rules = print_rules(css)

    assert re.search(r"size:\s*A4 landscape", css_rule(rules, "@page"))
    assert "content-visibility: visible" in css_rule(rules, "details::details-content")
    assert not re.search(r"table\.uses\s*\{[^}]*display:\s*none", rules), "uses are printed"
    # A4 landscape less its 12 mm margins is about 64rem; the uses table's fixed
    # columns and its indent must leave most of that to paths and explanations.
    fixed = sum(
        length_in_rem(css_rule(css, f"col.{name}"), "width") for name in ("u-time", "u-verdict")
    )
    indent = length_in_rem(css_rule(rules, "tr.uses-row > td"), "padding-left")
    assert fixed + indent < 64 / 2
