# Policy for one dynamic PostgreSQL role. database.sh installs it once per role as
# "scoped-mcp-db-<role>", with @MOUNT@ and @ROLE@ replaced. Attach it to the token or AppRole role
# of the agent that uses the role; it grants nothing else.

# Issue a credential (a new PostgreSQL role with its own password and lease).
path "@MOUNT@/creds/@ROLE@" {
  capabilities = ["read"]
}

# Renew a lease by id (the id travels in the body). The default policy grants this too; it is
# repeated here for tokens created without the default policy.
path "sys/leases/renew" {
  capabilities = ["update"]
}

# Revoke at shutdown, or after an early replacement: only this role's leases, by path.
path "sys/leases/revoke/@MOUNT@/creds/@ROLE@/*" {
  capabilities = ["update"]
}
