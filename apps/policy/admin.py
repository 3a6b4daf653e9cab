from django import forms
from django.contrib import admin

from apps.core.admin import TenantScopedAdmin
from apps.messaging.models import Channel
from apps.policy.models import Category, PolicySettings, Preference, SuppressedAddress


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
