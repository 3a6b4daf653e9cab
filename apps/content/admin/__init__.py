"""Admin of templates (apps/content/admin/templates.py), layouts, partials, brands and versions."""

import json

from django.contrib import admin
from django.utils.html import format_html
from simple_history.admin import SimpleHistoryAdmin

from apps.content import services
from apps.content.admin.forms import BrandForm, LayoutForm, PartialForm
from apps.content.admin.templates import TemplateAdmin
from apps.content.models import Brand, Layout, Partial, TemplateVersion
from apps.core.admin import ReadOnlyAdminMixin, TenantScopedAdmin, allowed_tenant_ids

__all__ = ["TemplateAdmin"]


@admin.register(Layout)
class LayoutAdmin(TenantScopedAdmin, SimpleHistoryAdmin):
    form = LayoutForm
    list_display = ["name", "format", "tenant", "updated_at"]
    list_select_related = ["tenant"]
    search_fields = ["name"]


@admin.register(Partial)
class PartialAdmin(TenantScopedAdmin, SimpleHistoryAdmin):
    form = PartialForm
    list_display = ["name", "tenant", "updated_at"]
    list_select_related = ["tenant"]
    search_fields = ["name"]


@admin.register(Brand)
class BrandAdmin(TenantScopedAdmin, SimpleHistoryAdmin):
    form = BrandForm
    list_display = ["tenant", "from_name", "from_email", "primary_color", "require_approval"]
    list_select_related = ["tenant"]
    fieldsets = [
        (None, {"fields": ["tenant"]}),
        ("Look (blank inherits from the parent tenant's brand)", {
            "fields": ["logo_url", "primary_color", "background_color", "default_layout"]}),
        ("Sender and footer", {"fields": ["from_name", "from_email", "footer_text", "legal_address"]}),
        ("Publishing", {"fields": ["require_approval"]}),
    ]

    def get_form(self, request, obj=None, **kwargs):
        form = super().get_form(request, obj, **kwargs)
        return type(form.__name__, (form,), {"request": request})

    def get_readonly_fields(self, request, obj=None):
        approve = allowed_tenant_ids(request, "content.approve_templateversion")
        if approve is None or (approve and (obj is None or obj.tenant_id in approve)):
            return []
        return ["require_approval"]

    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)
        services.brand_changed()


@admin.register(TemplateVersion)
class TemplateVersionAdmin(ReadOnlyAdminMixin, TenantScopedAdmin):
    """Read-only: what a message was rendered from."""

    list_display = ["__str__", "state", "tenant", "created_by", "published_at", "created_at"]
    list_filter = ["state"]
    list_select_related = ["template", "tenant", "created_by"]
    search_fields = ["template__key"]
    fields = ["template", "number", "state", "comment", "created_by", "created_at", "published_at",
              "reviewed_by", "reviewed_at", "review_comment", "source_json"]
    readonly_fields = fields

    @admin.display(description="Source")
    def source_json(self, obj):
        source = json.dumps(obj.source, indent=2, ensure_ascii=False)
        return format_html('<pre class="sb-code">{}</pre>', source)
