"""`vault-audit check` as scripts meet it (CONTRACT.md section 4): formats, exit codes,
--new-only, suppression, and the golden JSON of a small world.

Set VAULT_AUDIT_UPDATE_GOLDEN=1 to rewrite tests/golden/ after a deliberate change.
"""

from __future__ import annotations

import csv
import io
import json
import os
from collections.abc import Callable
from pathlib import Path

import duckdb
import polars as pl
import pytest
from click.testing import CliRunner, Result

from tests.worldbuilder import World
from vault_audit.cli import main
from vault_audit.findings_output import FINDING_FIELDS, USE_FIELDS

GOLDEN = Path(__file__).parent / "golden"
DAY = "2026-03-01"


def at(clock: str) -> str:
    return f"{DAY}T{clock}Z"


def small_world(path: Path) -> Path:
    """One revoked device session with a residual token, an expired token accepted, a
    token minted after a logout, and a denied use."""
    world = World(path)
    world.register("ds-1", user_id="u-1", supabase_session_id="s-1", at=at("11:00:00"))
    world.revoke("ds-1", at=at("12:00:00"), user_id="u-1", supabase_session_id="s-1")
    residual = world.token(sub="u-1", session_id="s-1", iat=at("11:42:10"))
    world.use(residual, at=at("12:05:31"))
    world.use(residual, at=at("12:20:00"))
    world.use(residual, at=at("12:21:00"), decision="deny")
    expired = world.token(sub="u-1", session_id="s-1", iat=at("11:00:00"))
    world.use(expired, at=at("12:10:00"))
    world.audit("logout", at=at("12:30:00"), actor_id="u-1")
    minted = world.token(sub="u-1", session_id="s-1", iat=at("12:45:00"))
    world.use(minted, at=at("12:50:00"))
    world.close()
    return path


def quiet_world(path: Path) -> Path:
    """A revocation followed only by residual use: nothing to fail on."""
    world = World(path)
    world.register("ds-1", user_id="u-1", supabase_session_id="s-1", at=at("11:00:00"))
    world.revoke("ds-1", at=at("12:00:00"), user_id="u-1", supabase_session_id="s-1")
    world.use(world.token(sub="u-1", session_id="s-1", iat=at("11:42:10")), at=at("12:05:31"))
    world.close()
    return path


def run(*arguments: str) -> Result:
    return CliRunner().invoke(main, ["check", *arguments], catch_exceptions=False)


@pytest.fixture(autouse=True)
def _isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    for name in list(os.environ):
        if name.startswith("VAULT_AUDIT_") and name != "VAULT_AUDIT_UPDATE_GOLDEN":
            monkeypatch.delenv(name)


def assert_golden(name: str, text: str) -> None:
    path = GOLDEN / name
    if os.environ.get("VAULT_AUDIT_UPDATE_GOLDEN"):
        path.parent.mkdir(exist_ok=True)
        path.write_text(text, encoding="utf-8")
    assert text == path.read_text(encoding="utf-8")


# Exit codes.


def test_an_anomalous_finding_exits_1(tmp_path: Path) -> None:
    store = small_world(tmp_path / "store.duckdb")

    assert run("--db", str(store), "--format", "json").exit_code == 1


def test_only_expected_findings_exit_0(tmp_path: Path) -> None:
    store = quiet_world(tmp_path / "store.duckdb")

    result = run("--db", str(store), "--format", "json")

    assert result.exit_code == 0
    assert json.loads(result.stdout)[0]["reason"] == "residual_token_validity"


def test_fail_on_needs_review_and_never(tmp_path: Path) -> None:
    world = World(tmp_path / "store.duckdb")
    world.register("ds-1", user_id="u-1", supabase_session_id="s-1", at=at("11:00:00"))
    world.revoke("ds-1", at=at("12:00:00"), user_id="u-1", supabase_session_id="s-1")
    token = world.token(sub="u-1", session_id="s-1", iat=at("11:42:10"))
    world.use(token, at=at("12:05:31"), user_agent="curl/8.5.0", ip="203.0.113.9")
    world.close()
    store = str(tmp_path / "store.duckdb")

    assert run("--db", store, "--format", "json").exit_code == 0
    assert run("--db", store, "--format", "json", "--fail-on", "needs_review").exit_code == 1
    assert run("--db", store, "--format", "json", "--fail-on", "never").exit_code == 0


