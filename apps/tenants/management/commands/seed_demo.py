"""Demo data for `make dev`: tenant Acme with a sub-tenant, one staff user per role, API keys,
a few recipients, a brand (the sub-tenant overrides its colours), a layout, partials and published
templates (apps/content/demo.py), three active journeys (apps/journeys/demo.py), two computed segments
(apps/segments/demo.py). Idempotent: a second
run finds everything and prints the same credentials (they are derived from SECRET_KEY, so nothing
secret is written to disk)."""

import hashlib
import hmac
import json

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand
from django.db import transaction

from apps.content.demo import demo_content_seed
from apps.delivery.models import ProviderConfig
from apps.journeys.demo import demo_journeys_seed
from apps.policy.demo import demo_policy_seed
from apps.recipients.models import Recipient
from apps.segments.demo import demo_segments_seed
from apps.tenants import services
from apps.tenants.models import ApiKey, Membership, Role, Tenant

USERS = {"marketer": Role.MARKETER, "support": Role.SUPPORT, "admin": Role.TENANT_ADMIN}
RECIPIENTS = [
    ("acme", {"external_id": "user-1", "email": "ada@example.com", "phone": "+14155550101",
              "locale": "en-US", "timezone": "America/New_York",
              "attributes": {"first_name": "Ada", "plan": "pro"}}),
    ("acme", {"external_id": "user-2", "email": "grace@example.com", "locale": "en",
              "timezone": "America/Los_Angeles", "attributes": {"first_name": "Grace", "plan": "free"}}),
    ("acme", {"external_id": "user-3", "phone": "+442071838750", "locale": "en-GB",
              "timezone": "Europe/London", "attributes": {"first_name": "Alan"}}),
    ("acme-eu", {"external_id": "eu-user-1", "email": "lise@example.com", "locale": "de-DE",
                 "timezone": "Europe/Berlin", "attributes": {"first_name": "Lise"}}),
]


def _derived(label: str, length: int = 32) -> str:
    digest = hmac.new(settings.SECRET_KEY.encode(), f"seed_demo:{label}".encode(), hashlib.sha256)
    return digest.hexdigest()[:length]


class Command(BaseCommand):
    help = "Create (or find) the demo tenant, staff users, API keys and recipients."

    def add_arguments(self, parser):
        parser.add_argument("--json", action="store_true", help="print the credentials as JSON")

    @transaction.atomic
    def handle(self, *args, **options):
        acme, _ = Tenant.objects.get_or_create(
            slug="acme", defaults={"name": "Acme", "default_locale": "en",
                                   "default_timezone": "America/New_York"},
        )
        acme_eu, _ = Tenant.objects.get_or_create(
            slug="acme-eu", defaults={"name": "Acme Europe", "parent": acme,
                                      "default_timezone": "Europe/Berlin"},
        )
        users = {name: self._user(name, role, acme) for name, role in USERS.items()}
        secret_key = self._api_key(acme, "Demo secret key", ApiKey.Kind.SECRET)
        write_key = self._api_key(acme, "Demo write key", ApiKey.Kind.WRITE)
        for channel in ["email", "sms", "push", "chat", "webhook"]:
            # The log provider records what would be sent: the demo needs no external service.
            ProviderConfig.objects.get_or_create(
                tenant=acme, name=f"Log ({channel})",
                defaults={"channel": channel, "kind": "log",
                          "from_email": "hello@acme.example", "from_name": "Acme"})
        tenants = {"acme": acme, "acme-eu": acme_eu}
        for slug, profile in RECIPIENTS:
            Recipient.objects.get_or_create(
                tenant=tenants[slug], external_id=profile["external_id"], defaults=profile
            )
        templates = demo_content_seed(tenant=acme, child=acme_eu)
        categories = demo_policy_seed(tenant=acme)
        journeys = demo_journeys_seed(tenant=acme)
        segments = demo_segments_seed(tenant=acme)
        result = {"tenant": acme.slug, "secret_key": secret_key, "write_key": write_key,
                  "users": users, "templates": templates, "categories": categories,
                  "journeys": journeys, "segments": segments}
        self.stdout.write(json.dumps(result, indent=2) if options["json"] else self._text(result))

    def _user(self, username: str, role: str, tenant: Tenant) -> str:
        password = f"{username}-{_derived('password:' + username, 12)}"
        user, created = get_user_model().objects.get_or_create(
            username=username, defaults={"email": f"{username}@acme.example", "is_staff": True}
        )
        if created:
            user.set_password(password)
            user.save()
        membership = Membership.objects.filter(tenant=tenant, user=user).first()
        if membership is None:
            services.membership_save(membership=Membership(tenant=tenant, user=user, role=role))
        return password

    def _api_key(self, tenant: Tenant, name: str, kind: str) -> str:
        secret = _derived(f"api-key:{tenant.slug}:{kind}")
        existing = ApiKey.objects.filter(
            tenant=tenant, kind=kind, secret_hash=ApiKey.hash_secret(secret), revoked_at__isnull=True
        ).first()
        if existing:
            return f"{existing.prefix}_{secret}"
        _, token = services.api_key_create(tenant=tenant, name=name, kind=kind, secret=secret)
        return token

    def _text(self, result: dict) -> str:
        logins = "\n".join(f"    {name:<9} {pw}" for name, pw in result["users"].items())
        return (
            "\nSignalbox demo is ready.\n"
            "  Admin:      http://127.0.0.1:8000/admin/\n"
            f"  Logins (tenant {result['tenant']}; a password you changed since stays changed):\n"
            f"{logins}\n"
            f"  Secret API key (Authorization: Bearer …): {result['secret_key']}\n"
            f"  Write key (Segment / RudderStack):       {result['write_key']}\n"
            f"  Templates (Content › Templates): {', '.join(result['templates'])}\n"
            f"  Categories (Policy › Categories): {', '.join(result['categories'])}; quiet hours\n"
            "    21:00–08:00, at most 3 messages a day, no commercial within 2 h of billing/security\n"
            f"  Journeys (Journeys › Journeys, active): {', '.join(result['journeys'])}\n"
            "  Segments (Segments › Segments): "
            + ", ".join(f"{key} ({size} members)" for key, size in result["segments"].items()) + "\n"
        )
