"""TenantScopedAdmin: every admin of tenant-owned data shows and offers only the staff user's tenants."""

import json

from django import forms
from django.contrib import admin
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.db import models
from django.utils.functional import cached_property

from apps.core import parsing
from apps.core.models import TenantScopedModel


class JSONField(forms.JSONField):
    """Django's JSON form field with the API's limits (parsing.json_loads): no NUL characters,
    NaN or Infinity (jsonb refuses them), nor nesting deeper than parsing.MAX_DEPTH levels."""

    def to_python(self, value):
        if isinstance(value, str) and not self.disabled and value not in self.empty_values:
            try:
                parsing.json_loads(value.encode())
            except json.JSONDecodeError:
                pass  # Django's own message, below
            except ValueError as error:
                raise ValidationError(f"Enter valid JSON: {error}.", code="invalid") from None
        return super().to_python(value)

    def bound_data(self, data, initial):
        try:
            return super().bound_data(data, initial)
        except RecursionError:  # shown again as typed, with the error above
            return forms.fields.InvalidJSONInput(data)


def allowed_tenant_ids(request, permission: str) -> set[int] | None:
    """Tenants where the request's user holds `permission`; None means all (superuser).

    Memoised on the request: the admin asks several times while building one page.
    """
    from apps.tenants.selectors import tenant_ids_for_user

    if request.user.is_superuser:
        return None
    memo = request.__dict__.setdefault("_signalbox_tenant_ids", {})
    if permission not in memo:
        memo[permission] = tenant_ids_for_user(user=request.user, permission=permission)
    return memo[permission]


class TenantScopedAdmin(admin.ModelAdmin):
    # The lookup from this admin's model to its Tenant ("id" for the Tenant admin itself).
    tenant_field = "tenant"
    formfield_overrides = {models.JSONField: {"form_class": JSONField}}

    def _perm(self, action: str) -> str:
        opts = self.model._meta
        return f"{opts.app_label}.{action}_{opts.model_name}"

    def _tenant_id_of(self, obj) -> int:
        return obj.pk if self.tenant_field == "id" else getattr(obj, f"{self.tenant_field}_id")

    def _role_allows(self, request, action: str, obj) -> bool:
        allowed = allowed_tenant_ids(request, self._perm(action))
        return obj is None or allowed is None or self._tenant_id_of(obj) in allowed

    def get_queryset(self, request):
        qs = super().get_queryset(request)
        allowed = allowed_tenant_ids(request, self._perm("view"))
        return qs if allowed is None else qs.filter(**{f"{self.tenant_field}__in": allowed})

    def has_view_permission(self, request, obj=None):
        return super().has_view_permission(request, obj) and (
            self._role_allows(request, "view", obj) or self._role_allows(request, "change", obj)
        )

    def has_change_permission(self, request, obj=None):
        return super().has_change_permission(request, obj) and self._role_allows(
            request, "change", obj
        )

    def has_delete_permission(self, request, obj=None):
        return super().has_delete_permission(request, obj) and self._role_allows(
            request, "delete", obj
        )

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        # Choices for a tenant, or for another tenant's object, are limited to tenants where the
        # user may change this model: the form then refuses anything else as an invalid choice.
        from apps.tenants.models import Tenant

        allowed = allowed_tenant_ids(request, self._perm("change"))
        model = db_field.related_model
        if allowed is not None:
            if model is Tenant:
                kwargs["queryset"] = Tenant.objects.filter(id__in=allowed)
            elif issubclass(model, TenantScopedModel):
                kwargs["queryset"] = model._default_manager.filter(tenant_id__in=allowed)
        return super().formfield_for_foreignkey(db_field, request, **kwargs)


class CappedCountPaginator(Paginator):
    """Counts at most CAP rows, so a changelist over millions of rows never runs a full COUNT(*)
    (healthchecks' PingsAdmin does the same). Past the cap, search narrows the list."""

    CAP = 10_000

    @cached_property
    def count(self) -> int:
        return self.object_list[: self.CAP].count()


class ReadOnlyAdminMixin:
    """Rows written only by the application (immutable or append-only): viewable, never edited."""

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


class BigTableAdmin(ReadOnlyAdminMixin, TenantScopedAdmin):
    """Read-only admin of an append-only table that grows to millions of rows."""

    paginator = CappedCountPaginator
    show_full_result_count = False
    ordering = ["-id"]  # the primary key index: newest first without a sort
