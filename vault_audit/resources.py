"""Where the SQL files and report templates live, installed or in a checkout."""

from __future__ import annotations

from functools import cache
from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent


@cache
def resource_dir(name: str) -> Path:
    """Return the folder ``queries`` or ``reports``.

    A wheel carries them inside the package; a checkout (or an editable install)
    keeps them at the top of the repository.
    """
    for candidate in (_PACKAGE / name, _PACKAGE.parent / name):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(f"the {name} folder is missing from the vault-audit install")


def read_query(relative: str) -> str:
    """Return the text of ``queries/<relative>``."""
    return (resource_dir("queries") / relative).read_text(encoding="utf-8")
