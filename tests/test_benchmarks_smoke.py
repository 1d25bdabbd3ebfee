"""The scale benchmark still runs end to end on a tiny world, so it cannot rot unseen."""

from __future__ import annotations

import importlib.util
import json
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SCALE = ROOT / "benchmarks" / "scale.py"


def test_the_scale_benchmark_prints_its_table_on_a_tiny_world(tmp_path: Path) -> None:
    # pandas comes with the `bench` extra only; the other baselines need nothing more.
    baselines = ["floor", "sqlite"]
    if importlib.util.find_spec("pandas") is not None:
        baselines.append("pandas")

    finished = _scale(tmp_path, "--baselines", *baselines)

    assert finished.returncode == 0, finished.stderr
    output = finished.stdout
    assert "| step | seconds | rows/s | peak MiB | vs floor | load avg |" in output
    for label in (
        "floor: DuckDB load of the 5 files",
        "vault-audit ingest (5 files)",
        "bare range join on vault-audit's store",
        "vault-audit check",
        "vault-audit report --user",
        "sqlite: correlation query",
    ):
        assert re.search(rf"\| {re.escape(label)} \| \d+\.\d\d \|", output), label
    if "pandas" in baselines:
        # Both pandas steps: every file read whole, and only the columns the rules use.
        for label in ("pandas: read + decode", "pandas, used columns only: read + decode"):
            assert re.search(rf"\| {re.escape(label)} \+ correlate \| \d+\.\d\d \|", output)
        assert re.search(r"token uses in scope: .*pandas \(used columns only\) \d", output)
    assert "target under 4,096 MiB" in output
    assert re.search(r"check vs the bare range join on the same store: .*\d+\.\dx", output)

    # Every tool that implements the scope puts the same token uses in it.
    scoped = re.search(r"token uses in scope: (.*)", output)
    assert scoped, output
    counts = {int(count.replace(",", "")) for count in re.findall(r" ([\d,]+)", scoped.group(1))}
    assert len(counts) == 1 and counts.pop() > 0, scoped.group(0)

    results = json.loads((tmp_path / "scale-results-1000-seed0.json").read_text())
    assert set(results["steps"]) >= {
        "ingest",
        "store-join",
        "check",
        "report",
        "floor-load",
        "floor-join",
    }
    assert not (tmp_path / "scale-1000-seed0-work").exists()


def test_a_step_over_the_memory_cap_is_stopped_and_shown_as_stopped(tmp_path: Path) -> None:
    finished = _scale(tmp_path, "--baselines", "sqlite", "--memory-cap-mib", "1")

    # vault-audit's own steps over the cap stop the run: no figure of theirs is partial.
    assert finished.returncode != 0
    assert "step simulate" not in finished.stderr
    assert re.search(r"step ingest stopped: over 1 MiB after \d+ s", finished.stderr)


def _scale(data_dir: Path, *options: str) -> subprocess.CompletedProcess[str]:
    """``scale.py`` run on a world of 1,000 uses in ``data_dir``."""
    return subprocess.run(
        [sys.executable, str(SCALE), "--uses", "1000", "--data-dir", str(data_dir), *options],
        capture_output=True,
        text=True,
        timeout=240,
    )


def _scale_module():
    spec = importlib.util.spec_from_file_location("scale", SCALE)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_a_baseline_stopped_over_the_cap_is_a_lower_bound_and_the_run_goes_on(
    tmp_path: Path, monkeypatch
) -> None:
    scale = _scale_module()
    world = {"users": 2, "days": 1, "access_rows": 1000}
    monkeypatch.setattr(scale, "generated_world", lambda *_: (tmp_path, world))
    ran = []

    def run_step(step, data, work, *, user=None, cap_mib=None):
        ran.append(step)
        if step == "pandas":
            return {"seconds": 30.0, "stopped": "over 21,504 MiB after 30 s",
                    "peak_mib": 21600.0, "load_average": 1.0}  # fmt: skip
        figures = {"seconds": 10.0, "peak_mib": 100.0, "load_average": 1.0, "rows": 5}
        if step == "check":
            figures.update(most_anomalous_user="u1", in_scope=7)
        if step == "report":
            figures["user"] = "u1"
        return figures

    monkeypatch.setattr(scale, "run_step", run_step)
    results = scale.measure_size(1000, 0, tmp_path, ["pandas", "sqlite"], keep=False)
    assert ran[ran.index("pandas") + 1 :] == ["pandas-columns", "sqlite-load", "sqlite-query"]

    table = scale.render_results(results)
    assert (
        "| pandas: read + decode + correlate | stopped: over 21,504 MiB after 30 s | - |" in table
    )
    # ingest + check took 20 s; pandas ran 30 s and did not finish.
    assert (
        "vs pandas: 20.0 s vs not finished (pandas stopped: over 21,504 MiB after 30 s); "
        "vault-audit is at least 1.50x faster" in table
    )
    assert "token uses in scope: vault-audit 7" in table
