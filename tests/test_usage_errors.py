"""Bad usage reads like every other error (CONTRACT.md section 4): one line on standard
error, ``vault-audit: error: ...``, exit status 2. Run as a real process so stderr is
what a terminal or a script sees."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import click
import pytest

from vault_audit.cli import main

PREFIX = "vault-audit: error: "


def run_cli(*arguments: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("VAULT_AUDIT_")}
    return subprocess.run(
        [
            sys.executable,
            "-c",
            "from vault_audit.cli import main; main(prog_name='vault-audit')",
            *arguments,
        ],
        cwd=cwd,
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
    )


def assert_one_line_usage_error(
    result: subprocess.CompletedProcess[str], message: str, command: str
) -> None:
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(PREFIX)
    assert message in lines[0]
    assert f"(see '{command} --help')" in lines[0]
    assert result.stdout == ""
    assert result.returncode == 2


def test_a_bad_format_is_one_line_on_stderr_and_exit_2(tmp_path: Path) -> None:
    result = run_cli("check", "--format", "xml", cwd=tmp_path)
    assert_one_line_usage_error(
        result, "Invalid value for '--format': 'xml' is not one of", "vault-audit check"
    )


def test_a_leeway_that_is_not_a_number_is_one_line_and_exit_2(tmp_path: Path) -> None:
    result = run_cli("check", "--leeway", "abc", cwd=tmp_path)
    assert_one_line_usage_error(
        result, "Invalid value for '--leeway': 'abc' is not a valid integer", "vault-audit check"
    )


def test_an_unknown_option_is_one_line_and_exit_2(tmp_path: Path) -> None:
    result = run_cli("check", "--bogus", cwd=tmp_path)
    assert_one_line_usage_error(result, "No such option '--bogus'", "vault-audit check")


def test_an_unknown_group_option_is_one_line_and_exit_2(tmp_path: Path) -> None:
    result = run_cli("--bogus", "check", cwd=tmp_path)
    assert_one_line_usage_error(result, "No such option '--bogus'", "vault-audit")


def test_a_missing_required_option_is_one_line_and_exit_2(tmp_path: Path) -> None:
    result = run_cli("report", "--db", str(tmp_path / "store.duckdb"), cwd=tmp_path)
    assert_one_line_usage_error(result, "Missing option '--output'", "vault-audit report")


def test_ingest_without_a_file_is_one_line_and_exit_2(tmp_path: Path) -> None:
    result = run_cli("ingest", "--db", str(tmp_path / "store.duckdb"), cwd=tmp_path)
    assert_one_line_usage_error(result, "give at least one FILE", "vault-audit ingest")


def test_an_unknown_command_is_one_line_and_exit_2(tmp_path: Path) -> None:
    result = run_cli("nosuch", cwd=tmp_path)
    assert_one_line_usage_error(result, "No such command 'nosuch'", "vault-audit")


def test_check_help_still_prints_usage_to_stdout_and_exits_0(tmp_path: Path) -> None:
    result = run_cli("check", "--help", cwd=tmp_path)
    assert result.returncode == 0
    assert result.stdout.startswith("Usage: vault-audit check [OPTIONS]")
    assert "--format" in result.stdout
    assert result.stderr == ""


def test_without_standalone_mode_a_usage_error_is_still_raised_to_the_caller() -> None:
    """benchmarks/ call main(..., standalone_mode=False) and expect click to raise."""
    with pytest.raises(click.BadParameter, match="'xml' is not one of"):
        main(["check", "--format", "xml"], standalone_mode=False)
