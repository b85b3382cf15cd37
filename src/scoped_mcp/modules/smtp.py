"""smtp module: ``smtp_send`` mails plain text from a fixed sender to allowlisted recipients.

* The sender (and its display name) comes from the manifest; the agent picks only recipients,
  subject and body. Recipients must be bare addresses that match ``allowed_recipients`` (exact
  addresses, or ``@domain`` for every address at exactly that domain), at most
  ``max_recipients`` of them. A local part with ``%`` or ``!`` (routing syntax MTAs may rewrite
  to another domain) needs an exact entry. The ``recipients`` strategy (``RecipientScope``)
  checks every address before the body runs.
* No header can be injected: addresses must match a strict dot-atom syntax (no display names,
  quotes, commas, spaces or line breaks) and the subject may hold no control character.
* Transport security is the operator's choice: ``starttls`` (required, not opportunistic),
  ``implicit`` (SMTPS), or ``none``, which is allowed only to a loopback host unless the manifest
  sets ``unsafe_plaintext_remote``. ``ca_file`` trusts a private CA instead of the system store.
* ``SMTP_HOST``, ``SMTP_PORT``, ``SMTP_USER`` and ``SMTP_PASSWORD`` are all required (the
  original contract). With ``login: false`` (an unauthenticated local relay) the user and
  password keys must still resolve, but they are never read or sent.
* aiosmtplib errors are mapped in one place (``_smtp_errors``) to short messages with the SMTP
  reply code only; server text is never repeated.
"""

from __future__ import annotations

import contextlib
import logging
import re
import ssl
from collections.abc import Iterable, Iterator, Mapping
from email.message import EmailMessage
from email.utils import formataddr, formatdate, make_msgid
from typing import Annotated, Any, Final, Literal

import anyio
from pydantic import BaseModel, ConfigDict, Field, field_validator

from scoped_mcp.credentials.view import CredentialView
from scoped_mcp.errors import BackendError, InvalidArgument, ModuleLoadError, ScopeViolation
from scoped_mcp.identity import AgentContext
from scoped_mcp.manifest import ManifestPath
from scoped_mcp.modules._base import ToolModule, tool
from scoped_mcp.modules._notify import check_text
from scoped_mcp.net.loopback import is_loopback_host
from scoped_mcp.scoping import Allowlist, Scoped, ScopeStrategy

try:
    import aiosmtplib
except ImportError as exc:  # pragma: no cover - exercised only without the extra installed
    raise ModuleLoadError(
        "the smtp module needs aiosmtplib, which is not installed",
        fix="pip install 'scoped-mcp[smtp]'",
    ) from exc

_log = logging.getLogger(__name__)
_ATOM: Final = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_LABEL: Final = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
DOMAIN: Final = re.compile(rf"{_LABEL}(?:\.{_LABEL})*")
ADDRESS: Final = re.compile(rf"({_ATOM}(?:\.{_ATOM})*)@({DOMAIN.pattern})")
MAX_ADDRESS_CHARS: Final = 254
_ROUTING: Final = "%!"
Tls = Literal["starttls", "implicit", "none"]


def normalize_address(value: str, what: str = "address") -> str:
    """A bare address with its domain lower-cased, or ``InvalidArgument`` if it is not one."""
    if not isinstance(value, str) or len(value) > MAX_ADDRESS_CHARS:
        raise InvalidArgument(f"{what} is not a valid e-mail address")
    match = ADDRESS.fullmatch(value)
    if match is None:
        raise InvalidArgument(
            f"{what} is not a bare e-mail address (no names, quotes, commas or line breaks)"
        )
    return f"{match[1]}@{match[2].lower()}"


