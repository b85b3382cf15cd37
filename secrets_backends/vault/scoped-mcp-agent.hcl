# Policy for the scoped-mcp broker of one agent type. bootstrap.sh installs it once per type as
# "scoped-mcp-<type>", with @AGENT_TYPE@ replaced by the type. It grants read on that type's own
# secrets and the shared ones, nothing else. The default policy (attached too) already lets the
# token look itself up, renew and revoke itself, and check its capabilities.

# KV v2 (mount "secret"): the type's own secret and the shared one.
path "secret/data/scoped-mcp/@AGENT_TYPE@" {
  capabilities = ["read"]
}
path "secret/data/scoped-mcp/shared" {
  capabilities = ["read"]
}

# KV v1 (mount "kv1"): the same layout without the data/ segment.
path "kv1/scoped-mcp/@AGENT_TYPE@" {
  capabilities = ["read"]
}

# Dynamic database credentials for this type, and revoking only those leases at shutdown.
path "database/creds/scoped-mcp-@AGENT_TYPE@" {
  capabilities = ["read"]
}
path "sys/leases/revoke/database/creds/scoped-mcp-@AGENT_TYPE@/*" {
  capabilities = ["update"]
}
