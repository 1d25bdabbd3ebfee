"""Run one benchmark step in a fresh process and report seconds and peak memory.

Each step runs as ``python benchmarks/measure.py STEP ARGS...`` so its peak resident
memory (its own and its children's) is its alone, and prints one JSON line.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path


def run_step(*args: str, env: dict[str, str] | None = None) -> dict[str, float]:
    """Run a step in a child process; return its seconds and peak memory in MiB.

    The disk is synced first, so a step does not pay for writing back the pages the
    step before it left dirty (seen: the first ingest after a plain load ran slower).
    """
    os.sync()
    output = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), *args],
        check=True,
        capture_output=True,
        text=True,
        env=env,
    ).stdout
    return json.loads(output.strip().splitlines()[-1])


def _peak_mib() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return max(own, children) / 1024


def _plain_load(database: str, path: str, reader: str) -> None:
    import duckdb

    connection = duckdb.connect(database)
    connection.execute(f"create table t as select * from {reader}(?)", [path])
    connection.close()


def _ingest(database: str, kind: str, path: str, *options: str) -> None:
    from click.testing import CliRunner  # noqa: F401  (imported for parity of start-up cost)

    from vault_audit.cli import main

    try:
        main(["ingest", "--db", database, "--kind", kind, *options, path], standalone_mode=False)
    except SystemExit as exit_:
        if exit_.code not in (0, None):
            raise


def _main() -> None:
    step, *args = sys.argv[1:]
    started = time.perf_counter()
    if step == "plain-json":
        _plain_load(args[0], args[1], "read_json")
    elif step == "plain-parquet":
        _plain_load(args[0], args[1], "read_parquet")
    elif step == "ingest":
        _ingest(*args)
    else:
        raise SystemExit(f"unknown step {step}")
    seconds = time.perf_counter() - started
    print(json.dumps({"seconds": seconds, "peak_mib": _peak_mib()}))


if __name__ == "__main__":
    _main()
