"""The notebooks under notebooks/ run top to bottom, draw their charts, write nothing
into the repository, and are committed without outputs."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat", reason="the dev extra (nbformat) is missing")
nbclient = pytest.importorskip("nbclient", reason="the dev extra (nbclient) is missing")
pytest.importorskip("ipykernel", reason="the dev extra (ipykernel) is missing")

from nbclient.exceptions import CellExecutionError  # noqa: E402

from tests.test_report import FORBIDDEN_CLAIMS  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"
NOTEBOOK_PATHS = sorted(NOTEBOOKS.glob("*.ipynb"))
# Where a notebook could write by mistake: the folder it runs in and the data it reads.
WATCHED = (NOTEBOOKS, ROOT / "fixtures")


def run_notebook(path: Path, *, timeout: int = 120) -> nbformat.NotebookNode:
    """Execute ``path`` top to bottom in a python3 kernel, working in its own folder as
    Jupyter would; return the executed notebook. A failing cell raises
    ``CellExecutionError`` naming the cell and its error."""
    notebook = nbformat.read(path, as_version=4)
    client = nbclient.NotebookClient(
        notebook,
        timeout=timeout,
        kernel_name="python3",
        resources={"metadata": {"path": str(path.parent)}},
    )
    client.execute()
    return notebook


def watched_files() -> dict[Path, int]:
    """Every file under the watched folders with its modification time."""
    found = {}
    for folder in WATCHED:
        for path in folder.rglob("*"):
            if path.is_file() and "__pycache__" not in path.parts:
                found[path] = path.stat().st_mtime_ns
    return found


@pytest.fixture(scope="module")
def executed() -> dict[str, tuple[nbformat.NotebookNode, float]]:
    """Each notebook run once, with the seconds it took; the notebooks' folder and the
    fixtures checked to be untouched by the runs."""
    before = watched_files()
    results = {}
    for path in NOTEBOOK_PATHS:
        started = time.monotonic()
        results[path.name] = (run_notebook(path), time.monotonic() - started)
    after = watched_files()
    changed = sorted(
        str(path.relative_to(ROOT)) for path in after if after[path] != before.get(path)
    )
    assert not changed, f"running the notebooks wrote into the repository: {changed}"
    return results


def outputs_of(notebook: nbformat.NotebookNode, mime: str) -> list[str]:
    return [
        output["data"][mime]
        for cell in notebook.cells
        if cell.cell_type == "code"
        for output in cell.outputs
        if "data" in output and mime in output["data"]
    ]


def text_of(notebook: nbformat.NotebookNode) -> str:
    parts = []
    for cell in notebook.cells:
        if cell.cell_type == "markdown":
            parts.append(cell.source)
        for output in cell.get("outputs", []):
            parts.append(output.get("text", ""))
            parts.append(output.get("data", {}).get("text/plain", ""))
    return "\n".join(parts)


def test_the_two_notebooks_of_the_issue_are_there() -> None:
    names = [path.name for path in NOTEBOOK_PATHS]
    assert "01-lost-laptop.ipynb" in names
    assert "02-simulated-month.ipynb" in names


@pytest.mark.parametrize("path", NOTEBOOK_PATHS, ids=lambda path: path.name)
def test_a_notebook_is_committed_without_outputs(path: Path) -> None:
    notebook = nbformat.read(path, as_version=4)
    nbformat.validate(notebook)
    assert notebook.metadata["kernelspec"]["name"] == "python3"
    for cell in notebook.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None, cell.source[:60]


@pytest.mark.parametrize("path", NOTEBOOK_PATHS, ids=lambda path: path.name)
def test_a_notebook_runs_top_to_bottom_and_draws_its_charts(
    path: Path, executed: dict[str, tuple[nbformat.NotebookNode, float]]
) -> None:
    notebook, seconds = executed[path.name]
    code_cells = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert all(cell.execution_count is not None for cell in code_cells)
    errors = [o for cell in code_cells for o in cell.outputs if o.output_type == "error"]
    assert not errors

    charts = outputs_of(notebook, "image/svg+xml")
    assert len(charts) >= 2
    assert all(chart.lstrip().startswith("<svg") for chart in charts)
    assert seconds < 60


def test_the_lost_laptop_notebook_finds_the_record_revoked_at_noon(
    executed: dict[str, tuple[nbformat.NotebookNode, float]],
) -> None:
    text = text_of(executed["01-lost-laptop.ipynb"][0])
    assert "record 23a5fb0f-5ac5-4383-83b0-22c57e7dab75 (Edge on Windows)" in text
    assert "7 token uses of tokens issued before the revocation" in text
    assert "needs_review new_client_after_revocation" in text
    assert "secret:f330805f-adfa-46a2-aa71-322b13e98eb3" in text


def test_the_simulated_month_agrees_with_its_ground_truth(
    executed: dict[str, tuple[nbformat.NotebookNode, float]],
) -> None:
    text = text_of(executed["02-simulated-month.ipynb"][0])
    assert " 0 disagreements" in text


@pytest.mark.parametrize("path", NOTEBOOK_PATHS, ids=lambda path: path.name)
def test_no_notebook_says_a_revocation_ended_a_token_or_session(
    path: Path, executed: dict[str, tuple[nbformat.NotebookNode, float]]
) -> None:
    text = text_of(executed[path.name][0])
    assert not FORBIDDEN_CLAIMS.search(text), FORBIDDEN_CLAIMS.search(text)


def test_a_broken_cell_fails_the_runner(tmp_path: Path) -> None:
    broken = nbformat.v4.new_notebook(
        cells=[
            nbformat.v4.new_code_cell("x = 1"),
            nbformat.v4.new_code_cell('raise ValueError("this cell is broken")'),
            nbformat.v4.new_code_cell("y = 2"),
        ]
    )
    path = tmp_path / "broken.ipynb"
    nbformat.write(broken, path)

    with pytest.raises(CellExecutionError, match="this cell is broken"):
        run_notebook(path, timeout=60)


def test_the_kernel_is_this_environments_python(tmp_path: Path) -> None:
    probe = nbformat.v4.new_notebook(
        cells=[nbformat.v4.new_code_cell("import sys, vault_audit\nprint(sys.prefix)")]
    )
    path = tmp_path / "probe.ipynb"
    nbformat.write(probe, path)

    printed = run_notebook(path, timeout=60).cells[0].outputs[0]["text"]
    assert printed.strip() == sys.prefix
