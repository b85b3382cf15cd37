"""limit_rate sits after resolve_scopes and before write_ahead, so a refusal costs nothing."""

from __future__ import annotations

from scoped_mcp import pipeline


def test_limit_rate_runs_after_scopes_and_before_anything_is_written_or_run() -> None:
    """Order: resolve_scopes, limit_rate, (approval, if any), write_ahead, run_body."""
    steps = list(pipeline.STEPS)
    at = steps.index(pipeline.limit_rate)
    assert steps.index(pipeline.resolve_scopes) < at < steps.index(pipeline.write_ahead)
    assert steps[-2:] == [pipeline.write_ahead, pipeline.run_body]
