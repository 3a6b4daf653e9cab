"""Templates (edited as a draft), their immutable numbered versions, layouts, partials, brands."""

from django.conf import settings
from django.core.validators import RegexValidator
from django.db import models
from simple_history.models import HistoricalRecords

from apps.core.models import TenantScopedModel
from apps.core.validators import validate_locale

KEY_HELP = "Lower-case letters, digits, '-' and '_'; the stable id the API and journeys use."
validate_key = RegexValidator(r"^[a-z0-9][a-z0-9_-]*$", "Use lower-case letters, digits, '-' and '_'.")
validate_color = RegexValidator(r"^#[0-9a-fA-F]{6}$", "A colour like #1d4ed8.")


class EmailFormat(models.TextChoices):
    MJML = "mjml", "MJML (responsive, compiled at publish)"
    HTML = "html", "HTML"


class Layout(TenantScopedModel):
    """A brand layout wrapping email bodies: `{{ content }}` marks where the body goes."""

    name = models.CharField(max_length=64, validators=[validate_key], help_text=KEY_HELP)
    format = models.CharField(max_length=4, choices=EmailFormat.choices, default=EmailFormat.MJML)
    body = models.TextField(help_text="Liquid; must contain {{ content }} once.")

    history = HistoricalRecords()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["tenant", "name"], name="layout_name_unique_per_tenant")]

    def __str__(self) -> str:
        return self.name


class Partial(TenantScopedModel):
    """A snippet shared by a tenant's templates: `{% render 'footer' %}`. Sub-tenants see their
    parents' partials; one of the same name of their own wins."""

    name = models.CharField(max_length=64, validators=[validate_key], help_text=KEY_HELP)
    body = models.TextField(help_text="Liquid (HTML in emails; a text version is derived).")

    history = HistoricalRecords()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["tenant", "name"], name="partial_name_unique_per_tenant")]

    def __str__(self) -> str:
        return self.name


class Brand(TenantScopedModel):
    """A tenant's brand. Blank fields inherit from the parent tenant's brand."""

    logo_url = models.URLField(blank=True)
    primary_color = models.CharField(max_length=7, blank=True, validators=[validate_color])
    background_color = models.CharField(max_length=7, blank=True, validators=[validate_color])
    from_name = models.CharField(max_length=100, blank=True)
    from_email = models.EmailField(blank=True)
    footer_text = models.TextField(blank=True)
    legal_address = models.TextField(blank=True)
    default_layout = models.ForeignKey(Layout, null=True, blank=True, on_delete=models.SET_NULL,
                                       related_name="+", help_text="Wraps email bodies of templates "
                                       "that name no layout of their own.")
    require_approval = models.BooleanField(
        null=True, blank=True, verbose_name="Publishing needs approval",
        help_text="Yes: a Marketer's publish waits for a user allowed to approve. Unknown: inherit.")

    history = HistoricalRecords()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["tenant"], name="brand_one_per_tenant")]

    def __str__(self) -> str:
        return f"Brand of {self.tenant}"


class ChannelContent(models.Model):
    """Content per channel: every field is Liquid; blank means the channel is not used."""

    email_subject = models.CharField(max_length=500, blank=True)
    email_preheader = models.CharField(max_length=500, blank=True,
                                       help_text="The preview line inbox apps show after the subject.")
    email_format = models.CharField(max_length=4, choices=EmailFormat.choices, default=EmailFormat.MJML)
    email_body = models.TextField(blank=True, help_text="MJML (sections, or a whole <mjml> document) "
                                  "or HTML, depending on the format.")
    email_text = models.TextField(blank=True, help_text="Blank: derived from the HTML at publish.")
    sms_text = models.TextField(blank=True)
    push_title = models.CharField(max_length=500, blank=True)
    push_body = models.TextField(blank=True)
    push_image = models.CharField(max_length=1000, blank=True, help_text="Image URL.")
    push_deep_link = models.CharField(max_length=1000, blank=True)
    push_data = models.TextField(blank=True, help_text="A JSON object; its strings are Liquid.")
    inbox_title = models.CharField(max_length=500, blank=True)
    inbox_body = models.TextField(blank=True)
    inbox_action_url = models.CharField(max_length=1000, blank=True)
    inbox_avatar = models.CharField(max_length=1000, blank=True, help_text="Image URL.")
    chat_text = models.TextField(blank=True)
    chat_blocks = models.TextField(blank=True, help_text="Slack Block Kit JSON (a list); its strings "
                                   "are Liquid.")
    webhook_body = models.TextField(blank=True, help_text="JSON; its strings are Liquid.")

    class Meta:
        abstract = True


