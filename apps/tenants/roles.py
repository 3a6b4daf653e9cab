"""The staff roles: a Django group per role, with model permissions.

Defined here, applied by migration 0002_roles and again after every `migrate` (post_migrate),
so the groups follow this list as later apps add their models — and survive a test flush.
"""

from django.apps import apps as global_apps
from django.contrib.auth.management import create_permissions

from apps.tenants.models import Role


def _perms(app_label: str, actions: str, *models: str) -> list[str]:
    return [f"{app_label}.{action}_{model}" for model in models for action in actions.split()]


# Templates, their locales, layouts, partials and brands, and their edit history.
CONTENT_EDIT = [
    *_perms("content", "view add change delete", "template", "templatelocale", "layout", "partial"),
    *_perms("content", "view add change", "brand"),
    *_perms("content", "view", "historicaltemplate", "historicaltemplatelocale", "historicallayout",
            "historicalpartial", "historicalbrand"),
    # Publishing is adding a version (it waits for approval when the tenant requires it).
    "content.view_templateversion", "content.add_templateversion",
]
JOURNEYS_EDIT = [*_perms("journeys", "view add change", "journey"), "journeys.view_journeyrun"]
JOURNEYS_VIEW = ["journeys.view_journey", "journeys.view_journeyrun"]
SEGMENTS_EDIT = _perms("segments", "view add change delete", "segment")
# Broadcasts: create, start, pause, resume, cancel (all "change"); a draft may be deleted.
BROADCASTS_EDIT = _perms("broadcasts", "view add change delete", "broadcast")
CONTENT_VIEW = _perms("content", "view", "template", "templatelocale", "templateversion", "layout",
                      "partial", "brand", "historicaltemplate")

# Categories, quiet hours and caps (docs/policy.md); recipients' preferences; the suppression list.
POLICY_EDIT = [*_perms("policy", "view add change delete", "category", "policysettings", "suppressedaddress",
                       "suppressionrule", "flagrule", "recipientflag", "cap"),
               *_perms("policy", "view change", "preference")]
POLICY_VIEW = _perms("policy", "view", "category", "policysettings", "suppressedaddress", "preference",
                     "suppressionrule", "flagrule", "recipientflag", "cap")

ROLE_PERMISSIONS: dict[str, list[str]] = {
    # Edit content and journeys; look up recipients for previews.
    Role.MARKETER: ["tenants.view_tenant", "recipients.view_recipient", "events.view_event", *CONTENT_EDIT,
                    *_perms("policy", "view add change", "category"), *POLICY_VIEW, *JOURNEYS_EDIT,
                    *SEGMENTS_EDIT,
                    # A broadcast's messages are linked from its page.
                    *BROADCASTS_EDIT, "messaging.view_message", "messaging.view_statusevent"],
    # Read recipients, messages and templates; change nothing.
    Role.SUPPORT: ["tenants.view_tenant", "recipients.view_recipient", "events.view_event",
                   "messaging.view_message", "messaging.view_statusevent", "messaging.view_attempt",
                   *CONTENT_VIEW, *POLICY_VIEW, "policy.delete_suppressedaddress", *JOURNEYS_VIEW,
                   "segments.view_segment", "broadcasts.view_broadcast"],
    # Everything in their tenants: sub-tenants, staff memberships, API keys, recipients.
    Role.TENANT_ADMIN: [
        "tenants.view_tenant", "tenants.add_tenant", "tenants.change_tenant",
        "tenants.view_historicaltenant",
        "tenants.view_membership", "tenants.add_membership", "tenants.change_membership",
        "tenants.delete_membership", "tenants.view_historicalmembership",
        "tenants.view_apikey", "tenants.add_apikey", "tenants.change_apikey",
        "recipients.view_recipient", "recipients.add_recipient", "recipients.change_recipient",
        "recipients.delete_recipient", "events.view_event",
        "messaging.view_message", "messaging.view_statusevent", "messaging.view_attempt",
        "delivery.view_providerconfig", "delivery.add_providerconfig",
        "delivery.change_providerconfig", "delivery.delete_providerconfig",
        # Approve or reject what Marketers publish, and decide whether that is needed (brand).
        *CONTENT_VIEW, "content.approve_templateversion", "content.add_brand", "content.change_brand",
        *POLICY_EDIT,
        *JOURNEYS_VIEW, "broadcasts.view_broadcast",
    ],
}


def roles_sync(apps=global_apps) -> None:
    """Make each role's group hold exactly its listed permissions (those that exist yet)."""
    for app_config in apps.get_app_configs():
        # Permissions are normally created after all migrations; make them exist now.
        # (create_permissions skips app configs without models_module, as in migrations' stubs.)
        previous = getattr(app_config, "models_module", None)
        app_config.models_module = previous or True
        create_permissions(app_config, apps=apps, verbosity=0)
        app_config.models_module = previous
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    for role, names in ROLE_PERMISSIONS.items():
        group, _ = Group.objects.get_or_create(name=Role(role).label)
        wanted = {tuple(name.split(".")) for name in names}
        perms = [
            p for p in Permission.objects.filter(codename__in=[c for _, c in wanted])
            .select_related("content_type")
            if (p.content_type.app_label, p.codename) in wanted
        ]
        group.permissions.set(perms)


def roles_sync_after_migrate(sender, **kwargs) -> None:
    roles_sync()
