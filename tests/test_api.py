"""The notebook surface: ``vault_audit.open``, its questions, its docstring examples,
and a read-only handle that works beside a writer in another process."""

from __future__ import annotations

import datetime as dt
import doctest
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import polars as pl
import pytest

import vault_audit
from vault_audit import api, report, store
from vault_audit.correlate import run_check
from vault_audit.errors import StoreBusyError, StoreError, UsageError
from vault_audit.ingest import ingest_files
from vault_audit.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
WORLD = ROOT / "fixtures" / "world"
KINDS = ("vault-events", "device-sessions", "supabase-audit", "supabase-sessions", "access-log")
FILES = [WORLD / f"{kind}.jsonl" for kind in KINDS]

# The fixture world's lost laptop: its owner revokes its record at noon.
LAPTOP_USER = "e7b8a040-c924-44bb-b44e-a188ade0a0f0"
LAPTOP_RECORD = "23a5fb0f-5ac5-4383-83b0-22c57e7dab75"
LAPTOP_SESSION = "5de7270f-7c4a-4ba6-959a-2f9621471d2c"
NOON = dt.datetime(2025, 3, 10, 12, tzinfo=dt.timezone.utc)

# A writer in another process: holds the store open for writing, says so, then keeps it
# for the seconds given, or until its standard input closes when none are given.
WRITER = """
import sys, time, duckdb
connection = duckdb.connect(sys.argv[1])
print("holding", flush=True)
if len(sys.argv) > 2:
    time.sleep(float(sys.argv[2]))
else:
    sys.stdin.read()
connection.close()
"""


def build_fixture_store(path: Path) -> Path:
    """The fixture world ingested with its JWKS and checked, as the CLI would."""
    settings = Settings(db=str(path), jwks=str(WORLD / "jwks.json"))
    with store.opened(path) as connection:
        ingest_files(connection, FILES, settings=settings)
        run_check(connection, settings)
    return path


@pytest.fixture(scope="module")
def fixture_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_fixture_store(tmp_path_factory.mktemp("api") / "store.duckdb")


