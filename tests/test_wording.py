"""Honest wording: nothing vault-audit says claims that revoking a device-session
record revoked, invalidated or signed out a token or a Supabase session.

Revoking a record changes Vault's own table only (CONTRACT.md section 1). The
wording check runs over every template, every SQL file and every Python string of
the package, and over the real outputs of the fixture world: the JSON of ``check``
(findings and uses), the HTML report and the terminal timeline. A sentence that
explains by negation ("does not invalidate a JWT") is what the product should say,
so a match right after a negation is allowed.
"""

from __future__ import annotations

import ast
import html
import re
from datetime import datetime, timezone
from pathlib import Path

import pytest

from vault_audit import correlate, findings_output, store
from vault_audit.ingest import ingest_files
from vault_audit.report import Selection, collect_report, most_anomalous_user, write_report
from vault_audit.resources import resource_dir
from vault_audit.settings import Settings
from vault_audit.timeline import render_timeline

PACKAGE = Path(__file__).parent.parent / "vault_audit"
WORLD = Path(__file__).parent.parent / "fixtures" / "world"

_TOKEN = r"(the |a |an |any |its |their |that |this |every |all )?(supabase )?"
_TOKEN += r"(jwts?|(access |bearer )?tokens?|supabase sessions?)"
CLAIMS = [
    re.compile(rf"\binvalidat(e|es|ed|ing) {_TOKEN}\b", re.IGNORECASE),
    re.compile(
        r"\b(jwts?|tokens?)( \w+)? (was|were|is|are|has been|have been|got|gets) "
        r"(revoked|invalidated|signed out)\b",
        re.IGNORECASE,
    ),
    re.compile(
        r"\bsign(s|ed)?( (the|a) (browser|user|device|session|client))? out (of|from) supabase\b",
        re.IGNORECASE,
    ),
    re.compile(
        r"\bsupabase sessions? (was|were|is|are|has been|have been|got|gets) "
        r"(revoked|ended|deleted|invalidated|signed out|terminated)( \w+)? by\b",
        re.IGNORECASE,
    ),
    re.compile(
        r"\b(revok\w+|revocation of) (a |the |this |that )?(vault )?(device[- ]session|record)"
        r"[\w' -]{0,20}? (invalidat\w+|revok\w+|sign\w* out|end(s|ed)?|kill\w*|terminat\w+) "
        rf"{_TOKEN}",
        re.IGNORECASE,
    ),
]
_NEGATIONS = r"(\bnot\b|\bnever\b|n't\b|\bno\b|\bnor\b|\bneither\b|\bwithout\b|\bcannot\b)"
# A negation earlier in the same clause, or inside the passage itself.
NEGATION_BEFORE = re.compile(_NEGATIONS + r"[^.;:]*$", re.IGNORECASE)
NEGATION = re.compile(_NEGATIONS, re.IGNORECASE)


def false_claims(text: str) -> list[str]:
    """Every passage of ``text`` that claims a revoke ended a token or a Supabase
    session, each with the words before it; a claim a negation explains away is not one."""
    flat = re.sub(r"\s+", " ", text)
    found = []
    for pattern in CLAIMS:
        for match in pattern.finditer(flat):
            before = flat[max(0, match.start() - 60) : match.start()]
            if not NEGATION_BEFORE.search(before) and not NEGATION.search(match.group()):
                found.append(flat[max(0, match.start() - 60) : match.end()])
    return found


@pytest.mark.parametrize(
    "sentence",
    [
        "Revoking the device session invalidated the token.",
        "The token was revoked at 12:00.",
        "The user's access token has been invalidated.",
        "Vault signed the browser out of Supabase.",
        "The Supabase session was ended by the revocation.",
        "Revoking the record invalidates any JWT issued before it.",
        "Revocation of the device-session record ended the Supabase session.",
    ],
)
def test_the_wording_check_catches_a_false_claim(sentence: str) -> None:
    assert false_claims(sentence)


@pytest.mark.parametrize(
    "sentence",
    [
        "Revoking a device-session record does not invalidate a JWT.",
        "It does NOT invalidate the token that is already valid.",
        "Vault never invalidates tokens; they stay valid until exp.",
        "Revoking a record does not sign the browser out of Supabase.",
        "Sign the Supabase session out at the identity provider.",
        "Vault's device-session record was marked revoked.",
    ],
)
def test_the_wording_check_allows_what_explains_by_negation(sentence: str) -> None:
    assert false_claims(sentence) == []


def python_strings(path: Path) -> str:
    """Every string constant of a module (docstrings and f-string parts too)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return "\n".join(
        node.value
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and isinstance(node.value, str)
    )


def shipped_texts() -> dict[str, str]:
    texts = {str(path): python_strings(path) for path in sorted(PACKAGE.rglob("*.py"))}
    for folder in ("reports", "queries"):
        for path in sorted(resource_dir(folder).rglob("*")):
            if path.is_file() and path.suffix in {".j2", ".sql", ".html", ".txt", ".css"}:
                texts[str(path)] = path.read_text(encoding="utf-8")
    return texts


def test_no_template_query_or_string_of_the_package_claims_a_revoke_ended_a_token() -> None:
    texts = shipped_texts()
    assert any(name.endswith(".j2") for name in texts)
    assert any(name.endswith(".sql") for name in texts)
    assert len([name for name in texts if name.endswith(".py")]) > 10

    claims = {name: found for name, text in texts.items() if (found := false_claims(text))}
    assert claims == {}


def test_no_output_of_the_fixture_world_claims_a_revoke_ended_a_token(tmp_path: Path) -> None:
    db = tmp_path / "store.duckdb"
    settings = Settings(db=str(db), jwks=str(WORLD / "jwks.json"))
    with store.opened(db) as connection:
        ingest_files(connection, sorted(WORLD.glob("*-*.jsonl")), settings=settings)
        correlate.run_check(connection, settings)
        outputs = {
            detail: findings_output.write_output(
                findings_output.shape(frame, fields), "json", output=None, kind=detail
            )
            for detail, frame, fields in (
                ("findings", correlate.load_findings(connection), findings_output.FINDING_FIELDS),
                ("uses", correlate.load_classified_uses(connection), findings_output.USE_FIELDS),
            )
        }
        user = most_anomalous_user(connection)
        assert user is not None
        facts = collect_report(connection, Selection(user_id=user), settings=settings)
    outputs["timeline"] = render_timeline(facts, width=120)

    day = Selection(
        start=datetime(2025, 3, 10, tzinfo=timezone.utc),
        end=datetime(2025, 3, 11, tzinfo=timezone.utc),
    )
    write_report(settings, day, tmp_path / "report.html")
    page = (tmp_path / "report.html").read_text(encoding="utf-8")
    outputs["report"] = html.unescape(re.sub(r"<[^>]+>", " ", page))

    assert "does not invalidate" in outputs["uses"]  # explanations were there to check
    assert "revoked" in outputs["report"]
    claims = {name: found for name, text in outputs.items() if (found := false_claims(text or ""))}
    assert claims == {}
