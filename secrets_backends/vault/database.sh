#!/usr/bin/env bash
# Set up dynamic PostgreSQL credentials for scoped-mcp: the database secrets engine, one
# connection, and for each named role a Vault role plus a policy "scoped-mcp-db-<role>".
#
#   BAO_ADDR=https://vault:8200 BAO_TOKEN=<admin token> \
#   PG_HOST=db.example PG_PORT=5432 PG_DATABASE=app \
#   PG_ADMIN_USER=vault PG_ADMIN_PASSWORD_FILE=/run/secrets/pg-admin \
#   ./database.sh agent-r1 agent-r2
#
# Settings (environment):
#   MOUNT              the engine's mount (default database)
#   DB_CONNECTION      the connection's name under MOUNT/config/ (default postgresql)
#   PG_HOST PG_PORT    where Vault reaches PostgreSQL (default 127.0.0.1, 5432)
#   PG_DATABASE        the database the roles may connect to (default postgres)
#   PG_SSLMODE         libpq sslmode of Vault's connection (default verify-full)
#   PG_ADMIN_USER      the role Vault connects as: must be allowed to create and drop roles
#   PG_ADMIN_PASSWORD_FILE or PG_ADMIN_PASSWORD
#                      its password. Given: the connection is (re)written and verified. Not given:
#                      the connection must exist already, and only roles and policies are written.
#   ROTATE_ROOT=1      after writing the connection, let Vault rotate PG_ADMIN_USER's password so
#                      that only Vault knows it (re-runs then omit the password)
#   DEFAULT_TTL MAX_TTL  lease lifetimes of the roles (default 2m, 24h): the broker renews a
#                      lease while the server runs, so a crashed server's login dies within
#                      DEFAULT_TTL (the broker holds longer ones to its lease_ttl anyway)
#   PG_GRANTS          SQL run after CREATE ROLE, with "{{name}}" for the new role (default: read
#                      access to every table in schema public)
#
# A credential is a new LOGIN role with a random password and VALID UNTIL at its lease's end (moved
# on renewal). Revocation ends the role's sessions, drops what it owns or was granted in
# PG_DATABASE, and drops the role. Idempotent: connection, roles and policies are rewritten.
#
# The test suite runs this very script against a throwaway `bao server -dev` and PostgreSQL.
set -euo pipefail

BAO=${BAO:-bao}
: "${BAO_ADDR:?set BAO_ADDR to the server address}"
: "${BAO_TOKEN:?set BAO_TOKEN to a token allowed to manage mounts and policies}"
export BAO_ADDR BAO_TOKEN
MOUNT=${MOUNT:-database}
DB_CONNECTION=${DB_CONNECTION:-postgresql}
PG_HOST=${PG_HOST:-127.0.0.1}
PG_PORT=${PG_PORT:-5432}
PG_DATABASE=${PG_DATABASE:-postgres}
PG_SSLMODE=${PG_SSLMODE:-verify-full}
DEFAULT_TTL=${DEFAULT_TTL:-2m}
MAX_TTL=${MAX_TTL:-24h}
PG_GRANTS=${PG_GRANTS:-"GRANT CONNECT ON DATABASE \"$PG_DATABASE\" TO \"{{name}}\"; GRANT USAGE ON SCHEMA public TO \"{{name}}\"; GRANT SELECT ON ALL TABLES IN SCHEMA public TO \"{{name}}\";"}
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

fail() {
  echo "database.sh: $*" >&2
  exit 2
}

[ "$#" -gt 0 ] || fail "usage: $0 ROLE [ROLE...]   (e.g. agent-r1, or scoped-mcp-research)"
for value in "$MOUNT" "$DB_CONNECTION" "$@"; do
  [[ "$value" =~ ^[a-z0-9][a-z0-9_-]*$ ]] || fail "'$value' must be lowercase letters, digits, - and _"
done
[[ "$PG_DATABASE" =~ ^[A-Za-z0-9_-]+$ ]] || fail "PG_DATABASE '$PG_DATABASE' must be letters, digits, - and _"

mounts=$("$BAO" secrets list -format=json)
[[ "$mounts" == *"\"$MOUNT/\""* ]] || "$BAO" secrets enable -path="$MOUNT" database >/dev/null

# The connection serves the roles it served before plus the ones named now.
allowed=$(IFS=,; echo "$*")
connection_exists=0
if previous=$("$BAO" read -field=allowed_roles "$MOUNT/config/$DB_CONNECTION" 2>/dev/null); then
  connection_exists=1
  # bao prints the list as [a b c]; merge it with the new roles, each once.
  allowed=$({ echo "$previous" | tr -d '[]' | tr ' ' '\n'; printf '%s\n' "$@"; } |
    awk 'NF && !seen[$0]++' | paste -sd, -)
fi

if [ -n "${PG_ADMIN_PASSWORD_FILE:-}${PG_ADMIN_PASSWORD:-}" ]; then
  : "${PG_ADMIN_USER:?set PG_ADMIN_USER to the role Vault connects as}"
  # The password reaches bao through a file descriptor, never its command line.
  if [ -n "${PG_ADMIN_PASSWORD_FILE:-}" ]; then
    exec 3<"$PG_ADMIN_PASSWORD_FILE"
  else
    exec 3< <(printf '%s' "$PG_ADMIN_PASSWORD")
  fi
  "$BAO" write "$MOUNT/config/$DB_CONNECTION" \
    plugin_name=postgresql-database-plugin \
    connection_url="postgresql://{{username}}:{{password}}@$PG_HOST:$PG_PORT/$PG_DATABASE?sslmode=$PG_SSLMODE" \
    username="$PG_ADMIN_USER" password=@/dev/fd/3 \
    allowed_roles="$allowed" verify_connection=true >/dev/null
  exec 3<&-
  if [ "${ROTATE_ROOT:-0}" = 1 ]; then
    "$BAO" write -f "$MOUNT/rotate-root/$DB_CONNECTION" >/dev/null
  fi
elif [ "$connection_exists" = 1 ]; then
  "$BAO" write "$MOUNT/config/$DB_CONNECTION" allowed_roles="$allowed" >/dev/null
else
  fail "no connection $MOUNT/config/$DB_CONNECTION yet: set PG_ADMIN_USER and PG_ADMIN_PASSWORD_FILE"
fi

creation="CREATE ROLE \"{{name}}\" WITH LOGIN PASSWORD '{{password}}' VALID UNTIL '{{expiration}}'; $PG_GRANTS"
revocation="SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = '{{name}}'; REASSIGN OWNED BY \"{{name}}\" TO CURRENT_USER; DROP OWNED BY \"{{name}}\"; DROP ROLE IF EXISTS \"{{name}}\";"
for role in "$@"; do
  "$BAO" write "$MOUNT/roles/$role" db_name="$DB_CONNECTION" \
    creation_statements="$creation" revocation_statements="$revocation" \
    default_ttl="$DEFAULT_TTL" max_ttl="$MAX_TTL" >/dev/null
  sed -e "s/@MOUNT@/$MOUNT/g" -e "s/@ROLE@/$role/g" "$here/scoped-mcp-database.hcl" |
    "$BAO" policy write "scoped-mcp-db-$role" - >/dev/null
  echo "$MOUNT/creds/$role policy=scoped-mcp-db-$role"
done
