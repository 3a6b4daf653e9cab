import factory

from apps.policy.models import Category, Kind, PolicySettings
from apps.tenants.tests.factories import TenantFactory


class CategoryFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Category

    tenant = factory.SubFactory(TenantFactory)
    key = factory.Sequence(lambda n: f"category-{n}")
    name = factory.LazyAttribute(lambda c: c.key.title())
    kind = Kind.PRODUCT


class PolicySettingsFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = PolicySettings

    tenant = factory.SubFactory(TenantFactory)