def test_fail_on_never_exits_0_even_with_anomalies(tmp_path: Path) -> None:
    store = small_world(tmp_path / "store.duckdb")

    assert run("--db", str(store), "--fail-on", "never", "--format", "csv").exit_code == 0


def test_a_missing_store_is_exit_2_with_one_line(tmp_path: Path) -> None:
    result = run("--db", str(tmp_path / "absent.duckdb"))

    assert result.exit_code == 2
    assert result.stderr.count("\n") == 1
    assert "no vault-audit store" in result.stderr
    assert not (tmp_path / "absent.duckdb").exists()


@pytest.mark.parametrize(
    "arguments",
    [
        ("--format", "parquet"),
        ("--format", "ocsf", "--detail", "uses"),
        ("--since", "yesterday"),
        ("--since", "2026-03-02", "--until", "2026-03-01"),
        ("--fail-on", "sometimes"),
    ],
)
def test_bad_usage_is_exit_2(tmp_path: Path, arguments: tuple[str, ...]) -> None:
    store = small_world(tmp_path / "store.duckdb")

    result = run("--db", str(store), *arguments)

    assert result.exit_code == 2
    assert "Traceback" not in result.output


# Formats.


def test_golden_json_of_findings(tmp_path: Path) -> None:
    store = small_world(tmp_path / "store.duckdb")

    result = run("--db", str(store), "--format", "json", "--fail-on", "never")

    records = json.loads(result.stdout)
    assert [list(record) for record in records] == [list(FINDING_FIELDS)] * len(records)
    assert_golden("check_findings.json", result.stdout)


def test_golden_json_of_uses(tmp_path: Path) -> None:
    store = small_world(tmp_path / "store.duckdb")

    result = run("--db", str(store), "--format", "json", "--detail", "uses")

    records = json.loads(result.stdout)
    assert list(records[0]) == list(USE_FIELDS)
    assert all(record["at"].endswith("Z") for record in records)
    assert_golden("check_uses.json", result.stdout)


def test_a_store_whose_uses_an_older_version_kept_as_a_table_is_checked_again(
    tmp_path: Path,
) -> None:
    store = small_world(tmp_path / "store.duckdb")
    first = run("--db", str(store), "--format", "json", "--detail", "uses").stdout
    with duckdb.connect(str(store)) as connection:
        # As an older vault-audit left it: explanations stored, no facts table.
        connection.execute("create table kept as select * from classified_uses")
        connection.execute("drop view classified_uses")
        connection.execute("drop table classified_use_facts")
        connection.execute("alter table kept rename to classified_uses")

    report = CliRunner().invoke(
        main, ["report", "--db", str(store), "--user", "u-1", "--output", "report.html"]
    )
    again = run("--db", str(store), "--format", "json", "--detail", "uses").stdout

    assert report.exit_code == 2
    assert "made by an older vault-audit" in report.output
    assert again == first


def test_finding_ids_are_stable_across_stores(tmp_path: Path) -> None:
    first = run("--db", str(small_world(tmp_path / "a.duckdb")), "--format", "json")
    second = run("--db", str(small_world(tmp_path / "b.duckdb")), "--format", "json")

    ids = [record["finding_id"] for record in json.loads(first.stdout)]
    assert ids == [record["finding_id"] for record in json.loads(second.stdout)]
    assert all(len(finding_id) == 32 for finding_id in ids)


def test_csv_has_the_contract_columns_and_lists_as_json(tmp_path: Path) -> None:
    store = small_world(tmp_path / "store.duckdb")

    result = run("--db", str(store), "--format", "csv")

    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert list(rows[0]) == list(FINDING_FIELDS)
    assert all(isinstance(json.loads(row["request_ids"]), list) for row in rows)


def test_parquet_goes_to_the_output_file(tmp_path: Path) -> None:
    store = small_world(tmp_path / "store.duckdb")
    target = tmp_path / "findings.parquet"

    result = run("--db", str(store), "--format", "parquet", "--output", str(target))

    frame = pl.read_parquet(target)
    assert result.stdout == ""
    assert frame.columns == list(FINDING_FIELDS)
    assert str(frame.schema["first_at"].time_zone) == "UTC"


def test_the_table_is_readable_at_100_columns(tmp_path: Path) -> None:
    store = small_world(tmp_path / "store.duckdb")

    result = run("--db", str(store))

    assert "expired_token_accept" in result.stdout
    assert max(len(line) for line in result.stdout.splitlines()) <= 100


