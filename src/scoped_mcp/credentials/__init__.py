"""Credentials: modules get a view limited to the keys they declared; the agent gets none."""
