import factory

from apps.recipients.models import Recipient
from apps.tenants.tests.factories import TenantFactory


class RecipientFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Recipient

    tenant = factory.SubFactory(TenantFactory)
    external_id = factory.Sequence(lambda n: f"user-{n}")
    email = factory.LazyAttribute(lambda r: f"{r.external_id}@example.com")
    timezone = "Europe/Berlin"
    locale = "en"