class SmtpConfig(BaseModel):
    """``modules.smtp.config``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    sender: str = Field(description="The From address; the agent cannot change it.")
    sender_name: str | None = Field(default=None, max_length=100, description="From name.")
    allowed_recipients: list[str] = Field(
        min_length=1, description="Exact addresses and/or '@domain' entries."
    )
    tls: Tls = Field(default="starttls", description="starttls, implicit (SMTPS) or none.")
    ca_file: ManifestPath | None = Field(
        default=None, description="PEM file of the CA(s) to trust instead of the system store."
    )
    login: bool = Field(default=True, description="AUTH with SMTP_USER / SMTP_PASSWORD.")
    unsafe_plaintext_remote: bool = Field(
        default=False,
        description="Allow tls: none to a host that is not loopback (mail and password in clear).",
    )
    max_recipients: int = Field(
        default=10, ge=1, le=100, description="Most recipients one message may have."
    )
    max_subject_chars: int = Field(
        default=200, ge=1, le=998, description="Longest subject, in characters."
    )
    max_body_bytes: int = Field(
        default=256 * 1024, ge=1, le=10 * 1024 * 1024, description="Largest body (UTF-8)."
    )
    timeout_s: float = Field(
        default=30.0, gt=0, le=300, description="Time limit for one delivery, in seconds."
    )

    @field_validator("sender")
    @classmethod
    def _sender(cls, value: str) -> str:
        try:
            return normalize_address(value, "sender")
        except InvalidArgument as exc:
            raise ValueError(exc.message) from None

    @field_validator("sender_name")
    @classmethod
    def _sender_name(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                check_text(value, "sender_name", multiline=False)
            except InvalidArgument as exc:
                raise ValueError(exc.message) from None
        return value

    @field_validator("allowed_recipients")
    @classmethod
    def _allowlist(cls, value: list[str]) -> list[str]:
        entries = []
        for entry in value:
            if entry.startswith("@") and DOMAIN.fullmatch(entry[1:]):
                entries.append(entry.lower())
                continue
            try:
                entries.append(normalize_address(entry, f"allowed_recipients entry {entry!r}"))
            except InvalidArgument as exc:
                raise ValueError(exc.message + " (or an '@domain' entry)") from None
        return entries


class RecipientScope(ScopeStrategy):
    """Accepts a bare address with an exact entry, or one at an ``@domain`` entry's domain.

    Returns the address normalized (domain lower-cased). Under a domain entry a local part with
    ``%`` or ``!`` is refused: Postfix and sendmail rewrite ``user%host@domain`` and
    ``host!user@domain`` to another host, so a domain entry must not open every domain behind it.
    """

    def __init__(self, entries: Iterable[str]) -> None:
        entries = list(entries)
        self._exact = frozenset(e.lower() for e in entries if e[0] != "@")
        self._domains = Allowlist((e[1:] for e in entries if e[0] == "@"), what="a recipient")

    def apply(self, value: str, agent_ctx: AgentContext) -> str:
        address = normalize_address(value, "a recipient")
        if address.lower() in self._exact:
            return address
        local, domain = address.rsplit("@", 1)
        self._domains.apply(domain, agent_ctx)
        if any(c in local for c in _ROUTING):
            raise ScopeViolation(
                "a recipient with '%' or '!' (mail routing) needs an exact allowlist entry"
            )
        return address


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and loopback IP literals; names are not resolved."""
    return is_loopback_host(host)


