"""Time the simulator at scale: rows per second and peak memory.

    .venv/bin/python benchmarks/simulate_scale.py --rows 1000000 --format parquet
    .venv/bin/python benchmarks/simulate_scale.py --rows 1000000 --rows 3000000

Users are chosen from the requested access-log rows (about 770 rows per user over two
days at the default 40 requests per active hour); the output goes to a temporary
folder that is deleted afterwards unless --keep is given. Run each size in its own
process for an honest peak-memory figure (ru_maxrss never goes down): pass one
--rows per invocation, or several and read the later peaks as upper bounds.
"""

from __future__ import annotations

import argparse
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

from vault_audit.simulate import simulate_world

ROWS_PER_USER_TWO_DAYS = 770


def peak_memory_mib() -> float:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 1024 if sys.platform != "darwin" else peak / (1024 * 1024)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, action="append", default=None)
    parser.add_argument("--days", type=int, default=2)
    parser.add_argument("--format", choices=("jsonl", "parquet"), default="parquet")
    parser.add_argument("--keep", type=Path, default=None, help="write here and keep it")
    options = parser.parse_args()

    for rows in options.rows or [1_000_000]:
        users = max(5, round(rows / ROWS_PER_USER_TWO_DAYS * 2 / options.days))
        folder = options.keep or Path(tempfile.mkdtemp(prefix="vault-audit-sim-"))
        try:
            began = time.perf_counter()
            summary = simulate_world(folder, users=users, days=options.days, fmt=options.format)
            seconds = time.perf_counter() - began
            size = sum(path.stat().st_size for path in folder.iterdir()) / 2**20
            print(
                f"users={users} days={options.days} format={options.format} "
                f"access_rows={summary.access_rows:,} verdicts={summary.rows['ground_truth']:,} "
                f"seconds={seconds:.1f} rows_per_s={summary.access_rows / seconds:,.0f} "
                f"peak_rss_mib={peak_memory_mib():.0f} output_mib={size:.0f}",
                flush=True,
            )
        finally:
            if options.keep is None:
                shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
