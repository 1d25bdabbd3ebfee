"""The verdicts of a simulated world of over 100,000 requests equal its ground truth:
precision and recall 1.0 for every reason. And the check's JSON output of the
committed fixture world is pinned by golden files."""

from __future__ import annotations

import json
import os
from collections import Counter
from pathlib import Path

import pytest
from click.testing import CliRunner

from tests.test_simulate import KINDS, ground_truth, ingest_and_check
from vault_audit.cli import main
from vault_audit.simulate import REASONS, simulate_world

ROOT = Path(__file__).resolve().parent.parent
FIXTURE_WORLD = ROOT / "fixtures" / "world"
GOLDEN = Path(__file__).resolve().parent / "golden"


def test_every_reason_has_precision_and_recall_1_on_a_world_of_100k_requests(
    tmp_path: Path,
) -> None:
    summary = simulate_world(tmp_path / "world", users=115, days=2, seed=11, fmt="parquet")
    assert summary.access_rows >= 100_000

    results, found = ingest_and_check(summary.out_dir, tmp_path, ext="parquet")
    import pyarrow.parquet as pq

    truth = {
        row["request_id"]: (row["verdict"], row["reason"])
        for row in pq.read_table(summary.files["ground_truth"]).to_pylist()
    }

    assert all(result.quarantined == 0 for result in results)
    assert set(Counter(reason for _, reason in truth.values())) == set(REASONS)
    for reason in REASONS:
        expected = {request for request, (_, why) in truth.items() if why == reason}
        got = {request for request, (_, why) in found.items() if why == reason}
        true_positives = len(expected & got)
        assert (true_positives / len(got), true_positives / len(expected)) == (1.0, 1.0), reason
    assert found == truth


def _check_fixture_world(tmp_path: Path, detail: str) -> str:
    database = str(tmp_path / "store.duckdb")
    runner = CliRunner()
    paths = [str(FIXTURE_WORLD / f"{kind}.jsonl") for kind in KINDS]
    ingested = runner.invoke(
        main, ["ingest", "--db", database, "--jwks", str(FIXTURE_WORLD / "jwks.json"), *paths]
    )
    assert ingested.exit_code == 1, ingested.output  # the fixture's bad lines
    checked = runner.invoke(
        main, ["check", "--db", database, "--format", "json", "--detail", detail]
    )
    assert checked.exit_code == 1, checked.output  # the world holds anomalies
    return checked.stdout


@pytest.mark.parametrize("detail", ["findings", "uses"])
def test_check_json_of_the_fixture_world_matches_its_golden_file(
    tmp_path: Path, detail: str
) -> None:
    output = _check_fixture_world(tmp_path, detail)
    golden = GOLDEN / f"fixture_world_{detail}.json"

    if os.environ.get("VAULT_AUDIT_UPDATE_GOLDEN"):
        golden.write_text(output)
    assert json.loads(output) == json.loads(golden.read_text())


def test_the_fixture_world_verdicts_equal_its_ground_truth(tmp_path: Path) -> None:
    _, found = ingest_and_check(FIXTURE_WORLD, tmp_path)

    assert found == ground_truth(FIXTURE_WORLD)
