"""Email through ESP HTTP APIs with django-anymail (https://anymail.dev/en/stable/esps/).

Kinds: `sendgrid`, `postmark`, and `anymail` for any other of anymail's HTTP ESPs, named in
the settings ({"esp": "mailgun"}). Settings: {"api_url": the API base URL (default: the ESP's
public one), "timeout": seconds, and the ESP options in OPTIONS}; credentials: the ESP's
secrets under anymail's names for them (SECRETS), e.g. {"api_key": "…"}, or {"server_token":
"…"} for Postmark.

The email is the SMTP provider's build_email(), so MIME and headers are the same whichever
way it leaves, and every API call goes through apps.delivery.http (SafeSession).
"""

from urllib.parse import urljoin, urlsplit

from anymail.exceptions import (
    AnymailConfigurationError,
    AnymailError,
    AnymailRecipientsRefused,
    AnymailRequestsAPIError,
)
from django.utils.module_loading import import_string

from apps.delivery.http import READ_TIMEOUT, HttpError, SafeSession, safe_request
from apps.delivery.providers.base import Provider, ProviderError, ProviderResult, Rendered, classify
from apps.delivery.providers.smtp import build_email, message_id_for

# anymail's ESPs that call their API with requests (so through our client) → the credentials
# each needs. Amazon SES (boto3) is not here: its calls would bypass the SSRF guard.
SECRETS = {
    "brevo": ("api_key",), "mailersend": ("api_token",), "mailgun": ("api_key",),
    "mailjet": ("api_key", "secret_key"), "mailtrap": ("api_token",), "mandrill": ("api_key",),
    "postal": ("api_key",), "postmark": ("server_token",), "resend": ("api_key",),
    "scaleway": ("secret_key",), "sendgrid": ("api_key",), "sparkpost": ("api_key",),
    "unisender_go": ("api_key",),
}
# The only settings passed on to anymail: it reads others (idna_encoder, session_params,
# send_defaults) as import paths or raw options, which no tenant may set.
OPTIONS = ("api_url", "timeout", "message_stream", "sender_domain", "subaccount", "project_id",
           "region", "sandbox_id")
MAX_TIMEOUT = 60
# ESPs that accept an idempotency key, so a retry after an ambiguous failure is not sent twice
# (https://resend.com/docs/dashboard/emails/idempotency-keys).
IDEMPOTENCY_HEADER = {"resend": "Idempotency-Key"}
# An authenticated GET under api_url that sends nothing: (path, credentials → headers).
CHECKS = {
    "sendgrid": ("scopes", lambda secrets: {"Authorization": f"Bearer {secrets['api_key']}"}),
    "postmark": ("server", lambda secrets: {"X-Postmark-Server-Token": secrets["server_token"]}),
}


def is_http_url(value) -> bool:
    parts = urlsplit(value) if isinstance(value, str) else None
    return bool(parts and parts.scheme in ("http", "https") and parts.hostname)


def provider_error(exc: AnymailError) -> ProviderError:
    """An anymail failure → the ProviderError it means for failover and retries."""
    response = exc.response
    if response is None and isinstance(exc, AnymailRequestsAPIError):  # no answer from the ESP
        cause = exc.__cause__  # requests' error, caused by our HttpError when the call was made
        sent = isinstance(getattr(cause, "__cause__", None), HttpError) and cause.__cause__.sent
        return ProviderError(f"{exc.esp_name}: {cause}", ambiguous=sent)
    if response is None:  # refused before any call: an invalid address, an unsupported feature…
        return ProviderError(str(exc), permanent=True)
    excerpt = response.text[:500]
    if isinstance(exc, AnymailRecipientsRefused):
        return ProviderError("recipient refused", permanent=True, response_code=response.status_code,
                             response_excerpt=excerpt)
    error = classify(response.status_code, excerpt, response.headers.get("Retry-After"))
    # A 2xx we cannot read: the ESP may well have accepted the email.
    return error or ProviderError(f"{exc.esp_name}: unreadable answer", ambiguous=True,
                                  response_code=response.status_code, response_excerpt=excerpt)


