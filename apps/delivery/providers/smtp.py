"""Email over SMTP with Django's mail machinery, per-tenant host and credentials.

Settings: {"host", "port", "use_tls", "use_ssl", "timeout"}; credentials: {"username", "password"}.
"""

import smtplib
from email.utils import formataddr

from django.core.mail import EmailMultiAlternatives
from django.core.mail.backends.smtp import EmailBackend
from django.utils.html import strip_tags

from apps.delivery.providers.base import Provider, ProviderError, ProviderResult, Rendered


def message_id_for(config, idempotency_key: str) -> str:
    """Our Message-ID: the same on every retry of a message, whichever provider sends it."""
    domain = config.from_email.rpartition("@")[2] or "signalbox.local"
    return f"<{idempotency_key}@{domain}>"


def build_email(config, rendered: Rendered, *, message_id: str, connection=None) -> EmailMultiAlternatives:
    """A text + HTML alternative email with our Message-ID and any extra headers (the slot
    List-Unsubscribe goes in)."""
    content = rendered.content
    text = content.get("text") or strip_tags(content.get("html", ""))
    # The brand's sender (templates put it in the content) overrides the provider's default.
    name = content.get("from_name") or config.from_name
    address = content.get("from_email") or config.from_email
    sender = formataddr((name, address)) if name else address
    email = EmailMultiAlternatives(
        subject=content.get("subject", ""), body=text, from_email=sender, to=[rendered.to],
        reply_to=[content["reply_to"]] if content.get("reply_to") else None,
        headers={"Message-ID": message_id, **rendered.headers}, connection=connection,
    )
    if content.get("html"):
        email.attach_alternative(content["html"], "text/html")
    return email


class SmtpProvider(Provider):
    kind = "smtp"
    channels = frozenset({"email"})

    def _backend(self) -> EmailBackend:
        options, credentials = self.config.settings, self.config.credentials
        return EmailBackend(
            host=options.get("host", "localhost"), port=int(options.get("port", 25)),
            username=credentials.get("username"), password=credentials.get("password"),
            use_tls=bool(options.get("use_tls")), use_ssl=bool(options.get("use_ssl")),
            timeout=float(options.get("timeout", 15)), fail_silently=False,
        )

    def send(self, rendered: Rendered, *, idempotency_key: str) -> ProviderResult:
        message_id = message_id_for(self.config, idempotency_key)
        backend = self._backend()
        try:
            backend.open()
        except (OSError, smtplib.SMTPException) as exc:
            raise ProviderError(f"cannot connect: {exc}") from None  # nothing sent: fail over
        try:
            build_email(self.config, rendered, message_id=message_id, connection=backend).send()
        except smtplib.SMTPRecipientsRefused as exc:
            raise ProviderError(f"recipient refused: {exc.recipients}", permanent=True) from None
        except smtplib.SMTPResponseException as exc:
            permanent = 500 <= exc.smtp_code < 600
            raise ProviderError(f"SMTP {exc.smtp_code}", permanent=permanent, response_code=exc.smtp_code,
                                response_excerpt=str(exc.smtp_error)[:500]) from None
        except OSError as exc:  # incl. timeouts and SMTPServerDisconnected
            raise ProviderError(f"no answer after sending: {exc}", ambiguous=True) from None
        finally:
            backend.close()
        return ProviderResult(provider_message_id=message_id, response_code=250,
                              request_summary={"to": rendered.to, "subject": rendered.content.get("subject")})

    def test_connection(self) -> str:
        backend = self._backend()
        try:
            backend.open()
        except (OSError, smtplib.SMTPException) as exc:
            raise ProviderError(f"cannot connect: {exc}") from None
        backend.close()
        return f"connected to {self.config.settings.get('host')}"
