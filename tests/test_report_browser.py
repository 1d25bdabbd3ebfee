"""The report in a real browser: headless Chromium opens it without a console error
or a blocked fetch, and renders a screenshot. Skipped where Chromium is not installed
(scripts/services/chromium.sh installs it)."""

from __future__ import annotations

import re
import shutil
import subprocess
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

pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(),
    reason="/usr/bin/chromium is not installed (scripts/services/chromium.sh)",
)


def chromium(tmp_path: Path, *arguments: str) -> subprocess.CompletedProcess[str]:
    profile = tmp_path / "profile"
    return subprocess.run(
        [str(CHROMIUM), *FLAGS, f"--user-data-dir={profile}", *arguments],
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )


def test_chromium_renders_the_report_without_errors(tmp_path: Path) -> None:
    world = report_world.build_small_world(tmp_path / "world.duckdb")
    page = tmp_path / "report.html"
    write_report(Settings(db=str(world)), Selection(user_id=ALICE), page)
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
