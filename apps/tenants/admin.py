from django.contrib import admin, messages
from django.contrib.auth import get_user_model
from django.template.response import TemplateResponse
from simple_history.admin import SimpleHistoryAdmin

from apps.core.admin import TenantScopedAdmin, allowed_tenant_ids
from apps.tenants import services
from apps.tenants.models import ApiKey, Membership, Tenant


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 0
    fields = ["user", "role"]
    readonly_fields = ["user", "role"]
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(Tenant)
class TenantAdmin(TenantScopedAdmin, SimpleHistoryAdmin):
    tenant_field = "id"
    list_display = ["name", "slug", "parent", "default_locale", "default_timezone", "created_at"]
    search_fields = ["name", "slug"]
    prepopulated_fields = {"slug": ["name"]}
    readonly_fields = ["effective_settings"]
    inlines = [MembershipInline]
    fieldsets = [
        (None, {"fields": ["name", "slug", "parent"]}),
        ("Defaults (blank inherits from the parent)", {
            "fields": ["default_locale", "default_timezone", "api_rate_limit", "effective_settings"],
        }),
    ]

    @admin.display(description="In effect")
    def effective_settings(self, obj):
        if obj.pk is None:
            return "—"
        limit = obj.effective_api_rate_limit()
        if limit is None:
            api = "no API rate limit"
        else:
            per_second, owner = limit
            shared = "" if owner == obj else f" shared with {owner}"
            api = f"API rate limit {per_second} requests/s{shared}"
        return f"locale {obj.effective_default_locale()}, time zone {obj.effective_default_timezone()}, {api}"

    def get_inlines(self, request, obj):
        return self.inlines if obj is not None else []

    def get_readonly_fields(self, request, obj=None):
        fields = list(super().get_readonly_fields(request, obj))
        if not request.user.is_superuser:
            fields.append("api_rate_limit")  # the operator's protection, not the tenant's to lift
        allowed = allowed_tenant_ids(request, "tenants.change_tenant")
        # A staff user's own top tenant keeps the parent they cannot see or choose.
        if obj is not None and allowed is not None and obj.parent_id not in allowed:
            fields.append("parent")
        return fields

    def get_form(self, request, obj=None, **kwargs):
        form = super().get_form(request, obj, **kwargs)
        if not request.user.is_superuser and "parent" in form.base_fields:
            # Only superusers create top-level tenants; everyone else nests under theirs.
            form.base_fields["parent"].required = True
        return form


@admin.register(Membership)
class MembershipAdmin(TenantScopedAdmin, SimpleHistoryAdmin):
    list_display = ["user", "role", "tenant", "created_at"]
    list_filter = ["role"]
    list_select_related = ["user", "tenant"]
    search_fields = ["user__username", "user__email"]

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        allowed = allowed_tenant_ids(request, "tenants.change_membership")
        if db_field.name == "user" and allowed is not None:
            # Staff of the user's own tenants; new staff accounts are made by a superuser.
            kwargs["queryset"] = get_user_model().objects.filter(
                memberships__tenant_id__in=allowed
            ).distinct()
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def save_model(self, request, obj, form, change):
        services.membership_save(membership=obj)

    def delete_model(self, request, obj):
        services.membership_delete(membership=obj)

    def delete_queryset(self, request, queryset):
        for membership in queryset.select_related("user"):
            services.membership_delete(membership=membership)


@admin.register(ApiKey)
class ApiKeyAdmin(TenantScopedAdmin):
    list_display = ["name", "prefix", "tenant", "kind", "mode", "status", "last_used_at", "created_at"]
    list_filter = ["kind", "mode", ("revoked_at", admin.EmptyFieldListFilter)]
    list_select_related = ["tenant"]
    search_fields = ["=prefix", "name"]
    actions = ["revoke"]

    def get_fields(self, request, obj=None):
        if obj is None:
            return ["tenant", "name", "kind", "mode"]
        return ["tenant", "name", "kind", "mode", "prefix", "created_by", "created_at",
                "last_used_at", "revoked_at"]

    def get_readonly_fields(self, request, obj=None):
        if obj is None:
            return []
        # A key's tenant, kind and mode are what it was issued with; make a new key instead.
        return ["tenant", "kind", "mode", "prefix", "created_by", "created_at", "last_used_at",
                "revoked_at"]

    @admin.display(description="Status")
    def status(self, obj):
        return "active" if obj.is_active else "revoked"

    def save_model(self, request, obj, form, change):
        if change:
            obj.save(update_fields=["name"])
            return
        api_key, token = services.api_key_create(
            tenant=obj.tenant, name=obj.name, kind=obj.kind, mode=obj.mode, created_by=request.user
        )
        obj.pk, obj.prefix, obj._token = api_key.pk, api_key.prefix, token

    def response_add(self, request, obj, post_url_continue=None):
        # Shown in this one response and nowhere else: not stored, not put in a message cookie.
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta, "api_key": obj, "token": obj._token,
            "title": "API key created",
        }
        return TemplateResponse(request, "admin/tenants/apikey/created.html", context)

    @admin.action(description="Revoke selected API keys", permissions=["change"])
    def revoke(self, request, queryset):
        keys = [k for k in queryset if self._role_allows(request, "change", k)]
        for api_key in keys:
            services.api_key_revoke(api_key=api_key)
        self.message_user(request, f"Revoked {len(keys)} API key(s).", messages.SUCCESS)
