"""Settings: an option wins over a VAULT_AUDIT_* variable, which wins over the file."""

from __future__ import annotations

from pathlib import Path

import pytest

from vault_audit.errors import UsageError
from vault_audit.settings import Settings, load_settings


def test_the_file_is_read_then_the_environment_wins_then_an_option(tmp_path: Path) -> None:
    (tmp_path / "vault-audit.toml").write_text('db = "from-file.duckdb"\nleeway = 5\n')

    from_file = load_settings(tmp_path, environ={})
    from_env = load_settings(tmp_path, environ={"VAULT_AUDIT_DB": "from-env.duckdb"})
    from_option = from_env.with_options(db="from-option.duckdb", leeway=None)

    assert (from_file.db, from_file.leeway) == ("from-file.duckdb", 5)
    assert (from_env.db, from_env.leeway) == ("from-env.duckdb", 5)
    assert (from_option.db, from_option.leeway) == ("from-option.duckdb", 5)


def test_without_file_or_variable_the_store_is_in_the_working_folder(tmp_path: Path) -> None:
    assert load_settings(tmp_path, environ={}) == Settings()
    assert Settings().db == "vault-audit.duckdb"


def test_a_secret_in_the_settings_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "vault-audit.toml").write_text('jwt_secret = "hunter2"\n')

    with pytest.raises(UsageError, match="secrets are read only from the environment") as error:
        load_settings(tmp_path, environ={})
    assert "hunter2" not in str(error.value)


def test_an_unknown_setting_or_a_bad_number_is_a_usage_error(tmp_path: Path) -> None:
    (tmp_path / "vault-audit.toml").write_text("colour = 'blue'\n")
    with pytest.raises(UsageError, match="unknown setting 'colour'"):
        load_settings(tmp_path, environ={})

    with pytest.raises(UsageError, match="leeway must be a number"):
        load_settings(tmp_path / "elsewhere", environ={"VAULT_AUDIT_LEEWAY": "soon"})