# OCSF 1.3.0 Detection Finding: the attributes the schema marks required.
OCSF_REQUIRED = {
    "activity_id",
    "category_uid",
    "class_uid",
    "finding_info",
    "metadata",
    "severity_id",
    "time",
    "type_uid",
}
OCSF_REQUIRED_METADATA = {"product", "version"}
OCSF_REQUIRED_FINDING_INFO = {"uid"}


def test_ocsf_output_is_a_detection_finding_per_finding(tmp_path: Path) -> None:
    store = small_world(tmp_path / "store.duckdb")
    findings = json.loads(run("--db", str(store), "--format", "json").stdout)

    events = json.loads(run("--db", str(store), "--format", "ocsf").stdout)

    assert len(events) == len(findings)
    for event, finding in zip(events, findings, strict=True):
        assert set(event) >= OCSF_REQUIRED
        assert set(event["metadata"]) >= OCSF_REQUIRED_METADATA
        assert set(event["finding_info"]) >= OCSF_REQUIRED_FINDING_INFO
        assert (event["class_uid"], event["category_uid"], event["activity_id"]) == (2004, 2, 1)
        assert event["type_uid"] == event["class_uid"] * 100 + event["activity_id"]
        assert event["metadata"]["version"] == "1.3.0"
        assert event["finding_info"]["uid"] == finding["finding_id"]
        assert event["finding_info"]["types"] == [finding["reason"]]
        assert event["severity_id"] in {1, 3, 4}
        assert isinstance(event["time"], int)
    severities = {event["unmapped"]["verdict"]: event["severity_id"] for event in events}
    assert severities == {"anomalous": 4, "needs_review": 3, "expected_by_design": 1}


# --new-only.


def test_new_only_reports_each_finding_once(tmp_path: Path) -> None:
    store = quiet_world(tmp_path / "store.duckdb")

    first = run("--db", str(store), "--format", "json", "--new-only")
    second = run("--db", str(store), "--format", "json", "--new-only")

    assert len(json.loads(first.stdout)) == 1
    assert json.loads(second.stdout) == []


def test_more_uses_of_a_reported_finding_are_not_new_but_a_new_reason_is(
    tmp_path: Path,
) -> None:
    store = tmp_path / "store.duckdb"
    quiet_world(store)
    run("--db", str(store), "--format", "json")

    world = World(store)
    residual = world.connection.execute("select token_sha256 from tokens").fetchone()[0]
    world.use(residual, at=at("12:30:00"))
    world.use(world.token(sub="u-1", session_id="s-1", iat=at("11:00:00")), at=at("12:15:00"))
    world.close()
    result = run("--db", str(store), "--format", "json", "--new-only")

    assert [record["reason"] for record in json.loads(result.stdout)] == ["expired_token_accepted"]
    assert result.exit_code == 1


def test_a_new_device_session_is_a_new_finding(tmp_path: Path) -> None:
    store = tmp_path / "store.duckdb"
    quiet_world(store)
    run("--db", str(store), "--format", "json")

    world = World(store)
    world.register("ds-2", user_id="u-1", supabase_session_id="s-2", at=at("11:00:00"))
    world.revoke("ds-2", at=at("12:00:00"), user_id="u-1", supabase_session_id="s-2")
    world.use(world.token(sub="u-1", session_id="s-2", iat=at("11:42:10")), at=at("12:05:31"))
    world.close()
    result = run("--db", str(store), "--format", "json", "--new-only")

    assert [record["device_session_id"] for record in json.loads(result.stdout)] == ["ds-2"]


# Suppression.


def write_suppressions(path: Path, body: str) -> Path:
    path.write_text(body, encoding="utf-8")
    return path


def test_an_active_suppression_hides_matching_findings(tmp_path: Path) -> None:
    store = small_world(tmp_path / "store.duckdb")
    rules = write_suppressions(
        tmp_path / "suppress.toml",
        '[[suppress]]\nuser = "u-1"\nreason = "expired_token_accepted"\n'
        'justification = "clock skew on the staging proxy"\nexpires = 2999-12-31\n',
    )

    result = run("--db", str(store), "--format", "json", "--suppress", str(rules))

    reasons = [record["reason"] for record in json.loads(result.stdout)]
    assert "expired_token_accepted" not in reasons
    assert "residual_token_validity" in reasons
    assert result.exit_code == 0
    assert "1 suppressed" in result.stderr


