"""Time ``vault-audit ingest --from-postgres`` on a large ``auth.audit_log_entries``.

    .venv/bin/python benchmarks/postgres_ingest.py [--rows 1000000] [--repeat 1] [--url URL]

The server is the test cluster of ``scripts/services/postgres.sh`` (its URL from
VAULT_AUDIT_TEST_POSTGRES_URL, else /tmp/vault-audit-pg/url), or ``--url``. A scratch
database is created there with Supabase's auth tables in their real column types and
Vault's two tables; ``auth.audit_log_entries`` is filled with ``--rows`` rows of
Supabase-like payloads generated on the server with ``generate_series``, the other
tables stay empty. The database is dropped at the end.

Each step runs in a fresh process; its seconds are wall time from start to exit, its
peak memory the ``ru_maxrss`` of that process (from ``wait4``):

- floor: ``psql`` running ``COPY (the read query) TO STDOUT (FORMAT binary)`` to
  /dev/null, the stream the ADBC driver consumes;
- ADBC read into Arrow: ``read_postgres`` for supabase-audit alone, the first half of
  an ingest;
- vault-audit ingest: the ``vault-audit ingest --from-postgres`` command, all four
  kinds, into a fresh store.

The URL reaches the children in a variable, never on a command line.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

URL_FILE = Path("/tmp/vault-audit-pg/url")
URL_VARIABLE = "VAULT_AUDIT_BENCH_POSTGRES_URL"
ROOT = Path(__file__).resolve().parent.parent

SCHEMA = [
    "create schema auth",
    "create type auth.aal_level as enum ('aal1', 'aal2', 'aal3')",
    """create table auth.audit_log_entries (
        instance_id uuid,
        id uuid not null primary key,
        payload json,
        created_at timestamptz,
        ip_address varchar(64) not null default ''
    )""",
    "create index audit_logs_instance_id_idx on auth.audit_log_entries (instance_id)",
    """create table auth.sessions (
        id uuid not null primary key, user_id uuid not null, created_at timestamptz,
        updated_at timestamptz, factor_id uuid, aal auth.aal_level, not_after timestamptz,
        refreshed_at timestamp without time zone, user_agent text, ip inet, tag text
    )""",
    """create table public.device_sessions (
        id text primary key, user_id text not null, supabase_session_id text, label text,
        user_agent text, ip text, created_at timestamptz, last_seen_at timestamptz,
        revoked_at timestamptz, revoked_by text
    )""",
    """create table public.audit_events (
        id text primary key, type text not null, occurred_at timestamptz not null,
        actor_id text, workspace_id text, ip text, user_agent text, target jsonb
    )""",
]

# Supabase-like rows: 5,000 users over 30 days; a refresh writes token_refreshed and
# token_revoked, so those two are most rows, as in a real project's log. The payload
# keys are Supabase Auth's; login carries traits, user_deleted names the user.
FILL = """
insert into auth.audit_log_entries (instance_id, id, payload, created_at, ip_address)
select
    '00000000-0000-0000-0000-000000000000'::uuid,
    md5('entry ' || g)::uuid,
    json_strip_nulls(json_build_object(
        'action', action,
        'actor_id', md5('user ' || u)::uuid,
        'actor_username', 'user' || u || '@example.com',
        'actor_via_sso', u % 17 = 0,
        'log_type', case when action like 'token%' then 'token'
            when action like 'user%' then 'user' else 'account' end,
        'traits', case
            when action = 'login' then json_build_object('provider', 'email')
            when action = 'user_deleted' then json_build_object(
                'user_id', md5('user ' || u)::uuid, 'user_email', 'user' || u || '@example.com')
            end
    )),
    timestamptz '2026-02-01 00:00:00Z' + (g * interval '30 days') / $1::int,
    case when action like 'token%' then ''
        else '198.51.' || (u % 250) || '.' || (g % 250) end
