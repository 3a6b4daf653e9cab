"""Orchestration policy: categories, recipients' preferences, the address suppression list and
each tenant's timing settings (quiet hours, frequency caps). See docs/policy.md."""

from django.core.exceptions import ValidationError
from django.db import models

from apps.core.models import TenantScopedModel
from apps.messaging.models import Channel, Priority


class Kind(models.TextChoices):
    TRANSACTIONAL = "transactional"
    PRODUCT = "product"
    COMMERCIAL = "commercial"


def validate_channels(value) -> None:
    if not isinstance(value, list) or any(c not in Channel.values for c in value):
        raise ValidationError(f"A list of channels among {', '.join(Channel.values)}.")


class Category(TenantScopedModel):
    """What a message is about. A sub-tenant inherits its ancestors' categories; its own row with
    the same key overrides the inherited one as a whole (the nearest tenant wins)."""

    key = models.SlugField(max_length=64, help_text="What the send API's `category` names.")
    name = models.CharField(max_length=200)
    kind = models.CharField(max_length=13, choices=Kind.choices, default=Kind.PRODUCT)
    required = models.BooleanField(
        default=False, help_text="Recipients cannot mute it (security notices, password resets).")
    default_priority = models.CharField(max_length=10, choices=Priority.choices, default=Priority.NORMAL)
    channels_off = models.JSONField(
        default=list, blank=True, validators=[validate_channels],
        help_text="Channels off unless the recipient turns them on; every other channel is on.")

    class Meta:
        verbose_name_plural = "categories"
        constraints = [models.UniqueConstraint(fields=["tenant", "key"],
                                               name="category_key_unique_per_tenant")]

    def __str__(self) -> str:
        return f"{self.name} ({self.key})"


class PolicySettings(TenantScopedModel):
    """A tenant's quiet hours and frequency caps. A tenant without its own row uses its nearest
    ancestor's; without any, there are no quiet hours and no caps."""

    class CapAction(models.TextChoices):
        DEFER = "defer", "Wait until the window has room"
        DROP = "drop", "Drop (suppressed)"

    quiet_start = models.TimeField(null=True, blank=True,
                                   help_text="Local time in the recipient's time zone, e.g. 21:00.")
    quiet_end = models.TimeField(null=True, blank=True, help_text="e.g. 08:00 (the next morning).")
    cap_per_day = models.PositiveIntegerField(
        null=True, blank=True,
        help_text="At most this many messages per recipient in any 24 h, all channels.")
    cap_per_week = models.PositiveIntegerField(
        null=True, blank=True, help_text="At most this many per recipient in any 7 days, all channels.")
    cap_action = models.CharField(max_length=5, choices=CapAction.choices, default=CapAction.DEFER,
                                  help_text="What happens to a message over a cap (critical ones bypass).")
    caps_exempt_transactional = models.BooleanField(
        default=True, help_text="Transactional categories neither count towards nor are held by caps.")

    class Meta:
        verbose_name = verbose_name_plural = "policy settings"
        constraints = [models.UniqueConstraint(fields=["tenant"], name="policy_settings_one_per_tenant")]

    def __str__(self) -> str:
        return f"Policy settings of {self.tenant}"

    def clean(self) -> None:
        super().clean()
        if (self.quiet_start is None) != (self.quiet_end is None):
            field = "quiet_end" if self.quiet_end is None else "quiet_start"
            raise ValidationError({field: "Give both ends of the quiet hours, or neither."})
        if self.quiet_start is not None and self.quiet_start == self.quiet_end:
            raise ValidationError({"quiet_end": "Quiet hours must not start and end at the same time."})
        if 0 in (self.cap_per_day, self.cap_per_week):
            raise ValidationError({"cap_per_day" if self.cap_per_day == 0 else "cap_per_week":
                                   "A cap of 0 blocks everything; leave it blank for no cap."})


