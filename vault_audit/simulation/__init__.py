"""A seeded world of Vault users, browsers, Supabase sessions and requests, played
through Vault's backend, with the ground truth of every verdict.

``simulate_world`` is the entry point; ``vault_audit.simulate`` re-exports it.
"""

from __future__ import annotations

from vault_audit.simulation.plan import DEFAULT_RATES
from vault_audit.simulation.run import SECRET_ENV, SimulationSummary, simulate_world
from vault_audit.simulation.truth import REASONS

__all__ = ["DEFAULT_RATES", "REASONS", "SECRET_ENV", "SimulationSummary", "simulate_world"]
