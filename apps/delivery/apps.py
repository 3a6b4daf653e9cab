from django.apps import AppConfig
from django.db.models.signals import post_delete, post_save


class DeliveryConfig(AppConfig):
    name = "apps.delivery"
    label = "delivery"

    def ready(self):
        from apps.delivery.models import ProviderConfig
        from apps.delivery.selectors import providers_changed
        from apps.tenants.models import Tenant

        for model in (ProviderConfig, Tenant):  # a tenant's move changes whose providers it inherits
            for signal in (post_save, post_delete):
                signal.connect(providers_changed, sender=model, dispatch_uid=f"providers-{model.__name__}")
