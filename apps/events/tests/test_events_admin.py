import pytest
from django.urls import reverse

from apps.events.tests.factories import EventFactory
from apps.recipients.tests.factories import RecipientFactory
from apps.tenants.models import Role
from apps.tenants.tests.factories import TenantFactory, staff_member

pytestmark = pytest.mark.django_db


@pytest.fixture
def support(client):
    tenant = TenantFactory()
    client.force_login(staff_member(tenant=tenant, role=Role.SUPPORT))
    return tenant


def test_support_searches_events_by_name_or_recipient_within_their_tenant(client, support):
    ada = RecipientFactory(tenant=support, external_id="ada")
    EventFactory(tenant=support, recipient=ada, name="order.completed")
    EventFactory(tenant=support, name="cart.viewed")
    EventFactory(tenant=TenantFactory(), name="order.completed")  # another tenant's
    url = reverse("admin:events_event_changelist")
    for query, expected in [("order.completed", 1), ("ada", 1), ("", 2), ("nothing", 0)]:
        page = client.get(url, {"q": query})
        assert page.status_code == 200
        assert len(page.context["cl"].result_list) == expected, query


def test_events_are_read_only(client, support):
    event = EventFactory(tenant=support)
    page = client.get(reverse("admin:events_event_change", args=[event.pk]))
    assert page.status_code == 200 and 'name="_save"' not in page.content.decode()
    assert client.get(reverse("admin:events_event_add")).status_code == 403


def test_the_count_is_capped_not_a_full_table_count(client, support, monkeypatch):
    from apps.core.admin import CappedCountPaginator

    monkeypatch.setattr(CappedCountPaginator, "CAP", 3)
    EventFactory.create_batch(5, tenant=support)
    page = client.get(reverse("admin:events_event_changelist"))
    assert page.context["cl"].result_count == 3


def test_recipient_page_shows_latest_events(client, support):
    ada = RecipientFactory(tenant=support, external_id="ada")
    EventFactory(tenant=support, recipient=ada, name="order.completed", properties={"total": 42})
    page = client.get(reverse("admin:recipients_recipient_change", args=[ada.pk])).content.decode()
    assert "order.completed" in page and "&quot;total&quot;: 42" in page
