"""The report in a real browser: headless Chromium opens it without a console error
or a blocked fetch, renders a screenshot and prints it to PDF. Skipped on a machine
without Chromium; in CI (the CI variable set), where scripts/services/chromium.sh
installs it, a missing Chromium fails the tests instead."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Mapping
from pathlib import Path

import pytest

from tests import report_world
from tests.report_world import ALICE
from vault_audit.report import Selection, write_report
from vault_audit.settings import Settings

CHROMIUM = Path("/usr/bin/chromium")
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--hide-scrollbars",
    "--enable-logging=stderr",
    "--v=0",
]
# What Chromium logs when a page's script fails or the page tries to fetch something
# its Content-Security-Policy (default-src 'none') refuses.
PAGE_PROBLEMS = re.compile(
    r"Uncaught|CONSOLE[:(]\d+|Refused to|Content Security Policy|net::ERR_", re.IGNORECASE
)


def in_ci(environment: Mapping[str, str] = os.environ) -> bool:
    """Whether the CI variable says so (CI=true in CI; empty, 0 or false say not)."""
    return environment.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def require_chromium(path: Path = CHROMIUM, environment: Mapping[str, str] = os.environ) -> None:
    """Skip where Chromium is missing, except in CI, where it must be there."""
    if path.exists():
        return
    if in_ci(environment):
        pytest.fail(
            f"{path} is not installed, and CI is set: scripts/services/chromium.sh should "
            "have installed it, so the browser tests would silently not run",
            pytrace=False,
        )
    pytest.skip(f"{path} is not installed (scripts/services/chromium.sh installs it)")


@pytest.fixture
def browser() -> Path:
    require_chromium()
    return CHROMIUM


def test_a_missing_chromium_fails_in_ci_and_skips_elsewhere(tmp_path: Path) -> None:
    missing = tmp_path / "no-chromium"

    with pytest.raises(pytest.fail.Exception, match="CI is set"):
        require_chromium(missing, {"CI": "true"})
    with pytest.raises(pytest.skip.Exception, match="not installed"):
        require_chromium(missing, {})
    with pytest.raises(pytest.skip.Exception):
        require_chromium(missing, {"CI": "false"})
    require_chromium(Path(__file__), {"CI": "true"})


def chromium(tmp_path: Path, *arguments: str) -> subprocess.CompletedProcess[str]:
    profile = tmp_path / "profile"
    return subprocess.run(
        [str(CHROMIUM), *FLAGS, f"--user-data-dir={profile}", *arguments],
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )


def small_world_report(tmp_path: Path) -> Path:
    """Alice's report of the small hand-made world, written to ``tmp_path``."""
    world = report_world.build_small_world(tmp_path / "world.duckdb")
    page = tmp_path / "report.html"
    write_report(Settings(db=str(world)), Selection(user_id=ALICE), page)
    return page


@pytest.mark.usefixtures("browser")
def test_chromium_renders_the_report_without_errors(tmp_path: Path) -> None:
    page = small_world_report(tmp_path)
    screenshot = tmp_path / "report.png"

    shot = chromium(
        tmp_path, f"--screenshot={screenshot}", "--window-size=1280,2000", page.as_uri()
    )
    dom = chromium(tmp_path, "--dump-dom", page.as_uri())

    assert shot.returncode == 0, shot.stderr[-2000:]
    problems = [
        line for line in (shot.stderr + dom.stderr).splitlines() if PAGE_PROBLEMS.search(line)
    ]
    assert problems == []
    png = screenshot.read_bytes()
    assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 20_000
    assert 'id="summary"' in dom.stdout and "<svg" in dom.stdout
    assert "<script" not in dom.stdout.lower()

    # A copy for a human to look at, outside the repository's tracked files.
    keep = Path("/work/notes")
    if keep.is_dir() and shutil.os.access(keep, shutil.os.W_OK):
        shutil.copyfile(screenshot, keep / "report.png")


@pytest.mark.usefixtures("browser")
def test_chromium_prints_the_report_on_a4_landscape_pages(tmp_path: Path) -> None:
    page = small_world_report(tmp_path)
    pdf = tmp_path / "report.pdf"

    printed = chromium(tmp_path, "--no-pdf-header-footer", f"--print-to-pdf={pdf}", page.as_uri())

    assert printed.returncode == 0, printed.stderr[-2000:]
    document = pdf.read_bytes()
    assert document.startswith(b"%PDF")
    # A4 landscape is 842 x 595 points; every page has that box.
    boxes = re.findall(rb"/MediaBox \[0 0 ([\d.]+) ([\d.]+)\]", document)
    assert boxes
    assert all(
        round(float(width)) == 842 and round(float(height)) == 595 for width, height in boxes
    )
