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

    finished = subprocess.run(
        [
            sys.executable,
            str(SCALE),
            "--uses",
            "1000",
            "--data-dir",
            str(tmp_path),
            "--baselines",
            *baselines,
        ],  # fmt: skip
        capture_output=True,
        text=True,
        timeout=240,
    )

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
