"""A module's view of its credentials: only the keys it declared, never shown in a repr."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping

from scoped_mcp.errors import CredentialError

Resolver = Callable[[str], str | None]


class ModuleCredentials(Mapping[str, str]):
    """Read-only mapping of the declared keys of one module.

    Asking for a key the module did not declare is a programming error, raised at once. Every value
    handed out is registered with the redactor by the resolver before it is returned.
    """

    def __init__(
        self, module: str, declared: frozenset[str], optional: frozenset[str], resolve: Resolver
    ) -> None:
        self._module = module
        self._declared = declared
        self._optional = optional
        self._resolve = resolve

    def __repr__(self) -> str:
        return f"ModuleCredentials({self._module!r}, keys={sorted(self._declared)})"

    def __getitem__(self, key: str) -> str:
        if key not in self._declared:
            raise CredentialError(
                f"module {self._module!r} asked for credential {key!r}, which it did not declare "
                "in required_credentials or optional_credentials"
            )
        value = self._resolve(key)
        if value is None:
            if key in self._optional:
                raise KeyError(key)
            raise CredentialError(f"credential {key} unavailable for module {self._module!r}")
        return value

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self._declared))

    def __len__(self) -> int:
        return len(self._declared)


def env_resolver(environ: Mapping[str, str], on_release: Callable[[str], None]) -> Resolver:
    """Resolve keys from the process environment (``credentials.source: env``)."""

    def resolve(key: str) -> str | None:
        value = environ.get(key)
        if value:
            on_release(value)
            return value
        return None

    return resolve
