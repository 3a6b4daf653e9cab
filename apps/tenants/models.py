import hashlib

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MinValueValidator
from django.db import models
from simple_history.models import HistoricalRecords

from apps.core.models import TenantScopedModel, TimeStampedModel
from apps.core.validators import validate_locale, validate_timezone


class Tenant(TimeStampedModel):
    """A customer account. Tenants form a hierarchy; a child inherits what it does not set."""

    MAX_DEPTH = 4

    name = models.CharField(max_length=200)
    slug = models.SlugField(max_length=64, unique=True)
    parent = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.PROTECT, related_name="children"
    )
    default_locale = models.CharField(
        max_length=35, blank=True, validators=[validate_locale],
        help_text="Blank: inherit from the parent tenant.",
    )
    default_timezone = models.CharField(
        max_length=64, blank=True, validators=[validate_timezone],
        help_text="IANA name, e.g. Europe/Berlin. Blank: inherit from the parent tenant.",
    )
    api_rate_limit = models.PositiveIntegerField(
        "API rate limit (requests/s)", null=True, blank=True, validators=[MinValueValidator(1)],
        help_text="Requests per second for the API keys of this tenant and of its sub-tenants that set "
                  "none, counted together (a Segment batch is one request). Blank: the parent's limit "
                  "covers this tenant too, else SIGNALBOX_API_RATE_LIMIT. Only superusers change it.",
    )

    history = HistoricalRecords()

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def ancestors(self) -> list["Tenant"]:
        """Parent first, root last. At most MAX_DEPTH - 1 queries, usually fewer."""
        chain, seen, node = [], {self.pk}, self.parent
        while node is not None and node.pk not in seen:
            chain.append(node)
            seen.add(node.pk)
            node = node.parent
        return chain

    def lineage(self) -> list["Tenant"]:
        return [self, *self.ancestors()]

    def effective(self, field: str):
        """The first non-blank value of `field` from this tenant up to the root, else None."""
        for tenant in self.lineage():
            value = getattr(tenant, field)
            if value not in ("", None):
                return value
        return None

    def effective_default_locale(self) -> str:
        return self.effective("default_locale") or settings.SIGNALBOX_DEFAULT_LOCALE

    def effective_default_timezone(self) -> str:
        return self.effective("default_timezone") or settings.SIGNALBOX_DEFAULT_TIMEZONE

    def effective_api_rate_limit(self) -> tuple[int, "Tenant"] | None:
        """(requests per second, the tenant whose count they are), or None for no limit. The
        nearest tenant up the hierarchy that sets a limit counts for its sub-tenants that set
        none, so making sub-tenants never multiplies a limit; SIGNALBOX_API_RATE_LIMIT counts
        for a top tenant's whole tree."""
        lineage = self.lineage()
        for tenant in lineage:
            if tenant.api_rate_limit:
                return tenant.api_rate_limit, tenant
        if settings.SIGNALBOX_API_RATE_LIMIT:
            return settings.SIGNALBOX_API_RATE_LIMIT, lineage[-1]
        return None

    def clean(self) -> None:
        super().clean()
        if self.parent_id is None:
            return
        above = [self.parent, *self.parent.ancestors()]
        if self.pk is not None and any(t.pk == self.pk for t in above):
            raise ValidationError(
                {"parent": "A tenant cannot sit under itself or one of its own sub-tenants."}
            )
        depth = len(above) + 1 + self._subtree_height()
        if depth > self.MAX_DEPTH:
            raise ValidationError({"parent": (
                f"Tenants nest at most {self.MAX_DEPTH} levels deep; "
                f"under {self.parent} this would make {depth}."
            )})

    def _subtree_height(self) -> int:
        """Levels of sub-tenants below this one (0 for a leaf or an unsaved tenant)."""
        if self.pk is None:
            return 0
        height, frontier = 0, [self.pk]
        while frontier and height <= self.MAX_DEPTH:
            frontier = list(Tenant.objects.filter(parent_id__in=frontier).values_list("id", flat=True))
            height += bool(frontier)
        return height


class Role(models.TextChoices):
    """Each role is a Django group of the same label (created by migration 0002_roles)."""

    MARKETER = "marketer", "Marketer"
    SUPPORT = "support", "Support"
    TENANT_ADMIN = "tenant_admin", "Tenant admin"


class Membership(TenantScopedModel):
    """A staff user's role in a tenant; it covers the tenant's sub-tenants too."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships"
    )
    role = models.CharField(max_length=20, choices=Role.choices)

    history = HistoricalRecords()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["tenant", "user"], name="membership_one_role_per_tenant")
        ]

    def __str__(self) -> str:
        return f"{self.user} · {self.get_role_display()} · {self.tenant}"


class ApiKey(TenantScopedModel):
    """A tenant's API credential. Only a SHA-256 of the secret is stored (see services)."""

    class Kind(models.TextChoices):
        SECRET = "secret", "Secret (server-side, full API)"
        WRITE = "write", "Write (Segment-style ingestion only)"

    class Mode(models.TextChoices):
        LIVE = "live", "Live"
        TEST = "test", "Test (sends only to the log provider)"

    name = models.CharField(max_length=100)
    kind = models.CharField(max_length=10, choices=Kind.choices, default=Kind.SECRET)
    mode = models.CharField(max_length=10, choices=Mode.choices, default=Mode.LIVE)
    # The public part of the key, e.g. sb_sk_live_4f9QhZ2a; looked up before the tenant is known.
    prefix = models.CharField(max_length=40, unique=True, editable=False)
    secret_hash = models.CharField(max_length=64, editable=False)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
        related_name="+", editable=False,
    )
    revoked_at = models.DateTimeField(null=True, blank=True, editable=False)
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        verbose_name = "API key"

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None

    @staticmethod
    def hash_secret(secret: str) -> str:
        # A fast hash is right here: the secret is 190 random bits, so there is nothing to
        # brute-force, and a slow KDF would cost every API request.
        return hashlib.sha256(secret.encode()).hexdigest()
