"""Signed links to a recipient's preference page and one-click unsubscribe: no login, so the
link is the credential. Django signing (HMAC with SECRET_KEY) over (tenant, recipient), salted
per purpose, with a timestamp checked against SIGNALBOX_PREFERENCE_LINK_MAX_AGE_DAYS.
https://docs.djangoproject.com/en/5.2/topics/signing/"""

from datetime import timedelta

from django.conf import settings
from django.core import signing
from django.urls import reverse

from apps.recipients.models import Recipient

SALT = "signalbox.policy.preferences"


class BadLink(Exception):
    """A tampered, expired or stale link; the message says which, for the 400 page."""


def link_token(*, recipient: Recipient) -> str:
    return signing.dumps([recipient.tenant_id, recipient.pk], salt=SALT, compress=False)


def link_recipient(*, token: str) -> Recipient:
    """The recipient a token names, or BadLink."""
    try:
        tenant_id, recipient_id = signing.loads(
            token, salt=SALT, max_age=timedelta(days=settings.SIGNALBOX_PREFERENCE_LINK_MAX_AGE_DAYS))
    except signing.SignatureExpired:
        raise BadLink("This link has expired. Use the link in a more recent message.") from None
    except (signing.BadSignature, ValueError, TypeError):
        raise BadLink("This link is not valid. It may have been cut short or changed; use the "
                      "link exactly as it appears in the message.") from None
    recipient = Recipient.objects.select_related("tenant").filter(
        tenant_id=tenant_id, pk=recipient_id, erased_at__isnull=True).first()
    if recipient is None:
        raise BadLink("This link no longer leads to any preferences.")
    return recipient


def preferences_url(*, recipient: Recipient) -> str:
    return absolute_url("policy-preferences", link_token(recipient=recipient))


def unsubscribe_headers(*, url: str) -> dict[str, str]:
    """RFC 2369 List-Unsubscribe and RFC 8058 one-click: a POST to the URL unsubscribes.
    https://www.rfc-editor.org/rfc/rfc8058#section-3.1"""
    return {"List-Unsubscribe": f"<{url}>", "List-Unsubscribe-Post": "List-Unsubscribe=One-Click"}


def absolute_url(name: str, token: str) -> str:
    return settings.SIGNALBOX_PUBLIC_URL.rstrip("/") + reverse(name, args=[token])
