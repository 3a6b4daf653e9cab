"""Abstract bases only. Every tenant-owned model inherits TenantScopedModel."""

from django.db import models

from apps.core import clock


class TimeStampedModel(models.Model):
    created_at = models.DateTimeField(default=clock.now, editable=False)
    updated_at = models.DateTimeField(default=clock.now, editable=False)

    class Meta:
        abstract = True

    def save(self, *args, **kwargs):
        # Stamped here rather than with auto_now so the test clock (clock.now) applies.
        self.updated_at = clock.now()
        if kwargs.get("update_fields") is not None:
            kwargs["update_fields"] = {*kwargs["update_fields"], "updated_at"}
        super().save(*args, **kwargs)


class TenantQuerySet(models.QuerySet):
    def for_tenant(self, tenant) -> "TenantQuerySet":
        return self.filter(tenant=tenant)

    def for_tenant_ids(self, tenant_ids) -> "TenantQuerySet":
        return self.filter(tenant_id__in=tenant_ids)


class TenantScopedModel(TimeStampedModel):
    # PROTECT: deleting a tenant that still owns data is refused rather than cascading silently.
    tenant = models.ForeignKey("tenants.Tenant", on_delete=models.PROTECT, related_name="+")

    objects = TenantQuerySet.as_manager()

    class Meta:
        abstract = True
