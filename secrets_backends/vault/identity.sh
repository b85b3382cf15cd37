#!/usr/bin/env bash
# Set up OIDC identity tokens (vault-identity:scoped-mcp-<type>) for each agent type, after
# bootstrap.sh. For each type it writes:
#
#   identity/oidc/key/scoped-mcp          the signing key (RS256), shared by the roles
#   identity/oidc/role/scoped-mcp-<type>  the token's template: {"agent_type": "<type>",
#                                         "agent_id": <the entity alias's name>}, TTL ID_TTL
#   auth/token/roles/scoped-mcp-<type>    a token role whose tokens may name their own entity
#                                         alias (allowed_entity_aliases) and carry only the
#                                         policy below
#   policy scoped-mcp-identity-<type>     read identity/oidc/token/scoped-mcp-<type>
#   policy scoped-mcp-identity-minter-<type>  update auth/token/create/scoped-mcp-<type>,
#                                         added to the type's AppRole role
#
# Why a token role: every agent of a type logs in with one AppRole role, hence one entity
# alias, and an alias's metadata is rewritten at each login, so a template reading it would give
# one agent another's id whenever two run at once. Instead the broker creates, for each token
# it needs, a short-lived child token with entity_alias=<its AGENT_ID>: the alias (and so the
# entity) is the agent instance's own, fixed at creation, and nothing is shared between agents.
#
#   BAO_ADDR=... BAO_TOKEN=<admin token> ./identity.sh research ops
set -euo pipefail

BAO=${BAO:-bao}
: "${BAO_ADDR:?set BAO_ADDR to the server address}"
: "${BAO_TOKEN:?set BAO_TOKEN to an admin token}"
export BAO_ADDR BAO_TOKEN
ID_TTL=${ID_TTL:-5m}

accessor=$("$BAO" read -field=accessor sys/auth/token)
"$BAO" write identity/oidc/key/scoped-mcp allowed_client_ids="*" algorithm=RS256 >/dev/null

for agent_type in "$@"; do
  if ! [[ "$agent_type" =~ ^[a-z0-9][a-z0-9_-]*$ ]]; then
    echo "identity.sh: agent type '$agent_type' must be lowercase letters, digits, - and _" >&2
    exit 2
  fi
  name="scoped-mcp-$agent_type"
  template="{\"agent_type\": \"$agent_type\", \"agent_id\": {{identity.entity.aliases.$accessor.name}}}"
  "$BAO" write "identity/oidc/role/$name" key=scoped-mcp ttl="$ID_TTL" template="$template" >/dev/null
  printf 'path "identity/oidc/token/%s" {\n  capabilities = ["read"]\n}\n' "$name" \
    | "$BAO" policy write "scoped-mcp-identity-$agent_type" - >/dev/null
  printf 'path "auth/token/create/%s" {\n  capabilities = ["update"]\n}\n' "$name" \
    | "$BAO" policy write "scoped-mcp-identity-minter-$agent_type" - >/dev/null
  "$BAO" write "auth/token/roles/$name" allowed_policies="scoped-mcp-identity-$agent_type" \
    allowed_entity_aliases="*" token_explicit_max_ttl=120 renewable=false orphan=false >/dev/null
  "$BAO" write "auth/approle/role/$name" \
    token_policies="$name,scoped-mcp-identity-minter-$agent_type" >/dev/null
  client_id=$("$BAO" read -field=client_id "identity/oidc/role/$name")
  echo "$name client_id=$client_id"
done
