"""The errors scoped-mcp raises, all below one base.

    ScopedMCPError                  anything scoped-mcp itself reports
    ├── ConfigError                 the operator's configuration is unusable (stops start-up)
    │   ├── ManifestError           the manifest file: names file, field path and what is allowed
    │   ├── IdentityError           AGENT_ID / AGENT_TYPE missing or unsafe
    │   └── ModuleLoadError         a module named by the manifest cannot be found or imported
    ├── CredentialError             a credential cannot be provided (never carries a value)
    │   ├── SecretNotFound          the backend answered: no such key, path or field
    │   ├── AccessDenied            the backend refused (policy, permissions, locked keyring)
    │   ├── BackendUnavailable      the backend cannot be reached or is sealed; may recover
    │   ├── InsecureSource          the source exists but is unsafe to use (file mode, owner)
    │   └── BackendMisconfigured    the backend's own configuration is unusable
    └── ToolCallError               one tool call failed; the message goes to the agent
        ├── ScopeViolation          the call reached outside the agent's scope (outcome "denied")
        ├── InvalidArgument         an argument is malformed or over a limit (outcome "denied")
        ├── BackendError            the backend failed the call (outcome "error")
        └── AuditUnavailable        the audit log cannot be written: the call is refused

Every message is written for the person who has to act on it. ``ConfigError`` carries a ``fix``
line; ``ToolCallError`` messages are short, because they go to the agent.
"""

from __future__ import annotations


class ScopedMCPError(Exception):
    """Base of every error scoped-mcp raises on purpose."""

    def __init__(self, message: str, *, fix: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.fix = fix

    def diagnostics(self) -> str:
        """The message plus, when known, the one thing the operator should do about it."""
        if self.fix:
            return f"{self.message}\n  fix: {self.fix}"
        return self.message


class ConfigError(ScopedMCPError):
    """The configuration cannot be used; the server refuses to start."""


class ManifestError(ConfigError):
    """The manifest is unreadable or invalid."""


class IdentityError(ConfigError):
    """The agent identity from the environment is missing or unsafe."""


class ModuleLoadError(ConfigError):
    """A module the manifest names cannot be found, imported or instantiated."""


class CredentialError(ScopedMCPError):
    """A credential is missing, unreadable or refused. Never includes the value."""

    status = "broken"


class SecretNotFound(CredentialError):
    """The backend has no such key, path or field."""

    status = "missing"


class AccessDenied(CredentialError):
    """The backend refused to hand the secret over."""

    status = "denied"


class BackendUnavailable(CredentialError):
    """The backend cannot be reached now (down, sealed, timed out); a later call may succeed."""

    status = "unreachable"


class InsecureSource(CredentialError):
    """The secret's source is readable by others or not owned by us."""

    status = "insecure"


class BackendMisconfigured(CredentialError):
    """The backend's settings in the manifest cannot work."""

    status = "broken"


class ToolCallError(ScopedMCPError):
    """A tool call failed. The message is shown to the agent: keep it short and free of secrets."""

    outcome = "error"


class AuditUnavailable(ToolCallError):
    """The audit log cannot be written (a full disk): a call that cannot be recorded does not run.

    ``reason`` is short and fixed (``disk full``, ``file too large``, the system's error text).
    """

    def __init__(self, reason: str) -> None:
        super().__init__(f"audit log unavailable ({reason}): call refused, nothing was done")
        self.reason = reason


class ScopeViolation(ToolCallError):
    """The call asked for something outside the agent's scope; nothing was touched."""

    outcome = "denied"


class InvalidArgument(ToolCallError):
    """An argument is malformed, of the wrong kind, or over a limit; nothing was touched."""

    outcome = "denied"


class BackendError(ToolCallError):
    """The backend behind the tool failed the call."""

    outcome = "error"
