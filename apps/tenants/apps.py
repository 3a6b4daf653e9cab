from django.apps import AppConfig
from django.db.models.signals import post_migrate


class TenantsConfig(AppConfig):
    name = "apps.tenants"
    label = "tenants"

    def ready(self):
        from apps.tenants.roles import roles_sync_after_migrate

        # Once per `migrate` (and per test-database flush), after every app's tables exist.
        post_migrate.connect(roles_sync_after_migrate, sender=self,
                             dispatch_uid="signalbox.roles_sync")