class SmtpModule(ToolModule):
    """Send plain-text e-mail from the configured sender to allowlisted recipients."""

    name = "smtp"
    required_credentials = ("SMTP_HOST", "SMTP_PORT", "SMTP_USER", "SMTP_PASSWORD")
    config_model = SmtpConfig
    config: SmtpConfig

    def __init__(
        self, agent_ctx: AgentContext, credentials: CredentialView, config: SmtpConfig
    ) -> None:
        super().__init__(agent_ctx, credentials, config)
        self._tls_context: ssl.SSLContext | None = None

    def scope_strategies(self) -> Mapping[str, ScopeStrategy]:
        """``recipients``: the addresses and ``@domain`` entries of ``allowed_recipients``."""
        return {"recipients": RecipientScope(self.config.allowed_recipients)}

    async def startup(self) -> None:
        """Build the TLS context (reading ``ca_file``); no connection is made until a send."""
        if self.config.tls == "none":
            return
        cafile = str(self.config.ca_file) if self.config.ca_file else None
        try:
            self._tls_context = ssl.create_default_context(cafile=cafile)
        except (OSError, ssl.SSLError) as exc:
            raise ModuleLoadError(
                "modules.smtp.config.ca_file: cannot be read as PEM certificates",
                fix="point ca_file at a readable PEM file holding the CA certificate",
            ) from exc

    @tool(mode="write")
    async def send(
        self,
        to: Annotated[
            list[str],
            Scoped("recipients"),
            Field(
                description="Recipient addresses, bare (no display names), e.g. "
                '["oncall@example.org"]. Each must be on the operator\'s allowlist; repeats '
                "are dropped; at most max_recipients (10 unless the operator set another)."
            ),
        ],
        subject: Annotated[
            str,
            Field(
                description="One-line subject, no line breaks; at most max_subject_chars "
                "characters (200 unless the operator set another)."
            ),
        ],
        body: Annotated[
            str,
            Field(
                description="Plain-text body; newlines allowed; at most max_body_bytes "
                "(256 KiB UTF-8 unless the operator set another)."
            ),
        ],
    ) -> dict[str, Any]:
        """Send a plain-text e-mail to allowed recipients (bare addresses, no display names).

        The sender is fixed by the operator. Subject: one line; body: plain text.
        """
        recipients = self._recipients(to)
        check_text(subject, "subject", max_chars=self.config.max_subject_chars, multiline=False)
        check_text(body, "body", max_bytes=self.config.max_body_bytes)
        message = self._message(recipients, subject, body)
        await self._deliver(message, recipients)
        return {"sent": True, "recipients": recipients, "message_id": message["Message-ID"]}

    def _recipients(self, to: list[str]) -> list[str]:
        """The scoped recipients, each once (any case), at most ``max_recipients``."""
        if not isinstance(to, list) or not to:
            raise InvalidArgument("to must list at least one recipient")
        recipients: list[str] = []
        for address in to:
            if address.lower() not in (r.lower() for r in recipients):
                recipients.append(address)
        if len(recipients) > self.config.max_recipients:
            raise InvalidArgument(f"at most {self.config.max_recipients} recipients")
        return recipients

    def _message(self, recipients: list[str], subject: str, body: str) -> EmailMessage:
        sender = self.config.sender
        message = EmailMessage()
        message["From"] = formataddr((self.config.sender_name or "", sender))
        message["To"] = ", ".join(recipients)
        message["Subject"] = subject
        message["Date"] = formatdate(usegmt=True)
        message["Message-ID"] = make_msgid(domain=sender.rsplit("@", 1)[1])
        message["X-Scoped-MCP-Agent"] = self.agent_ctx.agent_id
        message.set_content(body)
        return message

    async def _deliver(self, message: EmailMessage, recipients: list[str]) -> None:
        with _smtp_errors(self.config.timeout_s):
            with anyio.fail_after(self.config.timeout_s):
                host, port = await self._endpoint()
                client = aiosmtplib.SMTP(
                    hostname=host,
                    port=port,
                    use_tls=self.config.tls == "implicit",
                    start_tls=False,
                    tls_context=self._tls_context,
                    timeout=self.config.timeout_s,
                )
                await client.connect()
                try:
                    await self._secure_and_login(client)
                    await client.send_message(
                        message, sender=self.config.sender, recipients=recipients
                    )
                    await client.quit()
                finally:
                    client.close()

    async def _endpoint(self) -> tuple[str, int]:
        """Host and port from the broker; plaintext to a remote host refused before connecting."""
        async with self.credentials.use("SMTP_HOST") as host_value:
            host = host_value.text().strip()
        async with self.credentials.use("SMTP_PORT") as port_value:
            port_text = port_value.text().strip()
        if not port_text.isdigit() or not 0 < int(port_text) < 65536:
            raise BackendError("smtp: SMTP_PORT is not a port number")
        if self.config.tls == "none" and not is_loopback(host):
            if not self.config.unsafe_plaintext_remote:
                raise BackendError(
                    "smtp: tls: none is allowed only to a loopback host "
                    "(set unsafe_plaintext_remote to override)"
                )
            _log.warning("smtp: sending without TLS to a remote host (unsafe_plaintext_remote)")
        return host, int(port_text)

    async def _secure_and_login(self, client: aiosmtplib.SMTP) -> None:
        await client.ehlo()
        if self.config.tls == "starttls":
            if not client.supports_extension("starttls"):
                raise BackendError("smtp: the server does not offer STARTTLS (tls: starttls)")
            await client.starttls(tls_context=self._tls_context)
            await client.ehlo()
        if not self.config.login:
            return
        if not client.supports_extension("auth"):
            raise BackendError("smtp: the server offers no AUTH; for a relay set login: false")
        async with (
            self.credentials.use("SMTP_USER") as user,
            self.credentials.use("SMTP_PASSWORD") as password,
        ):
            await client.login(user.text(), password.text())


@contextlib.contextmanager
def _smtp_errors(timeout: float) -> Iterator[None]:
    """The one place aiosmtplib, TLS and socket errors become short ``BackendError``s."""
    try:
        yield
    except aiosmtplib.SMTPAuthenticationError as exc:
        raise BackendError(f"smtp: the server refused the login ({exc.code})") from None
    except aiosmtplib.SMTPRecipientsRefused:
        raise BackendError("smtp: the server refused the recipients") from None
    except aiosmtplib.SMTPSenderRefused as exc:
        raise BackendError(f"smtp: the server refused the sender ({exc.code})") from None
    except (TimeoutError, aiosmtplib.SMTPTimeoutError):
        raise BackendError(f"smtp: no answer within {timeout:g} s") from None
    except aiosmtplib.SMTPResponseException as exc:
        raise BackendError(f"smtp: the server answered {exc.code}") from None
    except (aiosmtplib.SMTPException, ssl.SSLError, OSError) as exc:
        raise BackendError(f"smtp: {_transport_failure(exc)}") from None


def _transport_failure(exc: BaseException) -> str:
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ssl.SSLCertVerificationError):
            return "the server's TLS certificate is not trusted (see ca_file)"
        if isinstance(seen, ssl.SSLError):
            return "the TLS handshake failed"
        seen = seen.__cause__ or seen.__context__
    if isinstance(exc, aiosmtplib.SMTPServerDisconnected):
        return "the server closed the connection"
    if isinstance(exc, aiosmtplib.SMTPException) and not isinstance(exc, OSError):
        return "the SMTP exchange failed"
    return "could not connect to the server"
