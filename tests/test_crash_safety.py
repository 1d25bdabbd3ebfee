"""Crash safety: an ingest killed at any point leaves the store as it was.

Ingestion stages a file outside the store (temporary tables of its own connection),
then lands it in one transaction. So a SIGKILL while staging changes nothing, a
SIGKILL while landing is undone by DuckDB's WAL recovery on the next open, and
running the same ingest again loads every record exactly once.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.inputs import hs256
from vault_audit import correlate, store
from vault_audit.ingest import ingest_files
from vault_audit.settings import Settings

CLI = str(Path(sys.executable).with_name("vault-audit"))
RECORDS = 40_000
ALREADY_LOADED = 1_000
FIXTURE_EVENTS = Path(__file__).parent.parent / "fixtures" / "world" / "vault-events.jsonl"

pytestmark = pytest.mark.skipif(
    not Path("/proc/self/fdinfo").is_dir(), reason="watches the ingest through /proc"
)


def write_access_log(path: Path, count: int) -> Path:
    """``count`` distinct requests over 50 tokens, about 700 bytes a line."""
    tokens = [hs256(sub=f"user-{n}", session_id=f"sess-{n}") for n in range(50)]
    with path.open("w", encoding="utf-8") as handle:
        for n in range(count):
            at = f"2026-01-01T12:{n // 60 % 60:02d}:{n % 60:02d}Z"
            handle.write(
                f'{{"request_id": "req-{n}", "at": "{at}", "method": "GET",'
                f' "path": "/api/v1/secrets/s-{n % 100}", "status": 200, "decision": "allow",'
                f' "ip": "203.0.113.{n % 250}", "user_agent": "Mozilla/5.0", "workspace_id":'
                f' "ws-1", "resource": "secret:s-1", "token": "{tokens[n % 50]}"}}\n'
            )
    return path


def start_ingest(db: Path, path: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [CLI, "ingest", "--db", str(db), str(path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def read_position(process: subprocess.Popen[bytes], path: Path) -> int | None:
    """How far the process has read into ``path``, from its open file descriptor."""
    folder = Path(f"/proc/{process.pid}/fd")
    try:
        for descriptor in folder.iterdir():
            if os.readlink(descriptor) == str(path):
                info = (Path(f"/proc/{process.pid}/fdinfo") / descriptor.name).read_text()
                return int(info.split("pos:")[1].split()[0])
    except (OSError, IndexError, ValueError):
        return None
    return None


def kill_when(process: subprocess.Popen[bytes], ready, timeout: float = 60.0) -> bool:
    """SIGKILL the process as soon as ``ready()``; False when it finished first."""
    deadline = time.monotonic() + timeout
    while process.poll() is None and time.monotonic() < deadline:
        if ready():
            process.send_signal(signal.SIGKILL)
            process.wait()
            return True
        time.sleep(0.001)
    process.wait()
    return False


def store_counts(db: Path) -> tuple[int, int, int, int]:
    """Token uses, distinct request ids, ingest runs and tokens, after recovery."""
    with store.opened(db) as connection:
        row = connection.execute(
            "select (select count(*) from token_uses),"
            " (select count(distinct request_id) from token_uses),"
            " (select count(*) from ingest_runs), (select count(*) from tokens)"
        ).fetchone()
    assert row is not None
    return int(row[0]), int(row[1]), int(row[2]), int(row[3])


def test_an_ingest_killed_while_staging_or_landing_leaves_the_store_as_it_was(
    tmp_path: Path,
) -> None:
    db = tmp_path / "store.duckdb"
    big = write_access_log(tmp_path / "access-log.jsonl", RECORDS)
    first = tmp_path / "first.jsonl"
    first.write_text("".join(big.open().readlines()[:ALREADY_LOADED]))
    with store.opened(db) as connection:
        ingest_files(connection, [FIXTURE_EVENTS, first], settings=Settings(db=str(db)))
    before = store_counts(db)
    assert before[:2] == (ALREADY_LOADED, ALREADY_LOADED)

    # Killed halfway through reading the file: nothing of it reached the store.
    size = big.stat().st_size
    staging = start_ingest(db, big)
    assert kill_when(staging, lambda: (read_position(staging, big) or 0) >= size // 2), (
        "the ingest finished before it was halfway: make the file bigger"
    )
    assert store_counts(db) == before

    # Killed as the landing transaction writes its log: all of the file or none.
    wal = db.with_name(db.name + ".wal")
    landing = start_ingest(db, big)
    killed = kill_when(landing, wal.exists)
    after_landing = store_counts(db)
    assert after_landing in (before, (RECORDS, RECORDS, before[2] + 1, before[3])), after_landing
    assert killed or after_landing != before

    # Run again: every record exactly once, and a clean exit.
    rerun = subprocess.run(
        [CLI, "ingest", "--db", str(db), str(big)], capture_output=True, text=True, timeout=120
    )
    assert rerun.returncode == 0, rerun.stderr
    assert f"{RECORDS} read" in rerun.stdout
    uses, distinct, runs, tokens = store_counts(db)
    assert uses == distinct == RECORDS
    assert tokens == 50
    assert runs == after_landing[2] + 1

    with store.opened(db) as connection:
        assert correlate.run_check(connection, Settings(db=str(db))).check_run_id == 1
