import pytest
from django.core.exceptions import ValidationError

from apps.tenants.models import Tenant
from apps.tenants.tests.factories import TenantFactory

pytestmark = pytest.mark.django_db


def chain(depth: int) -> list[Tenant]:
    """root → … → leaf, `depth` tenants."""
    tenants = [TenantFactory()]
    for _ in range(depth - 1):
        tenants.append(TenantFactory(parent=tenants[-1]))
    return tenants


def test_four_levels_are_allowed():
    *_, leaf = chain(4)
    leaf.full_clean()
    assert len(leaf.ancestors()) == 3


def test_a_fifth_level_is_refused_with_an_error_on_parent():
    *_, leaf = chain(4)
    fifth = Tenant(name="Too deep", slug="too-deep", parent=leaf)
    with pytest.raises(ValidationError) as exc:
        fifth.full_clean()
    assert "at most 4 levels" in exc.value.message_dict["parent"][0]


def test_moving_a_subtree_counts_its_own_depth():
    root, child, grandchild = chain(3)
    other_root, other_child = chain(2)
    # child carries grandchild with it: 2 (other) + 1 (child) + 1 (grandchild) = 4 is fine…
    child.parent = other_child
    child.full_clean()
    # …but under a 3-level chain it would make 5.
    _, _, deep = chain(3)
    child.parent = deep
    with pytest.raises(ValidationError) as exc:
        child.full_clean()
    assert "parent" in exc.value.message_dict


def test_a_cycle_is_refused():
    root, child, grandchild = chain(3)
    root.parent = grandchild
    with pytest.raises(ValidationError) as exc:
        root.full_clean()
    assert "under itself" in exc.value.message_dict["parent"][0]


def test_a_tenant_cannot_be_its_own_parent():
    tenant = TenantFactory()
    tenant.parent = tenant
    with pytest.raises(ValidationError):
        tenant.full_clean()


def test_child_inherits_what_it_does_not_set_and_overrides_what_it_does():
    root = TenantFactory(default_locale="de", default_timezone="Europe/Berlin")
    child = TenantFactory(parent=root, default_timezone="Europe/Vienna")
    grandchild = TenantFactory(parent=child)
    assert grandchild.effective_default_locale() == "de"
    assert grandchild.effective_default_timezone() == "Europe/Vienna"
    assert child.effective_default_timezone() == "Europe/Vienna"
    assert root.effective_default_timezone() == "Europe/Berlin"


def test_settings_fallback_when_no_tenant_sets_a_value(settings):
    settings.SIGNALBOX_DEFAULT_LOCALE = "fr"
    tenant = TenantFactory(parent=TenantFactory())
    assert tenant.effective_default_locale() == "fr"
    assert tenant.effective_default_timezone() == "UTC"


def test_invalid_defaults_are_field_errors():
    tenant = Tenant(name="X", slug="x", default_timezone="Mars/Olympus", default_locale="not a locale")
    with pytest.raises(ValidationError) as exc:
        tenant.full_clean()
    assert set(exc.value.message_dict) == {"default_timezone", "default_locale"}
