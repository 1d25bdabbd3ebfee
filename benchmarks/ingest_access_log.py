"""Ingest a generated access log of N rows (default 10M) beside a plain DuckDB load.

    python benchmarks/ingest_access_log.py [--rows 10000000] [--tokens 100000]

Tokens are real HS256 JWTs with Supabase-like claims (about 600 bytes), each used
by rows/tokens requests, as in a real log where one token serves an hour of calls.
For JSON Lines and Parquet it prints, each in a fresh process: the plain DuckDB
`create table as select * from read_json/read_parquet` of the file, vault-audit's
ingest without a key (claims extracted, tokens fingerprinted and dropped), and the
ingest with the HS256 secret (every distinct token verified once).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import time
from pathlib import Path

import duckdb
import jwt

sys.path.insert(0, str(Path(__file__).resolve().parent))
from measure import run_step  # noqa: E402

DATA = Path(__file__).resolve().parent / "data"
SECRET = "benchmark-secret-" + "x" * 32


def make_tokens(count: int) -> list[tuple[int, str]]:
    start = 1767225600
    tokens = []
    for index in range(count):
        issued = start + (index % 720) * 3600
        claims = {
            "iss": "https://abcdefghijklmnop.supabase.co/auth/v1",
            "sub": f"00000000-0000-4000-8000-{index % 5000:012d}",
            "aud": "authenticated",
            "exp": issued + 3600,
            "iat": issued,
            "email": f"user{index % 5000}@example.com",
            "phone": "",
            "app_metadata": {"provider": "email", "providers": ["email"]},
            "user_metadata": {"email_verified": True},
            "role": "authenticated",
            "aal": "aal1",
            "amr": [{"method": "password", "timestamp": issued - 60}],
            "session_id": f"10000000-0000-4000-8000-{index % 20000:012d}",
            "is_anonymous": False,
        }
        tokens.append((index, jwt.encode(claims, SECRET, algorithm="HS256")))
    return tokens


def make_logs(rows: int, token_count: int) -> tuple[Path, Path]:
    DATA.mkdir(exist_ok=True)
    jsonl = DATA / f"access-{rows}.jsonl"
    parquet = DATA / f"access-{rows}.parquet"
    if jsonl.exists() and parquet.exists():
        return jsonl, parquet

    connection = duckdb.connect()
    connection.execute("create table tokens (n bigint, token varchar)")
    connection.executemany("insert into tokens values (?, ?)", make_tokens(token_count))
    # A view cannot take bound parameters; both numbers are ints we made ourselves.
    connection.execute(
        f"""
        create view log as
        select
            'req-' || i as request_id,
            strftime(to_timestamp(1767225600 + (t.n % 720) * 3600 + (i % 3600)),
                     '%Y-%m-%dT%H:%M:%SZ') as "at",
            case when i % 10 = 0 then 'POST' else 'GET' end as method,
            '/api/v1/workspaces/ws-' || (i % 50) || '/secrets/sec-' || (i % 997) as path,
            case when i % 50 = 0 then 403 else 200 end as status,
            case when i % 50 = 0 then 'deny' else 'allow' end as decision,
            '198.51.' || (i % 250) || '.' || (i % 199) as ip,
            'Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15' as user_agent,
            'ws-' || (i % 50) as workspace_id,
            'secret:sec-' || (i % 997) as resource,
            t.token
        from range({int(rows)}) as r(i)
        join tokens as t on t.n = i % {int(token_count)}
        """
    )
    connection.execute(f"copy log to '{jsonl}' (format json)")
    connection.execute(f"copy log to '{parquet}' (format parquet)")
    connection.close()
    return jsonl, parquet


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--tokens", type=int, default=100_000)
    arguments = parser.parse_args()

    started = time.perf_counter()
    jsonl, parquet = make_logs(arguments.rows, arguments.tokens)
    gib = 2**30
    print(
        f"data ready in {time.perf_counter() - started:.0f} s: "
        f"{jsonl.stat().st_size / gib:.2f} GiB JSON Lines, "
        f"{parquet.stat().st_size / gib:.2f} GiB Parquet; {os.cpu_count()} cores"
    )

    env = dict(os.environ, BENCH_JWT_SECRET=SECRET)
    header = ("input", "step", "seconds", "rows/s", "peak MiB", "vs plain")
    print("{:<10} {:<26} {:>8} {:>11} {:>9} {:>8}".format(*header))
    inputs = (("jsonl", jsonl, "plain-json"), ("parquet", parquet, "plain-parquet"))
    for label, path, plain in inputs:
        scratch = DATA / "scratch"
        shutil.rmtree(scratch, ignore_errors=True)
        scratch.mkdir()
        floor = run_step(plain, str(scratch / "plain.duckdb"), str(path))
        steps = [
            ("plain duckdb load", floor),
            (
                "vault-audit ingest",
                run_step("ingest", str(scratch / "a.duckdb"), "access-log", str(path), env=env),
            ),
            (
                "ingest + verify HS256",
                run_step(
                    "ingest",
                    str(scratch / "b.duckdb"),
                    "access-log",
                    str(path),
                    "--jwt-secret-env",
                    "BENCH_JWT_SECRET",
                    env=env,
                ),
            ),
        ]
        for name, figures in steps:
            rate = arguments.rows / figures["seconds"]
            ratio = figures["seconds"] / floor["seconds"]
            print(
                f"{label:<10} {name:<26} {figures['seconds']:>8.1f} {rate:>11,.0f} "
                f"{figures['peak_mib']:>9,.0f} {ratio:>7.2f}x"
            )
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
