"""The merged timeline in a terminal: the report's facts as rich text.

Every value from the logs is attacker controlled. It reaches the terminal only as
plain ``rich.text.Text`` (never parsed as markup), after ``escaping.clean_text`` turned
escape sequences and other control characters into visible escapes.
"""

from __future__ import annotations

import io
import re
from datetime import datetime

from rich import box
from rich.console import Console, Group, RenderableType
from rich.table import Table
from rich.text import Text

from vault_audit.escaping import clean_text
from vault_audit.report import (
    ReportFacts,
    TimelineRow,
    format_time,
    summary_text,
    verdict_words,
)

VERDICT_STYLES = {
    "anomalous": "bold red",
    "needs_review": "bold yellow",
    "expected_by_design": "green",
}
SOURCE_STYLES = {
    "device session": "bold blue",
    "identity provider": "magenta",
    "secret access": "cyan",
    "authorization": "cyan",
    "token": "bold",
}

# The end of a line: padding, and the colour codes rich puts around it. Log values
# never reach this point with an escape character of their own (``clean_text``), so
# the only codes matched are rich's, and they are kept.
_LINE_END = re.compile(r"(?:[ \t]|\x1b\[[0-9;]*m)+$", re.MULTILINE)
_PADDING = re.compile(r"[ \t]+")


def render_timeline(facts: ReportFacts, *, width: int = 100, color: bool = False) -> str:
    """The timeline of ``facts`` as text ``width`` columns wide; ANSI colours only
    when ``color`` (the caller knows whether it writes to a terminal)."""
    buffer = io.StringIO()
    console = Console(
        file=buffer,
        width=width,
        force_terminal=color,
        no_color=not color,
        color_system="standard" if color else None,
        highlight=False,
        emoji=False,
        markup=False,
        legacy_windows=False,
    )
    for renderable in timeline_renderables(facts):
        console.print(renderable)
    return _LINE_END.sub(lambda end: _PADDING.sub("", end.group()), buffer.getvalue())


def timeline_renderables(facts: ReportFacts) -> list[RenderableType]:
    """The heading, the summary and the merged table, for any rich console."""
    heading = Text(f"Device-session timeline: {facts.selection.describe()}", style="bold")
    summary = Group(*(Text(paragraph + "\n") for paragraph in summary_text(facts).split("\n\n")))
    parts: list[RenderableType] = [heading, Text(""), summary, timeline_table(facts)]
    if facts.timeline_total > len(facts.timeline):
        parts.append(
            Text(
                f"showing {len(facts.timeline):,} of {facts.timeline_total:,} rows: the most "
                "severe token rows first, then the earliest",
                style="italic",
            )
        )
    return parts


def timeline_table(facts: ReportFacts) -> Table:
    """One row per event and one per token's uses, in time order; who and where on a
    dimmed second line, so the table reads at 100 columns."""
    table = Table(box=box.SIMPLE_HEAD, expand=True, show_edge=False, pad_edge=False)
    table.add_column("time (UTC)", no_wrap=True, width=19)
    table.add_column("source", width=9)
    table.add_column("verdict", width=12)
    table.add_column("what happened", ratio=1, overflow="fold")

    for row in facts.timeline:
        what = _plain(row.what)
        context = _context(row)
        if context.plain:
            what.append("\n")
            what.append_text(context)
        table.add_row(
            _when(row),
            Text(row.source, style=SOURCE_STYLES.get(row.source, "")),
            _verdict(row),
            what,
        )
    return table


def _context(row: TimelineRow) -> Text:
    """``actor … · device … · IP … · agent …`` for a row, dimmed."""
    parts = [
        f"{name} {clean_text(value)}"
        for name, value in (
            ("actor", row.actor),
            ("device", row.device),
            ("IP", row.ip),
            ("agent", row.user_agent),
        )
        if value
    ]
    return Text(" · ".join(parts), style="dim")


def _when(row: TimelineRow) -> Text:
    text = format_time(row.at)
    if row.last_at and row.last_at != row.at:
        text += f"\nto {_same_day(row.at, row.last_at)}"
    return Text(text)


def _same_day(first: datetime, last: datetime) -> str:
    full = format_time(last)
    return full[11:] if format_time(first)[:10] == full[:10] else full


def _verdict(row: TimelineRow) -> Text:
    if row.source != "token":
        return Text("")
    return Text(verdict_words(row.verdict), style=VERDICT_STYLES.get(row.verdict or "", "dim"))


def _plain(value: str | None) -> Text:
    """A log value as inert text: control characters shown, markup never parsed."""
    return Text(clean_text(value or ""))
