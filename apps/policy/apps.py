from django.apps import AppConfig
from django.db.models.signals import post_delete, post_save


class PolicyConfig(AppConfig):
    name = "apps.policy"
    label = "policy"

    def ready(self):
        from apps.policy.models import Cap, Category, FlagRule, PolicySettings, SuppressionRule
        from apps.policy.selectors import policy_changed
        from apps.tenants.models import Tenant

        # A tenant's move changes what it inherits.
        for model in (Category, PolicySettings, SuppressionRule, FlagRule, Cap, Tenant):
            for signal in (post_save, post_delete):
                signal.connect(policy_changed, sender=model, dispatch_uid=f"policy-{model.__name__}")
