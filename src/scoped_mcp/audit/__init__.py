"""Audit trail (JSON lines, one record per event) and the operational log on stderr."""
