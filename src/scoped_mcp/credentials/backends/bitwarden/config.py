"""``credentials.bitwarden``: the Bitwarden backend's manifest block."""

from __future__ import annotations

from pydantic import Field

from scoped_mcp.manifest import ManifestPath, StrictModel


class BitwardenSpec(StrictModel):
    """``credentials.bitwarden``: how the broker runs the official ``bw`` CLI.

    Works with Bitwarden and Vaultwarden alike (the password-manager vault, not Secrets Manager).
    """

    bw_path: str = Field(
        default="bw",
        min_length=1,
        description="The bw executable: a path, or a name looked up on the server's PATH.",
    )
    session_env: str | None = Field(
        default="BW_SESSION",
        description="Environment variable of the server holding the session key from "
        "'bw unlock --raw'. Ignored when session_file is set.",
    )
    session_file: ManifestPath | None = Field(
        default=None,
        description="A file (0600, ours) holding the session key; re-read when bw reports "
        "the vault locked.",
    )
    appdata_dir: ManifestPath | None = Field(
        default=None,
        description="bw's data directory (BITWARDENCLI_APPDATA_DIR). Default: the server's "
        "BITWARDENCLI_APPDATA_DIR, else bw's own default under HOME.",
    )
    item: str | None = Field(
        default=None,
        description="The item (id or exact name) whose custom fields are the keys, for "
        "source: bitwarden. {agent_id} and {agent_type} expand.",
    )
    sync_interval: float = Field(
        default=300,
        ge=0,
        le=86400,
        description="Run 'bw sync' before a read when the last sync by this server is older "
        "than this many seconds (0: never sync; bw then serves its local copy).",
    )
    timeout: float = Field(default=30, gt=0, le=300, description="Seconds one bw command may take.")
