import factory

from apps.events.models import Event
from apps.tenants import services
from apps.tenants.models import ApiKey
from apps.tenants.tests.factories import TenantFactory


def api_key_for(tenant=None, *, kind=ApiKey.Kind.SECRET) -> str:
    """A fresh API key's token for `tenant` (a new tenant if None)."""
    _, token = services.api_key_create(tenant=tenant or TenantFactory(), name="test", kind=kind)
    return token


class EventFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Event

    tenant = factory.SubFactory(TenantFactory)
    name = "order.completed"
    source = Event.Source.API
    message_id = factory.Sequence(lambda n: f"msg-{n}")
    occurred_at = factory.Faker("date_time_this_month", tzinfo=__import__("datetime").UTC)
    received_at = factory.LazyAttribute(lambda e: e.occurred_at)
