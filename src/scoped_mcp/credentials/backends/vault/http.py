"""The Vault backend's HTTP side: one request at a time, the token always explicit.

``Connection.request`` builds a short-lived hvac client per request with the token passed as a
``str`` (``""`` for none): ``hvac.Client(token=None)`` would read ``$VAULT_TOKEN`` or
``~/.vault-token`` instead. The TLS client certificate is passed the same way (``client_cert``).
``_vault_errors`` is the one place hvac and requests failures become ``CredentialError``s; no
response body or exception text crosses it.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

from scoped_mcp.credentials.backends.file import privacy_problems
from scoped_mcp.credentials.backends.vault.cluster import NodeRing, Redirected
from scoped_mcp.credentials.backends.vault.config import VaultSpec
from scoped_mcp.errors import (
    AccessDenied,
    BackendMisconfigured,
    BackendUnavailable,
    InsecureSource,
    SecretNotFound,
)

INSTALL_FIX = "pip install 'scoped-mcp[vault]'"


def policy_fix(api_path: str, capability: str) -> str:
    """The policy line that grants ``capability`` on ``api_path``."""
    return (
        f'add to the policy of the broker\'s token: path "{api_path}" '
        f'{{ capabilities = ["{capability}"] }}'
    )


@contextmanager
def _vault_errors(addr: str, api_path: str, capability: str, timeout: float) -> Iterator[None]:
    """Turn hvac and requests failures into ours; no response text or exception text crosses."""
    import hvac.exceptions as vault
    import requests

    try:
        yield
    except vault.InvalidPath:
        raise SecretNotFound(f"nothing at {api_path} in vault at {addr}") from None
    except (vault.Forbidden, vault.Unauthorized):
        raise AccessDenied(
            f"vault at {addr} denied {capability} on {api_path}",
            fix=policy_fix(api_path, capability),
        ) from None
    except (vault.VaultDown, vault.VaultNotInitialized):
        raise BackendUnavailable(
            f"vault sealed at {addr}", fix="unseal it (bao operator unseal); calls recover then"
        ) from None
    except vault.InvalidRequest:
        raise BackendMisconfigured(
            f"vault at {addr} rejected the request to {api_path} (HTTP 400)"
        ) from None
    except vault.VaultError as exc:
        raise BackendUnavailable(
            f"vault at {addr} failed the request to {api_path} ({type(exc).__name__})"
        ) from None
    except requests.exceptions.SSLError:
        raise BackendMisconfigured(
            f"TLS verification failed for vault at {addr}",
            fix="set credentials.vault.ca_cert to the CA that signed vault's certificate",
        ) from None
    except requests.exceptions.Timeout:
        raise BackendUnavailable(
            f"vault at {addr} did not answer within {timeout:g}s (timed out)",
            fix=f"check that vault/OpenBao at {addr} is up and answering, or raise "
            "credentials.vault.timeout",
        ) from None
    except requests.RequestException:
        raise BackendUnavailable(
            f"vault unreachable at {addr}",
            fix=f"start vault/OpenBao at {addr}, or correct credentials.vault.addr",
        ) from None
    except (KeyError, TypeError, ValueError):
        raise BackendUnavailable(
            f"vault at {addr} sent an unexpected answer for {api_path}"
        ) from None


def client_cert(spec: VaultSpec) -> tuple[str, str] | str | tuple[()]:
    """The TLS client certificate for hvac, from the manifest only; its key file must be private.

    Never None: ``hvac.Client(cert=None)`` takes ``$VAULT_CLIENT_CERT``/``$VAULT_CLIENT_KEY``
    (read when hvac is imported), and an empty tuple means "no client certificate" to requests.
    """
    if spec.client_cert is None:
        return ()
    key = spec.client_key or spec.client_cert
    try:
        info = os.stat(key)
    except OSError:
        field = "client_key" if spec.client_key else "client_cert"
        raise BackendMisconfigured(f"credentials.vault.{field}: {key} cannot be read") from None
    problems, fixes = privacy_problems(info, str(key))
    if problems:
        field = "client_key" if spec.client_key else "client_cert"
        raise InsecureSource(
            f"credentials.vault.{field}: {key}: {'; '.join(problems)}", fix="; ".join(fixes)
        )
    if spec.client_key is None:
        return str(spec.client_cert)
    return (str(spec.client_cert), str(spec.client_key))


class Connection:
    """Sends single requests to a Vault/OpenBao server or cluster (``cluster.NodeRing``), the
    token always passed explicitly. Redirects are never followed by requests itself: a 307 from
    a standby is followed by the ring, and only to a configured node."""

    def __init__(self, spec: VaultSpec, addr: str | Sequence[str]) -> None:
        import hvac
        import requests

        self.ring = NodeRing([addr] if isinstance(addr, str) else list(addr))
        self._hvac: Any = hvac
        self._spec = spec
        self._cert = client_cert(spec)
        self._session = requests.Session()
        # No proxy, netrc credentials or CA bundle from the environment: only the manifest counts.
        self._session.trust_env = False

    def __repr__(self) -> str:
        return f"Connection({self.addr!r})"

    @property
    def addr(self) -> str:
        """The node requests go to now."""
        return self.ring.current

    def request(
        self,
        method: str,
        api_path: str,
        *,
        token: str,
        capability: str = "read",
        json: Mapping[str, Any] | None = None,
        params: Mapping[str, Any] | None = None,
    ) -> Any:
        """One request; ``token`` is explicit ("" for none). Returns the JSON answer or None."""
        return self.ring.run(
            lambda node: self._request_at(
                node, method, api_path, token=token, capability=capability, json=json, params=params
            )
        )

    def _request_at(
        self,
        node: str,
        method: str,
        api_path: str,
        *,
        token: str,
        capability: str,
        json: Mapping[str, Any] | None,
        params: Mapping[str, Any] | None,
    ) -> Any:
        client = self._hvac.Client(
            url=node,
            token=token,  # never None: hvac would read $VAULT_TOKEN or ~/.vault-token
            verify=str(self._spec.ca_cert) if self._spec.ca_cert else True,
            cert=self._cert,
            timeout=self._spec.timeout,
            namespace=self._spec.namespace,
            session=self._session,
            allow_redirects=False,  # a redirect would carry the token to wherever it points
        )
        try:
            with _vault_errors(node, api_path, capability, self._spec.timeout):
                answer = client.adapter.request(
                    method,
                    f"/v1/{api_path}",
                    json=dict(json) if json is not None else None,
                    params=dict(params) if params is not None else None,
                )
                if isinstance(answer, dict):
                    return answer
                if answer.is_redirect:
                    location = str(answer.headers.get("Location") or "")
                    answer.close()
                    raise Redirected(node, location)
                # A body-less answer (204): release its connection now. Vault finishes a
                # revoke-self only once the connection that asked for it is closed or reused.
                answer.close()
                return None
        finally:
            client.adapter.token = None

    def close(self) -> None:
        self._session.close()
