#!/bin/sh
# Log a dedicated bw CLI profile into Vaultwarden, unlock it, and leave the session key where the
# agent's manifest reads it:
#
#   VAULTWARDEN_URL=https://vault.example.org BW_CLIENTID=user.xxx BW_CLIENTSECRET=... \
#   BW_PASSWORD_FILE=~/.config/scoped-mcp/bw-master ./setup.sh notifier [research ...]
#
#   1. bw config server $VAULTWARDEN_URL, bw login --apikey (only if this profile is logged out);
#   2. bw unlock --passwordfile (or --passwordenv BW_PASSWORD): the session key goes into
#      $CONFIG_DIR/bw-session (0600), never onto a command line or the terminal;
#   3. bw sync, then for each agent type: is the item "scoped-mcp/<type>" there?
#
# The profile lives in $CONFIG_DIR/bw (BITWARDENCLI_APPDATA_DIR), apart from your own bw login.
# Settings: CONFIG_DIR (default ~/.config/scoped-mcp), BW (the CLI, default bw).
# Safe to run again: a logged-in profile is only unlocked again, and the session file replaced.
set -eu

BW=${BW:-bw}
CONFIG_DIR=${CONFIG_DIR:-$HOME/.config/scoped-mcp}
BITWARDENCLI_APPDATA_DIR="$CONFIG_DIR/bw"
export BITWARDENCLI_APPDATA_DIR
umask 077
mkdir -p "$BITWARDENCLI_APPDATA_DIR"
[ "$#" -gt 0 ] || { echo "usage: $0 AGENT_TYPE..." >&2; exit 2; }
# A failed unlock leaves no half-written session file behind.
trap 'rm -f "$CONFIG_DIR/bw-session.new"' EXIT

status=$("$BW" status)
state=$(printf '%s\n' "$status" | sed -n 's/.*"status": *"\([a-z]*\)".*/\1/p')
if [ "$state" = unauthenticated ]; then
  : "${VAULTWARDEN_URL:?set VAULTWARDEN_URL to your Vaultwarden (https://...)}"
  : "${BW_CLIENTID:?set BW_CLIENTID and BW_CLIENTSECRET (Vaultwarden: Account settings, Security, Keys, API key)}"
  : "${BW_CLIENTSECRET:?set BW_CLIENTSECRET}"
  "$BW" config server "$VAULTWARDEN_URL" >/dev/null
  "$BW" login --apikey >/dev/null   # reads BW_CLIENTID / BW_CLIENTSECRET from the environment
  echo "logged in to $VAULTWARDEN_URL"
fi

if [ -n "${BW_PASSWORD_FILE:-}" ]; then
  "$BW" unlock --raw --passwordfile "$BW_PASSWORD_FILE" >"$CONFIG_DIR/bw-session.new"
elif [ -n "${BW_PASSWORD:-}" ]; then
  "$BW" unlock --raw --passwordenv BW_PASSWORD >"$CONFIG_DIR/bw-session.new"
else
  "$BW" unlock --raw >"$CONFIG_DIR/bw-session.new"     # asks for the master password
fi
mv "$CONFIG_DIR/bw-session.new" "$CONFIG_DIR/bw-session"
echo "session key in $CONFIG_DIR/bw-session"

BW_SESSION=$(cat "$CONFIG_DIR/bw-session") "$BW" sync >/dev/null
missing=0
for type in "$@"; do
  if BW_SESSION=$(cat "$CONFIG_DIR/bw-session") "$BW" get item "scoped-mcp/$type" >/dev/null 2>&1; then
    echo "$type: item scoped-mcp/$type found"
  else
    echo "$type: no single item named scoped-mcp/$type: create it in the web vault (README.md)" >&2
    missing=1
  fi
done
exit "$missing"
