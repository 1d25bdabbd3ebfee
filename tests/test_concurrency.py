"""Concurrent jobs on one store: each finishes, or says the store is busy; nothing is
lost, doubled or corrupted.

DuckDB lets one process write a file at a time. A second vault-audit process waits
up to ``busy_timeout`` seconds for it, then exits 2 with one line saying the store
is busy. A read-only ``vault_audit.open`` handle holds no connection between calls,
so it never keeps a writer out for long.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

import vault_audit
from tests.test_crash_safety import write_access_log
from vault_audit import correlate, store
from vault_audit.errors import StoreBusyError
from vault_audit.ingest import ingest_files
from vault_audit.settings import Settings

CLI = str(Path(sys.executable).with_name("vault-audit"))
WORLD = Path(__file__).parent.parent / "fixtures" / "world"
JWKS = WORLD / "jwks.json"
BASE_FILES = ["vault-events", "supabase-audit", "supabase-sessions", "device-sessions"]
ACCESS_LOG_ACCEPTED = 401  # fixtures/README.md: 406 read, 1 duplicate, 4 quarantined


@pytest.fixture(scope="module")
def base_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The fixture world without its access log: the concurrent ingest adds that."""
    path = tmp_path_factory.mktemp("base") / "base.duckdb"
    with store.opened(path) as connection:
        ingest_files(
            connection,
            [WORLD / f"{name}.jsonl" for name in BASE_FILES],
            settings=Settings(db=str(path), jwks=str(JWKS)),
        )
    return path


def copy_store(base: Path, folder: Path, name: str) -> Path:
    path = folder / name
    shutil.copyfile(base, path)
    return path


def finding_ids(connection) -> list[str]:
    return [row[0] for row in connection.execute("select finding_id from findings").fetchall()]


def assert_finished_or_busy(returncode: int, stderr: str) -> None:
    """A job either did its work (exit 0 or 1) or said, in one line, that it gave up."""
    if returncode == 2:
        assert stderr.count("\n") == 1 and "store is busy" in stderr, stderr
    else:
        assert returncode in (0, 1), stderr
    assert "Traceback" not in stderr


def start(args: list[str], **env: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [CLI, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **env},
    )


def test_two_checks_and_an_ingest_at_once_lose_and_double_nothing(
    base_store: Path, tmp_path: Path
) -> None:
    # What the world's findings are when nothing runs at the same time.
    reference = copy_store(base_store, tmp_path, "reference.duckdb")
    with store.opened(reference) as connection:
        settings = Settings(db=str(reference), jwks=str(JWKS))
        ingest_files(connection, [WORLD / "access-log.jsonl"], settings=settings)
        correlate.run_check(connection, settings)
        expected = sorted(finding_ids(connection))
    assert expected

    db = copy_store(base_store, tmp_path, "store.duckdb")
    check = ["check", "--db", str(db), "--format", "json"]
    jobs = [
        start(check),
        start(["ingest", "--db", str(db), "--jwks", str(JWKS), str(WORLD / "access-log.jsonl")]),
        # A short wait, so this one may well give up: that must read as "busy".
        start(check, VAULT_AUDIT_BUSY_TIMEOUT="0.2"),
    ]
    outputs = []
    for job in jobs:
        stdout, stderr = job.communicate(timeout=120)
        assert_finished_or_busy(job.returncode, stderr)
        outputs.append(stdout)
    ingest = jobs[1]

    with store.opened(db) as connection:
        uses = connection.execute("select count(*) from token_uses").fetchone()
        runs = connection.execute("select count(*) from ingest_runs").fetchone()
        ids = finding_ids(connection)
        reported = connection.execute(
            "select count(*), count(distinct finding_id) from reported_findings"
        ).fetchone()
    assert len(ids) == len(set(ids)) and set(ids) <= set(expected)
    assert reported is not None and reported[0] == reported[1]
    if ingest.returncode != 2:
        assert uses == (ACCESS_LOG_ACCEPTED,)
        assert runs == (len(BASE_FILES) + 1,)

    # Whatever a concurrent check reported is a finding of the world.
    for job, stdout in zip(jobs, outputs, strict=True):
        if job.args[1] == "check" and job.returncode != 2:
            assert {finding["finding_id"] for finding in json.loads(stdout)} <= set(expected)

    # Finish the work the busy jobs gave up, then judge once more: the world's findings.
    if ingest.returncode == 2:
        again = subprocess.run(ingest.args, capture_output=True, text=True)
        assert again.returncode == 1, again.stderr  # the fixture's bad lines
    with store.opened(db) as connection:
        correlate.run_check(connection, Settings(db=str(db)))
        assert sorted(finding_ids(connection)) == expected
        counts = connection.execute(
            "select (select count(*) from token_uses), (select count(*) from ingest_runs)"
        ).fetchone()
    assert counts == (ACCESS_LOG_ACCEPTED, len(BASE_FILES) + 1)


def test_a_second_writer_gives_up_with_one_line_saying_the_store_is_busy(
    base_store: Path, tmp_path: Path
) -> None:
    db = copy_store(base_store, tmp_path, "store.duckdb")
    with store.opened(db):
        job = subprocess.run(
            [CLI, "ingest", "--db", str(db), str(WORLD / "access-log.jsonl")],
            capture_output=True,
            text=True,
            env={**os.environ, "VAULT_AUDIT_BUSY_TIMEOUT": "0.3"},
        )
    assert job.returncode == 2
    assert job.stderr.startswith("vault-audit: error: store is busy")
    assert job.stderr.count("\n") == 1
    with store.opened(db) as connection:
        assert connection.execute("select count(*) from token_uses").fetchone() == (0,)


def test_a_read_only_handle_reads_beside_a_writer_without_keeping_it_out(
    base_store: Path, tmp_path: Path
) -> None:
    db = copy_store(base_store, tmp_path, "store.duckdb")
    with store.opened(db) as connection:
        settings = Settings(db=str(db), jwks=str(JWKS))
        ingest_files(connection, [WORLD / "access-log.jsonl"], settings=settings)
        correlate.run_check(connection, settings)
    big = write_access_log(tmp_path / "more.jsonl", 8_000)

    handle = vault_audit.open(db, busy_timeout=0.2)
    before = handle.findings()
    writer = start(["ingest", "--db", str(db), str(big)])
    reads = busy = 0
    while writer.poll() is None:
        try:
            assert handle.findings().equals(before)
            reads += 1
        except StoreBusyError as error:
            assert "is busy" in str(error)
            busy += 1
        time.sleep(0.02)
    _, stderr = writer.communicate()
    assert writer.returncode == 0, stderr

    # The writer landed its file; the handle reads the store as it now is.
    uses = handle.sql("select count(*) as uses from token_uses")
    assert uses["uses"].to_list() == [ACCESS_LOG_ACCEPTED + 8_000]
    assert handle.findings().equals(before)
    handle.close()
    assert reads + busy > 0