def test_an_expired_suppression_warns_and_hides_nothing(tmp_path: Path) -> None:
    store = small_world(tmp_path / "store.duckdb")
    rules = write_suppressions(
        tmp_path / "suppress.toml",
        '[[suppress]]\nreason = "expired_token_accepted"\n'
        'justification = "was a known incident"\nexpires = 2020-01-01\n',
    )

    result = run("--db", str(store), "--format", "json", "--suppress", str(rules))

    assert "expired_token_accepted" in [r["reason"] for r in json.loads(result.stdout)]
    assert "warning" in result.stderr and "expired on 2020-01-01" in result.stderr
    assert result.exit_code == 1


def test_a_suppression_without_justification_is_a_usage_error(tmp_path: Path) -> None:
    store = small_world(tmp_path / "store.duckdb")
    rules = write_suppressions(
        tmp_path / "suppress.toml", '[[suppress]]\nuser = "u-1"\nexpires = 2999-12-31\n'
    )

    result = run("--db", str(store), "--suppress", str(rules))

    assert result.exit_code == 2
    assert "needs a justification" in result.stderr


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("user = 5", "user must be text in quotes"),
        ('reason = ["subject_mismatch"]', "reason must be text in quotes"),
    ],
)
def test_a_suppression_value_that_is_not_text_is_a_usage_error(
    tmp_path: Path, text: str, message: str
) -> None:
    store = small_world(tmp_path / "store.duckdb")
    entry = f'[[suppress]]\n{text}\njustification = "known"\nexpires = 2999-12-31\n'
    rules = write_suppressions(tmp_path / "suppress.toml", entry)

    result = run("--db", str(store), "--suppress", str(rules))

    assert result.exit_code == 2
    assert message in result.stderr
    assert "unexpected error" not in result.stderr


def test_a_suppress_list_of_plain_values_is_a_usage_error(tmp_path: Path) -> None:
    store = small_world(tmp_path / "store.duckdb")
    rules = write_suppressions(tmp_path / "suppress.toml", "suppress = [1]\n")

    result = run("--db", str(store), "--suppress", str(rules))

    assert result.exit_code == 2
    assert "is not a table of keys" in result.stderr


@pytest.mark.parametrize("case", [str.upper, str.lower], ids=["upper", "lower"])
def test_since_limits_the_findings(tmp_path: Path, case: Callable[[str], str]) -> None:
    store = small_world(tmp_path / "store.duckdb")

    # RFC 3339 allows a lowercase t and z.
    result = run("--db", str(store), "--format", "json", "--since", case(at("12:40:00")))

    reasons = [record["reason"] for record in json.loads(result.stdout)]
    assert reasons == ["token_minted_after_logout_scope_unknown"]


# Attacker-controlled text in the terminal.

HOSTILE = "\x1b]0;pwned\x07\x1b[31m[bold red]evil[/]\u202egnp.exe"


def test_terminal_tables_show_hostile_log_values_as_inert_text(tmp_path: Path) -> None:
    world = World(tmp_path / "store.duckdb")
    world.register(
        "ds-1",
        user_id="u-1",
        supabase_session_id="s-1",
        at=at("11:00:00"),
        label=HOSTILE,
        user_agent=HOSTILE,
    )
    world.revoke("ds-1", at=at("12:00:00"), user_id="u-1", supabase_session_id="s-1")
    token = world.token(sub="u-1", session_id="s-1", iat=at("11:42:10"))
    # A new client after the revocation: its IP is quoted in the explanation.
    world.use(token, at=at("12:05:31"), ip="203.0.113.9" + HOSTILE, user_agent="curl/8")
    world.close()
    db = str(tmp_path / "store.duckdb")

    outputs = [
        run("--db", db, "--fail-on", "never").output,
        run("--db", db, "--fail-on", "never", "--detail", "uses").output,
        CliRunner().invoke(main, ["sessions", "--db", db, "--user", "u-1"]).output,
    ]

    for output in outputs:
        assert "\x1b" not in output and "\u202e" not in output and "\x07" not in output
        assert "\\x1b" in output
    # rich printed the [markup] as text (cells fold, so compare without borders).
    unfolded = "".join(c for c in outputs[2] if not c.isspace() and c not in "│┃")
    assert "[boldred]evil[/]" in unfolded
