import pytest

from apps.delivery.models import ProviderConfig
from apps.delivery.selectors import ProviderLookup
from apps.tenants.tests.factories import TenantFactory

pytestmark = pytest.mark.django_db


def test_lookups_are_cached_per_process_until_a_provider_or_tenant_changes(django_assert_num_queries):
    parent = TenantFactory()
    child = TenantFactory(parent=parent)
    ProviderConfig.objects.create(tenant=parent, name="parent-mail", channel="email", kind="log")
    assert [c.name for c in ProviderLookup()(tenant=child, channel="email")] == ["parent-mail"]
    lookup = ProviderLookup()  # reads the version (a query with the database cache)
    with django_assert_num_queries(0):
        assert [c.name for c in lookup(tenant=child, channel="email")] == ["parent-mail"]
    ProviderConfig.objects.create(tenant=child, name="child-mail", channel="email", kind="log")
    assert [c.name for c in ProviderLookup()(tenant=child, channel="email")] == ["child-mail"]
    child.parent = None
    child.save()
    ProviderConfig.objects.filter(tenant=child).delete()
    assert ProviderLookup()(tenant=child, channel="email") == []