def start_writer(path: Path, seconds: float | None = None) -> subprocess.Popen[str]:
    arguments = [sys.executable, "-c", WRITER, str(path)]
    if seconds is not None:
        arguments.append(str(seconds))
    writer = subprocess.Popen(
        arguments, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    assert writer.stdout is not None and writer.stderr is not None
    assert writer.stdout.readline().strip() == "holding", writer.stderr.read()
    return writer


def test_every_docstring_example_runs_against_the_fixture_store(fixture_store: Path) -> None:
    result = doctest.testmod(api, extraglobs={"path": str(fixture_store)}, report=True)
    assert result.failed == 0
    assert result.attempted >= 40


def test_the_public_names_are_exported_in_one_place() -> None:
    assert vault_audit.__all__ == [
        "AuditStore",
        "StoreBusyError",
        "StoreError",
        "UsageError",
        "VaultAuditError",
        "__version__",
        "open",
    ]
    assert vault_audit.open is api.open
    assert vault_audit.AuditStore is api.AuditStore
    assert vault_audit.StoreBusyError is StoreBusyError
    assert {"open", "AuditStore"} <= set(dir(vault_audit))
    with pytest.raises(AttributeError):
        vault_audit.no_such_name  # noqa: B018


def test_importing_the_package_leaves_the_notebook_surface_unloaded() -> None:
    code = (
        "import sys, vault_audit; print('vault_audit.api' in sys.modules, 'polars' in sys.modules)"
    )
    printed = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert printed.split() == ["False", "False"]


def test_the_frames_answer_the_questions_of_the_lost_laptop(fixture_store: Path) -> None:
    with vault_audit.open(fixture_store) as audit:
        records = audit.device_sessions(user_id=LAPTOP_USER)
        windows = audit.exposure_windows(user_id=LAPTOP_USER)
        uses = audit.classified_uses(verdict="expected_by_design", reason="residual_token_validity")
        anomalous = audit.findings(verdict="anomalous")

    assert set(records["user_id"]) == {LAPTOP_USER}
    revoked = records.filter(pl.col("revoked_at").is_not_null())
    assert revoked.select("device_session_id", "revoked_at").row(0) == (LAPTOP_RECORD, NOON)
    assert windows.select("device_session_id", "open_ended").row(0) == (LAPTOP_RECORD, True)
    assert uses.height == 13 and set(uses["reason"]) == {"residual_token_validity"}
    assert "at" in uses.columns and "used_at" not in uses.columns
    assert set(anomalous["verdict"]) == {"anomalous"}
    assert anomalous.height > 0


def test_the_frames_carry_utc_times(fixture_store: Path) -> None:
    with vault_audit.open(fixture_store) as audit:
        frames = [audit.findings(), audit.token_uses(), audit.timeline(user_id=LAPTOP_USER)]
    for frame in frames:
        zones = {dtype.time_zone for dtype in frame.schema.values() if dtype == pl.Datetime}
        assert zones == {"UTC"}


def test_the_token_uses_of_a_record_are_those_of_its_supabase_session(
    fixture_store: Path,
) -> None:
    with vault_audit.open(fixture_store) as audit:
        by_record = audit.token_uses(device_session_id=LAPTOP_RECORD)
        by_session = audit.token_uses(supabase_session_id=LAPTOP_SESSION)
        unknown = audit.token_uses(device_session_id="no-such-record")
        with pytest.raises(UsageError, match="not both"):
            audit.token_uses(supabase_session_id=LAPTOP_SESSION, device_session_id=LAPTOP_RECORD)

    assert by_record.height > 0
    assert by_record["request_id"].to_list() == by_session["request_id"].to_list()
    assert unknown.height == 0 and unknown.columns == by_record.columns
    assert by_record["at"].is_sorted()


def test_the_timeline_is_the_reports_timeline(fixture_store: Path) -> None:
    with vault_audit.open(fixture_store) as audit:
        frame = audit.timeline(user_id=LAPTOP_USER)
    with store.opened(fixture_store, read_only=True) as connection:
        facts = report.collect_report(connection, report.Selection(user_id=LAPTOP_USER))

    assert frame["what"].to_list() == [row.what for row in facts.timeline]
    assert frame["at"].to_list() == [row.at for row in facts.timeline]
    tokens = frame.filter(pl.col("source") == "token")
    assert tokens["uses"].sum() == facts.uses_total


def test_a_time_window_selects_the_timeline_and_must_be_whole(fixture_store: Path) -> None:
    with vault_audit.open(fixture_store) as audit:
        window = audit.timeline(start=NOON, end=NOON + dt.timedelta(minutes=30))
        with pytest.raises(UsageError, match="both start and end"):
            audit.timeline(start=NOON)
        with pytest.raises(UsageError, match="time zone"):
            audit.timeline(start=NOON.replace(tzinfo=None), end=NOON.replace(tzinfo=None))
        with pytest.raises(UsageError, match="a summary needs"):
            audit.summary()

    events = window.filter(pl.col("source") != "token")
    assert events.height > 0
    assert events["at"].min() >= NOON
    assert events["at"].max() < NOON + dt.timedelta(minutes=30)


def test_the_timeline_chart_is_the_reports_altair_chart(fixture_store: Path) -> None:
    with vault_audit.open(fixture_store) as audit:
        chart = audit.timeline_chart(session_id=LAPTOP_RECORD)
    spec = chart.to_dict()
    assert spec["$schema"].startswith("https://vega.github.io/schema/vega-lite/")
    assert len(spec["layer"]) >= 4


def test_a_filter_value_is_bound_not_written_into_sql(fixture_store: Path) -> None:
    with vault_audit.open(fixture_store) as audit:
        found = audit.classified_uses(reason="x' or '1'='1")
        by_parameter = audit.sql(
            "select count(*) from findings where verdict = $v", {"v": "anomalous"}
        )
    assert found.height == 0
    assert by_parameter.item() == 8


def test_an_unknown_verdict_is_refused_with_the_three_verdicts(fixture_store: Path) -> None:
    with vault_audit.open(fixture_store) as audit, pytest.raises(UsageError) as refused:
        audit.findings(verdict="suspicious")
    assert "anomalous, needs_review, expected_by_design" in str(refused.value)


def test_a_read_only_handle_holds_no_connection_between_calls(fixture_store: Path) -> None:
    with vault_audit.open(fixture_store) as audit:
        audit.findings()
        # A writer in another process gets the store at once: nothing holds it.
        writer = start_writer(fixture_store, seconds=0)
        assert writer.wait(timeout=30) == 0


def test_a_reader_waits_for_a_writer_in_another_process_then_answers(
    fixture_store: Path,
) -> None:
    audit = vault_audit.open(fixture_store, busy_timeout=30)
    writer = start_writer(fixture_store, seconds=1.0)
    started = time.monotonic()
    try:
        findings = audit.findings()
    finally:
        writer.wait(timeout=30)
        audit.close()

    assert time.monotonic() - started >= 0.5
    assert findings.height == 37


def test_a_reader_says_the_store_is_busy_when_the_writer_stays(fixture_store: Path) -> None:
    audit = vault_audit.open(fixture_store, busy_timeout=0.3)
    writer = start_writer(fixture_store)
    try:
        with pytest.raises(StoreBusyError) as busy:
            audit.findings()
    finally:
        writer.communicate("", timeout=30)
        audit.close()

    message = str(busy.value)
    assert "is busy: another process holds it for writing" in message
    assert "waited 0.3 s" in message and "busy_timeout" in message
    assert "\n" not in message
    assert audit.closed


def test_a_reader_beside_a_writer_of_the_same_process_is_told_why(tmp_path: Path) -> None:
    path = tmp_path / "store.duckdb"
    with vault_audit.open(path, read_only=False), pytest.raises(StoreBusyError) as busy:
        vault_audit.open(path)
    assert "this Python process already has" in str(busy.value)
    assert "cannot open it for reading" in str(busy.value)


def test_a_relation_stays_lazy_until_the_handle_closes(fixture_store: Path) -> None:
    audit = vault_audit.open(fixture_store)
    relation = audit.relation("select * from token_uses where decision = ?", ["deny"])
    assert isinstance(relation, duckdb.DuckDBPyRelation)
    assert relation.aggregate("count(*)").fetchall() == [(47,)]
    audit.close()

    with pytest.raises(duckdb.Error):
        relation.fetchall()
    writer = start_writer(fixture_store, seconds=0)
    assert writer.wait(timeout=30) == 0


def test_a_read_write_handle_ingests_and_checks_like_the_command(
    tmp_path: Path, fixture_store: Path
) -> None:
    with vault_audit.open(tmp_path / "new.duckdb", read_only=False) as audit:
        results = audit.ingest(FILES, jwks=str(WORLD / "jwks.json"))
        checked = audit.check()
        mine = audit.findings()
        audit.check(max_token_lifetime=10 * 365 * 86400)
        relaxed = audit.findings()
    with vault_audit.open(fixture_store) as reference:
        theirs = reference.findings()

    assert [result.kind for result in results] == list(KINDS)
    assert checked.findings == 37
    assert sorted(mine["finding_id"]) == sorted(theirs["finding_id"])
    assert "lifetime_exceeds_policy" in set(mine["reason"])
    assert "lifetime_exceeds_policy" not in set(relaxed["reason"])


def test_a_read_only_handle_refuses_to_write(fixture_store: Path) -> None:
    with vault_audit.open(fixture_store) as audit:
        with pytest.raises(UsageError, match=r"read_only=False"):
            audit.check()
        with pytest.raises(UsageError, match=r"read_only=False"):
            audit.ingest(FILES)
        with pytest.raises(duckdb.Error):
            audit.sql("delete from findings")
        assert audit.findings().height == 37


def test_a_store_without_verdicts_says_to_run_the_check(tmp_path: Path) -> None:
    path = tmp_path / "unchecked.duckdb"
    with vault_audit.open(path, read_only=False) as audit:
        audit.ingest(FILES[:1])
    with (
        vault_audit.open(path) as audit,
        pytest.raises(StoreError, match="run `vault-audit check`"),
    ):
        audit.findings()


def test_a_missing_store_is_refused_when_opened(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="no vault-audit store"):
        vault_audit.open(tmp_path / "missing.duckdb")
    assert not (tmp_path / "missing.duckdb").exists()


def test_a_closed_handle_refuses_questions(fixture_store: Path) -> None:
    audit = vault_audit.open(fixture_store)
    audit.close()
    audit.close()
    with pytest.raises(UsageError, match="closed"):
        audit.findings()
    assert "closed" in repr(audit)


def test_an_unknown_setting_is_refused(fixture_store: Path) -> None:
    with pytest.raises(UsageError, match="unknown setting 'leway'"):
        vault_audit.open(fixture_store, leway=5)
    with vault_audit.open(fixture_store, leeway=5, busy_timeout=1) as audit:
        assert audit.settings.leeway == 5 and audit.settings.db == str(fixture_store)