class Template(TenantScopedModel, ChannelContent):
    """The editable draft of a template. Publishing snapshots it as a TemplateVersion."""

    key = models.CharField(max_length=100, validators=[validate_key], help_text=KEY_HELP)
    name = models.CharField(max_length=200)
    category = models.CharField(max_length=64, default="general", validators=[validate_key],
                                help_text="The category key messages from this template carry.")
    description = models.TextField(blank=True)
    strict = models.BooleanField(default=False, help_text="An undefined variable is an error "
                                 "instead of rendering empty.")
    layout = models.ForeignKey(Layout, null=True, blank=True, on_delete=models.PROTECT, related_name="+",
                               help_text="Blank: the brand's default layout.")
    sample_data = models.JSONField(
        default=dict, blank=True,
        help_text='For previews: {"recipient": {…profile and attributes…}, "data": {…}}.')
    published_version = models.ForeignKey(
        "TemplateVersion", null=True, blank=True, on_delete=models.SET_NULL, related_name="+",
        editable=False)

    history = HistoricalRecords(excluded_fields=["published_version", "updated_at"])

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["tenant", "key"], name="template_key_unique_per_tenant")]

    def __str__(self) -> str:
        return f"{self.name} ({self.key})"


class TemplateLocale(TenantScopedModel, ChannelContent):
    """A template's content in one locale. A channel left blank here uses the template's."""

    template = models.ForeignKey(Template, on_delete=models.CASCADE, related_name="locales")
    locale = models.CharField(max_length=35, validators=[validate_locale], help_text="e.g. pt-BR or pt")

    history = HistoricalRecords(excluded_fields=["updated_at"])

    class Meta:
        constraints = [models.UniqueConstraint(fields=["template", "locale"], name="template_locale_unique")]
        ordering = ["locale"]

    def __str__(self) -> str:
        return self.locale


class TemplateVersion(TenantScopedModel):
    """An immutable, numbered snapshot of a template with everything it needs to render."""

    class State(models.TextChoices):
        PENDING = "pending", "Awaiting approval"
        PUBLISHED = "published", "Published"
        REJECTED = "rejected", "Rejected"

    template = models.ForeignKey(Template, on_delete=models.PROTECT, related_name="versions")
    number = models.PositiveIntegerField()
    state = models.CharField(max_length=10, choices=State.choices)
    # What was published (draft fields, locales, layout and partials as they were) and what it
    # compiled to (see apps/content/compiling.py).
    source = models.JSONField()
    compiled = models.JSONField()
    comment = models.TextField(blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True,
                                   on_delete=models.SET_NULL, related_name="+")
    published_at = models.DateTimeField(null=True, blank=True)
    reviewed_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True,
                                    on_delete=models.SET_NULL, related_name="+")
    reviewed_at = models.DateTimeField(null=True, blank=True)
    review_comment = models.TextField(blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["template", "number"],
                                               name="template_version_number_unique")]
        indexes = [models.Index(fields=["tenant", "template", "-number"], name="template_version_latest")]
        ordering = ["-number"]
        permissions = [("approve_templateversion", "Can approve or reject a template version")]

    def __str__(self) -> str:
        return f"{self.template.key} v{self.number}"
