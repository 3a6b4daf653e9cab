from django import forms
from django.contrib import admin
from django.urls import reverse
from django.utils.html import format_html, format_html_join

from apps.core.admin import TenantScopedAdmin
from apps.messaging.models import Channel
from apps.policy.models import (
    Cap,
    Category,
    FlagRule,
    Kind,
    PolicySettings,
    Preference,
    RecipientFlag,
    SuppressedAddress,
    SuppressionRule,
)
from apps.policy.services import flag_rule_dry_run, rule_dry_run


class CategoryForm(forms.ModelForm):
    channels_off = forms.MultipleChoiceField(
        choices=Channel.choices, required=False, widget=forms.CheckboxSelectMultiple,
        help_text="Off unless the recipient turns them on; every other channel is on by default.")

    class Meta:
        model = Category
        fields = ["tenant", "key", "name", "kind", "required", "default_priority", "channels_off"]


@admin.register(Category)
class CategoryAdmin(TenantScopedAdmin):
    form = CategoryForm
    list_display = ["key", "name", "kind", "required", "default_priority", "tenant"]
    list_select_related = ["tenant"]
    list_filter = ["kind", "tenant"]
    search_fields = ["key", "name"]


@admin.register(PolicySettings)
class PolicySettingsAdmin(TenantScopedAdmin):
    list_display = ["tenant", "quiet_start", "quiet_end", "cap_per_day", "cap_per_week", "cap_action"]
    list_select_related = ["tenant"]


@admin.register(SuppressedAddress)
class SuppressedAddressAdmin(TenantScopedAdmin):
    list_display = ["address", "channel", "source", "reason", "created_at", "tenant"]
    list_select_related = ["tenant"]
    list_filter = ["channel", "source", "tenant"]
    search_fields = ["=address"]  # exact: the (tenant, channel, address) index
    show_full_result_count = False


@admin.register(Preference)
class PreferenceAdmin(TenantScopedAdmin):
    list_display = ["recipient", "commercial_unsubscribed_at", "updated_at", "tenant"]
    list_select_related = ["tenant", "recipient"]
    raw_id_fields = ["recipient"]
    search_fields = ["=recipient__external_id"]
    show_full_result_count = False


class KeyListField(forms.CharField):
    """A JSON list of keys, edited as comma-separated text."""

    def prepare_value(self, value):
        return ", ".join(value) if isinstance(value, list) else value

    def to_python(self, value):
        return [key.strip() for key in (value or "").split(",") if key.strip()]


class SuppressionRuleForm(forms.ModelForm):
    kinds = forms.MultipleChoiceField(choices=Kind.choices, widget=forms.CheckboxSelectMultiple,
                                      help_text="Messages of these kinds are held.")
    after_categories = KeyListField(help_text="Category keys, comma-separated, e.g. billing, security.")

    class Meta:
        model = SuppressionRule
        fields = ["tenant", "name", "enabled", "kinds", "after_categories", "window_minutes", "action"]

    def clean_after_categories(self):
        from apps.policy.selectors import tenant_policy_load

        keys, tenant = self.cleaned_data["after_categories"], self.cleaned_data.get("tenant")
        known = tenant_policy_load(tenant=tenant).categories if tenant else {}
        unknown = [key for key in keys if key not in known]
        if tenant and unknown:
            raise forms.ValidationError(f"Not categories of {tenant}: {', '.join(unknown)}.")
        return keys


@admin.register(SuppressionRule)
class SuppressionRuleAdmin(TenantScopedAdmin):
    form = SuppressionRuleForm
    list_display = ["name", "enabled", "window_minutes", "action", "tenant"]
    list_select_related = ["tenant"]
    list_filter = ["enabled", "tenant"]
    readonly_fields = ["dry_run"]

    @admin.display(description="Dry run")
    def dry_run(self, obj):
        if obj is None or obj.pk is None:
            return "Save the rule to see what it would have held."
        held, sample = rule_dry_run(rule=obj)
        verb = "suppressed" if obj.action == SuppressionRule.Action.SUPPRESS else "deferred"
        return f"This rule would have {verb} {held} of the last {sample:,} messages."


class FlagRuleForm(forms.ModelForm):
    categories = KeyListField(help_text="Category keys held while the flag is set, comma-separated.")

    class Meta:
        model = FlagRule
        fields = ["tenant", "name", "enabled", "flag", "categories", "set_by_event", "cleared_by_event",
                  "expires_after_minutes", "action"]


@admin.register(FlagRule)
class FlagRuleAdmin(TenantScopedAdmin):
    form = FlagRuleForm
    list_display = ["name", "flag", "set_by_event", "cleared_by_event", "expires_after_minutes", "enabled",
                    "tenant"]
    list_select_related = ["tenant"]
    readonly_fields = ["dry_run"]

    @admin.display(description="Dry run")
    def dry_run(self, obj):
        if obj is None or obj.pk is None:
            return "Save the rule to see what it would hold now."
        found = flag_rule_dry_run(rule=obj)
        verb = "suppress" if obj.action == FlagRule.Action.SUPPRESS else "defer"
        words = format_html(
            "{} recipient(s) have {} set now; this rule would {} {} of their queued or scheduled "
            "messages of {} (nothing is changed here).", found.recipients, obj.flag, verb, found.held,
            ", ".join(obj.categories))
        items = format_html_join("", '<li><a href="{}">message #{}</a>: {}, {}, {}</li>', [
            (reverse("admin:messaging_message_change", args=[m["id"]]), m["id"], m["recipient__external_id"],
             m["category"], m["status"]) for m in found.sample])
        return format_html("{}<ul>{}</ul>", words, items) if found.sample else words


@admin.register(RecipientFlag)
class RecipientFlagAdmin(TenantScopedAdmin):
    list_display = ["flag", "recipient", "set_at", "expires_at", "tenant"]
    list_select_related = ["tenant", "recipient"]
    raw_id_fields = ["recipient"]
    search_fields = ["=recipient__external_id"]
    show_full_result_count = False


class CapForm(forms.ModelForm):
    class Meta:
        model = Cap
        fields = ["tenant", "scope", "key", "period", "limit", "action", "low_action"]

    def clean(self):
        from apps.policy.selectors import tenant_policy_load

        cleaned = super().clean()
        tenant, key = cleaned.get("tenant"), (cleaned.get("key") or "").strip()
        if tenant and cleaned.get("scope") == Cap.Scope.CATEGORY and key:
            categories = tenant_policy_load(tenant=tenant).categories
            if categories and key not in categories:  # a tenant without categories knows every key
                self.add_error("key", f"Not a category of {tenant}: {key}.")
        return cleaned


@admin.register(Cap)
class CapAdmin(TenantScopedAdmin):
    form = CapForm
    list_display = ["__str__", "scope", "key", "period", "limit", "action", "low_action", "tenant"]
    list_select_related = ["tenant"]
    list_filter = ["scope", "period", "tenant"]
