"""Secrets: the JWT secret, a Postgres password and raw tokens reach no output.

Every command runs with ``--verbose``; its standard output and error, the HTML
report and the bytes of the store file are searched for the secret and for every
raw token the inputs held (in clean records, bad JSON lines, rows that cannot be
split). The store and its write-ahead log are readable by their owner only.
"""

from __future__ import annotations

import logging
import secrets
import signal
import stat
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import jwt
import pytest
from click.testing import CliRunner

from tests.test_crash_safety import write_access_log
from vault_audit import store
from vault_audit.cli import main

CLI = str(Path(sys.executable).with_name("vault-audit"))
SECRET_ENV = "VAULT_AUDIT_TEST_JWT_SECRET"
UTC_NOON = 1767268800  # 2026-01-01T12:00:00Z


def run(*args: str, env: dict[str, str] | None = None) -> Ran:
    """The command in this process, as ``vault-audit -v ...``; its log lines are
    caught by the caller's ``caplog`` at DEBUG, below what ``-v`` shows."""
    result = CliRunner().invoke(main, ["-v", *args], env=env, catch_exceptions=False)
    return Ran(args[0], result.exit_code, result.stdout, result.stderr)


@dataclass
class Ran:
    command: str
    returncode: int
    stdout: str
    stderr: str


def signed(secret: str, **claims: object) -> str:
    base = {
        "sub": "user-1",
        "session_id": "sess-1",
        "aud": "authenticated",
        "role": "authenticated",
        "iat": UTC_NOON - 1800,
        "exp": UTC_NOON + 1800,
    }
    return jwt.encode({**base, **claims}, secret, algorithm="HS256")


def write_world(folder: Path, secret: str) -> tuple[list[Path], list[str]]:
    """A revoked device session, uses of its tokens after the revocation, and bad
    lines that hold tokens; returns the files and every raw token in them."""
    good = signed(secret)
    forged = signed("another-secret-entirely-another-secret", sub="user-1")
    expired = signed(secret, iat=UTC_NOON - 3600, exp=UTC_NOON + 60)
    in_bad_line = signed(secret, jti_marker="bad-line")
    in_split_row = signed(secret, jti_marker="split-row")
    in_csv_row = signed(secret, jti_marker="csv-row")
    in_path = signed(secret, jti_marker="query-string")
    in_user_agent = signed(secret, jti_marker="user-agent")

    events = folder / "vault-events.jsonl"
    target = '{"device_session_id": "dev-1", "user_id": "user-1", "supabase_session_id": "sess-1"}'
    events.write_text(
        f'{{"id": "e1", "type": "session.register", "occurred_at": "2026-01-01T11:00:00Z",'
        f' "actor_id": "user-1", "user_agent": "Mozilla/5.0", "ip": "198.51.100.7",'
        f' "target": {target}}}\n'
        f'{{"id": "e2", "type": "session.revoke", "occurred_at": "2026-01-01T12:00:00Z",'
        f' "actor_id": "user-1", "target": {target}}}\n'
    )

    def use(request_id: str, at: str, **fields: str) -> str:
        pairs = ", ".join(f'"{key}": "{value}"' for key, value in fields.items())
        return (
            f'{{"request_id": "{request_id}", "at": "{at}", "method": "GET", "path": "/v1/s",'
            f' "decision": "allow", "ip": "198.51.100.7", "user_agent": "Mozilla/5.0", {pairs}}}'
        )

    access = folder / "access-log.jsonl"
    access.write_bytes(
        "\n".join(
            [
                use("r1", "2026-01-01T12:05:00Z", token=good),
                use("r2", "2026-01-01T12:06:00Z", authorization=f"Bearer {good}"),
                use("r3", "2026-01-01T12:07:00Z", token=forged),
                use("r4", "2026-01-01T12:02:00Z", token=expired),
                use("r5", "2026-01-01T12:08:00Z", token=in_bad_line)[:-20],  # bad JSON
            ]
        ).encode()
        + b"\n"
        + use("r6", "2026-01-01T12:09:00Z", token=in_split_row, x="\x01").encode()
        + b"\n"
        # Accepted records that carry a token outside the token fields.
        + use("r9", "2026-01-01T12:12:00Z", token=in_path)
        .replace("/v1/s", f"/v1/s?access_token={in_path}")
        .encode()
        + b"\n"
        + use("r10", "2026-01-01T12:13:00Z", token=good)
        .replace("Mozilla/5.0", f"sdk/1.0 (jwt {in_user_agent})")
        .encode()
        + b"\n"
    )
    csv = folder / "access-log.csv"
    csv.write_text(
        "request_id,at,decision,token\n"
        f"r7,2026-01-01T12:10:00Z,allow,{good}\n"
        f"r8,2026-01-01T12:11:00Z,allow,{in_csv_row},one field too many\n"
    )
    tokens = [good, forged, expired, in_bad_line, in_split_row, in_csv_row]
    tokens += [in_path, in_user_agent]
    return [events, access, csv], tokens


