"""The terminal timeline: readable at 100 columns, colours only on a terminal, and no
log value able to drive the terminal or inject rich markup."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from tests import report_world
from tests.report_world import ALICE, ALICE_SESSION, HOSTILE_LABEL
from vault_audit import store
from vault_audit.cli import main
from vault_audit.report import Selection, collect_report
from vault_audit.settings import Settings
from vault_audit.timeline import render_timeline

TERMINAL_ATTACK = "curl/8.0 \x1b[2J\x1b]0;owned\x07\x9b31m\u202eevil"
MARKUP_ATTACK = "[bold red]fake[/bold red] [link=file:///etc/passwd]click[/link]"


@pytest.fixture
def world(tmp_path: Path) -> Path:
    path = report_world.build_small_world(tmp_path / "world.duckdb")
    with store.opened(path) as connection:
        connection.execute(
            "update token_uses set user_agent = ? where request_id = 'req-05'", [TERMINAL_ATTACK]
        )
        connection.execute(
            "update token_uses set ip = ? where request_id = 'req-04'", [MARKUP_ATTACK]
        )
    return path


def timeline_of(path: Path, *, color: bool, width: int = 100) -> str:
    with store.opened(path, read_only=True) as connection:
        facts = collect_report(connection, Selection(user_id=ALICE), settings=Settings())
    return render_timeline(facts, width=width, color=color)


def test_the_timeline_fits_in_100_columns(world: Path) -> None:
    text = timeline_of(world, color=False)

    lines = text.splitlines()
    assert max(len(line) for line in lines) <= 100
    assert "marked revoked" in text
    assert "anomalous" in text and "needs review" in text


def test_no_line_of_the_timeline_ends_in_padding(world: Path) -> None:
    plain = timeline_of(world, color=False)
    coloured = timeline_of(world, color=True)

    assert [line for line in plain.splitlines() if line != line.rstrip()] == []
    padded = re.compile(r"[ \t]+(\x1b\[[0-9;]*m)*$")
    assert [line for line in coloured.splitlines() if padded.search(line)] == []
    assert "\x1b[" in coloured, "the colours stay"
    assert "\\x1b[2J" in timeline_of(world, color=True, width=300), "escapes stay visible"


def test_the_timeline_command_prints_no_padding_at_100_columns(
    world: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "100")
    result = CliRunner().invoke(main, ["timeline", "--db", str(world), "--user", ALICE])

    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert len(lines) > 20
    assert [line for line in lines if line != line.rstrip()] == []


def test_the_timeline_has_colours_only_when_asked(world: Path) -> None:
    assert "\x1b[" not in timeline_of(world, color=False)
    assert "\x1b[" in timeline_of(world, color=True)


def test_escape_sequences_in_log_values_are_shown_not_sent(world: Path) -> None:
    text = timeline_of(world, color=True)

    for raw in ("\x1b[2J", "\x1b]0", "\x07", "\x9b", "\u202e"):
        assert raw not in text
    plain = timeline_of(world, color=False, width=300)
    assert "\\x1b[2J" in plain
    assert "\\u202e" in plain


def test_rich_markup_in_log_values_is_printed_as_it_is(world: Path) -> None:
    text = timeline_of(world, color=True, width=300)

    assert "[bold red]fake[/bold red]" in text
    assert "[link=file:///etc/passwd]" in text
    assert "\x1b]8;" not in text, "no terminal hyperlink"
    assert HOSTILE_LABEL in text


def test_the_timeline_command_prints_plain_text_when_piped(world: Path) -> None:
    result = CliRunner().invoke(main, ["timeline", "--db", str(world), "--session", ALICE_SESSION])

    assert result.exit_code == 0, result.output
    assert "\x1b" not in result.output
    assert "Device-session timeline: session" in result.output
    assert max(len(line) for line in result.output.splitlines()) <= 100


def test_the_timeline_command_needs_a_user_or_a_session(world: Path) -> None:
    result = CliRunner().invoke(main, ["timeline", "--db", str(world)])

    assert result.exit_code == 2
    assert "choose exactly one" in result.output
