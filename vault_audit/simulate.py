"""The simulator's public surface: ``simulate_world`` and its ``SimulationSummary``.

The world is planned in ``vault_audit.simulation.plan``, played through Vault's
backend in ``vault_audit.simulation.run``, and labelled by the contract's verdict
table in ``vault_audit.simulation.truth``.
"""

from __future__ import annotations

from vault_audit.simulation import (
    DEFAULT_RATES,
    REASONS,
    SECRET_ENV,
    SimulationSummary,
    simulate_world,
)

__all__ = ["DEFAULT_RATES", "REASONS", "SECRET_ENV", "SimulationSummary", "simulate_world"]