class Cap(TenantScopedModel):
    """"At most `limit` messages per recipient in any rolling day or week": across all channels,
    on one channel, or of one category. A tenant's caps and all its ancestors' apply (with the
    tenant's PolicySettings caps as 'all channels' caps). Critical messages bypass every cap, and
    transactional ones too while the tenant's `caps_exempt_transactional` holds (the default).
    Over a cap, normal and high priority messages follow `action`, low ones `low_action`."""

    class Scope(models.TextChoices):
        ALL = "all", "All channels and categories"
        CHANNEL = "channel", "One channel"
        CATEGORY = "category", "One category"

    class Period(models.TextChoices):
        DAY = "day", "Any 24 hours"
        WEEK = "week", "Any 7 days"

    class Action(models.TextChoices):
        DEFER = "defer", "Wait until the window has room"
        DROP = "drop", "Drop (suppressed)"

    scope = models.CharField(max_length=8, choices=Scope.choices, default=Scope.ALL)
    key = models.CharField(max_length=64, blank=True,
                           help_text="The channel (e.g. sms) or category key the cap counts; blank for all.")
    period = models.CharField(max_length=4, choices=Period.choices, default=Period.DAY)
    limit = models.PositiveIntegerField(help_text="At most this many messages per recipient in the period.")
    action = models.CharField(max_length=5, choices=Action.choices, default=Action.DEFER,
                              help_text="Over the cap: what happens to normal and high priority messages.")
    low_action = models.CharField(max_length=5, choices=Action.choices, default=Action.DEFER,
                                  help_text="Over the cap: what happens to low priority messages.")

    def __str__(self) -> str:
        return self.words()

    def words(self) -> str:
        """`3 per day`, `2 per day on sms`, `1 per week for marketing`: how the timeline names it."""
        where = {self.Scope.CHANNEL: f" on {self.key}", self.Scope.CATEGORY: f" for {self.key}"}
        return f"{self.limit} per {self.period}{where.get(self.scope, '')}"

    def action_for(self, priority: str) -> str:
        return self.low_action if priority == Priority.LOW else self.action

    def clean(self) -> None:
        super().clean()
        errors = {}
        self.key = (self.key or "").strip()
        if self.scope == self.Scope.ALL and self.key:
            errors["key"] = "Leave it blank: this cap counts every channel and category."
        elif self.scope == self.Scope.CHANNEL and self.key not in Channel.values:
            errors["key"] = f"Name one channel among {', '.join(Channel.values)}."
        elif self.scope == self.Scope.CATEGORY and not self.key:
            errors["key"] = "Name the category key the cap counts."
        if self.limit == 0:
            errors["limit"] = "A cap of 0 blocks everything; delete the cap instead."
        if errors:
            raise ValidationError(errors)


class Preference(TenantScopedModel):
    """One recipient's choices. `channels`: {category key: {channel: true|false}}, overriding the
    category's defaults; missing entries keep them."""

    recipient = models.OneToOneField("recipients.Recipient", on_delete=models.CASCADE,
                                     related_name="preference")
    channels = models.JSONField(default=dict, blank=True)
    quiet_start = models.TimeField(null=True, blank=True, help_text="Overrides the tenant's quiet hours.")
    quiet_end = models.TimeField(null=True, blank=True)
    commercial_unsubscribed_at = models.DateTimeField(
        null=True, blank=True, help_text="Set: no commercial message on any channel.")

    def __str__(self) -> str:
        return f"Preferences of {self.recipient}"


class SuppressedAddress(TenantScopedModel):
    """An address never sent to on its channel (by hand, unsubscribes; later bounces, complaints)."""

    class Source(models.TextChoices):
        MANUAL = "manual"
        UNSUBSCRIBE = "unsubscribe"
        BOUNCE = "bounce"
        COMPLAINT = "complaint"

    channel = models.CharField(max_length=10, choices=Channel.choices)
    address = models.CharField(max_length=254,
                               help_text="As stored on recipients: lower-case email, E.164 phone.")
    reason = models.CharField(max_length=200, blank=True)
    source = models.CharField(max_length=12, choices=Source.choices, default=Source.MANUAL)

    class Meta:
        verbose_name_plural = "suppressed addresses"
        constraints = [models.UniqueConstraint(fields=["tenant", "channel", "address"],
                                               name="suppressed_address_unique_per_tenant")]

    def __str__(self) -> str:
        return f"{self.address} ({self.channel})"

    def clean(self) -> None:
        super().clean()
        self.address = self.address.strip()
        if self.channel == Channel.EMAIL:
            self.address = self.address.lower()


