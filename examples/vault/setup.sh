#!/usr/bin/env bash
# From an empty Vault/OpenBao to what one scoped-mcp agent type needs to start:
#
#   BAO_ADDR=http://127.0.0.1:8200 BAO_TOKEN=<admin token> ./setup.sh notifier [research ...]
#
# For each agent type:
#   1. secrets_backends/vault/bootstrap.sh: KV v2 at secret/, AppRole, the policy
#      scoped-mcp-<type> (read secret/scoped-mcp/<type> and secret/scoped-mcp/shared, nothing
#      else) and the AppRole role scoped-mcp-<type>;
#   2. if $SEED_DIR/<type>.json exists (a JSON object KEY: value), writes it to
#      secret/scoped-mcp/<type>, reading it from the file (never from a command line);
#   3. writes $CONFIG_DIR/<type>/role-id and a response-wrapped secret-id in
#      $CONFIG_DIR/<type>/secret-id (both 0600). The server unwraps the secret-id once, at
#      start-up; before each later start, issue a fresh one:  ./setup.sh --secret-id <type>
#   4. with PG_HOST set: secrets_backends/vault/database.sh for the role scoped-mcp-<type>
#      (dynamic PostgreSQL logins; see secrets_backends/vault/README.md for its PG_* settings).
#
# Settings: CONFIG_DIR (default ~/.config/scoped-mcp/vault), SEED_DIR (default ./seed),
# WRAP_TTL (default 10m: how long the wrapped secret-id may wait for the server), BAO (the CLI,
# default bao; the vault CLI works too).
set -euo pipefail

BAO=${BAO:-bao}
: "${BAO_ADDR:?set BAO_ADDR to the server address}"
: "${BAO_TOKEN:?set BAO_TOKEN to an admin token}"
export BAO_ADDR BAO_TOKEN BAO
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
backend="$here/../../secrets_backends/vault"
CONFIG_DIR=${CONFIG_DIR:-$HOME/.config/scoped-mcp/vault}
SEED_DIR=${SEED_DIR:-$here/seed}
WRAP_TTL=${WRAP_TTL:-10m}
umask 077

issue_secret_id() {  # a response-wrapped secret-id: only the server that unwraps it learns it
  local type=$1
  "$BAO" write -wrap-ttl="$WRAP_TTL" -field=wrapping_token -f \
    "auth/approle/role/scoped-mcp-$type/secret-id" >"$CONFIG_DIR/$type/secret-id.new"
  mv "$CONFIG_DIR/$type/secret-id.new" "$CONFIG_DIR/$type/secret-id"
  echo "$type: wrapped secret-id in $CONFIG_DIR/$type/secret-id (valid $WRAP_TTL, one use)"
}

if [ "${1:-}" = "--secret-id" ]; then
  shift
  for type in "$@"; do issue_secret_id "$type"; done
  exit 0
fi
[ "$#" -gt 0 ] || { echo "usage: $0 AGENT_TYPE... | $0 --secret-id AGENT_TYPE..." >&2; exit 2; }

bash "$backend/bootstrap.sh" "$@" >/dev/null
for type in "$@"; do
  mkdir -p "$CONFIG_DIR/$type"
  if [ -f "$SEED_DIR/$type.json" ]; then
    "$BAO" kv put -mount=secret "scoped-mcp/$type" - <"$SEED_DIR/$type.json" >/dev/null
    echo "$type: secret/scoped-mcp/$type written from $SEED_DIR/$type.json"
  fi
  "$BAO" read -field=role_id "auth/approle/role/scoped-mcp-$type/role-id" >"$CONFIG_DIR/$type/role-id"
  echo "$type: role-id in $CONFIG_DIR/$type/role-id"
  issue_secret_id "$type"
  if [ -n "${PG_HOST:-}" ]; then
    bash "$backend/database.sh" "scoped-mcp-$type"
  fi
done
