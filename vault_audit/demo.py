"""The demo: a simulated world taken through the whole flow in well under a minute.

Simulate logs, ingest them into a fresh store, run the check, and write the report of
the user whose findings are the most anomalous.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

from vault_audit import store
from vault_audit.errors import UsageError
from vault_audit.report import Selection, most_anomalous_user, write_report
from vault_audit.settings import Settings

log = logging.getLogger(__name__)

STORE_NAME = "vault-audit.duckdb"
REPORT_NAME = "report.html"

# Ingest order: device-session facts and the identity provider's before the token uses.
_INPUTS = (
    "vault-events",
    "device-sessions",
    "supabase-audit",
    "supabase-sessions",
    "access-log",
)


@dataclass(frozen=True)
class DemoResult:
    """What the demo wrote."""

    out_dir: Path
    data_dir: Path
    store_path: Path
    report_path: Path | None
    user_id: str | None
    token_uses: int
    findings: int
    seconds: float

    def lines(self) -> list[str]:
        """What to tell the user: what was written and how to open the report."""
        lines = [
            f"simulated logs: {self.data_dir}",
            f"store:          {self.store_path} ({self.token_uses:,} token uses, "
            f"{self.findings:,} findings)",
        ]
        if self.report_path is None:
            lines.append("no finding in the simulated world, so no report was written")
            return lines
        url = self.report_path.resolve().as_uri()
        lines += [
            f"report:         {self.report_path} (user {self.user_id})",
            f"open it with:   {_opener()} {self.report_path}",
            f"or browse to:   {url}",
            f"done in {self.seconds:.1f} s",
        ]
        return lines


def run_demo(out_dir: str | Path, *, users: int = 12, seed: int = 0) -> DemoResult:
    """Simulate, ingest, check and report into ``out_dir``; the store there is new."""
    try:
        from vault_audit.correlate import run_check
        from vault_audit.ingest import ingest_files
        from vault_audit.simulate import simulate_world
    except ImportError as error:
        raise UsageError(f"the demo needs a complete vault-audit install: {error}") from None

    started = time.monotonic()
    out = Path(out_dir)
    data_dir = out / "data"
    store_path = out / STORE_NAME
    out.mkdir(parents=True, exist_ok=True)
    for leftover in (store_path, store_path.with_name(STORE_NAME + ".wal")):
        leftover.unlink(missing_ok=True)

    summary = simulate_world(data_dir, users=users, days=1, seed=seed)
    settings = Settings(db=str(store_path), jwks=_jwks_file(data_dir, summary))
    files = [data_dir / f"{kind}.jsonl" for kind in _INPUTS]

    with store.opened(store_path) as connection:
        for kind, path in zip(_INPUTS, files, strict=True):
            if path.exists():
                ingest_files(connection, [path], kind=kind, settings=settings)
        check = run_check(connection, settings)
        user_id = most_anomalous_user(connection)
        row = connection.execute("select count(*) from token_uses").fetchone()
        token_uses = int(row[0]) if row else 0

    report_path = None
    if user_id is not None:
        report_path = out / REPORT_NAME
        write_report(settings, Selection(user_id=user_id), report_path)

    result = DemoResult(
        out_dir=out,
        data_dir=data_dir,
        store_path=store_path,
        report_path=report_path,
        user_id=user_id,
        token_uses=token_uses,
        findings=check.findings,
        seconds=time.monotonic() - started,
    )
    log.info("demo written to %s in %.1f s", out, result.seconds)
    return result


def _jwks_file(data_dir: Path, summary: object) -> str | None:
    named = getattr(summary, "jwks_path", None)
    path = Path(named) if named else data_dir / "jwks.json"
    return str(path) if path.exists() else None


def _opener() -> str:
    import sys

    if sys.platform == "darwin":
        return "open"
    if sys.platform.startswith("win"):
        return "start"
    return "xdg-open"
