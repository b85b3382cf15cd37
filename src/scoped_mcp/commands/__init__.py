"""The operator commands behind ``scoped-mcp``'s sub-commands, one file each."""
