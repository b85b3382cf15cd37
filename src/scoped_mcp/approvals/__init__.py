"""Human approval of tool calls: rules, held calls, the control socket and the channels.

Only ``config.py`` is imported for a manifest without ``approvals:``; the rest loads when a
manifest has the block (docs/approvals.md).
"""
