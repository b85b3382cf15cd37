"""Test helpers that ship with scoped-mcp, so third-party backends can prove themselves."""