class SuppressionRule(TenantScopedModel):
    """"No commercial message within 2 h after a billing or security message": a message of one
    of `kinds` is held when the recipient was sent a message of one of `after_categories` in the
    last `window_minutes`. A tenant's rules and its ancestors' all apply. Critical messages pass."""

    class Action(models.TextChoices):
        SUPPRESS = "suppress", "Suppress (never sent)"
        DEFER = "defer", "Defer until the window is over"

    name = models.CharField(max_length=200)
    enabled = models.BooleanField(default=True)
    kinds = models.JSONField(default=list, help_text="Kinds of category held, e.g. commercial.")
    after_categories = models.JSONField(default=list, help_text="Category keys that start the window.")
    window_minutes = models.PositiveIntegerField(default=120)
    action = models.CharField(max_length=8, choices=Action.choices, default=Action.SUPPRESS)

    MAX_WINDOW_MINUTES = 30 * 24 * 60

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        super().clean()
        errors = {}
        kinds = self.kinds if isinstance(self.kinds, list) else []
        if not kinds or any(k not in Kind.values for k in kinds):
            errors["kinds"] = f"Choose one or more of {', '.join(Kind.values)}."
        if (not isinstance(self.after_categories, list) or not self.after_categories
                or any(not isinstance(k, str) or not k for k in self.after_categories)):
            errors["after_categories"] = "Name one or more category keys."
        if not 1 <= (self.window_minutes or 0) <= self.MAX_WINDOW_MINUTES:
            errors["window_minutes"] = f"Between 1 and {self.MAX_WINDOW_MINUTES} minutes (30 days)."
        if errors:
            raise ValidationError(errors)

    def window_words(self) -> str:
        minutes = self.window_minutes
        return f"{minutes // 60} h" if minutes % 60 == 0 else f"{minutes} min"


class FlagRule(TenantScopedModel):
    """"Hold category X while flag F is set": an event named `set_by_event` sets the flag on its
    recipient, one named `cleared_by_event` clears it, or it expires `expires_after_minutes` after
    it was set. While it is set, messages of `categories` are held (deferred or suppressed);
    critical ones pass. A tenant's flag rules and its ancestors' all apply."""

    class Action(models.TextChoices):
        DEFER = "defer", "Defer until the flag is cleared or expires"
        SUPPRESS = "suppress", "Suppress (never sent)"

    name = models.CharField(max_length=200)
    enabled = models.BooleanField(default=True)
    flag = models.SlugField(max_length=64, help_text="e.g. in-checkout")
    categories = models.JSONField(default=list, help_text="Category keys held while the flag is set.")
    set_by_event = models.CharField(max_length=200, help_text="Event name that sets the flag.")
    cleared_by_event = models.CharField(max_length=200, blank=True, help_text="Event name that clears it.")
    expires_after_minutes = models.PositiveIntegerField(null=True, blank=True,
                                                        help_text="Blank: until cleared.")
    action = models.CharField(max_length=8, choices=Action.choices, default=Action.DEFER)

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        super().clean()
        errors = {}
        if (not isinstance(self.categories, list) or not self.categories
                or any(not isinstance(k, str) or not k for k in self.categories)):
            errors["categories"] = "Name one or more category keys."
        if not self.cleared_by_event and not self.expires_after_minutes:
            errors["expires_after_minutes"] = "Give a clearing event, an expiry or both: else it never ends."
        if self.cleared_by_event and self.cleared_by_event == self.set_by_event:
            errors["cleared_by_event"] = "Must differ from the event that sets the flag."
        if errors:
            raise ValidationError(errors)


class RecipientFlag(TenantScopedModel):
    """A flag set on a recipient by an event (see FlagRule)."""

    recipient = models.ForeignKey("recipients.Recipient", on_delete=models.CASCADE, related_name="+")
    flag = models.SlugField(max_length=64)
    set_at = models.DateTimeField()
    expires_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["tenant", "recipient", "flag"],
                                               name="recipient_flag_unique")]

    def __str__(self) -> str:
        return f"{self.flag} on {self.recipient_id}"


class PolicyVersion(models.Model):
    """One row (id 1): bumped by every edit of any tenant's policy (selectors.policy_changed) in
    the edit's own transaction, and read with each batch's preferences, so that a process's cached
    policy is dropped as soon as an edit commits without a cache round trip per batch."""

    value = models.BigIntegerField(default=0)

    def __str__(self) -> str:
        return f"policy version {self.value}"