from (
    select g, (g::bigint * 7919 % 5000)::int as u, case
        when g % 100 < 44 then 'token_refreshed'
        when g % 100 < 88 then 'token_revoked'
        when g % 100 < 95 then 'login'
        when g % 100 < 99 then 'logout'
        else (array['user_signedup', 'user_updated_password', 'user_deleted',
                    'user_recovery_requested'])[1 + (g / 100) % 4]
        end as action
    from generate_series(1, $1::int) g
) rows
"""

# The query vault-audit streams (queries/postgres/read_supabase_audit.sql) on a first run.
COPY_FLOOR = """copy (
    select instance_id::text, id::text, payload::text, created_at, ip_address::text
    from auth.audit_log_entries
) to stdout (format binary)"""


# Runs a step's command and writes its wall seconds and peak resident memory (KiB). The
# step's process is forked from this small interpreter, not from the benchmark: Linux
# counts the memory of the process a child was forked from into the child's peak.
LAUNCHER = """
import os, sys, time
started = time.perf_counter()
pid = os.fork()
if pid == 0:
    os.execvp(sys.argv[2], sys.argv[2:])
_, status, usage = os.wait4(pid, 0)
seconds = time.perf_counter() - started
with open(sys.argv[1], "w") as out:
    out.write(f"{seconds} {usage.ru_maxrss}")
sys.exit(os.waitstatus_to_exitcode(status))
"""


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=1, help="runs of each step")
    parser.add_argument("--url", help="an administrator's URL of the server (default: test)")
    parser.add_argument("--step", help=argparse.SUPPRESS)  # a child's own step
    args = parser.parse_args(argv)
    if args.step:
        run_child_step(args.step)
        return

    admin_url = args.url or os.environ.get("VAULT_AUDIT_TEST_POSTGRES_URL") or read_url_file()
    name = f"va_bench_{uuid.uuid4().hex[:10]}"
    execute(admin_url, f"create database {name}")
    try:
        url = urlunsplit(urlsplit(admin_url)._replace(path=f"/{name}"))
        started = time.perf_counter()
        execute(url, *SCHEMA)
        execute(url, FILL, params=[args.rows])
        execute(url, "vacuum analyze auth.audit_log_entries")
        seconds = time.perf_counter() - started
        ((size, payload),) = execute(
            url,
            "select pg_size_pretty(pg_total_relation_size('auth.audit_log_entries')), "
            "round(avg(octet_length(payload::text))) from auth.audit_log_entries",
        )
        print(f"filled {args.rows:,} rows ({size}, payloads of {payload} bytes) in {seconds:.1f} s")
        print_machine(url)
        measure_all(url, args.rows, args.repeat)
    finally:
        execute(admin_url, f"drop database if exists {name} with (force)")


def measure_all(url: str, rows: int, repeat: int) -> None:
    psql = shutil.which("psql")
    steps: list[tuple[str, list[str]]] = []
    if psql:
        floor = [psql, "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", "BARE_URL", "-c", COPY_FLOOR]
        steps.append(("floor: psql COPY binary to /dev/null", floor))
    script = [sys.executable, str(Path(__file__).resolve())]
    steps.append(("ADBC read into Arrow (read_postgres)", [*script, "--step", "read-arrow"]))
    vault_audit = str(Path(sys.executable).with_name("vault-audit"))
    steps.append(
        (
            "vault-audit ingest --from-postgres",
            [vault_audit, "ingest", "--db", "STORE", "--from-postgres", f"env:{URL_VARIABLE}"],
        )
    )

    print("\n| step | seconds | rows/s | peak MiB | load avg (1 min) |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for label, command in steps:
        runs = [run_step(command, url, rows) for _ in range(repeat)]
        seconds = statistics.median(run["seconds"] for run in runs)
        peak = max(run["peak_mib"] for run in runs)
        loads = ", ".join(run["load"] for run in runs)
        spread = (
            ""
            if repeat == 1
            else f" ({min(r['seconds'] for r in runs):.2f}-{max(r['seconds'] for r in runs):.2f})"
        )
        print(
            f"| {label} | {seconds:.2f}{spread} | {rows / seconds:,.0f} | {peak:,.0f} | {loads} |"
        )
        for run in runs:
            if run["note"]:
                print(f"|   {run['note']} | | | | |")


def run_step(command: list[str], url: str, rows: int) -> dict[str, Any]:
    """Run one step in a fresh process and folder; its seconds, peak memory and load."""
    parts = urlsplit(url)
    env = {key: value for key, value in os.environ.items() if not key.startswith("VAULT_AUDIT_")}
    env[URL_VARIABLE] = url
    env["PGPASSWORD"] = parts.password or ""  # psql's URL carries no password
    bare = urlunsplit(parts._replace(netloc=f"{parts.username}@{parts.hostname}:{parts.port}"))

    with tempfile.TemporaryDirectory(prefix="va-bench-") as folder:
        command = [part.replace("STORE", f"{folder}/store.duckdb") for part in command]
        command = [part.replace("BARE_URL", bare) for part in command]
        output = Path(folder, "stdout")
        is_floor = Path(command[0]).name == "psql"
        load = Path("/proc/loadavg").read_text().split()[0]

        measured = Path(folder, "measured")
        with (
            open(os.devnull if is_floor else output, "wb") as out,
            open(Path(folder, "stderr"), "wb") as err,
        ):
            launcher = [sys.executable, "-S", "-c", LAUNCHER, str(measured), *command]
            code = subprocess.run(launcher, cwd=folder, env=env, stdout=out, stderr=err).returncode
        if code != 0:
            errors = Path(folder, "stderr").read_text().strip()
            raise SystemExit(f"{command[0]} failed: {errors}")
        seconds_text, maxrss_text = measured.read_text().split()
        seconds, peak_mib = float(seconds_text), int(maxrss_text) / 1024
        printed = "" if is_floor else output.read_text()
    if not is_floor and f"{rows} accepted" not in printed and f"read {rows} rows" not in printed:
        raise SystemExit(f"{command[0]} did not move {rows:,} rows: {printed}")
    note = " / ".join(
        line.strip()
        for line in printed.splitlines()
        if "audit_log_entries" in line or line.startswith("read ")
    )
    return {"seconds": seconds, "peak_mib": peak_mib, "load": load, "note": note}


def run_child_step(step: str) -> None:
    """A child's step: the ADBC read alone, as read_postgres does it in an ingest."""
    from vault_audit.ingest.postgres import PostgresOptions, read_postgres

    assert step == "read-arrow", step
    read = read_postgres(os.environ[URL_VARIABLE], PostgresOptions(kinds=("supabase-audit",)))
    table = read.tables["supabase-audit"]
    print(
        f"read {table.num_rows} rows, {table.nbytes / 2**20:,.0f} MiB of Arrow, "
        f"in {read.seconds:.2f} s inside the process"
    )