def stored_bytes(db: Path) -> bytes:
    with store.opened(db) as connection:
        connection.execute("checkpoint")
    return b"".join(path.read_bytes() for path in db.parent.glob(db.name + "*") if path.is_file())


def test_no_secret_and_no_raw_token_reaches_any_output(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    secret = "jwt-secret-" + secrets.token_hex(24)
    env = {SECRET_ENV: secret}
    files, tokens = write_world(tmp_path, secret)
    db = str(tmp_path / "store.duckdb")
    report = tmp_path / "report.html"

    jobs = [run("ingest", "--db", db, "--jwt-secret-env", SECRET_ENV, *map(str, files), env=env)]
    jobs += [
        run("check", "--db", db, "--format", "json"),
        run("check", "--db", db, "--format", "json", "--detail", "uses"),
        run("check", "--db", db, "--format", "csv", "--detail", "uses"),
        run("check", "--db", db, "--format", "ocsf"),
        run("check", "--db", db),
        run("exposure", "--db", db, "--format", "json"),
        run("sessions", "--db", db, "--user", "user-1"),
        run("report", "--db", db, "--user", "user-1", "--output", str(report)),
        run("timeline", "--db", db, "--user", "user-1"),
        # The secret named but not set, and a token passed where a variable name goes.
        run("ingest", "--db", db, "--jwt-secret-env", "VAULT_AUDIT_UNSET", str(files[1])),
        run("ingest", "--db", db, "--jwt-secret-env", tokens[0], str(files[1])),
    ]
    assert jobs[0].returncode == 1  # the bad lines were quarantined
    assert jobs[1].returncode == 1, jobs[1].stderr  # anomalous uses were found
    assert all(job.returncode in (0, 1) for job in jobs[1:-2]), [job.stderr for job in jobs]
    assert [job.returncode for job in jobs[-2:]] == [2, 2]
    assert "anomalous" in jobs[1].stdout
    assert any("1 quarantined" in record.getMessage() for record in caplog.records)

    outputs = {f"{job.command} {i}": job.stdout + job.stderr for i, job in enumerate(jobs)}
    outputs["report"] = report.read_text(encoding="utf-8")
    outputs["log"] = "\n".join(
        record.getMessage() + (caplog.handler.format(record) if record.exc_info else "")
        for record in caplog.records
    )
    everything = "\n".join(outputs.values()).encode() + stored_bytes(Path(db))
    assert secret.encode() not in everything
    for number, token in enumerate(tokens):
        assert token.encode() not in everything, f"token {number} was written somewhere"
        # Nor its signature alone, which is as good as the token for nothing but is
        # the part no claim or hash could explain.
        assert token.split(".")[2].encode() not in everything, f"signature {number}"


@pytest.mark.parametrize("form", ["url", "env"])
def test_a_postgres_password_never_shows_even_when_the_connection_fails(
    tmp_path: Path, form: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    password = "pg-" + secrets.token_hex(12)
    url = f"postgresql://auditor:{password}@127.0.0.1:1/postgres?sslmode=disable"
    env = {"VAULT_AUDIT_TEST_PG_URL": url}
    source = url if form == "url" else "env:VAULT_AUDIT_TEST_PG_URL"
    db = tmp_path / "store.duckdb"

    started = time.monotonic()
    job = run("ingest", "--db", str(db), "--from-postgres", source, env=env)
    assert job.returncode == 2
    assert time.monotonic() - started < 60
    assert password not in job.stdout + job.stderr
    assert password not in "\n".join(caplog.handler.format(r) for r in caplog.records)
    errors = [line for line in job.stderr.splitlines() if "error" in line]
    assert len(errors) == 1 and "Traceback" not in job.stderr, job.stderr
    if db.exists():
        assert password.encode() not in stored_bytes(db)


def test_the_store_and_its_write_ahead_log_are_readable_by_their_owner_only(
    tmp_path: Path,
) -> None:
    db = tmp_path / "store.duckdb"
    wal = db.with_name(db.name + ".wal")
    big = write_access_log(tmp_path / "access-log.jsonl", 6_000)

    # Stop the ingest as the log appears, so the log stays to be looked at.
    writer = subprocess.Popen([CLI, "ingest", "--db", str(db), str(big)], umask=0o022)
    deadline = time.monotonic() + 60
    while writer.poll() is None and not wal.exists() and time.monotonic() < deadline:
        time.sleep(0.001)
    writer.send_signal(signal.SIGKILL)
    writer.wait()

    assert stat.S_IMODE(db.stat().st_mode) == 0o600
    if wal.exists():
        assert stat.S_IMODE(wal.stat().st_mode) == 0o600
    else:  # the ingest won the race; its log is gone, the store must still be right
        pytest.skip("the ingest finished before its write-ahead log could be seen")
