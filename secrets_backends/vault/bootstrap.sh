#!/usr/bin/env bash
# Set up Vault/OpenBao for scoped-mcp: KV v2 at secret/, KV v1 at kv1/, AppRole at approle/,
# and for each agent type a policy and an AppRole role named scoped-mcp-<type>.
#
#   BAO_ADDR=https://vault:8200 BAO_TOKEN=<admin token> ./bootstrap.sh research ops
#
# Idempotent: mounts that exist are kept, policies and roles are rewritten. Token lifetimes of
# the roles: TOKEN_TTL (default 2m, the broker's credentials.vault.lease_ttl: the token is renewed
# while the server runs, so a crashed server's token dies within 2 minutes) and TOKEN_MAX_TTL
# (default 24h: the broker logs in again then). Prints each role-id; issue
# secret-ids separately (one per agent), preferably response-wrapped:
#
#   bao write -wrap-ttl=5m -f auth/approle/role/scoped-mcp-research/secret-id
#
# The test suite runs this very script against a throwaway `bao server -dev`.
set -euo pipefail

BAO=${BAO:-bao}
: "${BAO_ADDR:?set BAO_ADDR to the server address}"
: "${BAO_TOKEN:?set BAO_TOKEN to a token allowed to manage mounts, policies and auth}"
export BAO_ADDR BAO_TOKEN
TOKEN_TTL=${TOKEN_TTL:-2m}
TOKEN_MAX_TTL=${TOKEN_MAX_TTL:-24h}
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

if [ "$#" -eq 0 ]; then
  echo "usage: $0 AGENT_TYPE [AGENT_TYPE...]" >&2
  exit 2
fi

mounts=$("$BAO" secrets list -format=json)
auths=$("$BAO" auth list -format=json)
[[ "$mounts" == *'"secret/"'* ]] || "$BAO" secrets enable -path=secret -version=2 kv >/dev/null
[[ "$mounts" == *'"kv1/"'* ]] || "$BAO" secrets enable -path=kv1 -version=1 kv >/dev/null
[[ "$auths" == *'"approle/"'* ]] || "$BAO" auth enable approle >/dev/null

for agent_type in "$@"; do
  if ! [[ "$agent_type" =~ ^[a-z0-9][a-z0-9_-]*$ ]]; then
    echo "bootstrap.sh: agent type '$agent_type' must be lowercase letters, digits, - and _" >&2
    exit 2
  fi
  name="scoped-mcp-$agent_type"
  sed "s/@AGENT_TYPE@/$agent_type/g" "$here/scoped-mcp-agent.hcl" | "$BAO" policy write "$name" - >/dev/null
  "$BAO" write "auth/approle/role/$name" \
    token_policies="$name" token_ttl="$TOKEN_TTL" token_max_ttl="$TOKEN_MAX_TTL" \
    token_type=service secret_id_ttl=0 secret_id_num_uses=0 >/dev/null
  role_id=$("$BAO" read -field=role_id "auth/approle/role/$name/role-id")
  echo "$name role_id=$role_id"
done