class AnymailProvider(Provider):
    kind = "anymail"
    channels = frozenset({"email"})

    @property
    def esp(self) -> str:
        return self.config.settings.get("esp", "") if self.kind == "anymail" else self.kind

    def _backend(self):
        """anymail's backend for this config, its calls going through our HTTP client."""
        if self.esp not in SECRETS:
            raise ProviderError(f"unknown ESP {self.esp!r}")
        settings, credentials = self.config.settings, self.config.credentials
        options = {"timeout": READ_TIMEOUT, **{k: v for k, v in settings.items() if k in OPTIONS},
                   **{k: credentials.get(k) for k in SECRETS[self.esp]}}
        try:
            backend = import_string(f"anymail.backends.{self.esp}.EmailBackend")(**options)
        except AnymailConfigurationError as exc:
            raise ProviderError(f"{self.esp} is misconfigured: {exc}") from None
        backend.session = SafeSession()  # instead of anymail's plain requests.Session
        return backend

    def send(self, rendered: Rendered, *, idempotency_key: str) -> ProviderResult:
        backend = self._backend()
        if self.esp in IDEMPOTENCY_HEADER:
            backend.session.headers[IDEMPOTENCY_HEADER[self.esp]] = idempotency_key
        message_id = message_id_for(self.config, idempotency_key)
        email = build_email(self.config, rendered, message_id=message_id, connection=backend)
        try:
            email.send()
        except AnymailError as exc:
            raise provider_error(exc) from None
        finally:
            backend.close()
        status, response = email.anymail_status, email.anymail_status.esp_response
        return ProviderResult(
            provider_message_id=status.message_id or message_id,
            response_code=response.status_code, response_excerpt=response.text[:500],
            request_summary={"to": rendered.to, "subject": rendered.content.get("subject"), "esp": self.esp},
        )

    def test_connection(self) -> str:
        backend = self._backend()
        if self.esp not in CHECKS:
            return f"{self.esp}: configured (it has no API call that checks credentials without sending)"
        path, auth = CHECKS[self.esp]
        url = urljoin(backend.api_url, path)
        try:
            response = safe_request("GET", url, headers={"Accept": "application/json",
                                                         **auth(self.config.credentials)},
                                    timeout=backend.timeout)
        except HttpError as exc:
            raise ProviderError(str(exc)) from None
        excerpt = response.body[:500].decode(errors="replace")
        if response.status in (401, 403):
            raise ProviderError(f"{self.esp} refused the credentials (HTTP {response.status})",
                                permanent=True, response_code=response.status, response_excerpt=excerpt)
        error = classify(response.status, excerpt, response.headers.get("Retry-After"))
        if error is not None:
            raise error
        return f"{self.esp}: credentials accepted by {urlsplit(url).hostname}"

    def config_errors(self) -> list[tuple[str, str]]:
        settings, credentials = self.config.settings, self.config.credentials
        if self.esp not in SECRETS:
            return [("settings", f"\"esp\" must name one of anymail's HTTP ESPs: {', '.join(SECRETS)}.")]
        errors = []
        allowed = (*OPTIONS, "esp") if self.kind == "anymail" else OPTIONS
        if unknown := sorted(set(settings) - set(allowed)):
            errors.append(("settings", f"Unknown settings {', '.join(unknown)}; "
                                       f"allowed: {', '.join(allowed)}."))
        if "api_url" in settings and not is_http_url(settings["api_url"]):
            errors.append(("settings", "api_url must be an http(s) URL, e.g. https://api.example.com/v3/."))
        timeout = settings.get("timeout", READ_TIMEOUT)
        is_number = isinstance(timeout, int | float) and not isinstance(timeout, bool)
        if not is_number or not 0 < timeout <= MAX_TIMEOUT:
            errors.append(("settings", f"timeout must be a number of seconds, at most {MAX_TIMEOUT}."))
        missing = [k for k in SECRETS[self.esp] if not isinstance(credentials.get(k), str)
                   or not credentials[k].strip()]
        if missing:
            example = ", ".join(f'"{k}": "…"' for k in SECRETS[self.esp])
            errors.append(("credentials", f"{self.esp} needs {', '.join(missing)}: {{{example}}}."))
        if not self.config.from_email:
            errors.append(("from_email", "Required: the ESP sends from this address."))
        if not errors:
            try:
                self._backend()
            except ProviderError as exc:
                errors.append(("settings", str(exc)))
        return errors


class SendGridProvider(AnymailProvider):
    kind = "sendgrid"


class PostmarkProvider(AnymailProvider):
    kind = "postmark"
