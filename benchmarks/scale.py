"""Scale: a month of a large tenant on one machine, beside what users use today.

    .venv/bin/python benchmarks/scale.py [--uses 1000000 10000000 50000000] [--keep]
        [--seed 0] [--baselines floor pandas sqlite] [--data-dir benchmarks/data]
        [--memory-cap-mib 21504]

For each size (token uses, that is access-log rows; default 1M) the simulator writes a
seeded world of 30 days as Parquet (cached under the data folder, keyed by size and
seed), then each step runs in its own fresh process, on the same files in the same run:

- floor: the plain DuckDB load of the five files, then the bare range join of uses to
  the revocations of their Supabase session (baselines/duckdb_floor.py);
- vault-audit: ``ingest`` of the five files (with the world's JWKS), ``check``, and
  ``report --user`` for the most anomalous user, all with the default settings
  (DuckDB memory_limit 2GB); between ingest and check, the bare range join on
  vault-audit's own store (a ``count(*)``), which the check is set beside;
- pandas: read, decode claims in Python, merge_asof, rules 1, 3, 4, 7, 10, 11
  (baselines/pandas_correlation.py; needs the ``bench`` extra), twice: with every file
  read whole, and with only the access-log columns the rules use;
- SQLite: executemany load with indexes, then the same correlation in one query
  (baselines/sqlite_correlation.py).

It prints one table per size (seconds, token uses per second, peak memory, ratio to
the floor, load average when the step began) and the end-to-end ratios. Peak memory is
the larger of the step's own peak (VmHWM, and ru_maxrss of its children, as in
measure.py) and the sum of proportional set sizes (PSS) over its process tree, sampled
every 0.1 s (worker processes of the token verifier run beside their parent, sharing
its pages). Results are also
written as JSON beside the data. Scratch stores are deleted after each size unless
--keep is given.

A step whose process tree holds more than --memory-cap-mib (21 GiB by default, of this
24 GiB machine) is killed and shown as stopped, with the seconds it ran: a baseline
that cannot hold the data then fails alone, and its time is only a lower bound.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import resource
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
DEFAULT_DATA = HERE / "data"
KINDS = ("vault-events", "device-sessions", "supabase-audit", "supabase-sessions", "access-log")
BASELINES = ("floor", "pandas", "sqlite")

# The simulator writes about 330 access-log rows per user per day (measured: 10 users
# over 30 days gave 99,260 rows); a month is 30 days.
ROWS_PER_USER_DAY = 330
MONTH_DAYS = 30
MIN_USERS = 2
TARGET_PEAK_MIB = 4096
# A step whose process tree grows past this is stopped and reported as stopped, so a
# baseline that cannot hold the data fails on its own and not the machine (24 GiB
# here; the floor's plain load of 50M uses took 19.4 GiB).
DEFAULT_CAP_MIB = 21 * 1024

# (step, label, phase): a phase names the floor step the ratio is taken against.
STEPS = (
    ("floor-load", "floor: DuckDB load of the 5 files", "load"),
    ("floor-join", "floor: bare range join", "join"),
    ("ingest", "vault-audit ingest (5 files)", "load"),
    ("store-join", "bare range join on vault-audit's store", None),
    ("check", "vault-audit check", "join"),
    ("report", "vault-audit report --user", None),
    ("pandas", "pandas: read + decode + correlate", "total"),
    ("pandas-columns", "pandas, used columns only: read + decode + correlate", "total"),
    ("sqlite-load", "sqlite: executemany load + indexes", "load"),
    ("sqlite-query", "sqlite: correlation query", "join"),
)


def world_shape(uses: int) -> tuple[int, int]:
    """Users and days for about ``uses`` access-log rows: a month, fewer days when small."""
    days = max(1, min(MONTH_DAYS, uses // (ROWS_PER_USER_DAY * MIN_USERS)))
    users = max(MIN_USERS, round(uses / (ROWS_PER_USER_DAY * days)))
    return users, days


# The orchestrating process


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--uses", type=int, nargs="+", default=[1_000_000])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--keep", action="store_true", help="keep the scratch stores and report")
    parser.add_argument(
        "--baselines", nargs="*", choices=BASELINES, default=list(BASELINES),
        help="baselines to run beside vault-audit (default: all)",
    )  # fmt: skip
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA)
    parser.add_argument(
        "--memory-cap-mib", type=int, default=DEFAULT_CAP_MIB,
        help="stop a step whose process tree holds more (default: %(default)s)",
    )  # fmt: skip
    parser.add_argument("--step", help=argparse.SUPPRESS)
    parser.add_argument("--data", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--work", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--user", help=argparse.SUPPRESS)
    parser.add_argument("--shape", help=argparse.SUPPRESS)
    options = parser.parse_args()

    if options.step:
        run_in_child(options)
        return

    machine = machine_facts()
    print(describe_machine(machine), flush=True)
    for uses in options.uses:
        results = measure_size(uses, options.seed, options.data_dir, options.baselines,
                               keep=options.keep, cap_mib=options.memory_cap_mib)  # fmt: skip
        print(render_results(results), flush=True)
        results["machine"] = machine
        path = options.data_dir / f"scale-results-{uses}-seed{options.seed}.json"
        path.write_text(json.dumps(results, indent=2, default=str) + "\n", encoding="utf-8")
        print(f"results written to {path}\n", flush=True)


def measure_size(
    uses: int,
    seed: int,
    data_root: Path,
    baselines: list[str],
    *,
    keep: bool,
    cap_mib: int = DEFAULT_CAP_MIB,
) -> dict[str, Any]:
    """Generate (or reuse) the world of ``uses`` token uses and run every step on it."""
    data, world = generated_world(uses, seed, data_root)
    work = data_root / f"scale-{uses}-seed{seed}-work"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)

    measured: dict[str, dict[str, Any]] = {}
    try:
        for step, _, _ in STEPS:
            if not wanted(step, baselines):
                continue
            user = measured.get("check", {}).get("most_anomalous_user")
            if step == "report" and not user:
                continue
            measured[step] = run_step(step, data, work, user=user, cap_mib=cap_mib)
            stopped = measured[step].get("stopped")
            print(f"  {step}: {measured[step]['seconds']:.1f} s"
                  + (f" (stopped: {stopped})" if stopped else ""), flush=True)  # fmt: skip
            if stopped and not step.startswith(BASELINES):
                raise SystemExit(f"step {step} stopped: {stopped}")
    finally:
        if not keep:
            shutil.rmtree(work, ignore_errors=True)
    return {
        "uses": uses,
        "seed": seed,
        "world": world,
        "steps": measured,
        "measured_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "kept": str(work) if keep else None,
    }


def wanted(step: str, baselines: list[str]) -> bool:
    for baseline in BASELINES:
        if step.startswith(baseline):
            return baseline in baselines
    return True


def generated_world(uses: int, seed: int, data_root: Path) -> tuple[Path, dict[str, Any]]:
    """The cached world for (uses, seed), simulated first when missing."""
    folder = data_root / f"scale-{uses}-seed{seed}"
    facts = folder / "world.json"
    if facts.is_file():
        world = json.loads(facts.read_text(encoding="utf-8"))
        print(f"{uses:,} uses: cached world in {folder} ({world['access_rows']:,} rows)")
        return folder, world

    users, days = world_shape(uses)
    partial = data_root / f"scale-{uses}-seed{seed}-partial"
    shutil.rmtree(partial, ignore_errors=True)
    print(f"{uses:,} uses: simulating {users} users over {days} days ...", flush=True)
    figures = run_step("simulate", partial, partial, shape=f"{users},{days},{seed}")
    world = {
        "users": users,
        "days": days,
        "seed": seed,
        "access_rows": figures["access_rows"],
        "rows": figures["rows"],
        "simulate_seconds": figures["seconds"],
        "simulate_peak_mib": figures["peak_mib"],
    }
    (partial / "world.json").write_text(json.dumps(world, indent=2) + "\n", encoding="utf-8")
    shutil.rmtree(folder, ignore_errors=True)
    partial.rename(folder)
    print(
        f"  simulated {world['access_rows']:,} rows in {world['simulate_seconds']:.0f} s "
        f"({world['access_rows'] / world['simulate_seconds']:,.0f} rows/s, "
        f"peak {world['simulate_peak_mib']:,.0f} MiB)",
        flush=True,
    )
    return folder, world


def run_step(
    step: str,
    data: Path,
    work: Path,
    *,
    user: str | None = None,
    shape: str | None = None,
    cap_mib: int | None = None,
) -> dict[str, Any]:
    """Run one step in a fresh process; return its JSON line with the sampled tree peak.

    A step whose process tree holds more than ``cap_mib`` is killed; it comes back as
    ``stopped``, with the seconds it had run and the memory it had reached.
    """
    command = [sys.executable, str(Path(__file__).resolve()), "--step", step,
               "--data", str(data), "--work", str(work)]  # fmt: skip
    if user:
        command += ["--user", user]
    if shape:
        command += ["--shape", shape]
    # No vault-audit.toml or VAULT_AUDIT_* variable may change the default settings.
    env = {name: value for name, value in os.environ.items() if not name.startswith("VAULT_AUDIT_")}
    load = os.getloadavg()[0]
    work.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    process = subprocess.Popen(
        command, cwd=work, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    sampler = TreeSampler(process.pid, cap_mib=cap_mib)
    sampler.start()
    output, errors = process.communicate()
    sampler.stop()
    if sampler.stopped_at is not None:
        return {
            "seconds": sampler.stopped_at - started,
            "stopped": f"over {cap_mib:,} MiB after {sampler.stopped_at - started:.0f} s",
            "peak_mib": sampler.peak_mib,
            "tree_peak_mib": sampler.peak_mib,
            "load_average": load,
        }
    if process.returncode != 0:
        raise SystemExit(f"step {step} failed ({process.returncode}):\n{errors.strip()}")
    figures = json.loads(output.strip().splitlines()[-1])
    figures["own_peak_mib"] = figures["peak_mib"]
    figures["tree_peak_mib"] = sampler.peak_mib
    figures["peak_mib"] = max(figures["peak_mib"], sampler.peak_mib)
    figures["load_average"] = load
    return figures


class TreeSampler:
    """Samples the memory of a process and all its descendants, summed."""

    def __init__(self, pid: int, interval: float = 0.1, cap_mib: int | None = None) -> None:
        self.pid = pid
        self.interval = interval
        self.cap_mib = cap_mib
        self.peak_mib = 0.0
        # When the tree was killed for holding more than cap_mib (perf_counter).
        self.stopped_at: float | None = None
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._done.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._done.is_set():
            tree = _tree(self.pid)
            total = sum(_resident_kib(pid) for pid in tree) / 1024
            self.peak_mib = max(self.peak_mib, total)
            if self.cap_mib is not None and total > self.cap_mib:
                self.stopped_at = time.perf_counter()
                for pid in reversed(tree):
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGKILL)
                return
            self._done.wait(self.interval)


def _tree(pid: int) -> list[int]:
    pids, pending = [], [pid]
    while pending:
        current = pending.pop()
        pids.append(current)
        try:
            children = Path(f"/proc/{current}/task/{current}/children").read_text().split()
        except OSError:
            continue
        pending.extend(int(child) for child in children)
    return pids


def _resident_kib(pid: int) -> int:
    """Proportional set size: pages shared by forked workers are counted once in a sum
    (resident set size where smaps_rollup is not readable)."""
    for path, field in ((f"/proc/{pid}/smaps_rollup", "Pss:"), (f"/proc/{pid}/status", "VmRSS:")):
        try:
            for line in Path(path).read_text().splitlines():
                if line.startswith(field):
                    return int(line.split()[1])
        except OSError:
            continue
    return 0


# What the machine is


def machine_facts() -> dict[str, Any]:
    cpuinfo = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    models = [line.split(":", 1)[1].strip() for line in cpuinfo.splitlines()
              if line.startswith("model name")]  # fmt: skip
    memory_kib = 0
    if Path("/proc/meminfo").exists():
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                memory_kib = int(line.split()[1])
    return {
        "nproc": len(os.sched_getaffinity(0)),
        "memory_gib": round(memory_kib / 2**20, 1),
        "cpu": models[0] if models else platform.processor(),
        "load_average": os.getloadavg(),
        "python": platform.python_version(),
        "versions": {
            name: _version(name) for name in ("vault-audit", "duckdb", "pandas", "pyarrow")
        },
        "sqlite": sqlite3.sqlite_version,
    }


def _version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "not installed"


def describe_machine(machine: dict[str, Any]) -> str:
    versions = ", ".join(f"{name} {version}" for name, version in machine["versions"].items())
    loads = " ".join(f"{value:.2f}" for value in machine["load_average"])
    return (
        f"machine: {machine['nproc']} cores ({machine['cpu']}), {machine['memory_gib']} GiB, "
        f"load average {loads}\n"
        f"python {machine['python']}, {versions}, sqlite {machine['sqlite']}"
    )


# The table


def render_results(results: dict[str, Any]) -> str:
    steps = results["steps"]
    rows = results["world"]["access_rows"]
    floor = {
        "load": steps.get("floor-load", {}).get("seconds"),
        "join": steps.get("floor-join", {}).get("seconds"),
    }
    floor["total"] = floor["load"] + floor["join"] if floor["load"] and floor["join"] else None

    lines = [
        f"\n{results['uses']:,} token uses requested, {rows:,} simulated "
        f"({results['world']['users']} users, {results['world']['days']} days, "
        f"seed {results['seed']})",
        "",
        "| step | seconds | rows/s | peak MiB | vs floor | load avg |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for step, label, phase in STEPS:
        if step in steps:
            lines.append(_row(label, steps[step], rows, floor.get(phase) if phase else None))

    totals = {
        "floor: load + join": ("floor-load", "floor-join"),
        "vault-audit: ingest + check": ("ingest", "check"),
        "vault-audit: ingest + check + report": ("ingest", "check", "report"),
        "pandas": ("pandas",),
        "pandas, used columns only": ("pandas-columns",),
        "sqlite: load + query": ("sqlite-load", "sqlite-query"),
    }
    seconds = {}
    stopped = {}
    for label, parts in totals.items():
        if all(part in steps for part in parts):
            seconds[label] = sum(steps[part]["seconds"] for part in parts)
            peak = max(steps[part]["peak_mib"] for part in parts)
            figures = {"seconds": seconds[label], "peak_mib": peak, "load_average": None}
            reasons = [steps[part]["stopped"] for part in parts if steps[part].get("stopped")]
            if reasons:
                stopped[label] = figures["stopped"] = reasons[0]
            lines.append(_row(f"**{label}**", figures, rows, floor["total"]))

    lines += ["", *_comparisons(seconds, steps, stopped)]
    return "\n".join(lines)


def _row(label: str, figures: dict[str, Any], rows: int, floor: float | None) -> str:
    load = figures.get("load_average")
    load_text = f"{load:.2f}" if load is not None else ""
    if figures.get("stopped"):
        # A lower bound only: the step did not finish.
        return (
            f"| {label} | stopped: {figures['stopped']} | - | "
            f"over {figures['peak_mib']:,.0f} | - | {load_text} |"
        )
    ratio = f"{figures['seconds'] / floor:.2f}x" if floor else "-"
    return (
        f"| {label} | {figures['seconds']:.2f} | {rows / figures['seconds']:,.0f} | "
        f"{figures['peak_mib']:,.0f} | {ratio} | {load_text} |"
    )


def _comparisons(
    seconds: dict[str, float], steps: dict[str, dict[str, Any]], stopped: dict[str, str]
) -> list[str]:
    lines = []
    ours = seconds.get("vault-audit: ingest + check")
    for other in ("pandas", "pandas, used columns only", "sqlite: load + query"):
        if ours and other in stopped:
            # The other did not finish: its time is a lower bound, so is any ratio.
            bound = seconds[other] / ours
            verdict = (
                f"vault-audit is at least {bound:.2f}x faster"
                if bound >= 1
                else "no ratio can be given"
            )
            lines.append(
                f"end to end, vault-audit ingest + check vs {other}: {ours:.1f} s vs "
                f"not finished ({other} stopped: {stopped[other]}); {verdict}"
            )
        elif ours and other in seconds:
            ratio = seconds[other] / ours
            faster = "faster" if ratio >= 1 else "slower"
            lines.append(
                f"end to end, vault-audit ingest + check vs {other}: {ours:.1f} s vs "
                f"{seconds[other]:.1f} s; vault-audit is {max(ratio, 1 / ratio):.2f}x {faster}"
            )

    if "check" in steps and "store-join" in steps:
        check, join = steps["check"]["seconds"], steps["store-join"]["seconds"]
        lines.append(
            f"check vs the bare range join on the same store: {check:.2f} s vs {join:.2f} s "
            f"({check / join:.1f}x; {steps['store-join']['rows']:,} joined rows)"
        )

    peaks = [steps[step]["peak_mib"] for step in ("ingest", "check", "report") if step in steps]
    if peaks:
        met = "met" if max(peaks) < TARGET_PEAK_MIB else "NOT met"
        lines.append(
            f"vault-audit peak memory: {max(peaks):,.0f} MiB "
            f"(target under {TARGET_PEAK_MIB:,} MiB: {met})"
        )

    scoped = {
        name: steps[step].get("in_scope")
        for name, step in (
            ("vault-audit", "check"),
            ("pandas", "pandas"),
            ("pandas (used columns only)", "pandas-columns"),
            ("sqlite", "sqlite-query"),
        )  # fmt: skip
        if step in steps and steps[step].get("in_scope") is not None
    }
    if scoped:
        agreed = ", ".join(f"{name} {count:,}" for name, count in scoped.items())
        lines.append(f"token uses in scope: {agreed}")
    if "floor-join" in steps:
        lines.append(f"bare range join rows: {steps['floor-join']['rows']:,}")
    if "report" in steps:
        lines.append(f"report of user {steps['report']['user']}")
    return lines


# The steps, each in its own process


def run_in_child(options: argparse.Namespace) -> None:
    started = time.perf_counter()
    figures = STEP_FUNCTIONS[options.step](options)
    # A step may stop its own clock before reading what the harness needs afterwards.
    figures.setdefault("seconds", time.perf_counter() - started)
    figures["peak_mib"] = peak_mib()
    print(json.dumps(figures, default=str))


def peak_mib() -> float:
    """This process's peak resident memory, or its largest child's, in MiB."""
    own = 0
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            own = int(line.split()[1])
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return max(own, children) / 1024


def _vault_audit(*arguments: str) -> int:
    from vault_audit.cli import main as cli

    try:
        cli(list(arguments), standalone_mode=False)
    except SystemExit as exit_:
        return int(exit_.code or 0)
    return 0


def _store(options: argparse.Namespace) -> str:
    return str(options.work / "vault-audit.duckdb")


def step_simulate(options: argparse.Namespace) -> dict[str, Any]:
    from vault_audit.simulate import simulate_world

    users, days, seed = (int(part) for part in options.shape.split(","))
    summary = simulate_world(options.data, users=users, days=days, seed=seed, fmt="parquet")
    return {"access_rows": summary.access_rows, "rows": summary.rows}


def step_ingest(options: argparse.Namespace) -> dict[str, Any]:
    files = [str(options.data / f"{kind}.parquet") for kind in KINDS]
    jwks = str(options.data / "jwks.json")
    code = _vault_audit("ingest", "--db", _store(options), "--jwks", jwks, *files)
    # Exit 1 means some records were quarantined: the ingest still ran to the end.
    if code not in (0, 1):
        raise SystemExit(f"vault-audit ingest exited {code}")
    return {"exit": code}


def step_check(options: argparse.Namespace) -> dict[str, Any]:
    started = time.perf_counter()
    findings = str(options.work / "findings.json")
    code = _vault_audit(
        "check", "--db", _store(options), "--format", "json", "--output", findings,
        "--fail-on", "never",
    )  # fmt: skip
    seconds = time.perf_counter() - started
    if code != 0:
        raise SystemExit(f"vault-audit check exited {code}")

    # Untimed: the report's user, and the uses in scope to set beside the baselines'.
    import duckdb

    from vault_audit.report import most_anomalous_user

    connection = duckdb.connect(_store(options), read_only=True)
    user = most_anomalous_user(connection)
    row = connection.execute(
        "select count(*) from classified_uses where device_session_id is not null"
    ).fetchone()
    connection.close()
    return {
        "seconds": seconds,
        "most_anomalous_user": user,
        "in_scope": int(row[0]) if row else 0,
    }


def step_report(options: argparse.Namespace) -> dict[str, Any]:
    output = options.work / "report.html"
    code = _vault_audit(
        "report", "--db", _store(options), "--user", options.user, "--output", str(output)
    )
    if code != 0:
        raise SystemExit(f"vault-audit report exited {code}")
    return {"user": options.user, "bytes": output.stat().st_size}


def _baseline(name: str) -> Any:
    sys.path.insert(0, str(HERE / "baselines"))
    return __import__(name)


def step_floor_load(options: argparse.Namespace) -> dict[str, Any]:
    floor = _baseline("duckdb_floor")
    return {"rows": floor.load_files(options.data, options.work / "floor.duckdb")}


def step_floor_join(options: argparse.Namespace) -> dict[str, Any]:
    floor = _baseline("duckdb_floor")
    return {"rows": floor.bare_range_join(options.work / "floor.duckdb")}


def step_store_join(options: argparse.Namespace) -> dict[str, Any]:
    floor = _baseline("duckdb_floor")
    return {"rows": floor.store_range_join(Path(_store(options)))}


def step_pandas(options: argparse.Namespace) -> dict[str, Any]:
    return _baseline("pandas_correlation").correlate(options.data)


def step_pandas_columns(options: argparse.Namespace) -> dict[str, Any]:
    return _baseline("pandas_correlation").correlate(options.data, used_columns_only=True)


def step_sqlite_load(options: argparse.Namespace) -> dict[str, Any]:
    database = options.work / "baseline.sqlite"
    database.unlink(missing_ok=True)
    return _baseline("sqlite_correlation").load_files(options.data, database)


def step_sqlite_query(options: argparse.Namespace) -> dict[str, Any]:
    return _baseline("sqlite_correlation").correlate(options.work / "baseline.sqlite")


STEP_FUNCTIONS = {
    "simulate": step_simulate,
    "ingest": step_ingest,
    "check": step_check,
    "report": step_report,
    "floor-load": step_floor_load,
    "floor-join": step_floor_join,
    "store-join": step_store_join,
    "pandas": step_pandas,
    "pandas-columns": step_pandas_columns,
    "sqlite-load": step_sqlite_load,
    "sqlite-query": step_sqlite_query,
}


if __name__ == "__main__":
    main()
