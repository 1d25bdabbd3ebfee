"""Time ``run_check`` on a synthetic store of 10M token uses, beside a bare DuckDB range
join of the same uses to the revoked device-session records.

    .venv/bin/python benchmarks/check_10m.py [--uses 10000000] [--store PATH] [--threads 2]

The store (about 750 MB at 10M uses) is built once and reused; by default it lives in
the system's temporary folder, outside the repository.

The store is generated with DuckDB SQL (``range()``) straight into the raw tables:
about 100k tokens over 20k Supabase sessions, one device-session record per Supabase
session, a few thousand revocations, memberships, audit entries and snapshots. Each
measurement runs in a fresh process so its peak memory (ru_maxrss) is its own.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent / "baselines"))
from duckdb_floor import STORE_RANGE_JOIN  # noqa: E402

from vault_audit import correlate
from vault_audit.settings import Settings
from vault_audit.store import connect, transaction

SESSIONS = 20_000
TOKENS_PER_SESSION = 5
USERS = 5_000
REVOKE_EVERY = 6  # one Supabase session in six has its record revoked: ~3,300 revocations

GENERATE = [
    # One ingest run for every row to point at.
    """insert into ingest_runs values
       (1, 'benchmark', 'check_10m', null, 0, 0, 0, 0, 0, timestamptz '2026-03-01 00:00:00Z')""",
    # Registration of one device-session record per Supabase session, in the first hour.
    """insert into vault_events (id, type, occurred_at, actor_id, workspace_id, ip, user_agent,
           device_session_id, target_user_id, supabase_session_id, label, ingest_run_id)
       select 'reg-' || s, 'session.register',
              timestamptz '2026-03-01 00:00:00Z' + to_seconds(s % 3600),
              'u-' || (s % $users), 'ws-' || (s % 50), '10.0.' || (s % 250) || '.1',
              'Browser/' || (s % 7), 'ds-' || s, 'u-' || (s % $users), 's-' || s,
              'device ' || s, 1
       from range($sessions) t(s)""",
    # Revocations, spread over the day.
    """insert into vault_events (id, type, occurred_at, actor_id, workspace_id, ip, user_agent,
           device_session_id, target_user_id, supabase_session_id, ingest_run_id)
       select 'rev-' || s, 'session.revoke',
              timestamptz '2026-03-01 02:00:00Z' + to_seconds((s * 7) % 72000),
              'u-' || (s % $users), 'ws-' || (s % 50), '10.0.' || (s % 250) || '.1',
              'Browser/' || (s % 7), 'ds-' || s, 'u-' || (s % $users), 's-' || s, 1
       from range($sessions) t(s) where s % $revoke_every = 0""",
    # Memberships, and a few removals and viewers for the replay to look at.
    """insert into vault_events (id, type, occurred_at, actor_id, workspace_id,
           target_user_id, role, ingest_run_id)
       select 'mem-' || u, 'workspace.member.add', timestamptz '2026-02-01 00:00:00Z',
              'owner', 'ws-' || (u % 50), 'u-' || u,
              case when u % 20 = 0 then 'viewer' else 'member' end, 1
       from range($users) t(u)""",
    """insert into vault_events (id, type, occurred_at, actor_id, workspace_id,
           target_user_id, ingest_run_id)
       select 'rem-' || u, 'workspace.member.remove', timestamptz '2026-03-01 12:00:00Z',
              'owner', 'ws-' || (u % 50), 'u-' || u, 1
       from range($users) t(u) where u % 97 = 0""",
    # Tokens: five per Supabase session, one every four hours from its registration.
    """insert into tokens (token_sha256, alg, sub, session_id, role, aud, issued_at,
           expires_at, lifetime_seconds, signature_status)
       select sha256('tok-' || s || '-' || j), 'ES256', 'u-' || (s % $users), 's-' || s,
              'authenticated', 'authenticated',
              timestamptz '2026-03-01 00:00:00Z' + to_seconds(s % 3600 + j * 14400),
              timestamptz '2026-03-01 00:00:00Z' + to_seconds(s % 3600 + j * 14400 + 3600),
              3600, case when (s + j) % 5000 = 0 then 'invalid' else 'valid' end
       from range($sessions) a(s), range($tokens_per_session) b(j)""",
    # Token uses: spread evenly over each token's hour.
    """insert into token_uses (request_id, used_at, method, path, status, decision, ip,
           user_agent, workspace_id, resource, token_sha256, ingest_run_id)
       select 'req-' || n,
              timestamptz '2026-03-01 00:00:00Z'
                  + to_seconds(s % 3600 + j * 14400 + (k * 3599) // $uses_per_token),
              case when n % 10 = 0 then 'PUT' else 'GET' end,
              '/v1/secrets/sec-' || (n % 1000), 200,
              case when n % 100 = 0 then 'deny' else 'allow' end,
              case when n % 5000 = 1 then '203.0.113.' || (n % 200)
                   else '10.0.' || (s % 250) || '.1' end,
              case when n % 5000 = 1 then 'curl/8' else 'Browser/' || (s % 7) end,
              'ws-' || (s % 50), 'secret:sec-' || (n % 1000),
              sha256('tok-' || s || '-' || j), 1
       from (
           select t // ($tokens_per_session * $uses_per_token) as s,
                  (t // $uses_per_token) % $tokens_per_session as j,
                  t % $uses_per_token as k,
                  t as n
           from range($uses) r(t)
       )""",
    # Audit entries: a logout for one user in fifty, in the afternoon.
    """insert into idp_audit (id, created_at, action, actor_id, ingest_run_id)
       select 'audit-' || u, timestamptz '2026-03-01 14:00:00Z', 'logout', 'u-' || u, 1
       from range($users) t(u) where u % 50 = 0""",
    # Hourly supabase-sessions snapshots that hold every session but the revoked ones
    # from 20:00 on.
    """insert into snapshots
       select 'supabase-sessions', timestamptz '2026-03-01 00:00:00Z' + to_seconds(h * 3600)
       from range(1, 24) t(h)""",
    """insert into idp_session_snapshots (id, snapshot_at, user_id, ingest_run_id)
       select 's-' || s, timestamptz '2026-03-01 00:00:00Z' + to_seconds(h * 3600),
              'u-' || (s % $users), 1
       from range($sessions) a(s), range(1, 24) b(h)
       where h < 20 or s % $revoke_every <> 0""",
]


def build(path: Path, uses: int, threads: int) -> None:
    uses_per_token = uses // (SESSIONS * TOKENS_PER_SESSION)
    values = {
        "users": USERS,
        "sessions": SESSIONS,
        "revoke_every": REVOKE_EVERY,
        "tokens_per_session": TOKENS_PER_SESSION,
        "uses_per_token": uses_per_token,
        "uses": SESSIONS * TOKENS_PER_SESSION * uses_per_token,
    }
    connection = connect(path, memory_limit="2GB", threads=threads)
    started = time.perf_counter()
    with transaction(connection):
        for sql in GENERATE:
            used = {name: value for name, value in values.items() if f"${name}" in sql}
            connection.execute(sql, used)
    connection.execute("checkpoint")
    connection.close()
    print(f"generated {values['uses']:,} token uses in {time.perf_counter() - started:.1f} s")


def measure(path: Path, what: str, threads: int) -> dict[str, float]:
    connection = connect(path, memory_limit="2GB", threads=threads)
    started = time.perf_counter()
    if what == "check":
        result = correlate.run_check(connection, Settings(db=str(path)))
        rows = result.classified_uses
    else:
        row = connection.execute(STORE_RANGE_JOIN).fetchone()
        rows = int(row[0]) if row else 0
    # Closing checkpoints what the check wrote; the command pays for it, so it counts.
    connection.close()
    seconds = time.perf_counter() - started
    peak_mib = _peak_resident_mib()
    return {"seconds": seconds, "rows": rows, "peak_mib": peak_mib}


def _peak_resident_mib() -> float:
    # VmHWM starts afresh in each process; ru_maxrss would carry the parent's peak
    # across exec on Linux.
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--uses", type=int, default=10_000_000)
    parser.add_argument(
        "--store", type=Path, default=Path(tempfile.gettempdir()) / "vault-audit-check-10m.duckdb"
    )
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--measure", choices=["check", "bare"], help=argparse.SUPPRESS)
    options = parser.parse_args()

    if options.measure:
        print(json.dumps(measure(options.store, options.measure, options.threads)))
        return

    if not options.store.exists():
        build(options.store, options.uses, options.threads)

    for what in ("bare", "check", "check"):
        output = subprocess.run(
            [
                sys.executable,
                __file__,
                "--store",
                str(options.store),
                "--threads",
                str(options.threads),
                "--measure",
                what,
            ],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        figures = json.loads(output.strip().splitlines()[-1])
        label = "bare range join" if what == "bare" else "run_check"
        print(
            f"{label:>16}: {figures['seconds']:6.2f} s, {figures['rows']:>12,} rows, "
            f"peak {figures['peak_mib']:,.0f} MiB"
        )


if __name__ == "__main__":
    main()