def print_machine(url: str) -> None:
    import adbc_driver_postgresql
    import duckdb
    import pyarrow

    memory = next(
        line.split()[1]
        for line in Path("/proc/meminfo").read_text().splitlines()
        if line.startswith("MemTotal")
    )
    model = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        "unknown CPU",
    )
    server = execute(url, "select current_setting('server_version')")[0][0]
    print(
        f"machine: nproc {os.cpu_count()}, {int(memory) / 2**20:.1f} GiB, {model}; "
        f"PostgreSQL {server}, adbc-driver-postgresql {adbc_driver_postgresql.__version__}, "
        f"duckdb {duckdb.__version__}, pyarrow {pyarrow.__version__}, "
        f"Python {sys.version.split()[0]}; {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; "
        f"load average {Path('/proc/loadavg').read_text().strip()}"
    )


def execute(url: str, *sql: str, params: Sequence[Any] | None = None) -> list[tuple[Any, ...]]:
    from adbc_driver_postgresql import dbapi

    rows: list[tuple[Any, ...]] = []
    with dbapi.connect(url, autocommit=True) as connection, connection.cursor() as cursor:
        for statement in sql:
            cursor.execute(statement, params)
            rows = cursor.fetchall() if cursor.description else []
    return rows


def read_url_file() -> str:
    if not URL_FILE.is_file():
        raise SystemExit(f"no server: run scripts/services/postgres.sh (it writes {URL_FILE})")
    return URL_FILE.read_text(encoding="utf-8").strip()


if __name__ == "__main__":
    main()
