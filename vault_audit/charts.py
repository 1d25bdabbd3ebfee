"""The timeline chart of an investigation: every source on one time axis.

``timeline_chart`` builds a Vega-Altair chart from plain rows (a notebook can call it
on the rows of ``report.collect_report``), and ``chart_svg`` renders it offline with
vl-convert into SVG that a report can inline: no script, no external URL, and every
text from the logs escaped by Vega's own SVG writer.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from xml.etree import ElementTree

import altair as alt

# One colour per verdict, then one per kind of event; the legend lists them in order.
CATEGORY_COLOURS: dict[str, str] = {
    "anomalous": "#c62828",
    "needs review": "#ef8a00",
    "expected by design": "#2e7d32",
    "not judged": "#8a8a8a",
    "device-session event": "#1565c0",
    "identity-provider entry": "#7b1fa2",
    "Vault event": "#00838f",
}

VERDICT_CATEGORY = {
    "anomalous": "anomalous",
    "needs_review": "needs review",
    "expected_by_design": "expected by design",
}

_LANE_HEIGHT = 26
# Lane names are kept short by whoever builds the rows (the report: a label and an id
# prefix); the axis shows them whole up to this width instead of cutting them again.
LANE_LABEL_LIMIT = 480
_FONT = "DejaVu Sans, Verdana, Geneva, sans-serif"
_WIDTH = 900
# url() that points anywhere but into the same document.
_FETCHING_URL = re.compile(r"""url\(\s*['"]?(?!#)""", re.IGNORECASE)
_ACTIVE_TAGS = {"script", "foreignobject", "iframe", "image", "use", "a"}
_NAMESPACE = re.compile(r'\s+xmlns(?::\w+)?="[^"]*"')


class ChartError(RuntimeError):
    """The renderer produced SVG that is not safe to inline."""


@dataclass
class ChartData:
    """The rows a timeline chart draws; times are timezone-aware UTC datetimes.

    - ``lanes``: the y-axis rows, top to bottom.
    - ``marks``: ``{at, lane, category, uses, what}``; ``category`` is a key of
      ``CATEGORY_COLOURS``, ``uses`` how many token uses one mark stands for (1 for
      an event).
    - ``spans``: ``{lane, start, end}``, the first to the last use of a token.
    - ``revocations``: ``{at, label}``, drawn as dashed rules across all lanes.
    - ``exposures``: ``{start, end, label, open_ended}``, shaded exposure windows;
      an open-ended one is drawn to ``end``, the end of the chart.
    - ``events_outside``: how many events fall outside ``start`` to ``end`` and so
      have no mark (the caption says so).
    """

    lanes: list[str] = field(default_factory=list)
    marks: list[dict[str, Any]] = field(default_factory=list)
    spans: list[dict[str, Any]] = field(default_factory=list)
    revocations: list[dict[str, Any]] = field(default_factory=list)
    exposures: list[dict[str, Any]] = field(default_factory=list)
    start: datetime | None = None
    end: datetime | None = None
    events_outside: int = 0


def timeline_chart(data: ChartData) -> alt.LayerChart:
    """The layered timeline: exposure windows, revocations, token spans, then marks."""
    lanes = data.lanes or ["(nothing in scope)"]
    x_scale = alt.Scale(type="utc", domain=_domain(data))
    x_axis = alt.Axis(title="time (UTC)", format=_time_format(data), labelOverlap=True, grid=True)
    y_axis = alt.Axis(title=None, labelLimit=LANE_LABEL_LIMIT)
    y = alt.Y("lane:N", sort=lanes, scale=alt.Scale(domain=lanes), axis=y_axis)
    colours = alt.Scale(domain=list(CATEGORY_COLOURS), range=list(CATEGORY_COLOURS.values()))

    exposures = (
        alt.Chart(_values(data.exposures))
        .mark_rect(color="#ef8a00", opacity=0.12, aria=False, clip=True)
        .encode(x=alt.X("start:T", scale=x_scale, axis=x_axis), x2="end:T")
    )
    revocations = (
        alt.Chart(_values(data.revocations))
        .mark_rule(color="#111111", strokeDash=[5, 3], strokeWidth=1.5, aria=False, clip=True)
        .encode(x=alt.X("at:T", scale=x_scale))
    )
    revocation_labels = (
        alt.Chart(_values(data.revocations))
        .mark_text(align="left", baseline="top", dx=3, dy=2, fontSize=10, color="#111111")
        .encode(x=alt.X("at:T", scale=x_scale), y=alt.value(0), text="label:N")
    )
    spans = (
        alt.Chart(_values(data.spans))
        .mark_rule(color="#9e9e9e", strokeWidth=2, aria=False, clip=True)
        .encode(x=alt.X("start:T", scale=x_scale), x2="end:T", y=y)
    )
    marks = (
        alt.Chart(_values(data.marks))
        .mark_circle(opacity=0.85, stroke="#ffffff", strokeWidth=0.5, aria=False, clip=True)
        .encode(
            x=alt.X("at:T", scale=x_scale, axis=x_axis),
            y=y,
            color=alt.Color(
                "category:N",
                scale=colours,
                legend=alt.Legend(
                    title="verdict or event", orient="bottom", columns=4, columnPadding=16
                ),
            ),
            size=alt.Size(
                "uses:Q",
                scale=alt.Scale(type="sqrt", range=[40, 400], zero=False),
                legend=_size_legend(data),
            ),
        )
    )

    layers = [exposures, revocations, spans, marks, revocation_labels]
    present = [
        layer
        for layer, rows in zip(
            layers,
            [data.exposures, data.revocations, data.spans, data.marks, data.revocations],
            strict=True,
        )
        if rows
    ]
    if not any(layer is marks for layer in present):
        present.append(marks)

    return (
        alt.layer(*present)
        .properties(width=_WIDTH, height=max(80, _LANE_HEIGHT * len(lanes)))
        # A wide font for Vega's text measurement: where a reader's browser lacks it,
        # the narrower fallback still fits the space measured for the labels.
        .configure(font=_FONT, padding={"left": 16, "right": 16, "top": 8, "bottom": 8})
        .configure_view(stroke="#cccccc")
        .configure_axis(labelFontSize=11, titleFontSize=11)
        .configure_legend(labelFontSize=11, titleFontSize=11, symbolType="circle")
    )


def _size_legend(data: ChartData) -> alt.Legend | None:
    """A legend for dot sizes only where a dot stands for more than one use."""
    most = max((int(mark.get("uses") or 1) for mark in data.marks), default=1)
    if most <= 1:
        return None
    values = sorted({1, max(1, most // 10), most})
    return alt.Legend(title="token uses per dot", orient="bottom", values=values, format=",d")


def chart_svg(chart: alt.TopLevelMixin) -> str:
    """Render ``chart`` to SVG offline, ready to inline in an HTML page.

    Raises ``ChartError`` when the SVG holds a script, a foreign object or a URL,
    which Vega's output never should: the report inlines it unescaped.
    """
    import vl_convert

    svg = vl_convert.vegalite_to_svg(chart.to_dict(validate=False))

    # Inline SVG in HTML needs no namespace declarations; dropping them leaves the
    # page without a single URL.
    svg = _NAMESPACE.sub("", svg, count=4)
    _check_inert(svg)
    return svg


def _check_inert(svg: str) -> None:
    """Refuse SVG with active elements or anything that could fetch a resource."""
    try:
        root = ElementTree.fromstring(svg)
    except ElementTree.ParseError as error:
        raise ChartError(f"the chart renderer produced unreadable SVG: {error}") from None
    if root.tag != "svg":
        raise ChartError("the chart renderer produced something other than SVG")

    for element in root.iter():
        if element.tag.lower() in _ACTIVE_TAGS:
            raise ChartError(f"the chart SVG holds a <{element.tag}> element")
        for name, value in element.attrib.items():
            if name.lower().endswith(("href", "src")) or name.lower().startswith("on"):
                raise ChartError(f"the chart SVG holds a {name} attribute")
            if _FETCHING_URL.search(value):
                raise ChartError("the chart SVG refers to an outside resource")


def _values(rows: list[dict[str, Any]]) -> alt.Data:
    return alt.Data(
        values=[{key: _json_value(value) for key, value in row.items()} for row in rows]
    )


def _json_value(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat().replace("+00:00", "Z")
    return value


def _domain(data: ChartData) -> list[str] | alt.UndefinedType:
    if data.start is None or data.end is None:
        return alt.Undefined
    return [_json_value(data.start), _json_value(data.end)]


def _time_format(data: ChartData) -> str:
    short = data.start is not None and data.end is not None
    if short and (data.end - data.start).total_seconds() <= 36 * 3600:  # type: ignore[operator]
        return "%H:%M"
    return "%b %d %H:%M"
