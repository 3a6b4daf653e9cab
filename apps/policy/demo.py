"""The demo tenant's policy (seed_demo): the four categories of docs/policy.md plus those the demo
templates name, quiet hours 21:00–08:00, at most 3 messages a day, and no commercial message
within 2 h of a billing or security message. Idempotent."""

from datetime import time

from apps.policy.models import Category, Kind, PolicySettings, SuppressionRule

CATEGORIES = [
    ("security", "Security", Kind.TRANSACTIONAL, True, "critical"),
    ("billing", "Billing", Kind.TRANSACTIONAL, False, "high"),
    ("product-updates", "Product updates", Kind.PRODUCT, False, "normal"),
    ("marketing", "Marketing", Kind.COMMERCIAL, False, "low"),
    # named by the demo templates (apps/content/demo.py)
    ("onboarding", "Getting started", Kind.PRODUCT, False, "normal"),
    ("newsletter", "Weekly tips", Kind.COMMERCIAL, False, "low"),
    ("cart", "Cart reminders", Kind.COMMERCIAL, False, "normal"),
]


def demo_policy_seed(*, tenant) -> list[str]:
    for key, name, kind, required, priority in CATEGORIES:
        Category.objects.get_or_create(tenant=tenant, key=key, defaults={
            "name": name, "kind": kind, "required": required, "default_priority": priority})
    PolicySettings.objects.get_or_create(tenant=tenant, defaults={
        "quiet_start": time(21), "quiet_end": time(8), "cap_per_day": 3})
    SuppressionRule.objects.get_or_create(
        tenant=tenant, name="No commercial within 2 h of billing or security",
        defaults={"kinds": [Kind.COMMERCIAL], "after_categories": ["billing", "security"],
                  "window_minutes": 120})
    return [key for key, *_ in CATEGORIES]
